/*
 * Longest common subsequence of two byte strings, for Redis's LCS command:
 * the classic dynamic-programming table, and a walk back through it that
 * yields the subsequence and its matching ranges in the order Redis
 * reports them (from the ends of the strings towards their starts).
 *
 * The table has (alen + 1) * (blen + 1) cells of 32 bits, which the caller
 * allocates (it bounds the size first: the work and memory are
 * O(alen * blen)). Pure: no allocation, no globals.
 */
#ifndef KIOKU_LCS_H
#define KIOKU_LCS_H

#include <stddef.h>
#include <stdint.h>

/* Fill t; returns the length of the longest common subsequence. */
uint32_t lcs_fill(uint32_t *t, const uint8_t *a, uint32_t alen, const uint8_t *b, uint32_t blen);

/* One run of consecutive matches: a[a0..a1] == b[b0..b1], inclusive. */
struct lcs_range {
    uint32_t a0, a1, b0, b1;
};

typedef void (*lcs_range_fn)(void *arg, const struct lcs_range *r);

/*
 * Walk a filled table back from (alen, blen). Writes the subsequence to
 * out (its length is lcs_fill()'s result) unless out is NULL, and calls fn
 * (unless NULL) for each range, last range first.
 */
void lcs_walk(const uint32_t *t, const uint8_t *a, uint32_t alen, const uint8_t *b, uint32_t blen,
              uint8_t *out, lcs_range_fn fn, void *arg);

#endif
