/*
 * Command-line parsing: memcached's flags, defaults and refusals.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/settings.h"
#include "storage/evict.h"

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

START_TEST(test_auth_flags_by_short_long_and_o)
{
    ck_assert_int_eq(PARSE("-Y", "/etc/pw", "-S"), SETTINGS_RUN);
    ck_assert_str_eq(s.auth_file, "/etc/pw");
    ck_assert(s.sasl);
    ck_assert_int_eq(PARSE("--auth-file=/x", "--enable-sasl", "--requirepass", "p w:,x"), SETTINGS_RUN);
    ck_assert_str_eq(s.auth_file, "/x");
    ck_assert(s.sasl);
    ck_assert_str_eq(s.requirepass, "p w:,x");
    ck_assert_int_eq(PARSE("-o", "requirepass=a=b,hashpower=13"), SETTINGS_RUN);
    ck_assert_str_eq(s.requirepass, "a=b");
    ck_assert_uint_eq(s.storage.hashpower, 13);
    ck_assert_int_eq(PARSE("-o", "requirepass"), SETTINGS_ERROR);
    ck_assert_int_eq(PARSE("-Y", ""), SETTINGS_ERROR);
    char big[300];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ck_assert_int_eq(PARSE("--requirepass", big), SETTINGS_ERROR);
    ck_assert_ptr_null(strstr(err, "xxxx"));   /* the password is not echoed */
    ck_assert_int_eq(PARSE("-p", "1"), SETTINGS_RUN);   /* defaults: all off */
    ck_assert(!s.sasl);
    ck_assert_str_eq(s.auth_file, "");
    ck_assert_str_eq(s.requirepass, "");
}
END_TEST

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
    ck_assert_uint_eq(s.storage.policy, EVICT_S3FIFO);
    ck_assert_uint_eq(s.storage.lfu_log_factor, 10);
    ck_assert_uint_eq(s.storage.lfu_decay_time, 1);
    ck_assert_uint_eq(s.storage.samples, 5);
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
    static const char *const documented[] = {
        "--maxmemory=", "--maxmemory-policy=", "--lfu-log-factor=", "--lfu-decay-time=",
        "--maxmemory-samples=", "maxmemory_policy=", "lfu_log_factor=", "lfu_decay_time=",
        "maxmemory_samples=", "allkeys-s3fifo (default)", "noeviction"};
    for (size_t i = 0; i < sizeof(documented) / sizeof(documented[0]); i++)
        ck_assert_msg(strstr(settings_usage(), documented[i]) != NULL, "--help lacks %s",
                      documented[i]);
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

/* memcached's port rules (issue 13): -U without -p moves TCP to the UDP
 * port, -1 is a port of the kernel's choosing, 0 is off. */
START_TEST(test_udp_port_moves_tcp_to_it_unless_p_is_given)
{
    ck_assert_int_eq(PARSE("-U", "11222"), SETTINGS_RUN);
    ck_assert_int_eq(s.udp_port, 11222);
    ck_assert_int_eq(s.port, 11222);
    ck_assert_int_eq(PARSE("-p", "11242", "-U", "11243"), SETTINGS_RUN);
    ck_assert_int_eq(s.port, 11242);
    ck_assert_int_eq(s.udp_port, 11243);
    ck_assert_int_eq(PARSE("-U", "-1"), SETTINGS_RUN);
    ck_assert_int_eq(s.port, -1);
    ck_assert_int_eq(PARSE("-U", "0"), SETTINGS_RUN);
    ck_assert_int_eq(s.port, 11211);
    ck_assert_int_eq(PARSE("-p", "0"), SETTINGS_RUN);
    ck_assert_int_eq(s.port, 0);
    ck_assert_int_eq(PARSE("-p", "-1", "--udp-port=-1"), SETTINGS_RUN);
    ck_assert_int_eq(PARSE("-U", "-2"), SETTINGS_ERROR);
    ck_assert_int_eq(PARSE("-U", "65536"), SETTINGS_ERROR);
    ck_assert_int_eq(PARSE("-p", "-2"), SETTINGS_ERROR);
}
END_TEST

