/*
 * Unit tests for the meta command flag parser (mc_meta), its reply-flag
 * composer, and the base64 codec it uses for binary keys. Expected error
 * strings were read from memcached 1.6.18 answering the same lines.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/mc_meta.h"
#include "util/base64.h"

static char keybuf[MC_META_KEY_MAX];

static enum parse_status parse(struct mc_meta_req *r, enum mc_meta_cmd cmd,
                               const char *key, const char *args)
{
    return mc_meta_parse(r, cmd, key, strlen(key), args, strlen(args), keybuf);
}

/* Parse and expect PARSE_INVALID with err. */
static void expect_err(enum mc_meta_cmd cmd, const char *key, const char *args,
                       enum mc_meta_err err)
{
    struct mc_meta_req r;
    enum parse_status st = parse(&r, cmd, key, args);
    ck_assert_msg(st == PARSE_INVALID, "%s %s %s: status %d", mc_meta_cmd_name(cmd), key,
                  args, st);
    ck_assert_msg(r.err == err, "%s %s %s: err %d, want %d", mc_meta_cmd_name(cmd), key,
                  args, r.err, err);
}

static void expect_ok(struct mc_meta_req *r, enum mc_meta_cmd cmd, const char *key,
                      const char *args)
{
    enum parse_status st = parse(r, cmd, key, args);
    ck_assert_msg(st == PARSE_OK, "%s %s %s: status %d err %d", mc_meta_cmd_name(cmd),
                  key, args, st, r->err);
}

/* ---- base64 ---- */

static const char *const rfc_plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
static const char *const rfc_coded[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
                                         "Zm9vYmFy" };

START_TEST(test_base64_encode_matches_rfc4648_vectors)
{
    size_t i;
    for (i = 0; i < sizeof(rfc_plain) / sizeof(rfc_plain[0]); i++) {
        char out[16];
        size_t n = base64_encode(out, sizeof(out), rfc_plain[i], strlen(rfc_plain[i]));
        ck_assert_uint_eq(n, strlen(rfc_coded[i]));
        ck_assert(memcmp(out, rfc_coded[i], n) == 0);
    }
}
END_TEST

START_TEST(test_base64_decode_matches_rfc4648_vectors)
{
    size_t i;
    for (i = 0; i < sizeof(rfc_plain) / sizeof(rfc_plain[0]); i++) {
        char out[16];
        size_t n = 99;
        ck_assert(base64_decode(out, sizeof(out), rfc_coded[i], strlen(rfc_coded[i]), &n));
        ck_assert_uint_eq(n, strlen(rfc_plain[i]));
        ck_assert(memcmp(out, rfc_plain[i], n) == 0);
    }
}
END_TEST

START_TEST(test_base64_roundtrips_every_byte_value_at_every_length)
{
    unsigned char src[64], dec[64];
    char enc[BASE64_ENCODED_LEN(64)];
    size_t len, i;

    for (len = 0; len <= sizeof(src); len++) {
        size_t e, d = 0;
        for (i = 0; i < len; i++) {
            src[i] = (unsigned char)(i * 37 + len * 11 + 255);
        }
        e = base64_encode(enc, sizeof(enc), src, len);
        ck_assert_uint_eq(e, BASE64_ENCODED_LEN(len));
        ck_assert(base64_decode(dec, sizeof(dec), enc, e, &d));
        ck_assert_uint_eq(d, len);
        ck_assert(memcmp(src, dec, len) == 0);
    }
}
END_TEST

START_TEST(test_base64_decode_rejects_malformed_input)
{
    static const char *const bad[] = {
        "Zm9", "Zm9vY", "Zm9v=", "====", "Zg=a", "Z===", "Zg==Zm9v", "Zm=v",
        "Zm9 ", "Zm9\n", "Zm-v", "Zm_v", "Zh==", "Zm9=",
    };
    size_t i;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char out[16];
        size_t n = 1234;
        ck_assert_msg(!base64_decode(out, sizeof(out), bad[i], strlen(bad[i]), &n),
                      "accepted \"%s\"", bad[i]);
        ck_assert_uint_eq(n, 1234);
    }
}
END_TEST

START_TEST(test_base64_decode_never_writes_past_cap)
{
    char out[8];
    size_t n = 0;

    memset(out, 'X', sizeof(out));
    ck_assert(!base64_decode(out, 5, "Zm9vYmFy", 8, &n));
    ck_assert_int_eq(out[5], 'X');
    ck_assert(!base64_decode(out, 0, "Zg==", 4, &n));
    ck_assert(base64_decode(out, 6, "Zm9vYmFy", 8, &n));
    ck_assert_uint_eq(n, 6);
    ck_assert(base64_decode(out, 1, "Zg==", 4, &n));
    ck_assert_uint_eq(n, 1);
}
END_TEST

START_TEST(test_base64_encode_writes_nothing_when_cap_too_small)
{
    char out[8];
    memset(out, 'X', sizeof(out));
    ck_assert_uint_eq(base64_encode(out, 7, "foobar", 6), 0);
    ck_assert_int_eq(out[0], 'X');
    ck_assert_uint_eq(base64_encode(out, 8, "foobar", 6), 8);
}
END_TEST

/* ---- meta: flags per command ---- */

