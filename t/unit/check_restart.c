/*
 * Warm restart metadata: what is written reads back, and every kind of
 * damage or mismatch is refused with its reason (the store then starts
 * empty rather than trusting it). Pure: no files, no storage set-up.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "storage/restart.h"

static struct slab_layout layout;
static uint32_t p1[3] = {0, 4, 2}, p2[1] = {1};
static uint32_t *pages[STORAGE_CLASS_MAX + 1];

static void setup(void)
{
    memset(&layout, 0, sizeof(layout));
    memset(pages, 0, sizeof(pages));
    layout.region_bytes = 128u << 20;
    layout.shift = 3;
    layout.nclasses = 2;
    layout.chunk_size[1] = 96;
    layout.chunk_size[2] = 524288;
    layout.pages_taken = 5;
    layout.npages[1] = 3;
    layout.npages[2] = 1;
    layout.end_left[1] = 17;
    pages[1] = p1;
    pages[2] = p2;
}

static char *encode(size_t *n)
{
    char *buf = malloc(restart_meta_size(&layout));

    ck_assert_ptr_nonnull(buf);
    *n = restart_meta_encode(buf, &layout, pages, 64u << 20, 40, 1700000000123LL);
    ck_assert_uint_eq(*n, restart_meta_size(&layout));
    return buf;
}

START_TEST(test_metadata_round_trips)
{
    size_t n;
    char *buf = encode(&n), why[128] = "";
    struct restart_meta m;

    ck_assert_int_eq(restart_meta_decode(buf, n, &m, why, sizeof(why)), 0);
    ck_assert_uint_eq(m.mem_limit, 64u << 20);
    ck_assert_uint_eq(m.header_size, 40);
    ck_assert_int_eq(m.epoch_ms, 1700000000123LL);
    ck_assert_uint_eq(m.layout.npages[1], 3);
    ck_assert_uint_eq(m.layout.end_left[1], 17);
    ck_assert_mem_eq(m.pages[1], p1, sizeof(p1));
    ck_assert_mem_eq(m.pages[2], p2, sizeof(p2));
    ck_assert_int_eq(restart_meta_check(&m, &layout, 64u << 20, 40, why, sizeof(why)), 0);
    restart_meta_free(&m);
    free(buf);
}
END_TEST

START_TEST(test_every_flipped_byte_is_refused)
{
    size_t n;
    char *buf = encode(&n), why[128];
    struct restart_meta m;

    for (size_t i = 0; i < n; i++) {
        buf[i] ^= 0x10;
        ck_assert_msg(restart_meta_decode(buf, n, &m, why, sizeof(why)) != 0, "byte %zu", i);
        ck_assert(why[0] != '\0');
        buf[i] ^= 0x10;
    }
    ck_assert_int_ne(restart_meta_decode(buf, n - 1, &m, why, sizeof(why)), 0);
    ck_assert_int_ne(restart_meta_decode(buf, 10, &m, why, sizeof(why)), 0);
    ck_assert_ptr_nonnull(strstr(why, "truncated"));
    free(buf);
}
END_TEST

START_TEST(test_other_settings_are_refused_with_the_reason)
{
    size_t n;
    char *buf = encode(&n), why[128];
    struct restart_meta m;
    struct slab_layout other = layout;

    ck_assert_int_eq(restart_meta_decode(buf, n, &m, why, sizeof(why)), 0);
    ck_assert_int_ne(restart_meta_check(&m, &layout, 32u << 20, 40, why, sizeof(why)), 0);
    ck_assert_ptr_nonnull(strstr(why, "memory limit"));
    ck_assert_int_ne(restart_meta_check(&m, &layout, 64u << 20, 32, why, sizeof(why)), 0);
    ck_assert_ptr_nonnull(strstr(why, "CAS"));
    other.chunk_size[1] = 104;
    ck_assert_int_ne(restart_meta_check(&m, &other, 64u << 20, 40, why, sizeof(why)), 0);
    ck_assert_ptr_nonnull(strstr(why, "slab classes"));
    restart_meta_free(&m);
    free(buf);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("restart");
    TCase *tc = tcase_create("core");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_metadata_round_trips);
    tcase_add_test(tc, test_every_flipped_byte_is_refused);
    tcase_add_test(tc, test_other_settings_are_refused_with_the_reason);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