/* As memcached: datagrams carry no login. */
START_TEST(test_udp_with_authentication_is_refused)
{
    ck_assert_int_eq(PARSE("-U", "11222", "-Y", "/etc/pw"), SETTINGS_ERROR);
    ck_assert_str_eq(err, "Cannot use UDP with ascii authentication enabled (-U 0 to disable)");
    ck_assert_int_eq(PARSE("-U", "11222", "-S"), SETTINGS_ERROR);
    ck_assert_str_eq(err, "Cannot enable UDP while using binary SASL authentication");
    ck_assert_int_eq(PARSE("-U", "0", "-S", "-Y", "/etc/pw"), SETTINGS_RUN);
}
END_TEST

START_TEST(test_item_size_over_half_memory_is_refused)
{
    ck_assert_int_eq(PARSE("-m", "64", "-I", "33m"), SETTINGS_ERROR);
    ck_assert_int_eq(PARSE("-m", "64", "-I", "32m"), SETTINGS_RUN);
    ck_assert_int_eq(PARSE("-m", "2048", "-I", "1024m"), SETTINGS_RUN);
}
END_TEST

START_TEST(test_null_storage_is_off_by_default_and_takes_no_value)
{
    ck_assert_int_eq(PARSE("-m", "64"), SETTINGS_RUN);
    ck_assert(!s.null_storage);
    ck_assert_int_eq(PARSE("-o", "null_storage"), SETTINGS_RUN);
    ck_assert(s.null_storage);
    ck_assert_int_eq(PARSE("-o", "null_storage=1"), SETTINGS_ERROR);
}
END_TEST

START_TEST(test_io_uring_is_off_by_default_and_takes_no_value)
{
    ck_assert_int_eq(PARSE("-m", "64"), SETTINGS_RUN);
    ck_assert(!s.io_uring);
    ck_assert_int_eq(PARSE("-o", "io_uring"), SETTINGS_RUN);
    ck_assert(s.io_uring);
    ck_assert_int_eq(PARSE("-o", "io_uring=1"), SETTINGS_ERROR);
}
END_TEST

START_TEST(test_slab_reassign_automove_and_crawler_options)
{
    ck_assert_int_eq(PARSE("-m", "64"), SETTINGS_RUN);
    ck_assert(s.storage.slab_reassign);          /* memcached 1.6's defaults */
    ck_assert_uint_eq(s.storage.slab_automove, 1);
    ck_assert(s.storage.crawler);
    ck_assert_int_eq(PARSE("-o", "no_slab_reassign,slab_automove=2,no_lru_crawler"), SETTINGS_RUN);
    ck_assert(!s.storage.slab_reassign);
    ck_assert_uint_eq(s.storage.slab_automove, 2);
    ck_assert(!s.storage.crawler);
    ck_assert_int_eq(PARSE("-o", "slab_reassign,lru_crawler,slab_automove=0"), SETTINGS_RUN);
    ck_assert(s.storage.slab_reassign);
    ck_assert(s.storage.crawler);
    ck_assert_uint_eq(s.storage.slab_automove, 0);
    ck_assert_int_eq(PARSE("-o", "slab_automove=3"), SETTINGS_ERROR);
    ck_assert_int_eq(PARSE("-o", "slab_reassign,slab_automove=0,slab_automove"), SETTINGS_RUN);
    ck_assert_uint_eq(s.storage.slab_automove, 1);       /* bare means 1, as memcached */
    ck_assert_int_eq(PARSE("-o", "lru_crawler=1"), SETTINGS_ERROR);
}
END_TEST

