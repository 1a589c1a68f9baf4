/*
 * Signal handling (see signals.h). Every callback here runs in the
 * acceptor thread, outside any signal handler: libevent turns a signal into
 * an ordinary event, so logging, reopening files and reading stats are all
 * safe. The stop itself is only a loop break; the bounded teardown (stop
 * accepting, let replies drain for shutdown_timeout, close the rest) is
 * main()'s sequence of listener_teardown() and worker_teardown().
 */
#include "core/signals.h"

#include <event2/event.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cmd_stats.h"
#include "stats/stats.h"
#include "tls/tls.h"
#include "util/clock.h"
#include "util/log.h"

static struct event_base *base;
static bool reload_tls;
static bool stopping;   /* acceptor thread only */
/* Set by signals_request_stop() before its SIGTERM (atomics: any thread). */
static const char *stop_who;
static bool stop_nosave;

enum { ON_STOP, ON_HUP, ON_STATS };

static const struct {
    int signo;
    const char *name;
    int what;
} handled[] = {
    {SIGINT, "SIGINT", ON_STOP},
    {SIGTERM, "SIGTERM", ON_STOP},
    {SIGUSR2, "SIGUSR2", ON_STOP},
    {SIGHUP, "SIGHUP", ON_HUP},
    {SIGUSR1, "SIGUSR1", ON_STATS},
};
#define NHANDLED (sizeof(handled) / sizeof(handled[0]))

static struct event *events[NHANDLED];

/* Pairs gathered into lines well under LOG_LINE_MAX, so none is cut. */
struct snapshot {
    char line[LOG_LINE_MAX - 512];
    size_t len;
};

static void snapshot_flush(struct snapshot *s)
{
    if (s->len > 0)
        log_notice("stats:%.*s", (int)s->len, s->line);
    s->len = 0;
}

static void snapshot_pair(void *arg, const char *name, const char *value)
{
    struct snapshot *s = arg;
    size_t need = 1 + strlen(name) + 1 + strlen(value);
    if (s->len + need >= sizeof(s->line))
        snapshot_flush(s);
    if (need >= sizeof(s->line))
        return;   /* no stat is this long; never cut one in two */
    s->len += (size_t)snprintf(s->line + s->len, sizeof(s->line) - s->len, " %s=%s", name, value);
}

void signals_log_stats(void)
{
    struct snapshot s = {.len = 0};
    cmd_stats_pairs("", 0, clock_now_ms(), snapshot_pair, &s);
    snapshot_flush(&s);
}

static void on_hup(void)
{
    char err[512];
    if (log_reopen(err, sizeof(err)) != 0)
        log_error("%s", err);
    else if (log_path()[0] != '\0')
        log_info("SIGHUP: log file %s reopened", log_path());
    if (!reload_tls)
        return;
    if (tls_refresh_certs(err, sizeof(err)) != 0)
        log_error("could not reload TLS certificates on SIGHUP: %s", err);
    else
        log_info("SIGHUP: TLS certificates reloaded");
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    size_t i = (size_t)(uintptr_t)arg;
    (void)sig;
    (void)what;
    switch (handled[i].what) {
    case ON_STOP:
        if (!stopping) {
            const char *who = __atomic_load_n(&stop_who, __ATOMIC_ACQUIRE);
            stopping = true;
            log_info("%s: stopping; %llu connections to finish",
                     who != NULL ? who : handled[i].name, (unsigned long long)stats_curr_conns());
        }
        event_base_loopbreak(base);
        break;
    case ON_HUP:
        on_hup();
        break;
    case ON_STATS:
        signals_log_stats();
        break;
    }
}

void signals_request_stop(const char *who, bool save)
{
    if (!save)
        __atomic_store_n(&stop_nosave, true, __ATOMIC_RELAXED);
    __atomic_store_n(&stop_who, who, __ATOMIC_RELEASE);
    /* The acceptor's loop is not ours to break from a worker thread; the
     * signal reaches it through libevent, as a SIGTERM from outside does. */
    kill(getpid(), SIGTERM);
}

bool signals_stop_saves(void)
{
    return !__atomic_load_n(&stop_nosave, __ATOMIC_RELAXED);
}

static void early_mask(int how)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(how, &set, NULL);
}

void signals_hold_early(void)
{
    early_mask(SIG_BLOCK);
}

int signals_setup(struct event_base *b, bool tls)
{
    base = b;
    reload_tls = tls;
    for (size_t i = 0; i < NHANDLED; i++) {
        events[i] = evsignal_new(base, handled[i].signo, on_signal, (void *)(uintptr_t)i);
        if (events[i] == NULL || event_add(events[i], NULL) != 0)
            return -1;
    }
    /* One that came while we started (the port already listens) is
     * delivered now, to libevent's handler. */
    early_mask(SIG_UNBLOCK);
    return 0;
}

void signals_teardown(void)
{
    for (size_t i = 0; i < NHANDLED; i++) {
        if (events[i] != NULL)
            event_free(events[i]);
        events[i] = NULL;
        /* Ignored, not default: SIGHUP's or a second SIGTERM's default
         * would kill the process in the middle of its bounded stop. */
        signal(handled[i].signo, SIG_IGN);
    }
    base = NULL;
}
