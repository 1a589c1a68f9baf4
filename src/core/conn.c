/*
 * Connection I/O state machine.
 *
 *   READ     parse and run requests from the read buffer; read the socket
 *            when the buffer holds no complete request
 *   NREAD    a value is arriving: copy it into its item
 *   SWALLOW  discard the bytes of a refused value
 *   CLOSING  write what is queued, then close
 *
 * Output is written (1) before the connection waits for input, so replies
 * to everything a read brought in leave together, and (2) when a protocol
 * yields because its request budget (-R) is spent or too much output is
 * queued: the connection then lets other connections of its worker run and
 * picks up where it left.
 *
 * A client's memory is bounded: the read buffer by the largest request a
 * protocol takes (RBUF_MAX), the output by backpressure (a protocol stops
 * parsing once OUT_FULL_BYTES wait for a client that does not read) and,
 * for one command with a huge reply (a RESP MGET or KEYS), by the output
 * limit (-o max_output_buffer), past which the client is disconnected.
 *
 * Reads try not to cost an extra syscall: after a read that did not fill the
 * buffer the socket is taken as drained, and the connection waits for the
 * next event instead of reading again into EAGAIN. That holds for the reads
 * that finish a value (or a skipped one) too, so a set whose value takes a
 * second read costs two reads, not three (the poll is level-triggered: were
 * bytes left after all, the next event says so).
 */
#include "core/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/uring.h"
#include "core/connmem.h"
#include "core/worker.h"
#include "stats/stats.h"
#include "storage/item.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/watch.h"

enum conn_state { CS_READ, CS_NREAD, CS_SWALLOW, CS_CLOSING };

struct out_entry {
    const char *base;   /* NULL: the bytes live at wbuf + off */
    size_t off;
    size_t len;
};

#define RBUF_INIT (16 * 1024)
/* Protocols refuse longer requests first; the largest they take is a
 * memcached get line (MC_TEXT_KEYS_LINE_MAX, 16 MiB; RESP stops at 4 MiB). */
#define RBUF_MAX (16 * 1024 * 1024)
#define WBUF_INIT 2048
#define WBUF_KEEP (64 * 1024)          /* shrink back after a large reply */
#define OUT_KEEP 1024                  /* out/refs entries kept after a large reply */
#define RBUF_KEEP (64 * 1024)          /* read buffer kept while it is empty */
#define OUT_FULL_BYTES (512 * 1024)    /* queued bytes that make a protocol yield */
#define OUT_FULL_ENTRIES 4096
#define DIRECT_READ_MIN (16 * 1024)    /* larger values are read straight into the item */
#define WRITE_IOV 512
/* Values up to this size are copied into the output buffer rather than
 * referenced: a memcpy this small costs less than holding a reference (two
 * atomics on the item) and sending one more iovec segment, and a reply that
 * is one segment can go out with write(). */
#define OUT_COPY_MAX 512
#define OUT_ROOM 1024                  /* a copied value, its header and END */

static const struct conn_protocols *protocols;   /* set once in conn_setup */
static const struct transport *tls_transport;    /* set once in conn_set_tls */
static int reqs_per_event = 20;
static size_t max_output = (size_t)64 << 20;     /* set once in conn_set_limits */
static int64_t idle_timeout_ms;
static uint64_t next_conn_id;                    /* atomic */

static void conn_event(evutil_socket_t fd, short what, void *arg);

void conn_setup(const struct conn_protocols *protos, int reqs)
{
    protocols = protos;
    reqs_per_event = reqs;
}

void conn_set_limits(size_t max_out, int idle_timeout)
{
    max_output = max_out;
    idle_timeout_ms = (int64_t)idle_timeout * 1000;
}

void conn_set_tls(const struct transport *tls)
{
    tls_transport = tls;
}

/* ---- transport: plain sockets ---- */

/* recv and send, not read and write: the socket calls skip the file
 * layer's work (position lock, access checks) that read and write do
 * before they reach the socket. */
static ssize_t plain_read(struct conn *c, void *buf, size_t n)
{
    return recv(c->fd, buf, n, 0);
}

static ssize_t plain_writev(struct conn *c, const struct iovec *iov, int iovcnt)
{
    if (iovcnt == 1)   /* the common small reply: send() skips the iovec import */
        return send(c->fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL);

    struct msghdr m = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
    return sendmsg(c->fd, &m, MSG_NOSIGNAL);
}

static void plain_close(struct conn *c)
{
    close(c->fd);
}