START_TEST(test_idle_timeout_and_max_output_buffer)
{
    ck_assert_int_eq(PARSE("-p", "1"), SETTINGS_RUN);
    ck_assert_int_eq(s.idle_timeout, 0);                    /* memcached's default: none */
    ck_assert_uint_eq(s.max_output, (size_t)64 << 20);      /* 64 MiB */
    ck_assert_int_eq(PARSE("-o", "idle_timeout=30,max_output_buffer=8m"), SETTINGS_RUN);
    ck_assert_int_eq(s.idle_timeout, 30);
    ck_assert_uint_eq(s.max_output, (size_t)8 << 20);
    ck_assert_int_eq(PARSE("-o", "max_output_buffer=0"), SETTINGS_RUN);
    ck_assert_uint_eq(s.max_output, 0);                     /* no limit */
    ck_assert_int_eq(PARSE("-o", "max_output_buffer=1k"), SETTINGS_ERROR);
    ck_assert_ptr_nonnull(strstr(err, "max_output_buffer"));
    ck_assert_int_eq(PARSE("-o", "max_output_buffer=lots"), SETTINGS_ERROR);
    ck_assert_int_eq(PARSE("-o", "idle_timeout=-1"), SETTINGS_ERROR);
    ck_assert_int_eq(PARSE("-o", "idle_timeout"), SETTINGS_ERROR);
    ck_assert_ptr_nonnull(strstr(err, "idle_timeout"));
}
END_TEST

START_TEST(test_read_buf_mem_limit_takes_megabytes)
{
    ck_assert_int_eq(PARSE("-p", "1"), SETTINGS_RUN);
    ck_assert_uint_eq(s.read_buf_mem_limit, 0);             /* memcached's default: none */
    ck_assert_int_eq(PARSE("-o", "read_buf_mem_limit=1"), SETTINGS_RUN);
    ck_assert_uint_eq(s.read_buf_mem_limit, (size_t)1 << 20);
    ck_assert_int_eq(PARSE("-o", "read_buf_mem_limit=4095"), SETTINGS_RUN);
    ck_assert_uint_eq(s.read_buf_mem_limit, (size_t)4095 << 20);
    ck_assert_int_eq(PARSE("-o", "read_buf_mem_limit=4096"), SETTINGS_ERROR);
    ck_assert_ptr_nonnull(strstr(err, "read_buf_mem_limit"));
    ck_assert_int_eq(PARSE("-o", "read_buf_mem_limit=1m"), SETTINGS_ERROR);
    ck_assert_int_eq(PARSE("-o", "read_buf_mem_limit"), SETTINGS_ERROR);
}
END_TEST

START_TEST(test_logfile_and_shutdown_timeout)
{
    ck_assert_int_eq(PARSE("-p", "1"), SETTINGS_RUN);
    ck_assert_str_eq(s.logfile, "");                        /* stderr */
    ck_assert_int_eq(s.shutdown_timeout, 3);
    ck_assert_int_eq(PARSE("-o", "logfile=/var/log/kioku.log,shutdown_timeout=0"), SETTINGS_RUN);
    ck_assert_str_eq(s.logfile, "/var/log/kioku.log");
    ck_assert_int_eq(s.shutdown_timeout, 0);
    ck_assert_int_eq(PARSE("--logfile", "k.log"), SETTINGS_RUN);
    ck_assert_str_eq(s.logfile, "k.log");
    ck_assert_int_eq(PARSE("-o", "logfile"), SETTINGS_ERROR);
    ck_assert_ptr_nonnull(strstr(err, "logfile"));
    ck_assert_int_eq(PARSE("-o", "logfile="), SETTINGS_ERROR);
    ck_assert_int_eq(PARSE("--logfile", ""), SETTINGS_ERROR);
    ck_assert_int_eq(PARSE("-o", "shutdown_timeout=3601"), SETTINGS_ERROR);
    ck_assert_ptr_nonnull(strstr(err, "shutdown_timeout"));
    ck_assert_int_eq(PARSE("-o", "shutdown_timeout=-1"), SETTINGS_ERROR);
    ck_assert_int_eq(PARSE("-o", "shutdown_timeout"), SETTINGS_ERROR);
}
END_TEST

