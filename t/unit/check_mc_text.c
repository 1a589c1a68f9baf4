/*
 * Unit tests for the memcached text command-line parser (src/proto/mc_text.c).
 *
 * Every test feeds bytes to mc_text_parse() and checks the request, the
 * status and the exact error line. The expected error lines and token rules
 * were confirmed against memcached 1.6.18 (the key rules against 1.6.45);
 * the cases where kioku is stricter are named as such. No sockets, no server.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/mc_text.h"

#define E_FORMAT "CLIENT_ERROR bad command line format"
#define E_EXPTIME "CLIENT_ERROR invalid exptime argument"
#define E_DELTA "CLIENT_ERROR invalid numeric delta argument"
#define E_DELETE "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]"

/* Parse a NUL-terminated line; the whole string must be consumed unless AGAIN. */
static enum parse_status parse_str(struct mc_text_req *r, const char *s)
{
    size_t used = 12345;
    enum parse_status st = mc_text_parse(r, s, strlen(s), &used);
    if (st == PARSE_AGAIN || st == PARSE_TOO_LONG)
        ck_assert_uint_eq(used, 0);
    else
        ck_assert_uint_eq(used, strlen(s));
    return st;
}

static void expect_ok(struct mc_text_req *r, const char *s, enum mc_cmd cmd)
{
    ck_assert_int_eq(parse_str(r, s), PARSE_OK);
    ck_assert_int_eq(r->cmd, cmd);
    ck_assert_ptr_null(r->error);
}

static void expect_invalid(const char *s, enum mc_cmd cmd, const char *err, bool noreply)
{
    struct mc_text_req r;
    ck_assert_msg(parse_str(&r, s) == PARSE_INVALID, "not invalid: %s", s);
    ck_assert_int_eq(r.cmd, cmd);
    ck_assert_ptr_nonnull(r.error);
    ck_assert_str_eq(r.error, err);
    ck_assert_msg(r.noreply == noreply, "noreply wrong: %s", s);
}

static void expect_unknown_err(const char *s, const char *err)
{
    struct mc_text_req r;
    ck_assert_msg(parse_str(&r, s) == PARSE_UNKNOWN, "not unknown: %s", s);
    ck_assert_int_eq(r.cmd, MC_NONE);
    ck_assert_str_eq(r.error, err);
}

static void expect_unknown(const char *s)
{
    expect_unknown_err(s, "ERROR");
}

static void expect_key(const struct mc_text_req *r, const char *key)
{
    ck_assert_uint_eq(r->nkey, strlen(key));
    ck_assert(memcmp(r->key, key, r->nkey) == 0);
}

static void expect_args(const struct mc_text_req *r, const char *args)
{
    ck_assert_uint_eq(r->args_len, strlen(args));
    if (r->args_len)
        ck_assert(memcmp(r->args, args, r->args_len) == 0);
}

