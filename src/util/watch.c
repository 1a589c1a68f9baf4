/*
 * Log streaming for `watch`: formatting and per-watcher buffers.
 *
 * Design. memcached gives each worker a log buffer and runs a logger thread
 * that moves lines from those to each watcher's buffer. kioku skips the
 * middle: a producer formats the line once, on its stack, and copies it
 * straight into the buffer of each watcher that wants it, under that
 * watcher's own mutex (a leaf lock: nothing is taken while it is held but
 * the wake-up signal). The watcher's worker takes the bytes out and writes
 * them to its socket. Watching is a diagnostic, so a lock and a memcpy per
 * line per watcher is a fair price; not watching must be free, which
 * watch_on() makes it.
 *
 * A slow watcher never holds anyone up: its buffer is a fixed-size byte
 * ring, and a line that does not fit is skipped and counted. The first
 * line that fits again is preceded by "skipped=N\n", as memcached does, so
 * the reader knows what it missed.
 *
 * Watchers sit in a fixed table of WATCH_MAX slots that never moves, so a
 * producer may look at a slot's flags without the table lock and check
 * them again under the slot's lock. watch_active_flags, the union of all
 * flags, is rewritten under the table lock on every add and remove.
 */
#include "util/watch.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>

unsigned watch_active_flags;

struct watcher {
    pthread_mutex_t lock;       /* guards all below but flags' lock-free read */
    unsigned flags;             /* 0: the slot is free */
    char *buf;                  /* ring of cap bytes: [head, head + len) */
    size_t head, len;
    uint64_t skipped;           /* lines dropped since the last that fitted */
    bool woken;                 /* wake() called, buffer not emptied since */
    void (*wake)(void *arg);
    void *arg;
};

static struct watcher slots[WATCH_MAX];
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static size_t cap = WATCH_BUF_DEFAULT;   /* set once in watch_setup */

/* Relaxed atomics: counters only read by `stats`, touched only while
 * someone watches. */
static uint64_t gid_next, n_written, n_skipped, n_sent, n_watchers;

void watch_setup(size_t bufsize)
{
    cap = bufsize > 0 ? bufsize : WATCH_BUF_DEFAULT;
    for (int i = 0; i < WATCH_MAX; i++)
        pthread_mutex_init(&slots[i].lock, NULL);
}

void watch_teardown(void)
{
    for (int i = 0; i < WATCH_MAX; i++) {
        if (slots[i].flags != 0)
            watch_remove(&slots[i]);
    }
}

/* The names in memcached's order: it takes the first name the word is a
 * prefix of. */
static const struct {
    const char *name;
    unsigned flag;
} streams[] = {
    {"rawcmds", WATCH_RAWCMDS},       {"evictions", WATCH_EVICTIONS},
    {"fetchers", WATCH_FETCHERS},     {"mutations", WATCH_MUTATIONS},
    {"sysevents", WATCH_SYSEVENTS},   {"connevents", WATCH_CONNEVENTS},
    {"proxyreqs", WATCH_PROXYREQS},   {"proxyevents", WATCH_PROXYEVENTS},
    {"proxyuser", WATCH_PROXYUSER},   {"deletions", WATCH_DELETIONS},
};

bool watch_parse_flags(const char *args, size_t n, unsigned *flags)
{
    unsigned f = 0;
    bool any = false;
    size_t i = 0;
    while (i < n) {
        while (i < n && args[i] == ' ')
            i++;
        size_t start = i;
        while (i < n && args[i] != ' ')
            i++;
        size_t len = i - start;
        if (len == 0)
            break;
        any = true;
        size_t k;
        for (k = 0; k < sizeof(streams) / sizeof(streams[0]); k++) {
            if (len <= strlen(streams[k].name) &&
                memcmp(streams[k].name, args + start, len) == 0)
                break;
        }
        if (k == sizeof(streams) / sizeof(streams[0]))
            return false;
        f |= streams[k].flag;
    }
    *flags = any ? f : WATCH_FETCHERS;
    return true;
}

