/*
 * Unit tests for proto/resp: multibulk and inline parsing, every protocol
 * error with redis-server 7's exact text (recorded over a socket against
 * 7.0.15), the skipped empty requests, limits, pipelining, input split at
 * every byte (each call on a fresh copy, so a stale pointer is caught by
 * ASan or by a wrong argument), resumption, large arguments handed to the
 * caller from their header (PARSE_STREAM) and the rest of their request
 * parsed after them, and byte-exact composer output.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/resp.h"

#define MAXA 16
#define ADATA 512

static const struct resp_limits lim_redis = {
    .max_bulk = RESP_BULK_MAX, .max_args = 1024 * 1024, .max_inline = RESP_INLINE_MAX,
};
static const struct resp_limits lim_small = {
    .max_bulk = 64, .max_args = 8, .max_inline = 32,
};
/* Bulks of 8 bytes or more are streamed. */
static const struct resp_limits lim_stream = {
    .max_bulk = 64, .max_args = 8, .max_inline = 32, .stream_min = 8,
};

/* Everything a parse produced, copied out of the (freed) input buffer. */
struct outcome {
    enum parse_status status;
    size_t used;
    uint32_t argc;
    uint32_t argbase;
    uint32_t nargs;
    size_t stream_len;
    bool is_inline;
    char error[64];
    size_t alen[MAXA];
    char adata[MAXA][ADATA];
};

static void
record(struct outcome *o, enum parse_status status, size_t used,
       const struct resp_req *r)
{
    uint32_t i;

    memset(o, 0, sizeof(*o));
    o->status = status;
    o->used = used;
    if (status == PARSE_OK || status == PARSE_STREAM) {
        o->argc = r->argc;
        o->argbase = r->argbase;
        o->nargs = r->nargs;
        o->stream_len = r->stream_len;
        o->is_inline = r->is_inline;
        for (i = 0; i < r->argc && i < MAXA; i++) {
            ck_assert_uint_le(r->argv[i].len, ADATA);
            o->alen[i] = r->argv[i].len;
            memcpy(o->adata[i], r->argv[i].ptr, r->argv[i].len);
        }
    } else if (status != PARSE_AGAIN) {
        ck_assert_ptr_nonnull(r->error);
        ck_assert_uint_lt(strlen(r->error), sizeof(o->error));
        strcpy(o->error, r->error);
    }
}

/* One call on an exact-size heap copy of in[0..len) with a fresh state. */
static void
parse_once(struct outcome *o, const char *in, size_t len,
           const struct resp_limits *lim)
{
    struct resp_arg argv[MAXA];
    struct resp_req r = { .argv = argv, .argv_cap = MAXA };
    struct resp_state st;
    char *buf = malloc(len ? len : 1);
    size_t used = 12345;
    enum parse_status s;

    ck_assert_ptr_nonnull(buf);
    memcpy(buf, in, len);
    resp_state_init(&st);
    s = resp_parse(&r, &st, buf, len, &used, lim);
    record(o, s, used, &r);
    if (s == PARSE_AGAIN) {
        ck_assert_uint_eq(used, 0);
    }
    free(buf);
}

/*
 * Feed in[0..k) for k = 0, 1, 2, ... with one state kept across calls, each
 * call on a new heap copy (the old one freed), until a result other than
 * PARSE_AGAIN. Returns the k that produced it.
 */
static size_t
parse_bytewise(struct outcome *o, const char *in, size_t len,
               const struct resp_limits *lim)
{
    struct resp_arg argv[MAXA];
    struct resp_req r = { .argv = argv, .argv_cap = MAXA };
    struct resp_state st;
    size_t k;

    resp_state_init(&st);
    for (k = 0; k <= len; k++) {
        char *buf = malloc(k ? k : 1);
        size_t used = 12345;
        enum parse_status s;

        ck_assert_ptr_nonnull(buf);
        memcpy(buf, in, k);
        s = resp_parse(&r, &st, buf, k, &used, lim);
        record(o, s, used, &r);
        free(buf);
        if (s != PARSE_AGAIN) {
            return k;
        }
        ck_assert_uint_eq(used, 0);
    }
    return k;
}

static void
assert_same(const struct outcome *a, const struct outcome *b)
{
    uint32_t i;

    ck_assert_int_eq(a->status, b->status);
    ck_assert_uint_eq(a->used, b->used);
    ck_assert_uint_eq(a->argc, b->argc);
    ck_assert_uint_eq(a->argbase, b->argbase);
    ck_assert_uint_eq(a->nargs, b->nargs);
    ck_assert_uint_eq(a->stream_len, b->stream_len);
    ck_assert_int_eq(a->is_inline, b->is_inline);
    ck_assert_str_eq(a->error, b->error);
    for (i = 0; i < a->argc && i < MAXA; i++) {
        ck_assert_uint_eq(a->alen[i], b->alen[i]);
        ck_assert(memcmp(a->adata[i], b->adata[i], a->alen[i]) == 0);
    }
}

static void
assert_arg(const struct outcome *o, uint32_t i, const char *want, size_t len)
{
    ck_assert_uint_lt(i, o->argc);
    ck_assert_uint_eq(o->alen[i], len);
    ck_assert_msg(memcmp(o->adata[i], want, len) == 0, "arg %u differs", i);
}

#define S(lit) (lit), (sizeof(lit) - 1)
#define ARG(o, i, lit) assert_arg((o), (i), (lit), sizeof(lit) - 1)

static void
expect_error(const char *in, size_t len, const struct resp_limits *lim,
             enum parse_status status, const char *text)
{
    struct outcome o;

    parse_once(&o, in, len, lim);
    ck_assert_int_eq(o.status, status);
    ck_assert_str_eq(o.error, text);
    ck_assert_uint_eq(o.used, len);
}

/* ---- well-formed requests ---- */

START_TEST(test_multibulk_yields_args_and_consumes_exactly_the_request)
{
    struct outcome o;

    parse_once(&o, S("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\nEXTRA"), &lim_redis);
    ck_assert_int_eq(o.status, PARSE_OK);
    ck_assert_uint_eq(o.used, sizeof("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n") - 1);
    ck_assert_uint_eq(o.argc, 3);
    ck_assert(!o.is_inline);
    ARG(&o, 0, "SET");
    ARG(&o, 1, "k");
    ARG(&o, 2, "value");
}
END_TEST

START_TEST(test_multibulk_empty_bulk_is_an_empty_arg)
{
    struct outcome o;

    parse_once(&o, S("*2\r\n$4\r\nECHO\r\n$0\r\n\r\n"), &lim_redis);
    ck_assert_int_eq(o.status, PARSE_OK);
    ck_assert_uint_eq(o.argc, 2);
    ARG(&o, 1, "");
}
END_TEST

START_TEST(test_binary_bulk_keeps_crlf_and_nul_bytes)
{
    static const char in[] = "*2\r\n$3\r\nSET\r\n$6\r\na\r\n\0\r\n\r\n";
    struct outcome o;

    parse_once(&o, in, sizeof(in) - 1, &lim_redis);
    ck_assert_int_eq(o.status, PARSE_OK);
    ck_assert_uint_eq(o.used, sizeof(in) - 1);
    assert_arg(&o, 1, "a\r\n\0\r\n", 6);
}
END_TEST