/* Collect the keys of a retrieval request as "k1|k2|..." into out. */
static void join_keys(const struct mc_text_req *r, char *out, size_t cap)
{
    const char *cur = r->keys, *end = r->keys + r->keys_len, *k;
    size_t nk, o = 0;
    unsigned count = 0;

    out[0] = '\0';
    while (mc_text_next_key(&cur, end, &k, &nk)) {
        ck_assert_uint_lt(o + nk + 2, cap);
        if (count++)
            out[o++] = '|';
        memcpy(out + o, k, nk);
        o += nk;
        out[o] = '\0';
    }
    ck_assert_uint_eq(count, r->nkeys);
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    ck_assert_ptr_nonnull(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* ---- retrieval ---- */

START_TEST(test_get_parses_keys_in_order)
{
    struct mc_text_req r;
    char buf[256];

    expect_ok(&r, "get a bb ccc\r\n", MC_GET);
    ck_assert_uint_eq(r.nkeys, 3);
    join_keys(&r, buf, sizeof(buf));
    ck_assert_str_eq(buf, "a|bb|ccc");

    expect_ok(&r, "gets k\r\n", MC_GETS);
    ck_assert_uint_eq(r.nkeys, 1);
    join_keys(&r, buf, sizeof(buf));
    ck_assert_str_eq(buf, "k");
}
END_TEST

START_TEST(test_gat_and_gats_parse_exptime_then_keys)
{
    struct mc_text_req r;
    char buf[256];

    expect_ok(&r, "gat 100 x y\r\n", MC_GAT);
    ck_assert_int_eq(r.exptime, 100);
    join_keys(&r, buf, sizeof(buf));
    ck_assert_str_eq(buf, "x|y");

    expect_ok(&r, "gats -5 z\r\n", MC_GATS);
    ck_assert_int_eq(r.exptime, -5);
    ck_assert_uint_eq(r.nkeys, 1);
}
END_TEST

/* memcached 1.6.45: gat needs a key too (1.6.18 answered END) */
START_TEST(test_gat_with_exptime_and_no_key_is_error)
{
    expect_invalid("gat 10\r\n", MC_GAT, E_FORMAT, false);
    expect_invalid("gats 10   \r\n", MC_GATS, E_FORMAT, false);
}
END_TEST

START_TEST(test_retrieval_without_key_or_exptime_is_error)
{
    expect_invalid("get\r\n", MC_GET, E_FORMAT, false);
    expect_invalid("gets   \r\n", MC_GETS, E_FORMAT, false);
    expect_invalid("gat\r\n", MC_GAT, E_FORMAT, false);
    expect_invalid("gats\r\n", MC_GATS, E_FORMAT, false);
}
END_TEST

START_TEST(test_gat_bad_exptime_is_invalid_exptime)
{
    expect_invalid("gat x a\r\n", MC_GAT, E_EXPTIME, false);
    expect_invalid("gat x\r\n", MC_GAT, E_EXPTIME, false);
    expect_invalid("gats +1 a\r\n", MC_GATS, E_EXPTIME, false);
}
END_TEST

START_TEST(test_get_with_100_keys_iterates_in_order)
{
    char line[2048], expect[2048], got[2048];
    size_t o = 0, x = 0;
    struct mc_text_req r;

    o += (size_t)snprintf(line + o, sizeof(line) - o, "get");
    for (int i = 0; i < 100; i++) {
        o += (size_t)snprintf(line + o, sizeof(line) - o, "%s key%d", i % 7 ? "" : "  ", i);
        x += (size_t)snprintf(expect + x, sizeof(expect) - x, "%skey%d", i ? "|" : "", i);
    }
    snprintf(line + o, sizeof(line) - o, "\r\n");
    expect_ok(&r, line, MC_GET);
    ck_assert_uint_eq(r.nkeys, 100);
    join_keys(&r, got, sizeof(got));
    ck_assert_str_eq(got, expect);
}
END_TEST

START_TEST(test_get_key_of_250_ok_and_251_rejected)
{
    struct mc_text_req r;
    char line[600];
    char *k250 = repeat('k', 250), *k251 = repeat('k', 251);

    snprintf(line, sizeof(line), "get a %s\r\n", k250);
    expect_ok(&r, line, MC_GET);
    ck_assert_uint_eq(r.nkeys, 2);
    snprintf(line, sizeof(line), "get a %s b\r\n", k251);
    expect_invalid(line, MC_GET, E_FORMAT, false);
    free(k250);
    free(k251);
}
END_TEST

/* memcached 1.6.45 splits on spaces only and checks a key's length alone:
 * memcaslap's keys hold 0x10, and every one was refused before. */
START_TEST(test_get_key_with_control_bytes_accepted)
{
    struct mc_text_req r;
    const char *cur, *end, *k;
    size_t nk;

    expect_ok(&r, "get a\x10" "b c\x01 \x7f d\te\r\n", MC_GET);
    ck_assert_uint_eq(r.nkeys, 4);
    cur = r.keys;
    end = r.keys + r.keys_len;
    ck_assert(mc_text_next_key(&cur, end, &k, &nk));
    ck_assert_uint_eq(nk, 3);
    ck_assert(memcmp(k, "a\x10" "b", 3) == 0);
    ck_assert(mc_text_next_key(&cur, end, &k, &nk));
    ck_assert(mc_text_next_key(&cur, end, &k, &nk));
    ck_assert(mc_text_next_key(&cur, end, &k, &nk));
    ck_assert_uint_eq(nk, 3);
    ck_assert(memcmp(k, "d\te", 3) == 0);
    /* a "\r" inside the line is a key byte; only the one before "\n" goes */
    expect_ok(&r, "get a\rb\r\n", MC_GET);
    ck_assert_uint_eq(r.keys_len, 3);
    expect_ok(&r, "gats 10 \x1f\r\n", MC_GATS);
    ck_assert_uint_eq(r.nkeys, 1);
    expect_ok(&r, "mg a\x10" "b v\r\n", MC_META_GET);
    ck_assert_uint_eq(r.nkey, 3);
}
END_TEST

START_TEST(test_get_key_of_250_control_bytes_ok_251_invalid)
{
    struct mc_text_req r;
    char line[600];

    memset(line, 0, sizeof(line));
    memcpy(line, "get ", 4);
    memset(line + 4, 0x10, 250);
    memcpy(line + 254, "\r\n", 2);
    expect_ok(&r, line, MC_GET);
    ck_assert_uint_eq(r.keys_len, 250);
    memset(line + 4, 0x10, 251);
    memcpy(line + 255, "\r\n", 2);
    expect_invalid(line, MC_GET, E_FORMAT, false);
}
END_TEST

START_TEST(test_get_key_with_high_bytes_accepted)
{
    struct mc_text_req r;
    expect_ok(&r, "get caf\xc3\xa9\r\n", MC_GET);
    ck_assert_uint_eq(r.nkeys, 1);
}
END_TEST

/* ---- storage ---- */

START_TEST(test_storage_commands_parse_all_fields)
{
    static const struct { const char *name; enum mc_cmd cmd; } cmds[] = {
        { "set", MC_SET }, { "add", MC_ADD }, { "replace", MC_REPLACE },
        { "append", MC_APPEND }, { "prepend", MC_PREPEND },
    };
    struct mc_text_req r;
    char line[128];

    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        snprintf(line, sizeof(line), "%s foo 42 -7 5\r\n", cmds[i].name);
        expect_ok(&r, line, cmds[i].cmd);
        expect_key(&r, "foo");
        ck_assert_uint_eq(r.flags, 42);
        ck_assert_int_eq(r.exptime, -7);
        ck_assert_uint_eq(r.vlen, 5);
        ck_assert(!r.noreply);
    }
}
END_TEST

START_TEST(test_cas_parses_unique)
{
    struct mc_text_req r;
    expect_ok(&r, "cas k 1 2 3 18446744073709551615\r\n", MC_CAS);
    expect_key(&r, "k");
    ck_assert_uint_eq(r.flags, 1);
    ck_assert_int_eq(r.exptime, 2);
    ck_assert_uint_eq(r.vlen, 3);
    ck_assert(r.cas == UINT64_MAX);
    ck_assert(!r.noreply);
    expect_ok(&r, "cas k 1 2 3 9 noreply\r\n", MC_CAS);
    ck_assert(r.cas == 9);
    ck_assert(r.noreply);
}
END_TEST

START_TEST(test_storage_noreply_as_last_token)
{
    struct mc_text_req r;
    expect_ok(&r, "set k 0 0 1 noreply\r\n", MC_SET);
    ck_assert(r.noreply);
    expect_ok(&r, "append k 0 0 1 noreply\r\n", MC_APPEND);
    ck_assert(r.noreply);
}
END_TEST

START_TEST(test_storage_optional_token_other_than_noreply_is_ignored)
{
    struct mc_text_req r;
    expect_ok(&r, "set k 0 0 1 bogus\r\n", MC_SET);
    ck_assert(!r.noreply);
    ck_assert_uint_eq(r.vlen, 1);
    expect_ok(&r, "cas k 0 0 1 5 junk\r\n", MC_CAS);
    ck_assert(!r.noreply);
    expect_ok(&r, "set k 0 0 1 NOREPLY\r\n", MC_SET);
    ck_assert(!r.noreply);
}
END_TEST

/* memcached 1.6.45: too few tokens is a format error; data follows (and
 * is skipped) only when <bytes> was valid; extra tokens are ignored and
 * noreply counts only last. */
START_TEST(test_storage_token_counts)
{
    struct mc_text_req r;
    expect_invalid("set k 0 0\r\n", MC_SET, E_FORMAT, false);
    ck_assert(parse_str(&r, "set k 0 0\r\n") == PARSE_INVALID && !r.has_data);
    expect_invalid("set\r\n", MC_SET, E_FORMAT, false);
    expect_invalid("set k 0 0 noreply\r\n", MC_SET, E_FORMAT, false);
    ck_assert(parse_str(&r, "cas k 0 0 1\r\n") == PARSE_INVALID);
    ck_assert_str_eq(r.error, E_FORMAT);
    ck_assert(r.has_data);
    ck_assert_uint_eq(r.vlen, 1);
    ck_assert(parse_str(&r, "set k x 0 3 noreply\r\n") == PARSE_INVALID);
    ck_assert(r.has_data && r.noreply);
    ck_assert_uint_eq(r.vlen, 3);
    ck_assert(parse_str(&r, "set k 0 0 -1\r\n") == PARSE_INVALID && !r.has_data);
    expect_ok(&r, "set k 0 0 1 noreply extra\r\n", MC_SET);
    ck_assert(!r.noreply);
    expect_ok(&r, "set k 0 0 1 extra noreply\r\n", MC_SET);
    ck_assert(r.noreply);
    expect_ok(&r, "cas k 0 0 1 5 noreply junk\r\n", MC_CAS);
    ck_assert_uint_eq(r.cas, 5);
    ck_assert(!r.noreply);
    ck_assert(r.has_data);
}
END_TEST

START_TEST(test_storage_bad_number_is_bad_format_and_keeps_vlen)
{
    struct mc_text_req r;

    ck_assert_int_eq(parse_str(&r, "set k x 0 5\r\n"), PARSE_INVALID);
    ck_assert_str_eq(r.error, E_FORMAT);
    ck_assert_int_eq(r.cmd, MC_SET);
    ck_assert_uint_eq(r.vlen, 5);

    ck_assert_int_eq(parse_str(&r, "set k 0 0 x\r\n"), PARSE_INVALID);
    ck_assert_str_eq(r.error, E_FORMAT);
    ck_assert_uint_eq(r.vlen, 0);

    expect_invalid("set k 0 y 1\r\n", MC_SET, E_FORMAT, false);
    expect_invalid("set k 5x 0 1\r\n", MC_SET, E_FORMAT, false);
    expect_invalid("cas k 0 0 1 x\r\n", MC_CAS, E_FORMAT, false);
    expect_invalid("cas k 0 0 1 -1\r\n", MC_CAS, E_FORMAT, false);
}
END_TEST

START_TEST(test_storage_invalid_line_still_reports_noreply)
{
    expect_invalid("set k x 0 1 noreply\r\n", MC_SET, E_FORMAT, true);
    expect_invalid("cas k 0 0 1 noreply\r\n", MC_CAS, E_FORMAT, true);
}
END_TEST

START_TEST(test_storage_key_of_250_ok_and_251_rejected)
{
    struct mc_text_req r;
    char line[600];
    char *k250 = repeat('k', 250), *k251 = repeat('k', 251);

    snprintf(line, sizeof(line), "set %s 0 0 1\r\n", k250);
    expect_ok(&r, line, MC_SET);
    ck_assert_uint_eq(r.nkey, 250);
    snprintf(line, sizeof(line), "set %s 0 0 7\r\n", k251);
    ck_assert_int_eq(parse_str(&r, line), PARSE_INVALID);
    ck_assert_str_eq(r.error, E_FORMAT);
    ck_assert_uint_eq(r.vlen, 7);
    free(k250);
    free(k251);
}
END_TEST

START_TEST(test_storage_key_with_control_bytes_accepted)
{
    struct mc_text_req r;

    expect_ok(&r, "set a\x10" "b 5 0 1\r\n", MC_SET);
    ck_assert_uint_eq(r.nkey, 3);
    ck_assert(memcmp(r.key, "a\x10" "b", 3) == 0);
    ck_assert_uint_eq(r.flags, 5);
    expect_ok(&r, "add a\x7f\x02 0 0 1 noreply\r\n", MC_ADD);
    ck_assert_uint_eq(r.nkey, 3);
    ck_assert(r.noreply);
    expect_ok(&r, "delete \x10\r\n", MC_DELETE);
    ck_assert_uint_eq(r.nkey, 1);
    expect_ok(&r, "incr k\x1b 1\r\n", MC_INCR);
    ck_assert_uint_eq(r.nkey, 2);
    expect_ok(&r, "touch \tk 1\r\n", MC_TOUCH);
    ck_assert_uint_eq(r.nkey, 2);
}
END_TEST

START_TEST(test_flags_limits)
{
    struct mc_text_req r;
    expect_ok(&r, "set k 4294967295 0 1\r\n", MC_SET);
    ck_assert_uint_eq(r.flags, UINT32_MAX);
    expect_ok(&r, "set k 0 0 1\r\n", MC_SET);
    ck_assert_uint_eq(r.flags, 0);
    expect_invalid("set k 4294967296 0 1\r\n", MC_SET, E_FORMAT, false);
    expect_invalid("set k 99999999999999999999999 0 1\r\n", MC_SET, E_FORMAT, false);
    expect_invalid("set k -1 0 1\r\n", MC_SET, E_FORMAT, false);
    expect_invalid("set k +5 0 1\r\n", MC_SET, E_FORMAT, false);
}
END_TEST

START_TEST(test_exptime_limits)
{
    struct mc_text_req r;
    expect_ok(&r, "set k 0 9223372036854775807 1\r\n", MC_SET);
    ck_assert(r.exptime == INT64_MAX);
    expect_ok(&r, "set k 0 -9223372036854775808 1\r\n", MC_SET);
    ck_assert(r.exptime == INT64_MIN);
    expect_invalid("set k 0 9223372036854775808 1\r\n", MC_SET, E_FORMAT, false);
    expect_invalid("set k 0 -9223372036854775809 1\r\n", MC_SET, E_FORMAT, false);
    expect_invalid("set k 0 - 1\r\n", MC_SET, E_FORMAT, false);
    expect_invalid("set k 0 +1 1\r\n", MC_SET, E_FORMAT, false);
    expect_invalid("set k 0 1- 1\r\n", MC_SET, E_FORMAT, false);
}
END_TEST

START_TEST(test_bytes_limits)
{
    struct mc_text_req r;
    expect_ok(&r, "set k 0 0 0\r\n", MC_SET);
    ck_assert_uint_eq(r.vlen, 0);
    expect_ok(&r, "set k 0 0 2147483645\r\n", MC_SET);
    ck_assert_uint_eq(r.vlen, 2147483645u);
    ck_assert_int_eq(parse_str(&r, "set k 0 0 2147483646\r\n"), PARSE_INVALID);
    ck_assert_str_eq(r.error, E_FORMAT);
    ck_assert_uint_eq(r.vlen, 0);
    expect_invalid("set k 0 0 -1\r\n", MC_SET, E_FORMAT, false);
    expect_invalid("set k 0 0 4294967297\r\n", MC_SET, E_FORMAT, false);
}
END_TEST

START_TEST(test_cas_unique_limits)
{
    expect_invalid("cas k 0 0 1 18446744073709551616\r\n", MC_CAS, E_FORMAT, false);
    expect_invalid("cas k 0 0 1 +1\r\n", MC_CAS, E_FORMAT, false);
    struct mc_text_req r;
    expect_ok(&r, "cas k 0 0 1 000000000000000000000018446744073709551615\r\n", MC_CAS);
    ck_assert(r.cas == UINT64_MAX);
}
END_TEST

/* ---- delete ---- */

START_TEST(test_delete_forms)
{
    struct mc_text_req r;
    expect_ok(&r, "delete foo\r\n", MC_DELETE);
    expect_key(&r, "foo");
    ck_assert(!r.noreply);
    expect_ok(&r, "delete foo noreply\r\n", MC_DELETE);
    ck_assert(r.noreply);
    expect_ok(&r, "delete foo 0\r\n", MC_DELETE);
    ck_assert(!r.noreply);
    expect_ok(&r, "delete foo 0 noreply\r\n", MC_DELETE);
    ck_assert(r.noreply);
    expect_ok(&r, "delete noreply\r\n", MC_DELETE);
    expect_key(&r, "noreply");
    ck_assert(!r.noreply);
}
END_TEST

START_TEST(test_delete_extra_tokens_give_usage_error)
{
    expect_invalid("delete foo 1\r\n", MC_DELETE, E_DELETE, false);
    expect_invalid("delete foo 00\r\n", MC_DELETE, E_DELETE, false);
    expect_invalid("delete foo x y\r\n", MC_DELETE, E_DELETE, false);
    expect_invalid("delete foo 1 noreply\r\n", MC_DELETE, E_DELETE, true);
    expect_invalid("delete foo noreply 0\r\n", MC_DELETE, E_DELETE, false);
}
END_TEST

START_TEST(test_delete_wrong_token_count_is_error)
{
    expect_invalid("delete\r\n", MC_DELETE, E_FORMAT, false);
    /* delete keeps 1.6.18's usage error for extra tokens (memccapable) */
    expect_invalid("delete foo 0 noreply x\r\n", MC_DELETE,
                   "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]", false);
}
END_TEST

START_TEST(test_delete_bad_key_is_bad_format)
{
    char line[300];
    char *k251 = repeat('d', 251);
    snprintf(line, sizeof(line), "delete %s\r\n", k251);
    expect_invalid(line, MC_DELETE, E_FORMAT, false);
    free(k251);
}
END_TEST

/* ---- incr/decr, touch ---- */

START_TEST(test_incr_decr_parse_key_and_delta)
{
    struct mc_text_req r;
    expect_ok(&r, "incr n 5\r\n", MC_INCR);
    expect_key(&r, "n");
    ck_assert(r.delta == 5);
    ck_assert(!r.noreply);
    expect_ok(&r, "decr n 18446744073709551615 noreply\r\n", MC_DECR);
    ck_assert(r.delta == UINT64_MAX);
    ck_assert(r.noreply);
    expect_ok(&r, "incr n 1 x\r\n", MC_INCR);
    ck_assert(!r.noreply);
}
END_TEST

START_TEST(test_incr_bad_delta_is_invalid_numeric_delta)
{
    expect_invalid("incr n x\r\n", MC_INCR, E_DELTA, false);
    expect_invalid("incr n -1\r\n", MC_INCR, E_DELTA, false);
    expect_invalid("decr n 18446744073709551616\r\n", MC_DECR, E_DELTA, false);
    expect_invalid("incr n +1\r\n", MC_INCR, E_DELTA, false);
    expect_invalid("incr n 1a\r\n", MC_INCR, E_DELTA, false);
    expect_invalid("incr n x noreply\r\n", MC_INCR, E_DELTA, true);
    expect_invalid("incr n noreply\r\n", MC_INCR, E_DELTA, true);
}
END_TEST

START_TEST(test_incr_wrong_token_count_and_bad_key)
{
    char line[300];
    char *k251 = repeat('i', 251);
    struct mc_text_req r;
    expect_invalid("incr n\r\n", MC_INCR, E_FORMAT, false);
    expect_ok(&r, "incr n 1 noreply x\r\n", MC_INCR);
    ck_assert(!r.noreply);
    ck_assert_uint_eq(r.delta, 1);
    expect_invalid("incr n noreply\r\n", MC_INCR, E_DELTA, true);
    snprintf(line, sizeof(line), "incr %s 1\r\n", k251);
    expect_invalid(line, MC_INCR, E_FORMAT, false);
    free(k251);
}
END_TEST

START_TEST(test_touch_parses_key_and_exptime)
{
    struct mc_text_req r;
    char line[300];
    char *k251 = repeat('t', 251);

    expect_ok(&r, "touch k -30\r\n", MC_TOUCH);
    expect_key(&r, "k");
    ck_assert_int_eq(r.exptime, -30);
    expect_ok(&r, "touch k 30 noreply\r\n", MC_TOUCH);
    ck_assert(r.noreply);
    expect_invalid("touch k x\r\n", MC_TOUCH, E_EXPTIME, false);
    expect_invalid("touch k noreply\r\n", MC_TOUCH, E_EXPTIME, true);
    expect_invalid("touch k\r\n", MC_TOUCH, E_FORMAT, false);
    expect_ok(&r, "touch k 5 x y\r\n", MC_TOUCH);
    ck_assert_int_eq(r.exptime, 5);
    snprintf(line, sizeof(line), "touch %s 1\r\n", k251);
    expect_invalid(line, MC_TOUCH, E_FORMAT, false);
    free(k251);
}
END_TEST

/* ---- other commands ---- */

START_TEST(test_flush_all_forms)
{
    struct mc_text_req r;
    expect_ok(&r, "flush_all\r\n", MC_FLUSH_ALL);
    ck_assert_int_eq(r.delay, 0);
    ck_assert(!r.noreply);
    expect_ok(&r, "flush_all noreply\r\n", MC_FLUSH_ALL);
    ck_assert(r.noreply);
    ck_assert_int_eq(r.delay, 0);
    expect_ok(&r, "flush_all 10 noreply\r\n", MC_FLUSH_ALL);
    ck_assert(r.noreply);
    ck_assert_int_eq(r.delay, 10);
    expect_ok(&r, "flush_all -1\r\n", MC_FLUSH_ALL);
    ck_assert_int_eq(r.delay, -1);
    expect_ok(&r, "flush_all 0 x\r\n", MC_FLUSH_ALL);
    ck_assert(!r.noreply);
    expect_invalid("flush_all x\r\n", MC_FLUSH_ALL, E_EXPTIME, false);
    expect_invalid("flush_all x noreply\r\n", MC_FLUSH_ALL, E_EXPTIME, true);
    expect_ok(&r, "flush_all 1 2 3\r\n", MC_FLUSH_ALL);
    ck_assert_int_eq(r.delay, 1);
}
END_TEST

START_TEST(test_verbosity_forms)
{
    struct mc_text_req r;
    expect_ok(&r, "verbosity 1\r\n", MC_VERBOSITY);
    ck_assert_uint_eq(r.level, 1);
    expect_ok(&r, "verbosity 2 noreply\r\n", MC_VERBOSITY);
    ck_assert_uint_eq(r.level, 2);
    ck_assert(r.noreply);
    expect_ok(&r, "verbosity 1 x\r\n", MC_VERBOSITY);
    ck_assert(!r.noreply);
    expect_invalid("verbosity\r\n", MC_VERBOSITY, E_FORMAT, false);
    expect_ok(&r, "verbosity 1 2 3\r\n", MC_VERBOSITY);
    expect_invalid("verbosity x\r\n", MC_VERBOSITY, E_FORMAT, false);
    expect_invalid("verbosity -1\r\n", MC_VERBOSITY, E_FORMAT, false);
    expect_invalid("verbosity 4294967296\r\n", MC_VERBOSITY, E_FORMAT, false);
    expect_invalid("verbosity noreply\r\n", MC_VERBOSITY, E_FORMAT, true);
}
END_TEST

START_TEST(test_cache_memlimit_and_lru_crawler_forms)
{
    struct mc_text_req r;
    expect_ok(&r, "cache_memlimit 100\r\n", MC_CACHE_MEMLIMIT);
    ck_assert_uint_eq(r.megabytes, 100);
    ck_assert(!r.noreply);
    expect_ok(&r, "cache_memlimit 8 noreply\r\n", MC_CACHE_MEMLIMIT);
    ck_assert_uint_eq(r.megabytes, 8);
    ck_assert(r.noreply);
    expect_ok(&r, "cache_memlimit 4294967295\r\n", MC_CACHE_MEMLIMIT);
    /* memcached answers a bare ERROR for a missing or bad count */
    expect_invalid("cache_memlimit\r\n", MC_CACHE_MEMLIMIT, "ERROR", false);
    expect_invalid("cache_memlimit abc\r\n", MC_CACHE_MEMLIMIT, "ERROR", false);
    expect_invalid("cache_memlimit -5\r\n", MC_CACHE_MEMLIMIT, "ERROR", false);
    expect_invalid("cache_memlimit 4294967296\r\n", MC_CACHE_MEMLIMIT, "ERROR", false);
    expect_invalid("cache_memlimit noreply\r\n", MC_CACHE_MEMLIMIT, "ERROR", true);
    expect_ok(&r, "lru_crawler metadump all\r\n", MC_LRU_CRAWLER);
    ck_assert_uint_eq(r.args_len, 12);
    ck_assert(memcmp(r.args, "metadump all", 12) == 0);
    expect_ok(&r, "lru_crawler\r\n", MC_LRU_CRAWLER);
    ck_assert_uint_eq(r.args_len, 0);
}
END_TEST

START_TEST(test_version_quit_shutdown_stats)
{
    struct mc_text_req r;
    expect_ok(&r, "version\r\n", MC_VERSION);
    expect_ok(&r, "version x\r\n", MC_VERSION);
    expect_ok(&r, "quit\r\n", MC_QUIT);
    expect_ok(&r, "quit now\r\n", MC_QUIT);
    expect_ok(&r, "shutdown\r\n", MC_SHUTDOWN);
    expect_args(&r, "");
    expect_ok(&r, "shutdown graceful\r\n", MC_SHUTDOWN);
    expect_args(&r, "graceful");
    expect_ok(&r, "stats\r\n", MC_STATS);
    expect_args(&r, "");
    expect_ok(&r, "stats  slabs   x  \r\n", MC_STATS);
    expect_args(&r, "slabs   x");
}
END_TEST

START_TEST(test_meta_commands_give_key_and_rest_of_line)
{
    static const struct { const char *name; enum mc_cmd cmd; } cmds[] = {
        { "mg", MC_META_GET }, { "ms", MC_META_SET }, { "md", MC_META_DELETE },
        { "ma", MC_META_ARITH }, { "me", MC_META_DEBUG },
    };
    struct mc_text_req r;
    char line[64];

    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        snprintf(line, sizeof(line), "%s  foo  v t  O123 \r\n", cmds[i].name);
        expect_ok(&r, line, cmds[i].cmd);
        expect_key(&r, "foo");
        expect_args(&r, "v t  O123");
        snprintf(line, sizeof(line), "%s foo\r\n", cmds[i].name);
        expect_ok(&r, line, cmds[i].cmd);
        expect_args(&r, "");
    }
    expect_ok(&r, "mn\r\n", MC_META_NOOP);
    ck_assert_uint_eq(r.nkey, 0);
    expect_args(&r, "");
    expect_ok(&r, "mn foo\r\n", MC_META_NOOP);
    expect_args(&r, "foo");
}
END_TEST

