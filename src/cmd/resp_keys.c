/*
 * RESP key commands: deletion and existence, expiry (EXPIRE family, TTL
 * family, PERSIST), TYPE, RENAME, and the keyspace walks RANDOMKEY, KEYS
 * and SCAN.
 *
 * Expiry lives in the item header as kioku (= unix) milliseconds, 0 for
 * none, and is changed under the key's stripe lock, so EXPIRE NX/XX/GT/LT
 * test and set atomically. A time at or before now deletes the key, as
 * Redis does. A key is a string or a collection (a hash or a sorted set,
 * storage/coll.h): TYPE, OBJECT ENCODING and SCAN TYPE tell them apart,
 * and the expiry commands, DEL and EXISTS treat every type alike.
 *
 * Walks use item_scan_batch(), which follows Redis's reverse-binary cursor
 * over the buckets (taking each stripe once for its run of buckets), so SCAN
 * inherits its guarantee: a key present for a whole iteration is returned
 * at least once, also while the table grows (keys may repeat). Keys are
 * copied out under the stripe lock and matched against the pattern after
 * it is released, so a long pattern never lengthens a lock hold. SCAN's
 * COUNT means about that much work, as in Redis: a call stops once it has
 * collected COUNT keys or spent its bucket budget (see scan_step_budget),
 * so a full iteration over N keys takes about N/COUNT calls. KEYS and
 * RANDOMKEY walk as far as they must.
 *
 * RENAME (and COPY) holds both keys' stripes (item_lock2(), in a fixed order) while it
 * copies the value under the new key, links it and unlinks the source, so
 * no client ever sees both keys or neither. A collection is not copied:
 * coll_rename() gives its blocks to a new header item under the new key.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/resp_cmds.h"
#include "stats/stats.h"
#include "storage/coll.h"
#include "storage/evict.h"
#include "storage/item.h"
#include "storage/slab.h"
#include "storage/storage.h"
#include "util/glob.h"

/* Find a live key without counting it as an access; referenced or NULL. */
static struct item *peek(struct conn *c, const struct resp_arg *key)
{
    uint64_t hv = item_hash(key->ptr, key->len);
    item_lock(hv);
    struct item *it = do_item_find(key->ptr, key->len, hv, c->now, NULL);
    item_unlock(hv);
    return it;
}

void resp_count_read(struct conn *c, const struct item *it)
{
    if (it != NULL)
        STAT_INC(c->stats, resp_read_hits);
    else
        STAT_INC(c->stats, resp_read_misses);
}

struct item *resp_read_item(struct conn *c, const struct resp_arg *key)
{
    struct item *it = item_get_any_hashed(key->ptr, key->len, resp_key_hash(c, key), c->now, NULL);

    resp_count_read(c, it);
    return it;
}

/* DEL and UNLINK (memory is returned at once either way). */
enum proc_result resp_cmd_del(struct conn *c, const struct resp_call *call)
{
    int64_t n = 0;
    for (int i = 1; i < call->argc; i++) {
        const struct resp_arg *k = &call->argv[i];
        if (item_delete(k->ptr, k->len, 0, c->now) == ITEM_DELETED) {
            STAT_INC(c->stats, delete_hits);
            n++;
        } else {
            STAT_INC(c->stats, delete_misses);
        }
    }
    rs_int(c, n);
    return PROC_MORE;
}

enum proc_result resp_cmd_exists(struct conn *c, const struct resp_call *call)
{
    int64_t n = 0;
    for (int i = 1; i < call->argc; i++) {
        struct item *it = peek(c, &call->argv[i]);
        resp_count_read(c, it);
        if (it != NULL) {
            n++;
            item_put(it);
        }
    }
    rs_int(c, n);
    return PROC_MORE;
}

enum proc_result resp_cmd_touch(struct conn *c, const struct resp_call *call)
{
    int64_t n = 0;
    for (int i = 1; i < call->argc; i++) {
        struct item *it = item_get_any(call->argv[i].ptr, call->argv[i].len, c->now, NULL);
        resp_count_read(c, it);
        if (it != NULL) {
            n++;
            item_put(it);
        }
    }
    rs_int(c, n);
    return PROC_MORE;
}

