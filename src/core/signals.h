/*
 * Process signals. They are caught by libevent's signal events on the
 * acceptor's event_base: libevent's own handler only writes the signal
 * number to a socketpair, and the callbacks below run later from the
 * acceptor's loop, where any function may be called.
 *
 *   SIGINT, SIGTERM  stop: listener_run() returns and main() tears down,
 *                    waiting at most -o shutdown_timeout for replies
 *   SIGUSR2          stop too (with -e, the warm-restart save)
 *   SIGHUP           reopen the -o logfile, reload the TLS certificates
 *   SIGUSR1          log the `stats` counters (severity notice)
 *
 * A command that stops the server (signals_request_stop()) sends this
 * process SIGTERM, so it takes the very same path.
 *
 * After signals_teardown() these signals are ignored, so one that comes
 * again while the server stops (a second SIGTERM, a logrotate SIGHUP)
 * changes nothing: the stop is bounded without it.
 */
#ifndef KIOKU_SIGNALS_H
#define KIOKU_SIGNALS_H

#include <stdbool.h>

struct event_base;

/* At start-up, before signals_setup(): SIGHUP and SIGUSR1 (a logrotate or
 * a monitor that comes early, even once the port accepts) are held, not
 * fatal, and handled once signals_setup() has run. Threads started before
 * then keep them blocked. A stop signal keeps its default action: nothing
 * needs to be saved yet. */
void signals_hold_early(void);

/* Register the signals on base (the acceptor's). tls: SIGHUP reloads the
 * certificates. Returns 0, or -1. */
int signals_setup(struct event_base *base, bool tls);

/* SIGUSR1's snapshot, callable from any thread: the general `stats`
 * counters as "name=value" pairs, on as few "stats:" lines as fit. */
void signals_log_stats(void);

/* A stop asked for by a command (memcached's `shutdown`, RESP SHUTDOWN),
 * from any thread: the same stop as SIGTERM's, logged under `who` (a
 * string that lives for ever). save false: skip the -e warm-restart save
 * (SHUTDOWN NOSAVE), so the next start is a cold one. */
void signals_request_stop(const char *who, bool save);
/* After the stop: false if a request said not to save. */
bool signals_stop_saves(void);

/* Unregister (before the event_base is freed) and ignore the signals. */
void signals_teardown(void);

#endif