START_TEST(test_proto_max_bulk_len_takes_redis_units_from_1mb)
{
    ck_assert_int_eq(PARSE("-p", "1"), SETTINGS_RUN);
    ck_assert_uint_eq(s.proto_max_bulk_len, (size_t)512 << 20);   /* Redis's default */
    ck_assert_int_eq(PARSE("-o", "proto_max_bulk_len=1gb"), SETTINGS_RUN);
    ck_assert_uint_eq(s.proto_max_bulk_len, (size_t)1 << 30);
    ck_assert_int_eq(PARSE("-o", "proto_max_bulk_len=2mb"), SETTINGS_RUN);
    ck_assert_uint_eq(s.proto_max_bulk_len, (size_t)2 << 20);
    ck_assert_int_eq(PARSE("-o", "proto_max_bulk_len=1048576"), SETTINGS_RUN);
    ck_assert_uint_eq(s.proto_max_bulk_len, (size_t)1 << 20);
    ck_assert_int_eq(PARSE("-o", "proto_max_bulk_len=1048575"), SETTINGS_ERROR);
    ck_assert_ptr_nonnull(strstr(err, "proto_max_bulk_len"));
    ck_assert_int_eq(PARSE("-o", "proto_max_bulk_len=1m"), SETTINGS_ERROR);   /* 10^6 < 1mb */
    ck_assert_int_eq(PARSE("-o", "proto_max_bulk_len=lots"), SETTINGS_ERROR);
    ck_assert_int_eq(PARSE("-o", "proto_max_bulk_len"), SETTINGS_ERROR);
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

START_TEST(test_every_policy_name_is_taken_by_the_long_flag_and_by_o)
{
    for (unsigned i = 0; i < EVICT_NPOLICIES; i++) {
        const char *name = evict_policy_name((enum evict_policy)i);
        char eq[64], o[80];
        snprintf(eq, sizeof(eq), "--maxmemory-policy=%s", name);
        snprintf(o, sizeof(o), "maxmemory_policy=%s", name);
        ck_assert_msg(PARSE("--maxmemory-policy", name) == SETTINGS_RUN, "%s: %s", name, err);
        ck_assert_uint_eq(s.storage.policy, i);
        ck_assert(s.storage.evict == (i != EVICT_NOEVICTION));
        ck_assert_msg(PARSE(eq) == SETTINGS_RUN, "%s: %s", eq, err);
        ck_assert_uint_eq(s.storage.policy, i);
        ck_assert_msg(PARSE("-o", o) == SETTINGS_RUN, "%s: %s", o, err);
        ck_assert_uint_eq(s.storage.policy, i);
        ck_assert(s.storage.evict == (i != EVICT_NOEVICTION));
    }
    ck_assert_int_eq(PARSE("--maxmemory-policy", "ALLKEYS-LFU"), SETTINGS_RUN);   /* as Redis */
    ck_assert_uint_eq(s.storage.policy, EVICT_ALLKEYS_LFU);
}
END_TEST

START_TEST(test_unknown_policy_is_a_usage_error_naming_the_valid_ones)
{
    ck_assert_int_eq(PARSE("--maxmemory-policy", "allkeys-lru2"), SETTINGS_ERROR);
    ck_assert_ptr_nonnull(strstr(err, "\"allkeys-lru2\""));
    for (unsigned i = 0; i < EVICT_NPOLICIES; i++)
        ck_assert_msg(strstr(err, evict_policy_name((enum evict_policy)i)) != NULL,
                      "error lacks %s: %s", evict_policy_name((enum evict_policy)i), err);
    ck_assert_int_eq(PARSE("-o", "maxmemory_policy=lru"), SETTINGS_ERROR);
    ck_assert_ptr_nonnull(strstr(err, "allkeys-s3fifo"));
    ck_assert_int_eq(PARSE("-o", "maxmemory_policy"), SETTINGS_ERROR);
    ck_assert_int_eq(PARSE("--maxmemory-policy", ""), SETTINGS_ERROR);
    ck_assert_int_eq(PARSE("--maxmemory-policy"), SETTINGS_ERROR);
}
END_TEST

START_TEST(test_M_means_noeviction_and_the_last_of_M_and_policy_wins)
{
    ck_assert_int_eq(PARSE("-M"), SETTINGS_RUN);
    ck_assert(!s.storage.evict);
    ck_assert_uint_eq(s.storage.policy, EVICT_NOEVICTION);
    ck_assert_int_eq(PARSE("--disable-evictions"), SETTINGS_RUN);
    ck_assert_uint_eq(s.storage.policy, EVICT_NOEVICTION);
    ck_assert_int_eq(PARSE("-M", "--maxmemory-policy", "volatile-ttl"), SETTINGS_RUN);
    ck_assert(s.storage.evict);
    ck_assert_uint_eq(s.storage.policy, EVICT_VOLATILE_TTL);
    ck_assert_int_eq(PARSE("--maxmemory-policy", "volatile-ttl", "-M"), SETTINGS_RUN);
    ck_assert(!s.storage.evict);
    ck_assert_uint_eq(s.storage.policy, EVICT_NOEVICTION);
}
END_TEST

START_TEST(test_maxmemory_takes_redis_units)
{
    static const struct { const char *arg; size_t bytes; } cases[] = {
        {"67108864", 64u << 20}, {"64mb", 64u << 20}, {"64MB", 64u << 20}, {"64Mb", 64u << 20},
        {"1gb", 1u << 30}, {"1GB", 1u << 30}, {"2g", 2000000000u}, {"100m", 100000000u},
        {"100M", 100000000u}, {"4096kb", 4u << 20}, {"5000k", 5000000u},
        {"3000000b", 3000000u}, {"3000000B", 3000000u},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ck_assert_msg(PARSE("--maxmemory", cases[i].arg) == SETTINGS_RUN, "%s: %s",
                      cases[i].arg, err);
        ck_assert_msg(s.storage.mem_limit == cases[i].bytes, "%s: %zu bytes, want %zu",
                      cases[i].arg, s.storage.mem_limit, cases[i].bytes);
    }
    /* the same limit as memcached's -m 64 */
    ck_assert_int_eq(PARSE("-m", "64"), SETTINGS_RUN);
    size_t m64 = s.storage.mem_limit;
    ck_assert_int_eq(PARSE("--maxmemory=64mb"), SETTINGS_RUN);
    ck_assert_uint_eq(s.storage.mem_limit, m64);
}
END_TEST

START_TEST(test_bad_maxmemory_is_a_usage_error)
{
    static const char *const bad[] = {"", "mb", "64x", "64mbb", "64 mb", " 64mb", "-64mb",
                                      "+64mb", "1.5gb", "0", "0mb", "99999999999999999999",
                                      "99999999999gb", "0x400000"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(PARSE("--maxmemory", bad[i]) == SETTINGS_ERROR, "\"%s\" accepted", bad[i]);
        ck_assert_msg(strstr(err, "maxmemory") != NULL, "\"%s\": %s", bad[i], err);
    }
    /* a small limit still has to hold two of the largest items */
    ck_assert_int_eq(PARSE("--maxmemory", "1mb"), SETTINGS_ERROR);
    ck_assert_ptr_nonnull(strstr(err, "--maxmemory"));
    ck_assert_int_eq(PARSE("--maxmemory", "1mb", "-I", "512k"), SETTINGS_RUN);
}
END_TEST

START_TEST(test_lfu_knobs_and_samples_by_long_flag_and_o)
{
    ck_assert_int_eq(PARSE("--lfu-log-factor", "0", "--lfu-decay-time", "0",
                           "--maxmemory-samples", "1"), SETTINGS_RUN);
    ck_assert_uint_eq(s.storage.lfu_log_factor, 0);
    ck_assert_uint_eq(s.storage.lfu_decay_time, 0);
    ck_assert_uint_eq(s.storage.samples, 1);
    ck_assert_int_eq(PARSE("-o", "lfu_log_factor=100,lfu_decay_time=30,maxmemory_samples=10"),
                     SETTINGS_RUN);
    ck_assert_uint_eq(s.storage.lfu_log_factor, 100);
    ck_assert_uint_eq(s.storage.lfu_decay_time, 30);
    ck_assert_uint_eq(s.storage.samples, 10);
    ck_assert_int_eq(PARSE("--lfu-log-factor=2147483647"), SETTINGS_RUN);   /* Redis's bound */
    ck_assert_uint_eq(s.storage.lfu_log_factor, 2147483647u);
    ck_assert_int_eq(PARSE("-o", "maxmemory_policy=allkeys-lfu,lfu_log_factor=1"), SETTINGS_RUN);
    ck_assert_uint_eq(s.storage.policy, EVICT_ALLKEYS_LFU);
    ck_assert_uint_eq(s.storage.lfu_log_factor, 1);
}
END_TEST

START_TEST(test_bad_lfu_knobs_and_samples_are_usage_errors)
{
    static const char *const bad[] = {"-1", "abc", "05", "+5", "1.5", "", "2147483648", "5 "};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(PARSE("--lfu-log-factor", bad[i]) == SETTINGS_ERROR, "\"%s\"", bad[i]);
        ck_assert_ptr_nonnull(strstr(err, "lfu_log_factor"));
        ck_assert_msg(PARSE("--lfu-decay-time", bad[i]) == SETTINGS_ERROR, "\"%s\"", bad[i]);
        ck_assert_msg(PARSE("--maxmemory-samples", bad[i]) == SETTINGS_ERROR, "\"%s\"", bad[i]);
    }
    ck_assert_int_eq(PARSE("--maxmemory-samples", "0"), SETTINGS_ERROR);
    ck_assert_ptr_nonnull(strstr(err, "maxmemory_samples"));
    ck_assert_int_eq(PARSE("-o", "lfu_decay_time=x"), SETTINGS_ERROR);
    ck_assert_int_eq(PARSE("-o", "maxmemory_samples"), SETTINGS_ERROR);
}
END_TEST