/* The flags each command accepts: every letter memcached 1.6 knows for
 * mg/ms/md/ma (those that do not apply are ignored), only its own for me. */
#define KNOWN_FLAGS "bcCDEfFhIJklLMNOPqRstTuvx"
static const char *const allowed[MC_META_CMD_COUNT] = {
    [MC_META_MG] = KNOWN_FLAGS,
    [MC_META_MS] = KNOWN_FLAGS,
    [MC_META_MD] = KNOWN_FLAGS,
    [MC_META_MA] = KNOWN_FLAGS,
};

START_TEST(test_flag_that_does_not_apply_is_checked_then_ignored)
{
    struct mc_meta_req r;

    /* I is ms/md's; x is md's; D and J are ma's; F is ms's; f h l u are mg's */
    expect_ok(&r, MC_META_MG, "foo", "v I x D5 J7 F3 k");
    ck_assert_uint_eq(r.flags, MC_META_F_RET_VALUE | MC_META_F_RET_KEY);
    ck_assert_uint_eq(r.delta, 1);
    ck_assert_uint_eq(r.initial, 0);
    ck_assert_uint_eq(r.client_flags, 0);
    expect_ok(&r, MC_META_MD, "foo", "c f h l s t v k q");
    ck_assert_uint_eq(r.flags, MC_META_F_RET_KEY | MC_META_F_QUIET);
    ck_assert_uint_eq(r.nret, 1);
    ck_assert_int_eq(r.ret[0], 'k');
    expect_ok(&r, MC_META_MS, "foo", "2 R30 u v");
    ck_assert_uint_eq(r.flags, 0);
    ck_assert_int_eq(r.recache_ttl, 0);
    /* a mode on a command without modes: any length, no check */
    expect_ok(&r, MC_META_MG, "foo", "MXYZ");
    ck_assert_int_eq(r.mode, MC_META_MODE_NONE);
    /* the token is still checked, with memcached's message */
    expect_err(MC_META_MG, "foo", "D12x", MC_META_ERR_DELTA);
    expect_err(MC_META_MD, "foo", "J-1", MC_META_ERR_INITIAL);
    expect_err(MC_META_MG, "foo", "Cabc", MC_META_ERR_TOKEN);
    expect_err(MC_META_MG, "foo", "I I", MC_META_ERR_DUPLICATE);
    /* me reads only a b right after the key */
    expect_ok(&r, MC_META_ME, "foo", "v Y v");
    ck_assert_uint_eq(r.flags, 0);
    expect_ok(&r, MC_META_ME, "Zm9v", "b");
    ck_assert_uint_eq(r.flags, MC_META_F_BASE64);
    ck_assert_uint_eq(r.nkey, 3);
    expect_ok(&r, MC_META_ME, "foo", "bx b");
    ck_assert_uint_eq(r.flags, 0);
    expect_ok(&r, MC_META_ME, "Zm9v", "b b");
    ck_assert_uint_eq(r.flags, MC_META_F_BASE64);
}
END_TEST

