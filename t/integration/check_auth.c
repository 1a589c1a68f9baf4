/*
 * Integration tests for authentication (issue 9), every protocol against
 * one password file:
 *   - memcached text, -Y: memcached 1.6.45's replies, recorded from its
 *     binary over a socket (CLIENT_ERROR unauthenticated, the set token,
 *     the short-line close);
 *   - memcached binary, SASL PLAIN: raw frames and libmemcached's own SASL
 *     client (Debian's libmemcached is built with SASL);
 *   - RESP: hiredis and redis-cli -a; replies recorded from redis-server
 *     7.0 with requirepass (NOAUTH, WRONGPASS, HELLO's NOAUTH text);
 *   - auth_cmds / auth_errors and stats settings;
 *   - no password in anything the server prints, even at -vvv.
 */
#include "harness.h"
#include "harness_resp.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define USER "alice"
#define PASS "s3cret-Pa55"
#define DEFAULT_PASS "dflt-Pw0rd"

static char g_pwfile[64];
static struct kh_server g_srv;
static int g_resp_port;

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
    struct sockaddr_in a = {0};
    socklen_t len = sizeof(a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* Start kioku with a RESP port and the given extra arguments. */
static void start_with(const char *a1, const char *a2, const char *a3)
{
    static char portstr[16];
    g_resp_port = free_port();
    snprintf(portstr, sizeof(portstr), "%d", g_resp_port);
    const char *args[] = {"--resp-port", portstr, a1, a2, a3, NULL};
    kh_server_must_start(&g_srv, args);
}

static void start_authfile(void) { start_with("-Y", g_pwfile, NULL); }
static void start_requirepass(void) { start_with("--requirepass", PASS, NULL); }
static void start_open(void) { start_with(NULL, NULL, NULL); }

static void stop(void)
{
    kh_server_must_exit_cleanly(&g_srv, kh_scale_ms(10000));
}

static int conn(void)
{
    int fd = kh_connect(g_srv.port);
    ck_assert_msg(fd >= 0, "connect");
    return fd;
}

#define AUTH_SET "set anykey 0 0 17\r\n" USER " " PASS "\r\n"

/* Read a stats group on an authenticated text connection of its own. */
static long long stat_num(const char *name)
{
    int fd = conn();
    KH_EXPECT(fd, AUTH_SET, "STORED\r\n");
    char buf[16384];
    ck_assert(kh_stats_fetch(fd, "stats", buf, sizeof(buf)) > 0);
    close(fd);
    return kh_stats_num(buf, name);
}

/* ---- memcached text protocol (-Y) ---- */

START_TEST(test_text_commands_before_auth_get_client_error_and_stay_open)
{
    int fd = conn();
    const char *cmds[] = {"version\r\n", "get foo\r\n", "stats\r\n", "mg foo v\r\n",
                          "delete foo\r\n", "flush_all\r\n", "add foo 0 0 1\r\n"};
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        KH_EXPECT(fd, cmds[i], "CLIENT_ERROR unauthenticated\r\n");
    /* still open: the right token now works on the same connection */
    KH_EXPECT(fd, AUTH_SET, "STORED\r\n");
    KH_EXPECT(fd, "set k 0 0 1\r\nv\r\n", "STORED\r\n");
    KH_EXPECT(fd, "get k\r\n", "VALUE k 0 1\r\nv\r\nEND\r\n");
    KH_EXPECT(fd, "mn\r\n", "MN\r\n");
    /* the token is not stored under its key */
    KH_EXPECT(fd, "get anykey\r\n", "END\r\n");
    close(fd);
}
END_TEST

START_TEST(test_text_short_line_before_auth_closes_like_memcached)
{
    const char *cmds[] = {"quit\r\n", "mn\r\n"};
    for (size_t i = 0; i < 2; i++) {
        int fd = conn();
        ck_assert_int_eq(kh_send_all(fd, cmds[i], strlen(cmds[i])), 0);
        char buf[64];
        bool closed = false;
        size_t n = kh_read_until(fd, buf, sizeof(buf), "\n", kh_scale_ms(5000), &closed);
        ck_assert_msg(n == 0 && closed, "%s: want a silent close, got %zu bytes", cmds[i], n);
        close(fd);
    }
}
END_TEST

START_TEST(test_text_wrong_password_fails_and_keeps_client_locked)
{
    long long cmds0 = stat_num("auth_cmds"), errs0 = stat_num("auth_errors");
    int fd = conn();
    KH_EXPECT(fd, "set x 0 0 12\r\n" USER " wrong!\r\n", "CLIENT_ERROR authentication failure\r\n");
    KH_EXPECT(fd, "set x 0 0 15\r\nbob " PASS "\r\n", "CLIENT_ERROR authentication failure\r\n");
    /* a prefix of the password is not the password */
    KH_EXPECT(fd, "set x 0 0 16\r\n" USER " s3cret-Pa5\r\n", "CLIENT_ERROR authentication failure\r\n");
    KH_EXPECT(fd, "get k\r\n", "CLIENT_ERROR unauthenticated\r\n");
    close(fd);
    /* stat_num authenticates once per call: 2 successes besides the 3 failures */
    ck_assert_int_eq(stat_num("auth_cmds") - cmds0, 3 + 2);
    ck_assert_int_eq(stat_num("auth_errors") - errs0, 3);
}
END_TEST

START_TEST(test_text_malformed_tokens_get_memcached_errors)
{
    int fd = conn();
    KH_EXPECT(fd, "set a 0 0 5\r\nalice\r\n", "CLIENT_ERROR bad authentication token format\r\n");
    KH_EXPECT(fd, "set a 0 0 99999\r\n", "CLIENT_ERROR auth token too long\r\n");
    /* as memcached, n + 2 bytes are taken as the data whatever they hold:
     * here the "\n" is left over and starts an empty line, which closes */
    KH_EXPECT(fd, "set a 0 0 5\r\nalicex\r\n", "CLIENT_ERROR bad command line termination\r\n");
    ck_assert_int_eq(kh_send_all(fd, "version\r\n", 9), 0);
    ck_assert(kh_wait_closed(fd, kh_scale_ms(5000)));
    close(fd);
    fd = conn();
    KH_EXPECT(fd, "set a 0\r\n", "CLIENT_ERROR unauthenticated\r\n");
    /* noreply does not silence the answer, as memcached */
    KH_EXPECT(fd, "set a 0 0 17 noreply\r\n" USER " " PASS "\r\n", "STORED\r\n");
    KH_EXPECT(fd, "get a\r\n", "END\r\n");
    close(fd);
}
END_TEST

START_TEST(test_text_token_split_across_reads_authenticates)
{
    int fd = conn();
    const char *parts[] = {"set anykey 0 0 17\r", "\n" USER, " " PASS, "\r\n"};
    for (size_t i = 0; i < 4; i++) {
        ck_assert_int_eq(kh_send_all(fd, parts[i], strlen(parts[i])), 0);
        usleep(20000);
    }
    char buf[64];
    kh_read_until(fd, buf, sizeof(buf), "\r\n", kh_scale_ms(5000), NULL);
    ck_assert_str_eq(buf, "STORED\r\n");
    KH_EXPECT(fd, "get nokey\r\n", "END\r\n");
    close(fd);
}
END_TEST

START_TEST(test_stats_settings_report_auth_like_memcached)
{
    int fd = conn();
    KH_EXPECT(fd, AUTH_SET, "STORED\r\n");
    char buf[16384], val[128];
    ck_assert(kh_stats_fetch(fd, "stats settings", buf, sizeof(buf)) > 0);
    ck_assert(kh_stats_find(buf, "auth_enabled_ascii", val, sizeof(val)));
    ck_assert_str_eq(val, g_pwfile);
    ck_assert(kh_stats_find(buf, "auth_enabled_sasl", val, sizeof(val)));
    ck_assert_str_eq(val, "yes");
    close(fd);
}
END_TEST

/* ---- memcached binary protocol: SASL PLAIN ---- */

static size_t frame(uint8_t *out, uint8_t opcode, const char *key, size_t klen,
                    const char *val, size_t vlen)
{
    memset(out, 0, 24);
    out[0] = 0x80;
    out[1] = opcode;
    out[2] = (uint8_t)(klen >> 8);
    out[3] = (uint8_t)klen;
    uint32_t body = (uint32_t)(klen + vlen);
    out[8] = (uint8_t)(body >> 24);
    out[9] = (uint8_t)(body >> 16);
    out[10] = (uint8_t)(body >> 8);
    out[11] = (uint8_t)body;
    memcpy(out + 24, key, klen);
    memcpy(out + 24 + klen, val, vlen);
    return 24 + klen + vlen;
}

/* The response header for opcode with status and a body of n bytes. */
static size_t resp_hdr(uint8_t *out, uint8_t opcode, uint16_t status, size_t n)
{
    memset(out, 0, 24);
    out[0] = 0x81;
    out[1] = opcode;
    out[6] = (uint8_t)(status >> 8);
    out[7] = (uint8_t)status;
    out[10] = (uint8_t)(n >> 8);
    out[11] = (uint8_t)n;
    return 24;
}

static void bin_expect(int fd, const uint8_t *req, size_t reqlen, uint8_t opcode,
                       uint16_t status, const char *body)
{
    uint8_t want[256];
    size_t n = resp_hdr(want, opcode, status, strlen(body));
    memcpy(want + n, body, strlen(body));
    KH_EXPECT_N(fd, req, reqlen, want, n + strlen(body));
}

static const char plain_ok[] = "\0" USER "\0" PASS;
static const char plain_bad[] = "\0" USER "\0" "s3cret-Pa56";

START_TEST(test_binary_sasl_plain_unlocks_after_list_mechs)
{
    uint8_t req[256];
    int fd = conn();
    size_t n = frame(req, 0x20, "", 0, "", 0);
    bin_expect(fd, req, n, 0x20, 0, "PLAIN");
    n = frame(req, 0x0b, "", 0, "", 0);   /* Version is allowed before auth */
    uint8_t want[64];
    ck_assert_int_eq(kh_send_all(fd, req, n), 0);
    ck_assert_uint_eq(kh_read_n(fd, want, 24, kh_scale_ms(5000), NULL), 24);
    ck_assert_uint_eq(want[7], 0);
    size_t vlen = want[11];
    ck_assert_uint_eq(kh_read_n(fd, want, vlen, kh_scale_ms(5000), NULL), vlen);
    n = frame(req, 0x21, "PLAIN", 5, plain_bad, sizeof(plain_bad) - 1);
    bin_expect(fd, req, n, 0x21, 0x20, "Auth failure.");
    n = frame(req, 0x21, "PLAIN", 5, plain_ok, sizeof(plain_ok) - 1);
    bin_expect(fd, req, n, 0x21, 0, "Authenticated");
    n = frame(req, 0x00, "nokey", 5, "", 0);   /* Get: now served (a miss) */
    bin_expect(fd, req, n, 0x00, 0x01, "Not found");
    close(fd);
}
END_TEST

START_TEST(test_binary_command_before_auth_gets_auth_error_and_close)
{
    uint8_t req[256];
    int fd = conn();
    size_t n = frame(req, 0x00, "foo", 3, "", 0);
    bin_expect(fd, req, n, 0x00, 0x20, "Auth failure.");
    ck_assert_msg(kh_wait_closed(fd, kh_scale_ms(5000)), "connection not closed");
    close(fd);
}
END_TEST

START_TEST(test_binary_sasl_rejects_other_mechanisms_and_step)
{
    uint8_t req[256];
    int fd = conn();
    size_t n = frame(req, 0x21, "CRAM-MD5", 8, plain_ok, sizeof(plain_ok) - 1);
    bin_expect(fd, req, n, 0x21, 0x20, "Auth failure.");
    n = frame(req, 0x22, "PLAIN", 5, plain_ok, sizeof(plain_ok) - 1);
    bin_expect(fd, req, n, 0x22, 0x20, "Auth failure.");
    /* authzid naming another user is refused */
    static const char other[] = "bob\0" USER "\0" PASS;
    n = frame(req, 0x21, "PLAIN", 5, other, sizeof(other) - 1);
    bin_expect(fd, req, n, 0x21, 0x20, "Auth failure.");
    /* a failed attempt after a success locks the client again (as memcached) */
    n = frame(req, 0x21, "PLAIN", 5, plain_ok, sizeof(plain_ok) - 1);
    bin_expect(fd, req, n, 0x21, 0, "Authenticated");
    n = frame(req, 0x21, "PLAIN", 5, plain_bad, sizeof(plain_bad) - 1);
    bin_expect(fd, req, n, 0x21, 0x20, "Auth failure.");
    n = frame(req, 0x0a, "", 0, "", 0);   /* Noop */
    bin_expect(fd, req, n, 0x0a, 0x20, "Auth failure.");
    close(fd);
}
END_TEST

START_TEST(test_libmemcached_sasl_client_authenticates)
{
    memcached_st *mc = memcached_create(NULL);
    ck_assert_ptr_nonnull(mc);
    ck_assert_int_eq(memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_BINARY_PROTOCOL, 1),
                     MEMCACHED_SUCCESS);
    ck_assert_int_eq(memcached_set_sasl_auth_data(mc, USER, PASS), MEMCACHED_SUCCESS);
    ck_assert_int_eq(memcached_server_add(mc, "127.0.0.1", (in_port_t)g_srv.port),
                     MEMCACHED_SUCCESS);
    memcached_return_t rc = memcached_set(mc, "sk", 2, "sv", 2, 0, 0);
    ck_assert_msg(rc == MEMCACHED_SUCCESS, "set: %s", memcached_strerror(mc, rc));
    size_t len;
    uint32_t flags;
    char *v = memcached_get(mc, "sk", 2, &len, &flags, &rc);
    ck_assert_msg(rc == MEMCACHED_SUCCESS && v != NULL && len == 2 && memcmp(v, "sv", 2) == 0,
                  "get: %s", memcached_strerror(mc, rc));
    free(v);
    memcached_destroy_sasl_auth_data(mc);
    memcached_free(mc);

    /* the wrong password: the operation fails */
    mc = memcached_create(NULL);
    memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_BINARY_PROTOCOL, 1);
    memcached_set_sasl_auth_data(mc, USER, "nope");
    memcached_server_add(mc, "127.0.0.1", (in_port_t)g_srv.port);
    rc = memcached_set(mc, "sk", 2, "xx", 2, 0, 0);
    ck_assert_msg(rc != MEMCACHED_SUCCESS, "set with a wrong password succeeded");
    memcached_destroy_sasl_auth_data(mc);
    memcached_free(mc);
}
END_TEST

