/*
 * libFuzzer target: the memcached text parser (proto/mc_text) and the meta
 * flag parser and composer (proto/mc_meta), on a stream of requests.
 *
 * The input is a byte stream as a connection would receive it. Lines are
 * parsed one after another the way cmd/proto_mc_text.c walks its read
 * buffer: a storage command's data block (vlen + 2 bytes) is skipped, a meta
 * line goes on to mc_meta_parse() and, when it parses, to the composer. The
 * parsers' contracts are checked on every step (bytes used within the
 * input, keys inside the buffer, error text set exactly when it should be),
 * and a line that parsed is parsed again from a copy of exactly its own
 * bytes, which must give the same answer: the outcome may not depend on
 * what follows the line, and any shorter piece of it must ask for more
 * input. ASan sees every read past the input because
 * libFuzzer's buffer ends exactly where the data does.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/mc_meta.h"
#include "proto/mc_text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

static bool inside(const char *p, size_t n, const char *base, size_t len)
{
    return n == 0 || (p >= base && p + n <= base + len);
}

/* Parse a meta line's flags and compose a reply; returns the bytes of the
 * data block that follow (ms), as the command layer would skip them. */
static size_t fuzz_meta(const struct mc_text_req *r, const char *line, size_t len)
{
    static const enum mc_meta_cmd map[] = {
        [MC_META_GET] = MC_META_MG, [MC_META_SET] = MC_META_MS,
        [MC_META_DELETE] = MC_META_MD, [MC_META_ARITH] = MC_META_MA,
        [MC_META_NOOP] = MC_META_MN, [MC_META_DEBUG] = MC_META_ME,
    };
    struct mc_meta_req m;
    char keybuf[MC_META_KEY_MAX];
    enum mc_meta_cmd cmd = map[r->cmd];
    enum parse_status ps = mc_meta_parse(&m, cmd, r->key, r->nkey, r->args, r->args_len, keybuf);
    CHECK(ps == PARSE_OK || ps == PARSE_INVALID);
    const char *err = mc_meta_errstr(cmd, m.err);
    CHECK(err != NULL);
    size_t data = cmd == MC_META_MS && m.datalen_ok ? (size_t)m.datalen + 2 : 0;
    if (ps != PARSE_OK) {
        CHECK(m.err != MC_META_OK);
        return data;
    }
    CHECK(cmd == MC_META_MN || (m.nkey >= 1 && m.nkey <= MC_META_KEY_MAX));   /* mn has no key */
    CHECK(inside(m.key, m.nkey, line, len) || inside(m.key, m.nkey, keybuf, sizeof(keybuf)));
    CHECK(inside(m.key_token, m.nkey_token, line, len));
    CHECK(m.nopaque <= MC_META_OPAQUE_MAX);
    CHECK(inside(m.opaque, m.nopaque, line, len));
    CHECK(m.nret <= MC_META_RET_MAX);

    /* Compose the reply flags for a hit and a miss: the output bound holds. */
    struct mc_meta_vals v = {
        .have = MC_META_F_RET_CAS | MC_META_F_RET_FLAGS | MC_META_F_RET_HIT |
                MC_META_F_RET_ACCESS | MC_META_F_RET_SIZE | MC_META_F_RET_TTL |
                MC_META_F_WON | MC_META_F_STALE | MC_META_F_WIN_SENT,
        .cas = UINT64_MAX, .client_flags = UINT32_MAX, .hit_before = true,
        .last_access = INT64_MIN, .size = UINT64_MAX, .ttl = INT64_MIN,
    };
    char out[MC_META_FLAGS_OUT_MAX];
    size_t n = mc_meta_compose_flags(out, sizeof(out), &m, &v);
    CHECK(n <= MC_META_FLAGS_OUT_MAX);
    v.have = 0;
    char small[8];
    n = mc_meta_compose_flags(small, sizeof(small), &m, &v);
    CHECK(n <= MC_META_FLAGS_OUT_MAX);
    CHECK(mc_meta_cmd_name(cmd) != NULL);
    return data;
}

/* A line that parsed must parse the same from a buffer of its own bytes. */
static void check_alone(const struct mc_text_req *r, enum parse_status ps,
                        const char *line, size_t used)
{
    char *copy = malloc(used);
    CHECK(copy != NULL);
    memcpy(copy, line, used);
    struct mc_text_req r2;
    size_t used2 = 0;
    enum parse_status ps2 = mc_text_parse(&r2, copy, used, &used2);
    CHECK(ps2 == ps);
    CHECK(used2 == used);
    CHECK(r2.cmd == r->cmd);
    CHECK(r2.nkey == r->nkey && r2.keys_len == r->keys_len && r2.nkeys == r->nkeys);
    CHECK(r2.vlen == r->vlen && r2.noreply == r->noreply && r2.has_data == r->has_data);
    /* Any shorter piece of it is not a line yet. */
    size_t cuts[2] = {used - 1, used / 2};
    for (int i = 0; i < 2; i++) {
        used2 = 1;
        ps2 = mc_text_parse(&r2, copy, cuts[i], &used2);
        CHECK(ps2 == PARSE_AGAIN || ps2 == PARSE_TOO_LONG);
        CHECK(used2 == 0);
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    size_t n = size;
    while (n > 0) {
        size_t skip = 0;
        struct mc_text_req r;
        size_t used = 12345;
        enum parse_status ps = mc_text_parse(&r, p, n, &used);
        if (ps == PARSE_AGAIN) {
            CHECK(used == 0);
            break;
        }
        if (ps == PARSE_TOO_LONG) {
            CHECK(r.error != NULL);
            break;   /* the server answers and closes */
        }
        CHECK(used > 0 && used <= n);
        CHECK(memchr(p, '\n', used) == p + used - 1);
        if (ps == PARSE_OK) {
            CHECK(r.error == NULL);
            CHECK(r.cmd > MC_NONE && r.cmd < MC_CMD_COUNT);
            CHECK(inside(r.key, r.nkey, p, used));
            CHECK(inside(r.keys, r.keys_len, p, used));
            CHECK(inside(r.args, r.args_len, p, used));
            bool meta = r.cmd >= MC_META_GET && r.cmd <= MC_META_DEBUG;
            CHECK(meta || r.nkey <= MC_TEXT_KEY_MAX);   /* mc_meta checks its keys */
            CHECK(mc_cmd_name(r.cmd) != NULL);
            if (r.keys != NULL) {
                const char *cur = r.keys, *end = r.keys + r.keys_len, *key;
                size_t nkey;
                unsigned count = 0;
                while (mc_text_next_key(&cur, end, &key, &nkey)) {
                    CHECK(nkey >= 1 && nkey <= MC_TEXT_KEY_MAX);
                    CHECK(inside(key, nkey, r.keys, r.keys_len));
                    count++;
                }
                CHECK(count == r.nkeys);
            }
            check_alone(&r, ps, p, used);
            if (meta)
                skip = fuzz_meta(&r, p, used);
        } else {
            CHECK(ps == PARSE_UNKNOWN || ps == PARSE_INVALID);
            CHECK(r.error != NULL);
        }
        p += used;
        n -= used;
        /* A storage command's data block (or ms's) follows: skip it. */
        if ((ps == PARSE_OK || ps == PARSE_INVALID) && r.has_data)
            skip = (size_t)r.vlen + 2;
        if (skip > n)
            break;
        p += skip;
        n -= skip;
    }
    return 0;
}
