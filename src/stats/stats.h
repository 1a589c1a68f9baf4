/*
 * Per-thread statistics.
 *
 * Each worker owns one struct thread_stats and is its only writer, so a
 * request bumps a counter with a plain load and store (relaxed atomics, so
 * that readers in other threads are well defined) and never shares a cache
 * line with another worker. Readers sum all workers on demand.
 *
 * `stats reset` must not write counters it does not own: it records the
 * current sums as a baseline, and later reads report the difference.
 *
 * The field list is written once, as an X-macro, and used for the struct,
 * the sum, the baseline and the `stats` output names.
 */
#ifndef KIOKU_STATS_H
#define KIOKU_STATS_H

#include <stddef.h>
#include <stdint.h>

/* X(name): a counter reported under memcached's stat name `name`, listed
 * by `stats` in this order, one run. */
#define THREAD_STATS_CMDS(X) \
    X(cmd_get) X(cmd_set) X(cmd_flush) X(cmd_touch) X(cmd_meta) \
    X(get_hits) X(get_misses) X(get_expired) X(get_flushed) \
    X(delete_misses) X(delete_hits) X(incr_misses) X(incr_hits) \
    X(decr_misses) X(decr_hits) X(cas_misses) X(cas_hits) X(cas_badval) \
    X(touch_hits) X(touch_misses) X(store_too_large) X(store_no_memory) \
    X(auth_cmds) X(auth_errors)

/* Counted like the above, but placed one by one in `stats` (memcached
 * shows some only with their feature on); commands_processed only in
 * INFO (total_commands_processed); output_limit_disconnects is kioku's
 * (`stats kioku`, INFO's client_output_buffer_limit_disconnections);
 * read_buf_oom and response_obj_oom count clients closed because their
 * read or reply buffer could not grow (memcached's names);
 * total_error_replies is INFO's; resp_read_hits/misses count the RESP
 * reads of a key other than GET's (HGET, ZSCORE, EXISTS, TTL...), which
 * INFO's keyspace_hits/misses add to get_hits/misses, as Redis counts
 * every read lookup (one that meets a key of another type is a hit);
 * udp_* count datagrams dropped by core/udp.c (`stats kioku`). */
#define THREAD_STATS_ALL(X) THREAD_STATS_CMDS(X) X(bytes_read) X(bytes_written) \
    X(conn_yields) X(ssl_handshake_errors) X(idle_kicks) X(commands_processed) \
    X(output_limit_disconnects) X(read_buf_oom) X(response_obj_oom) X(total_error_replies) \
    X(resp_read_hits) X(resp_read_misses) \
    X(udp_bad_frames) X(udp_replies_dropped)

/* Levels, not counters (`stats reset` leaves them): each connection's read
 * and write buffers (read_buf_*), and of those its reply buffer
 * (response_obj_*), as memcached names its buffer and response memory.
 * Changed by the owning worker only, as the counters are; a sum may pass
 * through "negative" values in one thread (a client closed on another),
 * which wrap back when summed. */
#define THREAD_STATS_LEVELS(X) X(read_buf_count) X(read_buf_bytes) \
    X(response_obj_count) X(response_obj_bytes)

/* Per slab class, as memcached's `stats slabs` reports them. */
#define SLAB_STATS_FIELDS(X) \
    X(get_hits) X(cmd_set) X(delete_hits) X(incr_hits) X(decr_hits) \
    X(cas_hits) X(cas_badval) X(touch_hits)
#define STATS_SLAB_CLASSES 64   /* class ids 0..63 (storage's STORAGE_CLASS_MAX + 1) */

/* INFO errorstats: error replies by their first word ("ERR", "WRONGTYPE"),
 * the kinds numbered in the order first seen. A Lua script can make up
 * any word (redis.error_reply), so the kinds are bounded: past
 * STATS_ERROR_KINDS distinct words, a new word counts in
 * total_error_replies only. A word is at most STATS_ERROR_NAME_MAX bytes
 * (Redis looks for the space in an error's first 32 bytes, dash
 * included). */
#define STATS_ERROR_KINDS 128
#define STATS_ERROR_NAME_MAX 30

struct slab_thread_stats {
#define X(name) uint64_t name;
    SLAB_STATS_FIELDS(X)
#undef X
};

struct thread_stats {
#define X(name) uint64_t name;
    THREAD_STATS_ALL(X)
    THREAD_STATS_LEVELS(X)
#undef X
    struct slab_thread_stats slab[STATS_SLAB_CLASSES];
    uint64_t error_kind[STATS_ERROR_KINDS];   /* counters, by stats_error_name() */
} __attribute__((aligned(64)));

/* Owner-thread increment: no lock, no read-modify-write bus lock. */
#define STAT_ADD(ts, field, n) \
    __atomic_store_n(&(ts)->field, __atomic_load_n(&(ts)->field, __ATOMIC_RELAXED) + (uint64_t)(n), \
                     __ATOMIC_RELAXED)
#define STAT_INC(ts, field) STAT_ADD(ts, field, 1)
/* A per-class counter of the item's class (cls < STATS_SLAB_CLASSES). */
#define STAT_SLAB_INC(ts, cls, field) STAT_INC(&(ts)->slab[(cls) % STATS_SLAB_CLASSES], field)

/* Allocate one block per worker thread; call before the threads start. */
int stats_setup(int nthreads);
void stats_teardown(void);
/* Worker i's block (0 <= i < nthreads); only that worker writes it. */
struct thread_stats *stats_thread(int i);

/* Sum of all threads minus the baseline of the last stats_reset(). */
void stats_aggregate(struct thread_stats *out);

/* Make the counters read as zero from now on (baseline = current sums). */
void stats_reset(void);

/* Count one error reply in ts: total_error_replies and the count of its
 * kind, the first word of err (Redis's rule: the text up to a space in
 * its first 31 bytes, else "ERR"). err is the text after the '-'. Takes a
 * lock only the first time a word is seen. */
void stats_error_reply(struct thread_stats *ts, const char *err, size_t len);
/* The kinds seen so far; kind i (< that) is named stats_error_name(i),
 * a NUL-terminated string that never changes. */
int stats_error_kinds(void);
const char *stats_error_name(int i);

/* Connection counters, changed only on accept/close (not per request). */
struct conn_stats {
    uint64_t curr_connections;
    uint64_t total_connections;
    uint64_t rejected_connections;
    uint64_t connection_structures;
};
void stats_conn_opened(void);
void stats_conn_closed(void);
void stats_conn_rejected(void);
/* Current number of client connections (for -c). */
uint64_t stats_curr_conns(void);
void stats_conns(struct conn_stats *out);

#endif
