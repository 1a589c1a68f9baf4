/*
 * Unit tests for the binary protocol decoder and response header encoder
 * (mc_bin). Requests are built byte by byte here, independently of the
 * code under test; shapes that memcached 1.6.18 rejects are rejected here.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/mc_bin.h"

#define MAX_BODY (1024 * 1024)

/* Build a request; bodylen < 0 means extlen + keylen + vlen. Returns its size. */
static size_t build(uint8_t *out, uint8_t magic, uint8_t op, const void *ext, uint8_t extlen,
                    const char *key, uint16_t keylen, const void *val, uint32_t vlen,
                    int64_t bodylen, uint32_t opaque, uint64_t cas)
{
    uint32_t bl = bodylen < 0 ? (uint32_t)(extlen + keylen + vlen) : (uint32_t)bodylen;
    int i;

    out[0] = magic;
    out[1] = op;
    out[2] = (uint8_t)(keylen >> 8);
    out[3] = (uint8_t)keylen;
    out[4] = extlen;
    out[5] = 0;
    out[6] = 0x12;          /* vbucket, ignored */
    out[7] = 0x34;
    for (i = 0; i < 4; i++) {
        out[8 + i] = (uint8_t)(bl >> (24 - 8 * i));
        out[12 + i] = (uint8_t)(opaque >> (24 - 8 * i));
    }
    for (i = 0; i < 8; i++) {
        out[16 + i] = (uint8_t)(cas >> (56 - 8 * i));
    }
    if (extlen) {
        memcpy(out + 24, ext, extlen);
    }
    if (keylen) {
        memcpy(out + 24 + extlen, key, keylen);
    }
    if (vlen) {
        memcpy(out + 24 + extlen + keylen, val, vlen);
    }
    return 24 + (size_t)extlen + keylen + vlen;
}

/* A valid request of each opcode, with distinctive extras. */
struct sample {
    uint8_t op;
    uint8_t extlen;
    uint8_t ext[20];
    const char *key;
    const char *val;
    /* expected decoded extras */
    uint32_t flags, exptime, verbosity;
    uint64_t delta, initial;
};

#define STORE_EXT { 0xde, 0xad, 0xbe, 0xef, 0x00, 0x00, 0x0e, 0x10 }
#define ARITH_EXT { 0, 0, 0, 0, 0, 0, 0, 7,  0x01, 0, 0, 0, 0, 0, 0, 2,  0xff, 0xff, 0xff, 0xff }
#define EXP_EXT   { 0x00, 0x01, 0x51, 0x80 }