enum proc_result resp_cmd_type(struct conn *c, const struct resp_call *call)
{
    struct item *it = peek(c, &call->argv[1]);
    resp_count_read(c, it);
    if (it != NULL) {
        rs_simple(c, coll_type_name(coll_type_of(it)));
        item_put(it);
    } else {
        CONN_OUT_LIT(c, "+none\r\n");
    }
    return PROC_MORE;
}

/* A HELP subcommand's reply: its lines as simple strings. */
static void send_help(struct conn *c, const char *const *help, size_t n)
{
    rs_array(c, n);
    for (size_t i = 0; i < n; i++)
        rs_simple(c, help[i]);
}

/* Redis's encoding of a string value: "int" for what string2l takes,
 * "embstr" up to 44 bytes, "raw" beyond. */
static const char *string_encoding(struct item *it)
{
    char buf[24];
    int64_t v;
    size_t n = item_nbytes(it);
    if (n <= 20) {
        item_value_read(it, 0, buf, n);
        if (rs_parse_i64(buf, n, &v))
            return "int";
    }
    return n <= 44 ? "embstr" : "raw";
}

/* OBJECT ENCODING | REFCOUNT | IDLETIME | FREQ | HELP (IDLETIME and FREQ
 * answer Redis's errors under the other family of policies). */
enum proc_result resp_cmd_object(struct conn *c, const struct resp_call *call)
{
    const struct resp_arg *sub = &call->argv[1];
    if (call->argc == 2 && rs_arg_is(sub, "help")) {
        static const char *const help[] = {
            "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "ENCODING <key>",
            "    Return the kind of internal representation used in order to store the value",
            "    associated with a <key>.",
            "IDLETIME <key>",
            "    Return the idle time of the <key>, that is the approximated number of",
            "    seconds elapsed since the last access to the key.",
            "REFCOUNT <key>",
            "    Return the number of references of the value associated with the specified",
            "    <key>.",
            "HELP",
            "    Print this help.",
        };
        send_help(c, help, sizeof(help) / sizeof(help[0]));
        return PROC_MORE;
    }
    static const char *const subs[] = {"encoding", "refcount", "idletime", "freq", "help"};
    int what = -1;
    for (int i = 0; i < 5 && what < 0; i++)
        if (rs_arg_is(sub, subs[i]))
            what = i;
    if (what < 0) {
        rs_errorf(c, "ERR unknown subcommand '%.*s'. Try OBJECT HELP.", (int)(sub->len < 128 ? sub->len : 128),
                  sub->ptr);
        return PROC_MORE;
    }
    if (call->argc != 3 || what == 4) {
        rs_errorf(c, "ERR wrong number of arguments for 'object|%s' command", subs[what]);
        return PROC_MORE;
    }
    enum evict_policy pol = evict_get_policy();
    bool lfu = pol == EVICT_ALLKEYS_LFU || pol == EVICT_VOLATILE_LFU;
    if (what == 2 && lfu) {
        rs_error(c, "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when "
                    "switching between policies at runtime LRU and LFU data will take some time to adjust.");
        return PROC_MORE;
    }
    if (what == 3 && !lfu) {
        rs_error(c, "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note "
                    "that when switching between policies at runtime LRU and LFU data will take some time to "
                    "adjust.");
        return PROC_MORE;
    }
    const struct resp_arg *key = &call->argv[2];
    uint64_t hv = item_hash(key->ptr, key->len);
    item_lock(hv);
    struct item *it = do_item_find(key->ptr, key->len, hv, c->now, NULL);
    resp_count_read(c, it);
    if (it == NULL)
        rs_null(c);
    else if (what == 0)
        rs_bulk_str(c, item_is_typed(it) ? coll_encoding(it) : string_encoding(it));
    else if (what == 1)
        rs_int(c, 1);
    else if (what == 2)
        rs_int(c, item_idle_seconds(it, c->now));
    else
        rs_int(c, item_access(it) & 0xff);
    item_unlock(hv);
    if (it != NULL)
        item_put(it);
    return PROC_MORE;
}