const struct transport transport_plain = {
    .name = "plain", .read = plain_read, .writev = plain_writev, .close = plain_close,
};

/* The state is also read by `stats conns` from another thread. */
static inline void set_state(struct conn *c, enum conn_state st)
{
    __atomic_store_n(&c->state, (uint8_t)st, __ATOMIC_RELAXED);
}

/* ---- life cycle ---- */

/* The connection's buffer memory in its worker's level stats (memcached's
 * read_buf_* for every buffer, response_obj_* for the reply buffer): the
 * change since the capacities were old_r and old_w. */
static void count_bufs(struct conn *c, size_t old_r, size_t old_w)
{
    if (c->stats == NULL)
        return;
    STAT_ADD(c->stats, read_buf_bytes, (c->rcap + c->wcap) - (old_r + old_w));
    STAT_ADD(c->stats, response_obj_bytes, c->wcap - old_w);
}

int conn_buffers_init(struct conn *c)
{
    c->rbuf = malloc(RBUF_INIT);
    c->wbuf = malloc(WBUF_INIT);
    c->outcap = 64;
    c->out = malloc(sizeof(*c->out) * (size_t)c->outcap);
    c->refcap = 32;
    c->refs = malloc(sizeof(*c->refs) * (size_t)c->refcap);
    if (c->rbuf == NULL || c->wbuf == NULL || c->out == NULL || c->refs == NULL) {
        conn_buffers_free(c);
        return -1;
    }
    c->rcap = RBUF_INIT;
    c->wcap = WBUF_INIT;
    return 0;
}

void conn_buffers_free(struct conn *c)
{
    free(c->rbuf);
    free(c->wbuf);
    free(c->out);
    free(c->refs);
    c->rbuf = c->wbuf = NULL;
    c->out = NULL;
    c->refs = NULL;
}

struct conn *conn_create(struct worker *w, int fd, enum conn_listener_kind kind,
                         const struct sockaddr *peer, socklen_t peer_len)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL || conn_buffers_init(c) != 0)
        goto fail;
    if (w->ring == NULL || (kind & LISTENER_TLS)) {
        c->ev = event_new(w->base, fd, EV_READ | EV_PERSIST, conn_event, c);
        if (c->ev == NULL)
            goto fail;
    }
    c->fd = fd;
    c->kind = (enum conn_listener_kind)(kind & ~LISTENER_FLAGS);
    c->listen_flags = kind & LISTENER_FLAGS;
    c->tp = &transport_plain;
    c->worker = w;
    c->stats = w->stats;
    set_state(c, CS_READ);
    c->ev_flags = EV_READ;
    c->id = __atomic_add_fetch(&next_conn_id, 1, __ATOMIC_RELAXED);
    c->created = c->last_cmd = c->last_write = clock_now_ms();
    if (peer_len > 0 && peer_len <= sizeof(c->peer)) {
        memcpy(&c->peer, peer, peer_len);
        c->peer_len = peer_len;
    }
    if ((kind & LISTENER_TLS) && tls_transport != NULL) {
        if (tls_transport->open(c) != 0)
            goto fail;
        c->tp = tls_transport;
    }
    if (c->ev != NULL ? event_add(c->ev, NULL) != 0 : uring_conn_attach(w->ring, c) != 0)
        goto fail;
    if (c->uc != NULL)
        uring_conn_want(c, EV_READ);
    STAT_ADD(c->stats, read_buf_count, 2);
    STAT_INC(c->stats, response_obj_count);
    count_bufs(c, 0, 0);
    worker_conn_added(w, c);
    if (watch_on(WATCH_CONNEVENTS))
        watch_conn_new((struct sockaddr *)&c->peer, c->peer_len, fd);
    if (log_sev_enabled(LOG_SEV_TRACE, log_level())) {
        char name[INET6_ADDRSTRLEN + 16];
        conn_peer_name(c, name, sizeof(name));
        log_trace("<%d new client connection from %s", fd, name);
    }
    return c;
fail:
    if (c != NULL) {
        if (c->ev != NULL)
            event_free(c->ev);
        conn_buffers_free(c);
        if (c->tp != NULL && c->tp != &transport_plain) {
            c->tp->close(c);   /* frees the transport's state, closes fd */
            fd = -1;
        }
        free(c);
    }
    if (fd >= 0)
        close(fd);
    stats_conn_closed();
    return NULL;
}

