/*
 * The config file: its syntax (conffile_parse on strings, no files), the
 * options it sets through settings_apply_option, and settings_parse
 * reading one with the command line winning.
 */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/conffile.h"
#include "config/settings.h"
#include "storage/evict.h"

/* What a parse handed to the callback: "key=value" or "key" (no value),
 * one per call, joined by '|'. */
static char seen[1024];
static int fail_on_call;   /* 1-based call that fails; 0: none */
static int calls;

static int record(void *ctx, const char *key, const char *value, char *err, size_t errlen)
{
    (void)ctx;
    calls++;
    size_t n = strlen(seen);
    snprintf(seen + n, sizeof(seen) - n, "%s%s%s%s", n ? "|" : "", key, value ? "=" : "",
             value ? value : "");
    if (calls == fail_on_call) {
        snprintf(err, errlen, "bad %s", key);
        return -1;
    }
    return 0;
}

static char err[512];

static int parse_text(const char *text)
{
    seen[0] = '\0';
    err[0] = '\0';
    calls = 0;
    return conffile_parse("t.conf", text, strlen(text), record, NULL, err, sizeof(err));
}

START_TEST(test_equals_space_and_no_space_forms_read_alike)
{
    ck_assert_int_eq(parse_text("port = 1\nport 2\nport=3\n \tport\t=\t4 \r\nport   5"), 0);
    ck_assert_str_eq(seen, "port=1|port=2|port=3|port=4|port=5");
}
END_TEST

START_TEST(test_comments_and_blank_lines_are_skipped)
{
    ck_assert_int_eq(parse_text("# port = 1\n\n   \n\t# x\r\nthreads 2\n#"), 0);
    ck_assert_str_eq(seen, "threads=2");
    ck_assert_int_eq(calls, 1);
    ck_assert_int_eq(parse_text(""), 0);
    ck_assert_int_eq(calls, 0);
}
END_TEST

START_TEST(test_flag_has_no_value_and_empty_value_is_empty)
{
    ck_assert_int_eq(parse_text("daemon\nlisten =\nlru_crawler  \n"), 0);
    ck_assert_str_eq(seen, "daemon|listen=|lru_crawler");
}
END_TEST

START_TEST(test_value_is_the_rest_of_the_line_as_written)
{
    ck_assert_int_eq(parse_text("requirepass = a b # c=d\nextended hashpower=20,lru_crawler\n"), 0);
    ck_assert_str_eq(seen, "requirepass=a b # c=d|extended=hashpower=20,lru_crawler");
}
END_TEST

START_TEST(test_error_names_file_and_line)
{
    fail_on_call = 2;
    ck_assert_int_eq(parse_text("# head\nport 1\n\nprot 2\nthreads 3\n"), -1);
    fail_on_call = 0;
    ck_assert_str_eq(err, "t.conf:4: bad prot");
    ck_assert_int_eq(calls, 2);   /* stops at the first error */
}
END_TEST

START_TEST(test_malformed_lines_are_errors_with_their_line)
{
    ck_assert_int_eq(parse_text("port 1\n= 5\n"), -1);
    ck_assert_str_eq(err, "t.conf:2: missing option name before '='");
    static const char nul[] = "port 1\nthreads\0 2\n";
    seen[0] = '\0';
    ck_assert_int_eq(conffile_parse("t.conf", nul, sizeof(nul) - 1, record, NULL, err,
                                    sizeof(err)), -1);
    ck_assert_str_eq(err, "t.conf:2: NUL byte in line");
    static char big[CONFFILE_LINE_MAX + 16];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ck_assert_int_eq(parse_text(big), -1);
    ck_assert_ptr_nonnull(strstr(err, "t.conf:1: line longer than"));
}
END_TEST

/* Settings through the file's path, without touching a file. */
static struct settings s;

static int apply(void *ctx, const char *key, const char *value, char *e, size_t elen)
{
    return settings_apply_option(ctx, key, value, e, elen);
}

