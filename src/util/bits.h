/*
 * Bit arithmetic over byte strings, as Redis's bit commands see them: bit 0
 * is the most significant bit of byte 0, so bit i is byte i/8's bit
 * 7 - i%8. Ranges are half open, [from, to) in bits, within a buffer the
 * caller owns.
 *
 * Every function is pure and allocation-free, so a command can feed it one
 * segment of a chunked value after another: a segment starting at byte b
 * holds the string's bits from 8*b on.
 */
#ifndef KIOKU_BITS_H
#define KIOKU_BITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The number of set bits in p's bits [from, to). */
uint64_t bits_count(const uint8_t *p, uint64_t from, uint64_t to);

/* The index of the first bit of p in [from, to) that equals `bit` (0 or
 * 1), or -1 when there is none. */
int64_t bits_find(const uint8_t *p, uint64_t from, uint64_t to, int bit);

/*
 * BITCOUNT's and BITPOS's range arguments, as Redis reads them: start and
 * end count bytes (or bits with `in_bits`) of a string of len bytes,
 * negative ones from its end, both inclusive, clipped to the string. On
 * true, [*from, *to) is the bit range they cover (whole bytes unless
 * in_bits); false when it is empty.
 */
bool bits_range(int64_t start, int64_t end, uint64_t len, bool in_bits,
                uint64_t *from, uint64_t *to);

enum bits_op { BITS_AND, BITS_OR, BITS_XOR, BITS_NOT };

/* dst[i] = dst[i] op src[i] for i < n; NOT ignores src and inverts dst. */
void bits_apply(enum bits_op op, uint8_t *dst, const uint8_t *src, size_t n);

#endif