/* MEMORY USAGE key [SAMPLES n]: the slab chunk of the item and, for a
 * collection, every block (all of it is counted exactly: no sampling). */
enum proc_result resp_cmd_memory(struct conn *c, const struct resp_call *call)
{
    const struct resp_arg *sub = &call->argv[1];
    if (call->argc == 2 && rs_arg_is(sub, "help")) {
        static const char *const help[] = {
            "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "USAGE <key> [SAMPLES <count>]",
            "    Return memory in bytes used by <key> and its value. Nested values are",
            "    sampled up to <count> times (default: 5, 0 means sample all).",
            "HELP",
            "    Print this help.",
        };
        send_help(c, help, sizeof(help) / sizeof(help[0]));
        return PROC_MORE;
    }
    if (!rs_arg_is(sub, "usage") || call->argc < 3) {
        if (rs_arg_is(sub, "usage") || rs_arg_is(sub, "help"))
            rs_errorf(c, "ERR wrong number of arguments for 'memory|%s' command",
                      rs_arg_is(sub, "usage") ? "usage" : "help");
        else
            rs_errorf(c, "ERR unknown subcommand '%.*s'. Try MEMORY HELP.", (int)(sub->len < 128 ? sub->len : 128),
                      sub->ptr);
        return PROC_MORE;
    }
    for (int i = 3; i < call->argc; i += 2) {
        int64_t n;
        if (!rs_arg_is(&call->argv[i], "samples") || i + 1 >= call->argc) {
            rs_error(c, RS_ERR_SYNTAX);
            return PROC_MORE;
        }
        if (!rs_arg_i64(c, &call->argv[i + 1], &n))
            return PROC_MORE;
    }
    const struct resp_arg *key = &call->argv[2];
    uint64_t hv = item_hash(key->ptr, key->len), bytes = 0;
    item_lock(hv);
    struct item *it = do_item_find(key->ptr, key->len, hv, c->now, NULL);
    if (it != NULL) {
        bytes = item_is_chunked(it) ? item_header_size() + item_nkey(it) + (uint64_t)item_nbytes(it) + 2
                                    : slab_chunk_size(item_clsid(it));
        bytes += coll_bytes(it);
    }
    item_unlock(hv);
    if (it == NULL) {
        rs_null(c);
        return PROC_MORE;
    }
    item_put(it);
    rs_int(c, (int64_t)bytes);
    return PROC_MORE;
}

/* ---- expiry ---- */

enum { X_NX = 1, X_XX = 2, X_GT = 4, X_LT = 8 };

static bool expire_flags(struct conn *c, const struct resp_call *call, unsigned *flags)
{
    *flags = 0;
    for (int j = 3; j < call->argc; j++) {
        const struct resp_arg *a = &call->argv[j];
        if (rs_arg_is(a, "nx"))
            *flags |= X_NX;
        else if (rs_arg_is(a, "xx"))
            *flags |= X_XX;
        else if (rs_arg_is(a, "gt"))
            *flags |= X_GT;
        else if (rs_arg_is(a, "lt"))
            *flags |= X_LT;
        else {
            rs_errorf(c, "ERR Unsupported option %.*s", (int)strnlen(a->ptr, a->len), a->ptr);
            return false;
        }
    }
    if ((*flags & X_NX) && (*flags & (X_XX | X_GT | X_LT))) {
        rs_error(c, "ERR NX and XX, GT or LT options at the same time are not compatible");
        return false;
    }
    if ((*flags & X_GT) && (*flags & X_LT)) {
        rs_error(c, "ERR GT and LT options at the same time are not compatible");
        return false;
    }
    return true;
}

