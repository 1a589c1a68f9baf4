/*
 * `stats` replies. Counters come from three places, each summed on read:
 * per-worker request counters (stats/stats.h), storage (summed over hash
 * stripes and slab classes), and connection counters. Formatting uses
 * snprintf: stats are not a hot path.
 */
#include "cmd/cmd_stats.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <event2/event.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "auth/auth.h"
#include "cmd/mc_crawler_cmds.h"
#include "config/settings.h"
#include "config/version.h"
#include "core/conn.h"
#include "core/listener.h"
#include "core/udp.h"
#include "core/worker.h"
#include "stats/prefix_stats.h"
#include "stats/stats.h"
#include "storage/evict.h"
#include "storage/storage.h"
#include "tls/tls.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/watch.h"

static const struct settings *settings;   /* read-only after setup */

void cmd_stats_setup(const struct settings *s)
{
    settings = s;
}

/* Where stats go: one (name, value) pair at a time. The text reply and the
 * binary Stat packets are two sinks over the same lists below. */
struct stat_sink {
    cmd_stats_fn fn;
    void *arg;
    int64_t now;
};

static void stat_fmt(struct stat_sink *out, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void stat_fmt(struct stat_sink *out, const char *name, const char *fmt, ...)
{
    char val[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(val, sizeof(val), fmt, ap);
    va_end(ap);
    out->fn(out->arg, name, val);
}

static void stat_u64(struct stat_sink *out, const char *name, uint64_t v)
{
    stat_fmt(out, name, "%llu", (unsigned long long)v);
}

/* File descriptors kioku holds other than its clients' (listeners, worker
 * pipes and event fds, the standard streams): memcached's reserved_fds.
 * Counted in /proc, as there is no other list of them; 0 without /proc. */
static uint64_t misc_fds(uint64_t clients)
{
    DIR *d = opendir("/proc/self/fd");
    uint64_t n = 0;

    if (d == NULL)
        return 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(d);
    n -= n > 0;     /* the directory's own fd */
    return n > clients ? n - clients : 0;
}

/*
 * memcached 1.6.45's general stats, in its order and by its rules: some
 * groups only with their feature on (idle_kicks with an idle timeout, the
 * slab_reassign and crawler groups, TLS's). A stat of memcached machinery
 * that kioku lacks has kioku's counterpart where there is one (read and
 * reply buffers; a move's rescues and busy items; the crawler's checks);
 * where the event cannot happen in kioku's design the value is an honest
 * 0: a move rescues only whole items (chunked ones are evicted, counted in
 * `stats kioku`), never allocates from its own page, never waits for
 * memory, no per-worker log buffer drops a line (producers write straight
 * to the watchers' buffers: log_worker_dropped), threads are not chosen by NAPI
 * id, and no freed buffers are kept. kioku's own counters are in `stats
 * kioku`, so memcached's tools count memcached's list.
 */
static void stats_general(struct stat_sink *out)
{
    struct thread_stats ts;
    struct storage_stats ss;
    struct conn_stats cs;
    struct rusage ru;
    stats_aggregate(&ts);
    storage_stats(&ss);
    stats_conns(&cs);
    getrusage(RUSAGE_SELF, &ru);
    int64_t now = out->now;

    stat_u64(out, "pid", (uint64_t)getpid());
    stat_u64(out, "uptime", (uint64_t)((now - clock_start_ms()) / 1000));
    stat_u64(out, "time", (uint64_t)(now / 1000));
    stat_fmt(out, "version", "%s", KIOKU_PROTOCOL_VERSION);
    stat_fmt(out, "libevent", "%s", event_get_version());
    stat_u64(out, "pointer_size", sizeof(void *) * 8);
    stat_fmt(out, "rusage_user", "%ld.%06ld", (long)ru.ru_utime.tv_sec, (long)ru.ru_utime.tv_usec);
    stat_fmt(out, "rusage_system", "%ld.%06ld", (long)ru.ru_stime.tv_sec, (long)ru.ru_stime.tv_usec);
    stat_u64(out, "max_connections", (uint64_t)settings->max_conns);
    stat_u64(out, "curr_connections", cs.curr_connections);
    stat_u64(out, "total_connections", cs.total_connections);
    stat_u64(out, "rejected_connections", cs.rejected_connections);
    stat_u64(out, "connection_structures", cs.connection_structures);
    stat_u64(out, "response_obj_oom", ts.response_obj_oom);
    stat_u64(out, "response_obj_count", ts.response_obj_count);
    stat_u64(out, "response_obj_bytes", ts.response_obj_bytes);
    stat_u64(out, "read_buf_count", ts.read_buf_count);
    stat_u64(out, "read_buf_bytes", ts.read_buf_bytes);
    stat_u64(out, "read_buf_bytes_free", 0);
    stat_u64(out, "read_buf_oom", ts.read_buf_oom);
    stat_u64(out, "reserved_fds", misc_fds(cs.curr_connections));
#define X(name) stat_u64(out, #name, ts.name);
    THREAD_STATS_CMDS(X)
#undef X
    if (settings->idle_timeout > 0)
        stat_u64(out, "idle_kicks", ts.idle_kicks);
    stat_u64(out, "bytes_read", ts.bytes_read);
    stat_u64(out, "bytes_written", ts.bytes_written);
    stat_u64(out, "limit_maxbytes", ss.limit_maxbytes);
    stat_u64(out, "accepting_conns", 1);
    struct listener_stats ls;
    listener_stats(&ls);
    stat_u64(out, "listen_disabled_num", ls.disabled_num);
    stat_u64(out, "time_in_listen_disabled_us", ls.disabled_us);
    stat_u64(out, "threads", (uint64_t)settings->threads);
    stat_u64(out, "conn_yields", ts.conn_yields);
    stat_u64(out, "hash_power_level", ss.hash_power_level);
    stat_u64(out, "hash_bytes", ss.hash_bytes);
    stat_u64(out, "hash_is_expanding", ss.hash_is_expanding ? 1 : 0);
    if (ss.slab_reassign) {
        stat_u64(out, "slab_reassign_rescues", ss.slab_reassign_rescues);
        stat_u64(out, "slab_reassign_chunk_rescues", 0);
        stat_u64(out, "slab_reassign_inline_reclaim", 0);
        stat_u64(out, "slab_reassign_busy_items", ss.slab_reassign_busy_items);
        stat_u64(out, "slab_reassign_busy_deletes", 0);
        stat_u64(out, "slab_reassign_busy_nomem", 0);
        /* kioku waits for one reason only: a reader holds the item */
        stat_fmt(out, "slab_reassign_last_busy_status", "%s",
                 ss.slab_reassign_busy_items > 0 ? "busy" : "none");
        stat_u64(out, "slab_reassign_running", ss.slab_reassign_running ? 1 : 0);
        stat_u64(out, "slabs_moved", ss.slabs_moved);
    }
    if (storage_crawler_on()) {
        /* lru_crawler crawl finishes before it answers: never one running */
        stat_u64(out, "lru_crawler_running", 0);
        stat_u64(out, "lru_crawler_starts", ss.lru_crawler_starts);
    }
    /* connection buffers are kioku's only allocations that fail softly */
    stat_u64(out, "malloc_fails", ts.read_buf_oom + ts.response_obj_oom);
    struct watch_stats ws;
    watch_stats_get(&ws);
    stat_u64(out, "log_worker_dropped", ws.worker_dropped);
    stat_u64(out, "log_worker_written", ws.worker_written);
    stat_u64(out, "log_watcher_skipped", ws.watcher_skipped);
    stat_u64(out, "log_watcher_sent", ws.watcher_sent);
    stat_u64(out, "log_watchers", ws.watchers);
    if (settings->tls.enabled) {
        if (settings->tls.session_cache)
            stat_u64(out, "ssl_new_sessions", tls_new_sessions());
        stat_u64(out, "ssl_handshake_errors", ts.ssl_handshake_errors);
        stat_u64(out, "time_since_server_cert_refresh",
                 (uint64_t)((now - tls_certs_loaded_ms()) / 1000));
    }
    stat_u64(out, "unexpected_napi_ids", 0);
    stat_u64(out, "round_robin_fallback", 0);
    stat_u64(out, "bytes", ss.bytes);
    stat_u64(out, "curr_items", ss.curr_items);
    stat_u64(out, "total_items", ss.total_items);
    stat_u64(out, "slab_global_page_pool", ss.slab_global_page_pool);
    stat_u64(out, "expired_unfetched", ss.expired_unfetched);
    stat_u64(out, "evicted_unfetched", ss.evicted_unfetched);
    stat_u64(out, "evictions", ss.evictions);
    stat_u64(out, "reclaimed", ss.reclaimed);
    stat_u64(out, "crawler_reclaimed", ss.crawler_reclaimed);
    stat_u64(out, "crawler_items_checked", ss.crawler_items_checked);
    stat_u64(out, "lrutail_reflocked", ss.lrutail_reflocked);
}

/* kioku's own counters, which memcached's list has no name for. */
static void stats_kioku(struct stat_sink *out)
{
    struct thread_stats ts;
    struct storage_stats ss;
    stats_aggregate(&ts);
    storage_stats(&ss);
    stat_u64(out, "output_limit_disconnects", ts.output_limit_disconnects);
    stat_u64(out, "evicted_active", ss.evicted_active);
    stat_u64(out, "slab_reassign_evictions_nomem", ss.slab_reassign_evictions_nomem);
    stat_u64(out, "total_malloced", ss.total_malloced);
    stat_u64(out, "outofmemory", ss.outofmemory);
    stat_u64(out, "commands_processed", ts.commands_processed);
    stat_u64(out, "udp_bad_frames", ts.udp_bad_frames);
    stat_u64(out, "udp_replies_dropped", ts.udp_replies_dropped);
}

static void stats_settings(struct stat_sink *out)
{
    const struct settings *s = settings;
    stat_u64(out, "maxbytes", storage_mem_limit());   /* cache_memlimit may change it */
    stat_u64(out, "maxconns", (uint64_t)s->max_conns);
    stat_fmt(out, "tcpport", "%d", s->port);
    stat_fmt(out, "udpport", "%d", s->udp_port);
    stat_fmt(out, "inter", "%s", s->listen);
    stat_u64(out, "verbosity", (uint64_t)log_level());
    stat_u64(out, "oldest", 0);
    /* the runtime policy: RESP's CONFIG SET may have changed it */
    stat_fmt(out, "evictions", "%s", evict_get_policy() != EVICT_NOEVICTION ? "on" : "off");
    stat_fmt(out, "domain_socket", "%s", s->socket_path[0] ? s->socket_path : "NULL");
    stat_fmt(out, "umask", "%o", (unsigned)s->socket_mask);
    stat_fmt(out, "shutdown_command", "%s", s->enable_shutdown ? "yes" : "no");
    stat_fmt(out, "growth_factor", "%.2f", s->storage.growth_factor);
    stat_u64(out, "chunk_size", s->storage.chunk_size_min);
    stat_u64(out, "num_threads", (uint64_t)s->threads);
    stat_u64(out, "num_threads_per_udp", (uint64_t)udp_workers_per_socket(s));
    stat_u64(out, "reqs_per_event", (uint64_t)s->reqs_per_event);
    stat_fmt(out, "cas_enabled", "%s", s->storage.use_cas ? "yes" : "no");
    stat_u64(out, "tcp_backlog", (uint64_t)s->backlog);
    static const char *const binding[] = {
        [BINDING_AUTO] = "auto-negotiate", [BINDING_ASCII] = "ascii", [BINDING_BINARY] = "binary",
    };
    stat_fmt(out, "binding_protocol", "%s", binding[s->binding]);
    stat_u64(out, "item_size_max", s->storage.item_size_max);
    stat_fmt(out, "maxconns_fast", "%s", "yes");
    stat_u64(out, "hashpower_init", s->storage.hashpower);
    stat_u64(out, "slab_chunk_max", STORAGE_PAGE_SIZE / 2);
    stat_fmt(out, "flush_enabled", "%s", s->flush_enabled ? "yes" : "no");
    stat_fmt(out, "hash_algorithm", "%s", "xxh3");
    stat_u64(out, "resp_port", (uint64_t)s->resp_port);
    stat_fmt(out, "prealloc", "%s", s->storage.prealloc ? "yes" : "no");
    /* kioku's extensions: the eviction knobs, as they are now */
    stat_fmt(out, "maxmemory_policy", "%s", evict_policy_name(evict_get_policy()));
    stat_u64(out, "lfu_log_factor", evict_get_lfu_log_factor());
    stat_u64(out, "lfu_decay_time", evict_get_lfu_decay_time());
    stat_u64(out, "maxmemory_samples", evict_get_samples());
    /* As memcached: the ascii authfile's path, or "no". A password file
     * makes binary clients authenticate with SASL too (memcached would
     * refuse binary clients under -Y instead). */
    stat_fmt(out, "auth_enabled_sasl", "%s", auth_file_enabled() ? "yes" : "no");
    stat_fmt(out, "auth_enabled_ascii", "%s", auth_file_enabled() ? auth_file_path() : "no");
    stat_fmt(out, "stat_key_prefix", "%c", s->prefix_delimiter);
    stat_fmt(out, "detail_enabled", "%s", prefix_stats_on() ? "yes" : "no");
    /* memcached features kioku does not have, reported as off so that
     * monitoring skips what depends on them */
    stat_fmt(out, "lru_crawler", "%s", storage_crawler_on() ? "yes" : "no");   /* kioku's crawler */
    stat_u64(out, "lru_crawler_tocrawl", mc_crawler_tocrawl());
    stat_fmt(out, "lru_maintainer_thread", "%s", "no");
    stat_fmt(out, "lru_segmented", "%s", "no");
    struct storage_stats ss;
    storage_stats(&ss);
    stat_fmt(out, "slab_reassign", "%s", ss.slab_reassign ? "yes" : "no");
    if (s->storage.memory_file[0] != '\0')
        stat_fmt(out, "memory_file", "%s", s->storage.memory_file);
    stat_u64(out, "slab_automove", ss.slab_automove);
    stat_fmt(out, "temp_lru", "%s", "no");
    stat_fmt(out, "track_sizes", "%s", "no");
    stat_u64(out, "idle_timeout", (uint64_t)s->idle_timeout);
    stat_u64(out, "watcher_logbuf_size", s->watcher_logbuf_size);
    stat_u64(out, "max_output_buffer", s->max_output);
    stat_u64(out, "read_buf_mem_limit", s->read_buf_mem_limit);
    stat_fmt(out, "logfile", "%s", log_path()[0] ? log_path() : "NULL");
    stat_u64(out, "shutdown_timeout", (uint64_t)s->shutdown_timeout);
    stat_u64(out, "client_flags_size", 4);
    /* TLS, as memcached built with TLS shows it */
    const struct tls_config *t = &s->tls;
    stat_fmt(out, "ssl_enabled", "%s", t->enabled ? "yes" : "no");
    stat_fmt(out, "ssl_session_cache", "%s", t->session_cache ? "yes" : "no");
    stat_fmt(out, "ssl_kernel_tls", "%s", t->kernel_tls ? "yes" : "no");
    stat_fmt(out, "ssl_chain_cert", "%s", t->chain_cert);
    stat_fmt(out, "ssl_key", "%s", t->key);
    stat_u64(out, "ssl_verify_mode", (uint64_t)t->verify_mode);
    stat_u64(out, "ssl_keyformat", 1);                 /* PEM, as memcached's 1 */
    stat_fmt(out, "ssl_ciphers", "%s", t->ciphers[0] ? t->ciphers : "NULL");
    stat_fmt(out, "ssl_ca_cert", "%s", t->ca_cert[0] ? t->ca_cert : "NULL");
    stat_u64(out, "ssl_wbuf_size", t->wbuf_size);
    stat_fmt(out, "ssl_min_version", "%s", t->min_version == 3 ? "tlsv1.3" : "tlsv1.2");
    stat_u64(out, "tls_port", (uint64_t)t->port);
}

static void stats_items(struct stat_sink *out)
{
    char name[64];
    unsigned n = storage_class_count();
    for (unsigned id = 1; id <= n; id++) {
        struct storage_class_stats cs;
        storage_class_stats(id, out->now, &cs);
        if (cs.number == 0 && cs.evicted == 0 && cs.outofmemory == 0)
            continue;
#define ITEM_STAT(field, label) \
        do { snprintf(name, sizeof(name), "items:%u:%s", id, label); stat_u64(out, name, cs.field); } while (0)
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
        ITEM_STAT(crawler_reclaimed, "crawler_reclaimed");
        ITEM_STAT(number_small, "number_small");
#undef ITEM_STAT
    }
}

static void stats_slabs(struct stat_sink *out)
{
    char name[64];
    unsigned n = storage_class_count(), active = 0;
    struct thread_stats ts;
    _Static_assert(STATS_SLAB_CLASSES == STORAGE_CLASS_MAX + 1, "per-class stats size");
    stats_aggregate(&ts);
    for (unsigned id = 1; id <= n; id++) {
        struct storage_class_stats cs;
        storage_class_stats(id, out->now, &cs);
        if (cs.total_pages == 0)
            continue;
        active++;
#define SLAB_STAT(field, label) \
        do { snprintf(name, sizeof(name), "%u:%s", id, label); stat_u64(out, name, cs.field); } while (0)
        SLAB_STAT(chunk_size, "chunk_size");
        SLAB_STAT(chunks_per_page, "chunks_per_page");
        SLAB_STAT(total_pages, "total_pages");
        SLAB_STAT(total_chunks, "total_chunks");
        SLAB_STAT(used_chunks, "used_chunks");
        SLAB_STAT(free_chunks, "free_chunks");
        SLAB_STAT(free_chunks_end, "free_chunks_end");
        SLAB_STAT(evicted, "evicted");      /* kioku: evictions where this class needed room */
#undef SLAB_STAT
#define X(field) \
        do { snprintf(name, sizeof(name), "%u:%s", id, #field); stat_u64(out, name, ts.slab[id].field); } while (0);
        SLAB_STATS_FIELDS(X)
#undef X
    }
    struct storage_stats ss;
    storage_stats(&ss);
    stat_u64(out, "active_slabs", active);
    stat_u64(out, "total_malloced", ss.total_malloced);
}

/* A socket's own address in memcached's form: "tcp:127.0.0.1:11211",
 * "tcp6:[::1]:11211", "udp:127.0.0.1:11211", "unix:/path". */
static void local_name(int fd, char *buf, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[INET6_ADDRSTRLEN] = "?";
    int type = SOCK_STREAM;
    socklen_t tlen = sizeof(type);
    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen);
    const char *proto = type == SOCK_DGRAM ? "udp" : "tcp";

    memset(&ss, 0, sizeof(ss));
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
        snprintf(buf, cap, "?");
    } else if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        snprintf(buf, cap, "%s:%s:%u", proto, host, ntohs(in->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        snprintf(buf, cap, "%s6:[%s]:%u", proto, host, ntohs(in6->sin6_port));
    } else if (ss.ss_family == AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)&ss;
        snprintf(buf, cap, "unix:%.*s", (int)sizeof(un->sun_path), un->sun_path);
    } else {
        snprintf(buf, cap, "?");
    }
}

/* One client of `stats conns`, copied under its worker's lock. */
struct conn_row {
    int fd;
    bool tcp;
    const char *state;          /* a static string */
    int64_t last_cmd;
    char peer[INET6_ADDRSTRLEN + 16];
};

static int conn_row_cmp(const void *a, const void *b)
{
    int x = ((const struct conn_row *)a)->fd, y = ((const struct conn_row *)b)->fd;
    return (x > y) - (x < y);
}

/* As memcached: the listening sockets first (state conn_listening, their
 * own address), each worker's UDP descriptors (conn_read, waiting for a
 * datagram), then each client with the address it connected to. */
static void stats_conns_list(struct stat_sink *out)
{
    char name[64], addr[128];
    int lfds[64];
    size_t nl = listener_fds(lfds, sizeof(lfds) / sizeof(lfds[0]));
    int64_t up = (out->now - clock_start_ms()) / 1000;

    for (size_t i = 0; i < nl; i++) {
        local_name(lfds[i], addr, sizeof(addr));
        snprintf(name, sizeof(name), "%d:addr", lfds[i]);
        stat_fmt(out, name, "%s", addr);
        snprintf(name, sizeof(name), "%d:state", lfds[i]);
        stat_fmt(out, name, "%s", "conn_listening");
        snprintf(name, sizeof(name), "%d:secs_since_last_cmd", lfds[i]);
        stat_u64(out, name, (uint64_t)(up > 0 ? up : 0));
    }
    struct udp_conn_info udp[64];
    size_t nu = udp_conns(udp, sizeof(udp) / sizeof(udp[0]));
    for (size_t i = 0; i < nu; i++) {
        snprintf(name, sizeof(name), "%d:UDP", udp[i].fd);
        stat_fmt(out, name, "%s", "UDP");
        local_name(udp[i].fd, addr, sizeof(addr));
        snprintf(name, sizeof(name), "%d:addr", udp[i].fd);
        stat_fmt(out, name, "%s", addr);
        snprintf(name, sizeof(name), "%d:state", udp[i].fd);
        stat_fmt(out, name, "%s", "conn_read");
        snprintf(name, sizeof(name), "%d:secs_since_last_cmd", udp[i].fd);
        int64_t last = udp[i].last_cmd;
        stat_u64(out, name, (uint64_t)(out->now > last ? (out->now - last) / 1000 : 0));
    }
    /* Clients in fd order, as memcached walks its table of fds (tools
     * and memcached's tests take the last line as the newest client). A
     * snapshot of each worker's list, so no lock is held while sorting. */
    size_t n = 0, cap = 0;
    struct conn_row *rows = NULL;
    for (int i = 0; i < worker_count(); i++) {
        struct worker *w = worker_get(i);
        pthread_mutex_lock(&w->conns_lock);
        for (struct conn *o = w->conns; o != NULL; o = o->next) {
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 64;
                struct conn_row *nr = realloc(rows, ncap * sizeof(*nr));
                if (nr == NULL)
                    break;
                rows = nr;
                cap = ncap;
            }
            struct conn_row *r = &rows[n++];
            r->fd = o->fd;
            conn_peer_name(o, r->peer, sizeof(r->peer));
            r->tcp = o->peer_len > 0 && r->peer[0] != 'u';
            r->state = conn_state_name(o);
            r->last_cmd = __atomic_load_n(&o->last_cmd, __ATOMIC_RELAXED);
        }
        pthread_mutex_unlock(&w->conns_lock);
    }
    if (n > 1)
        qsort(rows, n, sizeof(*rows), conn_row_cmp);
    for (size_t i = 0; i < n; i++) {
        const struct conn_row *r = &rows[i];
        snprintf(name, sizeof(name), "%d:addr", r->fd);
        stat_fmt(out, name, "%s%s", r->tcp ? "tcp:" : "", r->peer);
        local_name(r->fd, addr, sizeof(addr));
        snprintf(name, sizeof(name), "%d:listen_addr", r->fd);
        stat_fmt(out, name, "%s", addr);
        snprintf(name, sizeof(name), "%d:state", r->fd);
        stat_fmt(out, name, "%s", r->state);
        snprintf(name, sizeof(name), "%d:secs_since_last_cmd", r->fd);
        stat_u64(out, name,
                 (uint64_t)(out->now > r->last_cmd ? (out->now - r->last_cmd) / 1000 : 0));
    }
    free(rows);
}

static bool arg_is(const char *args, size_t len, const char *word)
{
    return strlen(word) == len && memcmp(args, word, len) == 0;
}

/* "detail <word> ...": memcached reads the word after "detail" only. */
static enum cmd_stats_result stats_detail(const char *args, size_t len)
{
    const char *s = args + 6, *end = args + len;
    while (s < end && *s == ' ')
        s++;
    const char *w = s;
    while (s < end && *s != ' ')
        s++;
    size_t n = (size_t)(s - w);
    if (arg_is(w, n, "on") || arg_is(w, n, "off")) {
        prefix_stats_enable(n == 2);
        return CMD_STATS_DETAIL_OK;
    }
    if (arg_is(w, n, "dump"))
        return CMD_STATS_DETAIL_DUMP;
    return CMD_STATS_DETAIL_USAGE;
}

enum cmd_stats_result cmd_stats_pairs(const char *args, size_t len, int64_t now,
                                      cmd_stats_fn fn, void *arg)
{
    struct stat_sink out = {fn, arg, now};
    if (len == 0) {
        stats_general(&out);
    } else if (arg_is(args, len, "settings")) {
        stats_settings(&out);
    } else if (arg_is(args, len, "items")) {
        stats_items(&out);
    } else if (arg_is(args, len, "slabs")) {
        stats_slabs(&out);
    } else if (arg_is(args, len, "conns")) {
        stats_conns_list(&out);
    } else if (arg_is(args, len, "kioku")) {
        stats_kioku(&out);
    } else if (arg_is(args, len, "reset")) {
        stats_reset();
        storage_stats_reset();
        prefix_stats_clear();   /* memcached forgets the prefixes too */
        return CMD_STATS_RESET;
    } else if (arg_is(args, len, "sizes")) {
        stat_fmt(&out, "sizes_status", "%s", "disabled");
    } else if (len >= 6 && memcmp(args, "detail", 6) == 0 && (len == 6 || args[6] == ' ')) {
        return stats_detail(args, len);
    } else {
        return CMD_STATS_UNKNOWN;
    }
    return CMD_STATS_LISTED;
}

/* Text sink: "STAT name value\r\n". */
static void text_pair(void *arg, const char *name, const char *value)
{
    struct conn *c = arg;
    size_t need = strlen(name) + strlen(value) + 9;   /* "STAT " " " "\r\n" NUL */
    char *p = conn_out_reserve(c, need);
    if (p == NULL)
        return;
    int n = snprintf(p, need, "STAT %s %s\r\n", name, value);
    conn_out_commit(c, (size_t)n);
}

/* ---- stats cachedump <class> <limit> (text protocol only, as memcached) ---- */

#define CACHEDUMP_MAX_BYTES (2 * 1024 * 1024)   /* memcached's cap on one dump */

struct dump_out {
    struct conn *c;
    unsigned long limit, count;   /* limit 0: all */
    size_t bytes;
};

static bool dump_line(void *arg, const struct storage_dump_entry *e)
{
    struct dump_out *d = arg;
    size_t cap = e->nkey + 64;
    char *p = conn_out_reserve(d->c, cap);
    if (p == NULL)
        return false;
    /* memcached's format: size in bytes, expiry as a unix time (0: never) */
    int n = snprintf(p, cap, "ITEM %.*s [%u b; %lld s]\r\n", (int)e->nkey, e->key, e->nbytes,
                     (long long)(e->exptime / 1000));
    conn_out_commit(d->c, (size_t)n);
    d->bytes += (size_t)n;
    return (d->limit == 0 || ++d->count < d->limit) && d->bytes < CACHEDUMP_MAX_BYTES;
}

/* A decimal token at *s (after spaces); false if there is none. */
static bool take_ulong(const char **s, const char *end, unsigned long *out)
{
    const char *p = *s;
    while (p < end && *p == ' ')
        p++;
    const char *b = p;
    unsigned long v = 0;
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
        if (v > (ULONG_MAX - 9) / 10)
            return false;
        v = v * 10 + (unsigned long)(*p - '0');
    }
    if (p == b || (p < end && *p != ' '))
        return false;
    *s = p;
    *out = v;
    return true;
}