START_TEST(test_meta_without_key_is_error)
{
    expect_invalid("mg\r\n", MC_META_GET, E_FORMAT, false);
    expect_invalid("ms  \r\n", MC_META_SET, E_FORMAT, false);
    expect_invalid("md\r\n", MC_META_DELETE, E_FORMAT, false);
    expect_invalid("ma\r\n", MC_META_ARITH, E_FORMAT, false);
    expect_invalid("me\r\n", MC_META_DEBUG, E_FORMAT, false);
}
END_TEST

START_TEST(test_unknown_commands_and_empty_lines_are_error)
{
    /* memcached 1.6.45 refuses lines under two bytes as a format error */
    expect_unknown_err("\r\n", E_FORMAT);
    expect_unknown_err("\n", E_FORMAT);
    expect_unknown_err("x\r\n", E_FORMAT);
    expect_unknown("    \r\n");
    expect_unknown("GET a\r\n");
    expect_unknown("get\ta\r\n");
    expect_unknown("mgx a\r\n");
    expect_unknown("mz a\r\n");
    expect_unknown_err("g\r\n", E_FORMAT);
    expect_unknown("getsx a\r\n");
    expect_unknown("flush\r\n");
    {
        /* an HTTP request line: the caller closes the connection */
        struct mc_text_req r;
        ck_assert_int_eq(parse_str(&r, "xget / HTTP/1.1\r\n"), PARSE_UNKNOWN);
        ck_assert(r.http);
        ck_assert_int_eq(parse_str(&r, "foo HTTP\r\n"), PARSE_UNKNOWN);
        ck_assert(!r.http);
        ck_assert_int_eq(parse_str(&r, "HTTP/1.1\r\n"), PARSE_UNKNOWN);
        ck_assert(!r.http);
    }
}
END_TEST