/* Caller holds table_lock. */
static void publish_flags(void)
{
    unsigned all = 0;
    for (int i = 0; i < WATCH_MAX; i++)
        all |= __atomic_load_n(&slots[i].flags, __ATOMIC_RELAXED);
    __atomic_store_n(&watch_active_flags, all, __ATOMIC_RELAXED);
}

struct watcher *watch_add(unsigned flags, void (*wake)(void *arg), void *arg,
                          enum watch_add_result *why)
{
    struct watcher *w = NULL;
    if (flags == 0) {   /* a free slot is one without flags */
        *why = WATCH_ADD_FAILED;
        return NULL;
    }
    pthread_mutex_lock(&table_lock);
    for (int i = 0; i < WATCH_MAX && w == NULL; i++) {
        if (slots[i].flags == 0)
            w = &slots[i];
    }
    if (w == NULL) {
        pthread_mutex_unlock(&table_lock);
        *why = WATCH_ADD_TOO_MANY;
        return NULL;
    }
    char *buf = malloc(cap);
    if (buf == NULL) {
        pthread_mutex_unlock(&table_lock);
        *why = WATCH_ADD_FAILED;
        return NULL;
    }
    pthread_mutex_lock(&w->lock);
    w->buf = buf;
    w->head = w->len = 0;
    w->skipped = 0;
    w->woken = false;
    w->wake = wake;
    w->arg = arg;
    /* flags last: a producer that sees them finds the rest set (it takes
     * the lock before it looks further anyway) */
    __atomic_store_n(&w->flags, flags, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&w->lock);
    publish_flags();
    __atomic_add_fetch(&n_watchers, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&table_lock);
    *why = WATCH_ADD_OK;
    return w;
}

void watch_remove(struct watcher *w)
{
    pthread_mutex_lock(&table_lock);
    pthread_mutex_lock(&w->lock);
    __atomic_store_n(&w->flags, 0, __ATOMIC_RELAXED);
    free(w->buf);
    w->buf = NULL;
    w->len = 0;
    w->wake = NULL;
    w->arg = NULL;
    pthread_mutex_unlock(&w->lock);
    publish_flags();
    __atomic_sub_fetch(&n_watchers, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&table_lock);
}

/* Copy n bytes in at the tail; caller checked the room and holds w->lock. */
static void ring_put(struct watcher *w, const char *p, size_t n)
{
    size_t tail = (w->head + w->len) % cap;
    size_t first = cap - tail < n ? cap - tail : n;
    memcpy(w->buf + tail, p, first);
    memcpy(w->buf, p + first, n - first);
    w->len += n;
}

size_t watch_read(struct watcher *w, char *buf, size_t max)
{
    pthread_mutex_lock(&w->lock);
    size_t n = w->len < max ? w->len : max;
    size_t first = cap - w->head < n ? cap - w->head : n;
    memcpy(buf, w->buf + w->head, first);
    memcpy(buf + first, w->buf, n - first);
    w->head = (w->head + n) % cap;
    w->len -= n;
    if (w->len == 0) {
        w->head = 0;
        w->woken = false;
    }
    pthread_mutex_unlock(&w->lock);
    return n;
}

/* One line into one watcher; caller holds w->lock and w wants it. */
static void deliver(struct watcher *w, const char *line, size_t n)
{
    char skip[40];
    size_t sn = 0;
    if (w->skipped > 0 && !(w->flags & WATCH_MONITOR))
        sn = (size_t)snprintf(skip, sizeof(skip), "skipped=%llu\n",
                              (unsigned long long)w->skipped);
    if (cap - w->len < sn + n) {
        w->skipped++;
        __atomic_add_fetch(&n_skipped, 1, __ATOMIC_RELAXED);
        return;
    }
    ring_put(w, skip, sn);
    ring_put(w, line, n);
    w->skipped = 0;
    __atomic_add_fetch(&n_sent, 1, __ATOMIC_RELAXED);
    if (!w->woken) {
        w->woken = true;
        w->wake(w->arg);
    }
}

