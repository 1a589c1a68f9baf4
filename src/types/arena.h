/*
 * Arena: the memory of one collection (a hash or a sorted set).
 *
 * Collections are built from blocks named by 32-bit references instead of
 * pointers. In the server an arena's blocks are carved from slab chunks that
 * the collection's item owns (src/storage/coll_arena.c): they count against
 * -m, are evicted with their key, and stay valid across a warm restart,
 * where the region may be mapped at another address. Unit tests link a
 * heap-backed arena (t/unit/arena_heap.c) with the same interface, so the
 * encodings in src/types/ never see slab memory or locks.
 *
 * An arena is used by one thread at a time: the caller holds the key's
 * stripe lock for as long as it reads or changes the collection.
 */
#ifndef KIOKU_ARENA_H
#define KIOKU_ARENA_H

#include <stddef.h>
#include <stdint.h>

#define ARENA_NONE 0u
/* Every block is aligned to at least this. */
#define ARENA_ALIGN 8u
/* The largest block one call can return; a string longer than this cannot
 * be a single field or member (the encodings answer an error for it). */
#define ARENA_ALLOC_MAX ((size_t)256 * 1024)

struct arena;

/*
 * A block of n bytes (1 <= n <= ARENA_ALLOC_MAX), contents undefined, or
 * ARENA_NONE when no memory can be had under the memory bound. A failed
 * call leaves the arena as it was, so the caller can undo a half-done
 * change and answer an out-of-memory error.
 */
uint32_t arena_alloc(struct arena *a, size_t n);
/* Return a block; n must be the size it was allocated with. */
void arena_free(struct arena *a, uint32_t ref, size_t n);
/* Where a block is now. Valid until the arena is changed by another
 * thread, which the stripe lock excludes. */
void *arena_ptr(const struct arena *a, uint32_t ref);
/* Bytes of memory the arena holds (blocks plus slack), for MEMORY USAGE. */
size_t arena_bytes(const struct arena *a);

#endif