static void release_output(struct conn *c)
{
    for (int i = 0; i < c->nrefs; i++)
        item_put(c->refs[i]);
    c->out_epoch++;
    c->nrefs = 0;
    c->nout = 0;
    c->out_pos = 0;
    c->out_off = 0;
    c->wlen = 0;
    c->out_bytes = 0;
    /* After a large reply, give the memory back: idle connections are many. */
    if (c->wcap > WBUF_KEEP) {
        char *small = realloc(c->wbuf, WBUF_INIT);
        if (small != NULL) {
            size_t old = c->wcap;
            c->wbuf = small;
            c->wcap = WBUF_INIT;
            count_bufs(c, c->rcap, old);
        }
    }
    if (c->outcap > OUT_KEEP) {
        struct out_entry *small = realloc(c->out, sizeof(*small) * 64);
        if (small != NULL) {
            c->out = small;
            c->outcap = 64;
        }
    }
    if (c->refcap > OUT_KEEP) {
        struct item **small = realloc(c->refs, sizeof(*small) * 32);
        if (small != NULL) {
            c->refs = small;
            c->refcap = 32;
        }
    }
}

void conn_close(struct conn *c)
{
    /* Off the worker's list first: `stats conns` and CLIENT LIST read it
     * from other threads and must not see a closed (or reused) fd. */
    worker_conn_removed(c->worker, c);
    log_trace("<%d connection closed.", c->fd);
    if (watch_on(WATCH_CONNEVENTS)) {
        static const enum watch_close_reason why[] = {
            [CONN_CLOSE_NORMAL] = WATCH_CLOSE_NORMAL, [CONN_CLOSE_ERROR] = WATCH_CLOSE_ERROR,
            [CONN_CLOSE_IDLE] = WATCH_CLOSE_IDLE_TIMEOUT,
            [CONN_CLOSE_SHUTDOWN] = WATCH_CLOSE_SHUTDOWN,
        };
        watch_conn_close((struct sockaddr *)&c->peer, c->peer_len, c->fd, why[c->close_reason]);
    }
    if (c->uc != NULL)
        uring_conn_detach(c);   /* before tp->close: the ring owns the socket */
    else
        event_free(c->ev);
    if (c->proto != NULL && c->proto->release != NULL)
        c->proto->release(c);
    c->tp->close(c);
    if (c->nread_item != NULL)
        item_put(c->nread_item);
    release_output(c);
    STAT_ADD(c->stats, read_buf_count, -2);
    STAT_ADD(c->stats, response_obj_count, -1);
    size_t rcap = c->rcap, wcap = c->wcap;
    c->rcap = c->wcap = 0;
    count_bufs(c, rcap, wcap);
    conn_buffers_free(c);
    free(c);
    stats_conn_closed();
}

/* ---- output ---- */

/* May n more bytes be queued? Past the output limit the connection is
 * done: what it has queued is dropped now (the memory, and the items it
 * pins, go back at once, not after a client that may never read), nothing
 * more is queued, and the state machine closes it. */
static bool out_trip(struct conn *c)
{
    c->out_over = true;
    c->close_after_write = true;
    STAT_INC(c->stats, output_limit_disconnects);
    release_output(c);
    return false;
}

static bool out_admit(struct conn *c, size_t n)
{
    if (c->out_over)
        return false;
    if (max_output == 0 || c->out_bytes + n <= max_output)
        return true;
    return out_trip(c);
}

/* A value sent from its item is admitted while what is queued before it
 * is within the limit, so one value larger than the limit (a RESP GET of
 * a 100 MB string) is served: it is referenced, not copied, and the next
 * thing queued behind it finds the limit passed. */
static bool out_admit_value(struct conn *c)
{
    if (c->out_over)
        return false;
    if (max_output == 0 || c->out_bytes <= max_output)
        return true;
    return out_trip(c);
}

/* Whether the worker's buffers may grow by n more bytes past the ones its
 * connections started with (read_buf_mem_limit; those are bounded by -c). */
static bool bufs_may_grow(const struct conn *c, size_t n)
{
    if (c->stats == NULL || !connmem_limited())
        return true;
    int64_t held = (int64_t)__atomic_load_n(&c->stats->read_buf_bytes, __ATOMIC_RELAXED);
    int64_t conns = (int64_t)__atomic_load_n(&c->stats->read_buf_count, __ATOMIC_RELAXED) / 2;
    return connmem_admit((uint64_t)(held - conns * (RBUF_INIT + WBUF_INIT)), n);
}