/* Whether the NX/XX/GT/LT conditions let `when` replace `cur` (0: none). */
static bool expire_allowed(unsigned flags, int64_t cur, int64_t when)
{
    if ((flags & X_NX) && cur != 0)
        return false;
    if ((flags & X_XX) && cur == 0)
        return false;
    if ((flags & X_GT) && (cur == 0 || when <= cur))
        return false;   /* no expiry counts as infinite: never greater */
    if ((flags & X_LT) && cur != 0 && when >= cur)
        return false;
    return true;
}

/* EXPIRE, PEXPIRE (aux bit 0: ms), EXPIREAT, PEXPIREAT (aux bit 1: absolute). */
enum proc_result resp_cmd_expire(struct conn *c, const struct resp_call *call)
{
    unsigned flags;
    int64_t when;
    if (!expire_flags(c, call, &flags) || !rs_arg_i64(c, &call->argv[2], &when))
        return PROC_MORE;
    int64_t unit = (call->cmd->aux & 1) ? 1 : 1000;
    int64_t base = (call->cmd->aux & 2) ? 0 : c->now;
    if (when > INT64_MAX / unit || when < INT64_MIN / unit || when * unit > INT64_MAX - base) {
        rs_expire_error(c, call);
        return PROC_MORE;
    }
    when = when * unit + base;
    const struct resp_arg *key = &call->argv[1];
    uint64_t hv = item_hash(key->ptr, key->len);
    int64_t res = 0;
    item_lock(hv);
    struct item *it = do_item_find(key->ptr, key->len, hv, c->now, NULL);
    if (it != NULL && expire_allowed(flags, item_exptime(it), when)) {
        if (when <= c->now)
            do_item_unlink(it, hv);
        else
            do_item_set_exptime(it, hv, when);
        res = 1;
    }
    item_unlock(hv);
    if (it != NULL)
        item_put(it);
    rs_int(c, res);
    return PROC_MORE;
}

/* TTL (aux 0), PTTL (1), EXPIRETIME (2), PEXPIRETIME (3). */
enum proc_result resp_cmd_ttl(struct conn *c, const struct resp_call *call)
{
    struct item *it = peek(c, &call->argv[1]);
    resp_count_read(c, it);
    if (it == NULL) {
        rs_int(c, -2);
        return PROC_MORE;
    }
    int64_t exp = item_exptime(it), v;
    item_put(it);
    if (exp == 0) {
        v = -1;
    } else if (call->cmd->aux >= 2) {
        v = call->cmd->aux == 3 ? exp : exp / 1000;
    } else {
        int64_t left = exp > c->now ? exp - c->now : 0;
        v = call->cmd->aux == 1 ? left : (left + 500) / 1000;
    }
    rs_int(c, v);
    return PROC_MORE;
}

enum proc_result resp_cmd_persist(struct conn *c, const struct resp_call *call)
{
    const struct resp_arg *key = &call->argv[1];
    uint64_t hv = item_hash(key->ptr, key->len);
    int64_t res = 0;
    item_lock(hv);
    struct item *it = do_item_find(key->ptr, key->len, hv, c->now, NULL);
    if (it != NULL && item_exptime(it) != 0) {
        do_item_set_exptime(it, hv, 0);
        res = 1;
    }
    item_unlock(hv);
    if (it != NULL)
        item_put(it);
    rs_int(c, res);
    return PROC_MORE;
}

/* ---- RENAME, RENAMENX (aux 1) ---- */

/* Release item_lock2(), then the references the command held. */
static void unlock2_put(uint64_t hf, uint64_t ht, struct item *src, struct item *dst,
                        struct item *copy)
{
    item_unlock2(hf, ht);
    if (src != NULL)
        item_put(src);
    if (dst != NULL)
        item_put(dst);
    if (copy != NULL)
        item_put(copy);
}

/* A copy of src's value, flags and expiry under a new key. */
static struct item *copy_as(struct item *src, const struct resp_arg *key, int64_t now,
                            enum item_alloc_status *st)
{
    struct item *it = item_alloc(key->ptr, key->len, item_flags(src), item_exptime(src), item_nbytes(src),
                                 now, st);
    if (it == NULL)
        return NULL;
    struct iovec iov[8];
    size_t off = 0;
    while (off < item_nbytes(src)) {
        int cnt = item_value_iov(src, off, iov, 8);
        if (cnt <= 0)
            break;
        for (int i = 0; i < cnt && off < item_nbytes(src); i++) {
            size_t len = iov[i].iov_len;
            if (len > item_nbytes(src) - off)
                len = item_nbytes(src) - off;
            item_value_write(it, off, iov[i].iov_base, len);
            off += len;
        }
    }
    return it;
}

