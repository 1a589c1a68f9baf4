/*
 * Worker threads: each runs its own libevent event_base and owns the
 * connections handed to it. The acceptor hands over a new socket by queueing
 * it and writing one byte to the worker's notification pipe, so a worker
 * never blocks on another thread except for that short queue lock.
 */
#ifndef KIOKU_WORKER_H
#define KIOKU_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "core/conn.h"
#include "stats/stats.h"

struct event_base;
struct event;
struct pending_conn;
struct uring;

struct worker {
    struct thread_stats *stats;     /* this worker's counters (stats.c) */
    int id;
    pthread_t thread;
    struct event_base *base;
    struct uring *ring;             /* -o io_uring: the loop instead of base, or NULL */
    struct event *notify_ev;
    struct event *idle_ev;          /* -o idle_timeout sweep, or NULL */
    int notify_rfd, notify_wfd;
    pthread_mutex_t qlock;          /* guards queue */
    struct pending_conn *queue_head, *queue_tail;
    pthread_mutex_t conns_lock;     /* guards the list for `stats conns` */
    struct conn *conns;
    int nconns;
    bool stopping;                  /* owner thread only */
    struct conn *pumps;             /* owner thread only: conns with a pump */
    int poked;                      /* atomic: a 'w' is in the pipe */
};

/* Start n workers; idle_timeout_s > 0 closes connections that sent no
 * request for that many seconds (memcached's -o idle_timeout). Returns 0
 * or -1. */
int worker_setup(int n, int idle_timeout_s);
/* Before worker_setup: each worker runs an io_uring loop (uring.h) where
 * the kernel allows one, libevent where not (logged once). */
void worker_use_io_uring(bool on);
/* Hand an accepted socket to the next worker (round-robin). */
void worker_dispatch(int fd, enum conn_listener_kind kind,
                     const struct sockaddr *peer, socklen_t peer_len);
/* Ask every worker to finish in-flight replies, close and exit; join them.
 * A worker whose connections are not all done after grace_s seconds
 * (-o shutdown_timeout) closes the rest, so this returns in about grace_s
 * seconds plus the longest single request. */
void worker_teardown(int grace_s);

int worker_count(void);
struct worker *worker_get(int i);

/*
 * Serve w's connections now, without blocking, from inside skip's request
 * (a script past busy-reply-threshold, whose worker's event loop is not
 * running): take new connections (and a stop), then run each RESP
 * connection that has input, or output the socket now takes, except skip.
 * Owner thread only. skip is not touched; any other connection may be
 * closed meanwhile. Each connection runs at most one event's request
 * budget (-R), so a call is bounded.
 */
void worker_serve_pending(struct worker *w, const struct conn *skip);

/* Another thread marked some of w's connections kill_asked (holding w's
 * conns_lock): w closes them soon, as a stop does (replies to requests
 * already read still go out). */
void worker_kill_marked(struct worker *w);
/* Owner thread: c (with c->pump set) runs each time w is poked. */
void worker_pump_add(struct conn *c);
void worker_pump_remove(struct conn *c);
/* Any thread: soon, on its own thread, w runs every conn it pumps (one
 * write to its pipe however many pokes come before that). */
void worker_poke(struct worker *w);

/* Called by conn.c in the owner thread. */
void worker_conn_added(struct worker *w, struct conn *c);
void worker_conn_removed(struct worker *w, struct conn *c);

#endif
