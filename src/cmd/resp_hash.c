/*
 * RESP hash commands (HSET ... HSCAN), answered as Redis 7 answers them.
 *
 * Each command opens the key with coll_open() (storage/coll.h), which holds
 * the key's stripe lock until coll_close(): a command is atomic per key
 * against every other client, and two HINCRBYs on one field never lose an
 * update. The encoding work is types/hash.c. Replies are copied into the
 * connection's output while the lock is held (rs_bulk copies), so nothing
 * points into the hash after the lock is gone; HSCAN copies its page out
 * first and filters by MATCH after closing, so a pattern never lengthens a
 * lock hold. A key is created only by a write that leaves it non-empty,
 * and deleted when its last field goes (coll_close).
 *
 * A string key, or a key of another type, answers WRONGTYPE. A change that
 * cannot get memory under -m answers Redis's OOM error and changes
 * nothing: a multi-field HSET takes back the fields it had set (Redis
 * refuses such a command before it starts).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/resp_cmds.h"
#include "stats/stats.h"
#include "storage/coll.h"
#include "types/hash.h"
#include "util/fmt.h"
#include "util/glob.h"
#include "util/log.h"

/* Open key as a hash; false (with the reply queued) on WRONGTYPE or OOM. */
static bool hopen(struct conn *c, const struct resp_arg *key, bool create, struct coll_handle *h)
{
    switch (coll_open(h, key->ptr, key->len, COLL_HASH, create, c->now)) {
    case COLL_OK:
        return true;
    case COLL_WRONGTYPE:
        rs_error(c, RS_ERR_WRONGTYPE);
        return false;
    case COLL_NOMEM:
        break;
    }
    rs_error(c, RS_ERR_OOM);
    return false;
}

/* hopen() for a command that only reads: counted in INFO's keyspace hits
 * and misses as Redis counts a read lookup (a key of another type is a hit). */
static bool hread(struct conn *c, const struct resp_arg *key, struct coll_handle *h)
{
    bool ok = hopen(c, key, false, h);
    if (!ok || coll_exists(h))
        STAT_INC(c->stats, resp_read_hits);   /* a failure: WRONGTYPE (no memory: none taken) */
    else
        STAT_INC(c->stats, resp_read_misses);
    return ok;
}

static struct hash_root *root(struct coll_handle *h)
{
    return coll_root(h);
}

static struct hash_limits limits(void)
{
    return (struct hash_limits){coll_limit(COLL_HASH_ENTRIES), coll_limit(COLL_HASH_VALUE)};
}

/* ---- COPY of a hash (resp_keys.c) ---- */

struct copy_ctx {
    struct coll_handle *dst;
    struct hash_limits lim;
    bool failed;
};

static void copy_field(void *arg, const void *f, size_t flen, const void *v, size_t vlen)
{
    struct copy_ctx *x = arg;

    if (!x->failed && hash_set(coll_arena(x->dst), root(x->dst), f, flen, v, vlen, &x->lim) < 0)
        x->failed = true;
}

bool resp_hash_copy(struct coll_handle *src, struct coll_handle *dst)
{
    struct copy_ctx x = {dst, limits(), false};

    hash_foreach(coll_arena(src), root(src), copy_field, &x);
    if (x.failed)
        hash_free(coll_arena(dst), root(dst));
    return !x.failed;
}

/* The value of field f, or NULL when the field or the whole key is absent. */
static const void *hfield(struct coll_handle *h, const struct resp_arg *f, size_t *vl)
{
    *vl = 0;
    if (!coll_exists(h))
        return NULL;
    return hash_get(coll_arena(h), root(h), f->ptr, f->len, vl);
}

/* HGET's reply for one field: its value or a null. */
static void send_field(struct conn *c, struct coll_handle *h, const struct resp_arg *f)
{
    size_t vl;
    const void *v = hfield(h, f, &vl);
    if (v != NULL)
        rs_bulk(c, v, vl);
    else
        rs_null(c);
}

/* A field and value kioku cannot hold as one entry: a clear error. */
static bool entry_fits(struct conn *c, const struct resp_arg *f, const struct resp_arg *v)
{
    if (f->len <= HASH_KV_MAX && v->len <= HASH_KV_MAX - f->len)
        return true;
    rs_errorf(c, "ERR hash field and value together exceed %zu bytes", (size_t)HASH_KV_MAX);
    return false;
}

