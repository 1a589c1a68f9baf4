/*
 * Slab allocator (internal to storage).
 *
 * Memory is taken in STORAGE_PAGE_SIZE pages, on demand up to the memory
 * limit (or all at set-up with prealloc), and each page is carved into the
 * equal chunks of one class. Class sizes grow geometrically from the smallest
 * item to SLAB_CHUNK_MAX, which is always the last class. Each class has its
 * own mutex and free list; the page-grab mutex is taken only when a class has
 * used up its pages. Lock order: class lock -> page lock. Chunks never move
 * between classes (no page rebalancing).
 */
#ifndef KIOKU_SLAB_H
#define KIOKU_SLAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SLAB_CHUNK_MAX (STORAGE_PAGE_SIZE / 2)

struct storage_class_stats;

/*
 * Build the classes: the first holds `first_size` bytes (rounded up to 8),
 * each next one `factor` times the previous, the last SLAB_CHUNK_MAX.
 * Returns 0, or -1 with a message in errbuf.
 */
int slab_setup(size_t mem_limit, size_t first_size, double factor, bool prealloc,
               char *errbuf, size_t errlen);
/* Free every page. Nothing may hold a chunk any more. */
void slab_teardown(void);

unsigned slab_class_count(void);
/* The largest class (its chunks are SLAB_CHUNK_MAX bytes). */
unsigned slab_largest(void);
/* Smallest class whose chunks hold `size` bytes; 0 if none does. */
unsigned slab_clsid(size_t size);
uint32_t slab_chunk_size(unsigned id);

/*
 * A chunk of class `id`, or NULL when the class has no free chunk and no page
 * can be had. `requested` is what the caller will use of it (stats only).
 * Takes the class lock (and maybe the page lock); never blocks on anything else.
 */
void *slab_alloc(unsigned id, size_t requested);
/* Return a chunk taken with slab_alloc(id, requested). */
void slab_free(void *chunk, unsigned id, size_t requested);

/* A used chunk changes owner (eviction hands it over): fix mem_requested. */
void slab_requested_adjust(void *chunk, unsigned id, size_t old_requested,
                           size_t new_requested);

/* Fill the slab part of a class's stats (chunks, pages, mem_requested). */
void slab_class_stats(unsigned id, struct storage_class_stats *out);
/* Bytes of pages taken so far, and pages taken but not yet given to a class. */
uint64_t slab_total_malloced(void);
uint64_t slab_free_pages(void);

#endif
