/*
 * Built without liburing: every ring is refused, so workers stay on
 * libevent (-o io_uring then logs why, once). Nothing else is reachable.
 */
#include "core/uring.h"

#include <errno.h>
#include <stddef.h>

struct uring *uring_create(int notify_fd, const struct uring_hooks *hooks)
{
    (void)notify_fd;
    (void)hooks;
    errno = ENOSYS;
    return NULL;
}

void uring_destroy(struct uring *r) { (void)r; }
void uring_run(struct uring *r) { (void)r; }
void uring_stop(struct uring *r, int delay_ms) { (void)r; (void)delay_ms; }
void uring_serve_pending(struct uring *r, const struct conn *skip) { (void)r; (void)skip; }
int uring_conn_attach(struct uring *r, struct conn *c) { (void)r; (void)c; return -1; }
void uring_conn_want(struct conn *c, short ev) { (void)c; (void)ev; }
void uring_conn_activate(struct conn *c) { (void)c; }
void uring_conn_detach(struct conn *c) { (void)c; }
