/*
 * libFuzzer target: the memcached binary protocol decoder (proto/mc_bin).
 *
 * The input is a stream of request packets. Each is decoded three ways, as
 * the header alone, as header + extras + key (how the command layer streams
 * a large value) and whole, on every prefix length that matters (24 bytes,
 * the prefix, the whole packet, the whole input), and the three must agree:
 * same status at the same point, same lengths, key and value inside the
 * packet. Then the stream moves on the way cmd/proto_mc_bin.c does: past a
 * good packet, past the body of a refused one, and it stops where framing
 * is lost. The response header writer and the name tables get the decoded
 * fields too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/mc_bin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

/* Bodies larger than this are refused as the server refuses values over -I. */
#define FUZZ_MAX_BODY (64 * 1024)

static bool inside(const uint8_t *p, size_t n, const uint8_t *base, size_t len)
{
    return n == 0 || (p >= base && p + n <= base + len);
}

static void same_request(const struct mc_bin_req *a, const struct mc_bin_req *b)
{
    CHECK(a->opcode == b->opcode && a->extlen == b->extlen && a->keylen == b->keylen);
    CHECK(a->bodylen == b->bodylen && a->opaque == b->opaque && a->cas == b->cas);
    CHECK(a->vlen == b->vlen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data;
    size_t n = size;
    while (n > 0) {
        struct mc_bin_req h, pre, whole;
        size_t used_pre = 7, used_whole = 7;
        enum parse_status hs = mc_bin_parse_header(&h, p, n, FUZZ_MAX_BODY);
        enum parse_status ps = mc_bin_parse_prefix(&pre, p, n, FUZZ_MAX_BODY, &used_pre);
        enum parse_status ws = mc_bin_parse(&whole, p, n, FUZZ_MAX_BODY, &used_whole);
        if (hs == PARSE_AGAIN) {
            CHECK(n < MC_BIN_HEADER_LEN);
            CHECK(ps == PARSE_AGAIN && ws == PARSE_AGAIN);
            CHECK(used_pre == 0 && used_whole == 0);
            break;
        }
        if (hs != PARSE_OK) {
            /* Refused on the header: all three say so at once. */
            CHECK(ps == hs && ws == hs);
            CHECK(pre.fatal == h.fatal && whole.fatal == h.fatal);
            CHECK(h.status == pre.status && h.status == whole.status);
            CHECK(mc_bin_status_str(h.status) != NULL);
            if (h.fatal) {
                CHECK(used_pre == 0 && used_whole == 0);
                break;   /* framing lost: the server closes */
            }
            CHECK(used_pre == MC_BIN_HEADER_LEN && used_whole == MC_BIN_HEADER_LEN);
            if (hs == PARSE_TOO_LONG)
                CHECK(h.bodylen > FUZZ_MAX_BODY);
            /* The body is skipped (memcached closes after an invalid one). */
            size_t skip = MC_BIN_HEADER_LEN + (size_t)h.bodylen;
            if (skip > n)
                break;
            p += skip;
            n -= skip;
            continue;
        }
        CHECK(h.bodylen <= FUZZ_MAX_BODY);
        CHECK((size_t)h.extlen + h.keylen + h.vlen == h.bodylen);
        CHECK(h.keylen <= MC_BIN_KEY_MAX);
        CHECK(mc_bin_opcode_known(h.opcode));
        size_t prefix = MC_BIN_HEADER_LEN + (size_t)h.extlen + h.keylen;
        size_t total = MC_BIN_HEADER_LEN + (size_t)h.bodylen;
        if (n < prefix) {
            CHECK(ps == PARSE_AGAIN && ws == PARSE_AGAIN);
            break;
        }
        CHECK(ps == PARSE_OK);
        same_request(&h, &pre);
        CHECK(used_pre == prefix);
        CHECK(pre.value == NULL);
        CHECK(inside(pre.key, pre.keylen, p, prefix));
        if (n < total) {
            CHECK(ws == PARSE_AGAIN && used_whole == 0);
            break;
        }
        CHECK(ws == PARSE_OK);
        same_request(&h, &whole);
        CHECK(used_whole == total);
        CHECK(inside(whole.key, whole.keylen, p, total));
        CHECK(inside(whole.value, whole.vlen, p, total));
        CHECK(whole.flags == pre.flags && whole.exptime == pre.exptime);
        CHECK(whole.delta == pre.delta && whole.initial == pre.initial);

        /* A response to it, and the names a log line would use. */
        uint8_t out[MC_BIN_HEADER_LEN];
        uint8_t loud = mc_bin_opcode_loud(whole.opcode);
        CHECK(mc_bin_opcode_known(loud));
        CHECK(!mc_bin_opcode_is_quiet(loud));
        (void)mc_bin_opcode_returns_key(whole.opcode);
        CHECK(mc_bin_opcode_name(whole.opcode) != NULL);
        mc_bin_write_header(out, whole.opcode, MC_BIN_SUCCESS, whole.extlen, whole.keylen,
                            whole.vlen, whole.opaque, whole.cas);
        CHECK(out[0] == MC_BIN_RES_MAGIC && out[1] == whole.opcode);
        CHECK(((uint32_t)out[8] << 24 | (uint32_t)out[9] << 16 | (uint32_t)out[10] << 8 | out[11]) ==
              whole.bodylen);
        p += total;
        n -= total;
    }
    CHECK(mc_bin_status_str((uint16_t)size) != NULL);
    return 0;
}
