/*
 * Slab allocator (internal to storage).
 *
 * All item memory is one reserved virtual region, cut into STORAGE_PAGE_SIZE
 * pages that are handed out on demand (or touched at set-up with prealloc),
 * each page carved into the equal chunks of one class. Class sizes grow
 * geometrically from the smallest item to SLAB_CHUNK_MAX, always the last
 * class. Each class has its own mutex and free list; the page mutex is taken
 * only when a class has used up its pages.
 *
 * Because the region is contiguous, a chunk is named by a 32-bit reference
 * (its offset in units of the chunk alignment) instead of a 64-bit pointer:
 * hash chains and buckets are half the size, and the references stay valid
 * if the region is ever mapped at another address.
 *
 * A page changes class or goes back to the page pool only through a page
 * move (slab_move_*), which empties it first, so a chunk outside a moving
 * page stays a chunk of its class: the eviction sweep may read a chunk's
 * header (with atomics) without a lock, and the first SLAB_HEADER_ZONE
 * bytes of a chunk are never poisoned under ASan.
 */
#ifndef KIOKU_SLAB_H
#define KIOKU_SLAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/storage.h"

#define SLAB_CHUNK_MAX (STORAGE_PAGE_SIZE / 2)
/* A finer -f gives way to this factor where class ids would run out. */
#define SLAB_KNEE_FACTOR 1.25
#define SLAB_HEADER_ZONE 40     /* bytes of a chunk the sweep may read when free */

struct storage_class_stats;

/* Read-only after slab_setup(): where references point. */
struct slab_region {
    char *ref_base;         /* region start minus one alignment unit: ref 0 is NULL */
    unsigned shift;         /* log2 of the chunk alignment */
    /* The reported (memcached's) class of each class: see build_classes. */
    uint8_t shown[STORAGE_CLASS_MAX + 1];
};
extern struct slab_region slab_region;

static inline uint32_t slab_ref(const void *p)
{
    return p == NULL ? 0
                     : (uint32_t)((size_t)((const char *)p - slab_region.ref_base) >>
                                  slab_region.shift);
}

static inline void *slab_ptr(uint32_t ref)
{
    return ref == 0 ? NULL : slab_region.ref_base + ((size_t)ref << slab_region.shift);
}

/*
 * Build the classes: the first holds `first_size` bytes (rounded up to the
 * alignment), each next one `factor` times the previous, the last
 * SLAB_CHUNK_MAX; reserve the region. Returns 0, or -1 with a message.
 */
int slab_setup(size_t mem_limit, size_t first_size, double factor, bool prealloc,
               char *errbuf, size_t errlen);
/*
 * The same, with the region a shared mapping of `path` (warm restart, -e):
 * the file is created or resized to the region's size. Its old contents are
 * kept for slab_restore_*() when `keep` is true, zeroed otherwise.
 */
int slab_setup_file(size_t mem_limit, size_t first_size, double factor, const char *path,
                    bool keep, char *errbuf, size_t errlen);
/* Flush a file-backed region to its file (before the metadata is written). */
int slab_sync(void);

/* ---- warm restart: the layout the metadata records ---- */
struct slab_layout {
    uint64_t region_bytes;
    uint32_t shift;
    uint32_t nclasses;
    uint32_t chunk_size[STORAGE_CLASS_MAX + 1];
    uint64_t pages_taken;
    uint32_t npages[STORAGE_CLASS_MAX + 1];
    uint32_t end_left[STORAGE_CLASS_MAX + 1];   /* uncarved chunks of the newest page */
};
void slab_layout_get(struct slab_layout *out);
/* The page numbers (in the region) of class id, in order; n = npages[id]. */
void slab_pages_get(unsigned id, uint32_t *out);
/* Restore: after a setup with `keep`, give each class its pages back (as
 * recorded) with empty free lists and no chunk counted in use; then
 * slab_restore_chunk() tells each carved chunk's fate. Returns -1 if the
 * recorded pages do not fit this region. */
int slab_restore_pages(const struct slab_layout *l, uint32_t *const *pages);
void slab_restore_chunk(unsigned id, void *chunk, bool used, size_t requested);
/* Whether a reference read from a file names a chunk start inside the
 * region's pages (not what kind of chunk). */