/* ---- RESP ---- */

static redisContext *resp_conn(void)
{
    redisContext *rc = kh_resp_connect(g_resp_port);
    ck_assert_msg(rc != NULL && rc->err == 0, "cannot connect to port %d", g_resp_port);
    return rc;
}

/* Run a command; the reply as "+STATUS", "-ERROR", "$bulk", ":int" or "*n". */
static void rx(redisContext *rc, const char *want, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    ck_assert_msg(r != NULL, "no reply to %s", fmt);
    char got[512];
    switch (r->type) {
    case REDIS_REPLY_STATUS: snprintf(got, sizeof(got), "+%s", r->str); break;
    case REDIS_REPLY_ERROR: snprintf(got, sizeof(got), "-%s", r->str); break;
    case REDIS_REPLY_STRING: snprintf(got, sizeof(got), "$%s", r->str); break;
    case REDIS_REPLY_INTEGER: snprintf(got, sizeof(got), ":%lld", r->integer); break;
    case REDIS_REPLY_NIL: snprintf(got, sizeof(got), "(nil)"); break;
    default: snprintf(got, sizeof(got), "*%zu", r->elements); break;
    }
    freeReplyObject(r);
    ck_assert_msg(strcmp(got, want) == 0, "%s: want <%s>, got <%s>", fmt, want, got);
}

