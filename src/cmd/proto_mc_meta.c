/*
 * memcached meta commands: mg, ms, md, ma, mn, me.
 *
 * Each command parses its flags with mc_meta_parse(), then does all of its
 * reading and changing of the item under the key's stripe lock
 * (item_lock(hv) + the do_item_* primitives), so that what a client is told
 * matches one consistent state of the item. That is what makes the
 * stampede protection hold: the W ("you won, recache it") flag is decided
 * and recorded (ITEM_TOKEN) in the same critical section, so of any number
 * of concurrent clients exactly one sees W for an item until the item is
 * replaced or invalidated again; the others see Z (and X while stale).
 *
 *   mg N<ttl>   miss: link an empty item with that TTL, the creator wins.
 *   mg R<ttl>   hit with less TTL left than the token: first client wins.
 *   md I        mark stale (new CAS, optional T): readers get X, one gets W.
 *   ms I C<cas> a CAS older than the item's stores the value but keeps it
 *               stale (X), so a late writer cannot end the invalidation.
 *
 * Replies follow memcached 1.6.45 byte for byte, including the order of
 * the W/X/Z flags (Z, X, W) and which replies 'q' hides: EN of mg; HD of
 * ms and md; HD and VA of ma. Errors are never hidden.
 *
 * The reply line is formatted straight into the connection's output
 * buffer and values are sent from the item without copying; nothing here
 * allocates except items (slab memory).
 */
#include "cmd/proto_mc_meta.h"

#include <string.h>

#include "cmd/cmd_util.h"
#include "cmd/mc_watch.h"
#include "config/settings.h"
#include "stats/stats.h"
#include "storage/item.h"
#include "util/base64.h"
#include "util/clock.h"
#include "util/fmt.h"

static const struct settings *settings;   /* read-only after setup */

static enum proc_result meta_get(struct conn *c, const struct mc_meta_req *r);
static enum proc_result meta_set(struct conn *c, void *state, const struct mc_meta_req *r);
static enum proc_result null_get(struct conn *c, const struct mc_meta_req *r);
static enum proc_result null_set(struct conn *c, void *state, const struct mc_meta_req *r);

/* mg and ms as chosen at setup: the real ones, or -o null_storage's. */
static enum proc_result (*run_mg)(struct conn *c, const struct mc_meta_req *r) = meta_get;
static enum proc_result (*run_ms)(struct conn *c, void *state,
                                  const struct mc_meta_req *r) = meta_set;

void proto_mc_meta_setup(const struct settings *s)
{
    settings = s;
    run_mg = s->null_storage ? null_get : meta_get;
    run_ms = s->null_storage ? null_set : meta_set;
}

/* What an ms keeps while its data block is read: the line is gone by then. */
struct ms_state {
    uint64_t compare_cas;
    uint64_t new_cas;
    uint32_t flags;                      /* MC_META_F_* */
    uint8_t mode;                        /* enum mc_meta_mode */
    uint8_t nret;
    uint8_t nopaque;
    uint8_t pad_;
    char ret[MC_META_RET_MAX];
    char opaque[MC_META_OPAQUE_MAX];
};
_Static_assert(sizeof(struct ms_state) <= PROTO_MC_META_STATE, "ms state too large");

/* Bits of mc_meta_vals.have for every value a hit can report. */
#define HIT_VALUES (MC_META_F_RET_CAS | MC_META_F_RET_FLAGS | MC_META_F_RET_HIT | \
                    MC_META_F_RET_ACCESS | MC_META_F_RET_SIZE | MC_META_F_RET_TTL)
/* Longest status line: code, size, flags, " Z X W", CRLF. */
#define META_LINE_MAX (2 + 1 + 20 + MC_META_FLAGS_OUT_MAX + 6 + 2)

/* ---- item helpers (caller holds the item's stripe unless noted) ---- */

static uint64_t visible_cas(uint64_t cas)
{
    return settings->storage.use_cas ? cas : 0;
}

/* Remaining TTL in whole seconds, rounded up (a TTL just set reads back as
 * given); -1 for an item that never expires. No lock needed. */
static int64_t ttl_of(int64_t exptime, int64_t now)
{
    if (exptime == 0)
        return -1;
    if (exptime <= now)
        return 0;
    return (exptime - now + 999) / 1000;
}

/* Seconds since the item was last accessed. */
static int64_t last_access_of(const struct item *it, int64_t now)
{
    return item_idle_seconds(it, now);
}

/*
 * Give a linked item a new CAS without copying it: take it out of the
 * table and link it again (do_item_link assigns a fresh CAS). Nobody can
 * see the gap: the stripe is held. The caller's reference keeps the item
 * alive while the table's is dropped. With E the client's value is used.
 */
