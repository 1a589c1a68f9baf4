/*
 * The shared script cache (see script_cache.h): a chained hash table keyed
 * by the digest, which is already uniformly distributed, so its first
 * bytes are the hash. It grows by doubling at one entry per bucket; it
 * never shrinks except by SCRIPT FLUSH, as Redis's cache.
 */
#include "script/script_cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/sha1.h"

struct entry {
    struct entry *next;
    char sha[SHA1_HEX_LEN];
    size_t len;
    char body[];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry **buckets;   /* lock */
static size_t nbuckets, count, bytes;   /* lock */
static uint64_t generation;      /* atomic; changes under lock */

static size_t bucket_of(const char *sha, size_t n)
{
    size_t h = 0;
    for (int i = 0; i < 12; i++) {
        char ch = sha[i];
        h = h * 16 + (size_t)(ch <= '9' ? ch - '0' : ch - 'a' + 10);
    }
    return h & (n - 1);
}

static struct entry *find(const char *sha)
{
    if (nbuckets == 0)
        return NULL;
    for (struct entry *e = buckets[bucket_of(sha, nbuckets)]; e != NULL; e = e->next)
        if (memcmp(e->sha, sha, SHA1_HEX_LEN) == 0)
            return e;
    return NULL;
}

static int grow(void)
{
    size_t n = nbuckets != 0 ? nbuckets * 2 : 64;
    struct entry **b = calloc(n, sizeof(*b));
    if (b == NULL)
        return -1;
    for (size_t i = 0; i < nbuckets; i++) {
        struct entry *e = buckets[i];
        while (e != NULL) {
            struct entry *next = e->next;
            size_t k = bucket_of(e->sha, n);
            e->next = b[k];
            b[k] = e;
            e = next;
        }
    }
    free(buckets);
    buckets = b;
    nbuckets = n;
    return 0;
}

int script_cache_add(const char *sha, const char *body, size_t len)
{
    int rc = 0;
    pthread_mutex_lock(&lock);
    if (find(sha) != NULL)
        goto out;
    if (count >= nbuckets && grow() != 0 && nbuckets == 0) {
        rc = -1;
        goto out;
    }
    struct entry *e = malloc(sizeof(*e) + len + 1);
    if (e == NULL) {
        rc = -1;
        goto out;
    }
    memcpy(e->sha, sha, SHA1_HEX_LEN);
    memcpy(e->body, body, len);
    e->body[len] = '\0';
    e->len = len;
    size_t k = bucket_of(sha, nbuckets);
    e->next = buckets[k];
    buckets[k] = e;
    count++;
    bytes += len;
out:
    pthread_mutex_unlock(&lock);
    return rc;
}

bool script_cache_exists(const char *sha)
{
    pthread_mutex_lock(&lock);
    bool found = find(sha) != NULL;
    pthread_mutex_unlock(&lock);
    return found;
}

char *script_cache_get(const char *sha, size_t *len)
{
    char *copy = NULL;
    pthread_mutex_lock(&lock);
    struct entry *e = find(sha);
    if (e != NULL && (copy = malloc(e->len + 1)) != NULL) {
        memcpy(copy, e->body, e->len + 1);
        *len = e->len;
    }
    pthread_mutex_unlock(&lock);
    return copy;
}

void script_cache_flush(void)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < nbuckets; i++) {
        struct entry *e = buckets[i];
        while (e != NULL) {
            struct entry *next = e->next;
            free(e);
            e = next;
        }
    }
    free(buckets);
    buckets = NULL;
    nbuckets = count = bytes = 0;
    __atomic_add_fetch(&generation, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&lock);
}

uint64_t script_cache_generation(void)
{
    return __atomic_load_n(&generation, __ATOMIC_ACQUIRE);
}

void script_cache_usage(size_t *n, size_t *b)
{
    pthread_mutex_lock(&lock);
    *n = count;
    *b = bytes;
    pthread_mutex_unlock(&lock);
}
