/*
 * Integration-test harness (see harness.h for the contract).
 *
 * Process control: the server is fork()+exec()ed with PR_SET_PDEATHSIG so
 * that it cannot outlive a test process that is killed (Check kills a test
 * that times out with SIGKILL, which runs neither teardown nor atexit). A
 * small registry of {server pid, owner pid} lets the atexit handler stop
 * what this very process started, and nothing a parent or sibling started
 * (Check forks one child per test, and children inherit atexit handlers).
 *
 * Port choice: the kernel picks a free port for a throw-away socket bound to
 * 127.0.0.1:0; the socket is closed and the server is told to use that port.
 * Another process may grab it in between, so a server that exits during
 * start-up is retried on a fresh port, a bounded number of times.
 *
 * I/O: every socket operation is preceded by poll() against one deadline,
 * so no helper can block longer than the timeout it was given.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem, MSG_NOSIGNAL */
#endif

#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#define KH_MAX_SERVERS 32
#define KH_MAX_ARGS 64
#define KH_START_ATTEMPTS 8
#define KH_START_TIMEOUT_MS 20000

struct kh_reg {
    pid_t pid;
    pid_t owner;
};

static struct kh_reg g_reg[KH_MAX_SERVERS];
static bool g_atexit_done;

/* ---- time ---------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining_ms(int64_t deadline)
{
    int64_t left = deadline - now_ms();
    if (left < 0)
        return 0;
    return left > 60000 ? 60000 : (int)left;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

int kh_scale_ms(int base_ms)
{
    const char *m = getenv("CK_TIMEOUT_MULTIPLIER");
    double f = m ? strtod(m, NULL) : 1.0;
    if (!(f >= 1.0))
        f = 1.0;
    if (f > 100.0)
        f = 100.0;
    return (int)(base_ms * f);
}

/* ---- registry ------------------------------------------------------------ */

static void kill_registered(void)
{
    pid_t me = getpid();
    for (int i = 0; i < KH_MAX_SERVERS; i++) {
        if (g_reg[i].pid > 0 && g_reg[i].owner == me) {
            kill(g_reg[i].pid, SIGKILL);
            waitpid(g_reg[i].pid, NULL, 0);
            g_reg[i].pid = 0;
        }
    }
}

static void reg_add(pid_t pid)
{
    if (!g_atexit_done) {
        atexit(kill_registered);
        g_atexit_done = true;
    }
    for (int i = 0; i < KH_MAX_SERVERS; i++) {
        if (g_reg[i].pid == 0) {
            g_reg[i].pid = pid;
            g_reg[i].owner = getpid();
            return;
        }
    }
    /* Full: PR_SET_PDEATHSIG still reaps it when this process dies. */
}

static void reg_del(pid_t pid)
{
    for (int i = 0; i < KH_MAX_SERVERS; i++)
        if (g_reg[i].pid == pid)
            g_reg[i].pid = 0;
}

/* ---- binary -------------------------------------------------------------- */

const char *kh_server_bin(void)
{
    const char *bin = getenv("KIOKU_BIN");
    if (bin == NULL || *bin == '\0') {
        fprintf(stderr, "harness: KIOKU_BIN is not set (path of the server "
                        "binary to test)\n");
        exit(2);
    }
    return bin;
}

bool kh_server_is_kioku(void)
{
    const char *bin = kh_server_bin();
    size_t n = strlen(bin);
    return n >= 5 && strcmp(bin + n - 5, "kioku") == 0;
}

/*
 * fork+exec the binary. out_fd >= 0 receives stdout and stderr; otherwise
 * they are inherited (server diagnostics land in the test log).
 */
static pid_t spawn(const char *const *argv, int out_fd)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return pid;

#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
    if (getppid() != parent)
        _exit(126);
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0)
        dup2(devnull, STDIN_FILENO);
    if (out_fd >= 0) {
        dup2(out_fd, STDOUT_FILENO);
        dup2(out_fd, STDERR_FILENO);
    }
    /* Do not leak the test's client sockets into the server. */
    for (int fd = 3; fd < 1024; fd++)
        close(fd);
    signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execvp(argv[0], (char *const *)argv);
    _exit(127);
}