enum proc_result resp_cmd_rename(struct conn *c, const struct resp_call *call)
{
    const struct resp_arg *from = &call->argv[1], *to = &call->argv[2];
    bool nx = call->cmd->aux == 1;
    bool same = from->len == to->len && memcmp(from->ptr, to->ptr, from->len) == 0;
    uint64_t hf = item_hash(from->ptr, from->len), ht = item_hash(to->ptr, to->len);
    enum item_alloc_status st = ITEM_ALLOC_OK;
    struct item *dst = NULL, *copy = NULL;
    int res;   /* 1 renamed, 0 not (NX), -1 no such key, -2 no memory */

    item_lock2(hf, ht);
    struct item *src = do_item_find(from->ptr, from->len, hf, c->now, NULL);
    if (src == NULL) {
        res = -1;
    } else if (same) {
        res = 0;
    } else {
        dst = do_item_find(to->ptr, to->len, ht, c->now, NULL);
        res = 0;
        if (!(nx && dst != NULL)) {
            if (item_is_typed(src)) {
                copy = coll_rename(src, to->ptr, to->len, c->now);
                st = ITEM_ALLOC_NOMEM;
            } else {
                copy = copy_as(src, to, c->now, &st);
            }
            res = copy != NULL ? 1 : -2;
        }
        if (copy != NULL) {
            do_item_replace(dst, copy, ht);
            do_item_unlink(src, hf);
        }
    }
    unlock2_put(hf, ht, src, dst, copy);
    if (res == -1)
        rs_error(c, "ERR no such key");
    else if (res == -2)
        rs_alloc_error(c, (int)st);
    else if (nx)
        rs_int(c, res);
    else
        rs_ok(c);
    return PROC_MORE;
}

/* ---- COPY ---- */

/*
 * A collection copied member by member into a new one under dst's key
 * (both stripes held): its blocks name their owner and hold references
 * into their own collection, so they cannot be shared or copied bytewise.
 * Returns the linked copy (referenced) or NULL when no memory.
 */
static struct item *copy_coll(struct conn *c, struct item *src, const struct resp_arg *from,
                              uint64_t hf, const struct resp_arg *to, uint64_t ht)
{
    struct coll_handle hs, hd;
    enum coll_type t = coll_type_of(src);
    bool ok;

    if (do_coll_open(&hs, from->ptr, from->len, hf, t, false, c->now) != COLL_OK)
        return NULL;
    if (do_coll_open(&hd, to->ptr, to->len, ht, t, true, c->now) != COLL_OK) {
        do_coll_close(&hs);
        return NULL;
    }
    ok = t == COLL_HASH ? resp_hash_copy(&hs, &hd) : resp_zset_copy(&hs, &hd);
    do_coll_close(&hd);     /* links the copy; an emptied one is dropped */
    do_coll_close(&hs);
    if (!ok)
        return NULL;
    struct item *copy = do_item_find(to->ptr, to->len, ht, c->now, NULL);
    if (copy != NULL)
        do_item_set_exptime(copy, ht, item_exptime(src));
    return copy;
}

/* COPY source destination [DB destination-db] [REPLACE]: 1 copied, 0 when
 * the source is absent or the destination taken (without REPLACE). There
 * is one database, 0. */
enum proc_result resp_cmd_copy(struct conn *c, const struct resp_call *call)
{
    const struct resp_arg *from = &call->argv[1], *to = &call->argv[2];
    bool replace = false;

