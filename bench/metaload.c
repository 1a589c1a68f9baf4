/*
 * metaload.c - a small load generator for the memcached meta protocol
 * (mg/ms), for bench/mc_ab.sh. memtier_benchmark has no meta protocol.
 *
 * One thread, epoll, N connections to one server. Each connection keeps up
 * to P requests in flight (a sliding window, like memtier's --pipeline):
 * after every read it refills its window in one write. A request is
 * "mg <key> v" (get, value returned) or "ms <key> <size>" + value (set),
 * chosen by a fixed set:get pattern (e.g. 1:10 = one ms in every 11
 * requests, per connection); keys are uniform random in 1..K. Latency is per
 * request: from the start of the batch write that carried it to the read
 * that completed its response (as memtier times pipelined requests); p50/p99 come from a 1 us-resolution histogram.
 *
 * --prefill first sets every key 1..K once (pipelined ms over all
 * connections) so that gets hit; --prefill-only stops after that.
 * The run is bounded by --time seconds and --requests requests, whichever
 * comes first; in-flight requests are then drained for at most 2 s.
 *
 * Build: cc -O2 -o metaload bench/metaload.c
 * Output (last line, for scripts):
 *   RESULT ops=N secs=S ops_s=X p50_us=A p99_us=B gets=G hits=H misses=M
 *          sets=S2 errors=E
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HIST_US 1000000            /* 1 us buckets up to 1 s; one overflow bucket */
#define RBUF 65536

enum { REQ_GET = 0, REQ_SET = 1 };

struct conn {
    int fd;
    int id;
    /* in-flight requests, FIFO ring of P entries */
    uint64_t *sent_ns;
    unsigned char *type;
    int head, count;
    /* output not yet written */
    char *obuf;
    size_t olen, ooff, ocap;
    int want_out;
    /* input not yet parsed */
    char *ibuf;
    size_t ilen;
    /* position in the set:get pattern */
    unsigned long seq;
    uint64_t rng;
};

static const char *host = "127.0.0.1";
static const char *port = "11211";
static int nconns = 25, pipeline = 1, data_size = 32;
static unsigned long nkeys = 100000, ratio_set = 1, ratio_get = 10;
static double run_secs = 10;
static unsigned long long max_requests = 100000000ULL;
static const char *prefix = "memtier-";
static int do_prefill = 0, prefill_only = 0, verbose = 0;

static char *value;                  /* data_size bytes */
static uint32_t *hist;
static uint64_t hist_n;
static unsigned long long n_get, n_hit, n_miss, n_set, n_err, n_done, n_issued;
static int epfd;

static void die(const char *m) { fprintf(stderr, "metaload: %s: %s\n", m, strerror(errno)); exit(2); }
static void fail(const char *m) { fprintf(stderr, "metaload: %s\n", m); exit(2); }

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    return *s = x;
}

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: metaload [options]\n"
        "  -s, --server HOST      server address (default 127.0.0.1)\n"
        "  -p, --port PORT        server port (default 11211)\n"
        "  -c, --conns N          connections (default 25)\n"
        "  -P, --pipeline N       requests in flight per connection (default 1)\n"
        "  -r, --ratio S:G        ms:mg ratio, e.g. 1:10 (default 1:10)\n"
        "  -d, --data-size N      value bytes (default 32)\n"
        "  -k, --keys N           key range 1..N (default 100000)\n"
        "  -x, --key-prefix S     key prefix (default memtier-)\n"
        "  -t, --time S           run seconds (default 10; 0 = prefill only)\n"
        "  -n, --requests N       max requests in the run (default 100000000)\n"
        "      --prefill          set every key once before the run\n"
        "      --prefill-only     set every key once, then exit\n"
        "  -v, --verbose\n");
}