/* ---- sockets ------------------------------------------------------------- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static int connect_timeout(int port, int timeout_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (errno != EINPROGRESS)
            goto fail;
        struct pollfd p = { fd, POLLOUT, 0 };
        if (poll(&p, 1, timeout_ms) != 1)
            goto fail;
        int err = 0;
        socklen_t el = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0)
            goto fail;
    }
    fcntl(fd, F_SETFL, fl);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
fail:
    close(fd);
    return -1;
}

int kh_connect(int port)
{
    return connect_timeout(port, kh_scale_ms(KH_IO_TIMEOUT_MS));
}

static int send_deadline(int fd, const void *buf, size_t n, int64_t deadline)
{
    const char *p = buf;
    while (n > 0) {
        struct pollfd pf = { fd, POLLOUT, 0 };
        int r = poll(&pf, 1, remaining_ms(deadline));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int kh_send_all(int fd, const void *buf, size_t n)
{
    return send_deadline(fd, buf, n, now_ms() + kh_scale_ms(KH_IO_TIMEOUT_MS));
}

/*
 * One bounded receive: >0 bytes, 0 on timeout, -1 when the peer closed or
 * reset (or another error).
 */
static ssize_t recv_deadline(int fd, void *buf, size_t n, int64_t deadline)
{
    for (;;) {
        struct pollfd pf = { fd, POLLIN, 0 };
        int r = poll(&pf, 1, remaining_ms(deadline));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return 0;
        ssize_t got = recv(fd, buf, n, MSG_DONTWAIT);
        if (got > 0)
            return got;
        if (got == 0)
            return -1;
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
            continue;
        return -1;
    }
}

size_t kh_read_until(int fd, char *buf, size_t cap, const char *term,
                     int timeout_ms, bool *closed)
{
    int64_t deadline = now_ms() + timeout_ms;
    size_t len = 0, tl = strlen(term);
    if (closed)
        *closed = false;
    if (cap == 0)
        return 0;
    buf[0] = '\0';
    while (len + 1 < cap) {
        ssize_t r = recv_deadline(fd, buf + len, cap - 1 - len, deadline);
        if (r == 0)
            break;
        if (r < 0) {
            if (closed)
                *closed = true;
            break;
        }
        size_t from = len >= tl ? len - tl + 1 : 0;
        len += (size_t)r;
        buf[len] = '\0';
        if (memmem(buf + from, len - from, term, tl) != NULL)
            break;
    }
    return len;
}

size_t kh_read_n(int fd, void *buf, size_t n, int timeout_ms, bool *closed)
{
    int64_t deadline = now_ms() + timeout_ms;
    size_t len = 0;
    if (closed)
        *closed = false;
    while (len < n) {
        ssize_t r = recv_deadline(fd, (char *)buf + len, n - len, deadline);
        if (r == 0)
            break;
        if (r < 0) {
            if (closed)
                *closed = true;
            break;
        }
        len += (size_t)r;
    }
    return len;
}

bool kh_wait_closed(int fd, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    char sink[16384];
    for (;;) {
        ssize_t r = recv_deadline(fd, sink, sizeof sink, deadline);
        if (r < 0)
            return true;
        if (r == 0)
            return false;
    }
}

void kh_escape(const void *data, size_t n, char *out, size_t outcap)
{
    const unsigned char *p = data;
    size_t o = 0;
    if (outcap == 0)
        return;
    for (size_t i = 0; i < n; i++) {
        char tmp[8];
        unsigned char c = p[i];
        if (c == '\r')
            strcpy(tmp, "\\r");
        else if (c == '\n')
            strcpy(tmp, "\\n");
        else if (c == '\\')
            strcpy(tmp, "\\\\");
        else if (c >= 0x20 && c < 0x7f)
            tmp[0] = (char)c, tmp[1] = '\0';
        else
            snprintf(tmp, sizeof tmp, "\\x%02x", c);
        size_t tl = strlen(tmp);
        if (o + tl + 4 >= outcap) {
            if (o + 4 <= outcap - 1)
                strcpy(out + o, "..."), o += 3;
            break;
        }
        memcpy(out + o, tmp, tl);
        o += tl;
    }
    out[o] = '\0';
}

/* Explain a mismatch: request, expected and received bytes, each escaped. */
static void explain(char *why, size_t whycap, const char *what,
                    const void *req, size_t reqlen, const void *want,
                    size_t wantlen, const void *got, size_t gotlen)
{
    char r[700], w[1200], g[1200];
    kh_escape(req, reqlen, r, sizeof r);
    kh_escape(want, wantlen, w, sizeof w);
    kh_escape(got, gotlen, g, sizeof g);
    snprintf(why, whycap, "%s\n  request:  \"%s\"\n  expected: \"%s\"\n"
             "  received: \"%s\" (%zu of %zu bytes)", what, r, w, g, gotlen,
             wantlen);
}

