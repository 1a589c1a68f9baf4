/*
 * Slab page rebalancing (memcached's slab_reassign and slab_automove),
 * internal to storage; storage.h has the commands' entry points.
 *
 * Pages never leave the region, but one may move from a class that no longer
 * needs it to one that does, so that a shift in value sizes does not leave
 * memory stuck in the wrong classes (calcification). A move empties one
 * page of the source class, evicting what is in it, and gives it to the
 * destination. It runs on its own thread, which also makes the automove
 * decisions once per window.
 */
#ifndef KIOKU_REBALANCE_H
#define KIOKU_REBALANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct storage_stats;

/* Start the mover thread (if `enabled`) with the given automove mode. */
int rebalance_setup(bool enabled, unsigned automove, char *errbuf, size_t errlen);
void rebalance_teardown(void);

/*
 * Move one page from src to dst now, on the calling thread, waiting (in
 * passes of 1 ms) for readers to let go of its items, at most max_passes.
 * True when the page moved. For tests and the mover thread; the caller holds
 * no storage lock.
 */
bool rebalance_move_now(unsigned src, unsigned dst, int64_t now, unsigned max_passes);
/* The same for a page taken for src's free chunks (automove's spare class,
 * a page given back to the pool): the page with the fewest live items, not
 * the one under the main hand. */
bool rebalance_move_spare_now(unsigned src, unsigned dst, int64_t now, unsigned max_passes);

/*
 * An allocation in class dst found no free chunk, no page under the limit
 * and nothing dst may evict: move a page into dst now, from another class,
 * evicting its items as the policy allows (none under noeviction; under a
 * volatile policy only a page whose items all have a TTL). True when dst
 * got a page. Needs slab_reassign. The caller may hold one stripe (others
 * are only trylocked) and no other storage lock; it blocks for at most a
 * few milliseconds.
 */
bool rebalance_rescue(unsigned dst, int64_t now);

/* The slabs_moved family of `stats` and the settings in force. */
void rebalance_stats(struct storage_stats *out);

#endif
