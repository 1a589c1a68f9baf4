/*
 * Slab allocator: fixed-size chunks carved from 1 MiB pages of one region.
 *
 * The region is reserved once with mmap (no memory is committed until a page
 * is touched): the memory limit in pages, plus one page per class, because,
 * as in memcached, a class that has no page at all may take its first one
 * beyond the limit; otherwise a cache filled with small items could never
 * again store a large one. Pages are taken in order and never given back, so
 * a chunk's class never changes and untouched memory reads as zeros (an
 * all-zero header is "not an item" to the eviction sweep).
 *
 * The limit may change at run time (memcached's cache_memlimit). An
 * anonymous region therefore reserves, besides its usable part, address
 * space up to what 32-bit references can name (PROT_NONE: no memory is
 * committed): a higher limit makes more of it usable, a lower one stops
 * new pages from being taken, and the mover thread (rebalance.c) then
 * hands pages that a class no longer needs back to the page pool, whose
 * memory is returned to the system (MADV_DONTNEED) until a class takes the
 * page again. A file region (-e) and a preallocated one (-L) keep their
 * limit, as memcached's do.
 *
 * At the limit, the automover (or `slabs reassign <id> 0`) parks an emptied
 * page instead, as in memcached's global page pool: zeroed but still held
 * (counted in total_malloced), and the next class that needs a page takes
 * it before any other, whatever the limit. Parked pages go back to the
 * system only when the limit is lowered below what is held.
 *
 * Every class keeps a free list (linked by 32-bit references written where
 * an item keeps its client flags, which nothing reads in a free chunk) and
 * the uncarved rest of its newest page, so a page costs nothing until its
 * chunks are used.
 *
 * Locking: each class's mutex guards its free list and counters; the page
 * mutex guards the page counter, and is only taken under a class mutex when
 * that class needs a new page (rare). A class's page list only grows: it is
 * published with a release store of its length, so readers need no lock.
 */
#include "storage/slab.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "storage/storage.h"

/* Under AddressSanitizer free chunks and the unrequested tail of used ones
 * are poisoned, so a use after item_put() or an overrun is reported even
 * though chunks live inside one big mapping. The header zone stays readable
 * for the eviction sweep. No-ops otherwise. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define DIR_PAGES 1024u          /* page numbers per directory block */
#define FREE_LINK_OFF 8          /* where a free chunk keeps its next ref */

struct slab_class {
    pthread_mutex_t lock;
    uint32_t size;          /* chunk size, a multiple of the alignment */
    uint32_t perpage;
    uint32_t free_list;     /* ref of the first free chunk, 0 none */
    char *end;              /* next uncarved chunk of the newest page */
    uint32_t end_left;      /* chunks still uncarved there */
    uint32_t npages;        /* published with release, read with acquire */
    uint32_t **dir;         /* page numbers, in blocks of DIR_PAGES */
    uint64_t free_chunks;   /* chunks on free_list */
    uint64_t requested;     /* bytes asked for by chunks in use */
    char *moving;           /* page being moved out, or NULL */
    uint32_t moving_pi;     /* its ordinal in dir */
    uint32_t moving_used;   /* its chunks still in use */
    uint32_t moving_free;   /* its free chunks, linked, for a cancel */
    uint32_t moving_nfree;
} __attribute__((aligned(64)));

/* Module state, written only by slab_setup()/slab_teardown() (and the
 * counters below under their locks). */
struct slab_region slab_region;
static struct slab_class classes[STORAGE_CLASS_MAX + 1];
static unsigned nclasses;
static unsigned nshown_classes;                     /* reported classes */
static uint8_t shown_last[STORAGE_CLASS_MAX + 1];   /* a reported class's largest class */
static char *region;
static size_t reserve_pages;    /* address space reserved; region_pages of it usable */
static size_t ndir;
static bool region_shared;      /* a file mapping (-e) */

static pthread_mutex_t page_lock = PTHREAD_MUTEX_INITIALIZER;
/* Guarded by page_lock (read without it only where a stale value is harmless). */
static size_t region_pages;     /* usable pages: the limit's, plus one per class */
static size_t limit;            /* -m, or the last cache_memlimit */
static size_t pages_taken;      /* pages ever handed out: the next fresh one */
static size_t pages_held;       /* of those, held by a class (not in the pool) */
static uint32_t *pool;          /* page numbers given back, a stack of npool */
static size_t npool;
static uint32_t *park;          /* pages parked at the limit, still held */
static size_t npark;
static size_t prealloc_pages;   /* touched at set-up (-L) */

