/*
 * RESP bitmap commands: SETBIT, GETBIT, BITCOUNT, BITPOS and BITOP, over
 * the same string values as resp_strings.c (a hash or sorted set key
 * answers WRONGTYPE). Bit 0 is the top bit of the first byte, as in Redis.
 *
 * SETBIT changes a bit in place, with the key's stripe held, when nobody
 * but the hash table holds the item (do_item_write_sole(): the common
 * case, and no allocation). When a reader holds it (a reply still being
 * sent) or the string must grow, it makes a new item as SETRANGE does,
 * copies the old value into it and replaces it, so the reader keeps
 * consistent bytes. A SETBIT that changes nothing leaves the item alone.
 * Values may be chunked: reads walk the value's segments
 * (item_value_iov()) and the pure counting in util/bits.c runs per
 * segment, so nothing is gathered or allocated.
 *
 * Offsets are bounded by proto-max-bulk-len, as Redis bounds them: a bit
 * whose byte is at or past it is "out of range". A string that fits that
 * bound but not the memory answers as SETRANGE does (too large / OOM).
 *
 * BITOP reads each source by reference (a consistent value each, not one
 * snapshot of all: sources on other stripes may change in between, which
 * storage's one-stripe-at-a-time rule allows) and writes the result in
 * blocks through two stack buffers.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "cmd/resp_cmds.h"
#include "stats/stats.h"
#include "storage/item.h"
#include "util/bits.h"

#define ERR_BIT_OFFSET "ERR bit offset is not an integer or out of range"
#define ERR_BIT_VALUE  "ERR bit is not an integer or out of range"

/* A bit offset argument; replies and returns false when Redis refuses it. */
static bool bit_offset(struct conn *c, const struct resp_arg *a, uint64_t *out)
{
    int64_t v;
    if (!rs_parse_i64(a->ptr, a->len, &v) || v < 0 || (uint64_t)(v >> 3) >= resp_max_bulk()) {
        rs_error(c, ERR_BIT_OFFSET);
        return false;
    }
    *out = (uint64_t)v;
    return true;
}


/* True (and WRONGTYPE replied, the reference dropped) for a collection. */
static bool not_string(struct conn *c, struct item *it)
{
    if (it == NULL || !item_is_typed(it))
        return false;
    rs_error(c, RS_ERR_WRONGTYPE);
    item_put(it);
    return true;
}

static uint8_t value_byte(struct item *it, size_t off)
{
    uint8_t b = 0;
    if (it != NULL && off < item_nbytes(it))
        item_value_read(it, off, &b, 1);
    return b;
}

/*
 * The value's segments that hold bits [from, to) (to <= 8 * nbytes), one
 * at a time: each call sets *p to a segment and *base to its first byte's
 * offset in the value. false when none is left.
 */
struct seg_walk {
    struct item *it;
    size_t off;            /* the next segment's first byte */
    uint64_t to;
};

static bool seg_next(struct seg_walk *w, const uint8_t **p, size_t *base, size_t *len)
{
    if ((uint64_t)w->off * 8 >= w->to)
        return false;
    struct iovec iov;
    if (item_value_iov(w->it, w->off, &iov, 1) <= 0 || iov.iov_len == 0)
        return false;
    *p = iov.iov_base;
    *base = w->off;
    *len = iov.iov_len;
    w->off += iov.iov_len;
    return true;
}

/* The clipped range of one segment, relative to it. */
static void seg_bits(uint64_t from, uint64_t to, size_t base, size_t len, uint64_t *lo,
                     uint64_t *hi)
{
    uint64_t s = (uint64_t)base * 8, e = s + (uint64_t)len * 8;
    *lo = (from > s ? from : s) - s;
    *hi = (to < e ? to : e) - s;
}