    for (int j = 3; j < call->argc; j++) {
        int64_t db;

        if (rs_arg_is(&call->argv[j], "replace")) {
            replace = true;
        } else if (rs_arg_is(&call->argv[j], "db") && j + 1 < call->argc) {
            if (!rs_arg_i64(c, &call->argv[++j], &db))
                return PROC_MORE;
            if (db != 0) {
                rs_error(c, "ERR DB index is out of range");
                return PROC_MORE;
            }
        } else {
            rs_error(c, RS_ERR_SYNTAX);
            return PROC_MORE;
        }
    }
    if (from->len == to->len && memcmp(from->ptr, to->ptr, from->len) == 0) {
        rs_error(c, "ERR source and destination objects are the same");
        return PROC_MORE;
    }
    uint64_t hf = item_hash(from->ptr, from->len), ht = item_hash(to->ptr, to->len);
    enum item_alloc_status st = ITEM_ALLOC_NOMEM;
    struct item *dst = NULL, *copy = NULL;
    int res = 0;    /* 1 copied, 0 not, -1 no memory */

    item_lock2(hf, ht);
    struct item *src = do_item_find(from->ptr, from->len, hf, c->now, NULL);
    resp_count_read(c, src);
    if (src != NULL) {
        dst = do_item_find(to->ptr, to->len, ht, c->now, NULL);
        if (dst != NULL && !replace) {
            res = 0;
        } else if (item_is_typed(src)) {
            /* The new collection takes the key: what REPLACE overwrites
             * goes first, so no memory then loses it (as RENAME's does). */
            if (dst != NULL)
                do_item_unlink(dst, ht);
            copy = copy_coll(c, src, from, hf, to, ht);
            res = copy != NULL ? 1 : -1;
        } else if ((copy = copy_as(src, to, c->now, &st)) != NULL) {
            do_item_replace(dst, copy, ht);
            res = 1;
        } else {
            res = -1;
        }
    }
    unlock2_put(hf, ht, src, dst, copy);
    if (res < 0)
        rs_alloc_error(c, (int)st);
    else
        rs_int(c, res);
    return PROC_MORE;
}

/* ---- walks ---- */

/* Keys copied out of one or more buckets: [len byte][key bytes]... */
struct keybuf {
    char *data;
    size_t len, cap, count;
    bool oom;
};

static void kb_add(struct keybuf *kb, const char *key, size_t nkey)
{
    if (kb->cap - kb->len < nkey + 1) {
        size_t cap = kb->cap ? kb->cap * 2 : 4096;
        while (cap - kb->len < nkey + 1)
            cap *= 2;
        char *p = realloc(kb->data, cap);
        if (p == NULL) {
            kb->oom = true;
            return;
        }
        kb->data = p;
        kb->cap = cap;
    }
    kb->data[kb->len] = (char)(unsigned char)nkey;
    memcpy(kb->data + kb->len + 1, key, nkey);
    kb->len += nkey + 1;
    kb->count++;
}

/* item_scan() callback: runs under the bucket's stripe; copies the key. */
static void collect_key(struct item *it, void *arg)
{
    kb_add(arg, item_key(it), item_nkey(it));
}

/* SCAN TYPE: keys of another type are counted (as Redis counts them
 * before filtering) but not kept. Redis 7.0 compares the name as given,
 * so an unknown name matches nothing. */
struct typed_batch {
    struct keybuf *kb;
    const struct resp_arg *type;
    uint64_t skipped;
};

static void collect_typed(struct item *it, void *arg)
{
    struct typed_batch *tb = arg;
    if (rs_arg_is(tb->type, coll_type_name(coll_type_of(it))))
        kb_add(tb->kb, item_key(it), item_nkey(it));
    else
        tb->skipped++;
}

struct pattern {
    const char *p;
    size_t len;
    bool all;       /* no pattern, or "*" */
};

/* Move the keys of batch that match pat to out; empty batch. */
static void kb_filter(struct keybuf *batch, const struct pattern *pat, struct keybuf *out)
{
    for (size_t off = 0; off < batch->len;) {
        size_t n = (unsigned char)batch->data[off];
        const char *k = batch->data + off + 1;
        if (pat->all || glob_match(pat->p, pat->len, k, n, false))
            kb_add(out, k, n);
        off += n + 1;
    }
    batch->len = batch->count = 0;
    out->oom |= batch->oom;
}

