/*
 * Bit counting and searching for SETBIT's family (see bits.h). Whole
 * 64-bit words are handled at a time in the middle of a range, since
 * BITCOUNT over a large bitmap is the common case; the ragged bytes and
 * bits at its edges go one at a time.
 */
#include "util/bits.h"

#include <string.h>

/* The bits of byte b from its bit `lo` to before `hi` (MSB first). */
static unsigned byte_mask(unsigned lo, unsigned hi)
{
    return (0xffu >> lo) & ~(0xffu >> hi) & 0xffu;
}

uint64_t bits_count(const uint8_t *p, uint64_t from, uint64_t to)
{
    uint64_t n = 0;
    while (from < to && (from & 7) != 0) {
        uint64_t byte = from >> 3;
        unsigned hi = (to >> 3) == byte ? (unsigned)(to & 7) : 8;
        n += (uint64_t)__builtin_popcount(p[byte] & byte_mask((unsigned)(from & 7), hi));
        from = (byte << 3) + hi;
    }
    if (from >= to)
        return n;
    size_t b = (size_t)(from >> 3), e = (size_t)(to >> 3);
    for (; b + 8 <= e; b += 8) {
        uint64_t w;
        memcpy(&w, p + b, 8);
        n += (uint64_t)__builtin_popcountll(w);
    }
    for (; b < e; b++)
        n += (uint64_t)__builtin_popcount(p[b]);
    if (to & 7)
        n += (uint64_t)__builtin_popcount(p[e] & byte_mask(0, (unsigned)(to & 7)));
    return n;
}

int64_t bits_find(const uint8_t *p, uint64_t from, uint64_t to, int bit)
{
    const uint8_t skip = bit ? 0x00 : 0xff;
    const uint64_t wskip = bit ? 0 : UINT64_MAX;
    while (from < to) {
        uint64_t byte = from >> 3;
        if ((from & 7) == 0 && to - from >= 64) {
            uint64_t w;
            memcpy(&w, p + byte, 8);
            if (w == wskip) {
                from += 64;
                continue;
            }
        }
        if ((from & 7) == 0 && to - from >= 8 && p[byte] == skip) {
            from += 8;
            continue;
        }
        unsigned v = bit ? p[byte] : (uint8_t)~p[byte];
        if (v & (0x80u >> (from & 7)))
            return (int64_t)from;
        from++;
    }
    return -1;
}

bool bits_range(int64_t start, int64_t end, uint64_t len, bool in_bits,
                uint64_t *from, uint64_t *to)
{
    int64_t total = (int64_t)(in_bits ? len * 8 : len);
    if (start < 0)
        start += total;
    if (end < 0)
        end += total;
    if (start < 0)
        start = 0;
    if (end < 0)
        end = 0;
    if (end >= total)
        end = total - 1;
    if (start > end)
        return false;
    *from = in_bits ? (uint64_t)start : (uint64_t)start * 8;
    *to = in_bits ? (uint64_t)end + 1 : ((uint64_t)end + 1) * 8;
    return true;
}

void bits_apply(enum bits_op op, uint8_t *dst, const uint8_t *src, size_t n)
{
    switch (op) {
    case BITS_AND:
        for (size_t i = 0; i < n; i++)
            dst[i] &= src[i];
        break;
    case BITS_OR:
        for (size_t i = 0; i < n; i++)
            dst[i] |= src[i];
        break;
    case BITS_XOR:
        for (size_t i = 0; i < n; i++)
            dst[i] ^= src[i];
        break;
    case BITS_NOT:
        for (size_t i = 0; i < n; i++)
            dst[i] = (uint8_t)~dst[i];
        break;
    }
}