static const struct sample samples[] = {
    { MC_BIN_GET, 0, {0}, "k1", "", 0, 0, 0, 0, 0 },
    { MC_BIN_GETQ, 0, {0}, "k1", "", 0, 0, 0, 0, 0 },
    { MC_BIN_GETK, 0, {0}, "k1", "", 0, 0, 0, 0, 0 },
    { MC_BIN_GETKQ, 0, {0}, "k1", "", 0, 0, 0, 0, 0 },
    { MC_BIN_SET, 8, STORE_EXT, "key", "value", 0xdeadbeef, 3600, 0, 0, 0 },
    { MC_BIN_SETQ, 8, STORE_EXT, "key", "value", 0xdeadbeef, 3600, 0, 0, 0 },
    { MC_BIN_ADD, 8, STORE_EXT, "key", "", 0xdeadbeef, 3600, 0, 0, 0 },
    { MC_BIN_ADDQ, 8, STORE_EXT, "key", "v", 0xdeadbeef, 3600, 0, 0, 0 },
    { MC_BIN_REPLACE, 8, STORE_EXT, "key", "value", 0xdeadbeef, 3600, 0, 0, 0 },
    { MC_BIN_REPLACEQ, 8, STORE_EXT, "key", "value", 0xdeadbeef, 3600, 0, 0, 0 },
    { MC_BIN_APPEND, 0, {0}, "key", "tail", 0, 0, 0, 0, 0 },
    { MC_BIN_APPENDQ, 0, {0}, "key", "tail", 0, 0, 0, 0, 0 },
    { MC_BIN_PREPEND, 0, {0}, "key", "head", 0, 0, 0, 0, 0 },
    { MC_BIN_PREPENDQ, 0, {0}, "key", "head", 0, 0, 0, 0, 0 },
    { MC_BIN_DELETE, 0, {0}, "key", "", 0, 0, 0, 0, 0 },
    { MC_BIN_DELETEQ, 0, {0}, "key", "", 0, 0, 0, 0, 0 },
    { MC_BIN_INCREMENT, 20, ARITH_EXT, "n", "", 0, 0xffffffff, 0, 7, 0x0100000000000002ULL },
    { MC_BIN_INCREMENTQ, 20, ARITH_EXT, "n", "", 0, 0xffffffff, 0, 7, 0x0100000000000002ULL },
    { MC_BIN_DECREMENT, 20, ARITH_EXT, "n", "", 0, 0xffffffff, 0, 7, 0x0100000000000002ULL },
    { MC_BIN_DECREMENTQ, 20, ARITH_EXT, "n", "", 0, 0xffffffff, 0, 7, 0x0100000000000002ULL },
    { MC_BIN_QUIT, 0, {0}, "", "", 0, 0, 0, 0, 0 },
    { MC_BIN_QUITQ, 0, {0}, "", "", 0, 0, 0, 0, 0 },
    { MC_BIN_FLUSH, 4, EXP_EXT, "", "", 0, 86400, 0, 0, 0 },
    { MC_BIN_FLUSH, 0, {0}, "", "", 0, 0, 0, 0, 0 },
    { MC_BIN_FLUSHQ, 4, EXP_EXT, "", "", 0, 86400, 0, 0, 0 },
    { MC_BIN_FLUSHQ, 0, {0}, "", "", 0, 0, 0, 0, 0 },
    { MC_BIN_NOOP, 0, {0}, "", "", 0, 0, 0, 0, 0 },
    { MC_BIN_VERSION, 0, {0}, "", "", 0, 0, 0, 0, 0 },
    { MC_BIN_STAT, 0, {0}, "", "", 0, 0, 0, 0, 0 },
    { MC_BIN_STAT, 0, {0}, "settings", "", 0, 0, 0, 0, 0 },
    { MC_BIN_VERBOSITY, 4, { 0, 0, 0, 2 }, "", "", 0, 0, 2, 0, 0 },
    { MC_BIN_TOUCH, 4, EXP_EXT, "key", "", 0, 86400, 0, 0, 0 },
    { MC_BIN_GAT, 4, EXP_EXT, "key", "", 0, 86400, 0, 0, 0 },
    { MC_BIN_GATQ, 4, EXP_EXT, "key", "", 0, 86400, 0, 0, 0 },
    { MC_BIN_GATK, 4, EXP_EXT, "key", "", 0, 86400, 0, 0, 0 },
    { MC_BIN_GATKQ, 4, EXP_EXT, "key", "", 0, 86400, 0, 0, 0 },
    { MC_BIN_SASL_LIST_MECHS, 0, {0}, "", "", 0, 0, 0, 0, 0 },
    { MC_BIN_SASL_AUTH, 0, {0}, "PLAIN", "\0u\0p", 0, 0, 0, 0, 0 },
    { MC_BIN_SASL_STEP, 0, {0}, "PLAIN", "x", 0, 0, 0, 0, 0 },
};
#define NSAMPLES (sizeof(samples) / sizeof(samples[0]))

static size_t build_sample(uint8_t *out, const struct sample *s)
{
    return build(out, 0x80, s->op, s->ext, s->extlen, s->key, (uint16_t)strlen(s->key),
                 s->val, (uint32_t)strlen(s->val), -1, 0xcafef00d, 0x0102030405060708ULL);
}

START_TEST(test_every_opcode_decodes_header_extras_key_and_value)
{
    size_t i;
    for (i = 0; i < NSAMPLES; i++) {
        const struct sample *s = &samples[i];
        uint8_t buf[128];
        size_t len = build_sample(buf, s), used = 0;
        size_t klen = strlen(s->key), vlen = strlen(s->val);
        struct mc_bin_req r;
        enum parse_status st = mc_bin_parse(&r, buf, len, MAX_BODY, &used);

        ck_assert_msg(st == PARSE_OK, "opcode 0x%02x: status %d", s->op, st);
        ck_assert_uint_eq(used, len);
        ck_assert_uint_eq(r.opcode, s->op);
        ck_assert_uint_eq(r.extlen, s->extlen);
        ck_assert_uint_eq(r.keylen, klen);
        ck_assert_uint_eq(r.bodylen, s->extlen + klen + vlen);
        ck_assert_uint_eq(r.vlen, vlen);
        ck_assert_uint_eq(r.opaque, 0xcafef00d);
        ck_assert_uint_eq(r.cas, 0x0102030405060708ULL);
        ck_assert_uint_eq(r.vbucket, 0x1234);
        ck_assert_uint_eq(r.flags, s->flags);
        ck_assert_uint_eq(r.exptime, s->exptime);
        ck_assert_uint_eq(r.delta, s->delta);
        ck_assert_uint_eq(r.initial, s->initial);
        ck_assert_uint_eq(r.verbosity, s->verbosity);
        if (klen) {
            ck_assert(r.key == buf + 24 + s->extlen);
            ck_assert(memcmp(r.key, s->key, klen) == 0);
        } else {
            ck_assert(r.key == NULL);
        }
        ck_assert(r.value == buf + 24 + s->extlen + klen);
        ck_assert(memcmp(r.value, s->val, vlen) == 0);
    }
}
END_TEST