static int load_text(const char *text)
{
    settings_default(&s);
    err[0] = '\0';
    return conffile_parse("kioku.conf", text, strlen(text), apply, &s, err, sizeof(err));
}

START_TEST(test_long_names_and_o_keys_set_the_same_fields_as_argv)
{
    ck_assert_int_eq(load_text("port = 11299\nlisten 127.0.0.2\nthreads=3\nmemory-limit = 16\n"
                               "maxmemory-policy allkeys-lru\nhashpower = 20\nresp_port 7000\n"
                               "idle_timeout = 5\nextended = lfu_log_factor=7,no_lru_crawler\n"
                               "max-item-size 2m\nrequirepass = p w,x\n"), 0);
    ck_assert_int_eq(s.port, 11299);
    ck_assert_str_eq(s.listen, "127.0.0.2");
    ck_assert_int_eq(s.threads, 3);
    ck_assert_uint_eq(s.storage.mem_limit, 16u << 20);
    ck_assert_uint_eq(s.storage.policy, EVICT_ALLKEYS_LRU);
    ck_assert_uint_eq(s.storage.hashpower, 20);
    ck_assert_int_eq(s.resp_port, 7000);
    ck_assert_int_eq(s.idle_timeout, 5);
    ck_assert_uint_eq(s.storage.lfu_log_factor, 7);
    ck_assert(!s.storage.crawler);
    ck_assert_uint_eq(s.storage.item_size_max, 2u << 20);
    ck_assert_str_eq(s.requirepass, "p w,x");   /* a comma is fine outside -o */
    ck_assert_int_eq(load_text("maxmemory_policy = volatile-ttl\n"), 0);
    ck_assert_uint_eq(s.storage.policy, EVICT_VOLATILE_TTL);
}
END_TEST

START_TEST(test_flags_take_no_value_yes_or_no)
{
    ck_assert_int_eq(load_text("daemon\nenable-shutdown yes\ndisable-cas = no\nlru_crawler\n"), 0);
    ck_assert(s.daemonize);
    ck_assert(s.enable_shutdown);
    ck_assert(s.storage.use_cas);   /* "no" leaves the default */
    ck_assert_int_eq(load_text("daemon = 1\n"), -1);
    ck_assert_str_eq(err, "kioku.conf:1: option 'daemon' is a flag: give no value, yes or no");
    ck_assert_int_eq(load_text("lru_crawler = yes\n"), -1);   /* -o keys as -o takes them */
    ck_assert_str_eq(err, "kioku.conf:1: -o lru_crawler takes no value");
}
END_TEST

START_TEST(test_verbose_takes_a_level_or_stands_alone)
{
    ck_assert_int_eq(load_text("verbose\n"), 0);
    ck_assert_int_eq(s.verbose, 1);
    ck_assert_int_eq(load_text("verbose = 2\n"), 0);
    ck_assert_int_eq(s.verbose, 2);
    ck_assert_int_eq(load_text("verbose = 0\n"), 0);
    ck_assert_int_eq(s.verbose, 0);
    ck_assert_int_eq(load_text("verbose = vv\n"), -1);
    ck_assert_str_eq(err, "kioku.conf:1: option 'verbose' takes no value or a level from 0 to 9");
}
END_TEST

START_TEST(test_unknown_key_is_named_with_file_and_line)
{
    ck_assert_int_eq(load_text("port 11211\n\n# x\n\n\n\nprot 11211\n"), -1);
    ck_assert_str_eq(err, "kioku.conf:7: unknown option 'prot'");
    ck_assert_int_eq(load_text("p 11211\n"), -1);   /* short names are for argv */
    ck_assert_str_eq(err, "kioku.conf:1: unknown option 'p'");
}
END_TEST

