/*
 * Unit tests for auth/auth: the authfile parser (memcached's format, with
 * its silent truncations turned into errors), the constant-time
 * comparison, and the RESP rules for the "default" user.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/auth.h"

static struct auth_table t;

static int parse(const char *data, char *err, size_t errlen)
{
    return auth_table_parse(&t, data, strlen(data), err, errlen);
}

static bool check(const char *user, const char *pass)
{
    return auth_table_check(&t, user, strlen(user), pass, strlen(pass));
}

START_TEST(test_parse_reads_user_password_lines)
{
    char err[200] = "";
    ck_assert_int_eq(parse("alice:secret\nbob:pw2\n", err, sizeof(err)), 0);
    ck_assert_uint_eq(t.n, 2);
    ck_assert(check("alice", "secret"));
    ck_assert(check("bob", "pw2"));
    ck_assert(!check("alice", "pw2"));
    ck_assert(!check("bob", "secret"));
    ck_assert(!check("carol", "secret"));
}
END_TEST

START_TEST(test_parse_splits_at_first_colon_and_keeps_spaces)
{
    char err[200] = "";
    ck_assert_int_eq(parse("u:pa:ss word\n", err, sizeof(err)), 0);
    ck_assert(check("u", "pa:ss word"));
    ck_assert(!check("u", "pa"));
}
END_TEST

START_TEST(test_parse_strips_cr_and_takes_last_line_without_newline)
{
    char err[200] = "";
    /* memcached drops the last byte of a file without a final newline;
     * kioku keeps the whole password. */
    ck_assert_int_eq(parse("a:one\r\nb:two", err, sizeof(err)), 0);
    ck_assert(check("a", "one"));
    ck_assert(check("b", "two"));
    ck_assert(!check("a", "one\r"));
}
END_TEST

START_TEST(test_parse_allows_empty_password)
{
    char err[200] = "";
    ck_assert_int_eq(parse("guest:\n", err, sizeof(err)), 0);
    ck_assert(check("guest", ""));
    ck_assert(!check("guest", "x"));
}
END_TEST

START_TEST(test_parse_rejects_line_without_colon_by_number_only)
{
    char err[200] = "";
    ck_assert_int_eq(parse("a:b\nnocolonsecret\n", err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "line 2"));
    ck_assert_ptr_null(strstr(err, "nocolonsecret"));
    ck_assert_int_eq(parse("a:b\n\nc:d\n", err, sizeof(err)), -1);   /* empty line */
    ck_assert_ptr_nonnull(strstr(err, "line 2"));
}
END_TEST

START_TEST(test_parse_rejects_fields_longer_than_max)
{
    char err[200] = "", buf[AUTH_FIELD_MAX + 20];
    memset(buf, 'p', sizeof(buf));
    memcpy(buf, "u:", 2);
    buf[2 + AUTH_FIELD_MAX] = '\0';   /* exactly the maximum */
    ck_assert_int_eq(parse(buf, err, sizeof(err)), 0);
    buf[2 + AUTH_FIELD_MAX] = 'p';
    buf[3 + AUTH_FIELD_MAX] = '\0';   /* one more */
    ck_assert_int_eq(parse(buf, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "too long"));
}
END_TEST

START_TEST(test_parse_rejects_more_entries_than_max_instead_of_truncating)
{
    char err[200] = "", buf[(AUTH_USERS_MAX + 1) * 16];
    size_t n = 0;
    for (int i = 0; i < AUTH_USERS_MAX; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "u%d:p%d\n", i, i);
    ck_assert_int_eq(auth_table_parse(&t, buf, n, err, sizeof(err)), 0);
    ck_assert(check("u63", "p63"));
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "last:x\n");
    ck_assert_int_eq(auth_table_parse(&t, buf, n, err, sizeof(err)), -1);
}
END_TEST

START_TEST(test_equal_needs_same_length_and_bytes)
{
    char secret[AUTH_FIELD_MAX] = "abc";
    ck_assert(auth_equal(secret, 3, "abc", 3));
    ck_assert(!auth_equal(secret, 3, "abd", 3));
    ck_assert(!auth_equal(secret, 3, "ab", 2));
    ck_assert(!auth_equal(secret, 3, "abc\0", 4));   /* padding is not a match */
    char longer[AUTH_FIELD_MAX + 10];
    memset(longer, 0, sizeof(longer));
    memcpy(longer, "abc", 3);
    ck_assert(!auth_equal(secret, 3, longer, sizeof(longer)));
}
END_TEST