START_TEST(test_each_command_accepts_exactly_the_known_flags)
{
    static const char letters[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    enum mc_meta_cmd cmd;
    const char *l;

    for (cmd = MC_META_MG; cmd < MC_META_CMD_COUNT; cmd++) {
        if (cmd == MC_META_MN || cmd == MC_META_ME) {
            continue;   /* mn takes nothing; me ignores its flags */
        }
        for (l = letters; *l; l++) {
            struct mc_meta_req r;
            char args[16];
            const char *tok = "1";
            enum parse_status st;

            if (*l == 'M') {
                tok = cmd == MC_META_MS ? "S" : "I";
            }
            snprintf(args, sizeof(args), "%s%c%s", cmd == MC_META_MS ? "3 " : "", *l, tok);
            st = parse(&r, cmd, "Zm9v", args);
            if (strchr(allowed[cmd], *l) != NULL) {
                ck_assert_msg(st == PARSE_OK, "%s rejected %s (err %d)",
                              mc_meta_cmd_name(cmd), args, r.err);
            } else {
                ck_assert_msg(st == PARSE_INVALID && r.err == MC_META_ERR_FLAG,
                              "%s accepted %s", mc_meta_cmd_name(cmd), args);
            }
        }
    }
}
END_TEST

START_TEST(test_non_letter_flag_is_invalid)
{
    expect_err(MC_META_MG, "foo", "1", MC_META_ERR_FLAG);
    expect_err(MC_META_MG, "foo", "-", MC_META_ERR_FLAG);
    expect_err(MC_META_MG, "foo", "\xc3\xa9", MC_META_ERR_FLAG);
    expect_err(MC_META_MA, "foo", "+", MC_META_ERR_FLAG);
}
END_TEST

START_TEST(test_mg_records_flags_and_return_order)
{
    struct mc_meta_req r;
    expect_ok(&r, MC_META_MG, "foo", "v f t c k s O123 q h l u");
    ck_assert_uint_eq(r.flags, MC_META_F_RET_VALUE | MC_META_F_RET_FLAGS | MC_META_F_RET_TTL |
                      MC_META_F_RET_CAS | MC_META_F_RET_KEY | MC_META_F_RET_SIZE |
                      MC_META_F_OPAQUE | MC_META_F_QUIET | MC_META_F_RET_HIT |
                      MC_META_F_RET_ACCESS | MC_META_F_NO_BUMP);
    ck_assert_uint_eq(r.nret, 8);
    ck_assert(memcmp(r.ret, "ftcksOhl", 8) == 0);
    ck_assert_uint_eq(r.nopaque, 3);
    ck_assert(memcmp(r.opaque, "123", 3) == 0);
    ck_assert(r.key == r.key_token);
    ck_assert_uint_eq(r.nkey, 3);
}
END_TEST

START_TEST(test_token_flags_store_their_values)
{
    struct mc_meta_req r;

    expect_ok(&r, MC_META_MG, "foo", "N30 R-5 T100 E77");
    ck_assert_int_eq(r.vivify_ttl, 30);
    ck_assert_int_eq(r.recache_ttl, -5);
    ck_assert_int_eq(r.ttl, 100);
    ck_assert_uint_eq(r.new_cas, 77);
    ck_assert_uint_eq(r.flags, MC_META_F_VIVIFY | MC_META_F_RECACHE | MC_META_F_TTL |
                      MC_META_F_NEW_CAS);
    ck_assert_uint_eq(r.nret, 0);

    expect_ok(&r, MC_META_MS, "foo", "10 F4294967295 C18446744073709551615 T-1 I");
    ck_assert_uint_eq(r.datalen, 10);
    ck_assert_uint_eq(r.client_flags, UINT32_MAX);
    ck_assert_uint_eq(r.compare_cas, UINT64_MAX);
    ck_assert_int_eq(r.ttl, -1);
    ck_assert(r.flags & MC_META_F_INVALIDATE);

    expect_ok(&r, MC_META_MA, "n", "D5 J10 N0 T9223372036854775807");
    ck_assert_uint_eq(r.delta, 5);
    ck_assert_uint_eq(r.initial, 10);
    ck_assert_int_eq(r.vivify_ttl, 0);
    ck_assert_int_eq(r.ttl, INT64_MAX);

    expect_ok(&r, MC_META_MD, "foo", "T-9223372036854775808 I x C3");
    ck_assert_int_eq(r.ttl, INT64_MIN);
    ck_assert_uint_eq(r.compare_cas, 3);
    ck_assert(r.flags & MC_META_F_DROP_VALUE);

    /* mg takes C too (1.6.45: the value is left out when the CAS matches) */
    expect_ok(&r, MC_META_MG, "foo", "C42 v");
    ck_assert_uint_eq(r.compare_cas, 42);
    ck_assert(r.flags & MC_META_F_COMPARE_CAS);
}
END_TEST

START_TEST(test_defaults_when_flags_absent)
{
    struct mc_meta_req r;

    expect_ok(&r, MC_META_MA, "n", "");
    ck_assert_uint_eq(r.delta, 1);
    ck_assert_uint_eq(r.initial, 0);
    ck_assert_int_eq(r.mode, MC_META_MODE_INCR);
    ck_assert_uint_eq(r.flags, 0);

    expect_ok(&r, MC_META_MS, "foo", "0");
    ck_assert_int_eq(r.mode, MC_META_MODE_SET);
    ck_assert_uint_eq(r.client_flags, 0);
    ck_assert_uint_eq(r.datalen, 0);

    expect_ok(&r, MC_META_MG, "foo", "");
    ck_assert_int_eq(r.mode, MC_META_MODE_NONE);
    ck_assert_uint_eq(r.flags, 0);
}
END_TEST

START_TEST(test_tokenless_flags_ignore_glued_characters)
{
    struct mc_meta_req r;
    expect_ok(&r, MC_META_MG, "foo", "k1 vxyz");
    ck_assert_uint_eq(r.flags, MC_META_F_RET_KEY | MC_META_F_RET_VALUE);
}
END_TEST

START_TEST(test_duplicate_flag_is_rejected_for_every_command)
{
    expect_err(MC_META_MG, "foo", "v v", MC_META_ERR_DUPLICATE);
    expect_err(MC_META_MG, "foo", "T1 k T2", MC_META_ERR_DUPLICATE);
    expect_err(MC_META_MG, "foo", "O1 O2", MC_META_ERR_DUPLICATE);
    expect_err(MC_META_MG, "foo", "P P", MC_META_ERR_DUPLICATE);
    expect_err(MC_META_MG, "foo", "L L", MC_META_ERR_DUPLICATE);
    expect_err(MC_META_MS, "foo", "1 q q", MC_META_ERR_DUPLICATE);
    expect_err(MC_META_MD, "foo", "C1 C2", MC_META_ERR_DUPLICATE);
    expect_err(MC_META_MA, "foo", "q q", MC_META_ERR_DUPLICATE);
}
END_TEST

START_TEST(test_first_error_left_to_right_wins)
{
    expect_err(MC_META_MG, "foo", "Z v v", MC_META_ERR_FLAG);
    expect_err(MC_META_MG, "foo", "v v Z", MC_META_ERR_DUPLICATE);
    expect_err(MC_META_MG, "foo", "Tx Z", MC_META_ERR_TOKEN);
}
END_TEST

START_TEST(test_numeric_tokens_must_be_valid_numbers)
{
    expect_err(MC_META_MG, "foo", "T", MC_META_ERR_TOKEN);
    expect_err(MC_META_MG, "foo", "Tabc", MC_META_ERR_TOKEN);
    expect_err(MC_META_MG, "foo", "T1x", MC_META_ERR_TOKEN);
    expect_err(MC_META_MG, "foo", "T-", MC_META_ERR_TOKEN);
    expect_err(MC_META_MG, "foo", "T+1", MC_META_ERR_TOKEN);
    expect_err(MC_META_MG, "foo", "T9223372036854775808", MC_META_ERR_TOKEN);
    expect_err(MC_META_MG, "foo", "T-9223372036854775809", MC_META_ERR_TOKEN);
    expect_err(MC_META_MG, "foo", "N", MC_META_ERR_TOKEN);
    expect_err(MC_META_MG, "foo", "R1.5", MC_META_ERR_TOKEN);
    expect_err(MC_META_MG, "foo", "E-1", MC_META_ERR_TOKEN);
    expect_err(MC_META_MS, "foo", "1 C-1", MC_META_ERR_TOKEN);
    expect_err(MC_META_MS, "foo", "1 C18446744073709551616", MC_META_ERR_TOKEN);
    expect_err(MC_META_MS, "foo", "1 F", MC_META_ERR_FORMAT);
    expect_err(MC_META_MS, "foo", "1 F-1", MC_META_ERR_FORMAT);
    expect_err(MC_META_MS, "foo", "1 F4294967296", MC_META_ERR_FORMAT);
    expect_err(MC_META_MA, "foo", "D", MC_META_ERR_DELTA);
    expect_err(MC_META_MA, "foo", "D-1", MC_META_ERR_DELTA);
    expect_err(MC_META_MA, "foo", "D18446744073709551616", MC_META_ERR_DELTA);
    expect_err(MC_META_MA, "foo", "J", MC_META_ERR_INITIAL);
    expect_err(MC_META_MA, "foo", "J1e3", MC_META_ERR_INITIAL);
}
END_TEST

START_TEST(test_opaque_is_limited_to_32_bytes)
{
    struct mc_meta_req r;
    char args[64];

    snprintf(args, sizeof(args), "O%.32s", "0123456789abcdef0123456789abcdef");
    expect_ok(&r, MC_META_MG, "foo", args);
    ck_assert_uint_eq(r.nopaque, 32);
    snprintf(args, sizeof(args), "O%.33s", "0123456789abcdef0123456789abcdefX");
    expect_err(MC_META_MG, "foo", args, MC_META_ERR_OPAQUE);
    expect_err(MC_META_MD, "foo", args, MC_META_ERR_OPAQUE);
    expect_ok(&r, MC_META_MG, "foo", "O");
    ck_assert(r.flags & MC_META_F_OPAQUE);
    ck_assert_uint_eq(r.nopaque, 0);
}
END_TEST

START_TEST(test_ms_datalen_comes_first_and_must_be_a_number)
{
    struct mc_meta_req r;

    expect_ok(&r, MC_META_MS, "foo", "4294967295 T0");
    ck_assert_uint_eq(r.datalen, UINT32_MAX);
    ck_assert(r.datalen_ok);

    expect_err(MC_META_MS, "foo", "", MC_META_ERR_FORMAT);
    expect_err(MC_META_MS, "foo", "T0", MC_META_ERR_FORMAT);
    expect_err(MC_META_MS, "foo", "1x", MC_META_ERR_FORMAT);
    expect_err(MC_META_MS, "foo", "-1", MC_META_ERR_FORMAT);
    expect_err(MC_META_MS, "foo", "4294967296", MC_META_ERR_FORMAT);
    parse(&r, MC_META_MS, "foo", "1x");
    ck_assert(!r.datalen_ok);
}
END_TEST

START_TEST(test_ms_flag_error_still_reports_datalen_to_swallow)
{
    struct mc_meta_req r;
    ck_assert_int_eq(parse(&r, MC_META_MS, "foo", "5 S1"), PARSE_INVALID);
    ck_assert_int_eq(r.err, MC_META_ERR_FLAG);
    ck_assert(r.datalen_ok);
    ck_assert_uint_eq(r.datalen, 5);
}
END_TEST

START_TEST(test_ms_mode_characters_map_to_modes)
{
    static const struct { const char *args; enum mc_meta_mode mode; } m[] = {
        { "1 ME", MC_META_MODE_ADD }, { "1 MA", MC_META_MODE_APPEND },
        { "1 MP", MC_META_MODE_PREPEND }, { "1 MR", MC_META_MODE_REPLACE },
        { "1 MS", MC_META_MODE_SET },
    };
    size_t i;
    for (i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
        struct mc_meta_req r;
        expect_ok(&r, MC_META_MS, "foo", m[i].args);
        ck_assert_int_eq(r.mode, m[i].mode);
    }
    expect_err(MC_META_MS, "foo", "1 Me", MC_META_ERR_MODE);
    expect_err(MC_META_MS, "foo", "1 MI", MC_META_ERR_MODE);
    expect_err(MC_META_MS, "foo", "1 M", MC_META_ERR_MODE);
    {
        /* memcached 1.6.45 reads only the token's first character */
        struct mc_meta_req r;
        expect_ok(&r, MC_META_MS, "foo", "1 MEE");
        ck_assert_int_eq(r.mode, MC_META_MODE_ADD);
        expect_err(MC_META_MS, "foo", "1 MxS", MC_META_ERR_MODE);
    }
}
END_TEST

START_TEST(test_ma_mode_characters_map_to_modes)
{
    static const struct { const char *args; enum mc_meta_mode mode; } m[] = {
        { "MI", MC_META_MODE_INCR }, { "M+", MC_META_MODE_INCR },
        { "MD", MC_META_MODE_DECR }, { "M-", MC_META_MODE_DECR },
    };
    size_t i;
    for (i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
        struct mc_meta_req r;
        expect_ok(&r, MC_META_MA, "n", m[i].args);
        ck_assert_int_eq(r.mode, m[i].mode);
    }
    expect_err(MC_META_MA, "n", "Md", MC_META_ERR_MODE);
    expect_err(MC_META_MA, "n", "MS", MC_META_ERR_MODE);
    {
        struct mc_meta_req r;
        expect_ok(&r, MC_META_MA, "n", "MDI");
        ck_assert_int_eq(r.mode, MC_META_MODE_DECR);
    }
}
END_TEST

START_TEST(test_mode_is_checked_after_all_flags_like_memcached)
{
    expect_err(MC_META_MS, "foo", "1 Mx q q", MC_META_ERR_DUPLICATE);
}
END_TEST

START_TEST(test_base64_key_is_decoded_into_caller_buffer)
{
    struct mc_meta_req r;

    expect_ok(&r, MC_META_MG, "Zm9v", "b k");
    ck_assert(r.key == keybuf);
    ck_assert_uint_eq(r.nkey, 3);
    ck_assert(memcmp(r.key, "foo", 3) == 0);
    ck_assert_uint_eq(r.nkey_token, 4);
    ck_assert(memcmp(r.key_token, "Zm9v", 4) == 0);

    /* binary bytes: NUL, space, newline */
    expect_ok(&r, MC_META_MS, "YQBiIAo=", "1 b");
    ck_assert_uint_eq(r.nkey, 5);
    ck_assert(memcmp(r.key, "a\0b \n", 5) == 0);
}
END_TEST

START_TEST(test_invalid_base64_key_is_rejected)
{
    expect_err(MC_META_MG, "Zm9", "b", MC_META_ERR_KEY_DECODE);
    expect_err(MC_META_MG, "Zm9v=", "b k v", MC_META_ERR_KEY_DECODE);
    expect_err(MC_META_MS, "foo", "1 b", MC_META_ERR_KEY_DECODE);
    expect_err(MC_META_MD, "a*b=", "b", MC_META_ERR_KEY_DECODE);
    expect_err(MC_META_ME, "foo", "b", MC_META_ERR_KEY_DECODE);
    expect_err(MC_META_MG, "====", "b", MC_META_ERR_KEY_DECODE);
}
END_TEST

START_TEST(test_flag_errors_come_before_key_decode_errors)
{
    expect_err(MC_META_MG, "Zm9", "b Z", MC_META_ERR_FLAG);
}
END_TEST

/* memcached 1.6.45 checks a plain meta key's length alone, so control bytes
 * are key bytes here as in the classic commands (memcaslap sends them). */
START_TEST(test_plain_key_with_control_bytes_is_accepted)
{
    struct mc_meta_req r;

    expect_ok(&r, MC_META_MG, "a\x10" "b", "v k");
    ck_assert_uint_eq(r.nkey, 3);
    ck_assert(memcmp(r.key, "a\x10" "b", 3) == 0);
    expect_ok(&r, MC_META_MS, "\x01\x7f\t", "1 T0");
    ck_assert_uint_eq(r.nkey, 3);
    expect_ok(&r, MC_META_MD, "\x1b", "q");
    ck_assert_uint_eq(r.nkey, 1);
    expect_ok(&r, MC_META_MA, "n\x10", "N0");
    ck_assert_uint_eq(r.nkey, 2);
}
END_TEST

START_TEST(test_key_is_1_to_250_bytes)
{
    struct mc_meta_req r;
    char key[MC_META_KEY_MAX + 2];

    memset(key, 'a', sizeof(key));
    key[MC_META_KEY_MAX] = '\0';
    expect_ok(&r, MC_META_MG, key, "k");
    ck_assert_uint_eq(r.nkey, 250);
    key[MC_META_KEY_MAX] = 'a';
    key[MC_META_KEY_MAX + 1] = '\0';
    expect_err(MC_META_MG, key, "k", MC_META_ERR_FORMAT);
    expect_err(MC_META_MS, key, "1", MC_META_ERR_FORMAT);
    parse(&r, MC_META_MS, key, "1");
    ck_assert(!r.datalen_ok);   /* memcached does not swallow: neither can we */
    expect_err(MC_META_MG, "", "k", MC_META_ERR_FORMAT);
}
END_TEST

START_TEST(test_longest_base64_key_248_chars_decodes_to_186_bytes)
{
    struct mc_meta_req r;
    unsigned char raw[187];
    char enc[MC_META_KEY_MAX + 2];
    size_t n;

    memset(raw, 0xfe, sizeof(raw));
    n = base64_encode(enc, sizeof(enc), raw, sizeof(raw));
    ck_assert_uint_eq(n, 252);  /* 187 bytes need 252 chars: one quantum too many */
    n = base64_encode(enc, sizeof(enc), raw, 186);
    ck_assert_uint_eq(n, 248);
    enc[n] = '\0';
    expect_ok(&r, MC_META_MG, enc, "b");
    ck_assert_uint_eq(r.nkey, 186);
    ck_assert(memcmp(r.key, raw, 186) == 0);
}
END_TEST

START_TEST(test_spaces_and_trailing_cr_are_tolerated)
{
    struct mc_meta_req r;
    expect_ok(&r, MC_META_MG, "foo", "   k    v  O9  \r");
    ck_assert_uint_eq(r.flags, MC_META_F_RET_KEY | MC_META_F_RET_VALUE | MC_META_F_OPAQUE);
    ck_assert_uint_eq(r.nopaque, 1);
    ck_assert_int_eq(r.opaque[0], '9');
    expect_ok(&r, MC_META_MS, "foo", "  7  T5");
    ck_assert_uint_eq(r.datalen, 7);
    ck_assert_int_eq(r.ttl, 5);
}
END_TEST

START_TEST(test_proxy_hints_p_and_l_are_ignored)
{
    struct mc_meta_req r;
    expect_ok(&r, MC_META_MG, "foo", "Pabc/def Lxyz k");
    ck_assert_uint_eq(r.flags, MC_META_F_PROXY | MC_META_F_RET_KEY);
    ck_assert_uint_eq(r.nret, 1);
}
END_TEST

START_TEST(test_mn_ignores_the_rest_of_its_line)
{
    struct mc_meta_req r;
    ck_assert_int_eq(mc_meta_parse(&r, MC_META_MN, NULL, 0, "garbage v v", 11, keybuf),
                     PARSE_OK);
    ck_assert_uint_eq(r.flags, 0);
}
END_TEST

START_TEST(test_unknown_command_value_is_invalid)
{
    struct mc_meta_req r;
    ck_assert_int_eq(mc_meta_parse(&r, MC_META_CMD_COUNT, "foo", 3, "", 0, keybuf),
                     PARSE_INVALID);
    ck_assert_str_eq(mc_meta_cmd_name(MC_META_CMD_COUNT), "unknown");
}
END_TEST

START_TEST(test_error_strings_match_memcached_1_6)
{
    static const struct { enum mc_meta_cmd cmd; enum mc_meta_err err; const char *s; } t[] = {
        { MC_META_MG, MC_META_ERR_FLAG, "CLIENT_ERROR invalid flag" },
        { MC_META_MS, MC_META_ERR_DUPLICATE, "CLIENT_ERROR duplicate flag" },
        { MC_META_MG, MC_META_ERR_TOKEN, "CLIENT_ERROR bad token in command line format" },
        { MC_META_MS, MC_META_ERR_FORMAT, "CLIENT_ERROR bad command line format" },
        { MC_META_MS, MC_META_ERR_MODE, "CLIENT_ERROR invalid mode for ms M token" },
        { MC_META_MA, MC_META_ERR_MODE, "CLIENT_ERROR invalid mode for ma M token" },
        { MC_META_MG, MC_META_ERR_OPAQUE, "CLIENT_ERROR opaque token too long" },
        { MC_META_MD, MC_META_ERR_OPAQUE, "CLIENT_ERROR opaque token too long" },
        { MC_META_MG, MC_META_ERR_KEY_DECODE, "CLIENT_ERROR error decoding key" },
        { MC_META_ME, MC_META_ERR_KEY_DECODE, "CLIENT_ERROR bad command line format" },
        { MC_META_MD, MC_META_ERR_FLAG, "CLIENT_ERROR invalid flag" },
        { MC_META_MD, MC_META_ERR_DUPLICATE, "CLIENT_ERROR duplicate flag" },
        { MC_META_MD, MC_META_ERR_TOKEN, "CLIENT_ERROR bad token in command line format" },
        { MC_META_MD, MC_META_ERR_KEY_DECODE, "CLIENT_ERROR error decoding key" },
        { MC_META_MA, MC_META_ERR_FLAG, "CLIENT_ERROR invalid or duplicate flag" },
        { MC_META_MA, MC_META_ERR_DUPLICATE, "CLIENT_ERROR invalid or duplicate flag" },
        { MC_META_MA, MC_META_ERR_DELTA, "CLIENT_ERROR invalid or duplicate flag" },
        { MC_META_MA, MC_META_ERR_INITIAL, "CLIENT_ERROR invalid or duplicate flag" },
        { MC_META_MA, MC_META_ERR_KEY_DECODE, "CLIENT_ERROR invalid or duplicate flag" },
        { MC_META_MD, MC_META_ERR_FORMAT, "CLIENT_ERROR bad command line format" },
    };
    size_t i;
    for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        ck_assert_str_eq(mc_meta_errstr(t[i].cmd, t[i].err), t[i].s);
    }
}
END_TEST

