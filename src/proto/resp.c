/*
 * RESP parser and composer; the contract is in resp.h.
 *
 * The parser is a small state machine whose every position is an offset
 * from the start of the request, so the caller's buffer may move between
 * calls:
 *
 *   IDLE --'*'--> COUNT --> HDR <--> DATA --(last arg)--> done
 *     \--other--> INLINE --------------------------------> done
 *
 * COUNT and HDR wait for a header line ending in '\r' plus one more byte;
 * INLINE waits for '\n'. While waiting, st->scan remembers how much of the
 * line was already searched, so each byte is searched once. DATA waits for
 * the bulk's bytes and its two trailing bytes without looking at them.
 *
 * Argument slices are written to r->argv as they are found. When a request
 * completes in a later call than it started, the slices of the arguments
 * finished earlier are stale (the buffer may have moved), so they are
 * rebuilt from their already validated "$<len>\r" headers: that re-reads a
 * few bytes per argument once, never the data.
 *
 * A bulk of at least lim->stream_min bytes ends the call with PARSE_STREAM
 * as soon as its header is read. The state then describes the rest of the
 * request as if it began after the streamed data: base counts the
 * arguments left behind, and the next call starts in HDR at offset 0.
 *
 * Line limits are applied to the line itself (terminator excluded) rather
 * than to however many bytes happen to be buffered, so a result never
 * depends on how the input was split into reads.
 */
#include "proto/resp.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

enum { PH_IDLE = 0, PH_INLINE, PH_COUNT, PH_HDR, PH_DATA };

/* Longest integer Redis accepts in a header, sign included. */
#define RESP_NUM_MAX 21

void
resp_state_init(struct resp_state *st)
{
    memset(st, 0, sizeof(*st));
}

void
resp_state_nostream(struct resp_state *st)
{
    resp_state_init(st);
    st->no_stream = true;
}

/*
 * Redis's integer syntax: "0", or an optional '-' then a digit 1-9 then
 * digits; 1..21 characters; must fit in int64_t.
 */
static bool
parse_i64(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    uint64_t v = 0;

    if (len == 0 || len > RESP_NUM_MAX) {
        return false;
    }
    if (len == 1 && s[0] == '0') {
        *out = 0;
        return true;
    }
    if (s[0] == '-') {
        neg = true;
        i = 1;
    }
    if (i == len || s[i] < '1' || s[i] > '9') {
        return false;
    }
    for (; i < len; i++) {
        unsigned d;

        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1) {
            return false;
        }
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        if (v > (uint64_t)INT64_MAX) {
            return false;
        }
        *out = (int64_t)v;
    }
    return true;
}

/*
 * Find the byte `term` of the line starting at `start`, searching only bytes
 * not searched by earlier calls (st->scan) and at most max_line + 1 bytes of
 * the line. `extra` bytes must follow the terminator before the line counts
 * as complete. Returns 1 (found, *at set), 0 (need more), -1 (the line is
 * longer than max_line).
 */
static int
find_term(const char *p, size_t n, size_t start, char term, size_t extra,
          size_t max_line, struct resp_state *st, size_t *at)
{
    size_t avail = n - start;
    size_t window = avail > 0 && avail - 1 > max_line ? max_line + 1 : avail;
    size_t from = start + st->scan;
    size_t lim = start + window;
    const char *hit;

    if (from < lim) {
        hit = memchr(p + from, term, lim - from);
        if (hit != NULL) {
            *at = (size_t)(hit - p);
            st->scan = *at - start;
            return n - *at > extra ? 1 : 0;
        }
        st->scan = window;
    }
    return n - start > max_line ? -1 : 0;
}

static enum parse_status
fail(struct resp_req *r, struct resp_state *st, size_t n, size_t *used,
     enum parse_status status, const char *text)
{
    r->error = text;
    r->argc = 0;
    *used = n;
    resp_state_init(st);
    return status;
}

