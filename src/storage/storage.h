/*
 * Storage: the module's set-up and its statistics.
 *
 * Storage is slab (memory classes and pages), item (layout, refcount, CAS and
 * the store operations), assoc (the hash table) and evict (eviction policies
 * and the crawler). It knows nothing of protocols or connections: callers pass keys,
 * values and the current kioku time (util/clock.h) and get results back.
 *
 * Every statistic here is kept under a lock storage already takes for the
 * operation (a hash stripe, a class's eviction lock, the slab lock), so no request
 * touches a shared counter; storage_stats() sums them on read.
 */
#ifndef KIOKU_STORAGE_H
#define KIOKU_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORAGE_KEY_MAX 250          /* memcached's KEY_MAX_LENGTH */
#define STORAGE_PAGE_SIZE (1024 * 1024)
#define STORAGE_CLASS_MAX 63         /* class ids 1..63; 0 means "none" */

struct storage_config {
    size_t mem_limit;        /* -m, bytes */
    size_t item_size_max;    /* -I, bytes: the largest value accepted */
    size_t chunk_size_min;   /* -n: smallest chunk's value+key space */
    double growth_factor;    /* -f */
    bool evict;              /* false with -M */
    bool use_cas;            /* false with -C */
    unsigned hashpower;      /* initial table size is 2^hashpower buckets */
    bool prealloc;           /* -L: take all of mem_limit at set-up */
    unsigned policy;         /* enum evict_policy (evict.h); -M means noeviction */
    unsigned lfu_log_factor; /* Redis's lfu-log-factor */
    unsigned lfu_decay_time; /* Redis's lfu-decay-time, minutes */
    unsigned samples;        /* Redis's maxmemory-samples */
    bool crawler;            /* reclaim expired items in the background */
    bool slab_reassign;      /* -o slab_reassign: pages may move between classes */
    unsigned slab_automove;  /* -o slab_automove=0|1|2 */
    char memory_file[256];   /* -e: item memory in this file, kept across restarts */
};

/* Defaults matching memcached's (64 MiB, 1 MiB, 48, 1.25, evict, cas, 16). */
void storage_config_default(struct storage_config *cfg);

/*
 * Set up slab classes, the hash table and its maintenance thread.
 * Returns 0, or -1 with a message in errbuf (e.g. -I larger than -m allows).
 */
int storage_setup(const struct storage_config *cfg, char *errbuf, size_t errlen);
/* Stop the maintenance thread and free all memory. No request may run. */
void storage_teardown(void);
/*
 * Warm restart (-e): after the last request, write the metadata that lets
 * the next start with the same settings find every item again. Stops the
 * background threads first. 0 (also without -e), or -1 with a message.
 */
int storage_save(char *errbuf, size_t errlen);
/* What a -e start found ("restored N items" or why it started empty); "" without -e. */
const char *storage_warm_status(void);

/* Global counters, summed across stripes/classes at call time. */
struct storage_stats {
    uint64_t curr_items;
    uint64_t total_items;
    uint64_t bytes;             /* sum of item sizes (header+key+value) */
    uint64_t evictions;
    uint64_t evicted_unfetched;
    uint64_t evicted_active;
    uint64_t expired_unfetched;
    uint64_t reclaimed;         /* dead (expired/flushed) items whose memory was reused */
    uint64_t crawler_reclaimed; /* dead items the crawler freed */
    uint64_t crawler_items_checked; /* items the crawler examined */
    uint64_t lru_crawler_starts;    /* crawls of a class the crawler began */
    bool lru_crawler_running;       /* the crawler thread runs (it always crawls) */
    uint64_t lrutail_reflocked; /* eviction candidates skipped: a reader held them */
    uint64_t curr_flush_gen;    /* not a memcached stat; number of flush_all run */
    uint64_t limit_maxbytes;
    uint64_t total_malloced;    /* bytes of pages taken */
    uint64_t hash_power_level;
    uint64_t hash_bytes;
    bool hash_is_expanding;
    uint64_t slab_global_page_pool;
    uint64_t outofmemory;       /* allocations failed with -M or no victim */
    uint64_t slabs_moved;       /* pages moved between classes */
    bool slab_reassign_running;
    uint64_t slab_reassign_evictions_nomem; /* live items evicted to empty a page */
    uint64_t slab_reassign_busy_items;      /* items a reader held: the move waited */
    uint64_t slab_reassign_rescues;         /* live items moved to a free chunk */
    unsigned slab_automove;     /* current mode */
    bool slab_reassign;         /* moves enabled */
};
void storage_stats(struct storage_stats *out);
/*
 * Change the memory limit at run time (memcached's cache_memlimit, Redis's
 * CONFIG SET maxmemory). Higher: more pages may be taken at once. Lower:
 * no page is taken until fewer are held, and the slab mover gives pages
 * of classes with spare chunks back to the system (evicting what is left
 * in such a page). 0, or -1 (nothing changed) with -e or -L, or when the
 * address space reserved at start-up cannot hold the new limit.
 */
