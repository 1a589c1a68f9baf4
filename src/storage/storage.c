/*
 * Storage set-up, teardown and statistics.
 *
 * Wires the parts together in dependency order (item layout, slab, eviction
 * with its crawler, assoc with its maintenance thread) after validating the
 * configuration, and
 * sums the per-stripe and per-class counters when stats are asked for. The
 * sums take each stripe and class lock in turn, never two at once: stats are
 * rare, requests are not.
 */
#include "storage/storage.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "storage/assoc.h"
#include "storage/evict.h"
#include "storage/evict_int.h"
#include "storage/item.h"
#include "storage/rebalance.h"
#include "storage/restart.h"
#include "storage/slab.h"
#include "util/clock.h"

#define KIB ((size_t)1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)

/* Module state: the configuration accepted by storage_setup(). */
static size_t mem_limit;
static bool crawler_on;           /* crawler_lock */
static pthread_mutex_t crawler_lock = PTHREAD_MUTEX_INITIALIZER;
static char memory_file[256];
static char warm_status[512];     /* what a -e start found, for the log */

void storage_config_default(struct storage_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->mem_limit = 64 * MIB;
    cfg->item_size_max = 1 * MIB;
    cfg->chunk_size_min = 48;
    cfg->growth_factor = 1.25;
    cfg->evict = true;
    cfg->use_cas = true;
    cfg->hashpower = 16;
    cfg->prealloc = false;
    cfg->policy = EVICT_S3FIFO;
    cfg->lfu_log_factor = EVICT_LFU_LOG_FACTOR_DEFAULT;
    cfg->lfu_decay_time = EVICT_LFU_DECAY_TIME_DEFAULT;
    cfg->samples = EVICT_SAMPLES_DEFAULT;
    cfg->crawler = true;
    cfg->slab_reassign = true;
    cfg->slab_automove = 1;
}

static int validate(const struct storage_config *cfg, char *errbuf, size_t errlen)
{
    if (!(cfg->growth_factor > 1.0)) {
        snprintf(errbuf, errlen, "growth factor (-f) must be greater than 1.0, got %g",
                 cfg->growth_factor);
        return -1;
    }
    if (cfg->item_size_max < KIB) {
        snprintf(errbuf, errlen, "item size max (-I) must be at least 1 KiB, got %zu bytes",
                 cfg->item_size_max);
        return -1;
    }
    if (cfg->item_size_max > GIB) {
        snprintf(errbuf, errlen, "item size max (-I) must be at most 1 GiB, got %zu bytes",
                 cfg->item_size_max);
        return -1;
    }
    if (cfg->item_size_max > cfg->mem_limit / 2) {
        snprintf(errbuf, errlen,
                 "item size max (-I, %zu bytes) cannot exceed half the memory limit "
                 "(-m, %zu bytes): raise -m or lower -I",
                 cfg->item_size_max, cfg->mem_limit);
        return -1;
    }
    if (cfg->chunk_size_min == 0) {
        snprintf(errbuf, errlen, "chunk size (-n) must be at least 1 byte");
        return -1;
    }
    return 0;
}

/* The slab region: anonymous, or (-e) a file whose items a clean stop left
 * for us, if its metadata fits these settings. On success with restored
 * metadata in *m, *restored is set; otherwise the file starts empty and
 * warm_status says why. */