static void parse_args(int argc, char **argv)
{
    static const struct option lo[] = {
        {"server", 1, 0, 's'}, {"port", 1, 0, 'p'}, {"conns", 1, 0, 'c'},
        {"pipeline", 1, 0, 'P'}, {"ratio", 1, 0, 'r'}, {"data-size", 1, 0, 'd'},
        {"keys", 1, 0, 'k'}, {"key-prefix", 1, 0, 'x'}, {"time", 1, 0, 't'},
        {"requests", 1, 0, 'n'}, {"prefill", 0, 0, 1}, {"prefill-only", 0, 0, 2},
        {"verbose", 0, 0, 'v'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int o;
    char *end;
    while ((o = getopt_long(argc, argv, "s:p:c:P:r:d:k:x:t:n:vh", lo, NULL)) != -1) {
        switch (o) {
        case 's': host = optarg; break;
        case 'p': port = optarg; break;
        case 'c': nconns = atoi(optarg); break;
        case 'P': pipeline = atoi(optarg); break;
        case 'r':
            ratio_set = strtoul(optarg, &end, 10);
            if (*end != ':') fail("--ratio must look like 1:10");
            ratio_get = strtoul(end + 1, &end, 10);
            if (*end || ratio_set + ratio_get == 0) fail("--ratio must look like 1:10");
            break;
        case 'd': data_size = atoi(optarg); break;
        case 'k': nkeys = strtoul(optarg, NULL, 10); break;
        case 'x': prefix = optarg; break;
        case 't': run_secs = atof(optarg); break;
        case 'n': max_requests = strtoull(optarg, NULL, 10); break;
        case 1: do_prefill = 1; break;
        case 2: do_prefill = prefill_only = 1; break;
        case 'v': verbose = 1; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind < argc) { usage(stderr); exit(2); }
    if (nconns < 1 || nconns > 10000) fail("--conns must be 1..10000");
    if (pipeline < 1 || pipeline > 4096) fail("--pipeline must be 1..4096");
    if (data_size < 0 || data_size > 60000) fail("--data-size must be 0..60000");
    if (nkeys < 1) fail("--keys must be >= 1");
    if (strlen(prefix) > 200) fail("--key-prefix too long");
    if (run_secs < 0 || run_secs > 86400) fail("--time must be 0..86400");
    if (run_secs == 0) prefill_only = do_prefill = 1;
}

static int connect_one(void)
{
    struct addrinfo hints = {0}, *ai, *a;
    int fd = -1, one = 1, rc;
    hints.ai_socktype = SOCK_STREAM;
    if ((rc = getaddrinfo(host, port, &hints, &ai)) != 0) {
        fprintf(stderr, "metaload: %s:%s: %s\n", host, port, gai_strerror(rc));
        exit(2);
    }
    for (a = ai; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0) continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0) die("connect");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static void set_events(struct conn *c, int want_out)
{
    struct epoll_event ev = {0};
    if (want_out == c->want_out) return;
    ev.events = EPOLLIN | (want_out ? EPOLLOUT : 0);
    ev.data.ptr = c;
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl");
    c->want_out = want_out;
}

/* Append one request to c's output; its send time is filled in by flush. */
static void add_request(struct conn *c, int type, unsigned long key, uint64_t t)
{
    size_t need = strlen(prefix) + 64 + (size_t)data_size;
    int n;
    if (c->olen + need > c->ocap) {
        c->ocap = (c->olen + need) * 2;
        if (!(c->obuf = realloc(c->obuf, c->ocap))) fail("out of memory");
    }
    if (type == REQ_GET) {
        n = sprintf(c->obuf + c->olen, "mg %s%lu v\r\n", prefix, key);
        c->olen += (size_t)n;
    } else {
        n = sprintf(c->obuf + c->olen, "ms %s%lu %d\r\n", prefix, key, data_size);
        c->olen += (size_t)n;
        memcpy(c->obuf + c->olen, value, (size_t)data_size);
        c->olen += (size_t)data_size;
        memcpy(c->obuf + c->olen, "\r\n", 2);
        c->olen += 2;
    }
    c->type[(c->head + c->count) % pipeline] = (unsigned char)type;
    c->sent_ns[(c->head + c->count) % pipeline] = t;
    c->count++;
    n_issued++;
}

/* Write what we can; on EAGAIN wait for EPOLLOUT. */
static int flush_out(struct conn *c)
{
    while (c->ooff < c->olen) {
        ssize_t w = write(c->fd, c->obuf + c->ooff, c->olen - c->ooff);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) { set_events(c, 1); return 0; }
            return -1;
        }
        c->ooff += (size_t)w;
    }
    c->olen = c->ooff = 0;
    set_events(c, 0);
    return 0;
}

static void record(uint64_t lat_ns)
{
    uint64_t us = lat_ns / 1000;
    hist[us < HIST_US ? us : HIST_US]++;
    hist_n++;
}

static double pct_us(double p)
{
    uint64_t want, acc = 0;
    size_t i;
    if (hist_n == 0) return 0;
    want = (uint64_t)(p / 100.0 * (double)hist_n);
    if (want < 1) want = 1;
    for (i = 0; i <= HIST_US; i++) {
        acc += hist[i];
        if (acc >= want) return (double)i + 0.5;   /* bucket middle */
    }
    return HIST_US;
}

/* Parse complete responses in c->ibuf; returns responses completed or -1. */
static int parse_in(struct conn *c, uint64_t t, int measure)
{
    size_t off = 0;
    int done = 0;
    while (off < c->ilen) {
        char *line = c->ibuf + off, *nl;
        size_t avail = c->ilen - off, used;
        int type;
        nl = memchr(line, '\n', avail);
        if (!nl) break;
        used = (size_t)(nl - line) + 1;
        if (c->count == 0) {
            fprintf(stderr, "metaload: unexpected response: %.*s\n", (int)used, line);
            return -1;
        }
        type = c->type[c->head];
        if (avail >= 3 && line[0] == 'V' && line[1] == 'A' && line[2] == ' ') {
            long len = strtol(line + 3, NULL, 10);
            if (len < 0) return -1;
            if (avail < used + (size_t)len + 2) break;     /* value not all here */
            used += (size_t)len + 2;
            n_hit++;
        } else if (avail >= 2 && line[0] == 'E' && line[1] == 'N') {
            n_miss++;
        } else if (avail >= 2 && line[0] == 'H' && line[1] == 'D') {
            if (type == REQ_GET) n_hit++;     /* mg without v flag */
        } else {
            n_err++;
            if (verbose || n_err <= 3)
                fprintf(stderr, "metaload: error reply: %.*s", (int)used, line);
        }
        if (type == REQ_GET) n_get++; else n_set++;
        if (measure) record(t - c->sent_ns[c->head]);
        c->head = (c->head + 1) % pipeline;
        c->count--;
        n_done++;
        done++;
        off += used;
    }
    if (off > 0) {
        memmove(c->ibuf, c->ibuf + off, c->ilen - off);
        c->ilen -= off;
    }
    return done;
}

static int read_in(struct conn *c, int measure)
{
    for (;;) {
        ssize_t r;
        size_t space = RBUF - c->ilen;
        if (space == 0) fail("response larger than the read buffer");
        r = read(c->fd, c->ibuf + c->ilen, space);
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) return 0;
            return -1;
        }
        if (r == 0) { fprintf(stderr, "metaload: server closed connection\n"); return -1; }
        c->ilen += (size_t)r;
        if (parse_in(c, now_ns(), measure) < 0) return -1;
        if ((size_t)r < space) return 0;   /* short read: socket drained */
    }
}