START_TEST(test_bytes_after_bulk_data_are_skipped_unchecked_like_redis)
{
    struct outcome o;

    /* Redis answers +PONG twice to this. */
    parse_once(&o, S("*1\r\n$4\r\nPINGXX*1\r\n$4\r\nPING\r\n"), &lim_redis);
    ck_assert_int_eq(o.status, PARSE_OK);
    ck_assert_uint_eq(o.used, 14);
    ARG(&o, 0, "PING");
    /* ... and the byte after a header's '\r' is not checked either. */
    parse_once(&o, S("*1\rX$4\rXPING\r\n"), &lim_redis);
    ck_assert_int_eq(o.status, PARSE_OK);
    ARG(&o, 0, "PING");
}
END_TEST

START_TEST(test_inline_splits_on_blanks_with_crlf_or_lf)
{
    struct outcome o;

    parse_once(&o, S("SET  k\tv\r\n"), &lim_redis);
    ck_assert_int_eq(o.status, PARSE_OK);
    ck_assert(o.is_inline);
    ck_assert_uint_eq(o.used, 10);
    ck_assert_uint_eq(o.argc, 3);
    ARG(&o, 0, "SET");
    ARG(&o, 1, "k");
    ARG(&o, 2, "v");
    parse_once(&o, S("PING\n"), &lim_redis);
    ck_assert_int_eq(o.status, PARSE_OK);
    ck_assert_uint_eq(o.used, 5);
    ck_assert_uint_eq(o.argc, 1);
    ARG(&o, 0, "PING");
}
END_TEST

START_TEST(test_inline_blank_rules_match_redis)
{
    struct outcome o;

    /* A lone CR inside the line separates words: Redis sees 3 args. */
    parse_once(&o, S("ECHO a\rb\r\n"), &lim_redis);
    ck_assert_uint_eq(o.argc, 3);
    ARG(&o, 2, "b");
    /* \v is skipped before a word but does not end one. */
    parse_once(&o, S("ECHO \va\r\n"), &lim_redis);
    ck_assert_uint_eq(o.argc, 2);
    ARG(&o, 1, "a");
    parse_once(&o, S("ECHO a\vb\r\n"), &lim_redis);
    ck_assert_uint_eq(o.argc, 2);
    ARG(&o, 1, "a\vb");
    /* A NUL is an ordinary byte (Redis stalls on it). */
    parse_once(&o, "ECHO a\0b\r\n", 10, &lim_redis);
    ck_assert_int_eq(o.status, PARSE_OK);
    assert_arg(&o, 1, "a\0b", 3);
}
END_TEST

START_TEST(test_inline_double_quotes_decode_escapes_like_redis)
{
    struct outcome o;

    parse_once(&o, S("ECHO \"\\x41\\x4g\\n\"\r\n"), &lim_redis);
    ck_assert_int_eq(o.status, PARSE_OK);
    ARG(&o, 1, "Ax4g\n");
    parse_once(&o, S("ECHO \"\\a\\b\\t\\z\\\\\"\r\n"), &lim_redis);
    ARG(&o, 1, "\a\b\tz\\");
    parse_once(&o, S("ECHO \"\\x4\"\r\n"), &lim_redis);      /* one hex digit */
    ARG(&o, 1, "x4");
    parse_once(&o, S("ECHO \"\\X41\"\r\n"), &lim_redis);     /* only lower-case x */
    ARG(&o, 1, "X41");
    parse_once(&o, S("ECHO \"\\xZZ\"\r\n"), &lim_redis);
    ARG(&o, 1, "xZZ");
    parse_once(&o, S("ECHO \"\\xFf\"\r\n"), &lim_redis);
    ARG(&o, 1, "\xff");
    parse_once(&o, S("ECHO \"\\r\\n\"\r\n"), &lim_redis);
    ARG(&o, 1, "\r\n");
    parse_once(&o, S("ECHO \"a b\"  c\r\n"), &lim_redis);
    ck_assert_uint_eq(o.argc, 3);
    ARG(&o, 1, "a b");
    ARG(&o, 2, "c");
}
END_TEST

START_TEST(test_inline_single_quotes_only_unescape_quote)
{
    struct outcome o;

    parse_once(&o, S("ECHO 'it\\'s'\r\n"), &lim_redis);
    ARG(&o, 1, "it's");
    parse_once(&o, S("ECHO 'a\\\\b'\r\n"), &lim_redis);
    ARG(&o, 1, "a\\\\b");
    parse_once(&o, S("ECHO 'a\\nb'\r\n"), &lim_redis);
    ARG(&o, 1, "a\\nb");
    parse_once(&o, S("ECHO 'a \"b'\r\n"), &lim_redis);
    ARG(&o, 1, "a \"b");
}
END_TEST

START_TEST(test_inline_quote_inside_word_and_empty_quotes)
{
    struct outcome o;

    parse_once(&o, S("ECHO a\"b c\"\r\n"), &lim_redis);    /* Redis: "ab c" */
    ck_assert_uint_eq(o.argc, 2);
    ARG(&o, 1, "ab c");
    parse_once(&o, S("ECHO \"\" ''\r\n"), &lim_redis);
    ck_assert_uint_eq(o.argc, 3);
    ARG(&o, 1, "");
    ARG(&o, 2, "");
    parse_once(&o, S("ECHO \"a\"\tb\r\n"), &lim_redis);    /* blank after quote */
    ck_assert_uint_eq(o.argc, 3);
    parse_once(&o, S("ECHO \"a\"\v\r\n"), &lim_redis);
    ck_assert_uint_eq(o.argc, 2);
    ARG(&o, 1, "a");
}
END_TEST

START_TEST(test_empty_requests_are_ok_with_zero_args)
{
    static const char *const cases[] = { "*0\r\n", "*-1\r\n", "*-5\r\n", "\r\n", "\n", "   \r\n" };
    struct outcome o;
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        parse_once(&o, cases[i], strlen(cases[i]), &lim_redis);
        ck_assert_int_eq(o.status, PARSE_OK);
        ck_assert_uint_eq(o.argc, 0);
        ck_assert_uint_eq(o.used, strlen(cases[i]));
    }
}
END_TEST

START_TEST(test_pipelined_requests_parse_one_after_another)
{
    static const char in[] =
        "*1\r\n$4\r\nPING\r\n"
        "GET k\r\n"
        "*0\r\n"
        "\r\n"
        "*2\r\n$3\r\nGET\r\n$2\r\nk2\r\n"
        "*1\r\n$4\r\nPI";
    struct resp_arg argv[MAXA];
    struct resp_req r = { .argv = argv, .argv_cap = MAXA };
    struct resp_state st;
    char buf[sizeof(in)];
    size_t off = 0, used;
    uint32_t argcs[5];
    int k = 0;

    memcpy(buf, in, sizeof(in));
    resp_state_init(&st);
    while (resp_parse(&r, &st, buf + off, sizeof(in) - 1 - off, &used, &lim_redis) == PARSE_OK) {
        ck_assert_int_lt(k, 5);
        argcs[k++] = r.argc;
        off += used;
        if (k == 2) {
            ck_assert(r.is_inline);
            ck_assert(resp_name_eq(argv[1].ptr, argv[1].len, "k"));
        }
        if (k == 5) {
            ck_assert(resp_name_eq(argv[1].ptr, argv[1].len, "k2"));
        }
    }
    ck_assert_int_eq(k, 5);
    ck_assert_uint_eq(argcs[0], 1);
    ck_assert_uint_eq(argcs[1], 2);
    ck_assert_uint_eq(argcs[2], 0);
    ck_assert_uint_eq(argcs[3], 0);
    ck_assert_uint_eq(argcs[4], 2);
    ck_assert_uint_eq(sizeof(in) - 1 - off, 10);   /* the incomplete tail */
}
END_TEST

