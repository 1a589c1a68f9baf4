/*
 * Per-prefix key statistics: memcached's `stats detail on|off|dump`.
 *
 * A key's prefix is the bytes before its first delimiter (':' unless -D
 * says otherwise); keys without one are not counted. For each prefix we
 * count gets, hits, sets and deletes, and `stats detail dump` lists them as
 * "PREFIX <p> get <n> hit <n> set <n> del <n>\r\n" lines ending in
 * "END\r\n", memcached's format.
 *
 * Off by default; the per-request cost when off is prefix_stats_on(): one
 * relaxed atomic load. When on, a request takes one of the table's
 * striped locks (this is a diagnostic mode, as in memcached, where it takes
 * one global lock). The table is bounded: at most PREFIX_STATS_MAX
 * prefixes; a new prefix beyond that is not counted, as memcached does.
 */
#ifndef KIOKU_PREFIX_STATS_H
#define KIOKU_PREFIX_STATS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PREFIX_STATS_MAX 65536   /* memcached's cap on distinct prefixes */

enum prefix_op { PREFIX_GET, PREFIX_SET, PREFIX_DEL };

/* Counters of one prefix, as prefix_stats_find() reports them. */
struct prefix_counts {
    uint64_t get, hit, set, del;
};

/* Not for direct use: read through prefix_stats_on(). */
extern atomic_bool prefix_stats_enabled_;

/* Set the delimiter and whether counting starts on (memcached's -D turns it
 * on). Call before any worker runs; no allocation until a prefix is seen. */
void prefix_stats_setup(char delimiter, bool enabled);
/* Free every prefix. No other call may run concurrently. */
void prefix_stats_teardown(void);

static inline bool prefix_stats_on(void)
{
    return atomic_load_explicit(&prefix_stats_enabled_, memory_order_relaxed);
}

/* "stats detail on|off". Thread-safe. */
void prefix_stats_enable(bool on);

/* Count one get (hit tells whether it found the item), set or delete of key.
 * Thread-safe; allocates once per new prefix. Callers test
 * prefix_stats_on() first, so that counting off costs nothing more. */
void prefix_stats_record(const char *key, size_t nkey, enum prefix_op op, bool hit);

/* Forget every prefix ("stats reset"). Thread-safe. */
void prefix_stats_clear(void);

/* The counts of one prefix (without its delimiter); false if it has none. */
bool prefix_stats_find(const char *prefix, size_t n, struct prefix_counts *out);

/* Number of prefixes counted. */
size_t prefix_stats_count(void);

/*
 * The `stats detail dump` reply: one PREFIX line per prefix, then "END\r\n".
 * Returns a malloc()ed buffer the caller frees, and its length in *len; NULL
 * if out of memory. Holds one stripe lock at a time, so counting goes on
 * meanwhile (a prefix added during the dump may be missed).
 */
char *prefix_stats_dump(size_t *len);

#endif