/* ---- composer ---- */

static size_t compose(char *out, size_t cap, const struct mc_meta_req *r,
                      const struct mc_meta_vals *v)
{
    size_t n = mc_meta_compose_flags(out, cap, r, v);
    if (n < cap) {
        out[n] = '\0';
    }
    return n;
}

START_TEST(test_compose_returns_flags_in_request_order)
{
    struct mc_meta_req r;
    struct mc_meta_vals v = {
        .have = MC_META_F_RET_CAS | MC_META_F_RET_FLAGS | MC_META_F_RET_TTL |
                MC_META_F_RET_SIZE | MC_META_F_RET_HIT | MC_META_F_RET_ACCESS,
        .cas = 1, .client_flags = 5, .ttl = -1, .size = 3, .hit_before = false,
        .last_access = 7,
    };
    char out[MC_META_FLAGS_OUT_MAX];

    expect_ok(&r, MC_META_MG, "foo", "v f t c k s O123 q h l");
    compose(out, sizeof(out), &r, &v);
    ck_assert_str_eq(out, " f5 t-1 c1 kfoo s3 O123 h0 l7");

    expect_ok(&r, MC_META_MG, "foo", "O1 k");
    compose(out, sizeof(out), &r, &v);
    ck_assert_str_eq(out, " O1 kfoo");
}
END_TEST