static void recas(struct item *it, uint64_t hv, const struct mc_meta_req *r)
{
    do_item_unlink(it, hv);
    do_item_link(it, hv);
    if (r->flags & MC_META_F_NEW_CAS)
        item_set_cas(it, r->new_cas);
}

/* Copy n bytes of src's value into dst's value at doff (no lock needed:
 * src is referenced and values do not change while shared). */
static void copy_value(struct item *dst, size_t doff, struct item *src, size_t n)
{
    struct iovec iov[8];
    size_t done = 0;

    while (done < n) {   /* each pass copies at least one segment */
        int cnt = item_value_iov(src, done, iov, 8);
        if (cnt <= 0)
            return;
        for (int i = 0; i < cnt && done < n; i++) {
            size_t len = iov[i].iov_len < n - done ? iov[i].iov_len : n - done;
            item_value_write(dst, doff + done, iov[i].iov_base, len);
            done += len;
        }
    }
}

/* ---- replies ---- */

/*
 * Queue "<code>[ <size>]<flags>[ Z][ X][ W]\r\n". The flags come from
 * mc_meta_compose_flags() in request order; extra holds MC_META_F_WON /
 * _STALE / _WIN_SENT, written in memcached's order.
 */
static void out_status(struct conn *c, const char *code, const uint64_t *size,
                       const struct mc_meta_req *r, const struct mc_meta_vals *v,
                       uint32_t extra)
{
    char *p = conn_out_reserve(c, META_LINE_MAX);
    size_t n = 2;

    if (p == NULL)
        return;
    memcpy(p, code, 2);
    if (size != NULL) {
        p[n++] = ' ';
        n += fmt_u64(p + n, *size);
    }
    n += mc_meta_compose_flags(p + n, MC_META_FLAGS_OUT_MAX, r, v);
    if (extra & MC_META_F_WIN_SENT) {
        memcpy(p + n, " Z", 2);
        n += 2;
    }
    if (extra & MC_META_F_STALE) {
        memcpy(p + n, " X", 2);
        n += 2;
    }
    if (extra & MC_META_F_WON) {
        memcpy(p + n, " W", 2);
        n += 2;
    }
    memcpy(p + n, "\r\n", 2);
    conn_out_commit(c, n + 2);
}

/* A reply with no item values: only k and O are echoed. */
static void out_code(struct conn *c, const char *code, const struct mc_meta_req *r)
{
    const struct mc_meta_vals none = { 0 };
    out_status(c, code, NULL, r, &none, 0);
}

static void out_line(struct conn *c, const char *s)
{
    conn_out(c, s, strlen(s));
    conn_out(c, "\r\n", 2);
}

/* ---- mg ---- */

struct mg_result {
    struct mc_meta_vals v;
    uint32_t extra;     /* W / X / Z */
    bool created;
};

/* Miss with N: link an empty item with the N TTL (and E's CAS). Returns
 * our reference, or NULL when no memory could be had (a plain miss). */
static struct item *mg_vivify(struct conn *c, const struct mc_meta_req *r, uint64_t hv)
{
    enum item_alloc_status why;
    int64_t exptime = item_exptime_from_seconds(r->vivify_ttl, c->now);
    struct item *it = item_alloc(r->key, r->nkey, 0, exptime, 0, c->now, &why);

    if (it == NULL)
        return NULL;
    do_item_link(it, hv);
    if (r->flags & MC_META_F_NEW_CAS)
        item_set_cas(it, r->new_cas);
    return it;
}

/* A hit (or a just-vivified item): apply T, decide W/X/Z, read the values
 * to return, bump. Stripe held: the win decision is atomic. */
static void mg_hit_locked(struct conn *c, const struct mc_meta_req *r, struct item *it,
                          uint64_t hv, struct mg_result *o)
{
    uint8_t f = item_iflags(it);
    bool won = o->created;

    /* h and l report the state before this command touched the item. */
    o->v.hit_before = (f & ITEM_FETCHED) != 0;
    o->v.last_access = last_access_of(it, c->now);
    if (r->flags & MC_META_F_TTL)
        do_item_set_exptime(it, hv, item_exptime_from_seconds(r->ttl, c->now));
    if ((r->flags & MC_META_F_RECACHE) && !(f & ITEM_TOKEN) && !o->created &&
        item_exptime(it) != 0 && item_exptime(it) < item_exptime_from_seconds(r->recache_ttl, c->now))
        won = true;
    if (f & ITEM_TOKEN)
        o->extra |= MC_META_F_WIN_SENT;
    if (f & ITEM_STALE) {
        o->extra |= MC_META_F_STALE;
        if (!(f & ITEM_TOKEN))
            won = true;
    }
    if (won) {
        o->extra |= MC_META_F_WON;
        item_iflags_set(it, ITEM_TOKEN);
    }
    o->v.have = HIT_VALUES;
    o->v.cas = visible_cas(item_cas(it));
    o->v.client_flags = item_flags(it);
    o->v.size = item_nbytes(it);
    o->v.ttl = ttl_of(item_exptime(it), c->now);
    if (!(r->flags & MC_META_F_NO_BUMP))
        do_item_bump(it, c->now);
}