/* ---- malformed input: Redis's texts ---- */

START_TEST(test_bad_multibulk_count_is_invalid_multibulk_length)
{
    static const char *const cases[] = {
        "*x\r\n", "*03\r\n", "*+1\r\n", "*-0\r\n", "*\r\n", "*1 \r\n",
        "*2147483648\r\n", "*111111111111111111111111111111\r\n", "*1\n\r\n",
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        expect_error(cases[i], strlen(cases[i]), &lim_redis, PARSE_INVALID,
                     "ERR Protocol error: invalid multibulk length");
    }
}
END_TEST

START_TEST(test_bad_bulk_length_is_invalid_bulk_length)
{
    static const char *const cases[] = {
        "*1\r\n$x\r\n", "*1\r\n$-1\r\n", "*1\r\n$03\r\nfoo\r\n", "*1\r\n$+4\r\nPING\r\n",
        "*1\r\n$-0\r\n", "*1\r\n$\r\n", "*1\r\n$111111111111111111111111111111\r\n",
        "*2\r\n$3\r\nGET\r\n$1 \r\nk\r\n",
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        expect_error(cases[i], strlen(cases[i]), &lim_redis, PARSE_INVALID,
                     "ERR Protocol error: invalid bulk length");
    }
}
END_TEST

START_TEST(test_missing_dollar_names_the_byte_found)
{
    expect_error(S("*1\r\nfoo\r\n"), &lim_redis, PARSE_INVALID,
                 "ERR Protocol error: expected '$', got 'f'");
    /* CR and LF print as a blank (Redis: "*1\r\n\r\n" -> got ' '). */
    expect_error(S("*1\r\n\r\n"), &lim_redis, PARSE_INVALID,
                 "ERR Protocol error: expected '$', got ' '");
    expect_error(S("*1\r\n\n\r\n"), &lim_redis, PARSE_INVALID,
                 "ERR Protocol error: expected '$', got ' '");
    /* So does NUL (our choice: Redis stalls on it). */
    expect_error("*1\r\n\0x\r\n", 8, &lim_redis, PARSE_INVALID,
                 "ERR Protocol error: expected '$', got ' '");
    expect_error(S("*2\r\n$3\r\nGET\r\n:1\r\n"), &lim_redis, PARSE_INVALID,
                 "ERR Protocol error: expected '$', got ':'");
}
END_TEST

START_TEST(test_unbalanced_quotes_are_refused)
{
    static const char *const cases[] = {
        "PING \"a\r\n", "ECHO \"a\"b\r\n", "ECHO 'a'b\r\n", "ECHO \"a\\\"\r\n",
        "ECHO 'a\r\n", "ECHO \"a\\\r\n",
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        expect_error(cases[i], strlen(cases[i]), &lim_redis, PARSE_INVALID,
                     "ERR Protocol error: unbalanced quotes in request");
    }
}
END_TEST

START_TEST(test_error_reply_bytes_match_redis)
{
    struct outcome o;
    char out[128];
    size_t k;

    parse_once(&o, S("*1\r\nfoo\r\n"), &lim_redis);
    k = resp_put_error(out, sizeof(out), o.error, strlen(o.error));
    ck_assert_uint_eq(k, sizeof("-ERR Protocol error: expected '$', got 'f'\r\n") - 1);
    ck_assert(memcmp(out, "-ERR Protocol error: expected '$', got 'f'\r\n", k) == 0);
}
END_TEST

/* ---- limits ---- */

START_TEST(test_header_without_cr_beyond_limit_is_too_big_count_string)
{
    char *in = malloc(70010);
    size_t n;

    ck_assert_ptr_nonnull(in);
    /* Redis: 70000 digits with no CR. */
    in[0] = '*';
    memset(in + 1, '1', 70000);
    expect_error(in, 70001, &lim_redis, PARSE_TOO_LONG,
                 "ERR Protocol error: too big mbulk count string");
    memcpy(in, "*1\r\n$", 5);
    memset(in + 5, '1', 70000);
    expect_error(in, 70005, &lim_redis, PARSE_TOO_LONG,
                 "ERR Protocol error: too big bulk count string");
    /* The limit applies to the line even when its CR is already buffered. */
    n = 1 + RESP_INLINE_MAX + 1;
    in[0] = '*';
    memset(in + 1, '1', n - 1);
    memcpy(in + n, "\r\n", 2);
    expect_error(in, n + 2, &lim_redis, PARSE_TOO_LONG,
                 "ERR Protocol error: too big mbulk count string");
    free(in);
}
END_TEST

START_TEST(test_header_line_at_limit_is_judged_on_its_number)
{
    struct outcome o;

    /* 32 bytes before the CR: within lim_small.max_inline. */
    parse_once(&o, S("*0000000000000000000000000000000\r\n"), &lim_small);
    ck_assert_int_eq(o.status, PARSE_INVALID);
    ck_assert_str_eq(o.error, "ERR Protocol error: invalid multibulk length");
    /* 33 bytes: over it. */
    parse_once(&o, S("*00000000000000000000000000000000\r\n"), &lim_small);
    ck_assert_int_eq(o.status, PARSE_TOO_LONG);
    ck_assert_str_eq(o.error, "ERR Protocol error: too big mbulk count string");
    parse_once(&o, S("*00000000000000000000000000000000"), &lim_small);
    ck_assert_int_eq(o.status, PARSE_TOO_LONG);
    /* 32 bytes and no CR yet: still waiting. */
    parse_once(&o, S("*0000000000000000000000000000000"), &lim_small);
    ck_assert_int_eq(o.status, PARSE_AGAIN);
}
END_TEST

START_TEST(test_inline_line_over_limit_is_too_big_inline_request)
{
    char *in = malloc(100010);
    struct outcome o;

    ck_assert_ptr_nonnull(in);
    /* Redis: 70000 bytes without a newline. */
    memset(in, 'A', 70000);
    expect_error(in, 70000, &lim_redis, PARSE_TOO_LONG,
                 "ERR Protocol error: too big inline request");
    /* Redis also refuses a 100 KB line whose newline is present. */
    memcpy(in, "ECHO ", 5);
    memset(in + 5, 'a', 100000);
    memcpy(in + 100005, "\r\n", 2);
    expect_error(in, 100007, &lim_redis, PARSE_TOO_LONG,
                 "ERR Protocol error: too big inline request");
    /* Exactly max_inline bytes before the LF is accepted; one more is not. */
    parse_once(&o, S("ECHO aaaaaaaaaaaaaaaaaaaaaaaaaaa\n"), &lim_small);
    ck_assert_int_eq(o.status, PARSE_OK);
    ck_assert_uint_eq(o.alen[1], 27);
    parse_once(&o, S("ECHO aaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"), &lim_small);
    ck_assert_int_eq(o.status, PARSE_TOO_LONG);
    parse_once(&o, S("ECHO aaaaaaaaaaaaaaaaaaaaaaaaaaa"), &lim_small);
    ck_assert_int_eq(o.status, PARSE_AGAIN);
    free(in);
}
END_TEST

