/*
 * Slab allocator: fixed-size chunks carved from 1 MiB pages.
 *
 * Every class keeps a free list (a chunk's first word links to the next free
 * one) and the uncarved rest of its newest page, so a page costs nothing until
 * its chunks are used. Pages come from a preallocated pool (-L) or malloc, up
 * to the memory limit. As in memcached, a class that has no page at all may
 * take its first one beyond the limit: otherwise a cache filled with small
 * items could never again store a large one, since pages are not rebalanced
 * between classes. So the limit can be exceeded by at most one page a class.
 *
 * Locking: each class's mutex guards its free list and counters; the page
 * mutex guards the pool and the page records, and is only taken under a class
 * mutex when that class needs a new page (rare). Nothing else is taken inside.
 */
#include "storage/slab.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/storage.h"

/* Under AddressSanitizer free chunks and the unrequested tail of used ones
 * are poisoned, so a use after item_put() or an overrun is reported even
 * though chunks live inside big malloc'd pages. No-ops otherwise. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

struct slab_class {
    pthread_mutex_t lock;
    uint32_t size;          /* chunk size, a multiple of 8 */
    uint32_t perpage;
    void *free_list;
    char *end;              /* next uncarved chunk of the newest page */
    uint32_t end_left;      /* chunks still uncarved there */
    uint64_t pages;
    uint64_t free_chunks;   /* chunks on free_list */
    uint64_t requested;     /* bytes asked for by chunks in use */
} __attribute__((aligned(64)));

/* Module state, written only by slab_setup()/slab_teardown(). */
static struct slab_class classes[STORAGE_CLASS_MAX + 1];
static unsigned nclasses;

static pthread_mutex_t page_lock = PTHREAD_MUTEX_INITIALIZER;
static size_t limit;            /* -m */
static size_t malloced;         /* bytes of pages taken, page_lock */
static char **pages;            /* every page given out, to free at teardown */
static size_t npages, pages_cap;
static char *pool;              /* prealloc region, or NULL */
static size_t pool_pages, pool_next;

static size_t align8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

/* Build the size table; fails only when the first class is too big. */
static int build_classes(size_t first_size, double factor, char *errbuf, size_t errlen)
{
    size_t size = align8(first_size);
    unsigned i = 1;

    if (size > SLAB_CHUNK_MAX) {
        snprintf(errbuf, errlen, "smallest chunk (%zu bytes) exceeds the largest (%d)",
                 size, SLAB_CHUNK_MAX);
        return -1;
    }
    /* Keep at least one factor step between the last grown class and max. */
    while (i < STORAGE_CLASS_MAX && (double)size <= SLAB_CHUNK_MAX / factor) {
        size_t next = align8((size_t)((double)size * factor));

        classes[i++].size = (uint32_t)size;
        size = next > size ? next : size + 8;
    }
    classes[i].size = SLAB_CHUNK_MAX;
    nclasses = i;
    for (i = 1; i <= nclasses; i++)
        classes[i].perpage = (uint32_t)(STORAGE_PAGE_SIZE / classes[i].size);
    return 0;
}

int slab_setup(size_t mem_limit, size_t first_size, double factor, bool prealloc,
               char *errbuf, size_t errlen)
{
    unsigned i;

    memset(classes, 0, sizeof(classes));
    if (build_classes(first_size, factor, errbuf, errlen) != 0)
        return -1;
    for (i = 1; i <= nclasses; i++)
        pthread_mutex_init(&classes[i].lock, NULL);

    limit = mem_limit;
    malloced = 0;
    npages = 0;
    pool = NULL;
    pool_pages = pool_next = 0;
    /* Pages within the limit, plus one first page beyond it per class. */
    pages_cap = mem_limit / STORAGE_PAGE_SIZE + STORAGE_CLASS_MAX + 1;
    pages = calloc(pages_cap, sizeof(*pages));
    if (pages == NULL) {
        snprintf(errbuf, errlen, "out of memory for the slab page table");
        return -1;
    }
    if (prealloc && mem_limit >= STORAGE_PAGE_SIZE) {
        pool_pages = mem_limit / STORAGE_PAGE_SIZE;
        pool = malloc(pool_pages * STORAGE_PAGE_SIZE);
        if (pool == NULL) {
            snprintf(errbuf, errlen, "cannot preallocate %zu bytes", mem_limit);
            free(pages);
            pages = NULL;
            return -1;
        }
        malloced = pool_pages * STORAGE_PAGE_SIZE;
    }
    return 0;
}

