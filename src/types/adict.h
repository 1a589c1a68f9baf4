/*
 * adict: a hash dictionary whose memory is an arena (types/arena.h).
 *
 * Keys are byte strings; each entry also carries value bytes of its own
 * length (possibly zero). The dictionary is a POD struct of references that
 * lives inside a collection's root, so it may be moved or mapped at another
 * address (warm restart) without fixing pointers.
 *
 * Layout: a power-of-two array of buckets (entry references). A table that
 * does not fit one arena block is a directory block of segment references,
 * each segment ADICT_SEG_BUCKETS buckets. Entries are chained:
 *   { u32 next, u32 hash, u32 klen, u32 vlen, value[vlen], key[klen] }
 * The value comes first so it is 8-byte aligned (a sorted set keeps a double
 * there). The 32-bit hash is kept so a resize never rehashes keys.
 *
 * The table doubles when entries pass the bucket count, and shrinks to the
 * smallest power of two that holds them when they fall below an eighth of
 * it (never below ADICT_MIN_BUCKETS). A resize is incremental, so no call
 * holds the caller's lock for long: the new table is allocated, and every
 * later insert or delete moves a few buckets of the old one (at most
 * ADICT_REHASH_STEP non-empty buckets, ten times that many empty ones)
 * until it is empty and freed; meanwhile lookups search both tables and
 * inserts go to the new one. A resize that cannot get memory is skipped:
 * the dictionary keeps working with longer chains.
 *
 * adict_scan uses the reverse-binary cursor: a full scan returns every
 * entry that was present from start to end at least once, even if the table
 * grew or shrank between calls or is being resized (an entry may be
 * returned twice).
 *
 * All functions expect the caller to own the arena (hold the key's lock).
 * Pointers returned into entries are valid until the next change.
 */
#ifndef KIOKU_ADICT_H
#define KIOKU_ADICT_H

#include <stddef.h>
#include <stdint.h>

#include "types/arena.h"

#define ADICT_MIN_BUCKETS 4u
#define ADICT_REHASH_STEP 4u            /* old buckets moved per change */
#define ADICT_SEG_BUCKETS 4096u         /* one segment: 16 KiB of refs */
/* The largest entry: key and value bytes together, with the header. */
#define ADICT_ENTRY_HDR 16u
#define ADICT_KV_MAX (ARENA_ALLOC_MAX - ADICT_ENTRY_HDR)

struct adict {
    uint32_t table;     /* bucket block, or a directory of segments */
    uint32_t count;     /* entries, in both tables */
    uint32_t seed;      /* per-dictionary hash seed */
    uint32_t old;       /* table being moved into `table`, ARENA_NONE if none */
    uint32_t rehash;    /* next bucket of `old` to move */
    uint8_t log2;       /* buckets of table = 1 << log2 */
    uint8_t old_log2;
    uint8_t pad[2];
};

typedef void (*adict_visit_fn)(void *arg, const void *k, size_t klen, const void *v, size_t vlen);

/* An empty dictionary: 0, or -1 when no memory (d untouched). */
int adict_init(struct arena *a, struct adict *d);
/* Free every entry and the table; d must be initialised again to reuse. */
void adict_free(struct arena *a, struct adict *d);

static inline uint32_t adict_count(const struct adict *d) { return d->count; }

/* Value of key (8-byte aligned, writable in place) and its length, or NULL
 * when absent. */
void *adict_get(struct arena *a, const struct adict *d, const void *key, size_t klen, size_t *vlen);
/*
 * Insert or replace key's value. Returns the stored value bytes (vlen of
 * them, copied from val unless val is NULL, then left for the caller to
 * fill); *created (if not NULL) says whether the key is new. NULL when no
 * memory or klen + vlen > ADICT_KV_MAX: the dictionary is unchanged.
 */
void *adict_set(struct arena *a, struct adict *d, const void *key, size_t klen, const void *val, size_t vlen,
                int *created);
/* 1 deleted, 0 absent. */
int adict_del(struct arena *a, struct adict *d, const void *key, size_t klen);

/*
 * Visit the entries of one bucket (the one cursor names) and return the
 * next cursor, 0 when the scan is complete. Start with 0. fn must not change
 * the dictionary.
 */
uint64_t adict_scan(struct arena *a, const struct adict *d, uint64_t cursor, adict_visit_fn fn, void *arg);
/* Visit every entry once, in bucket order. fn must not change the dictionary. */
void adict_foreach(struct arena *a, const struct adict *d, adict_visit_fn fn, void *arg);
/*
 * One entry chosen at random from the random number rnd (callers supply
 * it: this module has no state), every entry equally likely (HRANDFIELD's
 * distribution is tested for that). Returns 0 and fills the out parameters,
 * or -1 when empty. Bounded: at most 2000 random probes (about 32 expected
 * at the lowest load), then at most one walk of the buckets.
 */
int adict_random(struct arena *a, const struct adict *d, uint64_t rnd, const void **k, size_t *klen,
                 const void **v, size_t *vlen);

#endif