/*
 * What a multi-field HSET changed, so that one that runs out of memory
 * partway can be taken back: Redis refuses such a command before it
 * starts, so a client never sees some of its fields set. Per field set,
 * whether it was there and its value before (copied to the heap: the
 * arena's bytes move). Only for two or more fields; one hash_set() that
 * fails leaves the hash as it was.
 */
struct hundo {
    struct { bool existed; size_t off, len; } *ent;
    char *old;
    size_t used, cap;
};

static bool hundo_record(struct hundo *u, int j, const void *v, size_t vl)
{
    u->ent[j].existed = v != NULL;
    u->ent[j].off = u->used;
    u->ent[j].len = vl;
    if (v == NULL || vl == 0)
        return true;
    if (u->used + vl > u->cap) {
        size_t cap = (u->used + vl) * 2;
        char *p = realloc(u->old, cap);
        if (p == NULL)
            return false;
        u->old = p;
        u->cap = cap;
    }
    memcpy(u->old + u->used, v, vl);
    u->used += vl;
    return true;
}

/* Undo fields [0, n) newest first, so a field named twice gets its first
 * value back. A restore needs memory only as the set it undoes freed. */
static void hundo_apply(struct hundo *u, struct coll_handle *h, const struct resp_call *call, int n,
                        const struct hash_limits *lim)
{
    for (int j = n - 1; j >= 0; j--) {
        const struct resp_arg *f = &call->argv[2 + 2 * j];
        if (!u->ent[j].existed)
            hash_del(coll_arena(h), root(h), f->ptr, f->len);
        else if (hash_set(coll_arena(h), root(h), f->ptr, f->len, u->old + u->ent[j].off,
                          u->ent[j].len, lim) < 0)
            log_warn("HSET rollback: no memory to restore a field of '%.*s'",
                     (int)call->argv[1].len, call->argv[1].ptr);
    }
}

/* HSET (aux 0) and HMSET (aux 1): pairs, the count of new fields or OK;
 * all of them, or none and -OOM. */
enum proc_result resp_cmd_hset(struct conn *c, const struct resp_call *call)
{
    if (call->argc % 2 != 0) {
        rs_errorf(c, "ERR wrong number of arguments for '%s' command", call->cmd->name);
        return PROC_MORE;
    }
    for (int i = 2; i < call->argc; i += 2)
        if (!entry_fits(c, &call->argv[i], &call->argv[i + 1]))
            return PROC_MORE;
    int pairs = (call->argc - 2) / 2;
    struct hundo u = {NULL, NULL, 0, 0};
    if (pairs > 1 && (u.ent = malloc(sizeof(*u.ent) * (size_t)pairs)) == NULL) {
        rs_error(c, RS_ERR_OOM);
        return PROC_MORE;
    }
    struct coll_handle h;
    if (!hopen(c, &call->argv[1], true, &h)) {
        free(u.ent);
        return PROC_MORE;
    }
    struct hash_limits lim = limits();
    int64_t created = 0;
    int j = 0;
    bool oom = false;
    for (; j < pairs; j++) {
        const struct resp_arg *f = &call->argv[2 + 2 * j], *v = &call->argv[3 + 2 * j];
        if (u.ent != NULL) {
            size_t ol;
            const void *ov = hash_get(coll_arena(&h), root(&h), f->ptr, f->len, &ol);
            if (!hundo_record(&u, j, ov, ol)) {
                oom = true;
                break;
            }
        }
        int rc = hash_set(coll_arena(&h), root(&h), f->ptr, f->len, v->ptr, v->len, &lim);
        if (rc < 0) {
            oom = true;
            break;
        }
        created += rc;
    }
    if (oom && u.ent != NULL)
        hundo_apply(&u, &h, call, j, &lim);
    coll_close(&h);
    free(u.ent);
    free(u.old);
    if (oom)
        rs_error(c, RS_ERR_OOM);
    else if (call->cmd->aux)
        rs_ok(c);
    else
        rs_int(c, created);
    return PROC_MORE;
}

