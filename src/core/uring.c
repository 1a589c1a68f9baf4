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
 * A connection has at most one receive in flight, armed only when it waits
 * for input and its buffer is empty, so a client that does not read its
 * replies stops being read, as with libevent (backpressure). Output is
 * double-buffered: one buffer in flight, the other filling, each at most
 * TX_MAX; a full one makes writev say EAGAIN and the connection wait for
 * EV_WRITE, which the end of the send in flight gives.
 *
 * A closed connection's queued output still goes out: its uconn lingers,
 * owning the socket, until its sends are done, then closes it. A
 * connection closed for passing the output limit drops it instead.
 *
 * The ring is created by the thread that runs it (SINGLE_ISSUER,
 * DEFER_TASKRUN where the kernel has them: completions are posted only when
 * this thread asks, so none interrupt it). Nothing here is shared.
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
#define RX_CAP (16 * 1024)          /* one receive; a larger value takes several */
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
    int rx_err, tx_err;             /* errno of a failed receive / send */
    int64_t linger_until;           /* kioku ms, once closing */
    struct uconn *qprev, *qnext;    /* ready queue */
    struct uconn *dnext;            /* output to start */
    struct uconn *aprev, *anext;    /* every uconn of the ring */
    char *rx;
    size_t rx_off, rx_len;
    char *pend, *fly;               /* filling / in flight */
    size_t pend_len, pend_cap, fly_len, fly_off, fly_cap;
};

struct uring {
    struct io_uring ring;
    struct uring_hooks hooks;
    int notify_fd;
    bool notify_armed;
    bool done;                      /* uring_stop(0): leave once nothing lingers */
    unsigned recv_ioprio;           /* IORING_RECVSEND_POLL_FIRST where known */
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

/* ---- I/O ---- */

static void arm_recv(struct uconn *uc)
{
    if (uc->recv_armed || uc->eof || uc->rx_err != 0 || uc->closing)
        return;
    struct io_uring_sqe *s = sqe_get(uc->r);
    if (s == NULL) {
        uc->rx_err = EBUSY;   /* no slot even after a submit: give up on the client */
        return;
    }
    io_uring_prep_recv(s, uc->fd, uc->rx, RX_CAP, 0);
    s->ioprio |= (uint16_t)uc->r->recv_ioprio;
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
    free(uc->rx);
    free(uc->pend);
    free(uc->fly);
    free(uc);
}

/* A closed connection's uconn goes once nothing of it is in flight or owed. */
static void linger_check(struct uconn *uc)
{
    if (!uc->closing || uc->recv_armed || uc->sending || uc->dirty)
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

static void on_recv(struct uconn *uc, int res)
{
    uc->recv_armed = false;
    if (res > 0) {
        uc->rx_off = 0;
        uc->rx_len = (size_t)res;
    } else if (res == 0) {
        uc->eof = true;
    } else if (res != -ECANCELED && res != -EAGAIN && res != -EINTR) {
        uc->rx_err = -res;
    }
    if (uc->c != NULL)
        enqueue(uc);
    else
        linger_check(uc);
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
            on_recv(p, cqe->res);
        } else if (op == OP_SEND) {
            on_send(p, cqe->res);
        }
    }
    io_uring_cq_advance(&r->ring, n);
}

/* ---- the transport ---- */

static ssize_t ur_read(struct conn *c, void *buf, size_t n)
{
    struct uconn *uc = c->uc;
    size_t have = uc->rx_len - uc->rx_off;
    if (have > 0) {
        size_t k = have < n ? have : n;
        memcpy(buf, uc->rx + uc->rx_off, k);
        uc->rx_off += k;
        if (uc->rx_off == uc->rx_len)
            uc->rx_off = uc->rx_len = 0;
        return (ssize_t)k;
    }
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
    if (uc == NULL || (uc->rx = malloc(RX_CAP)) == NULL) {
        free(uc);
        return -1;
    }
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
        if (uc->rx_len > uc->rx_off || uc->eof || uc->rx_err != 0)
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
    if (uc->recv_armed) {
        struct io_uring_sqe *s = sqe_get(r);
        if (s != NULL) {
            io_uring_prep_cancel64(s, tag(uc, OP_RECV), 0);
            io_uring_sqe_set_data64(s, OP_NONE);
        }
    }
    linger_check(uc);
}

/* ---- the loop ---- */

struct uring *uring_create(int notify_fd, const struct uring_hooks *hooks)
{
    struct uring *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    /* Newest first: each older kernel refuses the flags it lacks. */
    static const unsigned flag_sets[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int rc = -EINVAL;
    struct io_uring_params p;
    for (size_t i = 0; i < sizeof(flag_sets) / sizeof(flag_sets[0]) && rc == -EINVAL; i++) {
        memset(&p, 0, sizeof(p));
        p.flags = flag_sets[i];
        rc = io_uring_queue_init_params(RING_ENTRIES, &r->ring, &p);
    }
    if (rc < 0) {
        free(r);
        errno = -rc;
        return NULL;
    }
    /* Sockets are polled inside the ring (5.7), completions never dropped. */
    if (!(p.features & IORING_FEAT_FAST_POLL) || !(p.features & IORING_FEAT_NODROP)) {
        io_uring_queue_exit(&r->ring);
        free(r);
        errno = EOPNOTSUPP;
        return NULL;
    }
    /* DEFER_TASKRUN means 6.1, which also knows POLL_FIRST (5.19): a
     * receive is armed when the socket was just drained, so try no read. */
    if (p.flags & IORING_SETUP_DEFER_TASKRUN)
        r->recv_ioprio = IORING_RECVSEND_POLL_FIRST;
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
    start_sends(r);
    io_uring_submit(&r->ring);
}