START_TEST(test_bad_values_give_the_command_lines_message)
{
    ck_assert_int_eq(load_text("port = abc\n"), -1);
    ck_assert_str_eq(err, "kioku.conf:1: invalid port: abc");
    ck_assert_int_eq(load_text("threads\n"), -1);
    ck_assert_str_eq(err, "kioku.conf:1: option 'threads' needs a value");
    ck_assert_int_eq(load_text("port =\n"), -1);
    ck_assert_str_eq(err, "kioku.conf:1: invalid port: ");
    ck_assert_int_eq(load_text("maxmemory-policy = lru\n"), -1);
    ck_assert_ptr_nonnull(strstr(err, "kioku.conf:1: unknown maxmemory-policy \"lru\""));
    ck_assert_int_eq(load_text("hashpower = 40\n"), -1);
    ck_assert_str_eq(err, "kioku.conf:1: hashpower must be an integer from 12 to 32");
    ck_assert_int_eq(load_text("port = 11211 # the default\n"), -1);
    ck_assert_str_eq(err, "kioku.conf:1: invalid port: 11211 # the default");
}
END_TEST

START_TEST(test_config_help_and_version_are_not_for_a_file)
{
    ck_assert_int_eq(load_text("config = /etc/other.conf\n"), -1);
    ck_assert_str_eq(err, "kioku.conf:1: a config file cannot name another one");
    ck_assert_int_eq(load_text("help\n"), -1);
    ck_assert_str_eq(err, "kioku.conf:1: option 'help' is for the command line only");
    ck_assert_int_eq(load_text("version\n"), -1);
}
END_TEST

/* Each "# key = default" line of the installed example, uncommented, is an
 * option kioku takes: the example cannot drift from the parser. */
START_TEST(test_every_option_line_of_the_example_config_is_accepted)
{
    const char *dir = getenv("srcdir");   /* set by make check */
    char file[512], line[512];
    snprintf(file, sizeof(file), "%s/doc/kioku.conf", dir ? dir : "..");
    FILE *f = fopen(file, "r");
    ck_assert_msg(f != NULL, "cannot open %s", file);
    int options = 0;
    bool body = false;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "# ----", 6) == 0)
            body = true;   /* the header above is prose */
        if (!body || strncmp(line, "# ", 2) != 0)
            continue;
        const char *opt = line + 2;
        size_t k = strspn(opt, "abcdefghijklmnopqrstuvwxyz0123456789_-");
        if (k == 0 || (opt[k] != '\n' && strncmp(opt + k, " = ", 3) != 0))
            continue;   /* prose, not "# key" or "# key = value" */
        settings_default(&s);
        err[0] = '\0';
        ck_assert_msg(conffile_parse(file, opt, strlen(opt), apply, &s, err, sizeof(err)) == 0,
                      "example line %s: %s", opt, err);
        options++;
    }
    fclose(f);
    ck_assert_int_ge(options, 50);
}
END_TEST

/* settings_parse with a real file: the one test here that does I/O. */
static char path[64];

static void write_file(const char *text)
{
    snprintf(path, sizeof(path), "/tmp/check_conffile.%ld", (long)getpid());
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static enum settings_action parse_argv(int argc, const char **argv)
{
    settings_default(&s);
    err[0] = '\0';
    return settings_parse(&s, argc, (char **)argv, err, sizeof(err));
}

#define PARSE(...) ({ const char *av_[] = {"kioku", __VA_ARGS__}; \
                      parse_argv((int)(sizeof(av_) / sizeof(av_[0])), av_); })

START_TEST(test_command_line_wins_over_the_file)
{
    write_file("port = 1111\nthreads 3\nmaxmemory-policy = allkeys-lru\n");
    ck_assert_int_eq(PARSE("-p", "2222", "--config", path, "-M"), SETTINGS_RUN);
    ck_assert_int_eq(s.port, 2222);        /* argv, though it came first */
    ck_assert_int_eq(s.threads, 3);        /* the file */
    ck_assert_uint_eq(s.storage.policy, EVICT_NOEVICTION);   /* argv's -M */
    ck_assert_str_eq(s.config_file, path);
    char opt[128];
    snprintf(opt, sizeof(opt), "hashpower=14,config=%s", path);
    ck_assert_int_eq(PARSE("-o", opt), SETTINGS_RUN);
    ck_assert_int_eq(s.port, 1111);
    ck_assert_uint_eq(s.storage.hashpower, 14);
    unlink(path);
}
END_TEST