static int slab_region_setup(const struct storage_config *cfg, struct restart_meta *m,
                             bool *restored, char *errbuf, size_t errlen)
{
    size_t first = item_header_size() + cfg->chunk_size_min;
    struct slab_layout l;
    char why[256] = "";

    *restored = false;
    if (cfg->memory_file[0] == '\0')
        return slab_setup(cfg->mem_limit, first, cfg->growth_factor, cfg->prealloc, errbuf,
                          errlen);
    if (restart_meta_read(cfg->memory_file, m, why, sizeof(why)) == 0) {
        if (slab_setup_file(cfg->mem_limit, first, cfg->growth_factor, cfg->memory_file, true,
                            errbuf, errlen) != 0) {
            restart_meta_free(m);
            return -1;
        }
        slab_layout_get(&l);
        if (restart_meta_check(m, &l, cfg->mem_limit, (uint32_t)item_header_size(), why,
                               sizeof(why)) == 0 &&
            slab_restore_pages(&m->layout, m->pages) == 0) {
            *restored = true;
            return 0;
        }
        if (why[0] == '\0')
            snprintf(why, sizeof(why), "metadata names pages the memory file cannot hold");
        restart_meta_free(m);
        slab_teardown();
    }
    snprintf(warm_status, sizeof(warm_status), "warm restart: %s; starting empty", why);
    return slab_setup_file(cfg->mem_limit, first, cfg->growth_factor, cfg->memory_file, false,
                           errbuf, errlen);
}

int storage_setup(const struct storage_config *cfg, char *errbuf, size_t errlen)
{
    struct restart_meta m;
    bool restored = false;

    warm_status[0] = '\0';
    memset(&m, 0, sizeof(m));
    if (validate(cfg, errbuf, errlen) != 0)
        return -1;
    item_setup_limits(cfg->item_size_max, cfg->mem_limit, cfg->use_cas, clock_start_ms());
    if (slab_region_setup(cfg, &m, &restored, errbuf, errlen) != 0)
        return -1;
    /* Stored expiry times count from the first process's start. */
    if (restored)
        item_setup_limits(cfg->item_size_max, cfg->mem_limit, cfg->use_cas, m.epoch_ms);
    /* One ghost entry per KiB of memory: about one per item of a typical
     * mix, the size S3-FIFO's ghost wants. */
    if (evict_setup(cfg->mem_limit / 1024, errbuf, errlen) != 0) {
        slab_teardown();
        restart_meta_free(&m);
        return -1;
    }
    if (assoc_setup(cfg->hashpower, errbuf, errlen) != 0) {
        evict_teardown();
        slab_teardown();
        restart_meta_free(&m);
        return -1;
    }
    if (restored) {
        uint64_t n = restart_rebuild(&m, clock_now_ms());

        snprintf(warm_status, sizeof(warm_status), "warm restart: restored %llu items from %s",
                 (unsigned long long)n, cfg->memory_file);
        restart_meta_free(&m);
    }
    if (cfg->crawler && evict_start_crawler(errbuf, errlen) != 0) {
        assoc_teardown();
        evict_teardown();
        slab_teardown();
        return -1;
    }
    crawler_on = cfg->crawler;
    if (rebalance_setup(cfg->slab_reassign, cfg->slab_automove, errbuf, errlen) != 0) {
        evict_stop_crawler();
        assoc_teardown();
        evict_teardown();
        slab_teardown();
        return -1;
    }
    evict_set_policy(cfg->evict && cfg->policy < EVICT_NPOLICIES ? (enum evict_policy)cfg->policy
                                                                 : EVICT_NOEVICTION);
    evict_set_lfu_log_factor(cfg->lfu_log_factor);
    evict_set_lfu_decay_time(cfg->lfu_decay_time);
    evict_set_samples(cfg->samples);
    mem_limit = cfg->mem_limit;
    snprintf(memory_file, sizeof(memory_file), "%s", cfg->memory_file);
    return 0;
}

const char *storage_warm_status(void)
{
    return warm_status;
}

int storage_save(char *errbuf, size_t errlen)
{
    if (memory_file[0] == '\0')
        return 0;
    /* Nothing may change the region while its layout is written. */
    rebalance_teardown();
    pthread_mutex_lock(&crawler_lock);
    evict_stop_crawler();
    crawler_on = false;
    pthread_mutex_unlock(&crawler_lock);
    return restart_save(memory_file, mem_limit, (uint32_t)item_header_size(),
                        item_layout.epoch_ms, errbuf, errlen);
}