static bool ensure_wbuf(struct conn *c, size_t n)
{
    if (c->wcap - c->wlen >= n)
        return true;
    size_t cap = c->wcap;
    while (cap - c->wlen < n)
        cap *= 2;
    char *p = bufs_may_grow(c, cap - c->wcap) ? realloc(c->wbuf, cap) : NULL;
    if (p == NULL) {
        STAT_INC(c->stats, response_obj_oom);   /* the caller closes */
        return false;
    }
    size_t old = c->wcap;
    c->wbuf = p;
    c->wcap = cap;
    count_bufs(c, c->rcap, old);
    return true;
}

static bool push_entry(struct conn *c, const char *base, size_t off, size_t len)
{
    if (c->nout == c->outcap) {
        struct out_entry *p = realloc(c->out, sizeof(*p) * (size_t)c->outcap * 2);
        if (p == NULL)
            return false;
        c->out = p;
        c->outcap *= 2;
    }
    c->out[c->nout++] = (struct out_entry){base, off, len};
    c->out_bytes += len;
    return true;
}

/* Account n bytes just placed at wbuf + wlen, merging with the last entry. */
static void commit_wbuf(struct conn *c, size_t n)
{
    struct out_entry *last = c->nout > c->out_pos ? &c->out[c->nout - 1] : NULL;
    if (last != NULL && last->base == NULL && last->off + last->len == c->wlen) {
        last->len += n;
        c->out_bytes += n;
    } else if (!push_entry(c, NULL, c->wlen, n)) {
        c->close_after_write = true;   /* out of memory: give up on this client */
        return;
    }
    c->wlen += n;
}

void conn_out(struct conn *c, const void *data, size_t n)
{
    if (n == 0 || !out_admit(c, n))
        return;
    if (!ensure_wbuf(c, n)) {
        c->close_after_write = true;
        return;
    }
    memcpy(c->wbuf + c->wlen, data, n);
    commit_wbuf(c, n);
}

char *conn_out_reserve(struct conn *c, size_t n)
{
    if (!out_admit(c, n) || !ensure_wbuf(c, n))
        return NULL;
    return c->wbuf + c->wlen;
}

void conn_out_mark(const struct conn *c, struct conn_out_mark *m)
{
    m->epoch = c->out_epoch;
    m->nout = c->nout;
    m->nrefs = c->nrefs;
    m->wlen = c->wlen;
    m->last_len = c->nout > 0 ? c->out[c->nout - 1].len : 0;
}

bool conn_out_rollback(struct conn *c, const struct conn_out_mark *m)
{
    if (m->epoch != c->out_epoch || c->nout < m->nout)
        return false;
    /* Written already: an entry after the mark, or past the marked end of
     * the last entry before it (new bytes merge into that one). */
    if (c->out_pos > m->nout || (c->out_pos == m->nout && c->out_off > 0 && m->nout < c->nout))
        return false;
    if (m->nout > 0 && c->out_pos == m->nout - 1 && c->out_off > m->last_len)
        return false;
    size_t dropped = 0;   /* out_bytes counts down as bytes are written */
    for (int i = m->nout; i < c->nout; i++)
        dropped += c->out[i].len;
    if (m->nout > 0) {
        dropped += c->out[m->nout - 1].len - m->last_len;
        c->out[m->nout - 1].len = m->last_len;
    }
    for (int i = m->nrefs; i < c->nrefs; i++)
        item_put(c->refs[i]);
    c->nrefs = m->nrefs;
    c->nout = m->nout;
    c->wlen = m->wlen;
    c->out_bytes -= dropped;
    return true;
}

void conn_out_commit(struct conn *c, size_t used)
{
    if (used > 0)
        commit_wbuf(c, used);
}

void conn_out_item(struct conn *c, struct item *it, size_t off, size_t n)
{
    if (!out_admit_value(c))
        return;
    if (n <= OUT_COPY_MAX && !item_is_chunked(it)) {
        conn_out(c, item_value(it) + off, n);
        return;
    }
    if (c->nrefs == c->refcap) {
        struct item **p = realloc(c->refs, sizeof(*p) * (size_t)c->refcap * 2);
        if (p == NULL) {
            c->close_after_write = true;
            return;
        }
        c->refs = p;
        c->refcap *= 2;
    }
    item_incref(it);
    c->refs[c->nrefs++] = it;
    if (!item_is_chunked(it)) {
        if (!push_entry(c, item_value(it) + off, 0, n))
            c->close_after_write = true;
        return;
    }
    struct iovec iov[16];
    while (n > 0) {
        int cnt = item_value_iov(it, off, iov, 16);
        if (cnt <= 0)
            break;
        for (int i = 0; i < cnt && n > 0; i++) {
            size_t len = iov[i].iov_len < n ? iov[i].iov_len : n;
            if (!push_entry(c, iov[i].iov_base, 0, len)) {
                c->close_after_write = true;
                return;
            }
            off += len;
            n -= len;
        }
    }
}

