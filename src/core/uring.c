/*
 * A worker's io_uring loop (-o io_uring).
 *
 * With libevent a request costs epoll_wait's share, a read(2) and a
 * write(2): at one request per connection in flight that is two or three
 * kernel crossings a request. Here the ring does the socket I/O and the
 * worker enters the kernel once per loop iteration, whatever the number of
 * connections that were served in it:
 *
 *   wait   io_uring_enter submits the sends queued in the last iteration
 *          and waits for completions (receives, sends, the notify pipe)
 *   reap   a receive leaves its bytes in the connection's receive buffer
 *          and queues the connection; a send that finished makes room
 *   run    each queued connection runs its state machine (conn_ready), as
 *          an event would under libevent; its transport's read copies
 *          from the receive buffer, its writev copies into a send buffer
 *   send   each connection with output gets one send for all of it
 *
 * Receives are multishot and take their buffers from a ring of NBUF
 * buffers the worker shares among its connections (provided buffers), so
 * an idle connection holds no receive memory and a waiting one costs no
 * new request: the receive stays armed. A connection with RX_PAUSE
 * buffers' worth of input it has not read has its receive cancelled, and
 * re-armed once it has read it all, so a client that does not read its
 * replies stops being read, as with libevent (backpressure). A connection
 * that still holds buffers when the iteration ends and is not about to
 * run again (it waits to write, not to read) moves their bytes to memory
 * of its own and gives the buffers back, so stalled clients cannot empty
 * the ring for the others. When the ring runs dry all the same, the
 * receives that found it empty wait until a quarter of it is back. Output is
 * double-buffered: one buffer in flight, the other filling, each at most
 * TX_MAX; a full one makes writev say EAGAIN and the connection wait for
 * EV_WRITE, which the end of the send in flight gives.
 *
 * A closed connection's queued output still goes out: its uconn lingers,
 * owning the socket, until its sends are done, then closes it. A
 * connection closed for passing the output limit drops it instead.
 *
 * The ring is created by the thread that runs it (SINGLE_ISSUER,
 * DEFER_TASKRUN: completions are posted only when this thread asks, so
 * none interrupt it). That needs Linux 6.1, which also has multishot
 * receives and buffer rings; an older kernel leaves the worker on
 * libevent. Nothing here is shared.
 */
#include "core/uring.h"

#include <errno.h>
#include <event2/event.h>
#include <liburing.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/conn.h"
#include "util/clock.h"

#define RING_ENTRIES 1024
#define NBUF 256                    /* receive buffers per worker (a power of 2) */
#define BUF_SZ (16 * 1024)          /* one receive; a larger value takes several */
#define BGID 0
#define RX_PAUSE 4                  /* buffers' worth unread that stops the receive */
#define NO_BUF 0xffff
#define TX_INIT 4096
#define TX_MAX (256 * 1024)         /* per buffer, two per connection */
#define TX_KEEP (16 * 1024)         /* a send buffer kept after a large reply */
#define TICK_MS 1000
/* A closed connection's output not taken by its client in this long is
 * dropped (the socket shut down), so a client that never reads cannot
 * keep a socket and its buffers forever. */
#define LINGER_MS 30000

/* The low bits of a completion's user_data say what it was for. */
enum { OP_NONE = 0, OP_RECV = 1, OP_SEND = 2, OP_NOTIFY = 3, OP_MASK = 7 };

struct uconn {
    struct conn *c;                 /* NULL once the connection closed */
    struct uring *r;
    int fd;
    short want;                     /* EV_READ / EV_WRITE */
    bool queued, dirty, recv_armed, sending, eof, closing, cut;
    bool pausing;                   /* its receive is being cancelled */
    bool starved;                   /* on the ring's starved list */
    int rx_err, tx_err;             /* errno of a failed receive / send */
    int64_t linger_until;           /* kioku ms, once closing */
    struct uconn *qprev, *qnext;    /* ready queue */
    struct uconn *dnext;            /* output to start */
    struct uconn *aprev, *anext;    /* every uconn of the ring */
    struct uconn *snext;            /* starved list */
    struct uconn *hnext;            /* holders list */
    bool holding;                   /* on it */
    char *spill;                    /* bytes moved out of the ring's buffers */
    size_t spill_off, spill_len;
    uint16_t rx_head, rx_tail;      /* received buffers not read yet, in order */
    unsigned rx_nbuf;
    uint32_t rx_off;                /* read so far of the first */
    char *pend, *fly;               /* filling / in flight */
    size_t pend_len, pend_cap, fly_len, fly_off, fly_cap;
};

