/*
 * Warm restart (-e FILE, memcached's memory_file): item memory is a shared
 * mapping of FILE, so it outlives the process; on a clean stop the layout
 * is written to FILE.meta, and the next start with the same settings finds
 * every unexpired item again, with its flags, TTL and CAS.
 *
 * Chunk references are offsets in the region, so nothing in item memory
 * depends on where it is mapped. The metadata records what the region
 * cannot tell: the slab classes' page lists and carving points, and the
 * time base of the stored expiry times. The hash table is not saved: it is
 * rebuilt by walking every page (the hash seed is new each process).
 *
 * Trust: the metadata carries a version and an XXH64 checksum and must
 * match this start's memory limit, classes and CAS setting; it is removed as
 * soon as it is read, so a crash later cannot reuse it. Every item found is
 * checked (linked, sizes within its chunk, a chunk table whose value chunks
 * name it back) before it is linked. Anything wrong: the cache starts empty
 * (the file is cleared) and the reason is reported, never wrong data.
 */
#include "storage/restart.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "storage/assoc.h"
#include "storage/evict_int.h"
#include "storage/item.h"
#include "storage/slab.h"

#define META_MAGIC "KIOKUWR1"
#define META_VERSION 1u

struct meta_head {
    char magic[8];
    uint32_t version;
    uint32_t header_size;       /* item header bytes: records the CAS setting */
    uint64_t mem_limit;
    int64_t epoch_ms;           /* the time base of stored expiry times */
    struct slab_layout layout;
};

/* ---- encoding (pure) ---- */

size_t restart_meta_size(const struct slab_layout *l)
{
    size_t n = sizeof(struct meta_head) + sizeof(uint64_t);

    for (unsigned i = 1; i <= l->nclasses && i <= STORAGE_CLASS_MAX; i++)
        n += (size_t)l->npages[i] * sizeof(uint32_t);
    return n;
}

size_t restart_meta_encode(char *buf, const struct slab_layout *l, uint32_t *const *pages,
                           uint64_t mem_limit, uint32_t header_size, int64_t epoch_ms)
{
    struct meta_head h;
    size_t off = sizeof(h);
    uint64_t sum;

    memset(&h, 0, sizeof(h));
    memcpy(h.magic, META_MAGIC, sizeof(h.magic));
    h.version = META_VERSION;
    h.header_size = header_size;
    h.mem_limit = mem_limit;
    h.epoch_ms = epoch_ms;
    h.layout = *l;
    memcpy(buf, &h, sizeof(h));
    for (unsigned i = 1; i <= l->nclasses; i++) {
        memcpy(buf + off, pages[i], (size_t)l->npages[i] * sizeof(uint32_t));
        off += (size_t)l->npages[i] * sizeof(uint32_t);
    }
    sum = XXH64(buf, off, 0);
    memcpy(buf + off, &sum, sizeof(sum));
    return off + sizeof(sum);
}

int restart_meta_decode(const char *buf, size_t n, struct restart_meta *out, char *why,
                        size_t whylen)
{
    struct meta_head h;
    size_t off = sizeof(h), need;
    uint64_t sum;

    memset(out, 0, sizeof(*out));
    if (n < sizeof(h) + sizeof(sum)) {
        snprintf(why, whylen, "metadata truncated (%zu bytes)", n);
        return -1;
    }
    memcpy(&h, buf, sizeof(h));
    if (memcmp(h.magic, META_MAGIC, sizeof(h.magic)) != 0 || h.version != META_VERSION) {
        snprintf(why, whylen, "metadata of another format or version");
        return -1;
    }
    if (h.layout.nclasses < 1 || h.layout.nclasses > STORAGE_CLASS_MAX) {
        snprintf(why, whylen, "metadata names %u slab classes", h.layout.nclasses);
        return -1;
    }
    need = restart_meta_size(&h.layout);
    if (need != n) {
        snprintf(why, whylen, "metadata is %zu bytes, its header says %zu", n, need);
        return -1;
    }
    memcpy(&sum, buf + n - sizeof(sum), sizeof(sum));
    if (XXH64(buf, n - sizeof(sum), 0) != sum) {
        snprintf(why, whylen, "metadata checksum mismatch");
        return -1;
    }
    out->mem_limit = h.mem_limit;
    out->header_size = h.header_size;
    out->epoch_ms = h.epoch_ms;
    out->layout = h.layout;
    for (unsigned i = 1; i <= h.layout.nclasses; i++) {
        size_t bytes = (size_t)h.layout.npages[i] * sizeof(uint32_t);

        out->pages[i] = malloc(bytes + sizeof(uint32_t));
        if (out->pages[i] == NULL) {
            restart_meta_free(out);
            snprintf(why, whylen, "out of memory reading the metadata");
            return -1;
        }
        memcpy(out->pages[i], buf + off, bytes);
        off += bytes;
    }
    return 0;
}