bool kh_transact(int fd, const void *req, size_t reqlen, const void *want,
                 size_t wantlen, char *why, size_t whycap)
{
    int64_t deadline = now_ms() + kh_scale_ms(KH_IO_TIMEOUT_MS);
    size_t cap = wantlen + 512;
    char *got = malloc(cap);
    size_t len = 0;
    bool ok = false;
    const char *what = NULL;

    if (got == NULL) {
        snprintf(why, whycap, "out of memory");
        return false;
    }
    if (reqlen > 0 && send_deadline(fd, req, reqlen, deadline) != 0) {
        what = "could not send the request (connection closed?)";
        goto out;
    }
    while (len < wantlen) {
        ssize_t r = recv_deadline(fd, got + len, wantlen - len, deadline);
        if (r == 0) {
            what = "timed out waiting for the full reply";
            goto out;
        }
        if (r < 0) {
            what = "connection closed before the full reply";
            goto out;
        }
        if (memcmp(got + len, (const char *)want + len, (size_t)r) != 0) {
            len += (size_t)r;
            /* Collect a little more so the message shows the whole line. */
            int64_t more = now_ms() + 200;
            while (len < cap) {
                ssize_t m = recv_deadline(fd, got + len, cap - len, more);
                if (m <= 0)
                    break;
                len += (size_t)m;
            }
            what = "reply differs";
            goto out;
        }
        len += (size_t)r;
    }
    /* Anything already queued beyond the expected reply is a failure. */
    ssize_t extra = recv(fd, got + len, cap - len, MSG_PEEK | MSG_DONTWAIT);
    if (extra > 0) {
        extra = recv(fd, got + len, cap - len, MSG_DONTWAIT);
        if (extra > 0)
            len += (size_t)extra;
        what = "unexpected bytes after the expected reply";
        goto out;
    }
    ok = true;
out:
    if (!ok)
        explain(why, whycap, what, req, reqlen, want, wantlen, got, len);
    free(got);
    return ok;
}

bool kh_transact_silent(int fd, const void *req, size_t reqlen, char *why,
                        size_t whycap)
{
    int64_t deadline = now_ms() + kh_scale_ms(KH_IO_TIMEOUT_MS);
    char got[2048];
    bool closed = false;
    static const char ver[] = "version\r\n";

    if (send_deadline(fd, req, reqlen, deadline) != 0 ||
        send_deadline(fd, ver, sizeof ver - 1, deadline) != 0) {
        explain(why, whycap, "could not send the request", req, reqlen,
                "VERSION ...\r\n", 13, "", 0);
        return false;
    }
    size_t len = kh_read_until(fd, got, sizeof got, "\r\n",
                               remaining_ms(deadline), &closed);
    /* Give a stray reply that arrived in pieces a moment to show up. */
    if (len >= 2 && memcmp(got + len - 2, "\r\n", 2) == 0) {
        ssize_t extra = recv(fd, got + len, sizeof got - 1 - len,
                             MSG_DONTWAIT);
        if (extra > 0)
            len += (size_t)extra;
    }
    char *eol = memmem(got, len, "\r\n", 2);
    if (len >= 10 && memcmp(got, "VERSION ", 8) == 0 && eol != NULL &&
        (size_t)(eol - got) + 2 == len)
        return true;
    explain(why, whycap,
            closed ? "expected no reply, then the VERSION line; connection "
                     "closed"
                   : "expected no reply (noreply), then only the VERSION line",
            req, reqlen, "VERSION ...\r\n", 13, got, len);
    return false;
}

/* ---- text-protocol conveniences ----------------------------------------- */