struct uring {
    struct io_uring ring;
    struct uring_hooks hooks;
    int notify_fd;
    bool notify_armed;
    bool done;                      /* uring_stop(0): leave once nothing lingers */
    struct io_uring_buf_ring *br;
    char *bufs;                     /* NBUF * BUF_SZ */
    uint16_t bnext[NBUF];           /* a uconn's buffers, chained */
    uint32_t blen[NBUF];            /* bytes received into each */
    unsigned held;                  /* buffers out of the ring */
    struct uconn *starved;          /* receives that found the ring empty */
    struct uconn *holders;          /* got buffers this iteration */
    struct uconn *qhead, *qtail;
    int nqueued;
    struct uconn *dirty;
    struct uconn *all;
    int nlinger;
    int64_t stop_at;                /* kioku ms, 0: none */
    int64_t next_tick;
    int64_t next_linger_check;
};

static struct io_uring_sqe *sqe_get(struct uring *r)
{
    struct io_uring_sqe *s = io_uring_get_sqe(&r->ring);
    if (s == NULL) {   /* the queue is full: hand it to the kernel, take a slot */
        io_uring_submit(&r->ring);
        s = io_uring_get_sqe(&r->ring);
    }
    return s;
}

static uint64_t tag(const void *p, unsigned op)
{
    return (uint64_t)(uintptr_t)p | op;
}

/* ---- the ready queue ---- */

static void enqueue(struct uconn *uc)
{
    struct uring *r = uc->r;
    if (uc->queued)
        return;
    uc->queued = true;
    uc->qnext = NULL;
    uc->qprev = r->qtail;
    if (r->qtail != NULL)
        r->qtail->qnext = uc;
    else
        r->qhead = uc;
    r->qtail = uc;
    r->nqueued++;
}

static void dequeue(struct uconn *uc)
{
    struct uring *r = uc->r;
    if (!uc->queued)
        return;
    if (uc->qprev != NULL)
        uc->qprev->qnext = uc->qnext;
    else
        r->qhead = uc->qnext;
    if (uc->qnext != NULL)
        uc->qnext->qprev = uc->qprev;
    else
        r->qtail = uc->qprev;
    uc->queued = false;
    r->nqueued--;
}

/* ---- receive buffers ---- */

static void buf_give(struct uring *r, uint16_t bid)
{
    io_uring_buf_ring_add(r->br, r->bufs + (size_t)bid * BUF_SZ, BUF_SZ, bid,
                          io_uring_buf_ring_mask(NBUF), 0);
    io_uring_buf_ring_advance(r->br, 1);
    r->held--;
}

static void rx_push(struct uconn *uc, uint16_t bid, uint32_t len)
{
    struct uring *r = uc->r;
    r->blen[bid] = len;
    r->bnext[bid] = NO_BUF;
    if (uc->rx_nbuf == 0)
        uc->rx_head = bid;
    else
        r->bnext[uc->rx_tail] = bid;
    uc->rx_tail = bid;
    uc->rx_nbuf++;
}

static void rx_pop(struct uconn *uc)
{
    uint16_t bid = uc->rx_head;
    uc->rx_head = uc->r->bnext[bid];
    uc->rx_off = 0;
    uc->rx_nbuf--;
    buf_give(uc->r, bid);
}

static void rx_drop(struct uconn *uc)
{
    while (uc->rx_nbuf > 0)
        rx_pop(uc);
}

/* ---- I/O ---- */

