/*
 * Unit tests for util/sha1: the FIPS 180 example vectors, every padding
 * boundary (55, 56, 63, 64 bytes: one or two final blocks), a long input,
 * and the digest Redis gives a script ("return 1").
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "util/sha1.h"

static const char *hex_of(const void *data, size_t n)
{
    static char out[SHA1_HEX_LEN + 1];
    sha1_hex(out, data, n);
    return out;
}

static const char *hex_of_a(size_t n)
{
    char *buf = malloc(n + 1);
    ck_assert_ptr_nonnull(buf);
    memset(buf, 'a', n);
    const char *h = hex_of(buf, n);
    free(buf);
    return h;
}

START_TEST(test_standard_vectors)
{
    ck_assert_str_eq(hex_of("", 0), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    ck_assert_str_eq(hex_of("abc", 3), "a9993e364706816aba3e25717850c26c9cd0d89d");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    ck_assert_str_eq(hex_of(two, strlen(two)), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
}
END_TEST

START_TEST(test_padding_boundaries_one_or_two_final_blocks)
{
    ck_assert_str_eq(hex_of_a(55), "c1c8bbdc22796e28c0e15163d20899b65621d65a");
    ck_assert_str_eq(hex_of_a(56), "c2db330f6083854c99d4b5bfb6e8f29f201be699");
    ck_assert_str_eq(hex_of_a(64), "0098ba824b5c16427bd7a1122a5a442a25ec644d");
}
END_TEST

START_TEST(test_million_a)
{
    ck_assert_str_eq(hex_of_a(1000000), "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
}
END_TEST

START_TEST(test_script_digest_is_lowercase_hex_as_redis)
{
    ck_assert_str_eq(hex_of("return 1", 8), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sha1");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_standard_vectors);
    tcase_add_test(tc, test_padding_boundaries_one_or_two_final_blocks);
    tcase_add_test(tc, test_million_a);
    tcase_add_test(tc, test_script_digest_is_lowercase_hex_as_redis);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