START_TEST(test_compose_on_miss_echoes_only_key_and_opaque)
{
    struct mc_meta_req r;
    struct mc_meta_vals v = { .have = 0, .cas = 9 };
    char out[MC_META_FLAGS_OUT_MAX];

    expect_ok(&r, MC_META_MG, "foo", "k c t f s O1 v");
    compose(out, sizeof(out), &r, &v);
    ck_assert_str_eq(out, " kfoo O1");
}
END_TEST

START_TEST(test_compose_skips_values_the_command_did_not_set)
{
    struct mc_meta_req r;
    struct mc_meta_vals v = { .have = MC_META_F_RET_CAS, .cas = 42, .ttl = 5 };
    char out[MC_META_FLAGS_OUT_MAX];

    expect_ok(&r, MC_META_MA, "n", "t c v");
    compose(out, sizeof(out), &r, &v);
    ck_assert_str_eq(out, " c42");
}
END_TEST

START_TEST(test_compose_marks_base64_key_with_b_after_k)
{
    struct mc_meta_req r;
    struct mc_meta_vals v = { 0 };
    char out[MC_META_FLAGS_OUT_MAX];

    expect_ok(&r, MC_META_MG, "YQBiIAo=", "O1 b k");
    compose(out, sizeof(out), &r, &v);
    ck_assert_str_eq(out, " O1 kYQBiIAo= b");

    expect_ok(&r, MC_META_MG, "YQBiIAo=", "b O1");
    compose(out, sizeof(out), &r, &v);
    ck_assert_str_eq(out, " O1");
}
END_TEST

