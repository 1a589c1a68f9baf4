/*
 * libFuzzer target: the RESP request parser and reply composer (proto/resp).
 *
 * The input is a byte stream of requests, parsed twice: once with all of it
 * in the buffer, and once as it would arrive over a slow socket, the buffer
 * growing by a few bytes between calls with the progress kept in struct
 * resp_state (the step comes from the first byte). The parser promises the
 * outcome never depends on how the bytes were split, so both runs must give
 * the same requests, with the same arguments, and stop at the same error.
 * Each argument must lie inside its request. A bulk of 32 bytes or more is
 * handed over from its header (PARSE_STREAM): the harness skips its data as
 * a server reads it into an item, then parses the rest of the request, or
 * (for odd lengths) declines and has the request parsed buffered; both runs
 * must agree on that too. The composer then writes the
 * arguments back as replies into buffers of every small size: a reply is
 * written whole or not at all.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

#define ARGV_CAP 64
#define MAX_REQS 4096

static const struct resp_limits limits = {
    .max_bulk = 64 * 1024, .max_args = 1024, .max_inline = 1024, .stream_min = 32,
};

struct outcome {
    enum parse_status st;
    size_t used;
    uint32_t argc;
    uint32_t argbase;
    uint32_t nargs;
    size_t stream_len;
    bool is_inline;
    uint64_t digest;    /* FNV-1a over the arguments' lengths and bytes */
};

static uint64_t digest(const struct resp_req *r)
{
    uint64_t h = 1469598103934665603ull;
    for (uint32_t i = 0; i < r->argc; i++) {
        for (size_t k = 0; k < sizeof(r->argv[i].len); k++)
            h = (h ^ ((r->argv[i].len >> (8 * k)) & 0xff)) * 1099511628211ull;
        for (size_t k = 0; k < r->argv[i].len; k++)
            h = (h ^ (uint8_t)r->argv[i].ptr[k]) * 1099511628211ull;
    }
    return h;
}

static void compose(const struct resp_req *r)
{
    char buf[96];
    for (uint32_t i = 0; i < r->argc && i < 4; i++) {
        const struct resp_arg *a = &r->argv[i];
        for (size_t cap = 0; cap <= sizeof(buf); cap += 7) {
            size_t w = resp_put_bulk(buf, cap, a->ptr, a->len);
            CHECK(w == 0 || (w <= cap && w >= a->len));
            w = resp_put_simple(buf, cap, a->ptr, a->len);
            CHECK(w <= cap);
            if (w > 0)
                CHECK(memchr(buf + 1, '\r', w - 3) == NULL && memchr(buf + 1, '\n', w - 3) == NULL);
            w = resp_put_error(buf, cap, a->ptr, a->len);
            CHECK(w <= cap);
        }
        (void)resp_name_eq(a->ptr, a->len, "set");
    }
    CHECK(resp_put_int(buf, sizeof(buf), (int64_t)r->argc * -7919) > 0);
    CHECK(resp_put_array_hdr(buf, sizeof(buf), r->argc) > 0);
    CHECK(resp_put_map_hdr(buf, sizeof(buf), r->argc) > 0);
    CHECK(resp_put_double(buf, sizeof(buf), r->argc ? 1.0 / (double)r->argc : 0.0) > 0);
    CHECK(resp_put_bool(buf, 3, r->argc & 1) == 0);
}

/* Parse the whole stream; `step` 0: all bytes at once, else the buffer grows
 * by step bytes between calls. Fills out[] and returns how many results. */
static size_t run(char *buf, size_t size, size_t step, struct outcome *out, bool do_compose)
{
    struct resp_arg argv[ARGV_CAP];
    struct resp_state st;
    size_t pos = 0, nout = 0;
    bool declined = false;
    uint32_t rest = 0;   /* after a stream: the arguments still to come */
    resp_state_init(&st);
    while (pos < size && nout < MAX_REQS) {
        struct resp_req r = {.argv = argv, .argv_cap = ARGV_CAP};
        size_t avail = step == 0 ? size - pos : (step < size - pos ? step : size - pos);
        size_t used = 99;
        enum parse_status ps;
        for (;;) {
            ps = resp_parse(&r, &st, buf + pos, avail, &used, &limits);
            if (ps != PARSE_AGAIN || avail == size - pos)
                break;
            CHECK(used == 0);
            avail = avail + step < size - pos ? avail + step : size - pos;
        }
        if (ps == PARSE_AGAIN) {
            CHECK(used == 0);
            break;
        }
        struct outcome *o = &out[nout++];
        o->st = ps;
        o->used = used;
        o->argc = 0;
        o->argbase = r.argbase;
        o->nargs = r.nargs;
        o->stream_len = r.stream_len;
        o->is_inline = false;
        o->digest = 0;
        if (ps == PARSE_STREAM) {
            CHECK(!declined && rest == 0);
            CHECK(r.stream_len >= limits.stream_min && r.stream_len <= limits.max_bulk);
            CHECK(r.argc < r.nargs && r.nargs <= ARGV_CAP && used <= avail);
            o->argc = r.argc;
            o->digest = digest(&r);
            if (r.stream_len % 2 == 1) {
                resp_state_nostream(&st);   /* parse it again, buffered */
                declined = true;
                continue;
            }
            if (r.stream_len + 2 > size - pos - used)
                break;   /* the value never arrives */
            pos += used + r.stream_len + 2;
            rest = r.nargs - r.argc - 1;
            continue;
        }
        CHECK(ps != PARSE_OK || rest == 0 || (r.argbase > 0 && r.argc == rest));
        CHECK(ps != PARSE_OK || rest > 0 || r.argbase == 0);
        declined = false;
        rest = 0;
        if (ps != PARSE_OK) {
            CHECK(ps == PARSE_INVALID || ps == PARSE_TOO_LONG);
            CHECK(r.error != NULL && strlen(r.error) > 0);
            CHECK(used == avail);   /* nothing after a protocol error counts */
            break;   /* the server replies and closes */
        }
        CHECK(used > 0 && used <= avail);
        CHECK(r.argc <= ARGV_CAP);
        for (uint32_t i = 0; i < r.argc; i++) {
            CHECK(r.argv[i].len <= limits.max_bulk);
            CHECK(r.argv[i].len == 0 ||
                  (r.argv[i].ptr >= buf + pos && r.argv[i].ptr + r.argv[i].len <= buf + pos + used));
        }
        o->argc = r.argc;
        o->is_inline = r.is_inline;
        o->digest = digest(&r);
        if (do_compose)
            compose(&r);
        pos += used;
    }
    return nout;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct outcome a[MAX_REQS], b[MAX_REQS];
    /* Inline requests are unquoted in place: each run gets its own copy. */
    char *buf = malloc(size > 0 ? size : 1);
    CHECK(buf != NULL);
    memcpy(buf, data, size);
    size_t na = run(buf, size, 0, a, true);
    memcpy(buf, data, size);
    size_t step = size > 0 ? (size_t)(data[0] % 13) + 1 : 1;
    size_t nb = run(buf, size, step, b, false);
    CHECK(na == nb);
    for (size_t i = 0; i < na; i++) {
        CHECK(a[i].st == b[i].st);
        CHECK(a[i].used == b[i].used || (a[i].st != PARSE_OK && a[i].st != PARSE_STREAM));
        CHECK(a[i].argbase == b[i].argbase && a[i].nargs == b[i].nargs &&
              a[i].stream_len == b[i].stream_len);
        CHECK(a[i].argc == b[i].argc && a[i].is_inline == b[i].is_inline);
        CHECK(a[i].digest == b[i].digest);
    }
    free(buf);
    return 0;
}
