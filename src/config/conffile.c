/*
 * Config file syntax (see conffile.h). The parser copies one line at a time
 * into a bounded buffer on the stack, cuts it into key and value in place
 * and hands both to the caller; it keeps nothing between calls. Reading the
 * file is a separate step so that the parser can be tested on strings.
 */
#include "config/conffile.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

/* Splits a NUL-terminated line into *key and *value (NULL when absent).
 * Returns 0, 1 for a blank or comment line, or -1 when there is no key. */
static int split_line(char *line, char **key, char **value)
{
    char *p = line;
    while (is_blank(*p))
        p++;
    if (*p == '\0' || *p == '#')
        return 1;
    *key = p;
    while (*p != '\0' && *p != '=' && !is_blank(*p))
        p++;
    if (p == *key)
        return -1;
    char *key_end = p;
    while (is_blank(*p))
        p++;
    bool has_eq = *p == '=';
    if (has_eq) {
        p++;
        while (is_blank(*p))
            p++;
    }
    char *end = p + strlen(p);
    while (end > p && is_blank(end[-1]))
        end--;
    *end = '\0';
    *key_end = '\0';
    *value = (*p != '\0' || has_eq) ? p : NULL;
    return 0;
}

int conffile_parse(const char *name, const char *text, size_t len, conffile_set_fn set,
                   void *ctx, char *err, size_t errlen)
{
    char line[CONFFILE_LINE_MAX + 1];
    char msg[512];
    unsigned lineno = 0;
    size_t pos = 0;
    while (pos < len) {
        lineno++;
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = (nl != NULL ? (size_t)(nl - text) : len) - pos;
        if (n > CONFFILE_LINE_MAX) {
            snprintf(err, errlen, "%s:%u: line longer than %d bytes", name, lineno,
                     CONFFILE_LINE_MAX);
            return -1;
        }
        if (memchr(text + pos, '\0', n) != NULL) {
            snprintf(err, errlen, "%s:%u: NUL byte in line", name, lineno);
            return -1;
        }
        memcpy(line, text + pos, n);
        line[n] = '\0';
        pos += n + 1;
        char *key, *value;
        int r = split_line(line, &key, &value);
        if (r == 1)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "%s:%u: missing option name before '='", name, lineno);
            return -1;
        }
        msg[0] = '\0';
        if (set(ctx, key, value, msg, sizeof(msg)) != 0) {
            snprintf(err, errlen, "%s:%u: %s", name, lineno, msg[0] ? msg : "invalid option");
            return -1;
        }
    }
    return 0;
}

int conffile_read(const char *path, conffile_set_fn set, void *ctx, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    int rc = -1;
    /* One byte more than allowed tells a file that is too large. */
    char *text = malloc(CONFFILE_SIZE_MAX + 1);
    if (text == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    size_t len = fread(text, 1, CONFFILE_SIZE_MAX + 1, f);
    if (ferror(f)) {
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        goto out;
    }
    if (len > CONFFILE_SIZE_MAX) {
        snprintf(err, errlen, "%s: larger than %d bytes", path, CONFFILE_SIZE_MAX);
        goto out;
    }
    rc = conffile_parse(path, text, len, set, ctx, err, errlen);
out:
    free(text);
    fclose(f);
    return rc;
}