START_TEST(test_compose_appends_w_x_z_after_requested_flags)
{
    struct mc_meta_req r;
    struct mc_meta_vals v = {
        .have = MC_META_F_RET_CAS | MC_META_F_WON | MC_META_F_STALE | MC_META_F_WIN_SENT,
        .cas = 21,
    };
    char out[MC_META_FLAGS_OUT_MAX];

    expect_ok(&r, MC_META_MG, "newkey", "N30 k c");
    compose(out, sizeof(out), &r, &v);
    ck_assert_str_eq(out, " knewkey c21 W X Z");
    v.have = MC_META_F_WIN_SENT;
    compose(out, sizeof(out), &r, &v);
    ck_assert_str_eq(out, " knewkey Z");
}
END_TEST

START_TEST(test_compose_prints_extreme_numbers)
{
    struct mc_meta_req r;
    struct mc_meta_vals v = {
        .have = MC_META_F_RET_CAS | MC_META_F_RET_TTL | MC_META_F_RET_FLAGS |
                MC_META_F_RET_ACCESS | MC_META_F_RET_SIZE | MC_META_F_RET_HIT,
        .cas = UINT64_MAX, .ttl = INT64_MIN, .client_flags = UINT32_MAX,
        .last_access = 0, .size = 0, .hit_before = true,
    };
    char out[MC_META_FLAGS_OUT_MAX];

    expect_ok(&r, MC_META_MG, "k", "c t f l s h");
    compose(out, sizeof(out), &r, &v);
    ck_assert_str_eq(out, " c18446744073709551615 t-9223372036854775808 f4294967295"
                          " l0 s0 h1");
}
END_TEST

