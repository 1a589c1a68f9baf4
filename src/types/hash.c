/*
 * Hash encodings (see hash.h): the listpack block and its conversion to an
 * adict. The listpack block is resized by copying into a new block (the
 * arena has no realloc); it grows by doubling so a run of inserts copies
 * O(n) bytes in all, and it shrinks when three quarters are unused.
 */
#include "types/hash.h"

#include <stdbool.h>
#include <string.h>

#define LP_MIN_CAP 64u

const char *hash_encoding(const struct hash_root *r)
{
    return r->enc == HASH_TABLE ? "hashtable" : "listpack";
}

/* ---- listpack: LEB128 length, bytes; field then value ---- */

static size_t varint_len(size_t n)
{
    size_t l = 1;

    while (n >= 0x80) {
        n >>= 7;
        l++;
    }
    return l;
}

static unsigned char *varint_put(unsigned char *p, size_t n)
{
    while (n >= 0x80) {
        *p++ = (unsigned char)(n | 0x80);
        n >>= 7;
    }
    *p++ = (unsigned char)n;
    return p;
}

static const unsigned char *varint_get(const unsigned char *p, size_t *n)
{
    size_t v = 0;
    unsigned shift = 0;

    while (*p & 0x80) {
        v |= (size_t)(*p++ & 0x7f) << shift;
        shift += 7;
    }
    *n = v | (size_t)*p++ << shift;
    return p;
}

static size_t entry_size(size_t flen, size_t vlen)
{
    return varint_len(flen) + flen + varint_len(vlen) + vlen;
}

/* One pair of the listpack, decoded. */
struct lp_entry {
    size_t off;             /* where the pair starts */
    size_t size;            /* bytes of the pair */
    const unsigned char *f, *v;
    size_t flen, vlen;
};

/* Decode the pair at off (< used). */
static void lp_decode(const unsigned char *base, size_t off, struct lp_entry *e)
{
    const unsigned char *p = base + off;

    e->off = off;
    p = varint_get(p, &e->flen);
    e->f = p;
    p = varint_get(p + e->flen, &e->vlen);
    e->v = p;
    e->size = (size_t)(p + e->vlen - (base + off));
}

static bool lp_find(struct arena *a, const struct hash_root *r, const void *f, size_t flen, struct lp_entry *e)
{
    if (r->lp == ARENA_NONE)
        return false;
    const unsigned char *base = arena_ptr(a, r->lp);
    for (size_t off = 0; off < r->lp_used; off += e->size) {
        lp_decode(base, off, e);
        if (e->flen == flen && (flen == 0 || memcmp(e->f, f, flen) == 0))
            return true;
    }
    return false;
}

/* A block of cap bytes holding the listpack: 0, or -1 (unchanged). */
static int lp_resize(struct arena *a, struct hash_root *r, size_t cap)
{
    uint32_t nb = arena_alloc(a, cap);

    if (nb == ARENA_NONE)
        return -1;
    if (r->lp != ARENA_NONE) {
        if (r->lp_used > 0)
            memcpy(arena_ptr(a, nb), arena_ptr(a, r->lp), r->lp_used);
        arena_free(a, r->lp, r->lp_cap);
    }
    r->lp = nb;
    r->lp_cap = (uint32_t)cap;
    return 0;
}

/* Room for `need` bytes in all: 0, or -1 (unchanged). */
static int lp_reserve(struct arena *a, struct hash_root *r, size_t need)
{
    if (r->lp != ARENA_NONE && need <= r->lp_cap)
        return 0;
    size_t cap = r->lp_cap > 0 ? (size_t)r->lp_cap * 2 : LP_MIN_CAP;
    if (cap < need)
        cap = need;
    if (cap > ARENA_ALLOC_MAX)
        cap = ARENA_ALLOC_MAX;
    return lp_resize(a, r, cap);
}

static void lp_free(struct arena *a, struct hash_root *r)
{
    if (r->lp != ARENA_NONE)
        arena_free(a, r->lp, r->lp_cap);
    r->lp = ARENA_NONE;
    r->lp_cap = r->lp_used = 0;
}

/* Replace the `old` bytes at off with a pair of the new sizes (room
 * reserved); returns where the pair goes. */
static unsigned char *lp_splice(struct arena *a, struct hash_root *r, size_t off, size_t old, size_t new_size)
{
    unsigned char *base = arena_ptr(a, r->lp);

    memmove(base + off + new_size, base + off + old, r->lp_used - off - old);
    r->lp_used = (uint32_t)(r->lp_used - old + new_size);
    return base + off;
}

static void lp_write(unsigned char *p, const void *f, size_t flen, const void *v, size_t vlen)
{
    p = varint_put(p, flen);
    if (flen > 0)
        memcpy(p, f, flen);
    p = varint_put(p + flen, vlen);
    if (vlen > 0)
        memcpy(p, v, vlen);
}

/* Build the dictionary from the listpack, plus field f (when not NULL) set
 * to v, and only then switch: the created flag, or -1 with the hash as it
 * was. */
