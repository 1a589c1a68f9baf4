/*
 * Command-line parsing: memcached's flags, defaults and refusals.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "config/settings.h"

static struct settings s;
static char err[256];

static enum settings_action parse(int argc, const char **argv)
{
    settings_default(&s);
    err[0] = '\0';
    return settings_parse(&s, argc, (char **)argv, err, sizeof(err));
}

#define PARSE(...) ({ const char *av_[] = {"kioku", __VA_ARGS__}; \
                      parse((int)(sizeof(av_) / sizeof(av_[0])), av_); })

START_TEST(test_defaults_match_memcached)
{
    const char *av[] = {"kioku"};
    ck_assert_int_eq(parse(1, av), SETTINGS_RUN);
    ck_assert_int_eq(s.port, 11211);
    ck_assert_int_eq(s.udp_port, 0);
    ck_assert_str_eq(s.listen, "127.0.0.1");
    ck_assert_uint_eq(s.storage.mem_limit, 64u << 20);
    ck_assert_int_eq(s.max_conns, 1024);
    ck_assert_int_eq(s.threads, 4);
    ck_assert_uint_eq(s.storage.item_size_max, 1u << 20);
    ck_assert(s.storage.growth_factor > 1.249 && s.storage.growth_factor < 1.251);
    ck_assert_uint_eq(s.storage.chunk_size_min, 48);
    ck_assert(s.storage.evict);
    ck_assert(s.storage.use_cas);
    ck_assert_int_eq(s.backlog, 1024);
    ck_assert_int_eq(s.reqs_per_event, 20);
    ck_assert_int_eq(s.socket_mask, 0700);
}
END_TEST

START_TEST(test_short_flags_set_every_field)
{
    ck_assert_int_eq(PARSE("-p", "12000", "-l", "127.0.0.1,::1", "-m", "128", "-c", "50",
                           "-t", "2", "-I", "2m", "-f", "1.5", "-n", "64", "-M", "-C",
                           "-b", "99", "-U", "0", "-v", "-R", "7", "-A", "-F"), SETTINGS_RUN);
    ck_assert_int_eq(s.port, 12000);
    ck_assert_str_eq(s.listen, "127.0.0.1,::1");
    ck_assert_uint_eq(s.storage.mem_limit, 128u << 20);
    ck_assert_int_eq(s.max_conns, 50);
    ck_assert_int_eq(s.threads, 2);
    ck_assert_uint_eq(s.storage.item_size_max, 2u << 20);
    ck_assert(s.storage.growth_factor > 1.49 && s.storage.growth_factor < 1.51);
    ck_assert_uint_eq(s.storage.chunk_size_min, 64);
    ck_assert(!s.storage.evict);
    ck_assert(!s.storage.use_cas);
    ck_assert_int_eq(s.backlog, 99);
    ck_assert_int_eq(s.verbose, 1);
    ck_assert_int_eq(s.reqs_per_event, 7);
    ck_assert(s.enable_shutdown);
    ck_assert(!s.flush_enabled);
}
END_TEST

START_TEST(test_long_flags_match_short_ones)
{
    ck_assert_int_eq(PARSE("--port=12001", "--listen=127.0.0.2", "--memory-limit=32",
                           "--conn-limit=10", "--threads=3", "--max-item-size=512k",
                           "--slab-growth-factor=2", "--slab-min-size=100",
                           "--disable-evictions", "--disable-cas", "--listen-backlog=5",
                           "--udp-port=0", "--unix-mask=755"), SETTINGS_RUN);
    ck_assert_int_eq(s.port, 12001);
    ck_assert_str_eq(s.listen, "127.0.0.2");
    ck_assert_uint_eq(s.storage.mem_limit, 32u << 20);
    ck_assert_int_eq(s.max_conns, 10);
    ck_assert_int_eq(s.threads, 3);
    ck_assert_uint_eq(s.storage.item_size_max, 512u << 10);
    ck_assert_uint_eq(s.storage.chunk_size_min, 100);
    ck_assert(!s.storage.evict && !s.storage.use_cas);
    ck_assert_int_eq(s.backlog, 5);
    ck_assert_int_eq(s.socket_mask, 0755);
}
END_TEST

START_TEST(test_vv_counts_verbosity)
{
    ck_assert_int_eq(PARSE("-vv"), SETTINGS_RUN);
    ck_assert_int_eq(s.verbose, 2);
}
END_TEST

START_TEST(test_prefix_delimiter_defaults_to_colon_and_D_turns_detail_on)
{
    ck_assert_int_eq(PARSE("-p", "1"), SETTINGS_RUN);
    ck_assert_int_eq(s.prefix_delimiter, ':');
    ck_assert(!s.detail_enabled);
    ck_assert_int_eq(PARSE("-D", "/"), SETTINGS_RUN);
    ck_assert_int_eq(s.prefix_delimiter, '/');
    ck_assert(s.detail_enabled);
    ck_assert_int_eq(PARSE("--prefix-delimiter=#x"), SETTINGS_RUN);
    ck_assert_int_eq(s.prefix_delimiter, '#');   /* memcached takes the first byte */
    ck_assert_int_eq(PARSE("-D", ""), SETTINGS_ERROR);
}
END_TEST

