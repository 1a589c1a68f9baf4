/*
 * Collections: keys whose value is a hash or a sorted set (issue 11).
 *
 * A collection is an item with ITEM_TYPED set: its 32-bit flags field holds
 * the type (enum coll_type) and its value holds a small root, POD and
 * pointer-free (references only): a block list header that this layer owns
 * and COLL_ROOT_SIZE bytes that the type's encoding owns (types/hash.h,
 * types/zset.h). Every other byte of the collection lives in arena blocks
 * (types/arena.h), each a slab chunk of its own that names the item as its
 * owner, so the memory counts against -m, an eviction that lands on any
 * block evicts the whole key, and freeing the item frees every block
 * (coll_arena.c, item.c).
 *
 * A command works on one collection between coll_open() and coll_close(),
 * holding the key's stripe lock all the while: that makes each command
 * atomic per key across worker threads. Replies must be copied out before
 * coll_close(): after it, blocks may change or go away.
 *
 *     struct coll_handle h;
 *     switch (coll_open(&h, key, nkey, COLL_HASH, true, now)) {
 *     case COLL_WRONGTYPE: reply WRONGTYPE; return;    (nothing held)
 *     case COLL_NOMEM: reply OOM; return;              (nothing held)
 *     }
 *     ... hash_set(coll_arena(&h), coll_root(&h), ...) ...
 *     coll_close(&h);     links a new non-empty key, deletes an empty one
 */
#ifndef KIOKU_COLL_H
#define KIOKU_COLL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct item;

enum coll_type { COLL_NONE = 0, COLL_HASH = 1, COLL_ZSET = 2 };

enum coll_status {
    COLL_OK = 0,
    COLL_WRONGTYPE,     /* the key holds a string or another type; lock released */
    COLL_NOMEM,         /* create failed under the memory bound; lock released */
};

/* Bytes of the type's root struct (coll_root()), 8-byte aligned, zeroed
 * when a collection is created. */
#define COLL_ROOT_SIZE 64

/* The block list of one collection: in the item's value, before the root. */
struct coll_blocks {
    uint32_t head;      /* slab ref of the newest block, 0 none */
    uint32_t count;     /* blocks on the list */
    uint64_t bytes;     /* slab chunk bytes they take */
};

/* The server's arena (types/arena.h): filled by coll_open(). */
struct arena {
    struct item *owner;
    struct coll_blocks *blocks;
    int64_t now;        /* kioku ms, for the evictions an allocation may do */
};

/* One open collection. Fields are this layer's; callers use the accessors. */
struct coll_handle {
    uint64_t hv;
    struct item *item;          /* NULL: absent and not created */
    bool linked;                /* item is in the hash table */
    enum coll_type type;
    int64_t now;
    struct arena arena;
};

/*
 * Take the key's stripe lock and find it. COLL_OK: the lock is held until
 * coll_close(); coll_exists() tells whether there is a collection (with
 * create, an absent key gets an empty collection of type t, linked only if
 * it is non-empty at coll_close()). COLL_WRONGTYPE / COLL_NOMEM: nothing is
 * held, do not call coll_close().
 */
enum coll_status coll_open(struct coll_handle *h, const char *key, size_t nkey, enum coll_type t,
                           bool create, int64_t now);
static inline bool coll_exists(const struct coll_handle *h) { return h->item != NULL; }
/* coll_open() for a caller that already holds the key's stripe (hv is
 * item_hash of the key), e.g. through item_lock_many() for a command on
 * several keys: takes no lock and, on an error, leaves the stripe held. */
enum coll_status do_coll_open(struct coll_handle *h, const char *key, size_t nkey, uint64_t hv,
                              enum coll_type t, bool create, int64_t now);
/* Only while open and coll_exists(). */
static inline struct arena *coll_arena(struct coll_handle *h) { return &h->arena; }
void *coll_root(struct coll_handle *h);
/*
 * Finish the command: bump the key's access (LRU/LFU/S3-FIFO), link a
 * created collection that is non-empty, delete one that is now empty
 * (Redis never keeps an empty hash or sorted set), release the lock.
 */
void coll_close(struct coll_handle *h);

/* coll_close() that keeps the stripe: the do_coll_open() caller releases it. */
void do_coll_close(struct coll_handle *h);

/* COLL_NONE for a string item. Any thread holding a reference. */
enum coll_type coll_type_of(const struct item *it);
/* Redis's TYPE name: "string", "hash", "zset". */
const char *coll_type_name(enum coll_type t);
/* Redis's OBJECT ENCODING of a collection item ("listpack", "hashtable",
 * "skiplist"). Caller holds the key's stripe lock. */
const char *coll_encoding(struct item *it);
/* Elements in a collection item (HLEN, ZCARD). Caller holds the stripe. */
uint64_t coll_len(struct item *it);
/* Slab bytes of its blocks (MEMORY USAGE, with the item's own chunk).
 * Caller holds the stripe. */
uint64_t coll_bytes(struct item *it);

/*
 * RENAME of a collection: with both keys' stripes held (item_lock2), a new
 * item under the new key takes over old's root and blocks (each block is
 * re-pointed to its new owner, O(blocks)); old is left an empty string item
 * for the caller to unlink. Returns the new item (one reference, unlinked,
 * exptime copied), or NULL when no memory (nothing changed).
 */
struct item *coll_rename(struct item *old, const char *key, size_t nkey, int64_t now);

/*
 * The listpack thresholds (hash-max-listpack-entries/-value,
 * zset-max-listpack-entries/-value). CONFIG SET changes them at run time:
 * atomics, read per command.
 */
enum coll_limit { COLL_HASH_ENTRIES, COLL_HASH_VALUE, COLL_ZSET_ENTRIES, COLL_ZSET_VALUE, COLL_NLIMITS };
uint64_t coll_limit(enum coll_limit l);
void coll_limit_set(enum coll_limit l, uint64_t v);

#endif
