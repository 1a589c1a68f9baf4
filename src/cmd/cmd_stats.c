/*
 * `stats` replies. Counters come from three places, each summed on read:
 * per-worker request counters (stats/stats.h), storage (summed over hash
 * stripes and slab classes), and connection counters. Formatting uses
 * snprintf: stats are not a hot path.
 */
#include "cmd/cmd_stats.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "config.h"
#include "config/settings.h"
#include "core/conn.h"
#include "core/worker.h"
#include "stats/stats.h"
#include "storage/storage.h"
#include "util/clock.h"

static const struct settings *settings;   /* read-only after setup */

void cmd_stats_setup(const struct settings *s)
{
    settings = s;
}

static void stat_fmt(struct conn *c, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void stat_fmt(struct conn *c, const char *name, const char *fmt, ...)
{
    char val[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(val, sizeof(val), fmt, ap);
    va_end(ap);
    size_t need = strlen(name) + strlen(val) + 9;   /* "STAT " " " "\r\n" NUL */
    char *p = conn_out_reserve(c, need);
    if (p == NULL)
        return;
    int n = snprintf(p, need, "STAT %s %s\r\n", name, val);
    conn_out_commit(c, (size_t)n);
}

static void stat_u64(struct conn *c, const char *name, uint64_t v)
{
    stat_fmt(c, name, "%llu", (unsigned long long)v);
}

static void stats_general(struct conn *c)
{
    struct thread_stats ts;
    struct storage_stats ss;
    struct conn_stats cs;
    struct rusage ru;
    stats_aggregate(&ts);
    storage_stats(&ss);
    stats_conns(&cs);
    getrusage(RUSAGE_SELF, &ru);
    int64_t now = c->now;

    stat_u64(c, "pid", (uint64_t)getpid());
    stat_u64(c, "uptime", (uint64_t)((now - clock_start_ms()) / 1000));
    stat_u64(c, "time", (uint64_t)(now / 1000));
    stat_fmt(c, "version", "%s", PACKAGE_VERSION);
    stat_fmt(c, "libevent", "%s", event_get_version());
    stat_u64(c, "pointer_size", sizeof(void *) * 8);
    stat_fmt(c, "rusage_user", "%ld.%06ld", (long)ru.ru_utime.tv_sec, (long)ru.ru_utime.tv_usec);
    stat_fmt(c, "rusage_system", "%ld.%06ld", (long)ru.ru_stime.tv_sec, (long)ru.ru_stime.tv_usec);
    stat_u64(c, "max_connections", (uint64_t)settings->max_conns);
    stat_u64(c, "curr_connections", cs.curr_connections);
    stat_u64(c, "total_connections", cs.total_connections);
    stat_u64(c, "rejected_connections", cs.rejected_connections);
    stat_u64(c, "connection_structures", cs.connection_structures);
#define X(name) stat_u64(c, #name, ts.name);
    THREAD_STATS_FIELDS(X)
#undef X
    stat_u64(c, "limit_maxbytes", ss.limit_maxbytes);
    stat_u64(c, "accepting_conns", 1);
    stat_u64(c, "threads", (uint64_t)settings->threads);
    stat_u64(c, "hash_power_level", ss.hash_power_level);
    stat_u64(c, "hash_bytes", ss.hash_bytes);
    stat_u64(c, "hash_is_expanding", ss.hash_is_expanding ? 1 : 0);
    stat_u64(c, "bytes", ss.bytes);
    stat_u64(c, "curr_items", ss.curr_items);
    stat_u64(c, "total_items", ss.total_items);
    stat_u64(c, "slab_global_page_pool", ss.slab_global_page_pool);
    stat_u64(c, "expired_unfetched", ss.expired_unfetched);
    stat_u64(c, "evicted_unfetched", ss.evicted_unfetched);
    stat_u64(c, "evicted_active", ss.evicted_active);
    stat_u64(c, "evictions", ss.evictions);
    stat_u64(c, "reclaimed", ss.reclaimed);
    stat_u64(c, "total_malloced", ss.total_malloced);
}

static void stats_settings(struct conn *c)
{
    const struct settings *s = settings;
    stat_u64(c, "maxbytes", s->storage.mem_limit);
    stat_u64(c, "maxconns", (uint64_t)s->max_conns);
    stat_u64(c, "tcpport", (uint64_t)s->port);
    stat_u64(c, "udpport", (uint64_t)s->udp_port);
    stat_fmt(c, "inter", "%s", s->listen);
    stat_u64(c, "verbosity", (uint64_t)s->verbose);
    stat_u64(c, "oldest", 0);
    stat_fmt(c, "evictions", "%s", s->storage.evict ? "on" : "off");
    stat_fmt(c, "domain_socket", "%s", s->socket_path[0] ? s->socket_path : "NULL");
    stat_fmt(c, "umask", "%o", (unsigned)s->socket_mask);
    stat_fmt(c, "shutdown_command", "%s", s->enable_shutdown ? "yes" : "no");
    stat_fmt(c, "growth_factor", "%.2f", s->storage.growth_factor);
    stat_u64(c, "chunk_size", s->storage.chunk_size_min);
    stat_u64(c, "num_threads", (uint64_t)s->threads);
    stat_u64(c, "reqs_per_event", (uint64_t)s->reqs_per_event);
    stat_fmt(c, "cas_enabled", "%s", s->storage.use_cas ? "yes" : "no");
    stat_u64(c, "tcp_backlog", (uint64_t)s->backlog);
    stat_fmt(c, "binding_protocol", "%s", "auto-negotiate");
    stat_u64(c, "item_size_max", s->storage.item_size_max);
    stat_fmt(c, "maxconns_fast", "%s", "yes");
    stat_u64(c, "hashpower_init", s->storage.hashpower);
    stat_u64(c, "slab_chunk_max", STORAGE_PAGE_SIZE / 2);
    stat_fmt(c, "flush_enabled", "%s", s->flush_enabled ? "yes" : "no");
    stat_fmt(c, "hash_algorithm", "%s", "xxh3");
    stat_u64(c, "resp_port", (uint64_t)s->resp_port);
    stat_fmt(c, "prealloc", "%s", s->storage.prealloc ? "yes" : "no");
}

static void stats_items(struct conn *c)
{
    char name[64];
    unsigned n = storage_class_count();
    for (unsigned id = 1; id <= n; id++) {
        struct storage_class_stats cs;
        storage_class_stats(id, c->now, &cs);
        if (cs.number == 0 && cs.evicted == 0 && cs.outofmemory == 0)
            continue;
#define ITEM_STAT(field, label) \
        do { snprintf(name, sizeof(name), "items:%u:%s", id, label); stat_u64(c, name, cs.field); } while (0)
        ITEM_STAT(number, "number");
        ITEM_STAT(age_sec, "age");
        ITEM_STAT(mem_requested, "mem_requested");
        ITEM_STAT(evicted, "evicted");
        ITEM_STAT(evicted_nonzero, "evicted_nonzero");
        ITEM_STAT(evicted_time, "evicted_time");
        ITEM_STAT(outofmemory, "outofmemory");
        ITEM_STAT(tailrepairs, "tailrepairs");
        ITEM_STAT(reclaimed, "reclaimed");
        ITEM_STAT(expired_unfetched, "expired_unfetched");
        ITEM_STAT(evicted_unfetched, "evicted_unfetched");
        ITEM_STAT(evicted_active, "evicted_active");
#undef ITEM_STAT
    }
}

static void stats_slabs(struct conn *c)
{
    char name[64];
    unsigned n = storage_class_count(), active = 0;
    for (unsigned id = 1; id <= n; id++) {
        struct storage_class_stats cs;
        storage_class_stats(id, c->now, &cs);
        if (cs.total_pages == 0)
            continue;
        active++;
#define SLAB_STAT(field, label) \
        do { snprintf(name, sizeof(name), "%u:%s", id, label); stat_u64(c, name, cs.field); } while (0)
        SLAB_STAT(chunk_size, "chunk_size");
        SLAB_STAT(chunks_per_page, "chunks_per_page");
        SLAB_STAT(total_pages, "total_pages");
        SLAB_STAT(total_chunks, "total_chunks");
        SLAB_STAT(used_chunks, "used_chunks");
        SLAB_STAT(free_chunks, "free_chunks");
        SLAB_STAT(free_chunks_end, "free_chunks_end");
#undef SLAB_STAT
    }
    struct storage_stats ss;
    storage_stats(&ss);
    stat_u64(c, "active_slabs", active);
    stat_u64(c, "total_malloced", ss.total_malloced);
}

static void stats_conns_list(struct conn *c)
{
    char name[64], addr[96];
    for (int i = 0; i < worker_count(); i++) {
        struct worker *w = worker_get(i);
        pthread_mutex_lock(&w->conns_lock);
        for (struct conn *o = w->conns; o != NULL; o = o->next) {
            conn_peer_name(o, addr, sizeof(addr));
            snprintf(name, sizeof(name), "%d:addr", o->fd);
            stat_fmt(c, name, "%s%s", o->peer_len > 0 && addr[0] != 'u' ? "tcp:" : "", addr);
            snprintf(name, sizeof(name), "%d:state", o->fd);
            stat_fmt(c, name, "%s", conn_state_name(o));
            snprintf(name, sizeof(name), "%d:secs_since_last_cmd", o->fd);
            int64_t last = __atomic_load_n(&o->last_cmd, __ATOMIC_RELAXED);
            stat_u64(c, name, (uint64_t)(c->now > last ? (c->now - last) / 1000 : 0));
        }
        pthread_mutex_unlock(&w->conns_lock);
    }
}

static bool arg_is(const char *args, size_t len, const char *word)
{
    return strlen(word) == len && memcmp(args, word, len) == 0;
}

void cmd_stats_text(struct conn *c, const char *args, size_t len)
{
    if (len == 0) {
        stats_general(c);
    } else if (arg_is(args, len, "settings")) {
        stats_settings(c);
    } else if (arg_is(args, len, "items")) {
        stats_items(c);
    } else if (arg_is(args, len, "slabs")) {
        stats_slabs(c);
    } else if (arg_is(args, len, "conns")) {
        stats_conns_list(c);
    } else if (arg_is(args, len, "reset")) {
        stats_reset();
        CONN_OUT_LIT(c, "RESET\r\n");
        return;
    } else if (arg_is(args, len, "sizes")) {
        stat_fmt(c, "sizes_status", "%s", "disabled");
    } else if (len >= 6 && memcmp(args, "detail", 6) == 0) {
        CONN_OUT_LIT(c, "CLIENT_ERROR usage: stats detail on|off|dump\r\n");
        return;
    } else {
        CONN_OUT_LIT(c, "ERROR\r\n");
        return;
    }
    CONN_OUT_LIT(c, "END\r\n");
}