#define NOAUTH "-NOAUTH Authentication required."
#define WRONGPASS "-WRONGPASS invalid username-password pair or user is disabled."
#define HELLO_NOAUTH "-NOAUTH HELLO must be called with the client already authenticated, " \
    "otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the " \
    "client and select the RESP protocol version at the same time"

START_TEST(test_resp_authfile_users_and_default_entry)
{
    redisContext *rc = resp_conn();
    rx(rc, NOAUTH, "PING");
    rx(rc, NOAUTH, "GET k");
    rx(rc, "-ERR unknown command 'NOSUCH', with args beginning with: ", "NOSUCH");
    rx(rc, HELLO_NOAUTH, "HELLO 3");
    rx(rc, WRONGPASS, "AUTH %s %s", USER, "wrong");
    rx(rc, WRONGPASS, "AUTH %s", PASS);              /* alice's password, not default's */
    rx(rc, NOAUTH, "PING");
    rx(rc, "+OK", "AUTH %s %s", USER, PASS);
    rx(rc, "+PONG", "PING");
    redisFree(rc);

    rc = resp_conn();
    rx(rc, "+OK", "AUTH %s", DEFAULT_PASS);          /* the file's "default" entry */
    rx(rc, "+OK", "SET k v");
    redisFree(rc);

    rc = resp_conn();
    rx(rc, WRONGPASS, "HELLO 2 AUTH %s %s", USER, "nope");
    rx(rc, "*14", "HELLO 2 AUTH %s %s", USER, PASS);
    rx(rc, "$v", "GET k");
    redisFree(rc);
}
END_TEST