START_TEST(test_compose_reports_full_length_and_never_writes_past_cap)
{
    struct mc_meta_req r;
    struct mc_meta_vals v = { .have = MC_META_F_RET_CAS, .cas = 123 };
    char out[16];
    size_t n;

    expect_ok(&r, MC_META_MG, "foo", "c k");
    memset(out, '#', sizeof(out));
    n = mc_meta_compose_flags(out, 5, &r, &v);
    ck_assert_uint_eq(n, strlen(" c123 kfoo"));
    ck_assert(memcmp(out, " c123", 5) == 0);
    ck_assert_int_eq(out[5], '#');
    n = mc_meta_compose_flags(NULL, 0, &r, &v);
    ck_assert_uint_eq(n, strlen(" c123 kfoo"));
}
END_TEST

START_TEST(test_compose_worst_case_fits_the_documented_bound)
{
    struct mc_meta_req r;
    struct mc_meta_vals v = {
        .have = MC_META_F_RET_CAS | MC_META_F_RET_TTL | MC_META_F_RET_FLAGS |
                MC_META_F_RET_ACCESS | MC_META_F_RET_SIZE | MC_META_F_RET_HIT |
                MC_META_F_WON | MC_META_F_STALE | MC_META_F_WIN_SENT,
        .cas = UINT64_MAX, .ttl = INT64_MIN, .client_flags = UINT32_MAX,
        .last_access = INT64_MIN, .size = UINT64_MAX,
    };
    char key[MC_META_KEY_MAX + 1], args[128];
    char out[MC_META_FLAGS_OUT_MAX + 1];
    size_t n;

    memset(key, 'A', MC_META_KEY_MAX);  /* valid base64, decodes to 187 bytes */
    key[248] = '\0';
    snprintf(args, sizeof(args), "b c t f l s h k O%s", "0123456789abcdef0123456789abcdef");
    expect_ok(&r, MC_META_MG, key, args);
    memset(key, 'a', MC_META_KEY_MAX);
    key[MC_META_KEY_MAX] = '\0';
    expect_ok(&r, MC_META_MG, key, args + 2);   /* same flags, plain 250-byte key */
    r.flags |= MC_META_F_BASE64;                /* and pretend it was base64 */
    n = mc_meta_compose_flags(out, sizeof(out), &r, &v);
    ck_assert_uint_le(n, MC_META_FLAGS_OUT_MAX);
}
END_TEST