int storage_set_mem_limit(size_t bytes);
/* The limit in force: -m, or the last storage_set_mem_limit(). */
size_t storage_mem_limit(void);
/*
 * Keys for Redis's DBSIZE and INFO keyspace, in O(stripes): linked items not
 * invalidated by a flush (expired ones not yet reclaimed count, as in Redis),
 * and of those the ones with a TTL.
 */
void storage_key_counts(uint64_t *keys, uint64_t *expires);
/* `stats reset`: zero total_items and the eviction/reclaim counters (not
 * curr_items or bytes, which describe what is stored), as memcached does. */
void storage_stats_reset(void);

/* memcached's `slabs reassign <src> <dst>` (src -1: any class); the move
 * runs in the background. */
enum storage_reassign {
    STORAGE_REASSIGN_OK,
    STORAGE_REASSIGN_BUSY,      /* a move is under way */
    STORAGE_REASSIGN_BADCLASS,
    STORAGE_REASSIGN_NOSPARE,   /* the source has fewer than two pages */
    STORAGE_REASSIGN_SAME,
    STORAGE_REASSIGN_DISABLED,  /* started without slab_reassign */
};
enum storage_reassign storage_slabs_reassign(int src, int dst);
/* memcached's `slabs automove <0|1|2>`. */
void storage_slabs_automove(unsigned mode);

/* One slab class, for `stats slabs` and `stats items`. */
struct storage_class_stats {
    unsigned id;
    uint32_t chunk_size;
    uint32_t chunks_per_page;
    uint64_t total_pages;
    uint64_t total_chunks;
    uint64_t used_chunks;
    uint64_t free_chunks;
    uint64_t free_chunks_end;   /* chunks not yet carved from the newest page */
    /* items: */
    uint64_t number;            /* linked items whose header chunk is in this class */
    uint64_t number_small;      /* of those, in S3-FIFO's probation queue */
    uint64_t age_sec;           /* idle time of the oldest items at the eviction hand */
    uint64_t evicted;
    uint64_t evicted_nonzero;   /* evicted items that had an expiry set */
    uint64_t evicted_time;      /* seconds since last access of the last evicted */
    uint64_t evicted_unfetched;
    uint64_t evicted_active;
    uint64_t outofmemory;
    uint64_t tailrepairs;
    uint64_t reclaimed;
    uint64_t expired_unfetched;
    uint64_t crawler_reclaimed;
    uint64_t mem_requested;     /* bytes requested by items in this class */
};
/* Number of classes (ids 1..n). */
unsigned storage_class_count(void);
/* Fill stats of class id (1..storage_class_count()); now is kioku ms. The
 * ids are memcached's classes, each the sum of the one or two classes of
 * kioku's that make it up (slab.c, build_classes). */
void storage_class_stats(unsigned id, int64_t now, struct storage_class_stats *out);
/* The same for one of kioku's own classes (an item's clsid), for storage's
 * page mover and the unit tests. */
void storage_slab_class_stats(unsigned id, int64_t now, struct storage_class_stats *out);

/* One listed item of storage_class_dump(); exptime is kioku ms, 0 never. */
struct storage_dump_entry {
    const char *key;
    size_t nkey;
    uint32_t nbytes;
    int64_t exptime;
};
/* memcached's `stats cachedump`: class id's items in memory order, until
 * visit returns false. Each runs under its item's stripe lock, so visit must
 * be quick and must not call into storage. */
void storage_class_dump(unsigned id, bool (*visit)(void *arg, const struct storage_dump_entry *e),
                        void *arg);

/* ---- memcached's lru_crawler commands ---- */

/* Start (true) or stop the background crawler (lru_crawler enable|disable);
 * 0, or -1 when its thread cannot start. Serialised; may wait one crawler
 * tick for the thread to stop. */
int storage_crawler_set(bool on);
bool storage_crawler_on(void);
/*
 * `lru_crawler crawl`: examine class id's chunks now, on the calling thread,
 * up to `max` of them (0: the whole class, one pass), and free the expired
 * and flushed items found (counted as crawler_reclaimed). Works in bounded
 * steps, each holding the class's eviction lock and one stripe at a time;
 * the total is bounded by the class's size. Returns the items freed.
 */
uint64_t storage_crawl_class(unsigned id, uint64_t max, int64_t now);

/* One item as `lru_crawler metadump` lists it. */
struct storage_meta_entry {
    const char *key;
    size_t nkey;
    int64_t exptime;        /* kioku ms, 0 never */
    int64_t atime;          /* kioku ms of the last access (second precision) */
    uint64_t cas;
    bool fetched;
    unsigned clsid;
    uint64_t size;          /* header, key and value bytes */
    uint32_t flags;
};
/*
 * A resumable walk of the live items over the hash table (the SCAN cursor:
 * 0 starts, 0 returned ends; an item present for the whole walk is seen at
 * least once). One call visits the buckets of one stripe run, at most
 * about max_items items, calling visit for each live item of a class set
 * in `classes` (bit id) under its stripe lock: visit must be quick and must
 * not call into storage.
 */
uint64_t storage_meta_scan(uint64_t cursor, int64_t now, uint64_t classes, uint64_t max_items,
                           void (*visit)(void *arg, const struct storage_meta_entry *e),
                           void *arg);

#endif