enum proc_result resp_cmd_hsetnx(struct conn *c, const struct resp_call *call)
{
    const struct resp_arg *f = &call->argv[2], *v = &call->argv[3];
    if (!entry_fits(c, f, v))
        return PROC_MORE;
    struct coll_handle h;
    if (!hopen(c, &call->argv[1], true, &h))
        return PROC_MORE;
    struct hash_limits lim = limits();
    size_t vl;
    int rc = 0;
    if (hash_get(coll_arena(&h), root(&h), f->ptr, f->len, &vl) == NULL)
        rc = hash_set(coll_arena(&h), root(&h), f->ptr, f->len, v->ptr, v->len, &lim);
    coll_close(&h);
    if (rc < 0)
        rs_error(c, RS_ERR_OOM);
    else
        rs_int(c, rc);
    return PROC_MORE;
}

enum proc_result resp_cmd_hget(struct conn *c, const struct resp_call *call)
{
    struct coll_handle h;
    if (!hread(c, &call->argv[1], &h))
        return PROC_MORE;
    send_field(c, &h, &call->argv[2]);
    coll_close(&h);
    return PROC_MORE;
}

enum proc_result resp_cmd_hmget(struct conn *c, const struct resp_call *call)
{
    struct coll_handle h;
    if (!hread(c, &call->argv[1], &h))
        return PROC_MORE;
    rs_array(c, (size_t)call->argc - 2);
    for (int i = 2; i < call->argc; i++)
        send_field(c, &h, &call->argv[i]);
    coll_close(&h);
    return PROC_MORE;
}

/* What HGETALL (aux 3), HKEYS (aux 1) and HVALS (aux 2) send of each pair. */
struct emit {
    struct conn *c;
    unsigned what;      /* bit 0 field, bit 1 value */
};

static void emit_pair(void *arg, const void *f, size_t flen, const void *v, size_t vlen)
{
    struct emit *e = arg;
    if (e->what & 1)
        rs_bulk(e->c, f, flen);
    if (e->what & 2)
        rs_bulk(e->c, v, vlen);
}

enum proc_result resp_cmd_hgetall(struct conn *c, const struct resp_call *call)
{
    struct coll_handle h;
    if (!hread(c, &call->argv[1], &h))
        return PROC_MORE;
    unsigned what = (unsigned)call->cmd->aux;
    size_t n = coll_exists(&h) ? hash_len(root(&h)) : 0;
    if (what == 3)
        rs_map(c, n);
    else
        rs_array(c, n);
    if (n > 0) {
        struct emit e = {c, what};
        hash_foreach(coll_arena(&h), root(&h), emit_pair, &e);
    }
    coll_close(&h);
    return PROC_MORE;
}

enum proc_result resp_cmd_hdel(struct conn *c, const struct resp_call *call)
{
    struct coll_handle h;
    if (!hopen(c, &call->argv[1], false, &h))
        return PROC_MORE;
    int64_t n = 0;
    for (int i = 2; i < call->argc && coll_exists(&h); i++) {
        n += hash_del(coll_arena(&h), root(&h), call->argv[i].ptr, call->argv[i].len);
        if (hash_len(root(&h)) == 0)
            break;
    }
    coll_close(&h);
    rs_int(c, n);
    return PROC_MORE;
}

/* HEXISTS (aux 0) and HSTRLEN (aux 1). */
enum proc_result resp_cmd_hexists(struct conn *c, const struct resp_call *call)
{
    struct coll_handle h;
    if (!hread(c, &call->argv[1], &h))
        return PROC_MORE;
    size_t vl;
    const void *v = hfield(&h, &call->argv[2], &vl);
    coll_close(&h);
    if (call->cmd->aux)
        rs_int(c, v != NULL ? (int64_t)vl : 0);
    else
        rs_int(c, v != NULL);
    return PROC_MORE;
}

enum proc_result resp_cmd_hlen(struct conn *c, const struct resp_call *call)
{
    struct coll_handle h;
    if (!hread(c, &call->argv[1], &h))
        return PROC_MORE;
    int64_t n = coll_exists(&h) ? hash_len(root(&h)) : 0;
    coll_close(&h);
    rs_int(c, n);
    return PROC_MORE;
}