static uint32_t *free_link(void *chunk);

static size_t align_up(size_t n)
{
    size_t a = (size_t)1 << slab_region.shift;

    return (n + a - 1) & ~(a - 1);
}

/* The next class size after `size` growing by g (at least one alignment
 * step). */
static size_t grow(size_t size, double g)
{
    size_t next = align_up((size_t)((double)size * g));

    return next > size ? next : size + align_up(1);
}

/* Classes from `size` up to and with the largest, growing by
 * SLAB_KNEE_FACTOR. */
static unsigned classes_to_max(size_t size)
{
    unsigned n = 1;

    for (; (double)size <= SLAB_CHUNK_MAX / SLAB_KNEE_FACTOR; size = grow(size, SLAB_KNEE_FACTOR))
        n++;
    return n;
}

/*
 * Build the size table; fails only when the first class is too big.
 *
 * First the classes kioku reports, memcached's: sizes grow by `factor`; but
 * a factor below SLAB_KNEE_FACTOR would run out of class ids long before the
 * largest chunk (-f 1.10 from 88 bytes needs 97 classes), so from the class
 * where the ids left could only reach it growing by SLAB_KNEE_FACTOR, they
 * do: fine steps for small values, where most items are, and memcached's
 * 1.25 above (about 8 KiB at -f 1.10).
 *
 * Then the classes items live in: the ids the reported classes leave unused
 * split the smallest reported classes in two, at the middle of their range
 * (at -f 1.25, the classes up to about 20 KiB). A chunk then wastes 5-6 %
 * of its bytes on a spread of sizes instead of 11 %, while class ids, their
 * sizes and `slabs reassign` stay those memcached users know. But every
 * class in use holds a page, so a split needs a page of the limit for each
 * class: below 40 MiB (at -f 1.25) there is none, as in memcached.
 */
static int build_classes(size_t first_size, double factor, size_t limit_pages,
                         char *errbuf, size_t errlen)
{
    uint32_t shown[STORAGE_CLASS_MAX + 1];
    size_t size = align_up(first_size);
    unsigned i = 1, nshown, spare;

    if (size > SLAB_CHUNK_MAX) {
        snprintf(errbuf, errlen, "smallest chunk (%zu bytes) exceeds the largest (%d)",
                 size, SLAB_CHUNK_MAX);
        return -1;
    }
    while (i < STORAGE_CLASS_MAX) {
        double g = factor;

        if (g < SLAB_KNEE_FACTOR && i + classes_to_max(grow(size, g)) > STORAGE_CLASS_MAX)
            g = SLAB_KNEE_FACTOR;
        /* Keep at least one step between the last grown class and max. */
        if ((double)size > SLAB_CHUNK_MAX / g)
            break;
        shown[i++] = (uint32_t)size;
        size = grow(size, g);
    }
    shown[i] = SLAB_CHUNK_MAX;
    nshown = i;
    spare = STORAGE_CLASS_MAX - nshown;
    if (limit_pages < STORAGE_CLASS_MAX)
        spare = limit_pages > nshown ? (unsigned)(limit_pages - nshown) : 0;
    nclasses = 0;
    for (i = 1; i <= nshown; i++) {
        if (i > 1 && spare > 0) {
            size_t mid = align_up(((size_t)shown[i - 1] + shown[i]) / 2);

            if (mid > shown[i - 1] && mid < shown[i]) {
                classes[++nclasses].size = (uint32_t)mid;
                slab_region.shown[nclasses] = (uint8_t)i;
                spare--;
            }
        }
        classes[++nclasses].size = shown[i];
        slab_region.shown[nclasses] = (uint8_t)i;
        shown_last[i] = (uint8_t)nclasses;
    }
    nshown_classes = nshown;
    for (i = 1; i <= nclasses; i++)
        classes[i].perpage = (uint32_t)(STORAGE_PAGE_SIZE / classes[i].size);
    return 0;
}

/* The smallest alignment whose 32-bit references cover the region. */
static unsigned shift_for(size_t bytes)
{
    unsigned s = 3;

    while (s < 20 && (bytes >> s) + 2 > UINT32_MAX)
        s++;
    return s;
}