static Suite *mc_meta_suite(void)
{
    Suite *s = suite_create("mc_meta");
    TCase *b64 = tcase_create("base64");
    TCase *p = tcase_create("parse");
    TCase *c = tcase_create("compose");

    tcase_add_test(b64, test_base64_encode_matches_rfc4648_vectors);
    tcase_add_test(b64, test_base64_decode_matches_rfc4648_vectors);
    tcase_add_test(b64, test_base64_roundtrips_every_byte_value_at_every_length);
    tcase_add_test(b64, test_base64_decode_rejects_malformed_input);
    tcase_add_test(b64, test_base64_decode_never_writes_past_cap);
    tcase_add_test(b64, test_base64_encode_writes_nothing_when_cap_too_small);
    suite_add_tcase(s, b64);

    tcase_add_test(p, test_each_command_accepts_exactly_the_known_flags);
    tcase_add_test(p, test_flag_that_does_not_apply_is_checked_then_ignored);
    tcase_add_test(p, test_non_letter_flag_is_invalid);
    tcase_add_test(p, test_mg_records_flags_and_return_order);
    tcase_add_test(p, test_token_flags_store_their_values);
    tcase_add_test(p, test_defaults_when_flags_absent);
    tcase_add_test(p, test_tokenless_flags_ignore_glued_characters);
    tcase_add_test(p, test_duplicate_flag_is_rejected_for_every_command);
    tcase_add_test(p, test_first_error_left_to_right_wins);
    tcase_add_test(p, test_numeric_tokens_must_be_valid_numbers);
    tcase_add_test(p, test_opaque_is_limited_to_32_bytes);
    tcase_add_test(p, test_ms_datalen_comes_first_and_must_be_a_number);
    tcase_add_test(p, test_ms_flag_error_still_reports_datalen_to_swallow);
    tcase_add_test(p, test_ms_mode_characters_map_to_modes);
    tcase_add_test(p, test_ma_mode_characters_map_to_modes);
    tcase_add_test(p, test_mode_is_checked_after_all_flags_like_memcached);
    tcase_add_test(p, test_base64_key_is_decoded_into_caller_buffer);
    tcase_add_test(p, test_invalid_base64_key_is_rejected);
    tcase_add_test(p, test_flag_errors_come_before_key_decode_errors);
    tcase_add_test(p, test_plain_key_with_control_bytes_is_accepted);
    tcase_add_test(p, test_key_is_1_to_250_bytes);
    tcase_add_test(p, test_longest_base64_key_248_chars_decodes_to_186_bytes);
    tcase_add_test(p, test_spaces_and_trailing_cr_are_tolerated);
    tcase_add_test(p, test_proxy_hints_p_and_l_are_ignored);
    tcase_add_test(p, test_mn_ignores_the_rest_of_its_line);
    tcase_add_test(p, test_unknown_command_value_is_invalid);
    tcase_add_test(p, test_error_strings_match_memcached_1_6);
    suite_add_tcase(s, p);

    tcase_add_test(c, test_compose_returns_flags_in_request_order);
    tcase_add_test(c, test_compose_on_miss_echoes_only_key_and_opaque);
    tcase_add_test(c, test_compose_skips_values_the_command_did_not_set);
    tcase_add_test(c, test_compose_marks_base64_key_with_b_after_k);
    tcase_add_test(c, test_compose_appends_w_x_z_after_requested_flags);
    tcase_add_test(c, test_compose_prints_extreme_numbers);
    tcase_add_test(c, test_compose_reports_full_length_and_never_writes_past_cap);
    tcase_add_test(c, test_compose_worst_case_fits_the_documented_bound);
    suite_add_tcase(s, c);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(mc_meta_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