static struct conn *conns;

static void setup(void)
{
    int i;
    if ((epfd = epoll_create1(0)) < 0) die("epoll_create1");
    conns = calloc((size_t)nconns, sizeof *conns);
    if (!conns) fail("out of memory");
    for (i = 0; i < nconns; i++) {
        struct conn *c = &conns[i];
        struct epoll_event ev = {0};
        c->id = i;
        c->fd = connect_one();
        c->sent_ns = calloc((size_t)pipeline, sizeof *c->sent_ns);
        c->type = calloc((size_t)pipeline, 1);
        c->ocap = (size_t)pipeline * (strlen(prefix) + 64 + (size_t)data_size);
        c->obuf = malloc(c->ocap);
        c->ibuf = malloc(RBUF);
        if (!c->sent_ns || !c->type || !c->obuf || !c->ibuf) fail("out of memory");
        c->rng = 0x9E3779B97F4A7C15ULL * (uint64_t)(i + 1) ^ (uint64_t)now_ns();
        if (!c->rng) c->rng = 1;
        c->seq = (unsigned long)i;  /* spread the sets over connections */
        ev.events = EPOLLIN;
        ev.data.ptr = c;
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
    }
}

/* Event loop. mode 0 = prefill (ms of keys 1..K in order), 1 = run. */
static unsigned long prefill_next;