START_TEST(test_bulk_over_max_is_refused_from_header_alone)
{
    struct outcome o;

    /* No data bytes are buffered: the header is enough to refuse. */
    expect_error(S("*1\r\n$65\r\n"), &lim_small, PARSE_TOO_LONG,
                 "ERR Protocol error: invalid bulk length");
    /* Redis's own ceiling, 512 MiB. */
    expect_error(S("*1\r\n$536870913\r\n"), &lim_redis, PARSE_TOO_LONG,
                 "ERR Protocol error: invalid bulk length");
    parse_once(&o, S("*1\r\n$536870912\r\n"), &lim_redis);
    ck_assert_int_eq(o.status, PARSE_AGAIN);
    parse_once(&o, S("*1\r\n$64\r\n"), &lim_small);
    ck_assert_int_eq(o.status, PARSE_AGAIN);
}
END_TEST

START_TEST(test_count_over_limit_or_capacity_is_refused_before_args)
{
    struct resp_arg argv[4];
    struct resp_req r = { .argv = argv, .argv_cap = 4 };
    struct resp_state st;
    char buf[64];
    size_t used;

    expect_error(S("*9\r\n"), &lim_small, PARSE_TOO_LONG,
                 "ERR Protocol error: invalid multibulk length");
    expect_error(S("*2147483647\r\n"), &lim_redis, PARSE_TOO_LONG,
                 "ERR Protocol error: invalid multibulk length");
    /* A caller array smaller than the limit is respected too. */
    resp_state_init(&st);
    memcpy(buf, "*5\r\n", 4);
    ck_assert_int_eq(resp_parse(&r, &st, buf, 4, &used, &lim_small), PARSE_TOO_LONG);
    ck_assert_str_eq(r.error, "ERR Protocol error: invalid multibulk length");
    memcpy(buf, "*4\r\n", 4);
    ck_assert_int_eq(resp_parse(&r, &st, buf, 4, &used, &lim_small), PARSE_AGAIN);
    /* Inline words beyond the array. */
    resp_state_init(&st);
    memcpy(buf, "a b c d e\r\n", 11);
    ck_assert_int_eq(resp_parse(&r, &st, buf, 11, &used, &lim_small), PARSE_TOO_LONG);
    ck_assert_str_eq(r.error, "ERR Protocol error: too big inline request");
    resp_state_init(&st);
    memcpy(buf, "a b c d\r\n", 9);
    ck_assert_int_eq(resp_parse(&r, &st, buf, 9, &used, &lim_small), PARSE_OK);
    ck_assert_uint_eq(r.argc, 4);
}
END_TEST

/* ---- split input and resumption ---- */

struct split_case {
    const char *in;
    size_t len;
};

#define SC(lit) { (lit), sizeof(lit) - 1 }

static const struct split_case split_cases[] = {
    SC("*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$10\r\nab\r\n\0\r\nxyz\r\n"),
    SC("*2\r\n$0\r\n\r\n$1\r\n*\r\n"),
    SC("*1\r\n$4\r\nPINGXX"),
    SC("SET k \"a\\x41 b\" 'c\\'d'\r\n"),
    SC("PING\n"),
    SC("\r\n"),
    SC("*0\r\n"),
    SC("*-1\r\n"),
    SC("*x\r\n"),
    SC("*1\r\nfoo\r\n"),
    SC("*2\r\n$3\r\nGET\r\n$-3\r\n"),
    SC("ECHO \"a\r\n"),
    SC("*1\r\n$65\r\n"),
    SC("*9\r\n"),
    SC("ECHO aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"),
    SC("*000000000000000000000000000000000000000000\r\n"),
    SC("*2\r\n$1\r\na\r\n$0000000000000000000000000000000000000000\r\n"),
    SC("*2\r\n$1\r\na\r\nb\r\n"),
    SC("*2\r\n$1\r\na\r\n$1\r\nb\r"),
};

/*
 * Compare a result reached from split input with the one-call result. An
 * error consumes whatever it was given, so only its used differs.
 */
static void
assert_same_result(const struct outcome *whole, struct outcome *part, size_t given)
{
    if (whole->status != PARSE_OK && whole->status != PARSE_AGAIN) {
        ck_assert_uint_eq(part->used, given);
        part->used = whole->used;
    }
    assert_same(whole, part);
}

START_TEST(test_every_byte_split_gives_again_then_the_same_result)
{
    const char *in = split_cases[_i].in;
    size_t len = split_cases[_i].len;
    struct outcome whole, piecewise;
    size_t k;

    parse_once(&whole, in, len, &lim_small);
    k = parse_bytewise(&piecewise, in, len, &lim_small);
    if (whole.status == PARSE_AGAIN) {
        ck_assert_int_eq(piecewise.status, PARSE_AGAIN);
        return;
    }
    if (whole.status == PARSE_OK) {
        /* A request is reported only once its last byte is there. */
        ck_assert_uint_eq(k, whole.used);
    }
    assert_same_result(&whole, &piecewise, k);
}
END_TEST

START_TEST(test_two_part_split_at_every_offset_resumes_to_the_same_result)
{
    const char *in = split_cases[_i].in;
    size_t len = split_cases[_i].len;
    struct outcome whole, o;
    struct resp_arg argv[MAXA];
    size_t cut;

    parse_once(&whole, in, len, &lim_small);
    for (cut = 0; cut < len; cut++) {
        struct resp_req r = { .argv = argv, .argv_cap = MAXA };
        struct resp_state st;
        char *a = malloc(cut ? cut : 1), *b = malloc(len);
        size_t used, given = cut;
        enum parse_status s;

        ck_assert_ptr_nonnull(a);
        ck_assert_ptr_nonnull(b);
        memcpy(a, in, cut);
        memcpy(b, in, len);
        resp_state_init(&st);
        s = resp_parse(&r, &st, a, cut, &used, &lim_small);
        record(&o, s, used, &r);
        if (s == PARSE_AGAIN) {
            /* The first buffer is gone; only offsets may survive in st. */
            free(a);
            a = NULL;
            s = resp_parse(&r, &st, b, len, &used, &lim_small);
            record(&o, s, used, &r);
            given = len;
        } else if (s == PARSE_OK) {
            ck_assert_uint_ge(cut, whole.used);
        }
        free(a);
        free(b);
        assert_same_result(&whole, &o, given);
    }
}
END_TEST

START_TEST(test_bulk_resume_does_not_reread_consumed_headers)
{
    struct resp_arg argv[MAXA];
    struct resp_req r = { .argv = argv, .argv_cap = MAXA };
    struct resp_state st;
    char buf[] = "*1\r\n$5\r\nhello\r\n";
    size_t used;

    resp_state_init(&st);
    ck_assert_int_eq(resp_parse(&r, &st, buf, 11, &used, &lim_small), PARSE_AGAIN);
    /* Headers already parsed are not looked at again for a single arg. */
    memset(buf, '#', 8);
    ck_assert_int_eq(resp_parse(&r, &st, buf, 15, &used, &lim_small), PARSE_OK);
    ck_assert_uint_eq(used, 15);
    ck_assert_uint_eq(r.argc, 1);
    ck_assert_uint_eq(argv[0].len, 5);
    ck_assert(memcmp(argv[0].ptr, "hello", 5) == 0);
    ck_assert_ptr_eq(argv[0].ptr, buf + 8);
}
END_TEST