START_TEST(test_input_split_at_every_offset_needs_more_until_complete)
{
    size_t i;
    for (i = 0; i < NSAMPLES; i++) {
        uint8_t buf[128];
        size_t len = build_sample(buf, &samples[i]), cut;
        size_t prefix = 24 + samples[i].extlen + strlen(samples[i].key);

        for (cut = 0; cut <= len; cut++) {
            /* a fresh copy of exactly cut bytes, so ASan sees any overread */
            uint8_t *part = malloc(cut ? cut : 1);
            struct mc_bin_req r;
            size_t used = 99;
            enum parse_status st;

            memcpy(part, buf, cut);
            st = mc_bin_parse(&r, part, cut, MAX_BODY, &used);
            ck_assert_int_eq(st, cut == len ? PARSE_OK : PARSE_AGAIN);
            ck_assert_uint_eq(used, cut == len ? len : 0);
            st = mc_bin_parse_prefix(&r, part, cut, MAX_BODY, &used);
            ck_assert_int_eq(st, cut >= prefix ? PARSE_OK : PARSE_AGAIN);
            ck_assert_uint_eq(used, cut >= prefix ? prefix : 0);
            st = mc_bin_parse_header(&r, part, cut, MAX_BODY);
            ck_assert_int_eq(st, cut >= 24 ? PARSE_OK : PARSE_AGAIN);
            free(part);
        }
    }
}
END_TEST

START_TEST(test_prefix_parse_leaves_value_for_streaming)
{
    uint8_t buf[64];
    static const uint8_t ext[8] = STORE_EXT;
    struct mc_bin_req r;
    size_t used;

    /* header says 1000 value bytes; only extras and key are here */
    build(buf, 0x80, MC_BIN_SET, ext, 8, "big", 3, NULL, 0, 8 + 3 + 1000, 1, 0);
    ck_assert_int_eq(mc_bin_parse_prefix(&r, buf, 24 + 8 + 3, MAX_BODY, &used), PARSE_OK);
    ck_assert_uint_eq(used, 35);
    ck_assert_uint_eq(r.vlen, 1000);
    ck_assert(r.value == NULL);
    ck_assert(memcmp(r.key, "big", 3) == 0);
    ck_assert_uint_eq(r.flags, 0xdeadbeef);
    ck_assert_uint_eq(r.exptime, 3600);
    ck_assert_int_eq(mc_bin_parse(&r, buf, 24 + 8 + 3, MAX_BODY, &used), PARSE_AGAIN);
}
END_TEST

START_TEST(test_pipelined_requests_parse_one_at_a_time)
{
    uint8_t buf[256];
    size_t a = build_sample(buf, &samples[4]);          /* set */
    size_t b = build_sample(buf + a, &samples[26]);     /* noop */
    struct mc_bin_req r;
    size_t used;

    ck_assert_int_eq(mc_bin_parse(&r, buf, a + b, MAX_BODY, &used), PARSE_OK);
    ck_assert_uint_eq(used, a);
    ck_assert_uint_eq(r.opcode, MC_BIN_SET);
    ck_assert_int_eq(mc_bin_parse(&r, buf + a, b, MAX_BODY, &used), PARSE_OK);
    ck_assert_uint_eq(used, b);
    ck_assert_uint_eq(r.opcode, MC_BIN_NOOP);
}
END_TEST

