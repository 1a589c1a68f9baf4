/*
 * cacheload.c - a cache-aside load generator that measures hit ratio, for
 * bench/hitratio.sh. It speaks the memcached text protocol (get/set) or RESP
 * (GET/SET) to one server.
 *
 * Every request is a read; a miss is followed by a set of the same key on the
 * same connection (cache-aside: the application fetched the value from its
 * database and stores it). Key popularity is Zipf(s) over keys 1..K, drawn by
 * binary search in a precomputed CDF. With --scan-pct P, P % of the reads are
 * instead one-time keys from a per-connection sequential scan (never
 * repeated, so they always miss and their sets only pollute the cache).
 *
 * Everything a server sees is a function of the seed and the options: each
 * connection has its own random stream (seed, connection number) and its own
 * share of the reads, so the per-connection request sequences are identical
 * for every server; only the interleaving of connections can differ. A
 * value's size and bytes are a function of its key name: size = min + h % span
 * and bytes = a slice of a 16 MiB block of pseudo-random bytes (from the seed)
 * at offset h, h being a 64-bit hash of the key. Random bytes do not compress.
 * Every hit is checked against the expected bytes (and, for memcached, the
 * key it names); a mismatch is counted as "wrong" and printed.
 *
 * The first --warmup reads (split over the connections) are not counted;
 * then --requests reads are. With --tail-pct T the last T % of each
 * connection's counted reads are also reported on their own (the "tail": has
 * the cache recovered after a change of the workload?).
 *
 * One thread, epoll, N connections, each with up to P requests in flight (a
 * sliding window refilled after every read; pending sets go first). The run
 * is bounded by --time-limit seconds; if it is reached the result says
 * complete=0 and the exit status is 3.
 *
 * Build: cc -O2 -o cacheload bench/cacheload.c -lm
 * Output (last line, for scripts):
 *   RESULT complete=1 gets=N hits=H hit_ratio=R zipf_gets=.. zipf_hits=..
 *          zipf_hit_ratio=.. tail_gets=.. tail_hits=.. tail_hit_ratio=..
 *          sets=S set_errors=E errors=E2 wrong=W secs=T ops_s=X
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
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

#define VBLOCK (16u << 20)          /* pseudo-random bytes that values are cut from */
#define KEYMAX 64

enum { REQ_GET = 0, REQ_SET = 1 };
enum { F_MEASURED = 1, F_TAIL = 2, F_SCAN = 4 };
enum { PROTO_MC = 0, PROTO_RESP = 1 };

struct req {
    unsigned char type, flags, klen;
    char key[KEYMAX];
    uint32_t vlen;
    uint32_t voff;
};

struct conn {
    int fd, id;
    struct req *fly;                /* in flight, FIFO ring of P */
    int head, count;
    struct req *pend;               /* sets waiting for a window slot, ring of P */
    int phead, pcount;
    char *obuf;
    size_t olen, ooff, ocap;
    int want_out;
    char *ibuf;
    size_t ilen, icap;
    uint64_t rng;
    unsigned long issued, quota, warm, tail_from, scan_seq;
};

static const char *host = "127.0.0.1";
static const char *port = "11211";
static const char *prefix = "k:";
static int proto = PROTO_MC;
static int nconns = 4, pipeline = 16;
static unsigned long nkeys = 500000, warmup = 500000, requests = 2000000;
static unsigned min_size = 100, max_size = 2000;
static double zipf_s = 0.99, scan_pct = 0, tail_pct = 25, time_limit = 600;
static uint64_t seed = 1;
static int verbose = 0;

static double *cdf;                 /* cdf[i] = P(rank <= i + 1) */
static unsigned char *vblock;       /* VBLOCK + max_size bytes */
static struct conn *conns;
static int epfd;

/* counted (measured) reads, all / Zipf keys only / tail; plus totals */
static unsigned long long m_gets, m_hits, z_gets, z_hits, t_gets, t_hits;
static unsigned long long w_gets, w_hits, n_sets, n_set_err, n_err, n_wrong, n_done;