START_TEST(test_resp_on_memcached_port_needs_auth_too)
{
    /* a RESP client detected on the memcached port is no way around -Y */
    int fd = conn();
    KH_EXPECT(fd, "*1\r\n$4\r\nPING\r\n", NOAUTH "\r\n");
    KH_EXPECT(fd, "*3\r\n$4\r\nAUTH\r\n$5\r\n" USER "\r\n$11\r\n" PASS "\r\n", "+OK\r\n");
    KH_EXPECT(fd, "*1\r\n$4\r\nPING\r\n", "+PONG\r\n");
    close(fd);
}
END_TEST

START_TEST(test_resp_requirepass_and_config_set)
{
    redisContext *rc = resp_conn();
    rx(rc, NOAUTH, "PING");
    rx(rc, WRONGPASS, "AUTH nope");
    rx(rc, WRONGPASS, "AUTH %s %s", USER, PASS);     /* no file: only "default" */
    rx(rc, "+OK", "AUTH %s", PASS);
    rx(rc, "+OK", "AUTH default %s", PASS);
    rx(rc, "+PONG", "PING");
    rx(rc, "+OK", "CONFIG SET requirepass newpass");
    rx(rc, "+PONG", "PING");                         /* this client stays in */
    redisContext *rc2 = resp_conn();
    rx(rc2, WRONGPASS, "AUTH %s", PASS);
    rx(rc2, "+OK", "AUTH newpass");
    redisFree(rc2);
    rx(rc, "+OK", "CONFIG SET requirepass %s", "");
    rc2 = resp_conn();
    rx(rc2, "+PONG", "PING");                        /* no password any more */
    redisFree(rc2);
    redisFree(rc);
    /* the memcached text port is not guarded by requirepass */
    int fd = conn();
    KH_EXPECT(fd, "get k\r\n", "END\r\n");
    close(fd);
}
END_TEST