START_TEST(test_inline_search_resumes_where_it_stopped)
{
    struct resp_arg argv[MAXA];
    struct resp_req r = { .argv = argv, .argv_cap = MAXA };
    struct resp_state st;
    char buf[] = "PING x\n";
    size_t used;

    resp_state_init(&st);
    ck_assert_int_eq(resp_parse(&r, &st, buf, 4, &used, &lim_small), PARSE_AGAIN);
    /* A LF planted in bytes already searched is not found: no rescan. */
    buf[2] = '\n';
    ck_assert_int_eq(resp_parse(&r, &st, buf, 7, &used, &lim_small), PARSE_OK);
    ck_assert_uint_eq(used, 7);
    ck_assert_uint_eq(r.argc, 3);
}
END_TEST

START_TEST(test_args_finished_in_earlier_calls_point_into_the_new_buffer)
{
    static const char in[] = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nval\r\n";
    struct resp_arg argv[MAXA];
    struct resp_req r = { .argv = argv, .argv_cap = MAXA };
    struct resp_state st;
    char first[sizeof(in)], second[sizeof(in)];
    size_t used;

    resp_state_init(&st);
    memcpy(first, in, sizeof(in));
    ck_assert_int_eq(resp_parse(&r, &st, first, 24, &used, &lim_small), PARSE_AGAIN);
    memset(first, 0, sizeof(first));
    memcpy(second, in, sizeof(in));
    ck_assert_int_eq(resp_parse(&r, &st, second, sizeof(in) - 1, &used, &lim_small), PARSE_OK);
    ck_assert_ptr_eq(argv[0].ptr, second + 8);
    ck_assert_ptr_eq(argv[1].ptr, second + 17);
    ck_assert_ptr_eq(argv[2].ptr, second + 24);
    ck_assert_uint_eq(argv[2].len, 3);
}
END_TEST

START_TEST(test_large_pipelined_request_in_small_chunks_scans_linearly)
{
    /* 2000 args of 100 bytes fed 7 bytes at a time into a growing buffer. */
    enum { NARGS = 2000, ALEN = 100 };
    static const struct resp_limits lim = { .max_bulk = 1024, .max_args = NARGS, .max_inline = 64 };
    size_t cap = 32 + NARGS * (ALEN + 12), n = 0, have, used = 0;
    char *in = malloc(cap);
    struct resp_arg *argv = malloc(NARGS * sizeof(*argv));
    struct resp_req r = { .argv = argv, .argv_cap = NARGS };
    struct resp_state st;
    enum parse_status s = PARSE_AGAIN;
    int i;

    ck_assert_ptr_nonnull(in);
    ck_assert_ptr_nonnull(argv);
    n += (size_t)sprintf(in + n, "*%d\r\n", NARGS);
    for (i = 0; i < NARGS; i++) {
        n += (size_t)sprintf(in + n, "$%d\r\n", ALEN);
        memset(in + n, 'a' + i % 26, ALEN);
        n += ALEN;
        memcpy(in + n, "\r\n", 2);
        n += 2;
    }
    resp_state_init(&st);
    for (have = 0; s == PARSE_AGAIN; have += 7) {
        size_t h = have < n ? have : n;

        s = resp_parse(&r, &st, in, h, &used, &lim);
        if (h == n) {
            break;
        }
    }
    ck_assert_int_eq(s, PARSE_OK);
    ck_assert_uint_eq(used, n);
    ck_assert_uint_eq(r.argc, NARGS);
    for (i = 0; i < NARGS; i++) {
        ck_assert_uint_eq(argv[i].len, ALEN);
        ck_assert_int_eq(argv[i].ptr[0], 'a' + i % 26);
        ck_assert_int_eq(argv[i].ptr[ALEN - 1], 'a' + i % 26);
    }
    free(argv);
    free(in);
}
END_TEST

START_TEST(test_state_resets_after_each_result)
{
    struct resp_arg argv[MAXA];
    struct resp_req r = { .argv = argv, .argv_cap = MAXA };
    struct resp_state st;
    char bad[] = "*x\r\n";
    char good[] = "PING\r\n";
    size_t used;

    resp_state_init(&st);
    ck_assert_int_eq(resp_parse(&r, &st, bad, 4, &used, &lim_small), PARSE_INVALID);
    ck_assert_uint_eq(used, 4);
    ck_assert_int_eq(resp_parse(&r, &st, good, 6, &used, &lim_small), PARSE_OK);
    ck_assert_uint_eq(r.argc, 1);
    ck_assert_ptr_null(r.error);
    ck_assert_int_eq(resp_parse(&r, &st, good, 0, &used, &lim_small), PARSE_AGAIN);
}
END_TEST

/* ---- command names ---- */

START_TEST(test_name_eq_ignores_ascii_case_and_checks_length)
{
    ck_assert(resp_name_eq("GET", 3, "get"));
    ck_assert(resp_name_eq("gEt", 3, "GeT"));
    ck_assert(!resp_name_eq("GETX", 4, "get"));
    ck_assert(!resp_name_eq("GE", 2, "get"));
    ck_assert(!resp_name_eq("GE\0", 3, "ge"));
    ck_assert(!resp_name_eq("G@T", 3, "g`t"));   /* only letters fold */
    ck_assert(resp_name_eq("", 0, ""));
}
END_TEST

/* ---- composer ---- */

#define PUT_EQ(expr, lit)                                                  \
    do {                                                                   \
        char out_[64];                                                     \
        size_t k_ = (expr);                                                \
        ck_assert_uint_eq(k_, sizeof(lit) - 1);                            \
        ck_assert_msg(memcmp(out_, lit, k_) == 0, "got %.*s", (int)k_, out_); \
    } while (0)

START_TEST(test_composer_writes_resp2_bytes_exactly)
{
    PUT_EQ(resp_put_simple(out_, sizeof(out_), "OK", 2), "+OK\r\n");
    PUT_EQ(resp_put_simple(out_, sizeof(out_), "a\r\nb", 4), "+a  b\r\n");
    PUT_EQ(resp_put_error(out_, sizeof(out_), "ERR x", 5), "-ERR x\r\n");
    PUT_EQ(resp_put_int(out_, sizeof(out_), 0), ":0\r\n");
    PUT_EQ(resp_put_int(out_, sizeof(out_), -42), ":-42\r\n");
    PUT_EQ(resp_put_int(out_, sizeof(out_), INT64_MAX), ":9223372036854775807\r\n");
    PUT_EQ(resp_put_int(out_, sizeof(out_), INT64_MIN), ":-9223372036854775808\r\n");
    PUT_EQ(resp_put_bulk_hdr(out_, sizeof(out_), 0), "$0\r\n");
    PUT_EQ(resp_put_bulk_hdr(out_, sizeof(out_), 1234567), "$1234567\r\n");
    PUT_EQ(resp_put_bulk(out_, sizeof(out_), "a\r\n\0", 4), "$4\r\na\r\n\0\r\n");
    PUT_EQ(resp_put_null_bulk(out_, sizeof(out_)), "$-1\r\n");
    PUT_EQ(resp_put_array_hdr(out_, sizeof(out_), 3), "*3\r\n");
    PUT_EQ(resp_put_null_array(out_, sizeof(out_)), "*-1\r\n");
}
END_TEST