void storage_teardown(void)
{
    rebalance_teardown();
    pthread_mutex_lock(&crawler_lock);
    evict_stop_crawler();
    crawler_on = false;
    pthread_mutex_unlock(&crawler_lock);
    assoc_teardown();
    evict_teardown();
    slab_teardown();
}

void storage_stats(struct storage_stats *out)
{
    unsigned i, power;

    memset(out, 0, sizeof(*out));
    for (i = 0; i < ASSOC_NSTRIPES; i++) {
        struct assoc_stripe *s = assoc_stripe_at(i);

        pthread_mutex_lock(&s->lock);
        out->curr_items += s->nitems;
        out->total_items += s->total_items;
        out->bytes += s->bytes;
        pthread_mutex_unlock(&s->lock);
    }
    evict_totals(out);
    rebalance_stats(out);
    out->curr_flush_gen = assoc_flush_count();
    out->limit_maxbytes = slab_limit();
    out->total_malloced = slab_total_malloced();
    out->slab_global_page_pool = slab_free_pages();
    assoc_table_info(&power, &out->hash_bytes, &out->hash_is_expanding);
    out->hash_power_level = power;
}

void storage_key_counts(uint64_t *keys, uint64_t *expires)
{
    *keys = *expires = 0;
    for (unsigned i = 0; i < ASSOC_NSTRIPES; i++) {
        struct assoc_stripe *s = assoc_stripe_at(i);

        pthread_mutex_lock(&s->lock);
        *keys += s->nitems - s->stale;
        *expires += s->nexpires;
        pthread_mutex_unlock(&s->lock);
    }
}

void storage_stats_reset(void)
{
    for (unsigned i = 0; i < ASSOC_NSTRIPES; i++) {
        struct assoc_stripe *s = assoc_stripe_at(i);

        pthread_mutex_lock(&s->lock);
        s->total_items = 0;
        pthread_mutex_unlock(&s->lock);
    }
    evict_stats_reset();
}

int storage_set_mem_limit(size_t bytes)
{
    return slab_set_limit(bytes);
}

size_t storage_mem_limit(void)
{
    return slab_limit();
}

void storage_slab_class_stats(unsigned id, int64_t now, struct storage_class_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (id < 1 || id > slab_class_count())
        return;
    out->id = id;
    slab_class_stats(id, out);
    evict_class_stats(id, now, out);
}

/* The counters a reported class sums over its halves. */
#define CLASS_SUMS(X)                                                                      \
    X(total_pages) X(total_chunks) X(used_chunks) X(free_chunks) X(free_chunks_end)        \
    X(mem_requested) X(number) X(number_small) X(evicted) X(evicted_nonzero)              \
    X(evicted_unfetched) X(evicted_active) X(outofmemory) X(tailrepairs) X(reclaimed)     \
    X(expired_unfetched) X(crawler_reclaimed)

/* Class ids here are the reported ones (slab_shown_*): each sums the
 * classes it is made of. */
unsigned storage_class_count(void)
{
    return slab_shown_count();
}

void storage_class_stats(unsigned id, int64_t now, struct storage_class_stats *out)
{
    unsigned first, last;
    uint64_t most_evicted = 0;

    memset(out, 0, sizeof(*out));
    if (!slab_shown_range(id, &first, &last))
        return;
    out->id = id;
    out->chunk_size = slab_chunk_size(last);
    out->chunks_per_page = slab_chunks_per_page(last);
    for (unsigned k = first; k <= last; k++) {
        struct storage_class_stats c;

        storage_slab_class_stats(k, now, &c);
#define ADD(f) out->f += c.f;
        CLASS_SUMS(ADD)
#undef ADD
        if (c.age_sec > out->age_sec)
            out->age_sec = c.age_sec;
        /* The one that evicts most speaks for the last eviction. */
        if (c.evicted > most_evicted) {
            most_evicted = c.evicted;
            out->evicted_time = c.evicted_time;
        }
    }
}