START_TEST(test_resp_redis_cli_with_password)
{
    if (access("/usr/bin/redis-cli", X_OK) != 0)
        return;   /* optional tool */
    char cmd[256], out[256] = "";
    snprintf(cmd, sizeof(cmd),
             "/usr/bin/redis-cli --no-auth-warning -h 127.0.0.1 -p %d -a '%s' PING 2>&1",
             g_resp_port, PASS);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    pclose(p);
    ck_assert_str_eq(out, "PONG\n");
    snprintf(cmd, sizeof(cmd), "/usr/bin/redis-cli -h 127.0.0.1 -p %d PING 2>&1", g_resp_port);
    p = popen(cmd, "r");
    n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    pclose(p);
    ck_assert_msg(strstr(out, "NOAUTH") != NULL, "redis-cli without -a: %s", out);
}
END_TEST

START_TEST(test_no_auth_configured_behaves_as_before)
{
    redisContext *rc = resp_conn();
    rx(rc, "+PONG", "PING");
    rx(rc, "-ERR AUTH <password> called without any password configured for the default "
           "user. Are you sure your configuration is correct?", "AUTH x");
    rx(rc, "+OK", "AUTH default anything");
    redisFree(rc);
    int fd = conn();
    KH_EXPECT(fd, "get k\r\n", "END\r\n");
    char buf[16384], val[64];
    ck_assert(kh_stats_fetch(fd, "stats settings", buf, sizeof(buf)) > 0);
    ck_assert(kh_stats_find(buf, "auth_enabled_ascii", val, sizeof(val)));
    ck_assert_str_eq(val, "no");
    ck_assert(kh_stats_find(buf, "auth_enabled_sasl", val, sizeof(val)));
    ck_assert_str_eq(val, "no");
    close(fd);
    fd = conn();
    uint8_t req[64];
    size_t n = frame(req, 0x20, "", 0, "", 0);   /* no SASL without a file */
    bin_expect(fd, req, n, 0x20, 0x81, "Unknown command");
    close(fd);
}
END_TEST