START_TEST(test_composer_writes_resp3_bytes_exactly)
{
    PUT_EQ(resp_put_map_hdr(out_, sizeof(out_), 2), "%2\r\n");
    PUT_EQ(resp_put_null(out_, sizeof(out_)), "_\r\n");
    PUT_EQ(resp_put_bool(out_, sizeof(out_), true), "#t\r\n");
    PUT_EQ(resp_put_bool(out_, sizeof(out_), false), "#f\r\n");
    PUT_EQ(resp_put_double(out_, sizeof(out_), 1.5), ",1.5\r\n");
    PUT_EQ(resp_put_double(out_, sizeof(out_), 3.0), ",3\r\n");
    PUT_EQ(resp_put_double(out_, sizeof(out_), 0.1), ",0.10000000000000001\r\n");
    PUT_EQ(resp_put_double(out_, sizeof(out_), -1e300), ",-1.0000000000000001e+300\r\n");
    PUT_EQ(resp_put_double(out_, sizeof(out_), -0.0), ",-0\r\n");
    PUT_EQ(resp_put_double(out_, sizeof(out_), INFINITY), ",inf\r\n");
    PUT_EQ(resp_put_double(out_, sizeof(out_), -INFINITY), ",-inf\r\n");
    PUT_EQ(resp_put_double(out_, sizeof(out_), NAN), ",nan\r\n");
}
END_TEST

/* Each writer fits in exactly its size and writes nothing in one byte less. */
START_TEST(test_composer_writes_all_or_nothing_at_capacity)
{
    char out[64];
    size_t sizes[13], k, i;

    sizes[0] = resp_put_simple(out, sizeof(out), "OK", 2);
    sizes[1] = resp_put_error(out, sizeof(out), "ERR", 3);
    sizes[2] = resp_put_int(out, sizeof(out), INT64_MIN);
    sizes[3] = resp_put_bulk_hdr(out, sizeof(out), 99);
    sizes[4] = resp_put_bulk(out, sizeof(out), "abc", 3);
    sizes[5] = resp_put_null_bulk(out, sizeof(out));
    sizes[6] = resp_put_array_hdr(out, sizeof(out), 7);
    sizes[7] = resp_put_null_array(out, sizeof(out));
    sizes[8] = resp_put_map_hdr(out, sizeof(out), 7);
    sizes[9] = resp_put_null(out, sizeof(out));
    sizes[10] = resp_put_double(out, sizeof(out), -1.2345678901234567e-300);
    sizes[11] = resp_put_bool(out, sizeof(out), true);
    sizes[12] = resp_put_double(out, sizeof(out), -INFINITY);
    for (i = 0; i < 13; i++) {
        size_t cap = sizes[i];

        ck_assert_uint_gt(cap, 0);
        ck_assert_uint_le(cap, RESP_HDR_MAX + (i == 4 ? 5 : 0));
        for (k = 0; k < 2; k++) {
            size_t c = cap - k, got = 0;

            memset(out, '~', sizeof(out));
            switch (i) {
            case 0: got = resp_put_simple(out, c, "OK", 2); break;
            case 1: got = resp_put_error(out, c, "ERR", 3); break;
            case 2: got = resp_put_int(out, c, INT64_MIN); break;
            case 3: got = resp_put_bulk_hdr(out, c, 99); break;
            case 4: got = resp_put_bulk(out, c, "abc", 3); break;
            case 5: got = resp_put_null_bulk(out, c); break;
            case 6: got = resp_put_array_hdr(out, c, 7); break;
            case 7: got = resp_put_null_array(out, c); break;
            case 8: got = resp_put_map_hdr(out, c, 7); break;
            case 9: got = resp_put_null(out, c); break;
            case 10: got = resp_put_double(out, c, -1.2345678901234567e-300); break;
            case 11: got = resp_put_bool(out, c, true); break;
            case 12: got = resp_put_double(out, c, -INFINITY); break;
            }
            if (k == 0) {
                ck_assert_uint_eq(got, cap);
            } else {
                ck_assert_uint_eq(got, 0);
                for (size_t j = 0; j < sizeof(out); j++) {
                    ck_assert_int_eq(out[j], '~');
                }
            }
        }
    }
}
END_TEST

START_TEST(test_composed_request_parses_back)
{
    char buf[128];
    size_t k = 0, used;
    struct resp_arg argv[MAXA];
    struct resp_req r = { .argv = argv, .argv_cap = MAXA };
    struct resp_state st;

    k += resp_put_array_hdr(buf + k, sizeof(buf) - k, 2);
    k += resp_put_bulk(buf + k, sizeof(buf) - k, "GET", 3);
    k += resp_put_bulk(buf + k, sizeof(buf) - k, "k\r\n", 3);
    resp_state_init(&st);
    ck_assert_int_eq(resp_parse(&r, &st, buf, k, &used, &lim_small), PARSE_OK);
    ck_assert_uint_eq(used, k);
    ck_assert(resp_name_eq(argv[0].ptr, argv[0].len, "get"));
    ck_assert(memcmp(argv[1].ptr, "k\r\n", 3) == 0);
}
END_TEST


/* ---- large arguments (PARSE_STREAM) ---- */

#define SET_HEAD "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\n"

START_TEST(test_stream_reports_large_bulk_from_its_header_alone)
{
    struct outcome o;

    /* No data byte has arrived: the header is enough. */
    parse_once(&o, S(SET_HEAD), &lim_stream);
    ck_assert_int_eq(o.status, PARSE_STREAM);
    ck_assert_uint_eq(o.used, sizeof(SET_HEAD) - 1);
    ck_assert_uint_eq(o.argc, 2);
    ck_assert_uint_eq(o.nargs, 3);
    ck_assert_uint_eq(o.stream_len, 10);
    ARG(&o, 0, "SET");
    ARG(&o, 1, "k");
    /* The same with the data there too: still handed over, data not consumed. */
    parse_once(&o, S(SET_HEAD "0123456789\r\n"), &lim_stream);
    ck_assert_int_eq(o.status, PARSE_STREAM);
    ck_assert_uint_eq(o.used, sizeof(SET_HEAD) - 1);
}
END_TEST

START_TEST(test_stream_of_last_argument_resets_state_for_next_request)
{
    static const char in[] = SET_HEAD;
    static const char next[] = "*1\r\n$4\r\nPING\r\n";
    struct resp_arg argv[MAXA];
    struct resp_req r = { .argv = argv, .argv_cap = MAXA };
    struct resp_state st;
    char buf[64];
    size_t used;

    resp_state_init(&st);
    memcpy(buf, in, sizeof(in) - 1);
    ck_assert_int_eq(resp_parse(&r, &st, buf, sizeof(in) - 1, &used, &lim_stream),
                     PARSE_STREAM);
    ck_assert_uint_eq(r.argc + 1, r.nargs);
    /* The caller skipped the 12 bytes; the next request starts afresh. */
    memcpy(buf, next, sizeof(next) - 1);
    ck_assert_int_eq(resp_parse(&r, &st, buf, sizeof(next) - 1, &used, &lim_stream),
                     PARSE_OK);
    ck_assert_uint_eq(used, sizeof(next) - 1);
    ck_assert_uint_eq(r.argc, 1);
    ck_assert_uint_eq(r.argbase, 0);
    ck_assert(memcmp(argv[0].ptr, "PING", 4) == 0);
}
END_TEST