void conn_out_value_end(struct conn *c)
{
    if (c->out_over)
        return;
    if (!ensure_wbuf(c, 2)) {
        c->close_after_write = true;
        return;
    }
    memcpy(c->wbuf + c->wlen, "\r\n", 2);
    commit_wbuf(c, 2);
}

bool conn_out_full(const struct conn *c)
{
    if (c->out_bytes >= OUT_FULL_BYTES || c->nout >= OUT_FULL_ENTRIES || c->out_over)
        return true;
    /* At the buffer memory limit, output that would need a larger write
     * buffer waits for this one to be written: the protocol yields. */
    return connmem_limited() && c->wcap - c->wlen < OUT_ROOM && !bufs_may_grow(c, c->wcap);
}

enum flush_result conn_flush(struct conn *c)
{
    struct iovec iov[WRITE_IOV];
    while (c->out_pos < c->nout) {
        int cnt = 0;
        for (int i = c->out_pos; i < c->nout && cnt < WRITE_IOV; i++) {
            const struct out_entry *e = &c->out[i];
            const char *base = e->base != NULL ? e->base : c->wbuf + e->off;
            size_t skip = i == c->out_pos ? c->out_off : 0;
            iov[cnt].iov_base = (void *)(base + skip);
            iov[cnt].iov_len = e->len - skip;
            cnt++;
        }
        ssize_t n = c->tp->writev(c, iov, cnt);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return FLUSH_BLOCKED;
            return FLUSH_ERROR;
        }
        STAT_ADD(c->stats, bytes_written, n);
        if (n > 0)
            c->last_write = c->now;
        size_t left = (size_t)n;
        c->out_bytes -= left;
        while (left > 0) {
            size_t rem = c->out[c->out_pos].len - c->out_off;
            if (left >= rem) {
                left -= rem;
                c->out_pos++;
                c->out_off = 0;
            } else {
                c->out_off += left;
                left = 0;
            }
        }
    }
    release_output(c);
    return FLUSH_DONE;
}

/* ---- input ---- */

void conn_consume(struct conn *c, size_t n)
{
    c->rpos += n;
    if (c->rpos == c->rend)
        c->rpos = c->rend = 0;
}

bool conn_budget(struct conn *c)
{
    if (c->budget <= 0)
        return false;
    c->budget--;
    return true;
}

enum fill_result { FILL_OK, FILL_DRAINED, FILL_AGAIN, FILL_EOF };

/* Read once from the socket into the read buffer. */
/* An empty read buffer that grew for a large request goes back to its
 * first size. Only where no parsed request points into it. */
static void shrink_rbuf(struct conn *c)
{
    if (c->rpos == c->rend && c->rcap > RBUF_KEEP) {
        char *small = realloc(c->rbuf, RBUF_INIT);
        if (small != NULL) {
            size_t old = c->rcap;
            c->rbuf = small;
            c->rcap = RBUF_INIT;
            c->rpos = c->rend = 0;
            count_bufs(c, old, c->wcap);
        }
    }
}