static void die(const char *m) { fprintf(stderr, "cacheload: %s: %s\n", m, strerror(errno)); exit(2); }
static void fail(const char *m) { fprintf(stderr, "cacheload: %s\n", m); exit(2); }

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* FNV-1a, then a splitmix finaliser so that low and high bits both mix. */
static uint64_t key_hash(const char *k, size_t n)
{
    uint64_t h = 0xCBF29CE484222325ULL, s;
    size_t i;
    for (i = 0; i < n; i++) { h ^= (unsigned char)k[i]; h *= 0x100000001B3ULL; }
    s = h;
    return splitmix(&s);
}

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: cacheload [options]\n"
        "  -s, --server HOST      server address (default 127.0.0.1)\n"
        "  -p, --port PORT        server port (default 11211)\n"
        "      --protocol P       mc (memcached text get/set, default) | resp (GET/SET)\n"
        "  -c, --conns N          connections (default 4)\n"
        "  -P, --pipeline N       requests in flight per connection (default 16)\n"
        "  -k, --keys N           Zipf key space 1..N (default 500000)\n"
        "  -z, --zipf S           Zipf exponent (default 0.99)\n"
        "      --min-size N       smallest value, bytes (default 100)\n"
        "      --max-size N       largest value, bytes (default 2000)\n"
        "  -x, --key-prefix S     key name prefix (default k:)\n"
        "  -w, --warmup N         reads before counting starts (default 500000)\n"
        "  -n, --requests N       counted reads (default 2000000)\n"
        "      --scan-pct P       %% of reads that are one-time scan keys (default 0)\n"
        "      --tail-pct T       also report the last T %% of counted reads (default 25)\n"
        "      --seed N           random seed (default 1)\n"
        "  -t, --time-limit S     stop after S seconds, complete=0 (default 600)\n"
        "  -v, --verbose\n");
}

static void parse_args(int argc, char **argv)
{
    static const struct option lo[] = {
        {"server", 1, 0, 's'}, {"port", 1, 0, 'p'}, {"protocol", 1, 0, 1},
        {"conns", 1, 0, 'c'}, {"pipeline", 1, 0, 'P'}, {"keys", 1, 0, 'k'},
        {"zipf", 1, 0, 'z'}, {"min-size", 1, 0, 2}, {"max-size", 1, 0, 3},
        {"key-prefix", 1, 0, 'x'}, {"warmup", 1, 0, 'w'}, {"requests", 1, 0, 'n'},
        {"scan-pct", 1, 0, 4}, {"tail-pct", 1, 0, 5}, {"seed", 1, 0, 6},
        {"time-limit", 1, 0, 't'}, {"verbose", 0, 0, 'v'}, {"help", 0, 0, 'h'},
        {0, 0, 0, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "s:p:c:P:k:z:x:w:n:t:vh", lo, NULL)) != -1) {
        switch (o) {
        case 's': host = optarg; break;
        case 'p': port = optarg; break;
        case 1:
            if (!strcmp(optarg, "mc")) proto = PROTO_MC;
            else if (!strcmp(optarg, "resp")) proto = PROTO_RESP;
            else fail("--protocol must be mc or resp");
            break;
        case 'c': nconns = atoi(optarg); break;
        case 'P': pipeline = atoi(optarg); break;
        case 'k': nkeys = strtoul(optarg, NULL, 10); break;
        case 'z': zipf_s = atof(optarg); break;
        case 2: min_size = (unsigned)strtoul(optarg, NULL, 10); break;
        case 3: max_size = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'x': prefix = optarg; break;
        case 'w': warmup = strtoul(optarg, NULL, 10); break;
        case 'n': requests = strtoul(optarg, NULL, 10); break;
        case 4: scan_pct = atof(optarg); break;
        case 5: tail_pct = atof(optarg); break;
        case 6: seed = strtoull(optarg, NULL, 10); break;
        case 't': time_limit = atof(optarg); break;
        case 'v': verbose = 1; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind < argc) { usage(stderr); exit(2); }
    if (nconns < 1 || nconns > 1000) fail("--conns must be 1..1000");
    if (pipeline < 1 || pipeline > 1024) fail("--pipeline must be 1..1024");
    if (nkeys < 1 || nkeys > 100000000) fail("--keys must be 1..100000000");
    if (zipf_s <= 0) fail("--zipf must be > 0");
    if (min_size < 1 || max_size < min_size || max_size > (1u << 20))
        fail("--min-size/--max-size must satisfy 1 <= min <= max <= 1048576");
    if (strlen(prefix) > 24) fail("--key-prefix longer than 24");
    if (scan_pct < 0 || scan_pct >= 100) fail("--scan-pct must be 0..<100");
    if (tail_pct < 0 || tail_pct > 100) fail("--tail-pct must be 0..100");
    if (requests < 1) fail("--requests must be >= 1");
    if (time_limit <= 0) fail("--time-limit must be > 0");
}