static void mg_count(struct conn *c, const struct mc_meta_req *r, bool hit, enum item_miss miss)
{
    if (r->flags & MC_META_F_TTL) {
        STAT_INC(c->stats, cmd_touch);
        if (hit)
            STAT_INC(c->stats, touch_hits);
        else
            STAT_INC(c->stats, touch_misses);
        return;
    }
    STAT_INC(c->stats, cmd_get);
    if (hit) {
        STAT_INC(c->stats, get_hits);
        return;
    }
    STAT_INC(c->stats, get_misses);
    if (miss == ITEM_MISS_EXPIRED)
        STAT_INC(c->stats, get_expired);
    else if (miss == ITEM_MISS_FLUSHED)
        STAT_INC(c->stats, get_flushed);
}

static enum proc_result meta_get(struct conn *c, const struct mc_meta_req *r)
{
    uint64_t hv = item_hash(r->key, r->nkey);
    struct mg_result o = { .extra = 0 };
    enum item_miss miss = ITEM_MISS_NONE;
    struct item *it;

    item_lock(hv);
    it = do_item_find(r->key, r->nkey, hv, c->now, &miss);
    bool typed = it != NULL && item_is_typed(it);
    if (typed) {
        /* A collection reads as a miss, and N must not create beside it. */
        item_put(it);
        it = NULL;
        miss = ITEM_MISS_ABSENT;
    }
    if (it == NULL && !typed && (r->flags & MC_META_F_VIVIFY)) {
        it = mg_vivify(c, r, hv);
        o.created = it != NULL;
    }
    if (it != NULL)
        mg_hit_locked(c, r, it, hv, &o);
    item_unlock(hv);
    if (watch_on(WATCH_FETCHERS))
        mc_watch_fetch(c, r->key, r->nkey, o.created ? NULL : it, miss);

    mg_count(c, r, it != NULL && !o.created, miss);
    if (it == NULL) {
        if (!(r->flags & MC_META_F_QUIET))
            out_code(c, "EN", r);
        return PROC_MORE;
    }
    /* memcached 1.6.45: C<cas> on mg means "I hold this version": when it
     * matches, the value is left out and the status is HD. */
    bool same_cas = (r->flags & MC_META_F_COMPARE_CAS) && item_cas(it) == r->compare_cas;
    if ((r->flags & MC_META_F_RET_VALUE) && !same_cas) {
        uint64_t size = item_nbytes(it);
        out_status(c, "VA", &size, r, &o.v, o.extra);
        conn_out_item(c, it, 0, (size_t)item_nbytes(it) + 2);
    } else {
        out_status(c, "HD", NULL, r, &o.v, o.extra);
    }
    item_put(it);
    return PROC_MORE;
}

/* ---- ms ---- */

static struct ms_state *ms_state_of(void *state)
{
    return (struct ms_state *)state;
}

/* A value that cannot be stored: answer, drop any older value (a failed
 * set must not leave stale data readable), skip the data block. */
static enum proc_result ms_refuse(struct conn *c, const struct mc_meta_req *r,
                                  enum item_alloc_status why)
{
    if (why == ITEM_ALLOC_TOO_LARGE) {
        STAT_INC(c->stats, store_too_large);
        out_line(c, "SERVER_ERROR object too large for cache");
    } else {
        STAT_INC(c->stats, store_no_memory);
        out_line(c, "SERVER_ERROR out of memory storing object");
    }
    item_delete(r->key, r->nkey, 0, c->now);
    conn_swallow(c, (size_t)r->datalen + 2);
    return PROC_NREAD;
}

static enum proc_result meta_set(struct conn *c, void *state, const struct mc_meta_req *r)
{
    struct ms_state *st = ms_state_of(state);
    enum item_alloc_status why = ITEM_ALLOC_TOO_LARGE;
    int64_t exptime = 0;
    struct item *it;