static void cancel_recv(struct uconn *uc)
{
    struct io_uring_sqe *s = sqe_get(uc->r);
    if (s == NULL)
        return;
    io_uring_prep_cancel64(s, tag(uc, OP_RECV), 0);
    io_uring_sqe_set_data64(s, OP_NONE);
}

static void arm_recv(struct uconn *uc)
{
    if (uc->recv_armed || uc->starved || uc->eof || uc->rx_err != 0 || uc->closing)
        return;
    struct io_uring_sqe *s = sqe_get(uc->r);
    if (s == NULL) {
        uc->rx_err = EBUSY;   /* no slot even after a submit: give up on the client */
        return;
    }
    /* The socket was just drained: wait for input before trying. */
    io_uring_prep_recv_multishot(s, uc->fd, NULL, 0, 0);
    s->ioprio |= IORING_RECVSEND_POLL_FIRST;
    s->flags |= IOSQE_BUFFER_SELECT;
    s->buf_group = BGID;
    io_uring_sqe_set_data64(s, tag(uc, OP_RECV));
    uc->recv_armed = true;
}

static void prep_send(struct uconn *uc)
{
    struct io_uring_sqe *s = sqe_get(uc->r);
    if (s == NULL) {
        uc->tx_err = EBUSY;
        return;
    }
    io_uring_prep_send(s, uc->fd, uc->fly + uc->fly_off, uc->fly_len - uc->fly_off, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(s, tag(uc, OP_SEND));
    uc->sending = true;
}

static void mark_dirty(struct uconn *uc)
{
    if (uc->dirty)
        return;
    uc->dirty = true;
    uc->dnext = uc->r->dirty;
    uc->r->dirty = uc;
}

static void uconn_free(struct uconn *uc)
{
    struct uring *r = uc->r;
    if (uc->aprev != NULL)
        uc->aprev->anext = uc->anext;
    else
        r->all = uc->anext;
    if (uc->anext != NULL)
        uc->anext->aprev = uc->aprev;
    rx_drop(uc);
    free(uc->spill);
    free(uc->pend);
    free(uc->fly);
    free(uc);
}

/* A closed connection's uconn goes once nothing of it is in flight or owed. */
static void linger_check(struct uconn *uc)
{
    if (!uc->closing || uc->recv_armed || uc->sending || uc->dirty || uc->starved || uc->holding)
        return;
    if (uc->pend_len > 0 && uc->tx_err == 0)
        return;
    close(uc->fd);
    uc->r->nlinger--;
    uconn_free(uc);
}

/* Each connection's output so far leaves in one send. */
static void start_sends(struct uring *r)
{
    struct uconn *uc = r->dirty;
    r->dirty = NULL;
    while (uc != NULL) {
        struct uconn *next = uc->dnext;
        uc->dirty = false;
        if (!uc->sending && uc->pend_len > 0 && uc->tx_err == 0) {
            char *b = uc->fly;
            size_t cap = uc->fly_cap;
            uc->fly = uc->pend;
            uc->fly_cap = uc->pend_cap;
            uc->fly_len = uc->pend_len;
            uc->fly_off = 0;
            uc->pend = b;
            uc->pend_cap = cap;
            uc->pend_len = 0;
            prep_send(uc);
        }
        linger_check(uc);   /* a closed one with nothing left to send goes */
        uc = next;
    }
}

static void on_recv(struct uconn *uc, int res, unsigned flags)
{
    struct uring *r = uc->r;
    if (!(flags & IORING_CQE_F_MORE)) {
        uc->recv_armed = false;
        uc->pausing = false;
    }
    if (flags & IORING_CQE_F_BUFFER) {
        uint16_t bid = (uint16_t)(flags >> IORING_CQE_BUFFER_SHIFT);
        r->held++;
        if (res > 0 && uc->c != NULL) {
            rx_push(uc, bid, (uint32_t)res);
            if (!uc->holding) {
                uc->holding = true;
                uc->hnext = r->holders;
                r->holders = uc;
            }
            size_t unread = uc->spill_len - uc->spill_off + (size_t)uc->rx_nbuf * BUF_SZ;
            if (uc->recv_armed && !uc->pausing && unread >= (size_t)RX_PAUSE * BUF_SZ) {
                uc->pausing = true;   /* read what is here first */
                cancel_recv(uc);
            }
        } else {
            buf_give(r, bid);   /* the connection is gone: nobody reads it */
        }
    }
    if (res == 0) {
        uc->eof = true;
    } else if (res == -ENOBUFS) {
        if (!uc->starved) {
            uc->starved = true;
            uc->snext = r->starved;
            r->starved = uc;
        }
    } else if (res < 0 && res != -ECANCELED && res != -EAGAIN && res != -EINTR) {
        uc->rx_err = -res;
    }
    if (uc->c != NULL)
        enqueue(uc);
    else
        linger_check(uc);
}

/* Once a quarter of the buffers is back, the receives that found none
 * are armed again (their connections run, read nothing and re-arm). */
static void wake_starved(struct uring *r)
{
    if (r->starved == NULL || NBUF - r->held < NBUF / 4)
        return;
    struct uconn *uc = r->starved;
    r->starved = NULL;
    while (uc != NULL) {
        struct uconn *next = uc->snext;
        uc->starved = false;
        if (uc->c != NULL)
            enqueue(uc);
        else
            linger_check(uc);
        uc = next;
    }
}

static void on_send(struct uconn *uc, int res)
{
    uc->sending = false;
    if (res >= 0) {
        uc->fly_off += (size_t)res;
        if (uc->fly_off < uc->fly_len && uc->tx_err == 0) {
            prep_send(uc);   /* the socket took part: send the rest */
            return;
        }
    } else if (res == -EINTR || res == -EAGAIN) {
        prep_send(uc);
        return;
    } else {
        uc->tx_err = -res;
    }
    uc->fly_len = uc->fly_off = 0;
    if (uc->fly_cap > TX_KEEP) {   /* after a large reply, give the memory back */
        free(uc->fly);
        uc->fly = NULL;
        uc->fly_cap = 0;
    }
    if (uc->pend_len > 0 && uc->tx_err == 0)
        mark_dirty(uc);
    if (uc->c == NULL)
        linger_check(uc);
    else if ((uc->want & EV_WRITE) || uc->tx_err != 0)
        enqueue(uc);
}

static void arm_notify(struct uring *r)
{
    struct io_uring_sqe *s = sqe_get(r);
    if (s == NULL)
        return;
    io_uring_prep_poll_multishot(s, r->notify_fd, POLLIN);
    io_uring_sqe_set_data64(s, tag(r, OP_NOTIFY));
    r->notify_armed = true;
}

static void reap(struct uring *r)
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&r->ring, head, cqe) {
        uint64_t ud = cqe->user_data;
        unsigned op = (unsigned)(ud & OP_MASK);
        void *p = (void *)(uintptr_t)(ud & ~(uint64_t)OP_MASK);
        n++;
        if (op == OP_NOTIFY) {
            if (!(cqe->flags & IORING_CQE_F_MORE))
                r->notify_armed = false;
            r->hooks.notify(r->hooks.arg);
        } else if (op == OP_RECV) {
            on_recv(p, cqe->res, cqe->flags);
        } else if (op == OP_SEND) {
            on_send(p, cqe->res);
        }
    }
    io_uring_cq_advance(&r->ring, n);
}