START_TEST(test_cmd_name_names_every_command)
{
    ck_assert_str_eq(mc_cmd_name(MC_GET), "get");
    ck_assert_str_eq(mc_cmd_name(MC_CAS), "cas");
    ck_assert_str_eq(mc_cmd_name(MC_FLUSH_ALL), "flush_all");
    ck_assert_str_eq(mc_cmd_name(MC_META_DEBUG), "me");
    ck_assert_str_eq(mc_cmd_name(MC_NONE), "unknown");
    ck_assert_str_eq(mc_cmd_name(MC_CMD_COUNT), "unknown");
    /* Every name parses back to its own command. */
    for (int c = MC_NONE + 1; c < MC_CMD_COUNT; c++) {
        char line[64];
        struct mc_text_req r;
        size_t used;
        snprintf(line, sizeof(line), "%s\r\n", mc_cmd_name((enum mc_cmd)c));
        mc_text_parse(&r, line, strlen(line), &used);
        ck_assert_msg(r.cmd == (enum mc_cmd)c, "%s", line);
    }
}
END_TEST

/* ---- line endings, spacing, pipelining ---- */

START_TEST(test_bare_newline_and_crlf_give_same_request)
{
    struct mc_text_req a, b;
    expect_ok(&a, "set k 1 2 3 noreply\n", MC_SET);
    expect_ok(&b, "set k 1 2 3 noreply\r\n", MC_SET);
    ck_assert(a.noreply && b.noreply);
    ck_assert_uint_eq(a.vlen, b.vlen);
    expect_ok(&a, "get a b\n", MC_GET);
    ck_assert_uint_eq(a.keys_len, 3);
    /* A "\r" not right before "\n" is not a line ending: it is a key byte. */
    expect_ok(&a, "delete k\r \r\n", MC_DELETE);
    ck_assert_uint_eq(a.nkey, 2);
}
END_TEST