static uint64_t count_value(struct item *it, uint64_t from, uint64_t to)
{
    struct seg_walk w = {it, (size_t)(from >> 3), to};
    const uint8_t *p;
    size_t base, len;
    uint64_t n = 0;
    while (seg_next(&w, &p, &base, &len)) {
        uint64_t lo, hi;
        seg_bits(from, to, base, len, &lo, &hi);
        n += bits_count(p, lo, hi);
    }
    return n;
}

static int64_t find_value(struct item *it, uint64_t from, uint64_t to, int bit)
{
    struct seg_walk w = {it, (size_t)(from >> 3), to};
    const uint8_t *p;
    size_t base, len;
    while (seg_next(&w, &p, &base, &len)) {
        uint64_t lo, hi;
        seg_bits(from, to, base, len, &lo, &hi);
        int64_t pos = bits_find(p, lo, hi, bit);
        if (pos >= 0)
            return pos + (int64_t)base * 8;
    }
    return -1;
}

/* A BYTE|BIT word: 1 bit, 0 byte, -1 neither (syntax error replied). */
static int unit_word(struct conn *c, const struct resp_arg *a)
{
    if (rs_arg_is(a, "bit"))
        return 1;
    if (rs_arg_is(a, "byte"))
        return 0;
    rs_error(c, RS_ERR_SYNTAX);
    return -1;
}

/* dst's value: src's first oldlen bytes, then zeros up to len. */
static void copy_grow(struct item *dst, struct item *src, size_t oldlen, size_t len)
{
    static const uint8_t zeros[1024];
    size_t done = 0;
    struct iovec iov;
    while (done < oldlen && item_value_iov(src, done, &iov, 1) > 0) {
        size_t n = iov.iov_len < oldlen - done ? iov.iov_len : oldlen - done;
        item_value_write(dst, done, iov.iov_base, n);
        done += n;
    }
    while (done < len) {
        size_t n = len - done < sizeof(zeros) ? len - done : sizeof(zeros);
        item_value_write(dst, done, zeros, n);
        done += n;
    }
}

/* ---- SETBIT, GETBIT ---- */

enum proc_result resp_cmd_setbit(struct conn *c, const struct resp_call *call)
{
    const struct resp_arg *key = &call->argv[1];
    uint64_t off;
    int64_t on;
    if (!bit_offset(c, &call->argv[2], &off))
        return PROC_MORE;
    if (!rs_parse_i64(call->argv[3].ptr, call->argv[3].len, &on) || (on & ~1)) {
        rs_error(c, ERR_BIT_VALUE);
        return PROC_MORE;
    }
    size_t byte = (size_t)(off >> 3);
    unsigned mask = 0x80u >> (off & 7);
    uint64_t hv = item_hash(key->ptr, key->len);
    item_lock(hv);
    struct item *old = do_item_find(key->ptr, key->len, hv, c->now, NULL);
    if (old != NULL && item_is_typed(old)) {
        item_unlock(hv);
        item_put(old);
        rs_error(c, RS_ERR_WRONGTYPE);
        return PROC_MORE;
    }
    size_t oldlen = old != NULL ? item_nbytes(old) : 0;
    uint8_t b = value_byte(old, byte);
    int64_t was = (b & mask) != 0, result = was;
    uint8_t nb = (uint8_t)(on ? (b | mask) : (b & ~mask));
    if (byte < oldlen && was != on && do_item_write_sole(old, hv, byte, &nb, 1)) {
        /* changed in place: nobody else holds the item */
    } else if (byte >= oldlen || was != on) {
        size_t len = byte >= oldlen ? byte + 1 : oldlen;
        enum item_alloc_status st;
        struct item *it = item_alloc_big(key->ptr, key->len, old != NULL ? item_flags(old) : 0,
                                         old != NULL ? item_exptime(old) : 0, len,
                                         resp_max_bulk(), c->now, &st);
        if (it == NULL) {
            rs_alloc_error(c, (int)st);
            result = -1;
        } else {
            copy_grow(it, old, oldlen, len);
            item_value_write(it, byte, &nb, 1);
            do_item_replace(old, it, hv);
            item_put(it);
        }
    }
    item_unlock(hv);
    if (old != NULL)
        item_put(old);
    if (result >= 0)
        rs_int(c, result);
    return PROC_MORE;
}

