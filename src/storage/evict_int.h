/*
 * Storage internals shared by item.c, evict.c and storage.c: the eviction
 * module's hooks on the item life cycle, and the item primitives it uses.
 * Nothing outside src/storage includes this.
 */
#ifndef KIOKU_EVICT_INT_H
#define KIOKU_EVICT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/item.h"

struct item;
struct storage_class_stats;
struct storage_stats;

#define ITEM_ATIME_MASK 0xffffffu   /* 24-bit access clock, seconds */
#define EVICT_WALK_MAX 50           /* slots the main hand examines per call */
#define EVICT_TTL_PAGES_MAX 8       /* pages a volatile page move looks at */
#define EVICT_SPARE_PAGES_MAX 64    /* pages a move of spare chunks looks at */
#define EVICT_TAIL_PEEK 4           /* slots evict_reclaim_tail() looks at a hand */

/* Set up per-class state and the ghost of `ghost_entries` (rounded up to a
 * power of two). */
int evict_setup(size_t ghost_entries, char *errbuf, size_t errlen);
void evict_teardown(void);
/* Where the ghost lives (for tests: its pages are written at set-up). */
void evict_ghost_span(const void **base, size_t *bytes);
/* The crawler thread: started once the hash table exists, stopped before it
 * goes. Stopping one that never started does nothing. */
int evict_start_crawler(char *errbuf, size_t errlen);
void evict_stop_crawler(void);

/* ---- hooks: the caller holds the item's stripe (hv is its key's hash) ---- */
/* Entering the table: counted in its class, and put in S3-FIFO's small queue
 * unless the ghost remembers the key. */
void evict_on_link(struct item *it, uint64_t hv);
void evict_on_unlink(struct item *it);

/* ---- lock-free ---- */
/* A hit: access count, access time and (under an LFU policy) LFU counter. */
void evict_on_hit(struct item *it, int64_t now);
/* The access word of a new item. */
uint32_t evict_access_init(int64_t now);

/*
 * Free memory in class `id` by the current policy: dead items first, then a
 * victim. Returns 1 if something was freed, else 0. With `reuse`, a freed
 * one-chunk item of this class is handed over in *reuse (still counted as
 * used by the slab, with *old_req its requested bytes) instead of going back
 * to the free list, where another thread could take it first. May be called
 * holding one stripe: stripes are only trylocked.
 */
int evict_reclaim(unsigned id, int64_t now, void **reuse, size_t *old_req);
/* Before an allocation in class id, as memcached looks at its LRU tail:
 * if the item at a hand (past at most EVICT_TAIL_PEEK empty slots) is
 * dead, it is reclaimed (counted in `reclaimed`) and the hand moves past
 * it, its chunk handed over as with evict_reclaim(). Returns 1 if one was
 * freed. Lock-free unless it finds one; never blocks. May be called
 * holding one stripe. */
int evict_reclaim_tail(unsigned id, int64_t now, void **reuse, size_t *old_req);
/* A new item took a chunk the crawler freed from a dead one (marked by
 * item_release_dead()): counted in class id's `reclaimed`. Lock-free. */
void evict_note_reused(unsigned id);
/* Whether a fruitless evict_reclaim() is worth repeating (false under
 * noeviction, where only dead items can be freed). */
bool evict_may_retry(void);
/* Count an allocation that failed in class id. */
void evict_note_oom(unsigned id);

/* The crawler's work, one bounded step: examine up to `max` items of class
 * id from its cursor (passing at most 16 slots per item, and ending at the
 * end of a pass over the class), reclaiming dead items. Returns how many
 * it freed. */
unsigned evict_crawl_step(unsigned id, unsigned max, int64_t now);
/* Stop (true) or resume the crawler thread, for tests. */
void evict_crawler_pause(bool paused);

/* ---- page moves (rebalance.c drives them) ---- */
/* Start moving the page under class id's main hand (or `skip` pages
 * after it) out of the class (false if the class has fewer than two pages
 * or a move is under way). With ttl_only (a volatile policy), only a page
 * whose live items all have a TTL, among the EVICT_TTL_PAGES_MAX from there. */
