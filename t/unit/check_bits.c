/*
 * Unit tests for util/bits.c: counting and searching over every bit range
 * of random buffers, against a one-bit-at-a-time reference, and Redis's
 * range rules (negative indexes, clipping, BYTE vs BIT) as redis-server 7
 * answers BITCOUNT.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "util/bits.h"

static int bit_at(const uint8_t *p, uint64_t i)
{
    return (p[i >> 3] >> (7 - (i & 7))) & 1;
}

static uint64_t slow_count(const uint8_t *p, uint64_t from, uint64_t to)
{
    uint64_t n = 0;
    for (uint64_t i = from; i < to; i++)
        n += (uint64_t)bit_at(p, i);
    return n;
}

static int64_t slow_find(const uint8_t *p, uint64_t from, uint64_t to, int bit)
{
    for (uint64_t i = from; i < to; i++)
        if (bit_at(p, i) == bit)
            return (int64_t)i;
    return -1;
}

START_TEST(test_known_values)
{
    const uint8_t p[] = {0xff, 0xf0, 0x00, 0x01};
    ck_assert_uint_eq(bits_count(p, 0, 32), 13);
    ck_assert_uint_eq(bits_count(p, 4, 12), 8);
    ck_assert_uint_eq(bits_count(p, 3, 5), 2);
    ck_assert_uint_eq(bits_count(p, 12, 31), 0);
    ck_assert_uint_eq(bits_count(p, 31, 32), 1);
    ck_assert_uint_eq(bits_count(p, 5, 5), 0);
    ck_assert_int_eq(bits_find(p, 0, 32, 0), 12);
    ck_assert_int_eq(bits_find(p, 0, 32, 1), 0);
    ck_assert_int_eq(bits_find(p, 12, 32, 1), 31);
    ck_assert_int_eq(bits_find(p, 12, 31, 1), -1);
    ck_assert_int_eq(bits_find(p, 0, 12, 0), -1);
}
END_TEST

/* Every range of random buffers whose bytes are mostly 0x00 or 0xff, so
 * the word-skipping paths are taken as well as the bit-by-bit ones. */
START_TEST(test_random_ranges_match_reference)
{
    unsigned seed = 7;
    uint8_t buf[80];
    for (int round = 0; round < 40; round++) {
        for (size_t i = 0; i < sizeof(buf); i++) {
            int r = rand_r(&seed) % 10;
            buf[i] = r < 4 ? 0x00 : r < 8 ? 0xff : (uint8_t)rand_r(&seed);
        }
        uint64_t nbits = sizeof(buf) * 8;
        for (uint64_t from = 0; from <= nbits; from += 1 + (uint64_t)(rand_r(&seed) % 7)) {
            for (uint64_t to = from; to <= nbits; to += 1 + (uint64_t)(rand_r(&seed) % 11)) {
                if (bits_count(buf, from, to) != slow_count(buf, from, to))
                    ck_abort_msg("count [%llu,%llu) round %d", (unsigned long long)from,
                                 (unsigned long long)to, round);
                for (int bit = 0; bit <= 1; bit++)
                    if (bits_find(buf, from, to, bit) != slow_find(buf, from, to, bit))
                        ck_abort_msg("find %d [%llu,%llu) round %d", bit,
                                     (unsigned long long)from, (unsigned long long)to, round);
            }
        }
    }
}
END_TEST

/* The ranges redis-server 7.0 gives for BITCOUNT on "foobar" (6 bytes). */
START_TEST(test_range_rules)
{
    uint64_t from, to;
    ck_assert(bits_range(0, -1, 6, false, &from, &to));
    ck_assert_uint_eq(from, 0);
    ck_assert_uint_eq(to, 48);
    ck_assert(bits_range(1, 1, 6, false, &from, &to));
    ck_assert_uint_eq(from, 8);
    ck_assert_uint_eq(to, 16);
    ck_assert(bits_range(5, 30, 6, true, &from, &to));
    ck_assert_uint_eq(from, 5);
    ck_assert_uint_eq(to, 31);
    ck_assert(bits_range(-100, 1000, 6, true, &from, &to));
    ck_assert_uint_eq(from, 0);
    ck_assert_uint_eq(to, 48);
    ck_assert(bits_range(-2, -1, 6, false, &from, &to));
    ck_assert_uint_eq(from, 32);
    ck_assert_uint_eq(to, 48);
    ck_assert(!bits_range(3, 2, 6, false, &from, &to));
    ck_assert(!bits_range(0, -1, 0, false, &from, &to));
    ck_assert(!bits_range(10, 20, 6, false, &from, &to));
    /* Both before the start clip to byte 0 (BITCOUNT answers 0 itself
     * when start > end < 0; BITPOS does not). */
    ck_assert(bits_range(-20, -30, 6, false, &from, &to));
    ck_assert_uint_eq(from, 0);
    ck_assert_uint_eq(to, 8);
}
END_TEST

START_TEST(test_apply)
{
    uint8_t a[3] = {0xf0, 0x0f, 0xaa};
    const uint8_t b[3] = {0xff, 0x00, 0x0f};
    bits_apply(BITS_AND, a, b, 3);
    ck_assert(memcmp(a, (uint8_t[]){0xf0, 0x00, 0x0a}, 3) == 0);
    bits_apply(BITS_OR, a, b, 3);
    ck_assert(memcmp(a, (uint8_t[]){0xff, 0x00, 0x0f}, 3) == 0);
    bits_apply(BITS_XOR, a, (uint8_t[]){0x0f, 0x01, 0xff}, 3);
    ck_assert(memcmp(a, (uint8_t[]){0xf0, 0x01, 0xf0}, 3) == 0);
    bits_apply(BITS_NOT, a, a, 3);
    ck_assert(memcmp(a, (uint8_t[]){0x0f, 0xfe, 0x0f}, 3) == 0);
}
END_TEST

static Suite *bits_suite(void)
{
    Suite *s = suite_create("bits");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_known_values);
    tcase_add_test(tc, test_random_ranges_match_reference);
    tcase_add_test(tc, test_range_rules);
    tcase_add_test(tc, test_apply);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(bits_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