    STAT_INC(c->stats, cmd_set);
    if (r->datalen > settings->storage.item_size_max)
        return ms_refuse(c, r, why);
    if (r->flags & MC_META_F_TTL)
        exptime = item_exptime_from_seconds(r->ttl, c->now);
    if ((r->flags & MC_META_F_VIVIFY) &&
        (r->mode == MC_META_MODE_APPEND || r->mode == MC_META_MODE_PREPEND))
        exptime = item_exptime_from_seconds(r->vivify_ttl, c->now);
    it = item_alloc(r->key, r->nkey, r->client_flags, exptime, r->datalen, c->now, &why);
    if (it == NULL)
        return ms_refuse(c, r, why);

    memset(st, 0, sizeof(*st));
    st->compare_cas = r->compare_cas;
    st->new_cas = r->new_cas;
    st->flags = r->flags;
    st->mode = (uint8_t)r->mode;
    st->nret = r->nret;
    memcpy(st->ret, r->ret, r->nret);
    st->nopaque = r->nopaque;
    if (r->nopaque > 0)   /* r->opaque is NULL without an O flag */
        memcpy(st->opaque, r->opaque, r->nopaque);
    if (conn_read_value(c, it, (size_t)r->datalen + 2))
        return proto_mc_meta_set_done(c, state);
    return PROC_NREAD;
}

/* Append/prepend it to old into a new item linked in old's place. */
static enum item_result ms_concat(struct item *old, struct item *it, bool append,
                                  uint64_t hv, int64_t now, struct item **linked)
{
    enum item_alloc_status why;
    size_t n = (size_t)item_nbytes(old) + item_nbytes(it);
    struct item *nit = item_alloc(item_key(old), item_nkey(old), item_flags(old), item_exptime(old),
                                  n, now, &why);

    if (nit == NULL)
        return why == ITEM_ALLOC_TOO_LARGE ? ITEM_TOO_LARGE : ITEM_NOMEM;
    copy_value(nit, append ? 0 : item_nbytes(it), old, item_nbytes(old));
    copy_value(nit, append ? item_nbytes(old) : 0, it, item_nbytes(it));
    do_item_replace(old, nit, hv);
    *linked = nit;          /* our allocation reference moves to the caller */
    return ITEM_STORED;
}

/*
 * memcached's store decision for ms. Stripe held; old is the live item
 * (referenced) or NULL. On ITEM_STORED *linked is the item now in the
 * table, referenced for the caller (it itself gets an extra reference).
 */
static enum item_result ms_store_locked(const struct ms_state *st, struct item *it,
                                        struct item *old, uint64_t hv, int64_t now,
                                        struct item **linked)
{
    bool has_cas = st->flags & MC_META_F_COMPARE_CAS;

    /* A hash or sorted set is no memcached value: a plain set overwrites
     * it and add finds the key taken; anything else sees no item, and must
     * not create one beside it (N). */
    if (old != NULL && item_is_typed(old) && st->mode != MC_META_MODE_ADD &&
        (st->mode != MC_META_MODE_SET || has_cas))
        return has_cas ? ITEM_NOT_FOUND : ITEM_NOT_STORED;
    switch ((enum mc_meta_mode)st->mode) {
    case MC_META_MODE_ADD:
        if (old != NULL) {
            do_item_bump(old, now);
            return ITEM_NOT_STORED;
        }
        break;
    case MC_META_MODE_APPEND:
    case MC_META_MODE_PREPEND:
        if (old == NULL) {
            if (st->flags & MC_META_F_VIVIFY)
                break;  /* N: create from this value with the N TTL */
            return ITEM_NOT_STORED;
        }
        if (has_cas && item_cas(old) != st->compare_cas)
            return ITEM_EXISTS;
        return ms_concat(old, it, st->mode == MC_META_MODE_APPEND, hv, now, linked);
    case MC_META_MODE_REPLACE:
        if (!has_cas && old == NULL)
            return ITEM_NOT_STORED;
        /* With C, replace works as a cas. */
        /* fall through */
    default:
        if (!has_cas)
            break;
        if (old == NULL)
            return ITEM_NOT_FOUND;
        if (item_cas(old) == st->compare_cas)
            break;
        /* I: an older CAS still stores, but the item stays invalid. */
        if (!(st->flags & MC_META_F_INVALIDATE) || st->compare_cas > item_cas(old))
            return ITEM_EXISTS;
        item_set_exptime_unlinked(it, item_exptime(old));
        item_iflags_set(it, (uint8_t)(ITEM_STALE | (item_iflags(old) & ITEM_TOKEN)));
        break;
    }
    do_item_replace(old, it, hv);
    item_incref(it);
    *linked = it;
    return ITEM_STORED;
}