START_TEST(test_parse_ll_follows_redis_string2ll)
{
    long long v;
    ck_assert_int_eq(settings_parse_ll("0", 1, &v), 0);
    ck_assert_int_eq(v, 0);
    ck_assert_int_eq(settings_parse_ll("-17", 3, &v), 0);
    ck_assert_int_eq(v, -17);
    ck_assert_int_eq(settings_parse_ll("9223372036854775807", 19, &v), 0);
    ck_assert(v == 9223372036854775807LL);
    ck_assert_int_eq(settings_parse_ll("-9223372036854775808", 20, &v), 0);
    ck_assert(v == -9223372036854775807LL - 1);
    ck_assert_int_eq(settings_parse_ll("9223372036854775808", 19, &v), -1);
    ck_assert_int_eq(settings_parse_ll("123x", 3, &v), 0);   /* only n bytes are read */
    ck_assert_int_eq(v, 123);
    static const char *const bad[] = {"", "-", "-0", "007", "+1", " 1", "1 ", "1e3", "0x1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(settings_parse_ll(bad[i], strlen(bad[i]), &v) == -1, "\"%s\"", bad[i]);
}
END_TEST

/* Issue 9: memcached's TLS option names, and kioku's TLS port. */
START_TEST(test_tls_options_take_memcacheds_names)
{
    ck_assert_int_eq(PARSE("-Z", "-o", "ssl_chain_cert=/c.pem,ssl_key=/k.pem,ssl_ca_cert=/ca.pem,"
                           "ssl_verify_mode=3,ssl_min_version=3,ssl_ciphers=ECDHE-ECDSA-AES256-GCM-SHA384"),
                     SETTINGS_RUN);
    ck_assert(s.tls.enabled);
    ck_assert_int_eq(s.tls.port, 0);
    ck_assert_str_eq(s.tls.chain_cert, "/c.pem");
    ck_assert_str_eq(s.tls.key, "/k.pem");
    ck_assert_str_eq(s.tls.ca_cert, "/ca.pem");
    ck_assert_int_eq(s.tls.verify_mode, 3);
    ck_assert_int_eq(s.tls.min_version, 3);
    ck_assert_str_eq(s.tls.ciphers, "ECDHE-ECDSA-AES256-GCM-SHA384");
    ck_assert_int_eq(PARSE("-o", "ssl_min_version=tlsv1.2"), SETTINGS_RUN);
    ck_assert_int_eq(s.tls.min_version, 2);
    ck_assert(!s.tls.enabled);
}
END_TEST

