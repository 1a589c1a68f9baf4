/*
 * The acceptor: listening sockets (TCP on every -l address, or a unix
 * socket with -s, plus the optional RESP port; -U's UDP sockets are bound
 * here too and served by core/udp.c) on one event_base run by the
 * main thread. It enforces -c and hands every other connection to a worker.
 * listener_run() returns when something breaks that loop (core/signals.c
 * does on SIGINT, SIGTERM and SIGUSR2).
 */
#ifndef KIOKU_LISTENER_H
#define KIOKU_LISTENER_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct settings;

/* Bind everything. Returns 0, or -1 with a message in err. */
int listener_setup(const struct settings *s, char *err, size_t errlen);
/* Write the memcached TCP and UDP ports bound (after listener_setup) to
 * path, as memcached does when MEMCACHED_PORT_FILENAME names a file: one
 * "TCP INET: <port>" or "UDP INET6: <port>" line per socket, through
 * path.lck renamed when complete. Returns 0, or -1 with a message in err. */
int listener_write_ports(const char *path, char *err, size_t errlen);
/* The acceptor's event_base (after listener_setup), for signal events. */
struct event_base *listener_base(void);
/* Accept until the loop is broken (event_base_loopbreak on listener_base). */
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