static enum item_result ms_store(const struct ms_state *st, struct item *it, int64_t now,
                                 uint64_t *cas, uint64_t *size)
{
    uint64_t hv = item_hash(item_key(it), item_nkey(it));
    struct item *old, *linked = NULL;
    enum item_result res;

    item_lock(hv);
    old = do_item_find(item_key(it), item_nkey(it), hv, now, NULL);
    res = ms_store_locked(st, it, old, hv, now, &linked);
    if (linked != NULL) {
        if (st->flags & MC_META_F_NEW_CAS)
            item_set_cas(linked, st->new_cas);
        *cas = item_cas(linked);
        *size = item_nbytes(linked);
    }
    item_unlock(hv);
    if (old != NULL)
        item_put(old);
    if (linked != NULL)
        item_put(linked);
    return res;
}

static void ms_reply(struct conn *c, const struct ms_state *st, struct item *it,
                     enum item_result res, uint64_t cas, uint64_t size)
{
    char keytok[BASE64_ENCODED_LEN(MC_META_KEY_MAX)];
    struct mc_meta_req r;
    struct mc_meta_vals v = { .have = MC_META_F_RET_CAS | MC_META_F_RET_SIZE };
    const char *code = "NS";

    memset(&r, 0, sizeof(r));
    r.flags = st->flags;
    r.nret = st->nret;
    memcpy(r.ret, st->ret, st->nret);
    r.opaque = st->opaque;
    r.nopaque = st->nopaque;
    /* k echoes the key; a binary key is sent back in base64, as it came. */
    r.key_token = item_key(it);
    r.nkey_token = item_nkey(it);
    if (st->flags & MC_META_F_BASE64) {
        r.nkey_token = base64_encode(keytok, sizeof(keytok), item_key(it), item_nkey(it));
        r.key_token = keytok;
    }
    v.cas = res == ITEM_STORED ? visible_cas(cas) : 0;
    v.size = res == ITEM_STORED ? size : item_nbytes(it);
    switch (res) {
    case ITEM_STORED:
        if (st->flags & MC_META_F_QUIET)
            return;
        code = "HD";
        break;
    case ITEM_EXISTS: code = "EX"; break;
    case ITEM_NOT_FOUND: code = "NF"; break;
    case ITEM_TOO_LARGE:
        STAT_INC(c->stats, store_too_large);
        out_line(c, "SERVER_ERROR object too large for cache");
        return;
    case ITEM_NOMEM:
        STAT_INC(c->stats, store_no_memory);
        out_line(c, "SERVER_ERROR out of memory storing object");
        return;
    default: break;
    }
    out_status(c, code, NULL, &r, &v, 0);
}

static enum watch_store_cmd watch_cmd_of_mode(uint8_t mode)
{
    switch (mode) {
    case MC_META_MODE_ADD: return WATCH_CMD_ADD;
    case MC_META_MODE_APPEND: return WATCH_CMD_APPEND;
    case MC_META_MODE_PREPEND: return WATCH_CMD_PREPEND;
    case MC_META_MODE_REPLACE: return WATCH_CMD_REPLACE;
    default: return WATCH_CMD_SET;
    }
}

enum proc_result proto_mc_meta_set_done(struct conn *c, void *state)
{
    const struct ms_state *st = ms_state_of(state);
    struct item *it = conn_take_value(c);
    char crlf[2] = { 0, 0 };
    uint64_t cas = 0, size = 0;
    enum item_result res;

    item_value_read(it, item_nbytes(it), crlf, 2);
    if (crlf[0] != '\r' || crlf[1] != '\n') {
        out_line(c, "CLIENT_ERROR bad data chunk");
        item_put(it);
        return PROC_MORE;
    }
    if (watch_on(WATCH_FETCHERS)) {   /* memcached reports a store's lookup */
        unsigned cls;
        uint32_t osize;
        mc_watch_peek(c, item_key(it), item_nkey(it), &cls, &osize);
    }
    res = ms_store(st, it, c->now, &cas, &size);
    if (watch_on(WATCH_MUTATIONS))
        mc_watch_store(c, it, res, watch_cmd_of_mode(st->mode));
    STAT_SLAB_INC(c->stats, item_class_id(it), cmd_set);
    if (st->flags & MC_META_F_COMPARE_CAS)
        cmd_count_cas_cls(c, res, item_class_id(it));
    ms_reply(c, st, it, res, cas, size);
    item_put(it);
    return PROC_MORE;
}

/* ---- md ---- */

/* x: put an empty item (flags 0, TTL from T or none) in old's place,
 * keeping old's CAS unless E gives one. Returns it referenced, or NULL. */
static struct item *md_drop_value(struct conn *c, const struct mc_meta_req *r,
                                  struct item *old, uint64_t hv)
{
    enum item_alloc_status why;
    int64_t exptime = (r->flags & MC_META_F_TTL) ? item_exptime_from_seconds(r->ttl, c->now) : 0;
    struct item *nit = item_alloc(r->key, r->nkey, 0, exptime, 0, c->now, &why);

