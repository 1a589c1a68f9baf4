/*
 * sd_notify behind notify.h. The one #if for systemd in the tree: the rest
 * of kioku calls these functions whether or not libsystemd is linked.
 */
#include "util/notify.h"

#include "config.h"

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>

bool notify_available(void)
{
    return true;
}

/* unset_environment is 0: STOPPING=1 needs $NOTIFY_SOCKET later on. */
void notify_ready(const char *status)
{
    sd_notifyf(0, "READY=1\nSTATUS=%s", status);
}

void notify_stopping(const char *status)
{
    sd_notifyf(0, "STOPPING=1\nSTATUS=%s", status);
}

void notify_status(const char *status)
{
    sd_notifyf(0, "STATUS=%s", status);
}

#else

bool notify_available(void)
{
    return false;
}

void notify_ready(const char *status)
{
    (void)status;
}

void notify_stopping(const char *status)
{
    (void)status;
}

void notify_status(const char *status)
{
    (void)status;
}

#endif