/* Bytes a stalled connection did not read leave the ring's buffers for
 * memory of its own. */
static void spill(struct uconn *uc)
{
    struct uring *r = uc->r;
    size_t left = uc->spill_len - uc->spill_off, more = 0;
    uint16_t bid = uc->rx_head;
    for (unsigned i = 0; i < uc->rx_nbuf; i++, bid = r->bnext[bid])
        more += r->blen[bid] - (i == 0 ? uc->rx_off : 0);
    char *p = malloc(left + more);
    if (p == NULL)
        return;   /* keep the buffers: the ring may run dry, not lose bytes */
    if (left > 0)
        memcpy(p, uc->spill + uc->spill_off, left);
    free(uc->spill);
    uc->spill = p;
    uc->spill_off = 0;
    uc->spill_len = left;
    while (uc->rx_nbuf > 0) {
        bid = uc->rx_head;
        size_t k = r->blen[bid] - uc->rx_off;
        memcpy(p + uc->spill_len, r->bufs + (size_t)bid * BUF_SZ + uc->rx_off, k);
        uc->spill_len += k;
        rx_pop(uc);
    }
}

/* After the iteration's connections ran: one that holds buffers and
 * will not run in the next iteration spills them. */
static void spill_holders(struct uring *r)
{
    struct uconn **pp = &r->holders;
    while (*pp != NULL) {
        struct uconn *uc = *pp;
        if (uc->c != NULL && uc->rx_nbuf > 0 && uc->queued) {
            pp = &uc->hnext;
            continue;
        }
        if (uc->c != NULL && uc->rx_nbuf > 0)
            spill(uc);
        *pp = uc->hnext;
        uc->holding = false;
        if (uc->c == NULL)
            linger_check(uc);
    }
}