    if (nit == NULL)
        return NULL;
    do_item_replace(old, nit, hv);
    item_set_cas(nit, (r->flags & MC_META_F_NEW_CAS) ? r->new_cas : item_cas(old));
    return nit;
}

/* Stripe held, it live and referenced. Returns the reply code, or NULL
 * after queueing an error. May replace *itp (x). */
static const char *md_locked(struct conn *c, const struct mc_meta_req *r, struct item **itp,
                             uint64_t hv)
{
    struct item *it = *itp;

    if ((r->flags & MC_META_F_COMPARE_CAS) && item_cas(it) != r->compare_cas)
        return "EX";
    if (r->flags & MC_META_F_DROP_VALUE) {
        struct item *nit = md_drop_value(c, r, it, hv);
        if (nit == NULL)
            return NULL;
        item_put(it);
        *itp = it = nit;
    }
    if (r->flags & MC_META_F_INVALIDATE) {
        /* Stale, not gone: readers keep the value, the next one wins. */
        if (r->flags & MC_META_F_TTL)
            do_item_set_exptime(it, hv, item_exptime_from_seconds(r->ttl, c->now));
        item_iflags_set(it, ITEM_STALE);
        item_iflags_clear(it, ITEM_TOKEN);
        recas(it, hv, r);
    } else if (!(r->flags & MC_META_F_DROP_VALUE)) {
        do_item_unlink(it, hv);
    }
    return "HD";
}

static enum proc_result meta_delete(struct conn *c, const struct mc_meta_req *r)
{
    uint64_t hv = item_hash(r->key, r->nkey);
    const char *code = "NF";
    struct item *it;

    unsigned cls = 0;
    uint32_t size = 0;
    enum item_miss miss = ITEM_MISS_ABSENT;

    item_lock(hv);
    it = do_item_find(r->key, r->nkey, hv, c->now, &miss);
    if (it != NULL) {   /* for a watcher's line: md x replaces it */
        cls = item_class_id(it);
        size = item_nbytes(it);
    }
    if (watch_on(WATCH_FETCHERS))
        mc_watch_fetch(c, r->key, r->nkey, it, miss);
    if (it != NULL && item_is_typed(it)) {
        /* Deleted like any key, but never kept as a stale string (I). */
        do_item_unlink(it, hv);
        code = "HD";
    } else if (it != NULL) {
        code = md_locked(c, r, &it, hv);
    }
    item_unlock(hv);
    if (it != NULL)
        item_put(it);

    if (code == NULL) {
        out_line(c, "SERVER_ERROR out of memory");
        return PROC_MORE;
    }
    /* A deletion, unless I only marked the item stale. */
    if (code[0] == 'H' && !(r->flags & MC_META_F_INVALIDATE) && watch_on(WATCH_DELETIONS))
        watch_deletion(r->key, r->nkey, "md", cls, size);
    if (code[0] == 'H')
        STAT_INC(c->stats, delete_hits);
    else
        STAT_INC(c->stats, delete_misses);
    if (code[0] == 'H' && (r->flags & MC_META_F_QUIET))
        return PROC_MORE;
    out_code(c, code, r);
    return PROC_MORE;
}

/* ---- ma ---- */

/* Link an item holding the decimal v under the key (in place of old when
 * old != NULL). Returns it referenced, or NULL when out of memory. */
static struct item *ma_put_number(struct conn *c, const struct mc_meta_req *r, struct item *old,
                                  uint64_t v, int64_t exptime, uint64_t hv)
{
    enum item_alloc_status why;
    char num[20];
    size_t len = fmt_u64(num, v);
    struct item *nit = item_alloc(r->key, r->nkey, old != NULL ? item_flags(old) : 0,
                                  old != NULL ? item_exptime(old) : exptime, len, c->now, &why);

    if (nit == NULL)
        return NULL;
    item_value_write(nit, 0, num, len);
    do_item_replace(old, nit, hv);
    return nit;
}

struct ma_result {
    enum item_result res;
    uint64_t value;
    struct item *cur;      /* the item holding the new value, referenced */
};

