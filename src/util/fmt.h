/*
 * Number formatting for reply lines: no printf on the hot path.
 */
#ifndef KIOKU_FMT_H
#define KIOKU_FMT_H

#include <stddef.h>
#include <stdint.h>
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

#endif