void watch_emit(unsigned flag, const char *line, size_t n)
{
    __atomic_add_fetch(&n_written, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < WATCH_MAX; i++) {
        struct watcher *w = &slots[i];
        if (!(__atomic_load_n(&w->flags, __ATOMIC_RELAXED) & flag))
            continue;
        pthread_mutex_lock(&w->lock);
        if (w->flags & flag)
            deliver(w, line, n);
        pthread_mutex_unlock(&w->lock);
    }
}

size_t watch_uriencode(char *dst, const char *key, size_t nkey)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t d = 0;
    for (size_t i = 0; i < nkey; i++) {
        unsigned char b = (unsigned char)key[i];
        if ((b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') ||
            b == '-' || b == '.' || b == '_' || b == '~') {
            dst[d++] = (char)b;
        } else {
            dst[d++] = '%';
            dst[d++] = hex[b >> 4];
            dst[d++] = hex[b & 15];
        }
    }
    return d;
}

/* "ts=<sec>.<usec> gid=<n> " at p (room: WATCH_LINE_MAX); returns its length.
 * memcached prints the microseconds unpadded, and so do we. */
static size_t line_head(char *p)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned long long gid = __atomic_add_fetch(&gid_next, 1, __ATOMIC_RELAXED);
    return (size_t)snprintf(p, WATCH_LINE_MAX, "ts=%lld.%d gid=%llu ", (long long)ts.tv_sec,
                            (int)(ts.tv_nsec / 1000), gid);
}

/* The key, URI-encoded and NUL-terminated, in a buffer of 3 * 250 + 1. */
#define KEY_BUF (3 * 250 + 1)
static const char *key_text(char *dst, const char *key, size_t nkey)
{
    if (nkey > 250)
        nkey = 250;
    dst[watch_uriencode(dst, key, nkey)] = '\0';
    return dst;
}

/* snprintf's result, clamped: a line too long for the buffer (it cannot be,
 * with keys of at most 250 bytes) is cut, and still ends in '\n'. */
static size_t finish(char *line, size_t head, int n)
{
    size_t len = head + (n < 0 ? 0 : (size_t)n);
    if (len >= WATCH_LINE_MAX) {
        len = WATCH_LINE_MAX - 1;
        line[len - 1] = '\n';
    }
    return len;
}

void watch_item_get(const char *key, size_t nkey, enum watch_get_status st, unsigned clsid,
                    int cfd, uint32_t size)
{
    static const char *const names[] = {"not_found", "found", "flushed", "expired"};
    char line[WATCH_LINE_MAX], k[KEY_BUF];
    size_t h = line_head(line);
    int n = snprintf(line + h, WATCH_LINE_MAX - h,
                     "type=item_get key=%s status=%s clsid=%u cfd=%d size=%u\n",
                     key_text(k, key, nkey), names[st], clsid, cfd, size);
    watch_emit(WATCH_FETCHERS, line, finish(line, h, n));
}

void watch_item_store(const char *key, size_t nkey, enum watch_store_status st,
                      enum watch_store_cmd cmd, uint32_t ttl, unsigned clsid, int cfd,
                      uint32_t size)
{
    static const char *const status[] = {"not_stored", "stored", "exists",
                                         "not_found", "too_large", "no_memory"};
    static const char *const cmds[] = {"null", "add", "set", "replace",
                                       "append", "prepend", "cas"};
    char line[WATCH_LINE_MAX], k[KEY_BUF];
    size_t h = line_head(line);
    int n = snprintf(line + h, WATCH_LINE_MAX - h,
                     "type=item_store key=%s status=%s cmd=%s ttl=%u clsid=%u cfd=%d size=%u\n",
                     key_text(k, key, nkey), status[st], cmds[cmd], ttl, clsid, cfd, size);
    watch_emit(WATCH_MUTATIONS, line, finish(line, h, n));
}