START_TEST(test_combined_limits_are_checked_after_the_file)
{
    /* -I 40m alone is over half the default 64 MB; the file raises -m. */
    write_file("memory-limit = 128\n");
    ck_assert_int_eq(PARSE("-I", "40m", "--config", path), SETTINGS_RUN);
    ck_assert_uint_eq(s.storage.item_size_max, 40u << 20);
    write_file("max-item-size = 8m\n");
    ck_assert_int_eq(PARSE("-m", "8", "--config", path), SETTINGS_ERROR);
    unlink(path);
}
END_TEST

START_TEST(test_bad_or_missing_file_is_a_config_error)
{
    write_file("port 1\nprot 2\n");
    ck_assert_int_eq(PARSE("--config", path), SETTINGS_CONFIG_ERROR);
    char want[128];
    snprintf(want, sizeof(want), "%s:2: unknown option 'prot'", path);
    ck_assert_str_eq(err, want);
    unlink(path);
    ck_assert_int_eq(PARSE("--config", path), SETTINGS_CONFIG_ERROR);
    snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", path);
    ck_assert_str_eq(err, want);
    ck_assert_int_eq(PARSE("--config", "/"), SETTINGS_CONFIG_ERROR);
    ck_assert_str_eq(err, "/: cannot read: Is a directory");
    write_file("extended = config=/etc/other.conf\n");
    ck_assert_int_eq(PARSE("--config", path), SETTINGS_CONFIG_ERROR);
    snprintf(want, sizeof(want), "%s: a config file cannot name another one", path);
    ck_assert_str_eq(err, want);
    unlink(path);
    ck_assert_int_eq(PARSE("-o", "config"), SETTINGS_ERROR);
    ck_assert_int_eq(PARSE("--config"), SETTINGS_ERROR);
}
END_TEST

static Suite *conffile_suite(void)
{
    Suite *su = suite_create("conffile");
    TCase *tc = tcase_create("syntax");
    tcase_add_test(tc, test_equals_space_and_no_space_forms_read_alike);
    tcase_add_test(tc, test_comments_and_blank_lines_are_skipped);
    tcase_add_test(tc, test_flag_has_no_value_and_empty_value_is_empty);
    tcase_add_test(tc, test_value_is_the_rest_of_the_line_as_written);
    tcase_add_test(tc, test_error_names_file_and_line);
    tcase_add_test(tc, test_malformed_lines_are_errors_with_their_line);
    suite_add_tcase(su, tc);
    tc = tcase_create("settings");
    tcase_add_test(tc, test_long_names_and_o_keys_set_the_same_fields_as_argv);
    tcase_add_test(tc, test_flags_take_no_value_yes_or_no);
    tcase_add_test(tc, test_verbose_takes_a_level_or_stands_alone);
    tcase_add_test(tc, test_unknown_key_is_named_with_file_and_line);
    tcase_add_test(tc, test_bad_values_give_the_command_lines_message);
    tcase_add_test(tc, test_config_help_and_version_are_not_for_a_file);
    tcase_add_test(tc, test_every_option_line_of_the_example_config_is_accepted);
    tcase_add_test(tc, test_command_line_wins_over_the_file);
    tcase_add_test(tc, test_combined_limits_are_checked_after_the_file);
    tcase_add_test(tc, test_bad_or_missing_file_is_a_config_error);
    suite_add_tcase(su, tc);
    return su;
}

int main(void)
{
    SRunner *sr = srunner_create(conffile_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
