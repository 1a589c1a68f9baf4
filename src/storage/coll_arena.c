/*
 * The server's arena (types/arena.h): each block is a slab chunk of its own,
 * taken from the class that fits a 32-byte header plus the block, so
 * collections use the same memory, limit and eviction as every item. The
 * header marks the chunk ITEM_VALUE and names the collection's item as its
 * owner, exactly as a value chunk of a chunked item does: the eviction
 * sweep, page moves and warm restart treat both alike. The blocks of one
 * collection are a doubly-linked list through the header's nbytes (prev)
 * and flags (next) fields, headed in the item's value (struct coll_blocks),
 * so freeing the item frees them all and RENAME can re-point their owner.
 *
 * A reference is the chunk's slab reference; the block starts after the
 * header. Everything here runs under the owner's stripe lock (coll_open).
 */
#include "storage/coll.h"
#include "storage/item.h"
#include "storage/slab.h"
#include "types/arena.h"

#define BLOCK_HDR sizeof(struct item)

static struct item *block_at(uint32_t ref)
{
    return slab_ptr(ref);
}

uint32_t arena_alloc(struct arena *a, size_t n)
{
    struct coll_blocks *cb = a->blocks;
    struct item *b;
    uint32_t ref;

    if (n == 0 || n > ARENA_ALLOC_MAX)
        return ARENA_NONE;
    /* May evict from other stripes; ours is held, so the sweep skips this
     * very collection (it only trylocks). */
    b = item_block_alloc(n, a->owner, a->now);
    if (b == NULL)
        return ARENA_NONE;
    ref = slab_ref(b);
    b->nbytes = 0;
    b->flags = cb->head;
    if (cb->head != 0)
        block_at(cb->head)->nbytes = ref;
    cb->head = ref;
    cb->count++;
    cb->bytes += slab_chunk_size(item_clsid(b));
    return ref;
}

void arena_free(struct arena *a, uint32_t ref, size_t n)
{
    struct coll_blocks *cb = a->blocks;
    struct item *b = block_at(ref);

    (void)n;    /* the header keeps the size */
    if (b->nbytes != 0)
        block_at(b->nbytes)->flags = b->flags;
    else
        cb->head = b->flags;
    if (b->flags != 0)
        block_at(b->flags)->nbytes = b->nbytes;
    cb->count--;
    cb->bytes -= slab_chunk_size(item_clsid(b));
    item_block_free(b);
}

void *arena_ptr(const struct arena *a, uint32_t ref)
{
    (void)a;
    return (char *)slab_ptr(ref) + BLOCK_HDR;
}

size_t arena_bytes(const struct arena *a)
{
    return (size_t)a->blocks->bytes;
}
