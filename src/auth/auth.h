/*
 * Authentication: who may talk to kioku, for every protocol.
 *
 * One table of user:password pairs, read at start-up from memcached's
 * authfile (-Y FILE, one "user:password" a line), serves all three
 * protocols:
 *   - memcached text: a `set` whose data is "user password" (memcached's
 *     -Y mode);
 *   - memcached binary: SASL PLAIN, "\0user\0password" (memcached's -S);
 *   - RESP: AUTH [user] password and HELLO ... AUTH user password, where
 *     the "default" user's password is requirepass if one is set, else the
 *     file's "default" entry.
 *
 * Passwords are compared in constant time: both sides are laid into
 * zero-padded buffers of AUTH_FIELD_MAX bytes and every byte of every
 * entry is compared, so the time taken says nothing about how much of a
 * guess was right, nor which user matched.
 *
 * The table is fixed after auth_setup(); requirepass may change at run
 * time (CONFIG SET requirepass), so it and the checks that read it sit
 * behind one mutex. Authentication is rare (once a connection), never on
 * the per-request path: a connection remembers its own state.
 *
 * The parser and the comparisons (auth_table_*, auth_equal) are pure, for
 * the unit tests; nothing here ever prints or logs a password.
 */
#ifndef KIOKU_AUTH_H
#define KIOKU_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#define AUTH_FIELD_MAX 255      /* longest user name or password */
#define AUTH_USERS_MAX 64       /* entries in an authfile */
#define AUTH_FILE_MAX (64 * 1024)

struct auth_entry {
    size_t ulen, plen;
    char user[AUTH_FIELD_MAX];  /* zero-padded */
    char pass[AUTH_FIELD_MAX];  /* zero-padded */
};

struct auth_table {
    size_t n;
    struct auth_entry e[AUTH_USERS_MAX];
};

/*
 * Parse an authfile's bytes: lines of "user:password" (the first ':'
 * splits; the password runs to '\r' or '\n'; a last line may lack its
 * newline). A line without ':' (an empty one too), a field longer than
 * AUTH_FIELD_MAX or more than AUTH_USERS_MAX lines is an error, reported
 * in err by line number only (never the line: it holds a password).
 * Returns 0, or -1 with t unspecified.
 */
int auth_table_parse(struct auth_table *t, const char *data, size_t n, char *err,
                     size_t errlen);

/* True when (user, pass) is an entry of t. Constant time in the bytes of
 * user and pass; visits every entry. */
bool auth_table_check(const struct auth_table *t, const char *user, size_t ulen,
                      const char *pass, size_t plen);

/* secret (slen <= AUTH_FIELD_MAX bytes, zero-padded to AUTH_FIELD_MAX)
 * equals given? Always reads AUTH_FIELD_MAX bytes of secret. */
bool auth_equal(const char *secret, size_t slen, const char *given, size_t glen);

/* ---- the server's authentication state ---- */

/*
 * Load the password file (file may be NULL or "": none) and set the RESP
 * requirepass (may be NULL or ""). Call before the workers start.
 * Returns 0, or -1 with a message in err.
 */
int auth_setup(const char *file, const char *requirepass, char *err, size_t errlen);
void auth_teardown(void);

/* A password file is loaded: memcached text and binary clients must
 * authenticate (text with the `set` token, binary with SASL PLAIN). */
bool auth_file_enabled(void);
/* The file's path, for `stats settings` (NULL when none). */
const char *auth_file_path(void);
/* The file holds (user, pass). Thread-safe. */
bool auth_file_check(const char *user, size_t ulen, const char *pass, size_t plen);

/* RESP clients must authenticate: a file is loaded or requirepass is set. */
bool auth_resp_required(void);

enum auth_result {
    AUTH_OK,
    AUTH_WRONGPASS,   /* -WRONGPASS invalid username-password pair ... */
    AUTH_NOPASS,      /* AUTH <password> while the default user needs none */
};
/*
 * RESP AUTH: user NULL means the one-argument form (user "default"). The
 * default user's password is requirepass, else the file's "default" entry;
 * with neither and no file it takes any password (Redis's nopass), except
 * that the one-argument form is then AUTH_NOPASS, as Redis says.
 */
enum auth_result auth_resp_check(const char *user, size_t ulen, const char *pass,
                                 size_t plen);

/* CONFIG SET requirepass ("" clears it). Returns 0, or -1 if too long. */
int auth_set_requirepass(const char *pass, size_t n);
/* CONFIG GET requirepass: copies it (NUL-terminated) into buf. */
void auth_get_requirepass(char *buf, size_t cap);

#endif