static enum parse_status
fail_expected(struct resp_req *r, struct resp_state *st, size_t n,
              size_t *used, char got)
{
    /* A reply cannot carry CR or LF, nor sensibly NUL: Redis prints CR/LF as blanks. */
    if (got == '\r' || got == '\n' || got == '\0') {
        got = ' ';
    }
    snprintf(r->errbuf, sizeof(r->errbuf),
             "ERR Protocol error: expected '$', got '%c'", got);
    return fail(r, st, n, used, PARSE_INVALID, r->errbuf);
}

/* C-locale isspace(): what separates inline words and may follow a quote. */
static bool
is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* The bytes that end an unquoted inline word (not \v or \f, as in Redis). */
static bool
ends_word(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int
hex_val(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static char
unescape(char c)
{
    switch (c) {
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    case 'b': return '\b';
    case 'a': return '\a';
    default: return c;
    }
}

/*
 * Split one inline line p[0..len) into words, decoding quotes in place (a
 * decoded word is never longer than its source, so the write cursor w never
 * passes the read cursor i). Returns 0, -1 on unbalanced quotes, -2 if more
 * than cap words. O(len).
 */
static int
split_inline(char *p, size_t len, struct resp_arg *argv, uint32_t cap,
             uint32_t *argc)
{
    size_t i = 0;

    *argc = 0;
    for (;;) {
        size_t start, w;
        char quote = 0;
        bool done = false;

        while (i < len && is_blank(p[i])) {
            i++;
        }
        if (i == len) {
            return 0;
        }
        if (*argc == cap) {
            return -2;
        }
        start = w = i;
        while (!done) {
            if (quote == 0) {
                if (i == len || ends_word(p[i])) {
                    done = true;
                } else if (p[i] == '"' || p[i] == '\'') {
                    quote = p[i++];
                } else {
                    p[w++] = p[i++];
                }
                continue;
            }
            if (i == len) {
                return -1;
            }
            if (p[i] == quote) {
                /* A closing quote must end the word. */
                if (i + 1 < len && !is_blank(p[i + 1])) {
                    return -1;
                }
                i++;
                done = true;
            } else if (quote == '"' && p[i] == '\\' && i + 3 < len &&
                       p[i + 1] == 'x' && hex_val(p[i + 2]) >= 0 &&
                       hex_val(p[i + 3]) >= 0) {
                p[w++] = (char)(hex_val(p[i + 2]) * 16 + hex_val(p[i + 3]));
                i += 4;
            } else if (quote == '"' && p[i] == '\\' && i + 1 < len) {
                p[w++] = unescape(p[i + 1]);
                i += 2;
            } else if (quote == '\'' && p[i] == '\\' && i + 1 < len &&
                       p[i + 1] == '\'') {
                p[w++] = '\'';
                i += 2;
            } else {
                p[w++] = p[i++];
            }
        }
        argv[*argc].ptr = p + start;
        argv[*argc].len = w - start;
        (*argc)++;
    }
}

static enum parse_status
parse_inline(struct resp_req *r, struct resp_state *st, char *p, size_t n,
             size_t *used, const struct resp_limits *lim)
{
    size_t nl, end;
    uint32_t argc;
    int rc;

    rc = find_term(p, n, 0, '\n', 0, lim->max_inline, st, &nl);
    if (rc == 0) {
        return PARSE_AGAIN;
    }
    if (rc < 0) {
        return fail(r, st, n, used, PARSE_TOO_LONG, RESP_ERR_INLINE_BIG);
    }
    end = nl;
    if (end > 0 && p[end - 1] == '\r') {
        end--;
    }
    rc = split_inline(p, end, r->argv, r->argv_cap, &argc);
    if (rc == -1) {
        return fail(r, st, n, used, PARSE_INVALID, RESP_ERR_QUOTES);
    }
    if (rc == -2) {
        return fail(r, st, n, used, PARSE_TOO_LONG, RESP_ERR_INLINE_BIG);
    }
    r->argc = argc;
    r->is_inline = true;
    *used = nl + 1;
    resp_state_init(st);
    return PARSE_OK;
}

/*
 * Rebuild argv[0..count) from their headers, which start at offset `off`
 * and were validated when first parsed: '$', digits, '\r', one byte.
 */
static void
refill(struct resp_req *r, const char *p, size_t off, uint32_t count)
{
    uint32_t i;

    for (i = 0; i < count; i++) {
        size_t len = 0;

        for (off++; p[off] != '\r'; off++) {
            len = len * 10 + (size_t)(p[off] - '0');
        }
        off += 2;
        r->argv[i].ptr = p + off;
        r->argv[i].len = len;
        off += len + 2;
    }
}

/*
 * Hand argument st->argi (its header just read, data at st->pos) to the
 * caller, and set st up for the arguments after it.
 */
static enum parse_status
stream_arg(struct resp_req *r, struct resp_state *st, const char *p,
           size_t *used, uint32_t stale)
{
    uint32_t done = st->argi - st->base;

    if (stale > 0) {
        refill(r, p, st->first, stale);
    }
    r->argc = done;
    r->nargs = st->nargs;
    r->stream_len = st->bulklen;
    *used = st->pos;
    if (st->argi + 1 == st->nargs) {
        resp_state_init(st);
        return PARSE_STREAM;
    }
    st->argi++;
    st->base = st->argi;
    st->pos = st->first = 0;
    st->scan = 0;
    st->phase = PH_HDR;
    st->no_stream = true;   /* one streamed argument per request */
    return PARSE_STREAM;
}

static enum parse_status
parse_multibulk(struct resp_req *r, struct resp_state *st, char *p, size_t n,
                size_t *used, const struct resp_limits *lim)
{
    uint32_t stale = st->argi - st->base;
    size_t cr;
    int64_t v;
    int rc;

    if (st->phase == PH_COUNT) {
        rc = find_term(p, n, 0, '\r', 1, lim->max_inline, st, &cr);
        if (rc == 0) {
            return PARSE_AGAIN;
        }
        if (rc < 0) {
            return fail(r, st, n, used, PARSE_TOO_LONG, RESP_ERR_MBULK_BIG);
        }
        if (!parse_i64(p + 1, cr - 1, &v) || v > INT_MAX) {
            return fail(r, st, n, used, PARSE_INVALID, RESP_ERR_MBULK_LEN);
        }
        if (v > RESP_UNAUTH_ARGS && lim->unauthenticated) {
            return fail(r, st, n, used, PARSE_TOO_LONG, RESP_ERR_UNAUTH_MBULK);
        }
        if (v <= 0) {
            /* Redis skips empty and negative counts without a reply. */
            r->argc = 0;
            *used = cr + 2;
            resp_state_init(st);
            return PARSE_OK;
        }
        if ((uint64_t)v > lim->max_args || (uint64_t)v > r->argv_cap) {
            return fail(r, st, n, used, PARSE_TOO_LONG, RESP_ERR_MBULK_LEN);
        }
        st->nargs = (uint32_t)v;
        st->pos = st->first = cr + 2;
        st->scan = 0;
        st->phase = PH_HDR;
    }

    for (;;) {
        if (st->phase == PH_HDR) {
            rc = find_term(p, n, st->pos, '\r', 1, lim->max_inline, st, &cr);
            if (rc == 0) {
                return PARSE_AGAIN;
            }
            if (rc < 0) {
                return fail(r, st, n, used, PARSE_TOO_LONG, RESP_ERR_BULK_BIG);
            }
            if (p[st->pos] != '$') {
                return fail_expected(r, st, n, used, p[st->pos]);
            }
            if (!parse_i64(p + st->pos + 1, cr - st->pos - 1, &v) || v < 0) {
                return fail(r, st, n, used, PARSE_INVALID, RESP_ERR_BULK_LEN);
            }
            if ((uint64_t)v > lim->max_bulk) {
                return fail(r, st, n, used, PARSE_TOO_LONG, RESP_ERR_BULK_LEN);
            }
            if (v > RESP_UNAUTH_BULK && lim->unauthenticated) {
                return fail(r, st, n, used, PARSE_TOO_LONG, RESP_ERR_UNAUTH_BULK);
            }
            st->bulklen = (size_t)v;
            st->pos = cr + 2;
            st->scan = 0;
            st->phase = PH_DATA;
            if (lim->stream_min > 0 && st->bulklen >= lim->stream_min &&
                !st->no_stream) {
                return stream_arg(r, st, p, used, stale);
            }
        }
        /* PH_DATA: the bytes and the two that end them (not checked, as in Redis). */
        if (n - st->pos < 2 || n - st->pos - 2 < st->bulklen) {
            return PARSE_AGAIN;
        }
        if (st->argi - st->base >= r->argv_cap) {
            /* the caller lent a smaller array for the rest of a request */
            return fail(r, st, n, used, PARSE_TOO_LONG, RESP_ERR_MBULK_LEN);
        }
        r->argv[st->argi - st->base].ptr = p + st->pos;
        r->argv[st->argi - st->base].len = st->bulklen;
        st->pos += st->bulklen + 2;
        st->argi++;
        if (st->argi == st->nargs) {
            break;
        }
        st->phase = PH_HDR;
    }

    if (stale > 0) {
        refill(r, p, st->first, stale);
    }
    r->argc = st->nargs - st->base;
    r->argbase = st->base;
    *used = st->pos;
    resp_state_init(st);
    return PARSE_OK;
}

enum parse_status
resp_parse(struct resp_req *r, struct resp_state *st, char *p, size_t n,
           size_t *used, const struct resp_limits *lim)
{
    *used = 0;
    r->argc = 0;
    r->argbase = 0;
    r->nargs = 0;
    r->stream_len = 0;
    r->is_inline = false;
    r->error = NULL;

    if (st->phase == PH_IDLE) {
        bool no_stream = st->no_stream;

        if (n == 0) {
            return PARSE_AGAIN;
        }
        resp_state_init(st);
        st->no_stream = no_stream;
        st->phase = p[0] == '*' ? PH_COUNT : PH_INLINE;
    }
    if (st->phase == PH_INLINE) {
        return parse_inline(r, st, p, n, used, lim);
    }
    return parse_multibulk(r, st, p, n, used, lim);
}

bool
resp_name_eq(const char *p, size_t len, const char *name)
{
    size_t i;

    for (i = 0; i < len; i++) {
        char a = p[i], b = name[i];

        if (b == '\0') {
            return false;
        }
        if (a >= 'A' && a <= 'Z') {
            a = (char)(a - 'A' + 'a');
        }
        if (b >= 'A' && b <= 'Z') {
            b = (char)(b - 'A' + 'a');
        }
        if (a != b) {
            return false;
        }
    }
    return name[len] == '\0';
}

/* ---- composer ---- */

/* Decimal digits of v into out (room for 20), returning their count. */
static size_t
put_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t k = 0, i;

    do {
        tmp[k++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (i = 0; i < k; i++) {
        out[i] = tmp[k - 1 - i];
    }
    return k;
}

/* "<type>[-]<v>\r\n", all or nothing. */
static size_t
put_num_line(char *buf, size_t cap, char type, bool neg, uint64_t v)
{
    char tmp[RESP_HDR_MAX];
    size_t k = 0;

    tmp[k++] = type;
    if (neg) {
        tmp[k++] = '-';
    }
    k += put_u64(tmp + k, v);
    tmp[k++] = '\r';
    tmp[k++] = '\n';
    if (k > cap) {
        return 0;
    }
    memcpy(buf, tmp, k);
    return k;
}

static size_t
put_raw(char *buf, size_t cap, const char *s, size_t len)
{
    if (len > cap) {
        return 0;
    }
    memcpy(buf, s, len);
    return len;
}

/* "<type><s>\r\n" with CR/LF in s turned into blanks. */
static size_t
put_line(char *buf, size_t cap, char type, const char *s, size_t len)
{
    size_t i;

    if (len > cap || cap - len < 3) {
        return 0;
    }
    buf[0] = type;
    for (i = 0; i < len; i++) {
        buf[1 + i] = s[i] == '\r' || s[i] == '\n' ? ' ' : s[i];
    }
    buf[1 + len] = '\r';
    buf[2 + len] = '\n';
    return len + 3;
}

size_t
resp_put_simple(char *buf, size_t cap, const char *s, size_t len)
{
    return put_line(buf, cap, '+', s, len);
}

size_t
resp_put_error(char *buf, size_t cap, const char *s, size_t len)
{
    return put_line(buf, cap, '-', s, len);
}

size_t
resp_put_int(char *buf, size_t cap, int64_t v)
{
    /* Magnitude computed in unsigned arithmetic so INT64_MIN is safe. */
    if (v < 0) {
        return put_num_line(buf, cap, ':', true, (uint64_t)0 - (uint64_t)v);
    }
    return put_num_line(buf, cap, ':', false, (uint64_t)v);
}

size_t
resp_put_bulk_hdr(char *buf, size_t cap, size_t len)
{
    return put_num_line(buf, cap, '$', false, (uint64_t)len);
}

size_t
resp_put_bulk(char *buf, size_t cap, const char *data, size_t len)
{
    char hdr[RESP_HDR_MAX];
    size_t h = put_num_line(hdr, sizeof(hdr), '$', false, (uint64_t)len);

    if (h > cap || cap - h < 2 || cap - h - 2 < len) {
        return 0;
    }
    memcpy(buf, hdr, h);
    memcpy(buf + h, data, len);
    buf[h + len] = '\r';
    buf[h + len + 1] = '\n';
    return h + len + 2;
}

size_t
resp_put_null_bulk(char *buf, size_t cap)
{
    return put_raw(buf, cap, "$-1\r\n", 5);
}

size_t
resp_put_array_hdr(char *buf, size_t cap, size_t count)
{
    return put_num_line(buf, cap, '*', false, (uint64_t)count);
}

size_t
resp_put_null_array(char *buf, size_t cap)
{
    return put_raw(buf, cap, "*-1\r\n", 5);
}

size_t
resp_put_map_hdr(char *buf, size_t cap, size_t pairs)
{
    return put_num_line(buf, cap, '%', false, (uint64_t)pairs);
}

size_t
resp_put_null(char *buf, size_t cap)
{
    return put_raw(buf, cap, "_\r\n", 3);
}

size_t
resp_put_double(char *buf, size_t cap, double d)
{
    char tmp[RESP_HDR_MAX];
    int k;

    /* RESP3 spells the special values inf, -inf and nan. */
    if (isnan(d)) {
        return put_raw(buf, cap, ",nan\r\n", 6);
    }
    if (isinf(d)) {
        return d > 0 ? put_raw(buf, cap, ",inf\r\n", 6)
                     : put_raw(buf, cap, ",-inf\r\n", 7);
    }
    /* %.17g round-trips every double; at most 24 characters. */
    k = snprintf(tmp, sizeof(tmp), ",%.17g\r\n", d);
    if (k < 0 || (size_t)k >= sizeof(tmp)) {
        return 0;
    }
    return put_raw(buf, cap, tmp, (size_t)k);
}

size_t
resp_put_bool(char *buf, size_t cap, bool b)
{
    return put_raw(buf, cap, b ? "#t\r\n" : "#f\r\n", 4);
}
