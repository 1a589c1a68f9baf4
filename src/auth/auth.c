/*
 * Authentication state and the constant-time checks (see auth.h).
 *
 * The file is read whole (at most AUTH_FILE_MAX bytes) and parsed by the
 * pure auth_table_parse(). Unlike memcached's loader, which stops silently
 * after 8 entries and drops the last byte of a file without a final
 * newline, every line counts and an overflow is an error.
 */
#include "auth/auth.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool auth_equal(const char *secret, size_t slen, const char *given, size_t glen)
{
    /* The guess goes into a zero-padded buffer so that every comparison
     * reads the same AUTH_FIELD_MAX bytes; only its length (known to the
     * client anyway) decides how much is copied. */
    char g[AUTH_FIELD_MAX];
    memset(g, 0, sizeof(g));
    memcpy(g, given, glen < sizeof(g) ? glen : sizeof(g));
    volatile unsigned char diff = (unsigned char)((slen != glen) | (glen > sizeof(g)));
    for (size_t i = 0; i < sizeof(g); i++)
        diff |= (unsigned char)(secret[i] ^ g[i]);
    return diff == 0;
}

bool auth_table_check(const struct auth_table *t, const char *user, size_t ulen,
                      const char *pass, size_t plen)
{
    unsigned found = 0;
    for (size_t i = 0; i < t->n; i++) {
        const struct auth_entry *e = &t->e[i];
        /* Both comparisons always run: no early exit on a wrong user. */
        unsigned u = auth_equal(e->user, e->ulen, user, ulen);
        unsigned p = auth_equal(e->pass, e->plen, pass, plen);
        found |= u & p;
    }
    return found != 0;
}

int auth_table_parse(struct auth_table *t, const char *data, size_t n, char *err,
                     size_t errlen)
{
    memset(t, 0, sizeof(*t));
    size_t pos = 0, line = 0;
    while (pos < n) {
        line++;
        const char *p = data + pos;
        const char *nl = memchr(p, '\n', n - pos);
        size_t len = nl != NULL ? (size_t)(nl - p) : n - pos;
        pos += len + (nl != NULL);
        const char *colon = memchr(p, ':', len);
        if (colon == NULL) {
            snprintf(err, errlen, "malformed entry on line %zu: should be 'user:password'",
                     line);
            return -1;
        }
        size_t ulen = (size_t)(colon - p);
        const char *pass = colon + 1;
        size_t plen = 0;
        while (pass + plen < p + len && pass[plen] != '\r')
            plen++;
        if (ulen > AUTH_FIELD_MAX || plen > AUTH_FIELD_MAX) {
            snprintf(err, errlen, "entry on line %zu too long: user and password are at most "
                     "%d bytes each", line, AUTH_FIELD_MAX);
            return -1;
        }
        if (t->n == AUTH_USERS_MAX) {
            snprintf(err, errlen, "more than %d entries", AUTH_USERS_MAX);
            return -1;
        }
        struct auth_entry *e = &t->e[t->n++];
        memcpy(e->user, p, ulen);
        e->ulen = ulen;
        memcpy(e->pass, pass, plen);
        e->plen = plen;
    }
    return 0;
}

/* ---- the server's state ---- */

static struct auth_table table;        /* fixed after auth_setup() */
static char *file_path;                /* NULL: no file */
static pthread_mutex_t pass_lock = PTHREAD_MUTEX_INITIALIZER;
static char requirepass[AUTH_FIELD_MAX];   /* zero-padded; under pass_lock */
static size_t requirepass_len;             /* under pass_lock */
static bool requirepass_set;               /* atomic: read without the lock */

static int load_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "Could not open authfile [%s] for reading, error %s", path,
                 strerror(errno));
        return -1;
    }
    char *buf = malloc(AUTH_FILE_MAX + 1);
    size_t n = buf != NULL ? fread(buf, 1, AUTH_FILE_MAX + 1, f) : 0;
    int rc = -1;
    if (buf == NULL) {
        snprintf(err, errlen, "Out of memory reading authfile [%s]", path);
    } else if (ferror(f)) {
        snprintf(err, errlen, "Could not read authfile [%s]", path);
    } else if (n > AUTH_FILE_MAX) {
        snprintf(err, errlen, "Authfile [%s] is larger than %d bytes", path, AUTH_FILE_MAX);
    } else {
        char why[160];
        rc = auth_table_parse(&table, buf, n, why, sizeof(why));
        if (rc != 0)
            snprintf(err, errlen, "Authfile [%s]: %s", path, why);
    }
    if (buf != NULL) {
        memset(buf, 0, AUTH_FILE_MAX + 1);   /* no passwords left in freed memory */
        free(buf);
    }
    fclose(f);
    return rc;
}

int auth_setup(const char *file, const char *pass, char *err, size_t errlen)
{
    if (file != NULL && file[0] != '\0') {
        if (load_file(file, err, errlen) != 0)
            return -1;
        file_path = strdup(file);
        if (file_path == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    if (pass != NULL && auth_set_requirepass(pass, strlen(pass)) != 0) {
        snprintf(err, errlen, "requirepass is longer than %d bytes", AUTH_FIELD_MAX);
        return -1;
    }
    return 0;
}

void auth_teardown(void)
{
    memset(&table, 0, sizeof(table));
    free(file_path);
    file_path = NULL;
    auth_set_requirepass("", 0);
}

bool auth_file_enabled(void)
{
    return file_path != NULL;
}

const char *auth_file_path(void)
{
    return file_path;
}

bool auth_file_check(const char *user, size_t ulen, const char *pass, size_t plen)
{
    return file_path != NULL && auth_table_check(&table, user, ulen, pass, plen);
}

bool auth_resp_required(void)
{
    return file_path != NULL || __atomic_load_n(&requirepass_set, __ATOMIC_ACQUIRE);
}

enum auth_result auth_resp_check(const char *user, size_t ulen, const char *pass,
                                 size_t plen)
{
    static const char def[] = "default";
    bool is_default = user == NULL || (ulen == sizeof(def) - 1 && memcmp(user, def, ulen) == 0);
    if (!is_default)
        return auth_file_check(user, ulen, pass, plen) ? AUTH_OK : AUTH_WRONGPASS;

    pthread_mutex_lock(&pass_lock);
    bool have_pass = requirepass_len > 0;
    bool ok = have_pass && auth_equal(requirepass, requirepass_len, pass, plen);
    pthread_mutex_unlock(&pass_lock);
    if (have_pass)
        return ok ? AUTH_OK : AUTH_WRONGPASS;
    if (file_path != NULL)   /* the file's "default" entry, if it has one */
        return auth_table_check(&table, def, sizeof(def) - 1, pass, plen) ? AUTH_OK
                                                                          : AUTH_WRONGPASS;
    /* No password anywhere: Redis's nopass default user. */
    return user == NULL ? AUTH_NOPASS : AUTH_OK;
}

int auth_set_requirepass(const char *pass, size_t n)
{
    if (n > AUTH_FIELD_MAX)
        return -1;
    pthread_mutex_lock(&pass_lock);
    memset(requirepass, 0, sizeof(requirepass));
    memcpy(requirepass, pass, n);
    requirepass_len = n;
    __atomic_store_n(&requirepass_set, n > 0, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&pass_lock);
    return 0;
}

void auth_get_requirepass(char *buf, size_t cap)
{
    if (cap == 0)
        return;
    pthread_mutex_lock(&pass_lock);
    size_t n = requirepass_len < cap - 1 ? requirepass_len : cap - 1;
    memcpy(buf, requirepass, n);
    buf[n] = '\0';
    pthread_mutex_unlock(&pass_lock);
}