void watch_eviction(const char *key, size_t nkey, bool fetched, long long ttl, uint32_t la,
                    unsigned clsid, uint32_t size)
{
    char line[WATCH_LINE_MAX], k[KEY_BUF];
    size_t h = line_head(line);
    int n = snprintf(line + h, WATCH_LINE_MAX - h,
                     "type=eviction key=%s fetch=%s ttl=%lld la=%u clsid=%u size=%u\n",
                     key_text(k, key, nkey), fetched ? "yes" : "no", ttl, la, clsid, size);
    watch_emit(WATCH_EVICTIONS, line, finish(line, h, n));
}

void watch_deletion(const char *key, size_t nkey, const char *cmd, unsigned clsid,
                    uint32_t size)
{
    char line[WATCH_LINE_MAX], k[KEY_BUF];
    size_t h = line_head(line);
    int n = snprintf(line + h, WATCH_LINE_MAX - h,
                     "type=deleted key=%s cmd=%s clsid=%u size=%u\n",
                     key_text(k, key, nkey), cmd, clsid, size);
    watch_emit(WATCH_DELETIONS, line, finish(line, h, n));
}

/* memcached's rip/rport/transport for a peer address. */
static const char *endpoint(const struct sockaddr *peer, socklen_t len, char *rip,
                            size_t riplen, unsigned *rport)
{
    *rport = 0;
    if (peer == NULL || len == 0 || peer->sa_family == AF_UNIX) {
        snprintf(rip, riplen, "unix");
        return "local";
    }
    if (peer->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)peer;
        inet_ntop(AF_INET, &in->sin_addr, rip, (socklen_t)riplen);
        *rport = ntohs(in->sin_port);
    } else {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)peer;
        inet_ntop(AF_INET6, &in6->sin6_addr, rip, (socklen_t)riplen);
        *rport = ntohs(in6->sin6_port);
    }
    return "tcp";
}

void watch_conn_new(const struct sockaddr *peer, socklen_t peer_len, int cfd)
{
    char line[WATCH_LINE_MAX], rip[64];
    unsigned rport;
    const char *tr = endpoint(peer, peer_len, rip, sizeof(rip), &rport);
    size_t h = line_head(line);
    int n = snprintf(line + h, WATCH_LINE_MAX - h,
                     "type=conn_new rip=%s rport=%u transport=%s cfd=%d\n", rip, rport, tr, cfd);
    watch_emit(WATCH_CONNEVENTS, line, finish(line, h, n));
}

void watch_conn_close(const struct sockaddr *peer, socklen_t peer_len, int cfd,
                      enum watch_close_reason reason)
{
    static const char *const reasons[] = {"error", "normal", "idle_timeout", "shutdown"};
    char line[WATCH_LINE_MAX], rip[64];
    unsigned rport;
    const char *tr = endpoint(peer, peer_len, rip, sizeof(rip), &rport);
    size_t h = line_head(line);
    int n = snprintf(line + h, WATCH_LINE_MAX - h,
                     "type=conn_close rip=%s rport=%u transport=%s reason=%s cfd=%d\n", rip,
                     rport, tr, reasons[reason], cfd);
    watch_emit(WATCH_CONNEVENTS, line, finish(line, h, n));
}

void watch_stats_get(struct watch_stats *out)
{
    out->worker_written = __atomic_load_n(&n_written, __ATOMIC_RELAXED);
    out->worker_dropped = 0;
    out->watcher_skipped = __atomic_load_n(&n_skipped, __ATOMIC_RELAXED);
    out->watcher_sent = __atomic_load_n(&n_sent, __ATOMIC_RELAXED);
    out->watchers = __atomic_load_n(&n_watchers, __ATOMIC_RELAXED);
}