START_TEST(test_stream_then_arguments_after_it_parse_with_argbase)
{
    static const char head[] = "*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\n";
    static const char tail[] = "$2\r\nEX\r\n$2\r\n10\r\n*1\r\n$4\r\nPING\r\n";
    struct outcome whole, split;
    struct resp_arg argv[MAXA], targv[2];
    struct resp_req r = { .argv = argv, .argv_cap = MAXA };
    struct resp_state st;
    size_t used;
    char *buf;

    resp_state_init(&st);
    buf = malloc(sizeof(head) - 1);
    ck_assert_ptr_nonnull(buf);
    memcpy(buf, head, sizeof(head) - 1);
    ck_assert_int_eq(resp_parse(&r, &st, buf, sizeof(head) - 1, &used, &lim_stream),
                     PARSE_STREAM);
    ck_assert_uint_eq(used, sizeof(head) - 1);
    ck_assert_uint_eq(r.argc, 2);
    ck_assert_uint_eq(r.nargs, 5);
    free(buf);

    /* After the 10 bytes and their CRLF: only the rest, into a 2-slot array. */
    {
        struct resp_state saved = st;
        struct resp_req t = { .argv = targv, .argv_cap = 2 };

        record(&whole, PARSE_AGAIN, 0, &t);
        buf = malloc(sizeof(tail) - 1);
        ck_assert_ptr_nonnull(buf);
        memcpy(buf, tail, sizeof(tail) - 1);
        ck_assert_int_eq(resp_parse(&t, &st, buf, sizeof(tail) - 1, &used, &lim_stream),
                         PARSE_OK);
        record(&whole, PARSE_OK, used, &t);
        free(buf);
        ck_assert_uint_eq(whole.used, sizeof(tail) - 1 - 14);
        ck_assert_uint_eq(whole.argbase, 3);
        ck_assert_uint_eq(whole.argc, 2);
        ARG(&whole, 0, "EX");
        ARG(&whole, 1, "10");

        /* The same rest arriving a byte at a time, each in a new buffer. */
        st = saved;
        for (size_t k = 0; k <= sizeof(tail) - 1; k++) {
            enum parse_status ps;

            buf = malloc(k ? k : 1);
            ck_assert_ptr_nonnull(buf);
            memcpy(buf, tail, k);
            ps = resp_parse(&t, &st, buf, k, &used, &lim_stream);
            record(&split, ps, used, &t);
            free(buf);
            if (ps != PARSE_AGAIN) {
                break;
            }
        }
        assert_same(&whole, &split);
    }
    /* And then the pipelined PING, an ordinary request again. */
    buf = malloc(14);
    ck_assert_ptr_nonnull(buf);
    memcpy(buf, tail + whole.used, 14);
    ck_assert_int_eq(resp_parse(&r, &st, buf, 14, &used, &lim_stream), PARSE_OK);
    ck_assert_uint_eq(r.argbase, 0);
    ck_assert_uint_eq(r.argc, 1);
    free(buf);
}
END_TEST

START_TEST(test_stream_after_args_split_across_calls_points_into_new_buffer)
{
    static const char in[] = "*4\r\n$3\r\nPUT\r\n$3\r\nkey\r\n$2\r\n42\r\n$20\r\n";
    struct outcome whole, split;
    size_t k;

    parse_once(&whole, S(in), &lim_stream);
    ck_assert_int_eq(whole.status, PARSE_STREAM);
    ck_assert_uint_eq(whole.argc, 3);
    ck_assert_uint_eq(whole.stream_len, 20);
    ARG(&whole, 0, "PUT");
    ARG(&whole, 1, "key");
    ARG(&whole, 2, "42");
    k = parse_bytewise(&split, S(in), &lim_stream);
    ck_assert_uint_eq(k, sizeof(in) - 1);
    assert_same(&whole, &split);
}
END_TEST

START_TEST(test_stream_declined_parses_the_request_buffered)
{
    static const char in[] = SET_HEAD "0123456789\r\n" SET_HEAD;
    struct resp_arg argv[MAXA];
    struct resp_req r = { .argv = argv, .argv_cap = MAXA };
    struct resp_state st;
    char buf[sizeof(in)];
    size_t used, first = sizeof(SET_HEAD) - 1 + 12;

    memcpy(buf, in, sizeof(in) - 1);
    resp_state_init(&st);
    ck_assert_int_eq(resp_parse(&r, &st, buf, sizeof(in) - 1, &used, &lim_stream),
                     PARSE_STREAM);
    resp_state_nostream(&st);
    /* Only part of the value there: wait for it, then take it whole. */
    ck_assert_int_eq(resp_parse(&r, &st, buf, first - 5, &used, &lim_stream), PARSE_AGAIN);
    ck_assert_int_eq(resp_parse(&r, &st, buf, sizeof(in) - 1, &used, &lim_stream), PARSE_OK);
    ck_assert_uint_eq(used, first);
    ck_assert_uint_eq(r.argc, 3);
    ck_assert_uint_eq(argv[2].len, 10);
    ck_assert(memcmp(argv[2].ptr, "0123456789", 10) == 0);
    /* Declining lasts one request: the next one streams again. */
    ck_assert_int_eq(resp_parse(&r, &st, buf + used, sizeof(in) - 1 - used, &used,
                                &lim_stream), PARSE_STREAM);
}
END_TEST

START_TEST(test_stream_only_at_or_over_its_minimum_and_within_max_bulk)
{
    struct outcome o;

    /* 7 bytes: buffered as ever. */
    parse_once(&o, S("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$7\r\n0123456\r\n"), &lim_stream);
    ck_assert_int_eq(o.status, PARSE_OK);
    ARG(&o, 2, "0123456");
    /* 8 bytes: streamed, whichever argument it is (the caller judges). */
    parse_once(&o, S("*2\r\n$8\r\nVERYLONG\r\n"), &lim_stream);
    ck_assert_int_eq(o.status, PARSE_STREAM);
    ck_assert_uint_eq(o.argc, 0);
    ck_assert_uint_eq(o.stream_len, 8);
    /* stream_min 0: never. */
    parse_once(&o, S(SET_HEAD "0123456789\r\n"), &lim_small);
    ck_assert_int_eq(o.status, PARSE_OK);
    /* Over max_bulk is refused, streamed or not. */
    expect_error(S("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$65\r\n"), &lim_stream, PARSE_TOO_LONG,
                 "ERR Protocol error: invalid bulk length");
}
END_TEST

START_TEST(test_stream_only_one_argument_per_request)
{
    static const char head[] = "*4\r\n$4\r\nMSET\r\n$10\r\n";
    static const char tail[] = "$1\r\nk\r\n$10\r\n0123456789\r\n";
    struct resp_arg argv[MAXA];
    struct resp_req r = { .argv = argv, .argv_cap = MAXA };
    struct resp_state st;
    char buf[64];
    size_t used;

    resp_state_init(&st);
    memcpy(buf, head, sizeof(head) - 1);
    ck_assert_int_eq(resp_parse(&r, &st, buf, sizeof(head) - 1, &used, &lim_stream),
                     PARSE_STREAM);
    ck_assert_uint_eq(r.argc, 1);
    /* The second large bulk of the request is buffered. */
    memcpy(buf, tail, sizeof(tail) - 1);
    ck_assert_int_eq(resp_parse(&r, &st, buf, sizeof(tail) - 1, &used, &lim_stream),
                     PARSE_OK);
    ck_assert_uint_eq(r.argbase, 2);
    ck_assert_uint_eq(r.argc, 2);
    ck_assert_uint_eq(argv[1].len, 10);
    ck_assert(memcmp(argv[1].ptr, "0123456789", 10) == 0);
}
END_TEST