static void ma_locked(struct conn *c, const struct mc_meta_req *r, struct item *it,
                      uint64_t hv, struct ma_result *o)
{
    bool incr = r->mode != MC_META_MODE_DECR;
    uint64_t v;

    if (it == NULL) {
        o->res = ITEM_NOT_FOUND;
        if (!(r->flags & MC_META_F_VIVIFY))
            return;
        o->value = r->initial;
        o->cur = ma_put_number(c, r, NULL, r->initial,
                               item_exptime_from_seconds(r->vivify_ttl, c->now), hv);
        o->res = o->cur != NULL ? ITEM_DELTA_OK : ITEM_NOT_STORED;
    } else if ((r->flags & MC_META_F_COMPARE_CAS) && item_cas(it) != r->compare_cas) {
        o->res = ITEM_EXISTS;
        return;
    } else if (!item_parse_u64(it, &v)) {
        o->res = ITEM_NON_NUMERIC;
        return;
    } else {
        if (incr)
            v += r->delta;              /* wraps mod 2^64 */
        else
            v = v < r->delta ? 0 : v - r->delta;
        o->value = v;
        o->cur = ma_put_number(c, r, it, v, 0, hv);
        o->res = o->cur != NULL ? ITEM_DELTA_OK : ITEM_NOMEM;
    }
    if (o->cur == NULL)
        return;
    if (r->flags & MC_META_F_TTL)
        do_item_set_exptime(o->cur, hv, item_exptime_from_seconds(r->ttl, c->now));
    if (r->flags & MC_META_F_NEW_CAS)
        item_set_cas(o->cur, r->new_cas);
}

static void ma_count(struct conn *c, const struct mc_meta_req *r, enum item_result res)
{
    bool incr = r->mode != MC_META_MODE_DECR;

    if (res == ITEM_NOT_FOUND) {
        if (incr)
            STAT_INC(c->stats, incr_misses);
        else
            STAT_INC(c->stats, decr_misses);
    } else if (res == ITEM_DELTA_OK) {
        if (incr)
            STAT_INC(c->stats, incr_hits);
        else
            STAT_INC(c->stats, decr_hits);
    }
}

static enum proc_result meta_arith(struct conn *c, const struct mc_meta_req *r)
{
    uint64_t hv = item_hash(r->key, r->nkey);
    struct ma_result o = { .res = ITEM_NOT_FOUND, .value = 0, .cur = NULL };
    struct mc_meta_vals v = { .have = 0 };
    struct item *it;

    item_lock(hv);
    it = do_item_find(r->key, r->nkey, hv, c->now, NULL);
    if (it == NULL || !item_is_typed(it))
        ma_locked(c, r, it, hv, &o);   /* a collection: NF, never created beside */
    if (o.cur != NULL) {
        v.have = MC_META_F_RET_CAS | MC_META_F_RET_TTL;
        v.cas = visible_cas(item_cas(o.cur));
        v.ttl = ttl_of(item_exptime(o.cur), c->now);
    }
    item_unlock(hv);
    if (it != NULL)
        item_put(it);
    if (o.cur != NULL)
        item_put(o.cur);

    ma_count(c, r, o.res);
    switch (o.res) {
    case ITEM_DELTA_OK:
        if (r->flags & MC_META_F_QUIET)
            break;
        if (r->flags & MC_META_F_RET_VALUE) {
            char num[22];
            uint64_t len = fmt_u64(num, o.value);
            out_status(c, "VA", &len, r, &v, 0);
            memcpy(num + len, "\r\n", 2);
            conn_out(c, num, (size_t)len + 2);
        } else {
            out_status(c, "HD", NULL, r, &v, 0);
        }
        break;
    case ITEM_NOT_FOUND: out_code(c, "NF", r); break;
    case ITEM_EXISTS: out_code(c, "EX", r); break;
    case ITEM_NOT_STORED: out_code(c, "NS", r); break;
    case ITEM_NON_NUMERIC:
        out_line(c, "CLIENT_ERROR cannot increment or decrement non-numeric value");
        break;
    default: out_line(c, "SERVER_ERROR out of memory"); break;
    }
    return PROC_MORE;
}

/* ---- me, mn ---- */

static enum proc_result meta_debug(struct conn *c, const struct mc_meta_req *r)
{
    char line[64 + BASE64_ENCODED_LEN(MC_META_KEY_MAX) + 6 * 24];
    uint64_t hv = item_hash(r->key, r->nkey);
    struct item *it;
    size_t n;

