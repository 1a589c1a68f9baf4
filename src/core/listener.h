/*
 * The acceptor: listening sockets (TCP on every -l address, or a unix
 * socket with -s, plus the optional RESP port) on one event_base run by the
 * main thread. It enforces -c and hands every other connection to a worker.
 * SIGINT and SIGTERM end listener_run(); SIGHUP calls the hook set with
 * listener_on_hup() (reloading TLS certificates), in the acceptor thread.
 */
#ifndef KIOKU_LISTENER_H
#define KIOKU_LISTENER_H

#include <stddef.h>
#include <stdint.h>

struct settings;

/* Bind everything. Returns 0, or -1 with a message in err. */
int listener_setup(const struct settings *s, char *err, size_t errlen);
/* What SIGHUP does (before listener_setup); without a hook it is ignored. */
void listener_on_hup(void (*fn)(void));
/* Accept until SIGINT/SIGTERM. */
void listener_run(void);
/* Close all listening sockets (no new connections after this). */
void listener_teardown(void);

/* memcached's listen_disabled_num / time_in_listen_disabled_us: how often
 * and how long accepting paused because descriptors ran out. */
struct listener_stats {
    uint64_t disabled_num;
    uint64_t disabled_us;
};
void listener_stats(struct listener_stats *out);

/* The listening sockets' descriptors (at most max), for `stats conns`.
 * Fixed between listener_setup() and listener_teardown(), so a worker may
 * read them while the server runs. Returns how many were stored. */
size_t listener_fds(int *fds, size_t max);

#endif