/* ---- start-up and logs ---- */

START_TEST(test_sasl_without_password_file_is_refused)
{
    const char *args[] = {"-p", "0", "-S", NULL};
    char out[1024];
    unsetenv("MEMCACHED_SASL_PWDB");
    int st = kh_run_capture(args, out, sizeof(out), kh_scale_ms(5000));
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 64, "status 0x%x: %s", st, out);
    ck_assert_ptr_nonnull(strstr(out, "-S needs a password file"));
}
END_TEST

START_TEST(test_malformed_authfile_error_does_not_show_the_line)
{
    char path[] = "/tmp/kioku-auth-bad-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    const char data[] = "alice:ok\nTopSecretWithoutColon\n";
    ck_assert_int_eq(write(fd, data, sizeof(data) - 1), (ssize_t)(sizeof(data) - 1));
    close(fd);
    const char *args[] = {"-p", "0", "-Y", path, NULL};
    char out[1024];
    int st = kh_run_capture(args, out, sizeof(out), kh_scale_ms(5000));
    unlink(path);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) != 0, "status 0x%x", st);
    ck_assert_ptr_nonnull(strstr(out, "line 2"));
    ck_assert_ptr_null(strstr(out, "TopSecret"));
}
END_TEST

/* -S alone takes memcached's MEMCACHED_SASL_PWDB, and the file then
 * guards the text protocol too (no way around SASL through it). */
START_TEST(test_sasl_flag_takes_memcached_pwdb_variable)
{
    struct kh_server srv;
    const char *args[] = {"-S", NULL};
    setenv("MEMCACHED_SASL_PWDB", g_pwfile, 1);
    kh_server_must_start(&srv, args);
    unsetenv("MEMCACHED_SASL_PWDB");
    uint8_t req[256];
    int fd = kh_connect(srv.port);
    ck_assert_int_ge(fd, 0);
    size_t n = frame(req, 0x21, "PLAIN", 5, plain_ok, sizeof(plain_ok) - 1);
    bin_expect(fd, req, n, 0x21, 0, "Authenticated");
    close(fd);
    fd = kh_connect(srv.port);
    KH_EXPECT(fd, "get k\r\n", "CLIENT_ERROR unauthenticated\r\n");
    close(fd);
    kh_server_must_exit_cleanly(&srv, kh_scale_ms(10000));
}
END_TEST

/* Run kioku -vvv with its output in a file, authenticate (and fail) by
 * every protocol, stop it, and look for the passwords in what it wrote. */