START_TEST(test_bad_magic_is_fatal)
{
    static const uint8_t magics[] = { 0x81, 0x00, 'g', 0xff };
    size_t i;
    for (i = 0; i < sizeof(magics); i++) {
        uint8_t buf[32];
        struct mc_bin_req r;
        size_t used = 99;
        build(buf, magics[i], MC_BIN_NOOP, NULL, 0, NULL, 0, NULL, 0, -1, 0, 0);
        ck_assert_int_eq(mc_bin_parse(&r, buf, 24, MAX_BODY, &used), PARSE_INVALID);
        ck_assert(r.fatal);
        ck_assert_uint_eq(used, 0);
    }
}
END_TEST

START_TEST(test_key_and_extras_longer_than_body_is_fatal)
{
    uint8_t buf[64];
    static const uint8_t ext[8] = STORE_EXT;
    struct mc_bin_req r;
    size_t used = 99;

    build(buf, 0x80, MC_BIN_GET, NULL, 0, "kk", 2, NULL, 0, 1, 0, 0);
    ck_assert_int_eq(mc_bin_parse(&r, buf, 26, MAX_BODY, &used), PARSE_INVALID);
    ck_assert(r.fatal);
    ck_assert_uint_eq(used, 0);

    build(buf, 0x80, MC_BIN_SET, ext, 8, "k", 1, NULL, 0, 8, 0, 0);
    ck_assert_int_eq(mc_bin_parse_header(&r, buf, 24, MAX_BODY), PARSE_INVALID);
    ck_assert(r.fatal);
}
END_TEST

/* Parse buf (header only present) and expect a non-fatal EINVAL. */
static void expect_einval(const uint8_t *buf, const char *what)
{
    struct mc_bin_req r;
    size_t used = 99;
    ck_assert_msg(mc_bin_parse(&r, buf, 24, MAX_BODY, &used) == PARSE_INVALID, "%s", what);
    ck_assert_msg(!r.fatal, "%s", what);
    ck_assert_uint_eq(r.status, MC_BIN_EINVAL);
    ck_assert_uint_eq(used, 24);
}

START_TEST(test_wrong_extras_length_for_opcode_is_einval)
{
    static const uint8_t sizes[] = { 0, 1, 4, 8, 12, 20, 24 };
    uint8_t ext[24] = { 0 };
    size_t i, j;

    for (i = 0; i < NSAMPLES; i++) {
        for (j = 0; j < sizeof(sizes); j++) {
            const struct sample *s = &samples[i];
            uint8_t buf[128];
            bool flush = s->op == MC_BIN_FLUSH || s->op == MC_BIN_FLUSHQ;

            if (sizes[j] == s->extlen || (flush && (sizes[j] == 0 || sizes[j] == 4))) {
                continue;
            }
            build(buf, 0x80, s->op, ext, sizes[j], s->key, (uint16_t)strlen(s->key),
                  s->val, (uint32_t)strlen(s->val), -1, 0, 0);
            expect_einval(buf, mc_bin_opcode_name(s->op));
        }
    }
}
END_TEST

START_TEST(test_key_required_or_forbidden_per_opcode)
{
    static const uint8_t need_key[] = {
        MC_BIN_GET, MC_BIN_GETQ, MC_BIN_GETK, MC_BIN_GETKQ, MC_BIN_SET, MC_BIN_SETQ,
        MC_BIN_ADD, MC_BIN_ADDQ, MC_BIN_REPLACE, MC_BIN_REPLACEQ, MC_BIN_APPEND,
        MC_BIN_APPENDQ, MC_BIN_PREPEND, MC_BIN_PREPENDQ, MC_BIN_DELETE, MC_BIN_DELETEQ,
        MC_BIN_INCREMENT, MC_BIN_INCREMENTQ, MC_BIN_DECREMENT, MC_BIN_DECREMENTQ,
        MC_BIN_TOUCH, MC_BIN_GAT, MC_BIN_GATQ, MC_BIN_GATK, MC_BIN_GATKQ, MC_BIN_SASL_AUTH,
        MC_BIN_SASL_STEP,
    };
    static const uint8_t no_key[] = {
        MC_BIN_QUIT, MC_BIN_QUITQ, MC_BIN_FLUSH, MC_BIN_FLUSHQ, MC_BIN_NOOP,
        MC_BIN_VERSION, MC_BIN_VERBOSITY, MC_BIN_SASL_LIST_MECHS,
    };
    uint8_t ext[20] = { 0 }, buf[64];
    size_t i;

    for (i = 0; i < NSAMPLES; i++) {
        const struct sample *s = &samples[i];
        if (memchr(need_key, s->op, sizeof(need_key))) {
            build(buf, 0x80, s->op, ext, s->extlen, NULL, 0, NULL, 0, -1, 0, 0);
            expect_einval(buf, mc_bin_opcode_name(s->op));
        }
        if (memchr(no_key, s->op, sizeof(no_key))) {
            build(buf, 0x80, s->op, ext, s->extlen, "k", 1, NULL, 0, -1, 0, 0);
            expect_einval(buf, mc_bin_opcode_name(s->op));
        }
    }
}
END_TEST