static enum fill_result conn_fill(struct conn *c)
{
    if (c->draining)
        return FILL_EOF;   /* stopping: as if the client had sent its last byte */
    shrink_rbuf(c);
    if (c->rpos > 0 && c->rpos == c->rend) {
        c->rpos = c->rend = 0;
    } else if (c->rpos > 0 && c->rcap - c->rend < c->rcap / 4) {
        memmove(c->rbuf, c->rbuf + c->rpos, c->rend - c->rpos);
        c->rend -= c->rpos;
        c->rpos = 0;
    }
    if (c->rend == c->rcap) {
        if (c->rpos > 0) {
            memmove(c->rbuf, c->rbuf + c->rpos, c->rend - c->rpos);
            c->rend -= c->rpos;
            c->rpos = 0;
        } else {
            if (c->rcap >= RBUF_MAX)
                return FILL_EOF;   /* a protocol let a request outgrow every limit */
            char *p = bufs_may_grow(c, c->rcap) ? realloc(c->rbuf, c->rcap * 2) : NULL;
            if (p == NULL) {
                STAT_INC(c->stats, read_buf_oom);
                if (c->proto == protocols->text && c->proto != protocols->binary)
                    CONN_OUT_LIT(c, "SERVER_ERROR out of memory reading request\r\n");
                return FILL_EOF;
            }
            c->rbuf = p;
            c->rcap *= 2;
            count_bufs(c, c->rcap / 2, c->wcap);
        }
    }
    size_t space = c->rcap - c->rend;
    for (;;) {
        ssize_t n = c->tp->read(c, c->rbuf + c->rend, space);
        if (n > 0) {
            c->rend += (size_t)n;
            STAT_ADD(c->stats, bytes_read, n);
            return (size_t)n < space ? FILL_DRAINED : FILL_OK;
        }
        if (n == 0)
            return FILL_EOF;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return FILL_AGAIN;
        return FILL_EOF;
    }
}

bool conn_read_value(struct conn *c, struct item *it, size_t n)
{
    size_t have = conn_rlen(c);
    size_t take = have < n ? have : n;
    item_value_write(it, 0, conn_rbuf(c), take);
    conn_consume(c, take);
    c->nread_item = it;
    c->nread_off = take;
    c->nread_len = n;
    if (take == n)
        return true;
    set_state(c, CS_NREAD);
    return false;
}

struct item *conn_take_value(struct conn *c)
{
    struct item *it = c->nread_item;
    c->nread_item = NULL;
    return it;
}

void conn_swallow(struct conn *c, size_t n)
{
    size_t have = conn_rlen(c);
    size_t take = have < n ? have : n;
    conn_consume(c, take);
    if (take < n) {
        c->swallow = n - take;
        set_state(c, CS_SWALLOW);
    }
}

bool conn_drop_input(struct conn *c)
{
    bool cut = c->state == CS_NREAD;
    if (c->nread_item != NULL)
        item_put(c->nread_item);
    c->nread_item = NULL;
    c->nread_off = c->nread_len = c->swallow = 0;
    c->rpos = c->rend = 0;
    c->close_after_write = c->out_over = false;
    set_state(c, CS_READ);
    return cut;
}

bool conn_in_value(const struct conn *c)
{
    return c->state == CS_NREAD || c->state == CS_SWALLOW;
}

/* Move bytes towards the value being read. Returns FILL_OK when complete.
 * A socket read that came back short sets *drained (a full one clears it),
 * so the parse that follows the value does not read again into EAGAIN. */
static enum fill_result nread_step(struct conn *c, bool *drained)
{
    size_t left = c->nread_len - c->nread_off;
    if (left > DIRECT_READ_MIN) {
        struct iovec iov[1];
        if (item_value_iov(c->nread_item, c->nread_off, iov, 1) != 1)
            return FILL_EOF;
        size_t want = iov[0].iov_len < left ? iov[0].iov_len : left;
        ssize_t n = c->tp->read(c, iov[0].iov_base, want);
        if (n == 0)
            return FILL_EOF;
        if (n < 0) {
            if (errno == EINTR)
                return FILL_DRAINED;
            return (errno == EAGAIN || errno == EWOULDBLOCK) ? FILL_AGAIN : FILL_EOF;
        }
        STAT_ADD(c->stats, bytes_read, n);
        c->nread_off += (size_t)n;
        *drained = (size_t)n < want;
    } else {
        if (conn_rlen(c) == 0) {
            enum fill_result r = conn_fill(c);
            if (r == FILL_AGAIN || r == FILL_EOF)
                return r;
            *drained = r == FILL_DRAINED;
        }
        size_t take = conn_rlen(c) < left ? conn_rlen(c) : left;
        item_value_write(c->nread_item, c->nread_off, conn_rbuf(c), take);
        conn_consume(c, take);
        c->nread_off += take;
    }
    return c->nread_off == c->nread_len ? FILL_OK : FILL_DRAINED;
}

/* Discard bytes of a refused value; *drained as for nread_step(). */
static enum fill_result swallow_step(struct conn *c, bool *drained)
{
    if (conn_rlen(c) == 0) {
        enum fill_result r = conn_fill(c);
        if (r == FILL_AGAIN || r == FILL_EOF)
            return r;
        *drained = r == FILL_DRAINED;
    }
    size_t take = conn_rlen(c) < c->swallow ? conn_rlen(c) : c->swallow;
    conn_consume(c, take);
    c->swallow -= take;
    return c->swallow == 0 ? FILL_OK : FILL_DRAINED;
}