struct dump_walk {
    bool (*visit)(void *arg, const struct storage_dump_entry *e);
    void *arg;
    bool stop;          /* visit said so: the other half is not walked */
};

static bool dump_one(void *arg, const struct item *it)
{
    struct dump_walk *w = arg;
    struct storage_dump_entry e = {item_key(it), item_nkey(it), item_nbytes(it),
                                   item_exptime(it)};

    w->stop = !w->visit(w->arg, &e);
    return !w->stop;
}

void storage_class_dump(unsigned id, bool (*visit)(void *arg, const struct storage_dump_entry *e),
                        void *arg)
{
    struct dump_walk w = {visit, arg, false};
    unsigned first, last;

    if (slab_shown_range(id, &first, &last))
        for (unsigned k = first; k <= last && !w.stop; k++)
            evict_walk(k, dump_one, &w);
}

/* ---- memcached's lru_crawler commands ---- */

int storage_crawler_set(bool on)
{
    char err[128];
    int rc = 0;

    pthread_mutex_lock(&crawler_lock);
    if (on && !crawler_on) {
        rc = evict_start_crawler(err, sizeof(err));
        crawler_on = rc == 0;
    } else if (!on && crawler_on) {
        evict_stop_crawler();
        crawler_on = false;
    }
    pthread_mutex_unlock(&crawler_lock);
    return rc;
}

bool storage_crawler_on(void)
{
    bool on;

    pthread_mutex_lock(&crawler_lock);
    on = crawler_on;
    pthread_mutex_unlock(&crawler_lock);
    return on;
}

#define CRAWL_STEP 4096     /* chunks per eviction-lock hold */

uint64_t storage_crawl_class(unsigned id, uint64_t max, int64_t now)
{
    unsigned first, last;
    uint64_t left = max, freed = 0;

    if (!slab_shown_range(id, &first, &last))
        return 0;
    for (unsigned k = first; k <= last && (max == 0 || left > 0); k++) {
        uint64_t chunks = (uint64_t)slab_class_pages(k) * slab_chunks_per_page(k);

        if (max != 0 && chunks > left)
            chunks = left;
        left -= max != 0 ? chunks : 0;
        for (uint64_t done = 0; done < chunks; done += CRAWL_STEP) {
            uint64_t n = chunks - done < CRAWL_STEP ? chunks - done : CRAWL_STEP;

            freed += evict_crawl_step(k, (unsigned)n, now);
        }
    }
    return freed;
}

struct meta_walk {
    uint64_t classes;
    void (*visit)(void *arg, const struct storage_meta_entry *e);
    void *arg;
    int64_t now;
};

static void meta_one(struct item *it, void *arg)
{
    const struct meta_walk *w = arg;
    unsigned id = item_class_id(it);
    struct storage_meta_entry e;

    if (id >= 64 || !(w->classes & ((uint64_t)1 << id)))
        return;
    e.key = item_key(it);
    e.nkey = item_nkey(it);
    e.exptime = item_exptime(it);
    e.atime = w->now - (int64_t)item_idle_seconds(it, w->now) * 1000;
    e.cas = item_cas(it);
    e.fetched = (item_iflags(it) & ITEM_FETCHED) != 0;
    e.clsid = id;
    e.size = item_header_size() + item_nkey(it) + (uint64_t)item_nbytes(it);
    e.flags = item_flags(it);
    w->visit(w->arg, &e);
}

uint64_t storage_meta_scan(uint64_t cursor, int64_t now, uint64_t classes, uint64_t max_items,
                           void (*visit)(void *arg, const struct storage_meta_entry *e),
                           void *arg)
{
    struct meta_walk w = {classes, visit, arg, now};
    struct item_scan_work work = {.max_steps = UINT64_MAX, .max_items = max_items};

    return item_scan_batch(cursor, now, &work, meta_one, &w);
}