START_TEST(test_value_where_none_is_allowed_is_einval)
{
    static const uint8_t no_value[] = {
        MC_BIN_GET, MC_BIN_GETQ, MC_BIN_GETK, MC_BIN_GETKQ, MC_BIN_DELETE, MC_BIN_DELETEQ,
        MC_BIN_INCREMENT, MC_BIN_DECREMENTQ, MC_BIN_QUIT, MC_BIN_FLUSH, MC_BIN_NOOP,
        MC_BIN_VERSION, MC_BIN_STAT, MC_BIN_VERBOSITY, MC_BIN_TOUCH, MC_BIN_GAT,
        MC_BIN_GATKQ, MC_BIN_SASL_LIST_MECHS,
    };
    size_t i;

    for (i = 0; i < NSAMPLES; i++) {
        const struct sample *s = &samples[i];
        uint8_t buf[128];
        if (!memchr(no_value, s->op, sizeof(no_value))) {
            continue;
        }
        build(buf, 0x80, s->op, s->ext, s->extlen, s->key, (uint16_t)strlen(s->key),
              "x", 1, -1, 0, 0);
        expect_einval(buf, mc_bin_opcode_name(s->op));
    }
}
END_TEST

START_TEST(test_key_longer_than_250_is_einval)
{
    static uint8_t buf[24 + 300];
    char key[251];
    struct mc_bin_req r;
    size_t used;

    memset(key, 'k', sizeof(key));
    build(buf, 0x80, MC_BIN_GET, NULL, 0, key, 250, NULL, 0, -1, 0, 0);
    ck_assert_int_eq(mc_bin_parse(&r, buf, 24 + 250, MAX_BODY, &used), PARSE_OK);
    build(buf, 0x80, MC_BIN_GET, NULL, 0, key, 251, NULL, 0, -1, 0, 0);
    expect_einval(buf, "251-byte key");
}
END_TEST

START_TEST(test_unknown_opcode_is_reported_with_body_to_skip)
{
    static const uint8_t ops[] = { 0x1f, 0x25, 0x30, 0x3d, 0xfe, 0xff };
    size_t i;
    for (i = 0; i < sizeof(ops); i++) {
        uint8_t buf[32];
        struct mc_bin_req r;
        size_t used = 99;
        build(buf, 0x80, ops[i], NULL, 0, NULL, 0, "xyz", 3, -1, 7, 0);
        ck_assert_int_eq(mc_bin_parse(&r, buf, 24, MAX_BODY, &used), PARSE_UNKNOWN);
        ck_assert_uint_eq(r.status, MC_BIN_UNKNOWN_COMMAND);
        ck_assert(!r.fatal);
        ck_assert_uint_eq(used, 24);
        ck_assert_uint_eq(r.bodylen, 3);
        ck_assert_uint_eq(r.opaque, 7);
        ck_assert(!mc_bin_opcode_known(ops[i]));
        ck_assert_str_eq(mc_bin_opcode_name(ops[i]), "unknown");
    }
}
END_TEST

START_TEST(test_body_over_caller_limit_is_too_long_from_header_alone)
{
    uint8_t buf[40];
    static const uint8_t ext[8] = STORE_EXT;
    struct mc_bin_req r;
    size_t used = 99;

    build(buf, 0x80, MC_BIN_SET, ext, 8, "k", 1, NULL, 0, 0xffffffffLL, 0, 0);
    ck_assert_int_eq(mc_bin_parse(&r, buf, 24, MAX_BODY, &used), PARSE_TOO_LONG);
    ck_assert_uint_eq(used, 24);
    ck_assert_uint_eq(r.status, MC_BIN_E2BIG);
    ck_assert_uint_eq(r.bodylen, 0xffffffffu);
    ck_assert(!r.fatal);

    build(buf, 0x80, MC_BIN_SET, ext, 8, "k", 1, NULL, 0, MAX_BODY + 1, 0, 0);
    ck_assert_int_eq(mc_bin_parse_header(&r, buf, 24, MAX_BODY), PARSE_TOO_LONG);
    build(buf, 0x80, MC_BIN_SET, ext, 8, "k", 1, NULL, 0, MAX_BODY, 0, 0);
    ck_assert_int_eq(mc_bin_parse_header(&r, buf, 24, MAX_BODY), PARSE_OK);
    ck_assert_int_eq(mc_bin_parse(&r, buf, 33, MAX_BODY, &used), PARSE_AGAIN);
}
END_TEST

