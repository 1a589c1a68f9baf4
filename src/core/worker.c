/*
 * Worker threads. Each owns an event_base and the connections it was handed;
 * the acceptor reaches a worker only through its queue and notification pipe.
 *
 * Connections go round-robin to at most as many workers as the process has
 * CPUs to run on (its affinity mask, read again every few hundred accepts).
 * More busy workers than CPUs only makes them take turns on a core, and a
 * connection whose worker is waiting for its turn waits a whole scheduler
 * time slice: with -t 4 pinned to one core, one worker serves everything.
 *
 * With -o io_uring a worker creates a ring in its own thread and runs
 * uring_run() instead of its event_base: the ring watches the notification
 * pipe, and the idle sweep runs from its once-a-second tick. A worker whose
 * ring the kernel refuses runs libevent as usual.
 *
 * Shutdown: the main thread writes 'q' to every pipe. A worker then stops
 * taking connections, lets each connection answer what it has read, write
 * it and close, and leaves its loop when none is left, or when -o
 * shutdown_timeout passes; then it closes the rest (clients that do not
 * read), so a stop is bounded whatever the clients do.
 */
#include "core/worker.h"

#include "core/uring.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stats/stats.h"
#include "util/clock.h"
#include "util/log.h"

struct pending_conn {
    struct pending_conn *next;
    int fd;
    enum conn_listener_kind kind;
    struct sockaddr_storage peer;
    socklen_t peer_len;
};

static struct worker *workers;   /* set up once */
static int nworkers;
static unsigned next_worker;     /* acceptor thread only */
static unsigned active_workers;  /* acceptor thread only: workers given connections */
static unsigned dispatched;      /* acceptor thread only */

#define AFFINITY_RECHECK 256     /* accepts between reads of the affinity mask */

/* Workers worth giving connections: min(threads, CPUs we may run on). */
static unsigned usable_workers(void)
{
    cpu_set_t set;
    unsigned n = (unsigned)nworkers;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        int cpus = CPU_COUNT(&set);
        if (cpus > 0 && (unsigned)cpus < n)
            n = (unsigned)cpus;
    }
    return n;
}

static int shutdown_grace_s;   /* set by worker_teardown before its 'q' */

static void worker_take_conns(struct worker *w)
{
    pthread_mutex_lock(&w->qlock);
    struct pending_conn *p = w->queue_head;
    w->queue_head = w->queue_tail = NULL;
    pthread_mutex_unlock(&w->qlock);
    while (p != NULL) {
        struct pending_conn *next = p->next;
        if (w->stopping) {
            close(p->fd);
            stats_conn_closed();
        } else {
            conn_create(w, p->fd, p->kind, (struct sockaddr *)&p->peer, p->peer_len);
        }
        free(p);
        p = next;
    }
}

static bool use_io_uring;       /* set before the workers start */
static int uring_refusals;      /* atomic: the first one is logged */

void worker_use_io_uring(bool on)
{
    use_io_uring = on;
}

static void worker_check_done(struct worker *w)
{
    if (!w->stopping || w->conns != NULL)
        return;
    if (w->ring != NULL)
        uring_stop(w->ring, 0);
    else
        event_base_loopexit(w->base, NULL);
}

static void worker_begin_stop(struct worker *w)
{
    w->stopping = true;
    struct timeval grace = {__atomic_load_n(&shutdown_grace_s, __ATOMIC_RELAXED), 0};
    if (w->ring != NULL)
        uring_stop(w->ring, (int)grace.tv_sec * 1000 + (grace.tv_sec == 0));
    else
        event_base_loopexit(w->base, &grace);
    /* conn_shutdown only marks c (its own event answers and closes it);
     * a saved next pointer keeps the walk safe should that change */
    struct conn *c = w->conns;
    while (c != NULL) {
        struct conn *next = c->next;
        conn_shutdown(c);
        c = next;
    }
    worker_check_done(w);
}

/* The connections CLIENT KILL marked: each drains and closes, from its
 * own event (conn_shutdown only marks it and wakes that event). */
static void worker_kill_asked(struct worker *w)
{
    pthread_mutex_lock(&w->conns_lock);
    for (struct conn *c = w->conns; c != NULL; c = c->next) {
        if (c->kill_asked) {
            c->kill_asked = false;
            conn_shutdown(c);
            c->close_reason = CONN_CLOSE_NORMAL;
        }
    }
    pthread_mutex_unlock(&w->conns_lock);
}

void worker_kill_marked(struct worker *w)
{
    char b = 'k';
    while (write(w->notify_wfd, &b, 1) < 0 && errno == EINTR)
        ;
}

void worker_pump_add(struct conn *c)
{
    struct worker *w = c->worker;
    c->pump_prev = NULL;
    c->pump_next = w->pumps;
    if (w->pumps != NULL)
        w->pumps->pump_prev = c;
    w->pumps = c;
}