START_TEST(test_multiple_and_surrounding_spaces_separate_tokens)
{
    struct mc_text_req r;
    char buf[64];
    expect_ok(&r, "   set   k  1   2  3    noreply   \r\n", MC_SET);
    expect_key(&r, "k");
    ck_assert_uint_eq(r.flags, 1);
    ck_assert_int_eq(r.exptime, 2);
    ck_assert_uint_eq(r.vlen, 3);
    ck_assert(r.noreply);
    expect_ok(&r, "  get   a    b  \r\n", MC_GET);
    join_keys(&r, buf, sizeof(buf));
    ck_assert_str_eq(buf, "a|b");
    ck_assert_uint_eq(r.keys_len, 6);
}
END_TEST

START_TEST(test_pipelined_requests_parse_one_after_another)
{
    static const char in[] =
        "get a\r\n"
        "set k 0 0 2\r\n"
        "incr n 7\n"
        "bogus\r\n"
        "delete k noreply\r\n"
        "touch k x\r\n"
        "ver";
    static const struct { enum parse_status st; enum mc_cmd cmd; } want[] = {
        { PARSE_OK, MC_GET }, { PARSE_OK, MC_SET }, { PARSE_OK, MC_INCR },
        { PARSE_UNKNOWN, MC_NONE }, { PARSE_OK, MC_DELETE },
        { PARSE_INVALID, MC_TOUCH }, { PARSE_AGAIN, MC_NONE },
    };
    const char *p = in;
    size_t n = sizeof(in) - 1;

    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        struct mc_text_req r;
        size_t used;
        enum parse_status st = mc_text_parse(&r, p, n, &used);
        ck_assert_int_eq(st, want[i].st);
        if (st == PARSE_AGAIN) {
            ck_assert_uint_eq(used, 0);
            ck_assert_uint_eq(n, 3);
            break;
        }
        ck_assert_int_eq(r.cmd, want[i].cmd);
        if (r.cmd == MC_INCR)
            ck_assert(r.delta == 7);
        ck_assert_uint_gt(used, 0);
        ck_assert(p[used - 1] == '\n');
        p += used;
        n -= used;
    }
}
END_TEST