bool slab_ref_valid(uint32_t ref);
/* Unmap the region. Nothing may hold a chunk any more. */
void slab_teardown(void);

unsigned slab_class_count(void);
/* The largest class (its chunks are SLAB_CHUNK_MAX bytes). */
unsigned slab_largest(void);
/* Smallest class whose chunks hold `size` bytes; 0 if none does. */
unsigned slab_clsid(size_t size);
uint32_t slab_chunk_size(unsigned id);
/* The reported classes (memcached's ids, 1..slab_shown_count()): the
 * classes first..last make up reported class `shown`, whose chunk size is
 * last's. false for an id that names none. */
unsigned slab_shown_count(void);
bool slab_shown_range(unsigned shown, unsigned *first, unsigned *last);
static inline unsigned slab_shown_of(unsigned id) { return slab_region.shown[id]; }
uint32_t slab_chunks_per_page(unsigned id);

/*
 * A chunk of class `id`, or NULL when the class has no free chunk and no page
 * can be had. `requested` is what the caller will use of it (stats only).
 * Takes the class lock (and maybe the page lock); never blocks on anything else.
 */
void *slab_alloc(unsigned id, size_t requested);
/* The same from the chunks the class holds already, never a new page: an
 * item moved out of a page leaving the class must not take one, or the
 * class keeps its size (memcached's mover allocates so too). */
void *slab_alloc_free(unsigned id, size_t requested);
/* Return a chunk taken with slab_alloc(id, requested). */
void slab_free(void *chunk, unsigned id, size_t requested);

/* A used chunk changes owner (eviction hands it over): fix mem_requested. */
void slab_requested_adjust(void *chunk, unsigned id, size_t old_requested,
                           size_t new_requested);

/* Pages class id owns (grows only; read without a lock), and the i-th of
 * them (i < slab_class_pages(id)). */
uint32_t slab_class_pages(unsigned id);
char *slab_class_page(unsigned id, uint32_t i);

/*
 * Page moves (memcached's slab_reassign). A move takes page ordinal `pi`
 * of class id out of service: its free chunks leave the free list, none of
 * its chunks is handed out again, and a chunk of it that is freed is counted
 * instead of listed. Once no chunk of it is in use, slab_move_end() zeroes
 * it and gives it to class dst. The caller holds id's eviction lock across
 * begin and end (and every reader of id's page list holds it too, since end
 * removes the page from that list).
 */
void slab_move_begin(unsigned id, uint32_t pi);
/* The page being moved out of class id, or NULL. */
char *slab_moving_page(unsigned id);
/* Chunks of the moving page still in use. */
uint32_t slab_move_in_use(unsigned id);
/* dst 0: the page goes to the page pool: parked (still held, for any
 * class) while no more pages are held than the limit allows, else its
 * memory goes back to the system (a lower limit, slab_over_limit()). */
void slab_move_end(unsigned id, unsigned dst);
/* Give up a move: the page's free chunks go back on the free list and the
 * page serves class id again (its chunks still in use stay where they are).
 * Same locking as slab_move_end(). */
void slab_move_cancel(unsigned id);

/* Fill the slab part of a class's stats (chunks, pages, mem_requested). */
void slab_class_stats(unsigned id, struct storage_class_stats *out);
/* Bytes of pages held (parked ones too), and pages a class can take
 * without growing that (parked, given back, preallocated). */
uint64_t slab_total_malloced(void);
uint64_t slab_free_pages(void);

/*
 * The memory limit at run time (memcached's cache_memlimit). A higher one
 * lets classes take more pages at once; a lower one stops new pages until
 * the mover has given enough back (slab_over_limit()). -1, limit unchanged,
 * for a file region (-e), a preallocated one (-L), or a limit beyond the
 * address space reserved at set-up. Takes the page lock.
 */
int slab_set_limit(size_t bytes);
size_t slab_limit(void);
/* More pages held than the limit allows (only after it was lowered): the
 * mover should give pages of classes with spare chunks back. */
bool slab_over_limit(void);
/* No class can take a new page without a parked one (memcached's
 * mem_limit_reached): the automover may park pages then. */
bool slab_at_limit(void);
/* Parked pages, and `slabs reassign 0 <dst>`: give one to class dst (its
 * chunks all free); false if none is parked. */
uint32_t slab_parked_pages(void);
bool slab_unpark(unsigned dst);

#endif
