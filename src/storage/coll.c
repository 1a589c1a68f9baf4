/*
 * Collections: open/close under the key's stripe lock, the typed item's
 * layout, and what generic key commands ask of any type (see coll.h).
 *
 * The item's value is [pad to 8][struct coll_blocks][root, COLL_ROOT_SIZE],
 * so its size does not depend on the key; item_typed_root() finds the
 * aligned start. The per-type questions (length, encoding) are one switch
 * each, one case per type.
 */
#include "storage/coll.h"

#include <string.h>

#include "storage/item.h"
#include "storage/slab.h"
#include "types/hash.h"
#include "types/zset.h"

#define ROOT_VALUE_BYTES (7 + sizeof(struct coll_blocks) + COLL_ROOT_SIZE)

_Static_assert(sizeof(struct hash_root) <= COLL_ROOT_SIZE, "hash root fits");
_Static_assert(sizeof(struct zset) <= COLL_ROOT_SIZE, "zset root fits");
_Static_assert(sizeof(struct coll_blocks) % 8 == 0, "root stays aligned");

/* The listpack thresholds, Redis 7.0's defaults (512 fields for a hash,
 * 128 members for a sorted set, 64 bytes each); CONFIG SET changes them. */
static uint64_t limits[COLL_NLIMITS] = {512, 64, 128, 64};

uint64_t coll_limit(enum coll_limit l)
{
    return __atomic_load_n(&limits[l], __ATOMIC_RELAXED);
}

void coll_limit_set(enum coll_limit l, uint64_t v)
{
    __atomic_store_n(&limits[l], v, __ATOMIC_RELAXED);
}

static struct coll_blocks *blocks_of(struct item *it)
{
    return item_typed_root(it);
}

static void *root_of(struct item *it)
{
    return (char *)item_typed_root(it) + sizeof(struct coll_blocks);
}

enum coll_type coll_type_of(const struct item *it)
{
    if (!item_is_typed(it))
        return COLL_NONE;
    return (enum coll_type)item_flags(it);
}

const char *coll_type_name(enum coll_type t)
{
    switch (t) {
    case COLL_HASH:
        return "hash";
    case COLL_ZSET:
        return "zset";
    case COLL_NONE:
        break;
    }
    return "string";
}

const char *coll_encoding(struct item *it)
{
    switch (coll_type_of(it)) {
    case COLL_HASH:
        return hash_encoding(root_of(it));
    case COLL_ZSET:
        return zset_encoding(root_of(it));
    case COLL_NONE:
        break;
    }
    return "unknown";
}

uint64_t coll_len(struct item *it)
{
    switch (coll_type_of(it)) {
    case COLL_HASH:
        return hash_len(root_of(it));
    case COLL_ZSET:
        return zset_len(root_of(it));
    case COLL_NONE:
        break;
    }
    return 0;
}

uint64_t coll_bytes(struct item *it)
{
    return item_is_typed(it) ? blocks_of(it)->bytes : 0;
}

static void arena_bind(struct coll_handle *h)
{
    h->arena.owner = h->item;
    h->arena.blocks = blocks_of(h->item);
    h->arena.now = h->now;
}

enum coll_status do_coll_open(struct coll_handle *h, const char *key, size_t nkey, uint64_t hv,
                              enum coll_type t, bool create, int64_t now)
{
    struct item *it;

    memset(h, 0, sizeof(*h));
    h->hv = hv;
    h->now = now;
    h->type = t;
    it = do_item_find(key, nkey, h->hv, now, NULL);
    if (it != NULL) {
        if (coll_type_of(it) != t) {
            item_put(it);
            return COLL_WRONGTYPE;
        }
        h->item = it;
        h->linked = true;
    } else if (create) {
        enum item_alloc_status st;

        it = item_alloc(key, nkey, (uint32_t)t, 0, ROOT_VALUE_BYTES, now, &st);
        if (it == NULL)
            return COLL_NOMEM;
        memset(item_typed_root(it), 0, sizeof(struct coll_blocks) + COLL_ROOT_SIZE);
        item_iflags_set(it, ITEM_TYPED);
        h->item = it;
    }
    if (h->item != NULL)
        arena_bind(h);
    return COLL_OK;
}

enum coll_status coll_open(struct coll_handle *h, const char *key, size_t nkey, enum coll_type t,
                           bool create, int64_t now)
{
    uint64_t hv = item_hash(key, nkey);

    item_lock(hv);
    enum coll_status st = do_coll_open(h, key, nkey, hv, t, create, now);
    if (st != COLL_OK)
        item_unlock(hv);
    return st;
}

void *coll_root(struct coll_handle *h)
{
    return root_of(h->item);
}

void do_coll_close(struct coll_handle *h)
{
    struct item *it = h->item;

    if (it != NULL) {
        bool empty = coll_len(it) == 0;

        if (h->linked && empty)
            do_item_unlink(it, h->hv);
        else if (h->linked)
            do_item_bump(it, h->now);
        else if (!empty)
            do_item_link(it, h->hv);
        /* An unlinked (empty) collection is freed here, blocks and all. */
        item_put(it);
        h->item = NULL;
    }
}

void coll_close(struct coll_handle *h)
{
    do_coll_close(h);
    item_unlock(h->hv);
}

struct item *coll_rename(struct item *old, const char *key, size_t nkey, int64_t now)
{
    enum item_alloc_status st;
    struct item *it = item_alloc(key, nkey, item_flags(old), item_exptime(old), item_nbytes(old), now, &st);
    struct coll_blocks *ob = blocks_of(old);

    if (it == NULL)
        return NULL;
    memcpy(item_typed_root(it), ob, sizeof(struct coll_blocks) + COLL_ROOT_SIZE);
    item_iflags_set(it, ITEM_TYPED);
    /* The sweep reads a block's owner without a lock, then checks it again
     * under the owner's stripe, which we hold: an atomic store suffices. */
    for (uint32_t r = ob->head; r != 0;) {
        struct item *b = slab_ptr(r);

        __atomic_store_n(&b->h_next, slab_ref(it), __ATOMIC_RELAXED);
        r = b->flags;
    }
    memset(ob, 0, sizeof(*ob));
    memset(root_of(old), 0, COLL_ROOT_SIZE);
    return it;
}
