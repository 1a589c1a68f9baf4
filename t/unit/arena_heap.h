/*
 * A heap-backed arena for unit tests of the collection encodings: each
 * block is a malloc() of its own, named by its index in a table, with a
 * byte limit so tests can drive the out-of-memory paths, and checks that
 * catch a wrong size or a double free.
 */
#ifndef KIOKU_ARENA_HEAP_H
#define KIOKU_ARENA_HEAP_H

#include <stddef.h>

#include "types/arena.h"

/* An empty arena that refuses allocations beyond `limit` live bytes
 * (0: no limit). */
struct arena *arena_heap_new(size_t limit);
/* Free the arena; aborts if any block is still allocated and `expect_empty`. */
void arena_heap_destroy(struct arena *a, int expect_empty);
/* Live blocks and bytes. */
size_t arena_heap_blocks(const struct arena *a);
size_t arena_heap_live(const struct arena *a);
/* Make the next `n` allocations succeed, then fail every one after (-1: never fail by count). */
void arena_heap_fail_after(struct arena *a, long n);

#endif
