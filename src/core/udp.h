/*
 * memcached's UDP protocol (-U): requests in datagrams, served by the
 * workers through the same memcached protocol code as TCP connections.
 * The frame header itself is core/udp_frame.h.
 */
#ifndef KIOKU_UDP_H
#define KIOKU_UDP_H

#include <stddef.h>
#include <stdint.h>

struct conn_protocols;
struct settings;

/* Take a bound, non-blocking UDP socket (the listener binds one per -l
 * address); udp_teardown() closes it. Before udp_start(). 0, or -1 when
 * there are too many. */
int udp_add_socket(int fd);
/* The sockets given to udp_add_socket() (at most max), for the port file. */
size_t udp_sockets(int *fds, size_t max);

/* How many workers serve each UDP socket, as memcached's
 * num_threads_per_udp: all of them, or one when -l names several
 * addresses (each socket then has a worker of its own, round-robin). */
int udp_workers_per_socket(const struct settings *s);

/* Give per_socket workers their own descriptor of each socket, in their
 * event bases (after worker_setup). Datagrams are read as the memcached
 * protocols of protos say: binary when the payload starts with 0x80 and
 * protos->binary is set, else text (and meta); never RESP. Returns 0, or
 * -1 with a message in err. */
int udp_start(const struct conn_protocols *protos, int per_socket, char *err, size_t errlen);

/* Stop serving datagrams and close every UDP descriptor. Called from the
 * main thread while the workers still run (before worker_teardown): it
 * waits for a datagram being served to finish. */
void udp_teardown(void);

/* One worker's descriptor of one socket, for `stats conns`. */
struct udp_conn_info {
    int fd;
    int64_t last_cmd;   /* kioku ms of its last request (its start before any) */
};
/* Fills at most max entries; returns how many (none once udp_teardown()
 * has run). Any thread; the descriptors may be closed by the time the
 * caller looks at them, during a stop. */
size_t udp_conns(struct udp_conn_info *out, size_t max);

#endif