int kh_get(int fd, const char *key, void *val, size_t valcap, size_t *vlen,
           uint32_t *flags, char *why, size_t whycap)
{
    int64_t deadline = now_ms() + kh_scale_ms(KH_IO_TIMEOUT_MS);
    char req[600];
    size_t cap = valcap + 600;
    char *buf = malloc(cap);
    int rc = -1;
    bool closed;

    if (buf == NULL) {
        snprintf(why, whycap, "out of memory");
        return -1;
    }
    snprintf(req, sizeof req, "get %s\r\n", key);
    if (send_deadline(fd, req, strlen(req), deadline) != 0) {
        snprintf(why, whycap, "get %s: send failed", key);
        goto out;
    }
    size_t len = kh_read_until(fd, buf, cap, "\r\n", remaining_ms(deadline),
                               &closed);
    char *eol = memmem(buf, len, "\r\n", 2);
    if (eol == NULL) {
        explain(why, whycap, "no reply line", req, strlen(req), "", 0, buf,
                len);
        goto out;
    }
    if (eol == buf + 3 && memcmp(buf, "END", 3) == 0 && len == 5) {
        rc = 0;
        goto out;
    }
    char rkey[300];
    unsigned long fl;
    size_t bytes;
    int used = 0;
    *eol = '\0';
    if (sscanf(buf, "VALUE %299s %lu %zu%n", rkey, &fl, &bytes, &used) != 3 ||
        buf + used != eol || strcmp(rkey, key) != 0 || bytes > valcap) {
        *eol = '\r';
        explain(why, whycap, "malformed or unexpected VALUE line", req,
                strlen(req), "VALUE <key> <flags> <bytes>\r\n", 30, buf, len);
        goto out;
    }
    *eol = '\r';
    size_t head = (size_t)(eol - buf) + 2;
    size_t need = head + bytes + 7; /* data, "\r\n", "END\r\n" */
    if (len < need)
        len += kh_read_n(fd, buf + len, need - len, remaining_ms(deadline),
                         &closed);
    if (len != need || memcmp(buf + head + bytes, "\r\nEND\r\n", 7) != 0) {
        explain(why, whycap, "value block not followed by \\r\\nEND\\r\\n "
                "(or short/extra data)", req, strlen(req), "", 0, buf, len);
        goto out;
    }
    memcpy(val, buf + head, bytes);
    *vlen = bytes;
    if (flags)
        *flags = (uint32_t)fl;
    rc = 1;
out:
    free(buf);
    return rc;
}

size_t kh_stats_fetch(int fd, const char *cmd, char *buf, size_t cap)
{
    char req[256];
    bool closed;
    snprintf(req, sizeof req, "%s\r\n", cmd);
    if (kh_send_all(fd, req, strlen(req)) != 0)
        return 0;
    size_t len = 0;
    int64_t deadline = now_ms() + kh_scale_ms(KH_IO_TIMEOUT_MS);
    /* "END\r\n" may also close a stat value; only a whole line counts. */
    while (len + 1 < cap) {
        len += kh_read_until(fd, buf + len, cap - len, "END\r\n",
                             remaining_ms(deadline), &closed);
        if (len >= 5 && strcmp(buf + len - 5, "END\r\n") == 0 &&
            (len == 5 || (len >= 7 && buf[len - 7] == '\r' &&
                          buf[len - 6] == '\n')))
            return len;
        if (closed || remaining_ms(deadline) == 0)
            return 0;
    }
    return 0;
}

bool kh_stats_find(const char *stats, const char *name, char *val, size_t cap)
{
    size_t nl = strlen(name);
    const char *p = stats;
    while ((p = strstr(p, "STAT ")) != NULL) {
        if ((p == stats || p[-1] == '\n') && strncmp(p + 5, name, nl) == 0 &&
            p[5 + nl] == ' ') {
            const char *v = p + 5 + nl + 1;
            const char *e = strstr(v, "\r\n");
            if (e == NULL)
                return false;
            size_t n = (size_t)(e - v);
            if (n >= cap)
                n = cap - 1;
            memcpy(val, v, n);
            val[n] = '\0';
            return true;
        }
        p += 5;
    }
    return false;
}

long long kh_stats_num(const char *stats, const char *name)
{
    char v[64], *end;
    if (!kh_stats_find(stats, name, v, sizeof v) || v[0] == '\0')
        return -1;
    long long n = strtoll(v, &end, 10);
    return *end == '\0' ? n : -1;
}

/* ---- server lifecycle ---------------------------------------------------- */

/* Does the server at port answer "version"? */
static bool answers_version(int port, int timeout_ms)
{
    int fd = connect_timeout(port, timeout_ms);
    if (fd < 0)
        return false;
    char buf[256];
    bool closed, ok = false;
    int64_t deadline = now_ms() + timeout_ms;
    if (send_deadline(fd, "version\r\n", 9, deadline) == 0) {
        size_t n = kh_read_until(fd, buf, sizeof buf, "\r\n", timeout_ms,
                                 &closed);
        /* A server in -Y mode answers before authentication too. */
        ok = (n >= 10 && memcmp(buf, "VERSION ", 8) == 0) ||
             (n >= 28 && memcmp(buf, "CLIENT_ERROR unauthenticated", 28) == 0);
    }
    close(fd);
    return ok;
}

