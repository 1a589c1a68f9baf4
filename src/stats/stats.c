/*
 * Aggregation of per-thread counters, and the connection counters.
 *
 * The reset baseline is guarded by a mutex taken only by stats readers and
 * `stats reset`, never by a request. Connection counters are atomics touched
 * once per accept or close.
 */
#include "stats/stats.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static struct thread_stats *threads;   /* set in stats_setup, before workers run */
static int nthreads;
static pthread_mutex_t baseline_lock = PTHREAD_MUTEX_INITIALIZER;
static struct thread_stats baseline;   /* guarded by baseline_lock */

static uint64_t curr_conns, total_conns, rejected_conns;

/* The error kinds: names are written once, under kind_lock, before
 * nkinds is raised past them (release), so a reader that loads nkinds
 * (acquire) may read those names without the lock. */
static pthread_mutex_t kind_lock = PTHREAD_MUTEX_INITIALIZER;
static char kind_names[STATS_ERROR_KINDS][STATS_ERROR_NAME_MAX + 1];
static int nkinds;

int stats_setup(int n)
{
    threads = aligned_alloc(64, sizeof(*threads) * (size_t)n);
    if (threads == NULL)
        return -1;
    memset(threads, 0, sizeof(*threads) * (size_t)n);
    nthreads = n;
    memset(&baseline, 0, sizeof(baseline));
    return 0;
}

void stats_teardown(void)
{
    free(threads);
    threads = NULL;
    nthreads = 0;
}

struct thread_stats *stats_thread(int i)
{
    return &threads[i];
}

static void sum_threads(struct thread_stats *out)
{
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < nthreads; i++) {
#define X(name) out->name += __atomic_load_n(&threads[i].name, __ATOMIC_RELAXED);
        THREAD_STATS_ALL(X)
        THREAD_STATS_LEVELS(X)
#undef X
        for (int k = 0; k < STATS_SLAB_CLASSES; k++) {
#define X(name) out->slab[k].name += __atomic_load_n(&threads[i].slab[k].name, __ATOMIC_RELAXED);
            SLAB_STATS_FIELDS(X)
#undef X
        }
        for (int k = 0; k < STATS_ERROR_KINDS; k++)
            out->error_kind[k] += __atomic_load_n(&threads[i].error_kind[k], __ATOMIC_RELAXED);
    }
}

void stats_aggregate(struct thread_stats *out)
{
    sum_threads(out);
    pthread_mutex_lock(&baseline_lock);
#define X(name) out->name -= baseline.name;
    THREAD_STATS_ALL(X)
#undef X
    for (int k = 0; k < STATS_SLAB_CLASSES; k++) {
#define X(name) out->slab[k].name -= baseline.slab[k].name;
        SLAB_STATS_FIELDS(X)
#undef X
    }
    for (int k = 0; k < STATS_ERROR_KINDS; k++)
        out->error_kind[k] -= baseline.error_kind[k];
    pthread_mutex_unlock(&baseline_lock);
}

void stats_reset(void)
{
    struct thread_stats now;
    sum_threads(&now);
    pthread_mutex_lock(&baseline_lock);
    baseline = now;
    pthread_mutex_unlock(&baseline_lock);
    __atomic_store_n(&total_conns, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&rejected_conns, 0, __ATOMIC_RELAXED);
}

static int find_kind(const char *name, size_t len, int n)
{
    for (int i = 0; i < n; i++)
        if (strncmp(kind_names[i], name, len) == 0 && kind_names[i][len] == '\0')
            return i;
    return -1;
}

/* The kind of the word name[0..len), added if new; -1 if the table is full. */
static int error_kind(const char *name, size_t len)
{
    int i = find_kind(name, len, __atomic_load_n(&nkinds, __ATOMIC_ACQUIRE));
    if (i >= 0)
        return i;
    pthread_mutex_lock(&kind_lock);
    int n = nkinds;
    i = find_kind(name, len, n);
    if (i < 0 && n < STATS_ERROR_KINDS) {
        memcpy(kind_names[n], name, len);
        kind_names[n][len] = '\0';
        __atomic_store_n(&nkinds, n + 1, __ATOMIC_RELEASE);
        i = n;
    }
    pthread_mutex_unlock(&kind_lock);
    return i;
}

void stats_error_reply(struct thread_stats *ts, const char *err, size_t len)
{
    STAT_INC(ts, total_error_replies);
    /* A word with a NUL in it could not be told from a shorter one. */
    size_t n = len < STATS_ERROR_NAME_MAX + 1 ? len : STATS_ERROR_NAME_MAX + 1;
    const char *sp = memchr(err, ' ', n);
    const char *word = "ERR";
    size_t wlen = 3;
    if (sp != NULL && memchr(err, '\0', (size_t)(sp - err)) == NULL) {
        word = err;
        wlen = (size_t)(sp - err);
    }
    int k = error_kind(word, wlen);
    if (k >= 0)
        STAT_INC(ts, error_kind[k]);
}

int stats_error_kinds(void)
{
    return __atomic_load_n(&nkinds, __ATOMIC_ACQUIRE);
}

const char *stats_error_name(int i)
{
    return kind_names[i];
}

void stats_conn_opened(void)
{
    __atomic_add_fetch(&curr_conns, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&total_conns, 1, __ATOMIC_RELAXED);
}

void stats_conn_closed(void)
{
    __atomic_sub_fetch(&curr_conns, 1, __ATOMIC_RELAXED);
}

void stats_conn_rejected(void)
{
    __atomic_add_fetch(&rejected_conns, 1, __ATOMIC_RELAXED);
}

uint64_t stats_curr_conns(void)
{
    return __atomic_load_n(&curr_conns, __ATOMIC_RELAXED);
}

void stats_conns(struct conn_stats *out)
{
    out->curr_connections = __atomic_load_n(&curr_conns, __ATOMIC_RELAXED);
    out->total_connections = __atomic_load_n(&total_conns, __ATOMIC_RELAXED);
    out->rejected_connections = __atomic_load_n(&rejected_conns, __ATOMIC_RELAXED);
    out->connection_structures = out->curr_connections;
}