void restart_meta_free(struct restart_meta *m)
{
    for (unsigned i = 0; i <= STORAGE_CLASS_MAX; i++) {
        free(m->pages[i]);
        m->pages[i] = NULL;
    }
}

int restart_meta_check(const struct restart_meta *m, const struct slab_layout *now,
                       uint64_t mem_limit, uint32_t header_size, char *why, size_t whylen)
{
    if (m->mem_limit != mem_limit) {
        snprintf(why, whylen, "memory limit was %llu bytes, now %llu",
                 (unsigned long long)m->mem_limit, (unsigned long long)mem_limit);
        return -1;
    }
    if (m->header_size != header_size) {
        snprintf(why, whylen, "CAS setting (-C) differs");
        return -1;
    }
    if (m->layout.region_bytes != now->region_bytes || m->layout.shift != now->shift ||
        m->layout.nclasses != now->nclasses ||
        memcmp(m->layout.chunk_size, now->chunk_size, sizeof(now->chunk_size)) != 0) {
        snprintf(why, whylen, "slab classes differ (-m, -n, -f or -I changed)");
        return -1;
    }
    if (m->layout.pages_taken * STORAGE_PAGE_SIZE > now->region_bytes) {
        snprintf(why, whylen, "metadata names pages beyond the memory file");
        return -1;
    }
    return 0;
}

/* ---- file I/O ---- */

static void meta_path(char *out, size_t n, const char *path)
{
    snprintf(out, n, "%s.meta", path);
}

int restart_meta_read(const char *path, struct restart_meta *out, char *why, size_t whylen)
{
    char mp[4096];
    FILE *f;
    long n;
    char *buf;
    int rc;

    meta_path(mp, sizeof(mp), path);
    f = fopen(mp, "rb");
    if (f == NULL) {
        snprintf(why, whylen, "no metadata (%s): the last stop was not clean or this is the "
                 "first start", mp);
        return -1;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0 ||
        (buf = malloc((size_t)n + 1)) == NULL) {
        fclose(f);
        snprintf(why, whylen, "cannot read %s", mp);
        unlink(mp);
        return -1;
    }
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        fclose(f);
        snprintf(why, whylen, "cannot read %s", mp);
        unlink(mp);
        return -1;
    }
    fclose(f);
    /* Used once: a crash after this start must not find it again. */
    unlink(mp);
    rc = restart_meta_decode(buf, (size_t)n, out, why, whylen);
    free(buf);
    return rc;
}

