/*
 * Hash table and its striped locks (internal to storage).
 *
 * A key's stripe is hv & (ASSOC_NSTRIPES - 1). Table sizes are powers of two
 * and never smaller than the stripe count, so the stripes partition every
 * table and a key's bucket in either table is covered by the same stripe:
 * holding one stripe lock is enough to find, insert or remove a key even
 * while the table grows. Each stripe keeps its own view of the table(s),
 * changed only under its lock by the migration (see assoc.c).
 *
 * Each stripe also carries the per-stripe counters, CAS sequence and flush
 * snapshot, all guarded by its mutex, so no request touches shared state.
 */
#ifndef KIOKU_ASSOC_H
#define KIOKU_ASSOC_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ASSOC_STRIPE_BITS 12
#define ASSOC_NSTRIPES (1u << ASSOC_STRIPE_BITS)
#define ASSOC_POWER_MIN ASSOC_STRIPE_BITS
#define ASSOC_POWER_MAX 32

struct item;

struct assoc_stripe {
    pthread_mutex_t lock;
    uint64_t nitems;        /* linked items; also read (atomically) by maintenance */
    uint64_t bytes;         /* sum of linked item sizes */
    uint64_t total_items;   /* items ever linked */
    uint64_t cas_seq;       /* last sequence handed out */
    uint64_t stale;         /* linked items of an older flush generation */
    uint64_t nexpires;      /* linked current-generation items with an exptime */
    uint32_t flush_gen;     /* bumped by flush_all: items of older ones are dead */
    uint32_t stale_base;    /* oldest generation a stale item may still carry */
    uint32_t *tab;          /* table this stripe inserts into (chunk references) */
    uint32_t *old;          /* table still being emptied for it, or NULL */
    unsigned power;         /* tab has 2^power buckets */
    unsigned old_power;
} __attribute__((aligned(64)));

/* Allocate the stripes and a table of 2^hashpower buckets (raised to at
 * least ASSOC_POWER_MIN) and start the maintenance thread. */
int assoc_setup(unsigned hashpower, char *errbuf, size_t errlen);
/* Stop the maintenance thread, free the tables and stripes (not the items). */
void assoc_teardown(void);

uint64_t assoc_hash(const char *key, size_t nkey);
/* The hash seed of this set-up, random per assoc_setup() (hash flooding:
 * a client cannot know which keys share a bucket). For tests only. */
uint64_t assoc_seed(void);
static inline unsigned assoc_stripe_index(uint64_t hv)
{
    return (unsigned)(hv & (ASSOC_NSTRIPES - 1));
}
struct assoc_stripe *assoc_stripe(uint64_t hv);
struct assoc_stripe *assoc_stripe_at(unsigned idx);
void assoc_lock(uint64_t hv);
void assoc_unlock(uint64_t hv);
/* By stripe index (item_lock_many). */
void assoc_lock_at(unsigned idx);
void assoc_unlock_at(unsigned idx);
/* Scripts: bits (ASSOC_NSTRIPES of them) names the stripes this thread
 * holds until assoc_hold(NULL); assoc_lock/unlock skip those. */
void assoc_hold(const uint64_t *bits);
/* 0 when taken, nonzero when busy (also when this thread holds it). */
int assoc_trylock(uint64_t hv);

/*
 * Warm the cache lines that lookups of these n hashes will touch (stripe,
 * bucket, head item), so that a batch of pipelined requests waits for
 * memory once, overlapped, instead of once per request. Hints only: the
 * lookups themselves still lock and search. Where a bucket is is read
 * without the lock (a stale table wastes a prefetch, never faults); its
 * head is read under a trylock, skipping a busy stripe. Bounded by n.
 */
void assoc_prefetch(const uint64_t *hv, size_t n);

/* ---- caller holds the key's stripe ---- */
struct item *assoc_find(const char *key, size_t nkey, uint64_t hv);
void assoc_insert(struct item *it, uint64_t hv);
/* Remove this item (by identity) from whichever table holds it. */
void assoc_delete(struct item *it, uint64_t hv);

/*
 * One step of a reverse-binary cursor scan: takes the cursor's stripe, calls
 * visit() on every item of the cursor's bucket in the smaller table and of
 * its expansions in the larger one (while growing), returns the next cursor
 * (0 when done).
 */
uint64_t assoc_scan(uint64_t cursor,
                    void (*visit)(struct item *it, struct assoc_stripe *s, void *arg),
                    void *arg);

/*
 * Several scan steps in one stripe hold: from cursor, visit buckets as
 * assoc_scan() does until the cursor leaves the stripe, reaches 0, or
 * w->max_steps steps or w->max_items visited items are done (checked after
 * each step, so a step's bucket is always finished). Sets w->steps and
 * w->items to what was done; returns the next cursor.
 */
struct assoc_scan_work {
    uint64_t max_steps;     /* >= 1 */
    uint64_t max_items;     /* >= 1 */
    uint64_t steps;
    uint64_t items;
};
uint64_t assoc_scan_batch(uint64_t cursor, struct assoc_scan_work *w,
                          void (*visit)(struct item *it, struct assoc_stripe *s, void *arg),
                          void *arg);

/* Linked items (all stripes, read without locks) and the newest table's
 * power: the table's load, for growth and for sizing scan work. */
void assoc_load(uint64_t *nitems, unsigned *power);

/* Next CAS for the stripe (caller holds it): unique over all stripes,
 * increasing per stripe, never 0. */
uint64_t assoc_next_cas(struct assoc_stripe *s, unsigned idx);
/* Warm restart: every stripe's next CAS goes past sequence `seq`, so new
 * CAS values stay above every restored one whatever stripe made it. */
void assoc_cas_floor(uint64_t seq);

/* Flush: snapshot every stripe now, or let the maintenance thread do it at
 * kioku time `at` (replacing any pending one). */
void assoc_flush_now(void);
void assoc_flush_at(int64_t at);
uint64_t assoc_flush_count(void);

/* Table state, for stats. */
void assoc_table_info(unsigned *power, uint64_t *bytes, bool *expanding);

/*
 * Growth control, for tests: pause keeps the maintenance thread from
 * starting a growth; the step functions let a test drive one by hand.
 * assoc_expand_begin() allocates a twice-larger table (false if already
 * growing or out of memory); assoc_expand_step() migrates up to
 * `max_buckets` old buckets of one stripe and returns true while some
 * remain; assoc_expand_end() frees the old table once all are migrated.
 */
void assoc_pause_growth(bool paused);
bool assoc_expand_begin(void);
bool assoc_expand_step(unsigned max_buckets);
void assoc_expand_end(void);

#endif