enum proc_result resp_cmd_getbit(struct conn *c, const struct resp_call *call)
{
    uint64_t off;
    if (!bit_offset(c, &call->argv[2], &off))
        return PROC_MORE;
    struct item *it = resp_read_item(c, &call->argv[1]);
    if (not_string(c, it))
        return PROC_MORE;
    rs_int(c, (value_byte(it, (size_t)(off >> 3)) & (0x80u >> (off & 7))) != 0);
    if (it != NULL)
        item_put(it);
    return PROC_MORE;
}

/* ---- BITCOUNT, BITPOS ---- */

/* BITCOUNT key [start end [BYTE|BIT]] */
enum proc_result resp_cmd_bitcount(struct conn *c, const struct resp_call *call)
{
    struct item *it = resp_read_item(c, &call->argv[1]);
    if (it == NULL) {
        rs_int(c, 0);
        return PROC_MORE;
    }
    if (not_string(c, it))
        return PROC_MORE;
    uint64_t len = item_nbytes(it), from = 0, to = len * 8;
    bool any = len > 0;
    if (call->argc == 4 || call->argc == 5) {
        int64_t start, end;
        int in_bits = 0;
        if (!rs_arg_i64(c, &call->argv[2], &start) || !rs_arg_i64(c, &call->argv[3], &end))
            goto out;
        if (start < 0 && end < 0 && start > end) {
            rs_int(c, 0);
            goto out;
        }
        if (call->argc == 5 && (in_bits = unit_word(c, &call->argv[4])) < 0)
            goto out;
        any = bits_range(start, end, len, in_bits, &from, &to);
    } else if (call->argc != 2) {
        rs_error(c, RS_ERR_SYNTAX);
        goto out;
    }
    rs_int(c, any ? (int64_t)count_value(it, from, to) : 0);
out:
    item_put(it);
    return PROC_MORE;
}

/* BITPOS key bit [start [end [BYTE|BIT]]] */
enum proc_result resp_cmd_bitpos(struct conn *c, const struct resp_call *call)
{
    int64_t bit;
    if (!rs_arg_i64(c, &call->argv[2], &bit))
        return PROC_MORE;
    if (bit != 0 && bit != 1) {
        rs_error(c, "ERR The bit argument must be 1 or 0.");
        return PROC_MORE;
    }
    struct item *it = resp_read_item(c, &call->argv[1]);
    if (it == NULL) {
        /* An absent key is an endless run of zeros. */
        rs_int(c, bit ? -1 : 0);
        return PROC_MORE;
    }
    if (not_string(c, it))
        return PROC_MORE;
    uint64_t len = item_nbytes(it), from = 0, to = len * 8;
    bool any = len > 0, end_given = false;
    if (call->argc >= 4 && call->argc <= 6) {
        int64_t start, end = -1;
        int in_bits = 0;
        if (!rs_arg_i64(c, &call->argv[3], &start))
            goto out;
        if (call->argc == 6 && (in_bits = unit_word(c, &call->argv[5])) < 0)
            goto out;
        if (call->argc >= 5) {
            if (!rs_arg_i64(c, &call->argv[4], &end))
                goto out;
            end_given = true;
        }
        any = bits_range(start, end, len, in_bits, &from, &to);
    } else if (call->argc != 3) {
        rs_error(c, RS_ERR_SYNTAX);
        goto out;
    }
    int64_t pos = any ? find_value(it, from, to, (int)bit) : -1;
    /* Looking for a clear bit with no end given, the string goes on with
     * zeros past its last byte. */
    if (pos < 0 && any && bit == 0 && !end_given)
        pos = (int64_t)to;
    rs_int(c, pos);
out:
    item_put(it);
    return PROC_MORE;
}

