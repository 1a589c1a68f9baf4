/*
 * Integration-test harness: start the server under test, talk to it.
 *
 * The server binary comes from $KIOKU_BIN (the Makefile points it at the
 * freshly built src/kioku; any memcached-compatible binary works, which is
 * how these tests are validated against memcached itself).
 *
 * Lifetime: every server started here is recorded together with the process
 * that started it. It is stopped by kh_server_stop() (normally from a Check
 * fixture teardown), by an atexit() handler in the starting process, and, if
 * the test process dies without running either (a failed assertion, a Check
 * timeout's SIGKILL), by PR_SET_PDEATHSIG in the server child. Servers are
 * only ever signalled by PID.
 *
 * Time: every wait is bounded. Waits are given in milliseconds for a normal
 * build and stretched by kh_scale_ms() when the environment says the server
 * is slow (CK_TIMEOUT_MULTIPLIER, as used for ASan/TSan runs).
 *
 * The socket helpers never assert; they return a status and, where useful, a
 * readable explanation, so they are also safe to use from client threads.
 */
#ifndef KIOKU_T_INTEGRATION_HARNESS_H
#define KIOKU_T_INTEGRATION_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <check.h>
#include <libmemcached/memcached.h>

/* Default bound for one request/reply exchange, before scaling. */
#define KH_IO_TIMEOUT_MS 10000

struct kh_server {
    pid_t pid;    /* 0 when not running */
    int port;     /* TCP port on 127.0.0.1 */
    bool exited;  /* the process has exited and was reaped */
    int status;   /* its wait status, valid once exited */
};

/* Path of the server binary ($KIOKU_BIN); aborts the program if unset. */
const char *kh_server_bin(void);

/* True when the binary's file name ends with "kioku": gates kioku-only checks. */
bool kh_server_is_kioku(void);

/* base_ms stretched by $CK_TIMEOUT_MULTIPLIER (default 1). */
int kh_scale_ms(int base_ms);

/*
 * Start the server on a free loopback port with
 * "-p PORT -l 127.0.0.1 -U 0" plus the NULL-terminated extra arguments
 * (extra may be NULL). Waits (bounded) until it answers "version" (or,
 * under -Y, "CLIENT_ERROR unauthenticated").
 * Retries on another port when the server exits during start-up.
 * Returns 0 on success, -1 on failure (reason on stderr).
 */
int kh_server_start(struct kh_server *srv, const char *const *extra);

/* True while the server process has not exited. Reaps it if it has (when
 * called from the process that started it; a forked Check test child sees
 * its parent's server through kill(pid, 0) and /proc instead). */
bool kh_server_alive(struct kh_server *srv);

/*
 * Send SIGTERM, wait up to timeout_ms for exit, then SIGKILL.
 * Returns the wait status (see <sys/wait.h>), or -1 if nothing was running.
 * A server that had already exited reports the status it exited with.
 */
int kh_server_stop(struct kh_server *srv, int timeout_ms);

/* Check fixtures' forms: start or fail the test; stop with SIGTERM and fail
 * the test unless the server exits with status 0 (sanitizer reports made at
 * exit then fail it too). */
void kh_server_must_start(struct kh_server *srv, const char *const *extra);
void kh_server_must_exit_cleanly(struct kh_server *srv, int timeout_ms);

/* Wait up to timeout_ms for the server to exit on its own (e.g. after a
 * signal the test sent). Returns the wait status or -1 on timeout. */
int kh_server_wait_exit(struct kh_server *srv, int timeout_ms);

/*
 * Run the server binary with only the given NULL-terminated arguments
 * (no port or address is added), capture stdout and
 * stderr together into out (NUL-terminated, truncated to outcap-1), wait up
 * to timeout_ms. Returns the wait status, or -1 if it had to be killed.
 */
int kh_run_capture(const char *const *args, char *out, size_t outcap,
                   int timeout_ms);

/* Connect to 127.0.0.1:port (bounded). Returns the fd or -1. */
int kh_connect(int port);

/* Send all n bytes (bounded by KH_IO_TIMEOUT_MS). Returns 0 or -1. */
int kh_send_all(int fd, const void *buf, size_t n);

/*
 * Read until `term` occurs in what was read, cap bytes were read, the peer
 * closed, or timeout_ms passed. May return bytes that follow the
 * terminator. buf is NUL-terminated (cap must leave room for it).
 * Returns the number of bytes read (*closed set when the peer closed or
 * reset the connection; closed may be NULL).
 */