START_TEST(test_nonzero_datatype_is_accepted_like_memcached)
{
    uint8_t buf[32];
    struct mc_bin_req r;
    size_t used;

    build(buf, 0x80, MC_BIN_NOOP, NULL, 0, NULL, 0, NULL, 0, -1, 0, 0);
    buf[5] = 0x01;
    ck_assert_int_eq(mc_bin_parse(&r, buf, 24, MAX_BODY, &used), PARSE_OK);
    ck_assert_uint_eq(r.datatype, 1);
}
END_TEST

START_TEST(test_write_header_is_byte_exact)
{
    static const uint8_t want[24] = {
        0x81, 0x0c, 0x00, 0x03, 0x04, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x01, 0x07, 0xde, 0xad, 0xbe, 0xef,
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
    };
    static const uint8_t want_err[24] = {
        0x81, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    };
    uint8_t out[24];

    /* GetK hit: 4 bytes of flags, 3-byte key, 256-byte value */
    mc_bin_write_header(out, MC_BIN_GETK, MC_BIN_SUCCESS, 4, 3, 256, 0xdeadbeef,
                        0x0102030405060708ULL);
    ck_assert(memcmp(out, want, 24) == 0);
    /* Get miss: status 1 and "Not found" as the body */
    mc_bin_write_header(out, MC_BIN_GET, MC_BIN_KEY_ENOENT, 0, 0,
                        (uint32_t)strlen(mc_bin_status_str(MC_BIN_KEY_ENOENT)), 0, 0);
    ck_assert(memcmp(out, want_err, 24) == 0);
    mc_bin_write_header(out, 0xff, 0xffff, 0xff, 0xffff, 0x12345678, 0xffffffff, UINT64_MAX);
    ck_assert_uint_eq(out[6], 0xff);
    ck_assert_uint_eq(out[7], 0xff);
    /* body length 0xff + 0xffff + 0x12345678 = 0x12355776 */
    ck_assert_uint_eq(out[8], 0x12);
    ck_assert_uint_eq(out[9], 0x35);
    ck_assert_uint_eq(out[10], 0x57);
    ck_assert_uint_eq(out[11], 0x76);
}
END_TEST

START_TEST(test_quiet_opcodes_and_their_loud_forms)
{
    static const uint8_t pairs[][2] = {
        { MC_BIN_GETQ, MC_BIN_GET }, { MC_BIN_GETKQ, MC_BIN_GETK },
        { MC_BIN_SETQ, MC_BIN_SET }, { MC_BIN_ADDQ, MC_BIN_ADD },
        { MC_BIN_REPLACEQ, MC_BIN_REPLACE }, { MC_BIN_DELETEQ, MC_BIN_DELETE },
        { MC_BIN_INCREMENTQ, MC_BIN_INCREMENT }, { MC_BIN_DECREMENTQ, MC_BIN_DECREMENT },
        { MC_BIN_QUITQ, MC_BIN_QUIT }, { MC_BIN_FLUSHQ, MC_BIN_FLUSH },
        { MC_BIN_APPENDQ, MC_BIN_APPEND }, { MC_BIN_PREPENDQ, MC_BIN_PREPEND },
        { MC_BIN_GATQ, MC_BIN_GAT }, { MC_BIN_GATKQ, MC_BIN_GATK },
    };
    unsigned op, quiet = 0;
    size_t i;

    for (i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        ck_assert(mc_bin_opcode_is_quiet(pairs[i][0]));
        ck_assert(!mc_bin_opcode_is_quiet(pairs[i][1]));
        ck_assert_uint_eq(mc_bin_opcode_loud(pairs[i][0]), pairs[i][1]);
        ck_assert_uint_eq(mc_bin_opcode_loud(pairs[i][1]), pairs[i][1]);
    }
    for (op = 0; op < 256; op++) {
        quiet += mc_bin_opcode_is_quiet((uint8_t)op);
    }
    ck_assert_uint_eq(quiet, sizeof(pairs) / sizeof(pairs[0]));
    ck_assert_uint_eq(mc_bin_opcode_loud(0xee), 0xee);
}
END_TEST

