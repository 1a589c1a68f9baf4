/*
 * LCS key1 key2 [LEN] [IDX] [MINMATCHLEN n] [WITHMATCHLEN]: the longest
 * common subsequence of two string values (util/lcs.c does the work).
 *
 * Like Redis, the command needs a table of (len1 + 1) * (len2 + 1) 32-bit
 * cells, refused when it would exceed proto-max-bulk-len; it is the one
 * allocation, made per call (and a copy of a chunked value, which is not
 * contiguous). The values are read by reference, so the table is computed
 * outside every lock; the CPU time is O(len1 * len2), as in Redis.
 */
#include <stdlib.h>

#include "cmd/resp_cmds.h"
#include "stats/stats.h"
#include "storage/item.h"
#include "util/lcs.h"

/* A value's bytes, contiguous: the item's own, or a copy in *copy. */
static const uint8_t *value_bytes(struct item *it, uint8_t **copy)
{
    *copy = NULL;
    if (it == NULL)
        return (const uint8_t *)"";
    if (!item_is_chunked(it))
        return (const uint8_t *)item_value(it);
    if ((*copy = malloc(item_nbytes(it) + 1)) != NULL)
        item_value_read(it, 0, *copy, item_nbytes(it));
    return *copy;
}

struct lcs_emit {
    struct conn *c;
    int64_t minlen;
    bool withlen, send;
    size_t n;
};

static void on_range(void *arg, const struct lcs_range *r)
{
    struct lcs_emit *e = arg;
    int64_t len = (int64_t)r->a1 - r->a0 + 1;
    if (e->minlen > 0 && len < e->minlen)
        return;
    e->n++;
    if (!e->send)
        return;
    rs_array(e->c, e->withlen ? 3 : 2);
    rs_array(e->c, 2);
    rs_int(e->c, r->a0);
    rs_int(e->c, r->a1);
    rs_array(e->c, 2);
    rs_int(e->c, r->b0);
    rs_int(e->c, r->b1);
    if (e->withlen)
        rs_int(e->c, len);
}


enum proc_result resp_cmd_lcs(struct conn *c, const struct resp_call *call)
{
    struct item *ia = resp_read_item(c, &call->argv[1]), *ib = resp_read_item(c, &call->argv[2]);
    uint8_t *ca = NULL, *cb = NULL, *out = NULL;
    uint32_t *t = NULL;
    bool getlen = false, getidx = false;
    struct lcs_emit e = {c, 0, false, false, 0};
    if ((ia != NULL && item_is_typed(ia)) || (ib != NULL && item_is_typed(ib))) {
        rs_error(c, "ERR The specified keys must contain string values");
        goto out;
    }
    for (int j = 3; j < call->argc; j++) {
        const struct resp_arg *o = &call->argv[j];
        if (rs_arg_is(o, "idx")) {
            getidx = true;
        } else if (rs_arg_is(o, "len")) {
            getlen = true;
        } else if (rs_arg_is(o, "withmatchlen")) {
            e.withlen = true;
        } else if (rs_arg_is(o, "minmatchlen") && j + 1 < call->argc) {
            if (!rs_arg_i64(c, &call->argv[++j], &e.minlen))
                goto out;
            if (e.minlen < 0)
                e.minlen = 0;
        } else {
            rs_error(c, RS_ERR_SYNTAX);
            goto out;
        }
    }
    if (getlen && getidx) {
        rs_error(c, "ERR If you want both the length and indexes, please just use IDX.");
        goto out;
    }
    size_t alen = ia != NULL ? item_nbytes(ia) : 0, blen = ib != NULL ? item_nbytes(ib) : 0;
    if (alen >= UINT32_MAX - 1 || blen >= UINT32_MAX - 1) {
        rs_error(c, "ERR String too long for LCS");
        goto out;
    }
    uint64_t cells = ((uint64_t)alen + 1) * ((uint64_t)blen + 1);
    if (cells * sizeof(uint32_t) > resp_max_bulk()) {
        rs_error(c, "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len");
        goto out;
    }
    const uint8_t *a = value_bytes(ia, &ca), *b = value_bytes(ib, &cb);
    t = malloc((size_t)cells * sizeof(uint32_t));
    if (t == NULL || a == NULL || b == NULL) {
        rs_error(c, "ERR Insufficient memory, failed allocating transient memory for LCS");
        goto out;
    }
    uint32_t n = lcs_fill(t, a, (uint32_t)alen, b, (uint32_t)blen);
    if (getidx) {
        lcs_walk(t, a, (uint32_t)alen, b, (uint32_t)blen, NULL, on_range, &e);
        rs_map(c, 2);
        rs_bulk_str(c, "matches");
        rs_array(c, e.n);
        e.send = true;
        lcs_walk(t, a, (uint32_t)alen, b, (uint32_t)blen, NULL, on_range, &e);
        rs_bulk_str(c, "len");
        rs_int(c, n);
    } else if (getlen) {
        rs_int(c, n);
    } else if ((out = malloc(n + 1)) == NULL) {
        rs_error(c, "ERR Insufficient memory, failed allocating transient memory for LCS");
    } else {
        lcs_walk(t, a, (uint32_t)alen, b, (uint32_t)blen, out, NULL, NULL);
        rs_bulk(c, out, n);
    }
out:
    free(t);
    free(out);
    free(ca);
    free(cb);
    if (ia != NULL)
        item_put(ia);
    if (ib != NULL)
        item_put(ib);
    return PROC_MORE;
}