static void setup_zipf(void)
{
    double sum = 0;
    unsigned long i;
    if (!(cdf = malloc(nkeys * sizeof *cdf))) fail("out of memory");
    for (i = 0; i < nkeys; i++) cdf[i] = (sum += 1.0 / pow((double)(i + 1), zipf_s));
    for (i = 0; i < nkeys; i++) cdf[i] /= sum;
    cdf[nkeys - 1] = 1.0;
}

/* A rank in 1..nkeys, Zipf-distributed. */
static unsigned long zipf_draw(uint64_t *rng)
{
    double u = (double)(splitmix(rng) >> 11) * 0x1.0p-53;
    unsigned long lo = 0, hi = nkeys - 1;
    while (lo < hi) {
        unsigned long mid = lo + (hi - lo) / 2;
        if (cdf[mid] >= u) hi = mid; else lo = mid + 1;
    }
    return lo + 1;
}

static void setup_values(void)
{
    uint64_t s = seed ^ 0x5A5A5A5A5A5A5A5AULL, x;
    size_t i, n = (size_t)VBLOCK + max_size;
    if (!(vblock = malloc(n + 8))) fail("out of memory");
    for (i = 0; i < n; i += 8) { x = splitmix(&s); memcpy(vblock + i, &x, 8); }
}

/* Fill r for a read of key name k: its value's size and bytes follow from k. */
static void req_for_key(struct req *r, int flags, const char *k, int klen)
{
    uint64_t h = key_hash(k, (size_t)klen);
    r->type = REQ_GET;
    r->flags = (unsigned char)flags;
    r->klen = (unsigned char)klen;
    memcpy(r->key, k, (size_t)klen);
    r->vlen = min_size + (uint32_t)((h >> 32) % (max_size - min_size + 1));
    r->voff = (uint32_t)(h % VBLOCK);
}