START_TEST(test_stream_rest_larger_than_lent_array_is_refused)
{
    static const char head[] = "*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\n";
    static const char tail[] = "$2\r\nEX\r\n$2\r\n10\r\n";
    struct resp_arg argv[MAXA];
    struct resp_req r = { .argv = argv, .argv_cap = MAXA };
    struct resp_state st;
    char buf[64];
    size_t used;

    resp_state_init(&st);
    memcpy(buf, head, sizeof(head) - 1);
    ck_assert_int_eq(resp_parse(&r, &st, buf, sizeof(head) - 1, &used, &lim_stream),
                     PARSE_STREAM);
    r.argv_cap = 1;
    memcpy(buf, tail, sizeof(tail) - 1);
    ck_assert_int_eq(resp_parse(&r, &st, buf, sizeof(tail) - 1, &used, &lim_stream),
                     PARSE_TOO_LONG);
    ck_assert_uint_eq(used, sizeof(tail) - 1);
}
END_TEST

START_TEST(test_unauthenticated_client_gets_redis_limits_of_10_args_and_16k_bulks)
{
    struct resp_limits lim = lim_redis;
    struct outcome o;
    static char big[16384 + 64];
    int n;

    lim.unauthenticated = true;
    expect_error(S("*11\r\n"), &lim, PARSE_TOO_LONG,
                 "ERR Protocol error: unauthenticated multibulk length");
    expect_error(S("*2\r\n$3\r\nGET\r\n$16385\r\n"), &lim, PARSE_TOO_LONG,
                 "ERR Protocol error: unauthenticated bulk length");
    /* The ordinary checks come first, as in Redis. */
    expect_error(S("*2\r\n$3\r\nGET\r\n$-5\r\n"), &lim, PARSE_INVALID,
                 "ERR Protocol error: invalid bulk length");
    /* At the limits: parsed. */
    parse_once(&o, S("*10\r\n"), &lim);
    ck_assert_int_eq(o.status, PARSE_AGAIN);
    n = snprintf(big, sizeof(big), "*2\r\n$4\r\nAUTH\r\n$16384\r\n");
    memset(big + n, 'p', 16384);
    memcpy(big + n + 16384, "\r\n", 2);
    {
        struct resp_arg argv[MAXA];
        struct resp_req r = { .argv = argv, .argv_cap = MAXA };
        struct resp_state st;
        size_t used;

        resp_state_init(&st);
        ck_assert_int_eq(resp_parse(&r, &st, big, (size_t)n + 16386, &used, &lim), PARSE_OK);
        ck_assert_uint_eq(r.argc, 2);
        ck_assert_uint_eq(argv[1].len, 16384);
    }
    /* Once authenticated, the usual limits. */
    parse_once(&o, S("*11\r\n"), &lim_redis);
    ck_assert_int_eq(o.status, PARSE_AGAIN);
}
END_TEST

static Suite *
resp_suite(void)
{
    Suite *s = suite_create("resp");
    TCase *tc = tcase_create("parse");
    TCase *tl = tcase_create("limits");
    TCase *ts = tcase_create("split");
    TCase *tw = tcase_create("compose");
    TCase *tst = tcase_create("stream");
    int nsplit = (int)(sizeof(split_cases) / sizeof(split_cases[0]));

    tcase_add_test(tc, test_multibulk_yields_args_and_consumes_exactly_the_request);
    tcase_add_test(tc, test_multibulk_empty_bulk_is_an_empty_arg);
    tcase_add_test(tc, test_binary_bulk_keeps_crlf_and_nul_bytes);
    tcase_add_test(tc, test_bytes_after_bulk_data_are_skipped_unchecked_like_redis);
    tcase_add_test(tc, test_inline_splits_on_blanks_with_crlf_or_lf);
    tcase_add_test(tc, test_inline_blank_rules_match_redis);
    tcase_add_test(tc, test_inline_double_quotes_decode_escapes_like_redis);
    tcase_add_test(tc, test_inline_single_quotes_only_unescape_quote);
    tcase_add_test(tc, test_inline_quote_inside_word_and_empty_quotes);
    tcase_add_test(tc, test_empty_requests_are_ok_with_zero_args);
    tcase_add_test(tc, test_pipelined_requests_parse_one_after_another);
    tcase_add_test(tc, test_bad_multibulk_count_is_invalid_multibulk_length);
    tcase_add_test(tc, test_bad_bulk_length_is_invalid_bulk_length);
    tcase_add_test(tc, test_missing_dollar_names_the_byte_found);
    tcase_add_test(tc, test_unbalanced_quotes_are_refused);
    tcase_add_test(tc, test_error_reply_bytes_match_redis);
    tcase_add_test(tc, test_name_eq_ignores_ascii_case_and_checks_length);
    tcase_add_test(tl, test_header_without_cr_beyond_limit_is_too_big_count_string);
    tcase_add_test(tl, test_header_line_at_limit_is_judged_on_its_number);
    tcase_add_test(tl, test_inline_line_over_limit_is_too_big_inline_request);
    tcase_add_test(tl, test_bulk_over_max_is_refused_from_header_alone);
    tcase_add_test(tl, test_count_over_limit_or_capacity_is_refused_before_args);
    tcase_add_test(tl, test_unauthenticated_client_gets_redis_limits_of_10_args_and_16k_bulks);
    tcase_add_loop_test(ts, test_every_byte_split_gives_again_then_the_same_result, 0, nsplit);
    tcase_add_loop_test(ts, test_two_part_split_at_every_offset_resumes_to_the_same_result, 0, nsplit);
    tcase_add_test(ts, test_bulk_resume_does_not_reread_consumed_headers);
    tcase_add_test(ts, test_inline_search_resumes_where_it_stopped);
    tcase_add_test(ts, test_args_finished_in_earlier_calls_point_into_the_new_buffer);
    tcase_add_test(ts, test_large_pipelined_request_in_small_chunks_scans_linearly);
    tcase_add_test(ts, test_state_resets_after_each_result);
    tcase_add_test(tw, test_composer_writes_resp2_bytes_exactly);
    tcase_add_test(tw, test_composer_writes_resp3_bytes_exactly);
    tcase_add_test(tw, test_composer_writes_all_or_nothing_at_capacity);
    tcase_add_test(tw, test_composed_request_parses_back);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, tl);
    suite_add_tcase(s, ts);
    tcase_add_test(tst, test_stream_reports_large_bulk_from_its_header_alone);
    tcase_add_test(tst, test_stream_of_last_argument_resets_state_for_next_request);
    tcase_add_test(tst, test_stream_then_arguments_after_it_parse_with_argbase);
    tcase_add_test(tst, test_stream_after_args_split_across_calls_points_into_new_buffer);
    tcase_add_test(tst, test_stream_declined_parses_the_request_buffered);
    tcase_add_test(tst, test_stream_only_at_or_over_its_minimum_and_within_max_bulk);
    tcase_add_test(tst, test_stream_only_one_argument_per_request);
    tcase_add_test(tst, test_stream_rest_larger_than_lent_array_is_refused);
    suite_add_tcase(s, tw);
    suite_add_tcase(s, tst);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(resp_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