enum proc_result resp_cmd_hincrby(struct conn *c, const struct resp_call *call)
{
    const struct resp_arg *f = &call->argv[2];
    int64_t incr, v = 0;
    if (!rs_arg_i64(c, &call->argv[3], &incr))
        return PROC_MORE;
    struct coll_handle h;
    if (!hopen(c, &call->argv[1], true, &h))
        return PROC_MORE;
    struct hash_limits lim = limits();
    const char *err = NULL;
    size_t vl;
    const char *cur = hash_get(coll_arena(&h), root(&h), f->ptr, f->len, &vl);
    if (cur != NULL && !rs_parse_i64(cur, vl, &v))
        err = "ERR hash value is not an integer";
    else if ((incr < 0 && v < 0 && incr < INT64_MIN - v) || (incr > 0 && v > 0 && incr > INT64_MAX - v))
        err = RS_ERR_OVERFLOW;
    char buf[24];
    if (err == NULL) {
        v += incr;
        size_t n = fmt_i64(buf, v);
        if (hash_set(coll_arena(&h), root(&h), f->ptr, f->len, buf, n, &lim) < 0)
            err = RS_ERR_OOM;
    }
    coll_close(&h);
    if (err != NULL)
        rs_error(c, err);
    else
        rs_int(c, v);
    return PROC_MORE;
}

enum proc_result resp_cmd_hincrbyfloat(struct conn *c, const struct resp_call *call)
{
    const struct resp_arg *f = &call->argv[2];
    long double incr, v = 0;
    if (!rs_parse_ld(call->argv[3].ptr, call->argv[3].len, &incr)) {
        rs_error(c, RS_ERR_NOT_FLOAT);
        return PROC_MORE;
    }
    if (isnan(incr) || isinf(incr)) {
        rs_error(c, "ERR value is NaN or Infinity");
        return PROC_MORE;
    }
    struct coll_handle h;
    if (!hopen(c, &call->argv[1], true, &h))
        return PROC_MORE;
    static __thread char text[LD_CHARS_MAX];
    struct hash_limits lim = limits();
    const char *err = NULL;
    size_t vl, len = 0;
    const char *cur = hash_get(coll_arena(&h), root(&h), f->ptr, f->len, &vl);
    if (cur != NULL && !rs_parse_ld(cur, vl, &v))
        err = "ERR hash value is not a float";
    if (err == NULL) {
        v += incr;
        if (isnan(v) || isinf(v) || (len = rs_format_ld(text, sizeof(text), v)) == 0)
            err = "ERR increment would produce NaN or Infinity";
        else if (hash_set(coll_arena(&h), root(&h), f->ptr, f->len, text, len, &lim) < 0)
            err = RS_ERR_OOM;
    }
    coll_close(&h);
    if (err != NULL)
        rs_error(c, err);
    else
        rs_bulk(c, text, len);
    return PROC_MORE;
}

/* ---- HRANDFIELD ---- */

static uint64_t next_rand(struct conn *c)
{
    static __thread uint64_t s;
    if (s == 0)
        s = (c->id * 0x9E3779B97F4A7C15ull) ^ (uint64_t)c->now ^ 1;
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
}

/* One pair of an HRANDFIELD reply: RESP3 nests a pair in an array. */
static void reply_pair(struct conn *c, bool withvalues, const void *f, size_t flen, const void *v, size_t vlen)
{
    if (withvalues && resp_proto_version(c) == 3)
        rs_array(c, 2);
    rs_bulk(c, f, flen);
    if (withvalues)
        rs_bulk(c, v, vlen);
}

/*
 * Distinct fields. A few of many: random picks, each field's key address
 * (unique and fixed under the lock) kept in a small open-addressing set so
 * repeats are dropped; bounded, and what is still missing after the bound
 * comes from the pass below over the fields not yet picked. Otherwise
 * Knuth's selection sampling in one pass over the hash, so each subset of
 * `want` fields is equally likely.
 */
struct picks {
    const void **slot;
    size_t mask;
};

static bool picks_has(const struct picks *p, const void *k)
{
    if (p->slot == NULL)
        return false;
    for (size_t i = ((uintptr_t)k >> 3) & p->mask;; i = (i + 1) & p->mask) {
        if (p->slot[i] == k)
            return true;
        if (p->slot[i] == NULL)
            return false;
    }
}

static void picks_add(struct picks *p, const void *k)
{
    size_t i = ((uintptr_t)k >> 3) & p->mask;
    while (p->slot[i] != NULL)
        i = (i + 1) & p->mask;
    p->slot[i] = k;
}