/* ---- the transport ---- */

static ssize_t ur_read(struct conn *c, void *buf, size_t n)
{
    struct uconn *uc = c->uc;
    struct uring *r = uc->r;
    size_t got = 0;
    if (uc->spill_len > uc->spill_off) {
        size_t have = uc->spill_len - uc->spill_off;
        got = have < n ? have : n;
        memcpy(buf, uc->spill + uc->spill_off, got);
        uc->spill_off += got;
        if (uc->spill_off == uc->spill_len) {
            free(uc->spill);
            uc->spill = NULL;
            uc->spill_off = uc->spill_len = 0;
        }
    }
    while (got < n && uc->rx_nbuf > 0) {
        uint16_t bid = uc->rx_head;
        size_t have = r->blen[bid] - uc->rx_off;
        size_t k = have < n - got ? have : n - got;
        memcpy((char *)buf + got, r->bufs + (size_t)bid * BUF_SZ + uc->rx_off, k);
        got += k;
        uc->rx_off += (uint32_t)k;
        if (uc->rx_off == r->blen[bid])
            rx_pop(uc);
    }
    if (got > 0)
        return (ssize_t)got;
    if (uc->eof)
        return 0;
    if (uc->rx_err != 0) {
        errno = uc->rx_err;
        return -1;
    }
    arm_recv(uc);
    errno = EAGAIN;
    return -1;
}

static ssize_t ur_writev(struct conn *c, const struct iovec *iov, int iovcnt)
{
    struct uconn *uc = c->uc;
    if (uc->tx_err != 0) {
        errno = uc->tx_err;
        return -1;
    }
    size_t room = TX_MAX - uc->pend_len, want = 0;
    for (int i = 0; i < iovcnt && want < room; i++)
        want += iov[i].iov_len;
    if (want > room)
        want = room;
    if (want == 0) {
        errno = EAGAIN;
        return -1;
    }
    if (uc->pend_cap - uc->pend_len < want) {
        size_t cap = uc->pend_cap > 0 ? uc->pend_cap : TX_INIT;
        while (cap - uc->pend_len < want)
            cap *= 2;
        if (cap > TX_MAX)
            cap = TX_MAX;
        char *p = realloc(uc->pend, cap);
        if (p == NULL) {
            errno = uc->pend_len > 0 ? EAGAIN : ENOMEM;
            return -1;
        }
        uc->pend = p;
        uc->pend_cap = cap;
    }
    size_t left = want;
    for (int i = 0; i < iovcnt && left > 0; i++) {
        size_t k = iov[i].iov_len < left ? iov[i].iov_len : left;
        memcpy(uc->pend + uc->pend_len, iov[i].iov_base, k);
        uc->pend_len += k;
        left -= k;
    }
    mark_dirty(uc);
    return (ssize_t)want;
}

/* The socket belongs to the uconn, which closes it once its output is out
 * (uring_conn_detach runs first, from conn_close). */
static void ur_close(struct conn *c)
{
    (void)c;
}

static const struct transport transport_uring = {
    .name = "io_uring", .read = ur_read, .writev = ur_writev, .close = ur_close,
};

