/*
 * Per-prefix key statistics (see prefix_stats.h for what is counted).
 *
 * Design. A fixed hash table of PS_BUCKETS chains, guarded by PS_STRIPES
 * mutexes (bucket i by lock i % PS_STRIPES), so workers counting different
 * prefixes rarely meet. An entry is allocated the first time its prefix is
 * seen and lives until "stats reset" or teardown; the prefix is stored
 * inline after the counters. The number of entries is capped at
 * PREFIX_STATS_MAX with an atomic counter that is reserved before the
 * allocation, so the cap holds under concurrent inserts.
 *
 * The prefix rule is memcached's: the bytes before the first delimiter,
 * and no prefix at all when the key has no delimiter or a NUL byte comes
 * before it (memcached's scan stops at a NUL).
 */
#include "stats/prefix_stats.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PS_BUCKETS 4096   /* power of two; chains average 16 at the cap */
#define PS_STRIPES 64     /* divides PS_BUCKETS */

struct ps_entry {
    struct ps_entry *next;
    struct prefix_counts n;
    size_t len;
    char prefix[];
};

atomic_bool prefix_stats_enabled_;

static char delimiter = ':';
static atomic_size_t nentries;
static struct ps_entry *buckets[PS_BUCKETS];
static pthread_mutex_t locks[PS_STRIPES];

/* FNV-1a: the table is small and keys come from clients we trust to be
 * clients; no need for the storage hash here. */
static uint32_t ps_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

void prefix_stats_setup(char delim, bool enabled)
{
    delimiter = delim;
    for (size_t i = 0; i < PS_STRIPES; i++)
        pthread_mutex_init(&locks[i], NULL);
    atomic_store(&nentries, 0);
    atomic_store(&prefix_stats_enabled_, enabled);
}

void prefix_stats_teardown(void)
{
    prefix_stats_clear();
    for (size_t i = 0; i < PS_STRIPES; i++)
        pthread_mutex_destroy(&locks[i]);
    atomic_store(&prefix_stats_enabled_, false);
}

void prefix_stats_enable(bool on)
{
    atomic_store_explicit(&prefix_stats_enabled_, on, memory_order_relaxed);
}

/* The entry for prefix p[0..n) in bucket b; the caller holds b's lock.
 * create: add it if missing and the cap allows. */
static struct ps_entry *do_find(uint32_t b, const char *p, size_t n, bool create)
{
    for (struct ps_entry *e = buckets[b]; e != NULL; e = e->next)
        if (e->len == n && memcmp(e->prefix, p, n) == 0)
            return e;
    if (!create)
        return NULL;
    if (atomic_fetch_add(&nentries, 1) >= PREFIX_STATS_MAX) {
        atomic_fetch_sub(&nentries, 1);
        return NULL;
    }
    struct ps_entry *e = calloc(1, sizeof(*e) + n + 1);
    if (e == NULL) {
        atomic_fetch_sub(&nentries, 1);
        return NULL;
    }
    memcpy(e->prefix, p, n);
    e->len = n;
    e->next = buckets[b];
    buckets[b] = e;
    return e;
}

void prefix_stats_record(const char *key, size_t nkey, enum prefix_op op, bool hit)
{
    const char *d = memchr(key, delimiter, nkey);
    if (d == NULL)
        return;
    size_t n = (size_t)(d - key);
    if (memchr(key, '\0', n) != NULL)
        return;
    uint32_t b = ps_hash(key, n) & (PS_BUCKETS - 1);
    pthread_mutex_t *lock = &locks[b % PS_STRIPES];

    pthread_mutex_lock(lock);
    struct ps_entry *e = do_find(b, key, n, true);
    if (e != NULL) {
        switch (op) {
        case PREFIX_GET:
            e->n.get++;
            if (hit)
                e->n.hit++;
            break;
        case PREFIX_SET: e->n.set++; break;
        case PREFIX_DEL: e->n.del++; break;
        }
    }
    pthread_mutex_unlock(lock);
}

void prefix_stats_clear(void)
{
    for (uint32_t b = 0; b < PS_BUCKETS; b++) {
        pthread_mutex_t *lock = &locks[b % PS_STRIPES];
        pthread_mutex_lock(lock);
        struct ps_entry *e = buckets[b];
        buckets[b] = NULL;
        pthread_mutex_unlock(lock);
        while (e != NULL) {
            struct ps_entry *next = e->next;
            free(e);
            atomic_fetch_sub(&nentries, 1);
            e = next;
        }
    }
}

bool prefix_stats_find(const char *prefix, size_t n, struct prefix_counts *out)
{
    uint32_t b = ps_hash(prefix, n) & (PS_BUCKETS - 1);
    pthread_mutex_t *lock = &locks[b % PS_STRIPES];

    pthread_mutex_lock(lock);
    struct ps_entry *e = do_find(b, prefix, n, false);
    if (e != NULL)
        *out = e->n;
    pthread_mutex_unlock(lock);
    return e != NULL;
}

size_t prefix_stats_count(void)
{
    return atomic_load(&nentries);
}

/* Longest line: "PREFIX " + prefix + four labels and 20-digit numbers. */
#define PS_LINE_FIXED (7 + 4 * (5 + 20) + 2 + 1)

char *prefix_stats_dump(size_t *len)
{
    size_t cap = 4096, used = 0;
    char *buf = malloc(cap);
    if (buf == NULL)
        return NULL;
    for (uint32_t b = 0; b < PS_BUCKETS; b++) {
        pthread_mutex_t *lock = &locks[b % PS_STRIPES];
        pthread_mutex_lock(lock);
        for (struct ps_entry *e = buckets[b]; e != NULL; e = e->next) {
            size_t need = PS_LINE_FIXED + e->len;
            if (cap - used < need + 6) {
                size_t ncap = cap * 2 + need;
                char *nb = realloc(buf, ncap);
                if (nb == NULL) {
                    pthread_mutex_unlock(lock);
                    free(buf);
                    return NULL;
                }
                buf = nb;
                cap = ncap;
            }
            int w = snprintf(buf + used, cap - used,
                             "PREFIX %.*s get %llu hit %llu set %llu del %llu\r\n",
                             (int)e->len, e->prefix, (unsigned long long)e->n.get,
                             (unsigned long long)e->n.hit, (unsigned long long)e->n.set,
                             (unsigned long long)e->n.del);
            used += (size_t)w;
        }
        pthread_mutex_unlock(lock);
    }
    memcpy(buf + used, "END\r\n", 5);   /* room kept by the +6 above */
    *len = used + 5;
    return buf;
}