START_TEST(test_tls_defaults_and_port)
{
    ck_assert_int_eq(PARSE("-p", "11211"), SETTINGS_RUN);
    ck_assert(!s.tls.enabled);
    ck_assert_int_eq(s.tls.verify_mode, 0);
    ck_assert_int_eq(s.tls.min_version, 2);
    ck_assert_int_eq(s.tls.handshake_timeout, 10);
    ck_assert_int_eq(PARSE("--tls-port", "11212"), SETTINGS_RUN);
    ck_assert(s.tls.enabled);
    ck_assert_int_eq(s.tls.port, 11212);
    ck_assert_int_eq(PARSE("-o", "tls_port=11213,ssl_handshake_timeout=2"), SETTINGS_RUN);
    ck_assert_int_eq(s.tls.port, 11213);
    ck_assert_int_eq(s.tls.handshake_timeout, 2);
    ck_assert_int_eq(PARSE("-Z", "--tls-port", "7000", "--resp-port", "7001", "-o", "resp_tls"),
                     SETTINGS_RUN);
    ck_assert(s.tls.resp_tls);
}
END_TEST

START_TEST(test_bad_tls_options_are_usage_errors)
{
    ck_assert_int_eq(PARSE("-o", "ssl_verify_mode=4"), SETTINGS_ERROR);
    ck_assert_int_eq(PARSE("-o", "ssl_min_version=1"), SETTINGS_ERROR);
    ck_assert_int_eq(PARSE("-o", "ssl_min_version=tlsv1.1"), SETTINGS_ERROR);
    ck_assert_int_eq(PARSE("-o", "ssl_chain_cert"), SETTINGS_ERROR);
    ck_assert_int_eq(PARSE("--tls-port", "11211"), SETTINGS_ERROR);   /* same as -p */
    ck_assert_int_eq(PARSE("--resp-port", "7001", "-o", "resp_tls"), SETTINGS_ERROR);   /* no -Z */
    ck_assert_int_eq(PARSE("-o", "ssl_handshake_timeout=0"), SETTINGS_ERROR);
}
END_TEST

