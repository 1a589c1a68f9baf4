/*
 * Telling the service manager how start-up and shutdown go (systemd's
 * Type=notify): READY=1 once every listener accepts, STOPPING=1 when a stop
 * begins, and a STATUS= line for `systemctl status`.
 *
 * Built without libsystemd (configure --without-systemd, or libsystemd-dev
 * missing) every call does nothing; with it, a call does nothing unless
 * systemd (or a test) set $NOTIFY_SOCKET. Calls are cheap and rare: start-up
 * and shutdown only, never on a request path.
 */
#ifndef KIOKU_NOTIFY_H
#define KIOKU_NOTIFY_H

#include <stdbool.h>

/* Whether this build can notify (libsystemd linked). */
bool notify_available(void);

/* READY=1 with STATUS=status. */
void notify_ready(const char *status);

/* STOPPING=1 with STATUS=status. */
void notify_stopping(const char *status);

/* STATUS=status alone (e.g. why start-up failed). */
void notify_status(const char *status);

#endif