/* ---- the state machine ---- */

static void set_interest(struct conn *c, short flags)
{
    if (c->uc != NULL) {   /* the ring arms a receive each time c waits */
        c->ev_flags = flags;
        uring_conn_want(c, flags);
        return;
    }
    if (c->ev_flags == flags)
        return;
    event_del(c->ev);
    event_assign(c->ev, c->worker->base, c->fd, flags | EV_PERSIST, conn_event, c);
    event_add(c->ev, NULL);
    c->ev_flags = flags;
}

/* Run c again soon, after the worker's other ready connections. */
static void activate(struct conn *c)
{
    if (c->uc != NULL)
        uring_conn_activate(c);
    else
        event_active(c->ev, EV_READ, 0);
}

static bool choose_proto(struct conn *c)
{
    unsigned char b = (unsigned char)c->rbuf[c->rpos];
    if (c->kind == LISTENER_RESP)
        c->proto = protocols->resp;
    else if (b == 0x80 && protocols->binary != NULL)
        c->proto = protocols->binary;
    else if ((b == '*' || (b >= 'A' && b <= 'Z')) && protocols->resp != NULL &&
             protocols->resp_by_first_byte)
        /* memcached's commands are lower case (it answers ERROR to "GET"),
         * so a capital letter is a Redis inline command ("PING"). */
        c->proto = protocols->resp;
    else
        c->proto = protocols->text;
    return c->proto != NULL;
}

/* Apply a protocol's result. Returns false when the connection must stop
 * for now (yield); the state is set for what follows. */
static bool apply_result(struct conn *c, enum proc_result r, bool *need_input)
{
    switch (r) {
    case PROC_MORE:
        *need_input = true;
        return true;
    case PROC_YIELD:
        return false;
    case PROC_NREAD:
        /* conn_read_value()/conn_swallow() already set the state */
        return true;
    case PROC_CLOSE:
        set_state(c, CS_CLOSING);
        return true;
    }
    return true;
}

/* Write what is queued. False when the caller must stop: the connection
 * was closed on an error, or waits for the socket to take more. */
static bool flush_or_wait(struct conn *c)
{
    if (c->out_pos == c->nout)
        return true;
    enum flush_result f = conn_flush(c);
    if (f == FLUSH_ERROR) {
        c->close_reason = CONN_CLOSE_ERROR;
        conn_close(c);
        return false;
    }
    if (f == FLUSH_BLOCKED) {
        set_interest(c, EV_WRITE);
        return false;
    }
    return true;
}

/* Flush, then wait for input (or for the socket to take more output). */
static void wait_input(struct conn *c)
{
    if (!flush_or_wait(c))
        return;
    if (c->close_after_write) {
        conn_close(c);
        return;
    }
    shrink_rbuf(c);   /* going idle: keep little */
    set_interest(c, EV_READ);
}

static void conn_drive(struct conn *c)
{
    bool need_input = false, drained = false;
    c->now = clock_now_ms();
    c->budget = reqs_per_event;

    if (!flush_or_wait(c))
        return;
    if (c->pump != NULL) {
        c->pump(c, c->pump_arg);   /* queues output; written below */
        if (!flush_or_wait(c))
            return;
    }
    for (;;) {
        enum fill_result fr;
        if (c->close_after_write && c->state != CS_CLOSING)
            set_state(c, CS_CLOSING);
        uint8_t st = c->state;
        switch (st) {
        case CS_READ:
            if (!need_input && conn_rlen(c) > 0) {
                if (c->proto == NULL && !choose_proto(c)) {
                    conn_close(c);
                    return;
                }
                if (c->budget <= 0 || conn_out_full(c))
                    goto yield;
                __atomic_store_n(&c->last_cmd, c->now, __ATOMIC_RELAXED);
                if (!apply_result(c, c->proto->process(c), &need_input))
                    goto yield;
                continue;
            }
            if (drained) {
                wait_input(c);
                return;
            }
            fr = conn_fill(c);
            break;
        case CS_NREAD:
            fr = nread_step(c, &drained);
            break;
        case CS_SWALLOW:
            fr = swallow_step(c, &drained);
            break;
        case CS_CLOSING:
        default:
            c->close_after_write = true;
            wait_input(c);
            return;
        }
        if (fr == FILL_EOF) {
            /* The peer has sent all it will (it may only have shut down its
             * side): write the replies it is owed, then close. */
            c->close_after_write = true;
            set_state(c, CS_CLOSING);
            continue;
        }
        if (fr == FILL_AGAIN) {
            wait_input(c);
            return;
        }
        need_input = false;
        if (st == CS_READ) {
            drained = fr == FILL_DRAINED;
            continue;
        }
        if (fr != FILL_OK)
            continue;   /* value or skipped bytes still incomplete */
        set_state(c, CS_READ);
        if (st == CS_NREAD) {
            /* MORE from value_done means "carry on": what follows the
             * value may already be buffered, so parse before reading. */
            bool ignored = false;
            if (!apply_result(c, c->proto->value_done(c), &ignored))
                goto yield;
        }
    }
yield:
    /* Budget spent or output full: write, then let the worker's other
     * connections run before this one continues. */
    STAT_INC(c->stats, conn_yields);
    if (!flush_or_wait(c))
        return;
    set_interest(c, EV_READ);
    activate(c);
}