/* Two requests equal in every field (pointers compared as offsets). */
static void assert_same_req(const struct mc_text_req *a, const char *pa,
                            const struct mc_text_req *b, const char *pb)
{
    ck_assert_int_eq(a->cmd, b->cmd);
    ck_assert_uint_eq(a->nkey, b->nkey);
    if (a->nkey)
        ck_assert_int_eq(a->key - pa, b->key - pb);
    ck_assert_uint_eq(a->keys_len, b->keys_len);
    ck_assert_uint_eq(a->nkeys, b->nkeys);
    if (a->keys_len)
        ck_assert_int_eq(a->keys - pa, b->keys - pb);
    ck_assert_uint_eq(a->flags, b->flags);
    ck_assert(a->exptime == b->exptime);
    ck_assert_uint_eq(a->vlen, b->vlen);
    ck_assert(a->cas == b->cas);
    ck_assert(a->delta == b->delta);
    ck_assert(a->delay == b->delay);
    ck_assert_uint_eq(a->level, b->level);
    ck_assert(a->noreply == b->noreply);
    ck_assert_uint_eq(a->args_len, b->args_len);
    if (a->args_len)
        ck_assert_int_eq(a->args - pa, b->args - pb);
    ck_assert(a->error == b->error);
}

START_TEST(test_input_split_at_every_offset_waits_then_matches_whole)
{
    static const char *reqs[] = {
        "get a bb ccc\r\n", "gats 10 x y\n", "set k 1 -2 3 noreply\r\n",
        "cas k 0 0 1 77\r\n", "delete k 0 noreply\r\n", "incr n 99\r\n",
        "touch k 5\r\n", "flush_all 3 noreply\r\n", "verbosity 1\r\n",
        "stats items\r\n", "mg foo v t\r\n", "mn\r\n", "version\r\n",
        "set k x 0 1\r\n", "bogus cmd\r\n", "\r\n",
    };

    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        const char *s = reqs[i];
        size_t len = strlen(s), used_whole;
        struct mc_text_req whole;
        enum parse_status st = mc_text_parse(&whole, s, len, &used_whole);
        ck_assert_int_ne(st, PARSE_AGAIN);
        ck_assert_uint_eq(used_whole, len);

        /* A private copy of each prefix, so reading past it would be caught
         * by ASan. */
        for (size_t cut = 0; cut <= len; cut++) {
            char *part = malloc(cut ? cut : 1);
            struct mc_text_req r;
            size_t used;
            ck_assert_ptr_nonnull(part);
            memcpy(part, s, cut);
            enum parse_status pst = mc_text_parse(&r, part, cut, &used);
            if (cut < len) {
                ck_assert_msg(pst == PARSE_AGAIN, "%s cut %zu", s, cut);
                ck_assert_uint_eq(used, 0);
            } else {
                ck_assert_int_eq(pst, st);
                ck_assert_uint_eq(used, used_whole);
                assert_same_req(&whole, s, &r, part);
            }
            free(part);
        }
    }
}
END_TEST