    item_lock(hv);
    it = do_item_find_value(r->key, r->nkey, hv, c->now, NULL);
    item_unlock(hv);
    if (it == NULL) {
        CONN_OUT_LIT(c, "EN\r\n");
        return PROC_MORE;
    }
    memcpy(line, "ME ", 3);
    n = 3;
    if (r->flags & MC_META_F_BASE64) {
        n += base64_encode(line + n, sizeof(line) - n, item_key(it), item_nkey(it));
    } else {
        memcpy(line + n, item_key(it), item_nkey(it));
        n += item_nkey(it);
    }
    memcpy(line + n, " exp=", 5);
    n += 5;
    n += fmt_i64(line + n, ttl_of(item_exptime(it), c->now));
    memcpy(line + n, " la=", 4);
    n += 4;
    n += fmt_i64(line + n, last_access_of(it, c->now));
    memcpy(line + n, " cas=", 5);
    n += 5;
    n += fmt_u64(line + n, visible_cas(item_cas(it)));
    if (item_iflags(it) & ITEM_FETCHED) {
        memcpy(line + n, " fetch=yes", 10);
        n += 10;
    } else {
        memcpy(line + n, " fetch=no", 9);
        n += 9;
    }
    memcpy(line + n, " cls=", 5);
    n += 5;
    n += fmt_u64(line + n, item_class_id(it));
    memcpy(line + n, " size=", 6);
    n += 6;
    /* header + key + value + CRLF, as memcached's ITEM_ntotal */
    n += fmt_u64(line + n, item_header_size() + item_nkey(it) + (uint64_t)item_nbytes(it) + 2);
    memcpy(line + n, "\r\n", 2);
    conn_out(c, line, n + 2);
    item_put(it);
    return PROC_MORE;
}

/* ---- dispatch ---- */

/* ---- null storage ----
 *
 * -o null_storage, a benchmark mode (see proto_mc_text.c): mg answers a hit
 * on the 4-byte value "null" (CAS 1, flags 0, no TTL), ms skips its data
 * block and answers HD (q hides it; a block already read in full without
 * its CRLF gets "CLIENT_ERROR bad data chunk"). Their flags are parsed and echoed as
 * usual; nothing is looked up or stored.
 */
static enum proc_result null_get(struct conn *c, const struct mc_meta_req *r)
{
    const struct mc_meta_vals v = { .have = HIT_VALUES, .cas = 1, .size = 4, .ttl = -1 };
    uint64_t size = 4;

    STAT_INC(c->stats, cmd_get);
    STAT_INC(c->stats, get_hits);
    if (r->flags & MC_META_F_RET_VALUE) {
        out_status(c, "VA", &size, r, &v, 0);
        CONN_OUT_LIT(c, "null\r\n");
    } else {
        out_status(c, "HD", NULL, r, &v, 0);
    }
    return PROC_MORE;
}

static enum proc_result null_set(struct conn *c, void *state, const struct mc_meta_req *r)
{
    const struct mc_meta_vals v = { .have = MC_META_F_RET_CAS | MC_META_F_RET_SIZE, .cas = 1,
                                    .size = r->datalen };
    size_t n = (size_t)r->datalen + 2;

    (void)state;
    STAT_INC(c->stats, cmd_set);
    /* The reply is composed first: k and O point into the line, which a
     * read for the rest of the block may overwrite. */
    if (conn_rlen(c) < n) {
        if (!(r->flags & MC_META_F_QUIET))
            out_status(c, "HD", NULL, r, &v, 0);
        conn_swallow(c, n);
        return PROC_NREAD;
    }
    const char *end = conn_rbuf(c) + r->datalen;
    if (end[0] != '\r' || end[1] != '\n')
        out_line(c, "CLIENT_ERROR bad data chunk");
    else if (!(r->flags & MC_META_F_QUIET))
        out_status(c, "HD", NULL, r, &v, 0);
    conn_consume(c, n);
    return PROC_MORE;
}

enum proc_result proto_mc_meta_run(struct conn *c, void *state, enum mc_meta_cmd cmd,
                                   const char *key, size_t nkey,
                                   const char *args, size_t nargs)
{
    char keybuf[MC_META_KEY_MAX];
    struct mc_meta_req r;

    STAT_INC(c->stats, cmd_meta);
    if (cmd == MC_META_MN) {
        CONN_OUT_LIT(c, "MN\r\n");
        return PROC_MORE;
    }
    if (mc_meta_parse(&r, cmd, key, nkey, args, nargs, keybuf) != PARSE_OK) {
        out_line(c, mc_meta_errstr(cmd, r.err));
        /* The client sends an ms data block anyway: skip it rather than
         * run its bytes as commands. */
        if (cmd == MC_META_MS && r.datalen_ok) {
            conn_swallow(c, (size_t)r.datalen + 2);
            return PROC_NREAD;
        }
        return PROC_MORE;
    }
    switch (cmd) {
    case MC_META_MG: return run_mg(c, &r);
    case MC_META_MS: return run_ms(c, state, &r);
    case MC_META_MD: return meta_delete(c, &r);
    case MC_META_MA: return meta_arith(c, &r);
    case MC_META_ME: return meta_debug(c, &r);
    default: return PROC_MORE;
    }
}