struct sample {
    struct conn *c;
    bool withvalues;
    uint64_t want, left;
    const struct picks *skip;       /* fields already sent, or NULL */
};

static void sample_pair(void *arg, const void *f, size_t flen, const void *v, size_t vlen)
{
    struct sample *s = arg;
    if (s->skip != NULL && picks_has(s->skip, f))
        return;
    if (s->want > 0 && next_rand(s->c) % s->left < s->want) {
        reply_pair(s->c, s->withvalues, f, flen, v, vlen);
        s->want--;
    }
    s->left--;
}

/* count distinct fields of a hash of size fields (count < size). */
static void reply_distinct(struct conn *c, struct arena *a, struct hash_root *r, uint64_t count, uint64_t size,
                           bool withvalues)
{
    struct picks p = {NULL, 0};
    uint64_t sent = 0;
    /* Few of many (as Redis, when count*3 <= size): picks are cheap and
     * rarely repeat. The set is at least twice count, a power of two. */
    if (r->enc == HASH_TABLE && count * 3 <= size) {
        size_t cap = 16;
        while (cap < count * 2)
            cap *= 2;
        p.slot = calloc(cap, sizeof(*p.slot));
        p.mask = cap - 1;
    }
    for (uint64_t tries = 0; p.slot != NULL && sent < count && tries < 16 * count; tries++) {
        const void *f, *v;
        size_t flen, vlen;
        hash_random(a, r, next_rand(c), &f, &flen, &v, &vlen);
        if (picks_has(&p, f))
            continue;
        picks_add(&p, f);
        reply_pair(c, withvalues, f, flen, v, vlen);
        sent++;
    }
    if (sent < count) {
        struct sample s = {c, withvalues, count - sent, size - sent, p.slot != NULL ? &p : NULL};
        hash_foreach(a, r, sample_pair, &s);
    }
    free(p.slot);
}

enum proc_result resp_cmd_hrandfield(struct conn *c, const struct resp_call *call)
{
    int64_t l = 0;
    bool withvalues = false, counted = call->argc >= 3;
    if (counted) {
        if (!rs_arg_i64(c, &call->argv[2], &l))
            return PROC_MORE;
        if (l == INT64_MIN) {
            rs_errorf(c, "ERR value is out of range, value must between %lld and %lld", -(long long)INT64_MAX,
                      (long long)INT64_MAX);
            return PROC_MORE;
        }
        if (call->argc > 4 || (call->argc == 4 && !rs_arg_is(&call->argv[3], "withvalues"))) {
            rs_error(c, RS_ERR_SYNTAX);
            return PROC_MORE;
        }
        withvalues = call->argc == 4;
        if (withvalues && (l < -INT64_MAX / 2 || l > INT64_MAX / 2)) {
            rs_error(c, "ERR value is out of range");
            return PROC_MORE;
        }
    }
    struct coll_handle h;
    if (!hread(c, &call->argv[1], &h))
        return PROC_MORE;
    struct arena *a = coll_exists(&h) ? coll_arena(&h) : NULL;
    struct hash_root *r = a != NULL ? root(&h) : NULL;
    const void *f, *v;
    size_t flen, vlen;
    if (!counted) {
        if (r != NULL && hash_random(a, r, next_rand(c), &f, &flen, &v, &vlen) == 0)
            rs_bulk(c, f, flen);
        else
            rs_null(c);
        coll_close(&h);
        return PROC_MORE;
    }
    uint64_t size = r != NULL ? hash_len(r) : 0;
    uint64_t count = l < 0 ? (uint64_t)-l : (uint64_t)l;
    if (size == 0 || count == 0) {
        CONN_OUT_LIT(c, "*0\r\n");
    } else if (l < 0 || count == 1) {
        /* Repeats allowed: count independent picks. A huge count stops
         * when the connection passes its output limit. */
        rs_array(c, withvalues && resp_proto_version(c) == 2 ? count * 2 : count);
        for (uint64_t i = 0; i < count && !c->out_over; i++) {
            hash_random(a, r, next_rand(c), &f, &flen, &v, &vlen);
            reply_pair(c, withvalues, f, flen, v, vlen);
        }
    } else {
        if (count > size)
            count = size;
        rs_array(c, withvalues && resp_proto_version(c) == 2 ? count * 2 : count);
        reply_distinct(c, a, r, count, size, withvalues);
    }
    coll_close(&h);
    return PROC_MORE;
}