static void reply_keys(struct conn *c, const struct keybuf *kb)
{
    rs_array(c, kb->count);
    for (size_t off = 0; off < kb->len;) {
        size_t n = (unsigned char)kb->data[off];
        rs_bulk(c, kb->data + off + 1, n);
        off += n + 1;
    }
}

static struct pattern pattern_of(const struct resp_arg *a)
{
    struct pattern pat = {NULL, 0, true};
    if (a != NULL && !(a->len == 1 && a->ptr[0] == '*'))
        pat = (struct pattern){a->ptr, a->len, false};
    return pat;
}

enum proc_result resp_cmd_keys(struct conn *c, const struct resp_call *call)
{
    struct keybuf batch = {0}, out = {0};
    struct pattern pat = pattern_of(&call->argv[1]);
    uint64_t cursor = 0;
    do {
        struct item_scan_work w = { .max_steps = UINT64_MAX, .max_items = UINT64_MAX };
        cursor = item_scan_batch(cursor, c->now, &w, collect_key, &batch);
        kb_filter(&batch, &pat, &out);
    } while (cursor != 0 && !out.oom);
    if (out.oom)
        rs_error(c, RS_ERR_OOM);
    else
        reply_keys(c, &out);
    free(batch.data);
    free(out.data);
    return PROC_MORE;
}

/* Redis parses the cursor with strtoull: decimal, whole argument. */
bool rs_parse_cursor(const struct resp_arg *a, uint64_t *out)
{
    char buf[32];
    char *end;
    if (a->len == 0 || a->len >= sizeof(buf) || memchr(a->ptr, '\0', a->len) != NULL)
        return false;
    memcpy(buf, a->ptr, a->len);
    buf[a->len] = '\0';
    errno = 0;
    unsigned long long v = strtoull(buf, &end, 10);
    if (*end != '\0' || errno == ERANGE)
        return false;
    *out = v;
    return true;
}

/* Most cursor steps (buckets, in a table that is not growing) one SCAN
 * call spends on a sparse table, unless 10*COUNT is more: 2^16 is the
 * default table (hashpower 16), walked whole in well under a millisecond. */
#define SCAN_SPARSE_MAX_STEPS ((uint64_t)1 << 16)

struct scan_args {
    uint64_t cursor;
    int64_t count;
    struct pattern pat;
    const struct resp_arg *type;   /* TYPE name, or NULL */
};

static bool scan_args(struct conn *c, const struct resp_call *call, struct scan_args *sa)
{
    *sa = (struct scan_args){0, 10, {NULL, 0, true}, NULL};
    if (!rs_parse_cursor(&call->argv[1], &sa->cursor)) {
        rs_error(c, "ERR invalid cursor");
        return false;
    }
    for (int i = 2; i < call->argc; i += 2) {
        const struct resp_arg *a = &call->argv[i];
        if (i + 1 >= call->argc) {
            rs_error(c, RS_ERR_SYNTAX);
            return false;
        }
        if (rs_arg_is(a, "count")) {
            if (!rs_arg_i64(c, &call->argv[i + 1], &sa->count))
                return false;
            if (sa->count < 1) {
                rs_error(c, RS_ERR_SYNTAX);
                return false;
            }
        } else if (rs_arg_is(a, "match")) {
            sa->pat = pattern_of(&call->argv[i + 1]);
        } else if (rs_arg_is(a, "type")) {
            sa->type = &call->argv[i + 1];
        } else {
            rs_error(c, RS_ERR_SYNTAX);
            return false;
        }
    }
    return true;
}

/*
 * The bucket budget of one SCAN call. Redis visits at most 10*COUNT
 * buckets; its table is sized to its keys (at least about 10% full), so
 * that budget holds COUNT keys even at its sparsest. kioku's table starts
 * at 2^hashpower buckets and never shrinks, so it can be much sparser (42
 * keys in 65536 buckets): the budget is scaled by buckets per key, so a
 * call still finds about COUNT keys, and capped at SCAN_SPARSE_MAX_STEPS
 * (or 10*COUNT if larger) so one call's work stays bounded however sparse
 * the table is.
 */