static int convert_with(struct arena *a, struct hash_root *r, const void *f, size_t flen, const void *v,
                        size_t vlen)
{
    struct adict d;
    int created = 0;

    if (adict_init(a, &d) != 0)
        return -1;
    if (r->lp != ARENA_NONE) {
        const unsigned char *base = arena_ptr(a, r->lp);
        struct lp_entry e;
        for (size_t off = 0; off < r->lp_used; off += e.size) {
            lp_decode(base, off, &e);
            if (adict_set(a, &d, e.f, e.flen, e.v, e.vlen, NULL) == NULL)
                goto nomem;
        }
    }
    if (f != NULL && adict_set(a, &d, f, flen, v, vlen, &created) == NULL)
        goto nomem;
    lp_free(a, r);
    r->d = d;
    r->enc = HASH_TABLE;
    r->count = adict_count(&d);
    return created;
nomem:
    adict_free(a, &d);
    return -1;
}

int hash_convert(struct arena *a, struct hash_root *r)
{
    if (r->enc == HASH_TABLE)
        return 0;
    return convert_with(a, r, NULL, 0, NULL, 0) < 0 ? -1 : 0;
}

/* ---- operations ---- */

const void *hash_get(struct arena *a, struct hash_root *r, const void *f, size_t flen, size_t *vlen)
{
    if (r->enc == HASH_TABLE)
        return adict_get(a, &r->d, f, flen, vlen);
    struct lp_entry e;
    if (!lp_find(a, r, f, flen, &e))
        return NULL;
    *vlen = e.vlen;
    return e.v;
}

static int table_set(struct arena *a, struct hash_root *r, const void *f, size_t flen, const void *v, size_t vlen)
{
    int created;

    if (adict_set(a, &r->d, f, flen, v, vlen, &created) == NULL)
        return -1;
    r->count = adict_count(&r->d);
    return created;
}

int hash_set(struct arena *a, struct hash_root *r, const void *f, size_t flen, const void *v, size_t vlen,
             const struct hash_limits *lim)
{
    if (flen > HASH_KV_MAX || vlen > HASH_KV_MAX - flen)
        return -1;
    if (r->enc == HASH_TABLE)
        return table_set(a, r, f, flen, v, vlen);
    if (flen > lim->max_value || vlen > lim->max_value)
        goto convert;

    struct lp_entry e;
    size_t sz = entry_size(flen, vlen);
    if (lp_find(a, r, f, flen, &e)) {
        if ((size_t)r->lp_used - e.size + sz > ARENA_ALLOC_MAX)
            goto convert;
        if (sz > e.size && lp_reserve(a, r, (size_t)r->lp_used - e.size + sz) != 0)
            return -1;
        /* e's offset survives a resize; its pointers do not. */
        lp_write(lp_splice(a, r, e.off, e.size, sz), f, flen, v, vlen);
        return 0;
    }
    if ((uint64_t)r->count + 1 > lim->max_entries || (size_t)r->lp_used + sz > ARENA_ALLOC_MAX)
        goto convert;
    if (lp_reserve(a, r, (size_t)r->lp_used + sz) != 0)
        return -1;
    lp_write(lp_splice(a, r, r->lp_used, 0, sz), f, flen, v, vlen);
    r->count++;
    return 1;

convert:
    return convert_with(a, r, f, flen, v, vlen);
}

int hash_del(struct arena *a, struct hash_root *r, const void *f, size_t flen)
{
    if (r->enc == HASH_TABLE) {
        if (!adict_del(a, &r->d, f, flen))
            return 0;
        r->count = adict_count(&r->d);
        if (r->count == 0)
            hash_free(a, r);
        return 1;
    }
    struct lp_entry e;
    if (!lp_find(a, r, f, flen, &e))
        return 0;
    lp_splice(a, r, e.off, e.size, 0);
    r->count--;
    if (r->count == 0)
        lp_free(a, r);
    else if (r->lp_cap > 4 * LP_MIN_CAP && r->lp_used < r->lp_cap / 4)
        (void)lp_resize(a, r, (size_t)r->lp_cap / 2);     /* no memory: stay large */
    return 1;
}

void hash_free(struct arena *a, struct hash_root *r)
{
    if (r->enc == HASH_TABLE)
        adict_free(a, &r->d);
    lp_free(a, r);
    memset(r, 0, sizeof(*r));
}

void hash_foreach(struct arena *a, struct hash_root *r, adict_visit_fn fn, void *arg)
{
    if (r->enc == HASH_TABLE) {
        adict_foreach(a, &r->d, fn, arg);
        return;
    }
    if (r->lp == ARENA_NONE)
        return;
    const unsigned char *base = arena_ptr(a, r->lp);
    struct lp_entry e;
    for (size_t off = 0; off < r->lp_used; off += e.size) {
        lp_decode(base, off, &e);
        fn(arg, e.f, e.flen, e.v, e.vlen);
    }
}

uint64_t hash_scan(struct arena *a, struct hash_root *r, uint64_t cursor, adict_visit_fn fn, void *arg)
{
    if (r->enc == HASH_TABLE)
        return adict_scan(a, &r->d, cursor, fn, arg);
    hash_foreach(a, r, fn, arg);
    return 0;
}

int hash_random(struct arena *a, struct hash_root *r, uint64_t rnd, const void **f, size_t *flen,
                const void **v, size_t *vlen)
{
    if (r->count == 0)
        return -1;
    if (r->enc == HASH_TABLE)
        return adict_random(a, &r->d, rnd, f, flen, v, vlen);
    const unsigned char *base = arena_ptr(a, r->lp);
    struct lp_entry e;
    size_t off = 0;
    for (uint64_t i = rnd % r->count;; i--, off += e.size) {
        lp_decode(base, off, &e);
        if (i == 0)
            break;
    }
    *f = e.f;
    *flen = e.flen;
    *v = e.v;
    *vlen = e.vlen;
    return 0;
}