/* ---- for conn.c ---- */

int uring_conn_attach(struct uring *r, struct conn *c)
{
    struct uconn *uc = calloc(1, sizeof(*uc));
    if (uc == NULL)
        return -1;
    uc->c = c;
    uc->r = r;
    uc->fd = c->fd;
    uc->anext = r->all;
    if (r->all != NULL)
        r->all->aprev = uc;
    r->all = uc;
    c->uc = uc;
    c->tp = &transport_uring;
    return 0;
}

void uring_conn_want(struct conn *c, short ev)
{
    struct uconn *uc = c->uc;
    uc->want = ev;
    /* Level-triggered, as the epoll loop is: input already here runs c. */
    if (ev & EV_READ) {
        if (uc->rx_nbuf > 0 || uc->spill_len > 0 || uc->eof || uc->rx_err != 0)
            enqueue(uc);
        else
            arm_recv(uc);
    }
    if ((ev & EV_WRITE) && (uc->pend_len < TX_MAX || uc->tx_err != 0))
        enqueue(uc);
}

void uring_conn_activate(struct conn *c)
{
    enqueue(c->uc);
}

void uring_conn_detach(struct conn *c)
{
    struct uconn *uc = c->uc;
    struct uring *r = uc->r;
    c->uc = NULL;
    uc->c = NULL;
    uc->closing = true;
    uc->linger_until = clock_now_ms() + LINGER_MS;
    dequeue(uc);
    r->nlinger++;
    if (c->out_over) {
        /* Past the output limit: what was accepted is dropped too. */
        uc->pend_len = 0;
        if (uc->sending) {
            struct io_uring_sqe *s = sqe_get(r);
            if (s != NULL) {
                io_uring_prep_cancel64(s, tag(uc, OP_SEND), 0);
                io_uring_sqe_set_data64(s, OP_NONE);
            }
            uc->tx_err = ECANCELED;
        }
    }
    rx_drop(uc);
    free(uc->spill);
    uc->spill = NULL;
    uc->spill_off = uc->spill_len = 0;
    if (uc->recv_armed && !uc->pausing)
        cancel_recv(uc);
    linger_check(uc);
}

/* ---- the loop ---- */

/* The receive buffers and the ring that hands them to the kernel. */
static int bufs_init(struct uring *r)
{
    void *ring_mem = NULL;
    size_t ring_sz = NBUF * sizeof(struct io_uring_buf);
    int rc = posix_memalign(&ring_mem, 4096, ring_sz < 4096 ? 4096 : ring_sz);
    if (rc != 0)
        return -rc;
    r->br = ring_mem;
    r->bufs = malloc((size_t)NBUF * BUF_SZ);
    if (r->bufs == NULL)
        return -ENOMEM;
    io_uring_buf_ring_init(r->br);
    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)r->br, .ring_entries = NBUF, .bgid = BGID,
    };
    rc = io_uring_register_buf_ring(&r->ring, &reg, 0);
    if (rc < 0)
        return rc;
    r->held = NBUF;
    for (unsigned i = 0; i < NBUF; i++)
        buf_give(r, (uint16_t)i);
    return 0;
}

struct uring *uring_create(int notify_fd, const struct uring_hooks *hooks)
{
    struct uring *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    int rc = io_uring_queue_init_params(RING_ENTRIES, &r->ring, &p);
    if (rc == -EINVAL)
        rc = -EOPNOTSUPP;   /* before 6.1: no DEFER_TASKRUN */
    if (rc < 0) {
        free(r);
        errno = -rc;
        return NULL;
    }
    /* Sockets are polled inside the ring, completions never dropped. */
    if (!(p.features & IORING_FEAT_FAST_POLL) || !(p.features & IORING_FEAT_NODROP))
        rc = -EOPNOTSUPP;
    else
        rc = bufs_init(r);
    if (rc < 0) {
        io_uring_queue_exit(&r->ring);
        free(r->br);
        free(r->bufs);
        free(r);
        errno = -rc;
        return NULL;
    }
    r->notify_fd = notify_fd;
    r->hooks = *hooks;
    return r;
}

