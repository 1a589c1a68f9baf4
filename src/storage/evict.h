/*
 * Eviction policies: which item gives its memory up when a slab class is full.
 *
 * Redis's eight maxmemory-policy names with Redis's meanings, plus kioku's
 * default, allkeys-s3fifo (S3-FIFO, SOSP'23: a small probation FIFO, a main
 * FIFO with reinsertion, a ghost of recently evicted keys, and a 2-bit
 * access count that a hit sets without a lock or a list move). The volatile-*
 * policies evict only items that have a TTL; noeviction (memcached's -M)
 * evicts nothing. With every policy, dead (expired or flushed) items are
 * reclaimed first, and an item a reader holds is never taken.
 *
 * The policy and the LFU knobs can change while the server runs (Redis's
 * CONFIG SET), so they are kept here as atomics that the allocation path
 * reads, not in the read-only settings struct.
 */
#ifndef KIOKU_EVICT_H
#define KIOKU_EVICT_H

#include <stdbool.h>

enum evict_policy {
    EVICT_S3FIFO,           /* "allkeys-s3fifo", the default */
    EVICT_ALLKEYS_LRU,
    EVICT_ALLKEYS_LFU,
    EVICT_ALLKEYS_RANDOM,
    EVICT_VOLATILE_LRU,
    EVICT_VOLATILE_LFU,
    EVICT_VOLATILE_TTL,
    EVICT_VOLATILE_RANDOM,
    EVICT_NOEVICTION,       /* also -M */
    EVICT_NPOLICIES
};

/* Redis's defaults. */
#define EVICT_LFU_LOG_FACTOR_DEFAULT 10
#define EVICT_LFU_DECAY_TIME_DEFAULT 1     /* minutes */
#define EVICT_SAMPLES_DEFAULT 5            /* maxmemory-samples */

/* The policy's name as Redis spells it ("allkeys-lru", ...). */
const char *evict_policy_name(enum evict_policy p);
/* Parse a name (case-insensitive, as Redis's CONFIG SET): 0, or -1 if unknown. */
int evict_policy_parse(const char *name, enum evict_policy *out);

/* Runtime knobs: safe to call from any thread at any time. */
void evict_set_policy(enum evict_policy p);
enum evict_policy evict_get_policy(void);
/* lfu-log-factor (0..255 is meaningful; Redis accepts 0..INT_MAX). */
void evict_set_lfu_log_factor(unsigned v);
unsigned evict_get_lfu_log_factor(void);
/* lfu-decay-time in minutes; 0 means the counter never decays. */
void evict_set_lfu_decay_time(unsigned v);
unsigned evict_get_lfu_decay_time(void);
/* maxmemory-samples (1..64). */
void evict_set_samples(unsigned v);
unsigned evict_get_samples(void);

/* True for the policies that only take items with a TTL. */
static inline bool evict_policy_volatile(enum evict_policy p)
{
    return p == EVICT_VOLATILE_LRU || p == EVICT_VOLATILE_LFU || p == EVICT_VOLATILE_TTL ||
           p == EVICT_VOLATILE_RANDOM;
}

#endif