static int connect_one(void)
{
    struct addrinfo hints = {0}, *ai, *a;
    int fd = -1, one = 1, rc;
    hints.ai_socktype = SOCK_STREAM;
    if ((rc = getaddrinfo(host, port, &hints, &ai)) != 0) {
        fprintf(stderr, "cacheload: %s:%s: %s\n", host, port, gai_strerror(rc));
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

static void out_reserve(struct conn *c, size_t need)
{
    if (c->olen + need <= c->ocap) return;
    c->ocap = (c->olen + need) * 2;
    if (!(c->obuf = realloc(c->obuf, c->ocap))) fail("out of memory");
}

/* Append r (a read or a set) to c's output and to its in-flight ring. */
static void send_req(struct conn *c, const struct req *r)
{
    char *o;
    out_reserve(c, (size_t)r->klen + r->vlen + 64);
    o = c->obuf + c->olen;
    if (proto == PROTO_MC && r->type == REQ_GET)
        o += sprintf(o, "get %.*s\r\n", r->klen, r->key);
    else if (proto == PROTO_MC)
        o += sprintf(o, "set %.*s 0 0 %u\r\n", r->klen, r->key, r->vlen);
    else if (r->type == REQ_GET)
        o += sprintf(o, "*2\r\n$3\r\nGET\r\n$%u\r\n%.*s\r\n", r->klen, r->klen, r->key);
    else
        o += sprintf(o, "*3\r\n$3\r\nSET\r\n$%u\r\n%.*s\r\n$%u\r\n", r->klen, r->klen, r->key,
                     r->vlen);
    if (r->type == REQ_SET) {
        memcpy(o, vblock + r->voff, r->vlen);
        o += r->vlen;
        memcpy(o, "\r\n", 2);
        o += 2;
    }
    c->olen = (size_t)(o - c->obuf);
    c->fly[(c->head + c->count) % pipeline] = *r;
    c->count++;
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

/* The next read of c's sequence: a scan key or a Zipf key. */
static void next_read(struct conn *c, struct req *r)
{
    char k[KEYMAX];
    int n, flags = 0;
    unsigned long i = c->issued++;
    if (i >= c->warm) flags |= F_MEASURED;
    if (i >= c->tail_from) flags |= F_TAIL;
    if (scan_pct > 0 && (double)(splitmix(&c->rng) % 1000000) < scan_pct * 10000) {
        n = snprintf(k, sizeof k, "%sscan%d-%lu", prefix, c->id, c->scan_seq++);
        flags |= F_SCAN;
    } else {
        n = snprintf(k, sizeof k, "%s%lu", prefix, zipf_draw(&c->rng));
    }
    req_for_key(r, flags, k, n);
}

static int reading(const struct conn *c, uint64_t deadline)
{
    return c->issued < c->quota && now_ns() < deadline;
}

/* Refill c's window: pending sets first, then new reads. Keeps
 * count + pcount <= P, so the pending ring (P entries) cannot overflow. */
static void fill(struct conn *c, uint64_t deadline)
{
    int added = 0;
    struct req r;
    while (c->count < pipeline && c->pcount > 0) {
        send_req(c, &c->pend[c->phead]);
        c->phead = (c->phead + 1) % pipeline;
        c->pcount--;
        added++;
    }
    while (c->count < pipeline && c->pcount == 0 && reading(c, deadline)) {
        next_read(c, &r);
        send_req(c, &r);
        added++;
    }
    if (added && flush_out(c) < 0) die("write");
}

static void count_read(const struct req *r, int hit)
{
    if (!(r->flags & F_MEASURED)) { w_gets++; w_hits += (unsigned)hit; return; }
    m_gets++; m_hits += (unsigned)hit;
    if (!(r->flags & F_SCAN)) { z_gets++; z_hits += (unsigned)hit; }
    if (r->flags & F_TAIL) { t_gets++; t_hits += (unsigned)hit; }
}

static void on_miss(struct conn *c, const struct req *r)
{
    struct req *s = &c->pend[(c->phead + c->pcount) % pipeline];
    *s = *r;
    s->type = REQ_SET;
    c->pcount++;
}

static void on_hit(const struct req *r, const char *key, size_t klen, const char *v, size_t vlen)
{
    if ((key && (klen != r->klen || memcmp(key, r->key, klen))) || vlen != r->vlen ||
        memcmp(v, vblock + r->voff, vlen)) {
        n_wrong++;
        if (verbose || n_wrong <= 5)
            fprintf(stderr, "cacheload: WRONG value for key %.*s: got %zu bytes%s%.*s, want %u\n",
                    r->klen, r->key, vlen, key ? " under key " : "", key ? (int)klen : 0,
                    key ? key : "", r->vlen);
    }
}

/* One response at p (n bytes available) for request r. Returns bytes used,
 * 0 if incomplete, -1 if unparseable. *res: 0 miss, 1 hit, 2 stored, 3 error. */
static long parse_one(const struct req *r, const char *p, size_t n, int *res)
{
    const char *nl = memchr(p, '\n', n);
    size_t line;
    if (!nl) return 0;
    line = (size_t)(nl - p) + 1;
    if (proto == PROTO_MC) {
        if (line >= 6 && !memcmp(p, "VALUE ", 6)) {
            const char *k = p + 6, *sp = memchr(k, ' ', line - 6);
            unsigned long flags, len;
            char *end;
            if (!sp) return -1;
            flags = strtoul(sp + 1, &end, 10);
            len = strtoul(end, NULL, 10);
            (void)flags;
            if (n < line + len + 2 + 5) return 0;
            if (memcmp(p + line + len, "\r\nEND\r\n", 7)) return -1;
            if (r->type == REQ_GET) on_hit(r, k, (size_t)(sp - k), p + line, len);
            *res = 1;
            return (long)(line + len + 7);
        }
        if (line == 5 && !memcmp(p, "END\r\n", 5)) { *res = 0; return 5; }
        if (line == 8 && !memcmp(p, "STORED\r\n", 8)) { *res = 2; return 8; }
    } else {
        if (p[0] == '$' && p[1] == '-') { *res = 0; return (long)line; }
        if (p[0] == '$') {
            unsigned long len = strtoul(p + 1, NULL, 10);
            if (n < line + len + 2) return 0;
            if (r->type == REQ_GET) on_hit(r, NULL, 0, p + line, len);
            *res = 1;
            return (long)(line + len + 2);
        }
        if (line == 5 && !memcmp(p, "+OK\r\n", 5)) { *res = 2; return 5; }
    }
    *res = 3;
    if (verbose || n_err + n_set_err < 5)
        fprintf(stderr, "cacheload: %s %.*s: error reply: %.*s", r->type == REQ_GET ? "get" : "set",
                r->klen, r->key, (int)line, p);
    return (long)line;
}

/* Parse the complete responses in c->ibuf; -1 on a protocol error. */
static int parse_in(struct conn *c)
{
    size_t off = 0;
    while (off < c->ilen) {
        struct req *r;
        int res = 3;
        long used;
        if (c->count == 0) {
            fprintf(stderr, "cacheload: unexpected response: %.*s\n", (int)(c->ilen - off > 80 ? 80 : c->ilen - off),
                    c->ibuf + off);
            return -1;
        }
        r = &c->fly[c->head];
        used = parse_one(r, c->ibuf + off, c->ilen - off, &res);
        if (used < 0) {
            fprintf(stderr, "cacheload: unparseable response to %.*s\n", r->klen, r->key);
            return -1;
        }
        if (used == 0) break;
        if (r->type == REQ_GET) {
            if (res == 3) n_err++;
            else count_read(r, res == 1);
            if (res == 0) on_miss(c, r);
        } else {
            n_sets++;
            if (res != 2) n_set_err++;
        }
        c->head = (c->head + 1) % pipeline;
        c->count--;
        n_done++;
        off += (size_t)used;
    }
    if (off > 0) {
        memmove(c->ibuf, c->ibuf + off, c->ilen - off);
        c->ilen -= off;
    }
    return 0;
}

static int read_in(struct conn *c)
{
    for (;;) {
        ssize_t r;
        size_t space = c->icap - c->ilen;
        r = read(c->fd, c->ibuf + c->ilen, space);
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) return 0;
            return -1;
        }
        if (r == 0) { fprintf(stderr, "cacheload: server closed the connection\n"); return -1; }
        c->ilen += (size_t)r;
        if (parse_in(c) < 0) return -1;
        if (c->ilen > c->icap / 2) {      /* a large value is arriving: room for it */
            c->icap *= 2;
            if (!(c->ibuf = realloc(c->ibuf, c->icap))) fail("out of memory");
        }
        if ((size_t)r < space) return 0;   /* short read: socket drained */
    }
}

static void setup_conns(void)
{
    int i;
    if ((epfd = epoll_create1(0)) < 0) die("epoll_create1");
    if (!(conns = calloc((size_t)nconns, sizeof *conns))) fail("out of memory");
    for (i = 0; i < nconns; i++) {
        struct conn *c = &conns[i];
        struct epoll_event ev = {0};
        unsigned long w = warmup / (unsigned long)nconns + ((unsigned long)i < warmup % (unsigned long)nconns);
        unsigned long m = requests / (unsigned long)nconns + ((unsigned long)i < requests % (unsigned long)nconns);
        c->id = i;
        c->fd = connect_one();
        c->fly = calloc((size_t)pipeline, sizeof *c->fly);
        c->pend = calloc((size_t)pipeline, sizeof *c->pend);
        c->ocap = (size_t)pipeline * (max_size + 128);
        c->obuf = malloc(c->ocap);
        c->icap = 2 * (size_t)max_size + 65536;
        c->ibuf = malloc(c->icap);
        if (!c->fly || !c->pend || !c->obuf || !c->ibuf) fail("out of memory");
        c->rng = seed * 0x9E3779B97F4A7C15ULL + (uint64_t)i * 0xD1B54A32D192ED03ULL;
        c->warm = w;
        c->quota = w + m;
        c->tail_from = w + m - (unsigned long)((double)m * tail_pct / 100.0);
        ev.events = EPOLLIN;
        ev.data.ptr = c;
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
    }
}

/* Run until every connection has issued its reads and every reply (and the
 * sets they caused) is in, or the time limit. Returns 1 if complete. */
static int loop(uint64_t deadline)
{
    struct epoll_event evs[64];
    int i, busy;
    for (i = 0; i < nconns; i++) fill(&conns[i], deadline);
    for (;;) {
        int n;
        busy = 0;
        for (i = 0; i < nconns; i++)
            if (conns[i].count || conns[i].pcount || reading(&conns[i], deadline)) busy = 1;
        if (!busy) break;
        if (now_ns() > deadline + 2000000000ULL) {
            fprintf(stderr, "cacheload: time limit: replies still missing 2 s after it\n");
            return 0;
        }
        n = epoll_wait(epfd, evs, 64, 100);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if ((evs[i].events & EPOLLOUT) && flush_out(c) < 0) die("write");
            if ((evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && read_in(c) < 0)
                fail("connection failed");
            if (c->olen == 0) fill(c, deadline);
        }
    }
    for (i = 0; i < nconns; i++)
        if (conns[i].issued < conns[i].quota) return 0;
    return 1;
}

static double ratio(unsigned long long a, unsigned long long b) { return b ? (double)a / (double)b : 0; }

int main(int argc, char **argv)
{
    uint64_t t0, t1;
    double secs;
    int complete;

    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    setup_zipf();
    setup_values();
    setup_conns();
    printf("run: %s:%s %s conns=%d pipeline=%d keys=%s1..%lu zipf=%g sizes=%u..%u warmup=%lu "
           "requests=%lu scan=%g%% tail=%g%% seed=%llu\n",
           host, port, proto == PROTO_MC ? "mc" : "resp", nconns, pipeline, prefix, nkeys, zipf_s,
           min_size, max_size, warmup, requests, scan_pct, tail_pct, (unsigned long long)seed);
    fflush(stdout);
    t0 = now_ns();
    complete = loop(t0 + (uint64_t)(time_limit * 1e9));
    t1 = now_ns();
    secs = (double)(t1 - t0) / 1e9;
    printf("warm-up reads %llu, hit ratio %.4f\n", w_gets, ratio(w_hits, w_gets));
    printf("counted reads %llu, hits %llu, hit ratio %.4f (Zipf keys only %.4f, last %g%% %.4f)\n",
           m_gets, m_hits, ratio(m_hits, m_gets), ratio(z_hits, z_gets), tail_pct, ratio(t_hits, t_gets));
    printf("RESULT complete=%d gets=%llu hits=%llu hit_ratio=%.4f zipf_gets=%llu zipf_hits=%llu "
           "zipf_hit_ratio=%.4f tail_gets=%llu tail_hits=%llu tail_hit_ratio=%.4f sets=%llu "
           "set_errors=%llu errors=%llu wrong=%llu secs=%.3f ops_s=%.0f\n",
           complete, m_gets, m_hits, ratio(m_hits, m_gets), z_gets, z_hits, ratio(z_hits, z_gets),
           t_gets, t_hits, ratio(t_hits, t_gets), n_sets, n_set_err, n_err, n_wrong, secs,
           (double)n_done / secs);
    if (!complete) return 3;
    return (n_wrong || n_err) ? 1 : 0;
}
