/*
 * LCS table and walk (see lcs.h). The walk prefers stepping back in b when
 * the two neighbouring cells tie, and closes a range at the first
 * non-matching step or when either string's first byte was matched: this
 * is the choice that makes the ranges Redis 7 reports.
 */
#include "util/lcs.h"

#define CELL(t, blen, i, j) (t)[(size_t)(i) * ((size_t)(blen) + 1) + (j)]

uint32_t lcs_fill(uint32_t *t, const uint8_t *a, uint32_t alen, const uint8_t *b, uint32_t blen)
{
    for (uint32_t j = 0; j <= blen; j++)
        CELL(t, blen, 0, j) = 0;
    for (uint32_t i = 1; i <= alen; i++) {
        CELL(t, blen, i, 0) = 0;
        for (uint32_t j = 1; j <= blen; j++) {
            if (a[i - 1] == b[j - 1]) {
                CELL(t, blen, i, j) = CELL(t, blen, i - 1, j - 1) + 1;
            } else {
                uint32_t up = CELL(t, blen, i - 1, j), left = CELL(t, blen, i, j - 1);
                CELL(t, blen, i, j) = up > left ? up : left;
            }
        }
    }
    return CELL(t, blen, alen, blen);
}

void lcs_walk(const uint32_t *t, const uint8_t *a, uint32_t alen, const uint8_t *b, uint32_t blen,
              uint8_t *out, lcs_range_fn fn, void *arg)
{
    uint32_t i = alen, j = blen, k = CELL(t, blen, alen, blen);
    struct lcs_range r = {0, 0, 0, 0};
    int open = 0;
    while (i > 0 && j > 0) {
        int close = 0;
        if (a[i - 1] == b[j - 1]) {
            if (out != NULL)
                out[k - 1] = a[i - 1];
            if (!open) {
                r = (struct lcs_range){i - 1, i - 1, j - 1, j - 1};
                open = 1;
            } else {
                r.a0 = i - 1;   /* a step back in both: still one run */
                r.b0 = j - 1;
            }
            close = r.a0 == 0 || r.b0 == 0;
            k--;
            i--;
            j--;
        } else {
            if (CELL(t, blen, i - 1, j) > CELL(t, blen, i, j - 1))
                i--;
            else
                j--;
            close = open;
        }
        if (close) {
            if (fn != NULL)
                fn(arg, &r);
            open = 0;
        }
    }
}