bool evict_move_begin(unsigned id, uint32_t skip, bool ttl_only, int64_t now);
/* The same for a move of a class's spare chunks: the page with the fewest
 * live items among the EVICT_SPARE_PAGES_MAX from the main hand (the first
 * empty one ends the look), so that freeing memory evicts nothing it need
 * not. */
bool evict_move_begin_spare(unsigned id, int64_t now);
/* One pass over the moving page: every item in it (or owning a value chunk
 * in it) that no reader holds leaves it: a live unchunked one whose header
 * is here moves to a free chunk of the class if one is free, or, with
 * make_room and if it was read, to the chunk of the policy's victim
 * elsewhere in the class (*rescued), else it is unlinked (*evicted counts the live ones) -- with
 * ttl_only, a live item without a TTL stays. Returns the chunks of the page
 * still in use; 0 means it can go. */
uint32_t evict_clear_moving_page(unsigned id, bool ttl_only, bool make_room, int64_t now,
                                 uint64_t *evicted,
                                 uint64_t *rescued);
/* Give up the move: the page serves class id again. */
void evict_move_cancel(unsigned id);
/* Hand the emptied page to class dst (0: back to the page pool). */
void evict_move_end(unsigned id, unsigned dst);
/* n items of class id were evicted to give a page to an allocation that
 * had nothing to evict: counted in `evictions` (Redis's evicted_keys), but
 * not in the class's own, which automove reads. */
void evict_note_rescued(unsigned id, uint64_t n);
/* Evictions so far in class id (for automove's windows). */
uint64_t evict_class_evictions(unsigned id);

/* Visit class id's linked items (up to every slot), each with its stripe
 * held, until visit returns false. */
void evict_walk(unsigned id, bool (*visit)(void *arg, const struct item *it), void *arg);

void evict_class_stats(unsigned id, int64_t now, struct storage_class_stats *out);
void evict_totals(struct storage_stats *out);
void evict_stats_reset(void);

/* ---- item.c's primitives used here ---- */
/* Limits item_alloc() enforces and the layout; called once by storage_setup(). */
void item_setup_limits(size_t item_size_max, size_t mem_limit, bool use_cas,
                       int64_t epoch_ms);
/* Expired or flushed. Caller holds the item's stripe (hv is its key's hash). */
bool do_item_is_dead(const struct item *it, uint64_t hv, int64_t now);
/* Unlink from the table and drop its reference. With `keep`, a one-chunk
 * item whose last reference that was is not freed: returns true and the
 * caller owns the chunk. Caller holds the stripe. */
bool do_item_unlink_keep(struct item *it, uint64_t hv, bool keep);
/* Free the chunk of a dead one-chunk item that do_item_unlink_keep() handed
 * over, marked so that the item that next takes it counts `reclaimed`
 * (memory from an expired entry), as item_alloc() checks. */
void item_release_dead(struct item *it);
/* ---- warm restart (restart.c) ---- */
/* A chunk of class id (chunk_size bytes) holds a linked item header that
 * is whole, unexpired at `now`, and whose chunk table names value chunks
 * that name it back. Reads only the region. */
bool item_restore_valid(struct item *it, unsigned id, uint32_t chunk_size, int64_t now);
/* Call fn on each chunk the item uses (its own first). */
void item_restore_claim(struct item *it, void (*fn)(void *chunk, unsigned id, size_t req, void *arg),
                        void *arg);
/* Link a restored item, keeping its CAS. Caller holds the stripe. */
void do_item_link_restored(struct item *it, uint64_t hv);

/* Bytes the slab counts as requested for the item's own chunk. */
size_t item_chunk_requested(const struct item *it);
/* `now` (kioku ms) as a 24-bit access time: seconds since start. Inline:
 * every hit asks it. */
static inline uint32_t item_atime_of(int64_t now)
{
    int64_t s = (now - item_layout.epoch_ms) / 1000;

    return s < 0 ? 0 : (uint32_t)s & ITEM_ATIME_MASK;
}
/* Whether the policy in force keeps LFU counters (read on every hit). */
bool evict_lfu_active(void);

#endif