START_TEST(test_B_chooses_the_binding_protocol)
{
    ck_assert_int_eq(PARSE("-p", "1"), SETTINGS_RUN);
    ck_assert_int_eq(s.binding, BINDING_AUTO);
    ck_assert_int_eq(PARSE("-B", "ascii"), SETTINGS_RUN);
    ck_assert_int_eq(s.binding, BINDING_ASCII);
    ck_assert_int_eq(PARSE("-B", "binary"), SETTINGS_RUN);
    ck_assert_int_eq(s.binding, BINDING_BINARY);
    ck_assert_int_eq(PARSE("--protocol=auto"), SETTINGS_RUN);
    ck_assert_int_eq(s.binding, BINDING_AUTO);
    ck_assert_int_eq(PARSE("-B", "http"), SETTINGS_ERROR);
}
END_TEST

START_TEST(test_help_and_version_actions)
{
    ck_assert_int_eq(PARSE("-h"), SETTINGS_HELP);
    ck_assert_int_eq(PARSE("--version"), SETTINGS_VERSION);
    ck_assert_ptr_nonnull(strstr(settings_usage(), "--max-item-size"));
}
END_TEST

START_TEST(test_unknown_flag_is_a_usage_error)
{
    ck_assert_int_eq(PARSE("-Q"), SETTINGS_ERROR);
    ck_assert_ptr_nonnull(strstr(err, "unknown option"));
    ck_assert_int_eq(PARSE("--no-such-flag"), SETTINGS_ERROR);
    ck_assert_int_eq(PARSE("stray"), SETTINGS_ERROR);
}
END_TEST

START_TEST(test_malformed_values_are_usage_errors)
{
    ck_assert_int_eq(PARSE("-p", "70000"), SETTINGS_ERROR);
    ck_assert_int_eq(PARSE("-p", "12x"), SETTINGS_ERROR);
    ck_assert_int_eq(PARSE("-t", "0"), SETTINGS_ERROR);
    ck_assert_int_eq(PARSE("-m", "-5"), SETTINGS_ERROR);
    ck_assert_int_eq(PARSE("-m", "0"), SETTINGS_ERROR);
    ck_assert_int_eq(PARSE("-f", "1.0"), SETTINGS_ERROR);
    ck_assert_int_eq(PARSE("-f", "abc"), SETTINGS_ERROR);
    ck_assert_int_eq(PARSE("-I", "512"), SETTINGS_ERROR);        /* under 1k */
    ck_assert_int_eq(PARSE("-I", "2g"), SETTINGS_ERROR);         /* over 1024m */
    ck_assert_int_eq(PARSE("-I", "1x"), SETTINGS_ERROR);
    ck_assert_int_eq(PARSE("-c", "0"), SETTINGS_ERROR);
    ck_assert_int_eq(PARSE("-a", "999"), SETTINGS_ERROR);
    ck_assert_int_eq(PARSE("-p"), SETTINGS_ERROR);               /* missing value */
    ck_assert_ptr_nonnull(strstr(err, "needs a value"));
}
END_TEST