/* ---- HSCAN ---- */

/* The page copied out under the lock: (flen, field, vlen, value) runs. */
struct page {
    char *data;
    size_t len, cap;
    size_t count;
    bool oom;
};

static void page_put(struct page *p, const void *b, size_t n)
{
    if (p->oom)
        return;
    if (p->cap - p->len < n) {
        size_t cap = p->cap ? p->cap : 1024;
        while (cap - p->len < n)
            cap *= 2;
        char *d = realloc(p->data, cap);
        if (d == NULL) {
            p->oom = true;
            return;
        }
        p->data = d;
        p->cap = cap;
    }
    if (n > 0)
        memcpy(p->data + p->len, b, n);
    p->len += n;
}

static void page_pair(void *arg, const void *f, size_t flen, const void *v, size_t vlen)
{
    struct page *p = arg;
    page_put(p, &flen, sizeof(flen));
    page_put(p, f, flen);
    page_put(p, &vlen, sizeof(vlen));
    page_put(p, v, vlen);
    p->count++;
}

/* The next string of a page at *off. */
static const char *page_next(const struct page *p, size_t *off, size_t *len)
{
    memcpy(len, p->data + *off, sizeof(*len));
    const char *s = p->data + *off + sizeof(*len);
    *off += sizeof(*len) + *len;
    return s;
}

enum proc_result resp_cmd_hscan(struct conn *c, const struct resp_call *call)
{
    uint64_t cursor;
    int64_t count = 10;
    const struct resp_arg *match = NULL;
    if (!rs_parse_cursor(&call->argv[2], &cursor)) {
        rs_error(c, "ERR invalid cursor");
        return PROC_MORE;
    }
    struct coll_handle h;
    if (!hread(c, &call->argv[1], &h))
        return PROC_MORE;
    if (!coll_exists(&h)) {
        coll_close(&h);
        CONN_OUT_LIT(c, "*2\r\n$1\r\n0\r\n*0\r\n");
        return PROC_MORE;
    }
    /* Options are checked after the key, as Redis does. */
    for (int i = 3; i < call->argc; i += 2) {
        const struct resp_arg *a = &call->argv[i];
        bool ok = i + 1 < call->argc;
        if (ok && rs_arg_is(a, "count")) {
            if (!rs_arg_i64(c, &call->argv[i + 1], &count)) {
                coll_close(&h);
                return PROC_MORE;
            }
            ok = count >= 1;
        } else if (ok && rs_arg_is(a, "match")) {
            match = &call->argv[i + 1];
        } else {
            ok = false;
        }
        if (!ok) {
            coll_close(&h);
            rs_error(c, RS_ERR_SYNTAX);
            return PROC_MORE;
        }
    }
    struct page p = {0};
    /* Redis's bound: at most 10*COUNT buckets for one call. */
    uint64_t steps = count > INT64_MAX / 10 ? (uint64_t)INT64_MAX : (uint64_t)count * 10;
    do
        cursor = hash_scan(coll_arena(&h), root(&h), cursor, page_pair, &p);
    while (cursor != 0 && --steps > 0 && p.count < (uint64_t)count && !p.oom);
    coll_close(&h);
    if (p.oom) {
        free(p.data);
        rs_error(c, RS_ERR_OOM);
        return PROC_MORE;
    }
    bool all = match == NULL || (match->len == 1 && match->ptr[0] == '*');
    size_t keep = 0, off = 0;
    for (size_t i = 0; i < p.count; i++) {
        size_t fl, vl;
        const char *f = page_next(&p, &off, &fl);
        page_next(&p, &off, &vl);
        if (all || glob_match(match->ptr, match->len, f, fl, false))
            keep++;
    }
    char num[24];
    rs_array(c, 2);
    rs_bulk(c, num, fmt_u64(num, cursor));
    rs_array(c, keep * 2);
    off = 0;
    for (size_t i = 0; i < p.count; i++) {
        size_t fl, vl;
        const char *f = page_next(&p, &off, &fl);
        const char *v = page_next(&p, &off, &vl);
        if (all || glob_match(match->ptr, match->len, f, fl, false)) {
            rs_bulk(c, f, fl);
            rs_bulk(c, v, vl);
        }
    }
    free(p.data);
    return PROC_MORE;
}
