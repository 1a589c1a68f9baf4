/*
 * Hash: the two encodings of a Redis hash in an arena (types/arena.h).
 *
 * Small hashes are one block of field,value pairs back to back in insertion
 * order, each string a LEB128 length then its bytes, as Redis's listpack
 * keeps them; lookups are linear, bounded by hash-max-listpack-entries.
 * When a hash gets more entries than that, or a field or value longer than
 * hash-max-listpack-value, or the block would pass ARENA_ALLOC_MAX, it is
 * converted once to a dictionary (types/adict.h) and never back, as Redis
 * does. The root is POD, zeroed means an empty listpack, and lives in the
 * collection's root (storage/coll.h).
 *
 * No locks, no slab: the caller owns the arena (holds the key's lock).
 * Pointers returned into the hash are valid until the next change.
 */
#ifndef KIOKU_HASH_H
#define KIOKU_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "types/adict.h"
#include "types/arena.h"

enum hash_enc { HASH_LISTPACK = 0, HASH_TABLE = 1 };

struct hash_root {
    uint8_t enc;        /* enum hash_enc */
    uint8_t pad[3];
    uint32_t count;     /* fields */
    uint32_t lp;        /* listpack block, ARENA_NONE when empty */
    uint32_t lp_cap;    /* its size */
    uint32_t lp_used;   /* bytes of it in use */
    uint32_t pad2;
    struct adict d;     /* HASH_TABLE */
};

/* The thresholds, read from the configuration per command. */
struct hash_limits {
    uint64_t max_entries;   /* hash-max-listpack-entries */
    uint64_t max_value;     /* hash-max-listpack-value */
};

/* The longest field plus value a hash can hold. */
#define HASH_KV_MAX (ADICT_KV_MAX - 16)

static inline uint32_t hash_len(const struct hash_root *r) { return r->count; }
/* "listpack" or "hashtable" (OBJECT ENCODING). */
const char *hash_encoding(const struct hash_root *r);

/* Value of field (and *vlen), or NULL. */
const void *hash_get(struct arena *a, struct hash_root *r, const void *f, size_t flen, size_t *vlen);
/*
 * Set field to value: 1 created, 0 replaced, -1 no memory or field+value
 * longer than HASH_KV_MAX (the hash is as before, still consistent).
 * A conversion the limits call for happens here.
 */
int hash_set(struct arena *a, struct hash_root *r, const void *f, size_t flen, const void *v, size_t vlen,
             const struct hash_limits *lim);
/* 1 deleted, 0 absent. The last field gone frees every block. */
int hash_del(struct arena *a, struct hash_root *r, const void *f, size_t flen);
/* Convert to the dictionary now (when a caller knows it will have to):
 * 0, or -1 no memory (still a listpack). */
int hash_convert(struct arena *a, struct hash_root *r);
/* Free every block; the root is an empty listpack after. */
void hash_free(struct arena *a, struct hash_root *r);

/* Every field with its value, insertion order for a listpack. fn must not
 * change the hash. */
void hash_foreach(struct arena *a, struct hash_root *r, adict_visit_fn fn, void *arg);
/* HSCAN: a listpack is visited whole (cursor 0 back); a dictionary one
 * bucket per call (adict_scan). */
uint64_t hash_scan(struct arena *a, struct hash_root *r, uint64_t cursor, adict_visit_fn fn, void *arg);
/* A field chosen from the random number rnd: 0, or -1 when empty. */
int hash_random(struct arena *a, struct hash_root *r, uint64_t rnd, const void **f, size_t *flen,
                const void **v, size_t *vlen);

#endif