START_TEST(test_opcode_names_and_key_returning_opcodes)
{
    unsigned op, known = 0, keyed = 0;

    ck_assert_str_eq(mc_bin_opcode_name(MC_BIN_GET), "get");
    ck_assert_str_eq(mc_bin_opcode_name(MC_BIN_GATKQ), "gatkq");
    ck_assert_str_eq(mc_bin_opcode_name(MC_BIN_SASL_AUTH), "sasl_auth");
    for (op = 0; op < 256; op++) {
        known += mc_bin_opcode_known((uint8_t)op);
        keyed += mc_bin_opcode_returns_key((uint8_t)op);
    }
    ck_assert_uint_eq(known, 0x1f + 5);     /* 0x00..0x1e and 0x20..0x24 */
    ck_assert_uint_eq(keyed, 4);
    ck_assert(mc_bin_opcode_returns_key(MC_BIN_GETKQ));
    ck_assert(mc_bin_opcode_returns_key(MC_BIN_GATK));
    ck_assert(!mc_bin_opcode_returns_key(MC_BIN_GET));
}
END_TEST

START_TEST(test_status_strings_match_memcached_error_bodies)
{
    ck_assert_str_eq(mc_bin_status_str(MC_BIN_SUCCESS), "");
    ck_assert_str_eq(mc_bin_status_str(MC_BIN_KEY_ENOENT), "Not found");
    ck_assert_str_eq(mc_bin_status_str(MC_BIN_KEY_EEXISTS), "Data exists for key.");
    ck_assert_str_eq(mc_bin_status_str(MC_BIN_E2BIG), "Too large.");
    ck_assert_str_eq(mc_bin_status_str(MC_BIN_EINVAL), "Invalid arguments");
    ck_assert_str_eq(mc_bin_status_str(MC_BIN_NOT_STORED), "Not stored.");
    ck_assert_str_eq(mc_bin_status_str(MC_BIN_DELTA_BADVAL),
                     "Non-numeric server-side value for incr or decr");
    ck_assert_str_eq(mc_bin_status_str(MC_BIN_UNKNOWN_COMMAND), "Unknown command");
    ck_assert_str_eq(mc_bin_status_str(MC_BIN_ENOMEM), "Out of memory");
    ck_assert_str_eq(mc_bin_status_str(0x7777), "Unknown error");
}
END_TEST

static Suite *mc_bin_suite(void)
{
    Suite *s = suite_create("mc_bin");
    TCase *p = tcase_create("parse");
    TCase *e = tcase_create("errors");
    TCase *w = tcase_create("compose");

    tcase_add_test(p, test_every_opcode_decodes_header_extras_key_and_value);
    tcase_add_test(p, test_input_split_at_every_offset_needs_more_until_complete);
    tcase_add_test(p, test_prefix_parse_leaves_value_for_streaming);
    tcase_add_test(p, test_pipelined_requests_parse_one_at_a_time);
    tcase_add_test(p, test_nonzero_datatype_is_accepted_like_memcached);
    suite_add_tcase(s, p);

    tcase_add_test(e, test_bad_magic_is_fatal);
    tcase_add_test(e, test_key_and_extras_longer_than_body_is_fatal);
    tcase_add_test(e, test_wrong_extras_length_for_opcode_is_einval);
    tcase_add_test(e, test_key_required_or_forbidden_per_opcode);
    tcase_add_test(e, test_value_where_none_is_allowed_is_einval);
    tcase_add_test(e, test_key_longer_than_250_is_einval);
    tcase_add_test(e, test_unknown_opcode_is_reported_with_body_to_skip);
    tcase_add_test(e, test_body_over_caller_limit_is_too_long_from_header_alone);
    suite_add_tcase(s, e);

    tcase_add_test(w, test_write_header_is_byte_exact);
    tcase_add_test(w, test_quiet_opcodes_and_their_loud_forms);
    tcase_add_test(w, test_opcode_names_and_key_returning_opcodes);
    tcase_add_test(w, test_status_strings_match_memcached_error_bodies);
    suite_add_tcase(s, w);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(mc_bin_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