int restart_save(const char *path, uint64_t mem_limit, uint32_t header_size, int64_t epoch_ms,
                 char *err, size_t errlen)
{
    struct slab_layout l;
    uint32_t *pages[STORAGE_CLASS_MAX + 1] = {NULL};
    char mp[4096], tmp[4200];
    char *buf = NULL;
    size_t n;
    FILE *f = NULL;
    int rc = -1;

    slab_layout_get(&l);
    for (unsigned i = 1; i <= l.nclasses; i++) {
        pages[i] = malloc((size_t)l.npages[i] * sizeof(uint32_t) + sizeof(uint32_t));
        if (pages[i] == NULL)
            goto out;
        slab_pages_get(i, pages[i]);
    }
    buf = malloc(restart_meta_size(&l));
    if (buf == NULL)
        goto out;
    n = restart_meta_encode(buf, &l, pages, mem_limit, header_size, epoch_ms);
    if (slab_sync() != 0) {
        snprintf(err, errlen, "cannot flush the memory file: %s", strerror(errno));
        goto out;
    }
    meta_path(mp, sizeof(mp), path);
    snprintf(tmp, sizeof(tmp), "%s.tmp", mp);
    f = fopen(tmp, "wb");
    if (f == NULL || fwrite(buf, 1, n, f) != n || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    fclose(f);
    f = NULL;
    if (rename(tmp, mp) != 0) {
        snprintf(err, errlen, "cannot rename %s: %s", tmp, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (f != NULL)
        fclose(f);
    if (rc != 0 && err[0] == '\0')
        snprintf(err, errlen, "out of memory writing the metadata");
    free(buf);
    for (unsigned i = 0; i <= STORAGE_CLASS_MAX; i++)
        free(pages[i]);
    return rc;
}

/* ---- rebuilding the store ---- */

static void claim(void *chunk, unsigned id, size_t req, void *arg)
{
    struct item *c = chunk;

    (void)arg;
    slab_restore_chunk(id, chunk, true, req);
    /* Marks a value chunk, or a block of a collection, as owned for the
     * second pass (its freq is otherwise unused); item_restore_claim()
     * names both kinds. */
    if (item_iflags(c) & ITEM_VALUE)
        __atomic_store_n(&c->freq, 1, __ATOMIC_RELAXED);
}

struct rebuild {
    int64_t now;
    uint64_t items;
    uint64_t top;           /* highest CAS sequence restored */
};

/* Pass 1 on one chunk: link it if it is a whole, live item; forget it
 * otherwise. Value chunks wait for pass 2. */
static void relink(struct item *it, unsigned id, uint32_t size, struct rebuild *r)
{
    struct item *dup;
    uint64_t hv;

    if (item_iflags(it) & ITEM_VALUE)
        return;
    if (!item_restore_valid(it, id, size, r->now)) {
        __atomic_store_n(&it->iflags, 0, __ATOMIC_RELAXED);
        return;
    }
    hv = item_hash(item_key(it), it->nkey);
    item_lock(hv);
    dup = do_item_find(item_key(it), it->nkey, hv, r->now, NULL);
    if (dup == NULL) {
        if (item_cas(it) >> ASSOC_STRIPE_BITS > r->top)
            r->top = item_cas(it) >> ASSOC_STRIPE_BITS;
        do_item_link_restored(it, hv);
        item_restore_claim(it, claim, NULL);
        r->items++;
    } else {
        /* A key twice: a damaged file. Keep the first. */
        item_put(dup);
        __atomic_store_n(&it->iflags, 0, __ATOMIC_RELAXED);
    }
    item_unlock(hv);
}

/* Pass 2 on one chunk: free unless a linked item or a claimed value chunk. */
static void release(struct item *c, unsigned id, uint32_t size, struct rebuild *r)
{
    uint8_t f = item_iflags(c);

    (void)size;
    (void)r;
    if ((f & ITEM_VALUE) && __atomic_load_n(&c->freq, __ATOMIC_RELAXED) == 1) {
        __atomic_store_n(&c->freq, 0, __ATOMIC_RELAXED);
        return;
    }
    if ((f & ITEM_LINKED) && !(f & ITEM_VALUE))
        return;
    __atomic_store_n(&c->iflags, 0, __ATOMIC_RELAXED);
    slab_restore_chunk(id, c, false, 0);
}

/* Every carved chunk of every restored page, in order. */
static void each_chunk(const struct slab_layout *l,
                       void (*fn)(struct item *, unsigned, uint32_t, struct rebuild *),
                       struct rebuild *r)
{
    for (unsigned id = 1; id <= l->nclasses; id++) {
        uint32_t size = slab_chunk_size(id), per = slab_chunks_per_page(id);

        for (uint32_t p = 0; p < l->npages[id]; p++) {
            char *page = slab_class_page(id, p);
            uint32_t carved = p + 1 == l->npages[id] ? per - l->end_left[id] : per;

            for (uint32_t k = 0; k < carved; k++)
                fn((struct item *)(void *)(page + (size_t)k * size), id, size, r);
        }
    }
}

uint64_t restart_rebuild(const struct restart_meta *m, int64_t now)
{
    struct rebuild r = {now, 0, 0};

    each_chunk(&m->layout, relink, &r);
    assoc_cas_floor(r.top + 1);
    each_chunk(&m->layout, release, &r);
    return r.items;
}