void worker_pump_remove(struct conn *c)
{
    struct worker *w = c->worker;
    if (c->pump_prev != NULL)
        c->pump_prev->pump_next = c->pump_next;
    else if (w->pumps == c)
        w->pumps = c->pump_next;
    if (c->pump_next != NULL)
        c->pump_next->pump_prev = c->pump_prev;
    c->pump_prev = c->pump_next = NULL;
}

void worker_poke(struct worker *w)
{
    if (__atomic_exchange_n(&w->poked, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    char b = 'w';
    while (write(w->notify_wfd, &b, 1) < 0 && errno == EINTR)
        ;
}

/* Cleared first: a poke from now on writes again and is not lost. */
static void worker_run_pumps(struct worker *w)
{
    __atomic_store_n(&w->poked, 0, __ATOMIC_RELEASE);
    for (struct conn *c = w->pumps; c != NULL; c = c->pump_next)
        conn_activate(c);
}

static void worker_notify(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    char buf[64];
    (void)what;
    ssize_t n;
    /* Until the pipe is empty: a ring's poll says only that bytes came. */
    do {
        n = read(fd, buf, sizeof(buf));
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == 'c')
                worker_take_conns(w);
            else if (buf[i] == 'k')
                worker_kill_asked(w);
            else if (buf[i] == 'w')
                worker_run_pumps(w);
            else if (buf[i] == 'q' && !w->stopping)
                worker_begin_stop(w);
        }
    } while (n == (ssize_t)sizeof(buf));
}

static void worker_ring_notify(void *arg)
{
    struct worker *w = arg;
    worker_notify(w->notify_rfd, EV_READ, w);
}

static int idle_timeout_ms;   /* 0: never; fixed before the workers start */

/*
 * Once a second: close this worker's connections that have waited for a
 * request, or for their client to read replies, longer than -o
 * idle_timeout (conn_idle_kick says which; counted as idle_kicks). One
 * pass over the worker's own list.
 */
static void worker_idle_sweep(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    int64_t now = clock_now_ms();
    (void)fd;
    (void)what;
    struct conn *c = w->conns;
    while (c != NULL) {
        struct conn *next = c->next;   /* conn_idle_kick may free c */
        conn_idle_kick(c, now);
        c = next;
    }
}

static void worker_ring_tick(void *arg)
{
    worker_idle_sweep(-1, 0, arg);
}

/* w's ring, made in w's thread (the ring belongs to the thread that made
 * it), or NULL: libevent then. The first refusal is logged. */
static struct uring *worker_ring(struct worker *w)
{
    struct uring_hooks hooks = {worker_ring_notify, idle_timeout_ms > 0 ? worker_ring_tick : NULL, w};
    struct uring *r = uring_create(w->notify_rfd, &hooks);
    if (r == NULL && __atomic_fetch_add(&uring_refusals, 1, __ATOMIC_RELAXED) == 0)
        log_warn("-o io_uring: %s; the workers use libevent",
#ifdef HAVE_LIBURING
                 strerror(errno)
#else
                 "kioku was built without liburing"
#endif
        );
    return r;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char name[16];
    snprintf(name, sizeof(name), "kioku-w%d", w->id);   /* top -H, /proc/PID/task */
    pthread_setname_np(pthread_self(), name);
    if (use_io_uring && (w->ring = worker_ring(w)) != NULL)
        uring_run(w->ring);
    else
        event_base_dispatch(w->base);
    /* Grace period over: close whatever is still open. */
    if (w->nconns > 0)
        log_warn("worker %d: shutdown_timeout (%d s) passed; closing %d connections "
                 "with replies unsent", w->id, __atomic_load_n(&shutdown_grace_s, __ATOMIC_RELAXED),
                 w->nconns);
    while (w->conns != NULL)
        conn_close(w->conns);
    uring_destroy(w->ring);   /* in this thread, as it was made */
    w->ring = NULL;
    return NULL;
}

int worker_setup(int n, int idle_timeout_s)
{
    idle_timeout_ms = idle_timeout_s > 0 ? idle_timeout_s * 1000 : 0;
    if (evthread_use_pthreads() != 0)
        return -1;
    workers = calloc((size_t)n, sizeof(*workers));
    if (workers == NULL || stats_setup(n) != 0)
        return -1;
    nworkers = n;
    for (int i = 0; i < n; i++) {
        struct worker *w = &workers[i];
        int fds[2];
        w->id = i;
        w->stats = stats_thread(i);
        if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0)
            return -1;
        w->notify_rfd = fds[0];
        w->notify_wfd = fds[1];
        pthread_mutex_init(&w->qlock, NULL);
        pthread_mutex_init(&w->conns_lock, NULL);
        w->base = event_base_new();
        if (w->base == NULL)
            return -1;
        w->notify_ev = event_new(w->base, w->notify_rfd, EV_READ | EV_PERSIST, worker_notify, w);
        if (w->notify_ev == NULL || event_add(w->notify_ev, NULL) != 0)
            return -1;
        if (idle_timeout_ms > 0) {
            struct timeval every = {1, 0};
            w->idle_ev = event_new(w->base, -1, EV_PERSIST, worker_idle_sweep, w);
            if (w->idle_ev == NULL || event_add(w->idle_ev, &every) != 0)
                return -1;
        }
    }
    for (int i = 0; i < n; i++)
        if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0)
            return -1;
    return 0;
}