/* Issue 13: memcached's ssl_wbuf_size (KiB), ssl_session_cache and the -l
 * prefixes that choose TLS per listener. */
START_TEST(test_ssl_wbuf_size_is_kib_and_session_cache_a_flag)
{
    ck_assert_int_eq(PARSE("-Z"), SETTINGS_RUN);
    ck_assert_uint_eq(s.tls.wbuf_size, 16384);
    ck_assert(!s.tls.session_cache);
    ck_assert(!s.tls.kernel_tls);
    ck_assert_int_eq(PARSE("-Z", "-o", "ssl_wbuf_size=64,ssl_session_cache,ssl_kernel_tls"), SETTINGS_RUN);
    ck_assert_uint_eq(s.tls.wbuf_size, 65536);
    ck_assert(s.tls.session_cache);
    ck_assert(s.tls.kernel_tls);
    ck_assert_int_eq(PARSE("-o", "ssl_wbuf_size=1024"), SETTINGS_RUN);
    ck_assert_uint_eq(s.tls.wbuf_size, 1024 * 1024);
    const char *bad[] = {"ssl_wbuf_size=0", "ssl_wbuf_size=1025", "ssl_wbuf_size=16k",
                         "ssl_wbuf_size=-1", "ssl_wbuf_size", "ssl_session_cache=yes",
                         "ssl_kernel_tls=1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(PARSE("-Z", "-o", bad[i]) == SETTINGS_ERROR, "%s", bad[i]);
}
END_TEST

START_TEST(test_listen_prefixes_choose_tls_and_need_it)
{
    size_t skip = 99;
    ck_assert_int_eq(tls_listen_prefix("notls:127.0.0.1:1", &skip), TLS_LISTEN_OFF);
    ck_assert_uint_eq(skip, 6);
    ck_assert_int_eq(tls_listen_prefix("btls:[::1]:1", &skip), TLS_LISTEN_NOPEER);
    ck_assert_uint_eq(skip, 5);
    ck_assert_int_eq(tls_listen_prefix("mtls:127.0.0.1", &skip), TLS_LISTEN_PEER);
    ck_assert_uint_eq(skip, 5);
    const char *plain[] = {"127.0.0.1", "notls", "notls127.0.0.1", "mtls", "", "[::1]:5"};
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        ck_assert_int_eq(tls_listen_prefix(plain[i], &skip), TLS_LISTEN_DEFAULT);
        ck_assert_uint_eq(skip, 0);
    }
    ck_assert_int_eq(PARSE("-Z", "-l", "notls:127.0.0.1:1,127.0.0.1:2,mtls:127.0.0.1:3"), SETTINGS_RUN);
    ck_assert_int_eq(PARSE("--tls-port", "7000", "-l", "btls:127.0.0.1"), SETTINGS_RUN);
    ck_assert_int_eq(PARSE("-l", "127.0.0.1,notls:127.0.0.1:2"), SETTINGS_ERROR);
    ck_assert_str_eq(err, "'notls' option is valid only when SSL is enabled");
    ck_assert_int_eq(PARSE("-l", "mtls:127.0.0.1"), SETTINGS_ERROR);
    ck_assert_str_eq(err, "'mtls' option is valid only when SSL is enabled");
}
END_TEST