/* ---- line limits ---- */

/* A heap buffer of n bytes: prefix, then filler spaces, no newline. */
static char *long_line(const char *prefix, size_t n)
{
    char *b = malloc(n);
    ck_assert_ptr_nonnull(b);
    memset(b, 'x', n);
    memcpy(b, prefix, strlen(prefix));
    return b;
}

START_TEST(test_line_limit_too_long_exactly_past_limit)
{
    struct mc_text_req r;
    size_t used = 99;
    char *b = long_line("stats ", MC_TEXT_LINE_MAX);

    ck_assert_int_eq(mc_text_parse(&r, b, MC_TEXT_LINE_MAX - 1, &used), PARSE_AGAIN);
    ck_assert_int_eq(mc_text_parse(&r, b, MC_TEXT_LINE_MAX, &used), PARSE_TOO_LONG);
    ck_assert_uint_eq(used, 0);
    ck_assert_str_eq(r.error, "CLIENT_ERROR line too long");

    /* A line of exactly the limit, newline included, is accepted. */
    b[MC_TEXT_LINE_MAX - 1] = '\n';
    ck_assert_int_eq(mc_text_parse(&r, b, MC_TEXT_LINE_MAX, &used), PARSE_OK);
    ck_assert_uint_eq(used, MC_TEXT_LINE_MAX);
    ck_assert_int_eq(r.cmd, MC_STATS);
    ck_assert_uint_eq(r.args_len, MC_TEXT_LINE_MAX - 7);
    free(b);
}
END_TEST