static bool from_pool(const char *page)
{
    return pool != NULL && page >= pool && page < pool + pool_pages * STORAGE_PAGE_SIZE;
}

void slab_teardown(void)
{
    size_t i;
    unsigned c;

    for (i = 0; i < npages; i++) {
        UNPOISON(pages[i], STORAGE_PAGE_SIZE);
        if (!from_pool(pages[i]))
            free(pages[i]);
    }
    free(pages);
    free(pool);
    pages = NULL;
    pool = NULL;
    npages = pages_cap = pool_pages = pool_next = 0;
    malloced = 0;
    for (c = 1; c <= nclasses; c++)
        pthread_mutex_destroy(&classes[c].lock);
    nclasses = 0;
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
unsigned slab_clsid(size_t size)
{
    unsigned i;

    if (size == 0)
        size = 1;
    for (i = 1; i <= nclasses; i++) {
        if (size <= classes[i].size)
            return i;
    }
    return 0;
}

uint32_t slab_chunk_size(unsigned id)
{
    return id >= 1 && id <= nclasses ? classes[id].size : 0;
}

/* Give class c a fresh page. Caller holds c->lock; takes page_lock. */
static bool grab_page(struct slab_class *c)
{
    char *page = NULL;

    pthread_mutex_lock(&page_lock);
    if (pool_next < pool_pages) {
        page = pool + pool_next++ * STORAGE_PAGE_SIZE;
    } else if ((malloced + STORAGE_PAGE_SIZE <= limit || c->pages == 0) && npages < pages_cap) {
        page = malloc(STORAGE_PAGE_SIZE);
        if (page != NULL)
            malloced += STORAGE_PAGE_SIZE;
    }
    if (page != NULL)
        pages[npages++] = page;
    pthread_mutex_unlock(&page_lock);
    if (page == NULL)
        return false;
    c->end = page;
    c->end_left = c->perpage;
    c->pages++;
    return true;
}

void *slab_alloc(unsigned id, size_t requested)
{
    struct slab_class *c = &classes[id];
    void *p = NULL;

    pthread_mutex_lock(&c->lock);
    if (c->free_list != NULL) {
        p = c->free_list;
        UNPOISON(p, sizeof(void *));
        c->free_list = *(void **)p;
        c->free_chunks--;
    } else if (c->end_left > 0 || grab_page(c)) {
        p = c->end;
        c->end += c->size;
        c->end_left--;
    }
    if (p != NULL) {
        c->requested += requested;
        UNPOISON(p, requested);
        POISON((char *)p + requested, c->size - requested);
    }
    pthread_mutex_unlock(&c->lock);
    return p;
}

void slab_free(void *chunk, unsigned id, size_t requested)
{
    struct slab_class *c = &classes[id];

    pthread_mutex_lock(&c->lock);
    UNPOISON(chunk, sizeof(void *));
    *(void **)chunk = c->free_list;
    POISON(chunk, c->size);
    UNPOISON(chunk, sizeof(void *));    /* the link, read only by slab_alloc */
    c->free_list = chunk;
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
    POISON((char *)chunk + new_requested, c->size - new_requested);
}

void slab_class_stats(unsigned id, struct storage_class_stats *out)
{
    struct slab_class *c = &classes[id];

    pthread_mutex_lock(&c->lock);
    out->chunk_size = c->size;
    out->chunks_per_page = c->perpage;
    out->total_pages = c->pages;
    out->total_chunks = c->pages * c->perpage;
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
    n = malloced;
    pthread_mutex_unlock(&page_lock);
    return n;
}

uint64_t slab_free_pages(void)
{
    uint64_t n;

    pthread_mutex_lock(&page_lock);
    n = pool_pages - pool_next;
    pthread_mutex_unlock(&page_lock);
    return n;
}
