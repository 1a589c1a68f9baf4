/*
 * Unit tests for proto/resp_reply: every element the composer in
 * proto/resp.c writes reads back as itself (compose, then parse), nested
 * arrays walk element by element, incomplete input asks for more at every
 * split point, and malformed input is refused.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "proto/resp.h"
#include "proto/resp_reply.h"

static enum parse_status next(const char *p, size_t n, size_t *used, struct resp_reply_elem *e)
{
    return resp_reply_next(p, n, used, e);
}

START_TEST(test_composed_scalars_read_back)
{
    char buf[128];
    size_t n, used;
    struct resp_reply_elem e;

    n = resp_put_int(buf, sizeof(buf), -9223372036854775807LL - 1);
    ck_assert_int_eq(next(buf, n, &used, &e), PARSE_OK);
    ck_assert_int_eq(e.type, RR_INT);
    ck_assert(e.n == INT64_MIN);
    ck_assert_uint_eq(used, n);

    n = resp_put_bulk(buf, sizeof(buf), "a\r\nb", 4);
    ck_assert_int_eq(next(buf, n, &used, &e), PARSE_OK);
    ck_assert_int_eq(e.type, RR_BULK);
    ck_assert(!e.null);
    ck_assert_uint_eq(e.len, 4);
    ck_assert(memcmp(e.ptr, "a\r\nb", 4) == 0);
    ck_assert_uint_eq(used, n);

    n = resp_put_null_bulk(buf, sizeof(buf));
    ck_assert_int_eq(next(buf, n, &used, &e), PARSE_OK);
    ck_assert_int_eq(e.type, RR_BULK);
    ck_assert(e.null);

    n = resp_put_simple(buf, sizeof(buf), "OK", 2);
    ck_assert_int_eq(next(buf, n, &used, &e), PARSE_OK);
    ck_assert_int_eq(e.type, RR_STATUS);
    ck_assert_uint_eq(e.len, 2);
    ck_assert(memcmp(e.ptr, "OK", 2) == 0);

    n = resp_put_error(buf, sizeof(buf), "ERR bad", 7);
    ck_assert_int_eq(next(buf, n, &used, &e), PARSE_OK);
    ck_assert_int_eq(e.type, RR_ERROR);
    ck_assert_uint_eq(e.len, 7);

    n = resp_put_bulk(buf, sizeof(buf), "", 0);
    ck_assert_int_eq(next(buf, n, &used, &e), PARSE_OK);
    ck_assert_int_eq(e.type, RR_BULK);
    ck_assert(!e.null);
    ck_assert_uint_eq(e.len, 0);
}
END_TEST

START_TEST(test_resp3_elements_read_back)
{
    char buf[128];
    size_t n, used;
    struct resp_reply_elem e;

    n = resp_put_null(buf, sizeof(buf));
    ck_assert_int_eq(next(buf, n, &used, &e), PARSE_OK);
    ck_assert_int_eq(e.type, RR_NULL);
    n = resp_put_bool(buf, sizeof(buf), true);
    ck_assert_int_eq(next(buf, n, &used, &e), PARSE_OK);
    ck_assert_int_eq(e.type, RR_BOOL);
    ck_assert_int_eq(e.n, 1);
    n = resp_put_double(buf, sizeof(buf), 1.5);
    ck_assert_int_eq(next(buf, n, &used, &e), PARSE_OK);
    ck_assert_int_eq(e.type, RR_DOUBLE);
    n = resp_put_map_hdr(buf, sizeof(buf), 3);
    ck_assert_int_eq(next(buf, n, &used, &e), PARSE_OK);
    ck_assert_int_eq(e.type, RR_MAP);
    ck_assert_int_eq(e.n, 3);
}
END_TEST

START_TEST(test_nested_array_walks_element_by_element)
{
    const char *r = "*3\r\n:1\r\n*2\r\n$1\r\nx\r\n*-1\r\n+OK\r\n";
    size_t n = strlen(r), off = 0, used;
    struct resp_reply_elem e;
    enum resp_reply_type want[] = {RR_ARRAY, RR_INT, RR_ARRAY, RR_BULK, RR_ARRAY, RR_STATUS};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        ck_assert_int_eq(next(r + off, n - off, &used, &e), PARSE_OK);
        ck_assert_int_eq(e.type, want[i]);
        if (i == 4)
            ck_assert(e.null);
        off += used;
    }
    ck_assert_uint_eq(off, n);
}
END_TEST

START_TEST(test_every_split_point_asks_for_more)
{
    const char *r[] = {":12\r\n", "$5\r\nhello\r\n", "+OK\r\n", "*2\r\n", "-ERR x\r\n"};
    for (size_t k = 0; k < sizeof(r) / sizeof(r[0]); k++) {
        size_t n = strlen(r[k]), used;
        struct resp_reply_elem e;
        for (size_t cut = 0; cut < n; cut++)
            ck_assert_int_eq(next(r[k], cut, &used, &e), PARSE_AGAIN);
        ck_assert_int_eq(next(r[k], n, &used, &e), PARSE_OK);
        ck_assert_uint_eq(used, n);
    }
}
END_TEST

START_TEST(test_malformed_replies_are_refused)
{
    const char *bad[] = {"?x\r\n", ":12a\r\n", ":\r\n", "$-2\r\n", "$3\r\nabcd\r\n", "*-5\r\n",
                         ":1\rx", "#x\r\n", "_x\r\n", "%-1\r\n", ":99999999999999999999\r\n"};
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        size_t used;
        struct resp_reply_elem e;
        ck_assert_msg(next(bad[k], strlen(bad[k]), &used, &e) == PARSE_INVALID, "%s", bad[k]);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("resp_reply");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_composed_scalars_read_back);
    tcase_add_test(tc, test_resp3_elements_read_back);
    tcase_add_test(tc, test_nested_array_walks_element_by_element);
    tcase_add_test(tc, test_every_split_point_asks_for_more);
    tcase_add_test(tc, test_malformed_replies_are_refused);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