static uint64_t scan_step_budget(int64_t count)
{
    uint64_t items, buckets;
    item_table_load(&items, &buckets);
    uint64_t base = count > INT64_MAX / 10 ? (uint64_t)INT64_MAX : (uint64_t)count * 10;
    uint64_t sparse = items == 0 ? buckets : buckets / items;
    if (sparse < 1)
        sparse = 1;
    uint64_t want = base > UINT64_MAX / sparse ? UINT64_MAX : base * sparse;
    uint64_t cap = base > SCAN_SPARSE_MAX_STEPS ? base : SCAN_SPARSE_MAX_STEPS;
    return want < cap ? want : cap;
}

enum proc_result resp_cmd_scan(struct conn *c, const struct resp_call *call)
{
    struct scan_args sa;
    if (!scan_args(c, call, &sa))
        return PROC_MORE;
    struct keybuf batch = {0}, out = {0};
    uint64_t cursor = sa.cursor;
    uint64_t budget = scan_step_budget(sa.count), seen = 0;
    do {
        /* Keys are counted before MATCH and TYPE filter them, as in Redis. */
        struct item_scan_work w = { .max_steps = budget, .max_items = (uint64_t)sa.count - seen };
        struct typed_batch tb = {&batch, sa.type, 0};
        if (sa.type != NULL)
            cursor = item_scan_batch(cursor, c->now, &w, collect_typed, &tb);
        else
            cursor = item_scan_batch(cursor, c->now, &w, collect_key, &batch);
        budget -= w.steps;
        seen += batch.count + tb.skipped;
        kb_filter(&batch, &sa.pat, &out);
    } while (cursor != 0 && budget > 0 && seen < (uint64_t)sa.count && !out.oom);
    if (out.oom) {
        rs_error(c, RS_ERR_OOM);
    } else {
        char num[24];
        size_t n = (size_t)snprintf(num, sizeof(num), "%llu", (unsigned long long)cursor);
        rs_array(c, 2);
        rs_bulk(c, num, n);
        reply_keys(c, &out);
    }
    free(batch.data);
    free(out.data);
    return PROC_MORE;
}

/* item_scan() callback for RANDOMKEY: reservoir-pick one key of the bucket. */
struct pick {
    char key[STORAGE_KEY_MAX];
    size_t nkey;
    unsigned seen;
    uint64_t rng;
};

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static void pick_key(struct item *it, void *arg)
{
    struct pick *pk = arg;
    pk->seen++;
    if (xorshift(&pk->rng) % pk->seen == 0) {
        memcpy(pk->key, item_key(it), item_nkey(it));
        pk->nkey = item_nkey(it);
    }
}

/* A random bucket first, then the following ones until one holds a key;
 * one full pass at most (two wraps of the cursor). */
enum proc_result resp_cmd_randomkey(struct conn *c, const struct resp_call *call)
{
    (void)call;
    static __thread uint64_t seed;
    if (seed == 0)
        seed = (c->id * 0x9E3779B97F4A7C15ull) ^ (uint64_t)c->now ^ 1;
    /* O(stripes) count that leaves out flushed keys: an empty cache answers
     * at once instead of walking a table full of flushed items. */
    uint64_t keys, expires;
    storage_key_counts(&keys, &expires);
    struct pick pk = {.seen = 0, .rng = seed};
    uint64_t cursor = keys > 0 ? xorshift(&seed) : 0;
    int wraps = keys > 0 ? 0 : 2;
    while (wraps < 2 && pk.seen == 0) {
        cursor = item_scan(cursor, c->now, pick_key, &pk);
        if (cursor == 0)
            wraps++;
    }
    seed ^= pk.rng;
    if (pk.seen == 0)
        rs_null(c);
    else
        rs_bulk(c, pk.key, pk.nkey);
    return PROC_MORE;
}