START_TEST(test_udp_other_than_zero_is_refused)
{
    ck_assert_int_eq(PARSE("-U", "11211"), SETTINGS_ERROR);
    ck_assert_int_eq(PARSE("-U", "0"), SETTINGS_RUN);
}
END_TEST

START_TEST(test_item_size_over_half_memory_is_refused)
{
    ck_assert_int_eq(PARSE("-m", "64", "-I", "33m"), SETTINGS_ERROR);
    ck_assert_int_eq(PARSE("-m", "64", "-I", "32m"), SETTINGS_RUN);
    ck_assert_int_eq(PARSE("-m", "2048", "-I", "1024m"), SETTINGS_RUN);
}
END_TEST

START_TEST(test_extended_options)
{
    ck_assert_int_eq(PARSE("-o", "hashpower=20,resp_port=6380"), SETTINGS_RUN);
    ck_assert_uint_eq(s.storage.hashpower, 20);
    ck_assert_int_eq(s.resp_port, 6380);
    ck_assert_int_eq(PARSE("-o", "maxconns_fast,modern"), SETTINGS_RUN);
    ck_assert_int_eq(s.idle_timeout, 0);
    ck_assert_int_eq(PARSE("-o", "idle_timeout=3"), SETTINGS_RUN);
    ck_assert_int_eq(s.idle_timeout, 3);
    ck_assert_int_eq(PARSE("-o", "idle_timeout=x"), SETTINGS_ERROR);
    ck_assert_int_eq(PARSE("-o", "hashpower=99"), SETTINGS_ERROR);
    ck_assert_int_eq(PARSE("-o", "no_such_thing=1"), SETTINGS_ERROR);
    ck_assert_ptr_nonnull(strstr(err, "Illegal suboption"));
    ck_assert_int_eq(PARSE("--resp-port", "6390"), SETTINGS_RUN);
    ck_assert_int_eq(s.resp_port, 6390);
    ck_assert_int_eq(PARSE("--resp-port", "11211"), SETTINGS_ERROR);   /* same as -p */
}
END_TEST

START_TEST(test_size_suffixes)
{
    size_t v;
    ck_assert_int_eq(settings_parse_size("1024", &v), 0);
    ck_assert_uint_eq(v, 1024);
    ck_assert_int_eq(settings_parse_size("4k", &v), 0);
    ck_assert_uint_eq(v, 4096);
    ck_assert_int_eq(settings_parse_size("3M", &v), 0);
    ck_assert_uint_eq(v, 3u << 20);
    ck_assert_int_eq(settings_parse_size("1g", &v), 0);
    ck_assert_uint_eq(v, 1u << 30);
    ck_assert_int_eq(settings_parse_size("", &v), -1);
    ck_assert_int_eq(settings_parse_size("k", &v), -1);
    ck_assert_int_eq(settings_parse_size("1kb", &v), -1);
    ck_assert_int_eq(settings_parse_size("-1", &v), -1);
}
END_TEST

static Suite *settings_suite(void)
{
    Suite *su = suite_create("settings");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, test_defaults_match_memcached);
    tcase_add_test(tc, test_B_chooses_the_binding_protocol);
    tcase_add_test(tc, test_prefix_delimiter_defaults_to_colon_and_D_turns_detail_on);
    tcase_add_test(tc, test_short_flags_set_every_field);
    tcase_add_test(tc, test_long_flags_match_short_ones);
    tcase_add_test(tc, test_vv_counts_verbosity);
    tcase_add_test(tc, test_help_and_version_actions);
    tcase_add_test(tc, test_unknown_flag_is_a_usage_error);
    tcase_add_test(tc, test_malformed_values_are_usage_errors);
    tcase_add_test(tc, test_udp_other_than_zero_is_refused);
    tcase_add_test(tc, test_item_size_over_half_memory_is_refused);
    tcase_add_test(tc, test_extended_options);
    tcase_add_test(tc, test_size_suffixes);
    suite_add_tcase(su, tc);
    return su;
}

int main(void)
{
    SRunner *sr = srunner_create(settings_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
