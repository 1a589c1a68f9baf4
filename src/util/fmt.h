/*
 * Number formatting for reply lines: no printf on the hot path.
 */
#ifndef KIOKU_FMT_H
#define KIOKU_FMT_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Write v in decimal at p (no NUL); return the length (at most 20). */
static inline size_t fmt_u64(char *p, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        p[i] = tmp[n - 1 - i];
    return n;
}

static inline size_t fmt_i64(char *p, int64_t v)
{
    if (v < 0) {
        *p = '-';
        return 1 + fmt_u64(p + 1, (uint64_t)0 - (uint64_t)v);
    }
    return fmt_u64(p, (uint64_t)v);
}

/*
 * A finite double as printf's "%.17g" writes it (what Redis replies for
 * scores and floats), at p with room for cap >= 32 bytes; returns the
 * length. Whole numbers below 1e17 are the common case (leaderboard
 * scores, counters) and "%.17g" prints them as plain integers, so they
 * skip printf's slow exact conversion. -0 keeps its sign through printf.
 */
static inline size_t fmt_g17(char *p, size_t cap, double d)
{
    if (d > -1e17 && d < 1e17 && d == (double)(int64_t)d && !(d == 0 && signbit(d)))
        return fmt_i64(p, (int64_t)d);
    int n = snprintf(p, cap, "%.17g", d);
    return n > 0 ? (size_t)n : 0;
}

#endif