void uring_destroy(struct uring *r)
{
    if (r == NULL)
        return;
    io_uring_queue_exit(&r->ring);   /* cancels and waits for what is in flight */
    while (r->all != NULL) {
        struct uconn *uc = r->all;
        if (uc->closing)
            close(uc->fd);
        uconn_free(uc);
    }
    free(r->br);
    free(r->bufs);
    free(r);
}

void uring_stop(struct uring *r, int delay_ms)
{
    if (delay_ms <= 0) {
        r->done = true;
        return;
    }
    int64_t at = clock_now_ms() + delay_ms;
    if (r->stop_at == 0 || at < r->stop_at)
        r->stop_at = at;
}

/* Shut down the sockets of closed connections whose clients have not taken
 * their last replies in LINGER_MS: the sends fail and the uconns go. One
 * pass over the ring's uconns, at most once a second while any linger. */
static void linger_expire(struct uring *r, int64_t now)
{
    if (r->nlinger == 0 || now < r->next_linger_check)
        return;
    r->next_linger_check = now + TICK_MS;
    for (struct uconn *uc = r->all; uc != NULL; uc = uc->anext) {
        if (uc->closing && !uc->cut && now >= uc->linger_until) {
            uc->cut = true;
            shutdown(uc->fd, SHUT_RDWR);
        }
    }
}

/* Run what was queued before this call; what they queue runs next time. */
static void run_ready(struct uring *r)
{
    for (int n = r->nqueued; n > 0 && r->qhead != NULL; n--) {
        struct uconn *uc = r->qhead;
        dequeue(uc);
        conn_ready(uc->c);
    }
}

void uring_run(struct uring *r)
{
    r->next_tick = clock_now_ms() + TICK_MS;
    for (;;) {
        int64_t now = clock_now_ms();
        if ((r->done && r->nlinger == 0) || (r->stop_at != 0 && now >= r->stop_at))
            break;
        if (!r->notify_armed)
            arm_notify(r);
        wake_starved(r);
        start_sends(r);
        if (r->qhead != NULL) {
            io_uring_submit_and_get_events(&r->ring);
        } else {
            int64_t wait = -1;
            if (r->hooks.tick != NULL)
                wait = r->next_tick - now;
            if (r->stop_at != 0 && (wait < 0 || r->stop_at - now < wait))
                wait = r->stop_at - now;
            if (r->done)   /* only lingering output left: look again soon */
                wait = wait < 0 || wait > 10 ? 10 : wait;
            else if (r->nlinger > 0 && (wait < 0 || wait > TICK_MS))
                wait = TICK_MS;
            if (wait < 0) {
                io_uring_submit_and_wait(&r->ring, 1);
            } else {
                struct __kernel_timespec ts = {.tv_sec = wait / 1000,
                                               .tv_nsec = (wait % 1000) * 1000000};
                struct io_uring_cqe *cqe;
                io_uring_submit_and_wait_timeout(&r->ring, &cqe, 1, &ts, NULL);
            }
        }
        reap(r);
        now = clock_now_ms();
        linger_expire(r, now);
        if (r->hooks.tick != NULL) {
            if (now >= r->next_tick) {
                r->next_tick = now + TICK_MS;
                r->hooks.tick(r->hooks.arg);
            }
        }
        run_ready(r);
        spill_holders(r);
    }
    start_sends(r);
    io_uring_submit(&r->ring);
}

void uring_serve_pending(struct uring *r, const struct conn *skip)
{
    start_sends(r);
    io_uring_submit_and_get_events(&r->ring);
    reap(r);
    for (int n = r->nqueued; n > 0 && r->qhead != NULL; n--) {
        struct uconn *uc = r->qhead;
        dequeue(uc);
        if (uc->c == skip || conn_nested_events(uc->c) == 0) {
            enqueue(uc);   /* its own turn comes after the request */
            continue;
        }
        conn_serve_nested(uc->c);
    }
    spill_holders(r);
    start_sends(r);
    io_uring_submit(&r->ring);
}