/* ---- BITOP ---- */

#define BITOP_BLOCK 4096

/* Bytes [off, off+n) of a source, zeros past its end. */
static void read_block(struct item *it, size_t off, uint8_t *buf, size_t n)
{
    size_t have = 0;
    if (it != NULL && off < item_nbytes(it)) {
        have = item_nbytes(it) - off;
        if (have > n)
            have = n;
        item_value_read(it, off, buf, have);
    }
    memset(buf + have, 0, n - have);
}

/* BITOP op destkey srckey [srckey ...] */
enum proc_result resp_cmd_bitop(struct conn *c, const struct resp_call *call)
{
    enum bits_op op;
    if (rs_arg_is(&call->argv[1], "and")) {
        op = BITS_AND;
    } else if (rs_arg_is(&call->argv[1], "or")) {
        op = BITS_OR;
    } else if (rs_arg_is(&call->argv[1], "xor")) {
        op = BITS_XOR;
    } else if (rs_arg_is(&call->argv[1], "not")) {
        op = BITS_NOT;
    } else {
        rs_error(c, RS_ERR_SYNTAX);
        return PROC_MORE;
    }
    if (op == BITS_NOT && call->argc != 4) {
        rs_error(c, "ERR BITOP NOT must be called with a single source key.");
        return PROC_MORE;
    }
    size_t nsrc = (size_t)call->argc - 3, got = 0, maxlen = 0;
    struct item *small[16];
    struct item **src = small;
    if (nsrc > 16 && (src = malloc(sizeof(*src) * nsrc)) == NULL) {
        rs_error(c, "ERR out of memory");
        return PROC_MORE;
    }
    for (; got < nsrc; got++) {
        src[got] = resp_read_item(c, &call->argv[3 + got]);
        if (src[got] != NULL && item_is_typed(src[got])) {
            rs_error(c, RS_ERR_WRONGTYPE);
            got++;
            goto out;
        }
        if (src[got] != NULL && item_nbytes(src[got]) > maxlen)
            maxlen = item_nbytes(src[got]);
    }

    const struct resp_arg *dkey = &call->argv[2];
    struct item *it = NULL;
    if (maxlen > 0) {
        enum item_alloc_status st;
        it = item_alloc_big(dkey->ptr, dkey->len, 0, 0, maxlen, resp_max_bulk(), c->now, &st);
        if (it == NULL) {
            rs_alloc_error(c, (int)st);
            goto out;
        }
        uint8_t acc[BITOP_BLOCK], buf[BITOP_BLOCK];
        for (size_t off = 0; off < maxlen; off += BITOP_BLOCK) {
            size_t n = maxlen - off < BITOP_BLOCK ? maxlen - off : BITOP_BLOCK;
            read_block(src[0], off, acc, n);
            if (op == BITS_NOT)
                bits_apply(op, acc, acc, n);
            for (size_t i = 1; i < nsrc; i++) {
                read_block(src[i], off, buf, n);
                bits_apply(op, acc, buf, n);
            }
            item_value_write(it, off, acc, n);
        }
    }
    uint64_t hv = item_hash(dkey->ptr, dkey->len);
    item_lock(hv);
    struct item *old = do_item_find(dkey->ptr, dkey->len, hv, c->now, NULL);
    if (it != NULL)
        do_item_replace(old, it, hv);
    else if (old != NULL)
        do_item_unlink(old, hv);   /* an empty result deletes the key */
    item_unlock(hv);
    if (old != NULL)
        item_put(old);
    if (it != NULL)
        item_put(it);
    rs_int(c, (int64_t)maxlen);
out:
    for (size_t i = 0; i < got; i++)
        if (src[i] != NULL)
            item_put(src[i]);
    if (src != small)
        free(src);
    return PROC_MORE;
}