static void reap_if_exited(struct kh_server *srv)
{
    int st;
    if (srv->pid > 0 && !srv->exited && waitpid(srv->pid, &st, WNOHANG) ==
        srv->pid) {
        srv->exited = true;
        srv->status = st;
    }
}

/*
 * Liveness of a server this process did not start (a Check test child
 * looking at the server its parent started): it must exist and not be a
 * zombie waiting for the parent to reap it.
 */
static bool foreign_alive(pid_t pid)
{
    if (kill(pid, 0) != 0)
        return false;
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return true; /* no procfs: trust kill() */
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')');
    return rp == NULL || rp[1] != ' ' || (rp[2] != 'Z' && rp[2] != 'X');
}

int kh_server_start(struct kh_server *srv, const char *const *extra)
{
    const char *bin = kh_server_bin();
    signal(SIGPIPE, SIG_IGN);
    memset(srv, 0, sizeof *srv);

    for (int attempt = 0; attempt < KH_START_ATTEMPTS; attempt++) {
        const char *argv[KH_MAX_ARGS];
        char portstr[16];
        int port = free_port(), n = 0;
        if (port <= 0)
            continue;
        snprintf(portstr, sizeof portstr, "%d", port);
        argv[n++] = bin;
        argv[n++] = "-p";
        argv[n++] = portstr;
        argv[n++] = "-l";
        argv[n++] = "127.0.0.1";
        argv[n++] = "-U";
        argv[n++] = "0";
        /* memcached and kioku refuse to run as root without -u. -u root,
         * not nobody: a change of uid clears PR_SET_PDEATHSIG, which stops
         * the server of a test that dies (-u nobody has its own test). */
        if (geteuid() == 0) {
            argv[n++] = "-u";
            argv[n++] = "root";
        }
        /* KIOKU_EXTRA_ARGS: options every kioku of a run gets, to run the
         * whole suite in another mode (KIOKU_EXTRA_ARGS='-o io_uring'). */
        char extra_env[256] = "";
        const char *env = getenv("KIOKU_EXTRA_ARGS");
        if (env != NULL && kh_server_is_kioku() && strlen(env) < sizeof extra_env) {
            strcpy(extra_env, env);
            for (char *save = NULL, *tok = strtok_r(extra_env, " ", &save);
                 tok != NULL && n < KH_MAX_ARGS - 1; tok = strtok_r(NULL, " ", &save))
                argv[n++] = tok;
        }
        for (int i = 0; extra && extra[i] && n < KH_MAX_ARGS - 1; i++)
            argv[n++] = extra[i];
        argv[n] = NULL;

        pid_t pid = spawn(argv, -1);
        if (pid < 0) {
            perror("harness: fork");
            return -1;
        }
        reg_add(pid);
        srv->pid = pid;
        srv->port = port;
        srv->exited = false;

        int64_t deadline = now_ms() + kh_scale_ms(KH_START_TIMEOUT_MS);
        while (remaining_ms(deadline) > 0) {
            reap_if_exited(srv);
            if (srv->exited)
                break;
            if (answers_version(port, 1000)) {
                reap_if_exited(srv);
                if (!srv->exited)
                    return 0;
                break;
            }
            sleep_ms(20);
        }
        reg_del(pid);
        if (!srv->exited) {
            fprintf(stderr, "harness: %s did not answer on port %d within "
                            "%d ms\n", bin, port,
                    kh_scale_ms(KH_START_TIMEOUT_MS));
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            srv->pid = 0;
            return -1;
        }
        srv->pid = 0;
        if (WIFEXITED(srv->status) && WEXITSTATUS(srv->status) == 127) {
            fprintf(stderr, "harness: cannot execute %s\n", bin);
            return -1;
        }
        fprintf(stderr, "harness: server exited during start-up on port %d "
                        "(status 0x%x), retrying\n", port, srv->status);
    }
    return -1;
}

bool kh_server_alive(struct kh_server *srv)
{
    if (srv->pid <= 0 || srv->exited)
        return false;
    int st;
    pid_t w = waitpid(srv->pid, &st, WNOHANG);
    if (w == srv->pid) {
        srv->exited = true;
        srv->status = st;
        return false;
    }
    if (w < 0 && errno == ECHILD)
        return foreign_alive(srv->pid);
    return true;
}

int kh_server_wait_exit(struct kh_server *srv, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        reap_if_exited(srv);
        if (srv->exited)
            return srv->status;
        if (srv->pid <= 0 || remaining_ms(deadline) == 0)
            return -1;
        sleep_ms(10);
    }
}