static void conn_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn_drive(arg);
}

void conn_ready(struct conn *c)
{
    conn_drive(c);
}

void conn_activate(struct conn *c)
{
    activate(c);
}

short conn_nested_events(const struct conn *c)
{
    const struct proto_ops *resp = protocols->resp;
    if (resp == NULL || (c->proto != NULL && c->proto != resp))
        return 0;
    /* No protocol yet: only the first bytes tell, unless the listener did. */
    if (c->proto == NULL && c->kind != LISTENER_RESP && !protocols->resp_by_first_byte)
        return 0;
    return (c->ev_flags & EV_WRITE) ? POLLOUT : POLLIN;
}

void conn_serve_nested(struct conn *c)
{
    if (c->proto == NULL && c->kind != LISTENER_RESP && c->state == CS_READ) {
        /* Read the first bytes to learn the protocol. Anything but RESP is
         * left, bytes buffered, to its own event, after the request that
         * serves us here is over. */
        if (conn_rlen(c) == 0) {
            enum fill_result fr = conn_fill(c);
            if (fr == FILL_AGAIN)
                return;
            if (fr == FILL_EOF) {
                activate(c);   /* its read finds the end again */
                return;
            }
        }
        if (!choose_proto(c) || c->proto != protocols->resp) {
            activate(c);
            return;
        }
    }
    conn_drive(c);
}

void conn_shutdown(struct conn *c)
{
    /* Reads find the end of input from now on, which the state machine
     * already handles: requests read are answered (a multi-get in the
     * middle of its reply finishes it), an incomplete one is dropped, and
     * the connection closes once its output is written. Its own event runs
     * that, since it may be waiting for the socket to take output. */
    c->draining = true;
    c->close_reason = CONN_CLOSE_SHUTDOWN;
    activate(c);
}

bool conn_idle_kick(struct conn *c, int64_t now)
{
    uint8_t st = c->state;
    if (idle_timeout_ms == 0 || st == CS_NREAD || st == CS_SWALLOW || c->streaming)
        return false;
    int64_t last = c->last_cmd > c->last_write ? c->last_cmd : c->last_write;
    if (now - last <= idle_timeout_ms)
        return false;
    STAT_INC(c->stats, idle_kicks);
    c->close_reason = CONN_CLOSE_IDLE;
    conn_close(c);
    return true;
}

/* ---- introspection ---- */

void conn_peer_name(const struct conn *c, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    const struct sockaddr *sa = (const struct sockaddr *)&c->peer;
    if (c->peer_len == 0 || sa->sa_family == AF_UNIX) {
        snprintf(buf, len, "unix");
    } else if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        snprintf(buf, len, "%s:%u", host, ntohs(in->sin_port));
    } else {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        snprintf(buf, len, "[%s]:%u", host, ntohs(in6->sin6_port));
    }
}

const char *conn_state_name(const struct conn *c)
{
    if (__atomic_load_n(&c->streaming, __ATOMIC_RELAXED))
        return "conn_watch";   /* memcached's name for a `watch` stream */
    switch (__atomic_load_n(&c->state, __ATOMIC_RELAXED)) {
    case CS_READ: return "conn_parse_cmd";
    case CS_NREAD: return "conn_nread";
    case CS_SWALLOW: return "conn_swallow";
    default: return "conn_closing";
    }
}