/* Usable pages for a limit: one more per class for its first page. */
static size_t pages_for(size_t mem_limit)
{
    return mem_limit / STORAGE_PAGE_SIZE + STORAGE_CLASS_MAX + 1;
}

/* Where transparent huge pages are, they come in aligned 2 MiB units. */
#define HUGE_ALIGN ((size_t)2 << 20)

/* mmap bytes at a HUGE_ALIGN boundary, so that a region asked for in
 * large pages (-L) is one from its first byte. */
static char *map_aligned(size_t bytes, int prot, int flags)
{
    char *p = mmap(NULL, bytes + HUGE_ALIGN, prot, flags, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    size_t head = (HUGE_ALIGN - (uintptr_t)p % HUGE_ALIGN) % HUGE_ALIGN;
    if (head > 0)
        munmap(p, head);
    munmap(p + head + bytes, HUGE_ALIGN - head);   /* head < HUGE_ALIGN: never empty */
    return p + head;
}

/*
 * An anonymous region: reserve address space for as many pages as 32-bit
 * references can name at this alignment (the limit may grow into it),
 * and make the first `usable` pages readable and writable. Where the
 * reservation is refused (a tight ulimit -v), only the usable part is
 * mapped and the limit cannot grow. NULL on failure.
 */
static char *map_anonymous(size_t usable)
{
    size_t cover = ((((size_t)UINT32_MAX - 2) << slab_region.shift) / STORAGE_PAGE_SIZE);
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
    char *p;

    if (cover > usable) {
        p = map_aligned(cover * STORAGE_PAGE_SIZE, PROT_NONE, flags);
        if (p != NULL) {
            if (mprotect(p, usable * STORAGE_PAGE_SIZE, PROT_READ | PROT_WRITE) == 0) {
                reserve_pages = cover;
                return p;
            }
            munmap(p, cover * STORAGE_PAGE_SIZE);
        }
    }
    p = map_aligned(usable * STORAGE_PAGE_SIZE, PROT_READ | PROT_WRITE, flags);
    if (p == NULL)
        return NULL;
    reserve_pages = usable;
    return p;
}

/* Reserve (or map from a file) the region and build the class table. */
static int setup_common(size_t mem_limit, size_t first_size, double factor, int fd,
                        char *errbuf, size_t errlen)
{
    size_t bytes;
    unsigned i;

    memset(classes, 0, sizeof(classes));
    region_pages = pages_for(mem_limit);
    bytes = region_pages * STORAGE_PAGE_SIZE;
    slab_region.shift = shift_for(bytes);
    if (build_classes(first_size, factor, mem_limit / STORAGE_PAGE_SIZE, errbuf, errlen) != 0)
        return -1;
    if (fd >= 0) {
        if (ftruncate(fd, (off_t)bytes) != 0) {
            snprintf(errbuf, errlen, "cannot size the memory file to %zu bytes: %s", bytes,
                     strerror(errno));
            return -1;
        }
        region = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        reserve_pages = region_pages;
    } else {
        region = map_anonymous(region_pages);
        if (region == NULL)
            region = MAP_FAILED;
    }
    if (region == MAP_FAILED) {
        region = NULL;
        snprintf(errbuf, errlen, "cannot map %zu bytes of item memory: %s", bytes, strerror(errno));
        return -1;
    }
    region_shared = fd >= 0;
    slab_region.ref_base = region - ((size_t)1 << slab_region.shift);
    ndir = (reserve_pages + DIR_PAGES - 1) / DIR_PAGES;
    pool = calloc(reserve_pages, sizeof(*pool));
    park = calloc(reserve_pages, sizeof(*park));
    if (pool == NULL || park == NULL) {
        snprintf(errbuf, errlen, "out of memory for the slab page pool");
        slab_teardown();
        return -1;
    }
    for (i = 1; i <= nclasses; i++) {
        pthread_mutex_init(&classes[i].lock, NULL);
        classes[i].dir = calloc(ndir, sizeof(*classes[i].dir));
        if (classes[i].dir == NULL) {
            snprintf(errbuf, errlen, "out of memory for the slab page tables");
            slab_teardown();
            return -1;
        }
    }
    limit = mem_limit;
    pages_taken = pages_held = npool = npark = 0;
    prealloc_pages = 0;
    return 0;
}

int slab_setup(size_t mem_limit, size_t first_size, double factor, bool prealloc,
               char *errbuf, size_t errlen)
{
    if (setup_common(mem_limit, first_size, factor, -1, errbuf, errlen) != 0)
        return -1;
    if (prealloc && mem_limit >= STORAGE_PAGE_SIZE) {
        /* Touch every page within the limit now, so it is resident, in
         * huge pages where the kernel has them (as memcached's -L): a
         * lookup then rarely misses the TLB as well as the cache. Where
         * it does not, the pages are ordinary ones. */
        prealloc_pages = mem_limit / STORAGE_PAGE_SIZE;
        (void)madvise(region, prealloc_pages * STORAGE_PAGE_SIZE, MADV_HUGEPAGE);
        memset(region, 0, prealloc_pages * STORAGE_PAGE_SIZE);
    }
    return 0;
}

int slab_setup_file(size_t mem_limit, size_t first_size, double factor, const char *path,
                    bool keep, char *errbuf, size_t errlen)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600), rc;

    if (fd < 0) {
        snprintf(errbuf, errlen, "cannot open the memory file %s: %s", path, strerror(errno));
        return -1;
    }
    /* Starting empty: truncating first makes every page read as zeros. */
    if (!keep && ftruncate(fd, 0) != 0) {
        snprintf(errbuf, errlen, "cannot clear the memory file %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    rc = setup_common(mem_limit, first_size, factor, fd, errbuf, errlen);
    close(fd);      /* the mapping keeps the file */
    return rc;
}

int slab_sync(void)
{
    if (region == NULL || !region_shared)
        return 0;
    return msync(region, region_pages * STORAGE_PAGE_SIZE, MS_SYNC);
}

void slab_layout_get(struct slab_layout *out)
{
    memset(out, 0, sizeof(*out));
    out->region_bytes = (uint64_t)region_pages * STORAGE_PAGE_SIZE;
    out->shift = slab_region.shift;
    out->nclasses = nclasses;
    pthread_mutex_lock(&page_lock);
    out->pages_taken = pages_taken;
    pthread_mutex_unlock(&page_lock);
    for (unsigned i = 1; i <= nclasses; i++) {
        struct slab_class *c = &classes[i];

        out->chunk_size[i] = c->size;
        pthread_mutex_lock(&c->lock);
        out->npages[i] = c->npages;
        /* The carving page is the newest: chunks past `end` were never cut. */
        out->end_left[i] = c->end_left;
        pthread_mutex_unlock(&c->lock);
    }
}

void slab_pages_get(unsigned id, uint32_t *out)
{
    struct slab_class *c = &classes[id];

    pthread_mutex_lock(&c->lock);
    for (uint32_t i = 0; i < c->npages; i++)
        out[i] = c->dir[i / DIR_PAGES][i % DIR_PAGES];
    pthread_mutex_unlock(&c->lock);
}

int slab_restore_pages(const struct slab_layout *l, uint32_t *const *pages)
{
    for (unsigned i = 1; i <= nclasses; i++) {
        struct slab_class *c = &classes[i];

        for (uint32_t k = 0; k < l->npages[i]; k++) {
            uint32_t no = pages[i][k];

            if (no >= l->pages_taken || no >= reserve_pages)
                return -1;
            if (c->dir[k / DIR_PAGES] == NULL &&
                (c->dir[k / DIR_PAGES] = calloc(DIR_PAGES, sizeof(uint32_t))) == NULL)
                return -1;
            c->dir[k / DIR_PAGES][k % DIR_PAGES] = no;
        }
        c->npages = l->npages[i];
        c->end_left = l->npages[i] > 0 ? l->end_left[i] : 0;
        if (c->end_left > c->perpage)
            return -1;
        if (c->npages > 0) {
            uint32_t last = pages[i][c->npages - 1];

            c->end = region + (size_t)last * STORAGE_PAGE_SIZE +
                     (size_t)(c->perpage - c->end_left) * c->size;
        }
        c->free_list = 0;
        c->free_chunks = 0;
        c->requested = 0;
    }
    pages_taken = pages_held = l->pages_taken;
    return 0;
}

bool slab_ref_valid(uint32_t ref)
{
    size_t off;

    if (ref == 0)
        return false;
    off = ((size_t)ref << slab_region.shift) - ((size_t)1 << slab_region.shift);
    return off < pages_taken * STORAGE_PAGE_SIZE;
}

void slab_restore_chunk(unsigned id, void *chunk, bool used, size_t requested)
{
    struct slab_class *c = &classes[id];

    if (used) {
        c->requested += requested;
        return;
    }
    *free_link(chunk) = c->free_list;
    c->free_list = slab_ref(chunk);
    c->free_chunks++;
}

void slab_teardown(void)
{
    unsigned c;

    for (c = 1; c <= nclasses; c++) {
        if (classes[c].dir != NULL) {
            for (size_t d = 0; d < ndir; d++)
                free(classes[c].dir[d]);
            free(classes[c].dir);
        }
        pthread_mutex_destroy(&classes[c].lock);
    }
    if (region != NULL) {
        UNPOISON(region, region_pages * STORAGE_PAGE_SIZE);
        munmap(region, reserve_pages * STORAGE_PAGE_SIZE);
    }
    free(pool);
    pool = NULL;
    free(park);
    park = NULL;
    npark = 0;
    region_shared = false;
    region = NULL;
    region_pages = reserve_pages = ndir = pages_taken = pages_held = npool = prealloc_pages = 0;
    nclasses = nshown_classes = 0;
    memset(shown_last, 0, sizeof(shown_last));
    memset(&slab_region, 0, sizeof(slab_region));
}

unsigned slab_class_count(void)
{
    return nclasses;
}

unsigned slab_largest(void)
{
    return nclasses;
}

/* Classes are few (<= 63) and sorted: a linear scan is a handful of
 * compares and touches only read-only data. */
/* Binary search: with a fine -f there are 63 classes. */
unsigned slab_clsid(size_t size)
{
    unsigned lo = 1, hi = nclasses;

    if (nclasses == 0 || size > classes[nclasses].size)
        return 0;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;

        if (size <= classes[mid].size)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

unsigned slab_shown_count(void)
{
    return nshown_classes;
}

bool slab_shown_range(unsigned shown, unsigned *first, unsigned *last)
{
    if (shown < 1 || shown > nshown_classes)
        return false;
    *first = shown == 1 ? 1 : shown_last[shown - 1] + 1u;
    *last = shown_last[shown];
    return true;
}

uint32_t slab_chunk_size(unsigned id)
{
    return id >= 1 && id <= nclasses ? classes[id].size : 0;
}

uint32_t slab_chunks_per_page(unsigned id)
{
    return id >= 1 && id <= nclasses ? classes[id].perpage : 0;
}

uint32_t slab_class_pages(unsigned id)
{
    return __atomic_load_n(&classes[id].npages, __ATOMIC_ACQUIRE);
}

char *slab_class_page(unsigned id, uint32_t i)
{
    /* Atomic: the eviction tail look reads without the class's lock while
     * a page move puts the class's last page in place of the moved one. A
     * stale number is still a page of the region, and the look checks
     * what it finds there. */
    uint32_t no = __atomic_load_n(&classes[id].dir[i / DIR_PAGES][i % DIR_PAGES], __ATOMIC_RELAXED);

    return region + (size_t)no * STORAGE_PAGE_SIZE;
}

/* Give class c a fresh page. Caller holds c->lock; takes page_lock. */
static bool grab_page(struct slab_class *c)
{
    size_t no = SIZE_MAX;
    uint32_t n = c->npages;

    if (c->dir[n / DIR_PAGES] == NULL) {
        c->dir[n / DIR_PAGES] = calloc(DIR_PAGES, sizeof(uint32_t));
        if (c->dir[n / DIR_PAGES] == NULL)
            return false;
    }
    pthread_mutex_lock(&page_lock);
    if (npark > 0) {
        no = park[--npark];     /* held already, within the limit */
    } else if (pages_taken < prealloc_pages || (pages_held + 1) * STORAGE_PAGE_SIZE <= limit ||
               n == 0) {
        /* A page given back first: its memory went to the system, so it is
         * as fresh as a new one and keeps the region's used part small. */
        if (npool > 0)
            no = pool[--npool];
        else if (pages_taken < region_pages)
            no = pages_taken++;
        if (no != SIZE_MAX)
            pages_held++;
    }
    pthread_mutex_unlock(&page_lock);
    if (no == SIZE_MAX)
        return false;
    c->end = region + no * STORAGE_PAGE_SIZE;
    c->end_left = c->perpage;
    __atomic_store_n(&c->dir[n / DIR_PAGES][n % DIR_PAGES], (uint32_t)no, __ATOMIC_RELAXED);
    __atomic_store_n(&c->npages, n + 1, __ATOMIC_RELEASE);
    return true;
}

static uint32_t *free_link(void *chunk)
{
    return (uint32_t *)(void *)((char *)chunk + FREE_LINK_OFF);
}

static void *alloc_in(unsigned id, size_t requested, bool new_page)
{
    struct slab_class *c = &classes[id];
    void *p = NULL;

    pthread_mutex_lock(&c->lock);
    if (c->free_list != 0) {
        p = slab_ptr(c->free_list);
        c->free_list = *free_link(p);
        c->free_chunks--;
    } else if (c->end_left > 0 || (new_page && grab_page(c))) {
        p = c->end;
        c->end += c->size;
        c->end_left--;
    }
    if (p != NULL) {
        c->requested += requested;
        UNPOISON(p, requested);
        if (requested > SLAB_HEADER_ZONE)
            POISON((char *)p + requested, c->size - requested);
    }
    pthread_mutex_unlock(&c->lock);
    return p;
}

void *slab_alloc(unsigned id, size_t requested)
{
    return alloc_in(id, requested, true);
}

void *slab_alloc_free(unsigned id, size_t requested)
{
    return alloc_in(id, requested, false);
}

static bool in_page(const char *page, const void *p)
{
    return page != NULL && (const char *)p >= page && (const char *)p < page + STORAGE_PAGE_SIZE;
}

void slab_free(void *chunk, unsigned id, size_t requested)
{
    struct slab_class *c = &classes[id];

    pthread_mutex_lock(&c->lock);
    if (in_page(c->moving, chunk)) {
        /* Its page is leaving the class: not handed out again, but kept
         * on the page's own list in case the move is cancelled. */
        c->moving_used--;
        c->requested -= requested;
        *free_link(chunk) = c->moving_free;
        c->moving_free = slab_ref(chunk);
        c->moving_nfree++;
        POISON((char *)chunk + SLAB_HEADER_ZONE, c->size - SLAB_HEADER_ZONE);
        pthread_mutex_unlock(&c->lock);
        return;
    }
    *free_link(chunk) = c->free_list;
    POISON((char *)chunk + SLAB_HEADER_ZONE, c->size - SLAB_HEADER_ZONE);
    c->free_list = slab_ref(chunk);
    c->free_chunks++;
    c->requested -= requested;
    pthread_mutex_unlock(&c->lock);
}

void slab_requested_adjust(void *chunk, unsigned id, size_t old_requested,
                           size_t new_requested)
{
    struct slab_class *c = &classes[id];

    pthread_mutex_lock(&c->lock);
    c->requested = c->requested - old_requested + new_requested;
    pthread_mutex_unlock(&c->lock);
    UNPOISON(chunk, new_requested);
    if (new_requested > SLAB_HEADER_ZONE)
        POISON((char *)chunk + new_requested, c->size - new_requested);
}

void slab_move_begin(unsigned id, uint32_t pi)
{
    struct slab_class *c = &classes[id];
    char *page = slab_class_page(id, pi);
    uint32_t on_list = 0;

    pthread_mutex_lock(&c->lock);
    c->moving_free = 0;
    c->moving_nfree = 0;
    if (in_page(page, c->end)) {
        /* Carve the rest now, onto the page's own list: a cancel then
         * finds every free chunk of the page there. */
        for (; c->end_left > 0; c->end_left--, c->end += c->size) {
            *free_link(c->end) = c->moving_free;
            c->moving_free = slab_ref(c->end);
            c->moving_nfree++;
            POISON(c->end + SLAB_HEADER_ZONE, c->size - SLAB_HEADER_ZONE);
        }
    }
    /* Move its chunks from the free list to the page's own. */
    for (uint32_t *pp = &c->free_list; *pp != 0;) {
        char *ch = slab_ptr(*pp);

        if (in_page(page, ch)) {
            *pp = *free_link(ch);
            *free_link(ch) = c->moving_free;
            c->moving_free = slab_ref(ch);
            c->moving_nfree++;
            on_list++;
        } else {
            pp = free_link(ch);
        }
    }
    c->free_chunks -= on_list;
    c->moving = page;
    c->moving_pi = pi;
    c->moving_used = c->perpage - c->moving_nfree;
    pthread_mutex_unlock(&c->lock);
}

char *slab_moving_page(unsigned id)
{
    return classes[id].moving;
}

uint32_t slab_move_in_use(unsigned id)
{
    struct slab_class *c = &classes[id];
    uint32_t n;

    pthread_mutex_lock(&c->lock);
    n = c->moving_used;
    pthread_mutex_unlock(&c->lock);
    return n;
}

/* A page that left its class goes back to the pool and its memory to the
 * system: it reads as zeros from now on, as an untouched page does (a
 * sweep that follows a stale link into it reads zeros too). */
static void zero_page(char *page)
{
    for (uint64_t *w = (uint64_t *)(void *)page; (char *)w < page + STORAGE_PAGE_SIZE; w++)
        __atomic_store_n(w, 0, __ATOMIC_RELAXED);
}

static void release_page(char *page)
{
    uint32_t no = (uint32_t)((size_t)(page - region) / STORAGE_PAGE_SIZE);
    bool keep;

    UNPOISON(page, STORAGE_PAGE_SIZE);
    pthread_mutex_lock(&page_lock);
    keep = pages_held * STORAGE_PAGE_SIZE <= limit;
    pthread_mutex_unlock(&page_lock);
    if (keep) {
        /* Parked: within the limit, so it stays ours for the next class. */
        zero_page(page);
        pthread_mutex_lock(&page_lock);
        park[npark++] = no;
        pthread_mutex_unlock(&page_lock);
        return;
    }
    if (region_shared || madvise(page, STORAGE_PAGE_SIZE, MADV_DONTNEED) != 0) {
        for (uint64_t *w = (uint64_t *)(void *)page;
             (char *)w < page + STORAGE_PAGE_SIZE; w++)
            __atomic_store_n(w, 0, __ATOMIC_RELAXED);
    }
    pthread_mutex_lock(&page_lock);
    pool[npool++] = no;
    pages_held--;
    pthread_mutex_unlock(&page_lock);
}

static void give_page(struct slab_class *d, char *page);

void slab_move_end(unsigned id, unsigned dst)
{
    struct slab_class *c = &classes[id], *d = &classes[dst];
    char *page = c->moving;
    uint32_t last;

    pthread_mutex_lock(&c->lock);
    last = c->npages - 1;
    __atomic_store_n(&c->dir[c->moving_pi / DIR_PAGES][c->moving_pi % DIR_PAGES],
                     c->dir[last / DIR_PAGES][last % DIR_PAGES], __ATOMIC_RELAXED);
    __atomic_store_n(&c->npages, last, __ATOMIC_RELEASE);
    c->moving = NULL;
    c->moving_free = 0;
    c->moving_nfree = 0;
    pthread_mutex_unlock(&c->lock);
    if (dst == 0) {
        release_page(page);
        return;
    }

    /* Zeroed, every chunk header reads as "not an item" in its new class.
     * Word by word with atomic stores: a sweep elsewhere may still follow a
     * stale value-chunk link into this page and read a header atomically. */
    UNPOISON(page, STORAGE_PAGE_SIZE);
    zero_page(page);
    give_page(d, page);
}

/* List every chunk of a zeroed page as free in class d, as its last page;
 * the carving page stays as it is. */
static void give_page(struct slab_class *d, char *page)
{
    uint32_t no = (uint32_t)((size_t)(page - region) / STORAGE_PAGE_SIZE), n;

    pthread_mutex_lock(&d->lock);
    n = d->npages;
    if (d->dir[n / DIR_PAGES] == NULL)
        d->dir[n / DIR_PAGES] = calloc(DIR_PAGES, sizeof(uint32_t));
    if (d->dir[n / DIR_PAGES] != NULL) {
        __atomic_store_n(&d->dir[n / DIR_PAGES][n % DIR_PAGES], no, __ATOMIC_RELAXED);
        __atomic_store_n(&d->npages, n + 1, __ATOMIC_RELEASE);
        for (uint32_t i = d->perpage; i > 0; i--) {
            char *ch = page + (size_t)(i - 1) * d->size;

            *free_link(ch) = d->free_list;
            d->free_list = slab_ref(ch);
        }
        d->free_chunks += d->perpage;
        for (uint32_t i = 0; i < d->perpage; i++)
            POISON(page + (size_t)i * d->size + SLAB_HEADER_ZONE, d->size - SLAB_HEADER_ZONE);
    }
    pthread_mutex_unlock(&d->lock);
}

void slab_move_cancel(unsigned id)
{
    struct slab_class *c = &classes[id];

    pthread_mutex_lock(&c->lock);
    while (c->moving_free != 0) {
        char *ch = slab_ptr(c->moving_free);

        c->moving_free = *free_link(ch);
        *free_link(ch) = c->free_list;
        c->free_list = slab_ref(ch);
    }
    c->free_chunks += c->moving_nfree;
    c->moving_nfree = 0;
    c->moving_used = 0;
    c->moving = NULL;
    pthread_mutex_unlock(&c->lock);
}

void slab_class_stats(unsigned id, struct storage_class_stats *out)
{
    struct slab_class *c = &classes[id];

    pthread_mutex_lock(&c->lock);
    out->chunk_size = c->size;
    out->chunks_per_page = c->perpage;
    out->total_pages = c->npages;
    out->total_chunks = (uint64_t)c->npages * c->perpage;
    out->free_chunks = c->free_chunks;
    out->free_chunks_end = c->end_left;
    out->used_chunks = out->total_chunks - c->free_chunks - c->end_left;
    out->mem_requested = c->requested;
    pthread_mutex_unlock(&c->lock);
}

uint64_t slab_total_malloced(void)
{
    uint64_t n;

    pthread_mutex_lock(&page_lock);
    n = (pages_held > prealloc_pages ? pages_held : prealloc_pages) * STORAGE_PAGE_SIZE;
    pthread_mutex_unlock(&page_lock);
    return n;
}

uint64_t slab_free_pages(void)
{
    uint64_t n;

    pthread_mutex_lock(&page_lock);
    n = (pages_taken < prealloc_pages ? prealloc_pages - pages_taken : 0) + npool + npark;
    pthread_mutex_unlock(&page_lock);
    return n;
}

int slab_set_limit(size_t bytes)
{
    size_t need = pages_for(bytes);
    int rc = 0;

    if (region == NULL || region_shared || prealloc_pages > 0)
        return -1;
    pthread_mutex_lock(&page_lock);
    if (need > reserve_pages) {
        rc = -1;
    } else if (need > region_pages) {
        if (mprotect(region + region_pages * STORAGE_PAGE_SIZE,
                     (need - region_pages) * STORAGE_PAGE_SIZE, PROT_READ | PROT_WRITE) != 0)
            rc = -1;
        else
            region_pages = need;
    }
    if (rc == 0)
        limit = bytes;
    /* Parked pages are the first to go back to the system. */
    while (rc == 0 && npark > 0 && pages_held * STORAGE_PAGE_SIZE > limit) {
        char *page = region + (size_t)park[--npark] * STORAGE_PAGE_SIZE;

        if (madvise(page, STORAGE_PAGE_SIZE, MADV_DONTNEED) != 0)
            zero_page(page);
        pool[npool++] = (uint32_t)((size_t)(page - region) / STORAGE_PAGE_SIZE);
        pages_held--;
    }
    pthread_mutex_unlock(&page_lock);
    return rc;
}

size_t slab_limit(void)
{
    size_t n;

    pthread_mutex_lock(&page_lock);
    n = limit;
    pthread_mutex_unlock(&page_lock);
    return n;
}

uint32_t slab_parked_pages(void)
{
    uint32_t n;

    pthread_mutex_lock(&page_lock);
    n = (uint32_t)npark;
    pthread_mutex_unlock(&page_lock);
    return n;
}

bool slab_unpark(unsigned dst)
{
    size_t no = SIZE_MAX;

    pthread_mutex_lock(&page_lock);
    if (npark > 0)
        no = park[--npark];
    pthread_mutex_unlock(&page_lock);
    if (no == SIZE_MAX)
        return false;
    give_page(&classes[dst], region + no * STORAGE_PAGE_SIZE);
    return true;
}

bool slab_at_limit(void)
{
    bool at;

    if (prealloc_pages > 0)
        return false;
    pthread_mutex_lock(&page_lock);
    at = npool == 0 && (pages_held + 1) * STORAGE_PAGE_SIZE > limit;
    pthread_mutex_unlock(&page_lock);
    return at;
}

bool slab_over_limit(void)
{
    unsigned with_pages = 0;
    bool over;

    if (prealloc_pages > 0 || region_shared)
        return false;
    for (unsigned i = 1; i <= nclasses; i++)
        with_pages += slab_class_pages(i) > 0;
    pthread_mutex_lock(&page_lock);
    over = pages_held > limit / STORAGE_PAGE_SIZE + with_pages;
    pthread_mutex_unlock(&page_lock);
    return over;
}