void worker_dispatch(int fd, enum conn_listener_kind kind,
                     const struct sockaddr *peer, socklen_t peer_len)
{
    if (dispatched++ % AFFINITY_RECHECK == 0)
        active_workers = usable_workers();
    struct worker *w = &workers[next_worker++ % active_workers];
    struct pending_conn *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        close(fd);
        stats_conn_closed();
        return;
    }
    p->fd = fd;
    p->kind = kind;
    if (peer_len <= sizeof(p->peer)) {
        memcpy(&p->peer, peer, peer_len);
        p->peer_len = peer_len;
    }
    pthread_mutex_lock(&w->qlock);
    if (w->queue_tail != NULL)
        w->queue_tail->next = p;
    else
        w->queue_head = p;
    w->queue_tail = p;
    pthread_mutex_unlock(&w->qlock);
    char b = 'c';
    while (write(w->notify_wfd, &b, 1) < 0 && errno == EINTR)
        ;
}

void worker_teardown(int grace_s)
{
    __atomic_store_n(&shutdown_grace_s, grace_s, __ATOMIC_RELAXED);   /* before the 'q' */
    for (int i = 0; i < nworkers; i++) {
        char b = 'q';
        while (write(workers[i].notify_wfd, &b, 1) < 0 && errno == EINTR)
            ;
    }
    for (int i = 0; i < nworkers; i++) {
        struct worker *w = &workers[i];
        pthread_join(w->thread, NULL);
        event_free(w->notify_ev);
        if (w->idle_ev != NULL)
            event_free(w->idle_ev);
        event_base_free(w->base);
        close(w->notify_rfd);
        close(w->notify_wfd);
    }
    free(workers);
    stats_teardown();
    workers = NULL;
    nworkers = 0;
    dispatched = 0;
}

/* c, if it is still on w's list: a connection served before it may have
 * closed it. */
static struct conn *find_conn(struct worker *w, const struct conn *c, uint64_t id)
{
    for (struct conn *p = w->conns; p != NULL; p = p->next)
        if (p == c && p->id == id)
            return p;
    return NULL;
}

void worker_serve_pending(struct worker *w, const struct conn *skip)
{
    worker_notify(w->notify_rfd, EV_READ, w);
    if (w->ring != NULL) {   /* the ring knows which connections have input */
        uring_serve_pending(w->ring, skip);
        return;
    }
    int n = 0;
    for (struct conn *c = w->conns; c != NULL; c = c->next)
        n += c != skip && conn_nested_events(c) != 0;
    if (n == 0)
        return;
    /* Not a hot path: a busy script calls this every few tens of ms. */
    struct pollfd *fds = malloc(sizeof(*fds) * (size_t)n);
    struct conn **conns = malloc(sizeof(*conns) * (size_t)n);
    uint64_t *ids = malloc(sizeof(*ids) * (size_t)n);
    if (fds == NULL || conns == NULL || ids == NULL)
        goto done;
    int k = 0;
    for (struct conn *c = w->conns; c != NULL && k < n; c = c->next) {
        short ev = c != skip ? conn_nested_events(c) : 0;
        if (ev == 0)
            continue;
        fds[k] = (struct pollfd){.fd = c->fd, .events = ev};
        conns[k] = c;
        ids[k++] = c->id;
    }
    if (poll(fds, (nfds_t)k, 0) < 0)
        k = 0;
    for (int i = 0; i < k; i++) {
        /* Input already buffered (a yielded connection) needs no poll. */
        struct conn *c = find_conn(w, conns[i], ids[i]);
        if (c != NULL && (fds[i].revents != 0 || conn_rlen(c) > 0))
            conn_serve_nested(c);
    }
done:
    free(fds);
    free(conns);
    free(ids);
}

int worker_count(void)
{
    return nworkers;
}

struct worker *worker_get(int i)
{
    return &workers[i];
}

void worker_conn_added(struct worker *w, struct conn *c)
{
    pthread_mutex_lock(&w->conns_lock);
    c->prev = NULL;
    c->next = w->conns;
    if (w->conns != NULL)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    pthread_mutex_unlock(&w->conns_lock);
}

void worker_conn_removed(struct worker *w, struct conn *c)
{
    pthread_mutex_lock(&w->conns_lock);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    w->nconns--;
    pthread_mutex_unlock(&w->conns_lock);
    worker_check_done(w);
}