START_TEST(test_line_limit_never_looks_past_limit)
{
    struct mc_text_req r;
    size_t used;
    char *b = long_line("set ", MC_TEXT_LINE_MAX + 10);
    /* A newline beyond the limit does not rescue the line. */
    b[MC_TEXT_LINE_MAX] = '\n';
    ck_assert_int_eq(mc_text_parse(&r, b, MC_TEXT_LINE_MAX + 10, &used), PARSE_TOO_LONG);
    free(b);
}
END_TEST

START_TEST(test_get_lines_use_the_longer_limit)
{
    static const char *prefixes[] = { "get ", "gets ", "gat 1 ", "gats 1 ", "  get " };
    struct mc_text_req r;
    size_t used;

    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        char *b = long_line(prefixes[i], MC_TEXT_KEYS_LINE_MAX);
        /* Keys of 100 bytes separated by spaces. */
        for (size_t j = strlen(prefixes[i]) + 100; j < MC_TEXT_KEYS_LINE_MAX; j += 101)
            b[j] = ' ';
        ck_assert_int_eq(mc_text_parse(&r, b, MC_TEXT_LINE_MAX, &used), PARSE_AGAIN);
        ck_assert_int_eq(mc_text_parse(&r, b, MC_TEXT_KEYS_LINE_MAX - 1, &used), PARSE_AGAIN);
        ck_assert_int_eq(mc_text_parse(&r, b, MC_TEXT_KEYS_LINE_MAX, &used), PARSE_TOO_LONG);
        ck_assert_str_eq(r.error, "CLIENT_ERROR line too long");
        b[MC_TEXT_KEYS_LINE_MAX - 1] = '\n';
        ck_assert_int_eq(mc_text_parse(&r, b, MC_TEXT_KEYS_LINE_MAX, &used), PARSE_OK);
        ck_assert_uint_eq(used, MC_TEXT_KEYS_LINE_MAX);
        ck_assert_uint_gt(r.nkeys, 2000);
        free(b);
    }
    /* Not a retrieval line: the short limit applies. */
    char *b = long_line("getx ", MC_TEXT_LINE_MAX);
    ck_assert_int_eq(mc_text_parse(&r, b, MC_TEXT_LINE_MAX, &used), PARSE_TOO_LONG);
    free(b);
}
END_TEST

static Suite *mc_text_suite(void)
{
    Suite *s = suite_create("mc_text");
    TCase *tc = tcase_create("parse");

    tcase_add_test(tc, test_get_parses_keys_in_order);
    tcase_add_test(tc, test_gat_and_gats_parse_exptime_then_keys);
    tcase_add_test(tc, test_gat_with_exptime_and_no_key_is_error);
    tcase_add_test(tc, test_retrieval_without_key_or_exptime_is_error);
    tcase_add_test(tc, test_gat_bad_exptime_is_invalid_exptime);
    tcase_add_test(tc, test_get_with_100_keys_iterates_in_order);
    tcase_add_test(tc, test_get_key_of_250_ok_and_251_rejected);
    tcase_add_test(tc, test_get_key_with_control_bytes_accepted);
    tcase_add_test(tc, test_get_key_of_250_control_bytes_ok_251_invalid);
    tcase_add_test(tc, test_get_key_with_high_bytes_accepted);
    tcase_add_test(tc, test_storage_commands_parse_all_fields);
    tcase_add_test(tc, test_cas_parses_unique);
    tcase_add_test(tc, test_storage_noreply_as_last_token);
    tcase_add_test(tc, test_storage_optional_token_other_than_noreply_is_ignored);
    tcase_add_test(tc, test_storage_token_counts);
    tcase_add_test(tc, test_storage_bad_number_is_bad_format_and_keeps_vlen);
    tcase_add_test(tc, test_storage_invalid_line_still_reports_noreply);
    tcase_add_test(tc, test_storage_key_of_250_ok_and_251_rejected);
    tcase_add_test(tc, test_storage_key_with_control_bytes_accepted);
    tcase_add_test(tc, test_flags_limits);
    tcase_add_test(tc, test_exptime_limits);
    tcase_add_test(tc, test_bytes_limits);
    tcase_add_test(tc, test_cas_unique_limits);
    tcase_add_test(tc, test_delete_forms);
    tcase_add_test(tc, test_delete_extra_tokens_give_usage_error);
    tcase_add_test(tc, test_delete_wrong_token_count_is_error);
    tcase_add_test(tc, test_delete_bad_key_is_bad_format);
    tcase_add_test(tc, test_incr_decr_parse_key_and_delta);
    tcase_add_test(tc, test_incr_bad_delta_is_invalid_numeric_delta);
    tcase_add_test(tc, test_incr_wrong_token_count_and_bad_key);
    tcase_add_test(tc, test_touch_parses_key_and_exptime);
    tcase_add_test(tc, test_flush_all_forms);
    tcase_add_test(tc, test_verbosity_forms);
    tcase_add_test(tc, test_cache_memlimit_and_lru_crawler_forms);
    tcase_add_test(tc, test_version_quit_shutdown_stats);
    tcase_add_test(tc, test_meta_commands_give_key_and_rest_of_line);
    tcase_add_test(tc, test_meta_without_key_is_error);
    tcase_add_test(tc, test_unknown_commands_and_empty_lines_are_error);
    tcase_add_test(tc, test_cmd_name_names_every_command);
    tcase_add_test(tc, test_bare_newline_and_crlf_give_same_request);
    tcase_add_test(tc, test_multiple_and_surrounding_spaces_separate_tokens);
    tcase_add_test(tc, test_pipelined_requests_parse_one_after_another);
    tcase_add_test(tc, test_input_split_at_every_offset_waits_then_matches_whole);
    tcase_add_test(tc, test_line_limit_too_long_exactly_past_limit);
    tcase_add_test(tc, test_line_limit_never_looks_past_limit);
    tcase_add_test(tc, test_get_lines_use_the_longer_limit);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(mc_text_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