static Suite *settings_suite(void)
{
    Suite *su = suite_create("settings");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, test_defaults_match_memcached);
    tcase_add_test(tc, test_null_storage_is_off_by_default_and_takes_no_value);
    tcase_add_test(tc, test_io_uring_is_off_by_default_and_takes_no_value);
    tcase_add_test(tc, test_auth_flags_by_short_long_and_o);
    tcase_add_test(tc, test_tls_options_take_memcacheds_names);
    tcase_add_test(tc, test_tls_defaults_and_port);
    tcase_add_test(tc, test_bad_tls_options_are_usage_errors);
    tcase_add_test(tc, test_B_chooses_the_binding_protocol);
    tcase_add_test(tc, test_prefix_delimiter_defaults_to_colon_and_D_turns_detail_on);
    tcase_add_test(tc, test_short_flags_set_every_field);
    tcase_add_test(tc, test_long_flags_match_short_ones);
    tcase_add_test(tc, test_vv_counts_verbosity);
    tcase_add_test(tc, test_help_and_version_actions);
    tcase_add_test(tc, test_unknown_flag_is_a_usage_error);
    tcase_add_test(tc, test_malformed_values_are_usage_errors);
    tcase_add_test(tc, test_udp_port_moves_tcp_to_it_unless_p_is_given);
    tcase_add_test(tc, test_udp_with_authentication_is_refused);
    tcase_add_test(tc, test_item_size_over_half_memory_is_refused);
    tcase_add_test(tc, test_extended_options);
    tcase_add_test(tc, test_idle_timeout_and_max_output_buffer);
    tcase_add_test(tc, test_read_buf_mem_limit_takes_megabytes);
    tcase_add_test(tc, test_logfile_and_shutdown_timeout);
    tcase_add_test(tc, test_proto_max_bulk_len_takes_redis_units_from_1mb);
    tcase_add_test(tc, test_slab_reassign_automove_and_crawler_options);
    tcase_add_test(tc, test_size_suffixes);
    tcase_add_test(tc, test_every_policy_name_is_taken_by_the_long_flag_and_by_o);
    tcase_add_test(tc, test_unknown_policy_is_a_usage_error_naming_the_valid_ones);
    tcase_add_test(tc, test_M_means_noeviction_and_the_last_of_M_and_policy_wins);
    tcase_add_test(tc, test_maxmemory_takes_redis_units);
    tcase_add_test(tc, test_bad_maxmemory_is_a_usage_error);
    tcase_add_test(tc, test_lfu_knobs_and_samples_by_long_flag_and_o);
    tcase_add_test(tc, test_bad_lfu_knobs_and_samples_are_usage_errors);
    tcase_add_test(tc, test_parse_ll_follows_redis_string2ll);
    tcase_add_test(tc, test_ssl_wbuf_size_is_kib_and_session_cache_a_flag);
    tcase_add_test(tc, test_listen_prefixes_choose_tls_and_need_it);
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