START_TEST(test_passwords_never_appear_in_verbose_output)
{
    char logpath[] = "/tmp/kioku-auth-log-XXXXXX", port[16], rport[16];
    int logfd = mkstemp(logpath);
    ck_assert_int_ge(logfd, 0);
    int p = free_port(), rp = free_port();
    snprintf(port, sizeof(port), "%d", p);
    snprintf(rport, sizeof(rport), "%d", rp);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(logfd, 1);
        dup2(logfd, 2);
        /* kioku, like memcached, refuses to run as root without -u */
        const char *user = geteuid() == 0 ? "root" : "";
        if (user[0] != '\0')
            execl(kh_server_bin(), kh_server_bin(), "-p", port, "-l", "127.0.0.1", "-U", "0",
                  "-vvv", "-Y", g_pwfile, "--resp-port", rport, "-u", user, (char *)NULL);
        else
            execl(kh_server_bin(), kh_server_bin(), "-p", port, "-l", "127.0.0.1", "-U", "0",
                  "-vvv", "-Y", g_pwfile, "--resp-port", rport, (char *)NULL);
        _exit(127);
    }
    int fd = -1;
    for (int i = 0; i < 200 && fd < 0; i++) {
        fd = kh_connect(p);
        if (fd < 0)
            usleep(20000);
    }
    ck_assert_int_ge(fd, 0);
    KH_EXPECT(fd, "set x 0 0 12\r\n" USER " wrong!\r\n", "CLIENT_ERROR authentication failure\r\n");
    KH_EXPECT(fd, AUTH_SET, "STORED\r\n");
    close(fd);
    uint8_t req[256];
    fd = kh_connect(p);
    size_t n = frame(req, 0x21, "PLAIN", 5, plain_ok, sizeof(plain_ok) - 1);
    bin_expect(fd, req, n, 0x21, 0, "Authenticated");
    close(fd);
    fd = kh_connect(rp);
    KH_EXPECT(fd, "AUTH " DEFAULT_PASS "\r\n", "+OK\r\n");
    KH_EXPECT(fd, "*3\r\n$4\r\nAUTH\r\n$5\r\n" USER "\r\n$4\r\nnope\r\n", WRONGPASS "\r\n");
    close(fd);
    kill(pid, SIGTERM);
    int st;
    waitpid(pid, &st, 0);
    char log[65536];
    ssize_t got = pread(logfd, log, sizeof(log) - 1, 0);
    close(logfd);
    unlink(logpath);
    ck_assert_int_ge(got, 0);
    log[got] = '\0';
    ck_assert_msg(strstr(log, PASS) == NULL && strstr(log, DEFAULT_PASS) == NULL &&
                  strstr(log, "wrong!") == NULL && strstr(log, "nope") == NULL,
                  "a password in the server's output:\n%s", log);
}
END_TEST

static Suite *auth_suite(void)
{
    Suite *s = suite_create("auth");
    TCase *tc = tcase_create("authfile");
    tcase_add_unchecked_fixture(tc, start_authfile, stop);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_text_commands_before_auth_get_client_error_and_stay_open);
    tcase_add_test(tc, test_text_short_line_before_auth_closes_like_memcached);
    tcase_add_test(tc, test_text_wrong_password_fails_and_keeps_client_locked);
    tcase_add_test(tc, test_text_malformed_tokens_get_memcached_errors);
    tcase_add_test(tc, test_text_token_split_across_reads_authenticates);
    tcase_add_test(tc, test_stats_settings_report_auth_like_memcached);
    tcase_add_test(tc, test_binary_sasl_plain_unlocks_after_list_mechs);
    tcase_add_test(tc, test_binary_command_before_auth_gets_auth_error_and_close);
    tcase_add_test(tc, test_binary_sasl_rejects_other_mechanisms_and_step);
    tcase_add_test(tc, test_libmemcached_sasl_client_authenticates);
    tcase_add_test(tc, test_resp_authfile_users_and_default_entry);
    tcase_add_test(tc, test_resp_on_memcached_port_needs_auth_too);
    suite_add_tcase(s, tc);

    tc = tcase_create("requirepass");
    tcase_add_checked_fixture(tc, start_requirepass, stop);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_resp_requirepass_and_config_set);
    tcase_add_test(tc, test_resp_redis_cli_with_password);
    suite_add_tcase(s, tc);

    tc = tcase_create("open");
    tcase_add_checked_fixture(tc, start_open, stop);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_no_auth_configured_behaves_as_before);
    suite_add_tcase(s, tc);

    tc = tcase_create("startup");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_sasl_without_password_file_is_refused);
    tcase_add_test(tc, test_malformed_authfile_error_does_not_show_the_line);
    tcase_add_test(tc, test_sasl_flag_takes_memcached_pwdb_variable);
    tcase_add_test(tc, test_passwords_never_appear_in_verbose_output);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (!kh_server_is_kioku()) {
        fprintf(stderr, "check_auth: %s is not kioku; skipped\n", kh_server_bin());
        return 77;
    }
    snprintf(g_pwfile, sizeof(g_pwfile), "/tmp/kioku-auth-XXXXXX");
    int fd = mkstemp(g_pwfile);
    if (fd < 0)
        return 99;
    const char data[] = USER ":" PASS "\nbob:other\ndefault:" DEFAULT_PASS "\n";
    if (write(fd, data, sizeof(data) - 1) != (ssize_t)(sizeof(data) - 1))
        return 99;
    close(fd);
    SRunner *sr = srunner_create(auth_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    unlink(g_pwfile);
    return failed == 0 ? 0 : 1;
}