size_t kh_read_until(int fd, char *buf, size_t cap, const char *term,
                     int timeout_ms, bool *closed);

/* Read exactly n bytes unless timeout/close comes first; returns bytes read. */
size_t kh_read_n(int fd, void *buf, size_t n, int timeout_ms, bool *closed);

/* Read and discard until the peer closes (true) or timeout_ms passes (false). */
bool kh_wait_closed(int fd, int timeout_ms);

/*
 * Send req (reqlen bytes) and require the reply to be exactly want
 * (wantlen bytes): no fewer, different or extra bytes. Stops reading early
 * at the first differing byte. On failure returns false and writes an
 * explanation with both byte strings escaped into why.
 */
bool kh_transact(int fd, const void *req, size_t reqlen, const void *want,
                 size_t wantlen, char *why, size_t whycap);

/* Same for a request that must produce no reply at all: sends req, then
 * "version\r\n", and requires exactly the VERSION line back. */
bool kh_transact_silent(int fd, const void *req, size_t reqlen, char *why,
                        size_t whycap);

/* Printable form of bytes: \r \n \\ and \xNN escapes, truncated with "...". */
void kh_escape(const void *data, size_t n, char *out, size_t outcap);

/*
 * "get key" through the text protocol. Returns 1 on a hit (value copied to
 * val, its length in *vlen, flags in *flags; flags may be NULL), 0 on a
 * miss, -1 on a malformed reply or I/O error (explanation in why).
 */
int kh_get(int fd, const char *key, void *val, size_t valcap, size_t *vlen,
           uint32_t *flags, char *why, size_t whycap);

/* Send cmd ("stats", "stats settings", ...) and read through "END\r\n".
 * Returns the bytes read (NUL-terminated) or 0 on failure. */
size_t kh_stats_fetch(int fd, const char *cmd, char *buf, size_t cap);

/* Find "STAT name value\r\n" in a stats reply; copy value. */
bool kh_stats_find(const char *stats, const char *name, char *val, size_t cap);

/* The numeric value of a stat, or -1 when absent or not a number. */
long long kh_stats_num(const char *stats, const char *name);

/* A libmemcached handle for 127.0.0.1:port, ASCII protocol, with scaled
 * I/O timeouts. NULL on failure. Free with memcached_free(). */
memcached_st *kh_memc_create(int port);

/*
 * Assertion wrappers for Check tests: they send a request and require the
 * exact reply, failing the test with a message that shows both.
 */
#define KH_EXPECT_N(fd, req, reqlen, want, wantlen)                           \
    do {                                                                      \
        char kh_why_[4096];                                                   \
        bool kh_ok_ = kh_transact((fd), (req), (reqlen), (want), (wantlen),   \
                                  kh_why_, sizeof kh_why_);                   \
        ck_assert_msg(kh_ok_, "%s", kh_why_);                                 \
    } while (0)

#define KH_EXPECT(fd, req, want) \
    KH_EXPECT_N((fd), (req), strlen(req), (want), strlen(want))

#define KH_EXPECT_SILENT(fd, req)                                             \
    do {                                                                      \
        char kh_why_[4096];                                                   \
        bool kh_ok_ = kh_transact_silent((fd), (req), strlen(req), kh_why_,   \
                                         sizeof kh_why_);                     \
        ck_assert_msg(kh_ok_, "%s", kh_why_);                                 \
    } while (0)

/* ---- suites of test groups ---- */

/* Tests that share a fixture: own_server false runs one server for the
 * group and gives each test a fresh connection to it; true starts a server
 * per test (for tests that change server-wide state or options). */
struct kh_group {
    const char *name;
    bool own_server;
    const TTest *tests[32];   /* NULL-terminated */
};

struct kh_fixtures {
    SFun server_start, server_stop;   /* unchecked: once per shared group */
    SFun conn_open, conn_close;       /* checked: around each shared test */
    SFun own_setup, own_teardown;     /* checked: around each own-server test */
    int timeout_s;
};

/* A suite named name with one TCase per group. */
Suite *kh_group_suite(const char *name, const struct kh_group *groups, size_t ngroups,
                      const struct kh_fixtures *f);
/* Run a suite; the process exit status (0 when every test passed). */
int kh_run_suite(Suite *s);

#endif /* KIOKU_T_INTEGRATION_HARNESS_H */