static int want_more(int mode, uint64_t deadline)
{
    if (mode == 0) return prefill_next <= nkeys && now_ns() < deadline;
    return n_issued < max_requests && now_ns() < deadline;
}

static void fill(struct conn *c, int mode, uint64_t deadline)
{
    int added = 0;
    uint64_t t = now_ns();    /* one send time per batch */
    while (c->count < pipeline && want_more(mode, deadline)) {
        if (mode == 0) {
            add_request(c, REQ_SET, prefill_next++, t);
        } else {
            unsigned long period = ratio_set + ratio_get;
            int type = (c->seq++ % period) < ratio_set ? REQ_SET : REQ_GET;
            add_request(c, type, 1 + (unsigned long)(xorshift(&c->rng) % nkeys), t);
        }
        added++;
    }
    if (added && flush_out(c) < 0) die("write");
}

static void loop(int mode, double secs)
{
    struct epoll_event evs[256];
    uint64_t start = now_ns();
    uint64_t deadline = start + (uint64_t)(secs * 1e9);
    uint64_t drain_until = 0;
    int i, inflight;

    for (i = 0; i < nconns; i++) fill(&conns[i], mode, deadline);
    for (;;) {
        int n, tmo = 100;
        inflight = 0;
        for (i = 0; i < nconns; i++) inflight += conns[i].count;
        if (!want_more(mode, deadline)) {
            if (inflight == 0) break;
            if (!drain_until) drain_until = now_ns() + 2000000000ULL;
            if (now_ns() > drain_until) {
                fprintf(stderr, "metaload: %d requests unanswered after 2 s drain\n", inflight);
                break;
            }
        }
        n = epoll_wait(epfd, evs, 256, tmo);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (evs[i].events & EPOLLOUT) {
                if (flush_out(c) < 0) die("write");
            }
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                if (read_in(c, mode == 1) < 0) fail("connection failed");
            }
            if (c->olen == 0) fill(c, mode, deadline);
        }
    }
}

int main(int argc, char **argv)
{
    uint64_t t0, t1;
    double secs;

    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    if (!(value = malloc((size_t)data_size + 1))) fail("out of memory");
    memset(value, 'x', (size_t)data_size);
    if (!(hist = calloc(HIST_US + 1, sizeof *hist))) fail("out of memory");
    setup();

    if (do_prefill) {
        prefill_next = 1;
        t0 = now_ns();
        loop(0, 120);       /* prefill is bounded too */
        t1 = now_ns();
        printf("prefill: %llu sets (%llu errors) in %.3f s\n", n_set, n_err,
               (double)(t1 - t0) / 1e9);
        if (n_err) fail("errors during prefill");
        if (prefill_next <= nkeys) fail("prefill did not finish in 120 s");
        if (prefill_only) return 0;
        n_get = n_hit = n_miss = n_set = n_err = n_done = n_issued = 0;
    }

    printf("run: %s:%s conns=%d pipeline=%d ratio=%lu:%lu data-size=%d keys=1..%lu time=%gs max-requests=%llu\n",
           host, port, nconns, pipeline, ratio_set, ratio_get, data_size, nkeys, run_secs, max_requests);
    t0 = now_ns();
    loop(1, run_secs);
    t1 = now_ns();
    secs = (double)(t1 - t0) / 1e9;
    printf("ops %llu in %.3f s: %.0f ops/s; gets %llu (hits %llu, misses %llu), sets %llu, errors %llu\n",
           n_done, secs, n_done / secs, n_get, n_hit, n_miss, n_set, n_err);
    printf("latency us: p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f\n",
           pct_us(50), pct_us(90), pct_us(99), pct_us(99.9));
    printf("RESULT ops=%llu secs=%.3f ops_s=%.0f p50_us=%.1f p99_us=%.1f gets=%llu hits=%llu misses=%llu sets=%llu errors=%llu\n",
           n_done, secs, n_done / secs, pct_us(50), pct_us(99), n_get, n_hit, n_miss, n_set, n_err);
    return n_err ? 1 : 0;
}