int kh_server_stop(struct kh_server *srv, int timeout_ms)
{
    if (srv->pid <= 0)
        return -1;
    reap_if_exited(srv);
    if (!srv->exited) {
        kill(srv->pid, SIGTERM);
        if (kh_server_wait_exit(srv, timeout_ms) == -1) {
            fprintf(stderr, "harness: server %d ignored SIGTERM for %d ms; "
                            "sending SIGKILL\n", (int)srv->pid, timeout_ms);
            kill(srv->pid, SIGKILL);
            int st = 0;
            waitpid(srv->pid, &st, 0);
            srv->exited = true;
            srv->status = st;
        }
    }
    reg_del(srv->pid);
    srv->pid = 0;
    return srv->status;
}

int kh_run_capture(const char *const *args, char *out, size_t outcap,
                   int timeout_ms)
{
    const char *argv[KH_MAX_ARGS];
    int n = 0, pfd[2];
    argv[n++] = kh_server_bin();
    for (int i = 0; args && args[i] && n < KH_MAX_ARGS - 1; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    if (outcap > 0)
        out[0] = '\0';
    if (pipe(pfd) != 0)
        return -1;
    pid_t pid = spawn(argv, pfd[1]);
    close(pfd[1]);
    if (pid < 0) {
        close(pfd[0]);
        return -1;
    }
    reg_add(pid);
    int64_t deadline = now_ms() + timeout_ms;
    size_t len = 0;
    char sink[512];
    for (;;) {
        struct pollfd pf = { pfd[0], POLLIN, 0 };
        int r = poll(&pf, 1, remaining_ms(deadline));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        ssize_t got;
        if (len + 1 < outcap)
            got = read(pfd[0], out + len, outcap - 1 - len);
        else
            got = read(pfd[0], sink, sizeof sink);
        if (got <= 0)
            break;
        if (len + 1 < outcap) {
            len += (size_t)got;
            out[len] = '\0';
        }
    }
    close(pfd[0]);
    int st = 0;
    for (;;) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid)
            break;
        if (remaining_ms(deadline) == 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            st = -1;
            break;
        }
        sleep_ms(10);
    }
    reg_del(pid);
    return st;
}

/* ---- libmemcached -------------------------------------------------------- */

memcached_st *kh_memc_create(int port)
{
    memcached_st *m = memcached_create(NULL);
    if (m == NULL)
        return NULL;
    uint64_t ms = (uint64_t)kh_scale_ms(KH_IO_TIMEOUT_MS);
    if (memcached_server_add(m, "127.0.0.1", (in_port_t)port) !=
            MEMCACHED_SUCCESS ||
        memcached_behavior_set(m, MEMCACHED_BEHAVIOR_BINARY_PROTOCOL, 0) !=
            MEMCACHED_SUCCESS) {
        memcached_free(m);
        return NULL;
    }
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, ms);
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_POLL_TIMEOUT, ms);
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_RCV_TIMEOUT, ms * 1000);
    memcached_behavior_set(m, MEMCACHED_BEHAVIOR_SND_TIMEOUT, ms * 1000);
    return m;
}

Suite *kh_group_suite(const char *name, const struct kh_group *groups, size_t ngroups,
                      const struct kh_fixtures *f)
{
    Suite *s = suite_create(name);
    for (size_t g = 0; g < ngroups; g++) {
        TCase *tc = tcase_create(groups[g].name);
        if (groups[g].own_server) {
            tcase_add_checked_fixture(tc, f->own_setup, f->own_teardown);
        } else {
            tcase_add_unchecked_fixture(tc, f->server_start, f->server_stop);
            tcase_add_checked_fixture(tc, f->conn_open, f->conn_close);
        }
        tcase_set_timeout(tc, f->timeout_s);
        for (size_t i = 0; groups[g].tests[i] != NULL; i++)
            tcase_add_test(tc, groups[g].tests[i]);
        suite_add_tcase(s, tc);
    }
    return s;
}

int kh_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

void kh_server_must_start(struct kh_server *srv, const char *const *extra)
{
    ck_assert_msg(kh_server_start(srv, extra) == 0, "could not start %s", kh_server_bin());
}

void kh_server_must_exit_cleanly(struct kh_server *srv, int timeout_ms)
{
    int st = kh_server_stop(srv, timeout_ms);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "server did not exit with status 0 on SIGTERM (wait status 0x%x)", (unsigned)st);
}
