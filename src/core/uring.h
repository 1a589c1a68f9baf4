/*
 * The io_uring event loop of a worker (-o io_uring), the other loop beside
 * libevent. A ring does the connection's socket I/O itself (its own
 * transport), so a request costs no read(2), write(2) or epoll call of its
 * own: one io_uring_enter per loop iteration submits every send queued in
 * it and collects every receive that arrived. See uring.c for the design.
 *
 * Built with liburing (configure --with-liburing) or as stubs that always
 * refuse (uring_none.c); a refused ring leaves the worker on libevent.
 * Everything here runs in the worker thread that owns the ring.
 */
#ifndef KIOKU_URING_H
#define KIOKU_URING_H

#include <stdbool.h>

struct conn;
struct uring;

/* The worker's side: what to call when its notification pipe is readable,
 * and once a second (timers), with arg. */
struct uring_hooks {
    void (*notify)(void *arg);
    void (*tick)(void *arg);
    void *arg;
};

/* A ring for the calling thread (the one that runs it) that watches
 * notify_fd. NULL with errno set when the kernel or the build refuses
 * (ENOSYS, EPERM under seccomp, ENOMEM for locked memory). */
struct uring *uring_create(int notify_fd, const struct uring_hooks *hooks);
/* Cancel what is in flight, close lingering sockets, free. */
void uring_destroy(struct uring *r);
/* Run connections and completions until uring_stop(). */
void uring_run(struct uring *r);
/* Leave uring_run after delay_ms (0: at the end of this iteration); an
 * earlier stop wins over a later one. */
void uring_stop(struct uring *r, int delay_ms);
/* From inside a connection's request (a busy script): collect
 * completions, then run each connection they readied that
 * conn_nested_events() allows, except skip; send what they queued. */
void uring_serve_pending(struct uring *r, const struct conn *skip);

/* ---- for conn.c ---- */

/* c (fd, worker set) does its I/O through r from now on: c->tp and c->uc
 * are set. 0, or -1 (out of memory; nothing to undo). */
int uring_conn_attach(struct uring *r, struct conn *c);
/* c waits for EV_READ (input) or EV_WRITE (room for output). */
void uring_conn_want(struct conn *c, short ev);
/* Run c again in the next iteration (a yield, a shutdown). */
void uring_conn_activate(struct conn *c);
/* c is being freed: the ring forgets it. Output it has queued is still
 * sent, then its socket is closed (unless it passed the output limit). */
void uring_conn_detach(struct conn *c);

#endif
