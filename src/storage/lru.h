/*
 * Per-class LRU lists and eviction (internal to storage).
 *
 * Each slab class has one doubly-linked list (newest at the head) and a mutex
 * that guards the list and the class's eviction counters. A chunked item is
 * listed in the largest class, where its value's memory lives, so evicting
 * there frees what large allocations need. Hits never take this lock: they
 * mark the item ITEM_ACTIVE under its stripe and the tail walk gives it a
 * second chance. Lock order: stripe -> LRU -> slab; the walk only trylocks
 * stripes.
 */
#ifndef KIOKU_LRU_H
#define KIOKU_LRU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct item;
struct storage_class_stats;
struct storage_stats;

#define LRU_WALK_MAX 50     /* items examined per tail walk */

void lru_setup(void);
void lru_teardown(void);

/* The list an item belongs to. */
unsigned lru_class_of(const struct item *it);

/* Link at the head / unlink. Caller holds the item's stripe; takes the LRU lock. */
void lru_link(struct item *it);
void lru_unlink(struct item *it);
/* Unlink when the caller already holds the item's class LRU lock (the walk). */
void lru_unlink_locked(struct item *it);

/*
 * Free memory in class `id` by walking at most LRU_WALK_MAX items from the
 * tail: dead items (expired, flushed) are reclaimed first; ACTIVE ones are
 * cleared and moved to the head (second chance); otherwise, if `evict`, the
 * oldest unreferenced live item is evicted. Items in use (a reader's
 * reference) and items whose stripe is busy are skipped. Returns the number
 * of items freed (0 or 1). May be called holding one stripe.
 *
 * With `reuse` non-NULL, a freed one-chunk item's chunk is handed to the
 * caller in *reuse instead of going back to the free list, where another
 * thread could take it first. The slab still counts it as used, and its old
 * header is intact (for adjusting the requested-bytes stat).
 */
int lru_pull_tail(unsigned id, int64_t now, bool evict, void **reuse);
/* Count an allocation that failed in class id. */
void lru_note_oom(unsigned id);

/* Visit class id's items newest first, under its LRU lock (so briefly),
 * until visit returns false. */
void lru_walk(unsigned id, bool (*visit)(void *arg, const struct item *it), void *arg);

/* Item part of a class's stats; and the totals over all classes. */
void lru_class_stats(unsigned id, int64_t now, struct storage_class_stats *out);
void lru_totals(struct storage_stats *out);
/* Zero the eviction counters (`stats reset`), each under its class lock. */
void lru_stats_reset(void);

/* ---- item.c's internals shared with lru.c and storage.c ---- */
/* Limits item_alloc() enforces; called once by storage_setup(). */
void item_setup_limits(size_t item_size_max, bool evict);
/* Expired or flushed. Caller holds the item's stripe (hv is its key's hash). */
bool do_item_is_dead(const struct item *it, uint64_t hv, int64_t now);
/* Unlink from hash and LRU (whose lock the caller holds) and drop the hash's
 * reference. With `keep`, a one-chunk item whose last reference that was is
 * not freed: returns true and the caller owns the chunk. */
bool do_item_unlink_lru_held(struct item *it, uint64_t hv, bool keep);
/* `now` (kioku ms) as an atime: seconds since clock_start_ms(). */
uint32_t item_atime_of(int64_t now);

#endif