START_TEST(test_resp_without_passwords_is_redis_nopass)
{
    char err[200];
    ck_assert_int_eq(auth_setup(NULL, NULL, err, sizeof(err)), 0);
    ck_assert(!auth_resp_required());
    ck_assert(!auth_file_enabled());
    ck_assert_int_eq(auth_resp_check(NULL, 0, "x", 1), AUTH_NOPASS);
    ck_assert_int_eq(auth_resp_check("default", 7, "x", 1), AUTH_OK);
    ck_assert_int_eq(auth_resp_check("bob", 3, "x", 1), AUTH_WRONGPASS);
    auth_teardown();
}
END_TEST

START_TEST(test_resp_requirepass_guards_default_user_and_can_change)
{
    char err[200], buf[64];
    ck_assert_int_eq(auth_setup(NULL, "s3cret", err, sizeof(err)), 0);
    ck_assert(auth_resp_required());
    ck_assert_int_eq(auth_resp_check(NULL, 0, "s3cret", 6), AUTH_OK);
    ck_assert_int_eq(auth_resp_check("default", 7, "s3cret", 6), AUTH_OK);
    ck_assert_int_eq(auth_resp_check(NULL, 0, "s3cre", 5), AUTH_WRONGPASS);
    auth_get_requirepass(buf, sizeof(buf));
    ck_assert_str_eq(buf, "s3cret");
    ck_assert_int_eq(auth_set_requirepass("new", 3), 0);
    ck_assert_int_eq(auth_resp_check(NULL, 0, "s3cret", 6), AUTH_WRONGPASS);
    ck_assert_int_eq(auth_resp_check(NULL, 0, "new", 3), AUTH_OK);
    ck_assert_int_eq(auth_set_requirepass("", 0), 0);
    ck_assert(!auth_resp_required());
    auth_teardown();
}
END_TEST

START_TEST(test_resp_file_users_and_default_entry)
{
    char path[] = "/tmp/kioku-check-auth-XXXXXX", err[300];
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    const char data[] = "alice:secret\ndefault:dpw\n";
    ck_assert_int_eq(write(fd, data, sizeof(data) - 1), (ssize_t)(sizeof(data) - 1));
    close(fd);
    ck_assert_int_eq(auth_setup(path, NULL, err, sizeof(err)), 0);
    ck_assert(auth_file_enabled());
    ck_assert(auth_resp_required());
    ck_assert_str_eq(auth_file_path(), path);
    ck_assert(auth_file_check("alice", 5, "secret", 6));
    ck_assert_int_eq(auth_resp_check("alice", 5, "secret", 6), AUTH_OK);
    ck_assert_int_eq(auth_resp_check(NULL, 0, "dpw", 3), AUTH_OK);
    ck_assert_int_eq(auth_resp_check(NULL, 0, "secret", 6), AUTH_WRONGPASS);
    /* requirepass, when set, is the default user's password */
    ck_assert_int_eq(auth_set_requirepass("rp", 2), 0);
    ck_assert_int_eq(auth_resp_check(NULL, 0, "dpw", 3), AUTH_WRONGPASS);
    ck_assert_int_eq(auth_resp_check(NULL, 0, "rp", 2), AUTH_OK);
    auth_teardown();
    unlink(path);
    ck_assert_int_eq(auth_setup(path, NULL, err, sizeof(err)), -1);   /* gone */
    ck_assert_ptr_nonnull(strstr(err, "Could not open authfile"));
}
END_TEST

static Suite *auth_suite(void)
{
    Suite *s = suite_create("auth");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_parse_reads_user_password_lines);
    tcase_add_test(tc, test_parse_splits_at_first_colon_and_keeps_spaces);
    tcase_add_test(tc, test_parse_strips_cr_and_takes_last_line_without_newline);
    tcase_add_test(tc, test_parse_allows_empty_password);
    tcase_add_test(tc, test_parse_rejects_line_without_colon_by_number_only);
    tcase_add_test(tc, test_parse_rejects_fields_longer_than_max);
    tcase_add_test(tc, test_parse_rejects_more_entries_than_max_instead_of_truncating);
    tcase_add_test(tc, test_equal_needs_same_length_and_bytes);
    tcase_add_test(tc, test_resp_without_passwords_is_redis_nopass);
    tcase_add_test(tc, test_resp_requirepass_guards_default_user_and_can_change);
    tcase_add_test(tc, test_resp_file_users_and_default_entry);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(auth_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
