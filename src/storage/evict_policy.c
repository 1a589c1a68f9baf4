/*
 * Eviction policy names and the runtime knobs (see evict.h). The knobs are
 * relaxed atomics: a CONFIG SET racing an eviction may let that one eviction
 * use the old value, which is harmless.
 */
#include "storage/evict.h"

#include <stddef.h>
#include <strings.h>

static const char *const names[EVICT_NPOLICIES] = {
    [EVICT_S3FIFO] = "allkeys-s3fifo",
    [EVICT_ALLKEYS_LRU] = "allkeys-lru",
    [EVICT_ALLKEYS_LFU] = "allkeys-lfu",
    [EVICT_ALLKEYS_RANDOM] = "allkeys-random",
    [EVICT_VOLATILE_LRU] = "volatile-lru",
    [EVICT_VOLATILE_LFU] = "volatile-lfu",
    [EVICT_VOLATILE_TTL] = "volatile-ttl",
    [EVICT_VOLATILE_RANDOM] = "volatile-random",
    [EVICT_NOEVICTION] = "noeviction",
};

/* Module state: changed only through the setters below. */
static unsigned policy = EVICT_S3FIFO;
static unsigned lfu_log_factor = EVICT_LFU_LOG_FACTOR_DEFAULT;
static unsigned lfu_decay_time = EVICT_LFU_DECAY_TIME_DEFAULT;
static unsigned samples = EVICT_SAMPLES_DEFAULT;

const char *evict_policy_name(enum evict_policy p)
{
    return (unsigned)p < EVICT_NPOLICIES ? names[p] : "unknown";
}

int evict_policy_parse(const char *name, enum evict_policy *out)
{
    for (unsigned i = 0; i < EVICT_NPOLICIES; i++) {
        if (strcasecmp(name, names[i]) == 0) {
            *out = (enum evict_policy)i;
            return 0;
        }
    }
    return -1;
}

void evict_set_policy(enum evict_policy p)
{
    __atomic_store_n(&policy, (unsigned)p, __ATOMIC_RELAXED);
}

enum evict_policy evict_get_policy(void)
{
    return (enum evict_policy)__atomic_load_n(&policy, __ATOMIC_RELAXED);
}

void evict_set_lfu_log_factor(unsigned v)
{
    __atomic_store_n(&lfu_log_factor, v, __ATOMIC_RELAXED);
}

unsigned evict_get_lfu_log_factor(void)
{
    return __atomic_load_n(&lfu_log_factor, __ATOMIC_RELAXED);
}

void evict_set_lfu_decay_time(unsigned v)
{
    __atomic_store_n(&lfu_decay_time, v, __ATOMIC_RELAXED);
}

unsigned evict_get_lfu_decay_time(void)
{
    return __atomic_load_n(&lfu_decay_time, __ATOMIC_RELAXED);
}

void evict_set_samples(unsigned v)
{
    if (v < 1)
        v = 1;
    if (v > 64)
        v = 64;
    __atomic_store_n(&samples, v, __ATOMIC_RELAXED);
}

unsigned evict_get_samples(void)
{
    return __atomic_load_n(&samples, __ATOMIC_RELAXED);
}