static void stats_cachedump(struct conn *c, const char *args, size_t len)
{
    const char *s = args, *end = args + len;
    unsigned long id, limit;
    if (!take_ulong(&s, end, &id) || !take_ulong(&s, end, &limit)) {
        CONN_OUT_LIT(c, "CLIENT_ERROR bad command line\r\n");
        return;
    }
    if (id > STORAGE_CLASS_MAX) {
        CONN_OUT_LIT(c, "CLIENT_ERROR Illegal slab id\r\n");
        return;
    }
    struct dump_out d = {c, limit, 0, 0};
    storage_class_dump((unsigned)id, dump_line, &d);
    CONN_OUT_LIT(c, "END\r\n");
}

void cmd_stats_text(struct conn *c, const char *args, size_t len)
{
    if (len >= 9 && memcmp(args, "cachedump", 9) == 0 && (len == 9 || args[9] == ' ')) {
        stats_cachedump(c, args + 9, len - 9);
        return;
    }
    switch (cmd_stats_pairs(args, len, c->now, text_pair, c)) {
    case CMD_STATS_LISTED:
        CONN_OUT_LIT(c, "END\r\n");
        break;
    case CMD_STATS_RESET:
        CONN_OUT_LIT(c, "RESET\r\n");
        break;
    case CMD_STATS_DETAIL_OK:
        CONN_OUT_LIT(c, "OK\r\n");
        break;
    case CMD_STATS_DETAIL_DUMP: {
        size_t n = 0;
        char *dump = prefix_stats_dump(&n);
        if (dump == NULL) {
            CONN_OUT_LIT(c, "SERVER_ERROR out of memory writing stats\r\n");
            break;
        }
        conn_out(c, dump, n);
        free(dump);
        break;
    }
    case CMD_STATS_DETAIL_USAGE:
        CONN_OUT_LIT(c, "CLIENT_ERROR usage: stats detail on|off|dump\r\n");
        break;
    case CMD_STATS_UNKNOWN:
        CONN_OUT_LIT(c, "ERROR\r\n");
        break;
    }
}
