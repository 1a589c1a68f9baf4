/*
 * RESP: the Redis request parser and reply composer.
 *
 * Requests come in two shapes. A multibulk request ("*<count>\r\n" then
 * count times "$<len>\r\n<len bytes>\r\n") is what every client library
 * sends; an inline request is one line of words ("SET k v\r\n"), typed by a
 * human into telnet. Any request whose first byte is '*' is multibulk.
 *
 * resp_parse() is pure: it sees a buffer and returns the arguments of the
 * first request in it as (pointer, length) slices of that buffer, in an
 * array the caller lends it. It keeps no pointer between calls: progress is
 * a set of offsets in a small struct resp_state that the caller keeps per
 * connection, so the buffer may move or grow between calls and a large
 * request arriving in pieces is scanned once, not once per piece. Only the
 * few bytes of each "$<len>" header already seen are read again, once, when
 * the request completes.
 *
 * Fidelity to redis-server 7 (checked against 7.0 over a socket):
 *  - error texts are Redis's, byte for byte (see RESP_ERR_* below);
 *  - "*0", "*-1" (any count <= 0) and empty or blank inline lines are
 *    requests with no arguments: Redis skips them silently, so must we;
 *  - the two bytes after a bulk's data, and the byte after the '\r' of a
 *    header line, are skipped without being checked, as Redis does;
 *  - numbers follow Redis's strict integer syntax: no '+', no leading
 *    zero, no spaces, at most 21 characters;
 *  - inline words split as redis-server splits them: blanks separate words,
 *    "..." understands \n \r \t \b \a and \xHH, '...' understands only \',
 *    and a closing quote must be followed by a blank or the end.
 * Deliberate differences: a NUL byte is an ordinary byte everywhere (Redis
 * stalls on an inline line or header holding one); a line's length limit is
 * applied to the line itself, so the outcome never depends on how the bytes
 * were split across reads; and an error naming an unexpected byte prints
 * NUL as a blank, as Redis already does for CR and LF.
 *
 * Large arguments. A request is parsed once it is wholly in the buffer, so
 * a 64 MiB value would need a 64 MiB read buffer. Instead, a bulk of at
 * least lim->stream_min bytes is reported as soon as its header is read
 * (PARSE_STREAM): the caller reads the bytes wherever it likes (into the
 * item that will hold them) and then lets the parser carry on with the
 * arguments after it. One argument per request is streamed; a caller that
 * cannot take it there declines (resp_state_nostream()) and the request is
 * parsed again, buffered, as if stream_min were 0.
 *
 * After PARSE_INVALID or PARSE_TOO_LONG the stream cannot be resynchronised:
 * the caller sends "-" r->error "\r\n" (resp_put_error() does it), then
 * closes the connection after that reply, as redis-server does. Requests
 * parsed before the bad one are answered first, in order.
 *
 * The composer writes replies into a caller buffer: each resp_put_*()
 * writes all of its bytes or none, and returns how many it wrote.
 */
#ifndef KIOKU_RESP_H
#define KIOKU_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/parse.h"

/* Redis's limit for an inline line and for a header line: 64 KiB. */
#define RESP_INLINE_MAX (64 * 1024)
/* What Redis 7 takes from a client that must still authenticate: more
 * arguments or a longer bulk is refused from its header. */
#define RESP_UNAUTH_ARGS 10
#define RESP_UNAUTH_BULK 16384
/* Redis's default proto-max-bulk-len: 512 MiB. */
#define RESP_BULK_MAX ((size_t)512 * 1024 * 1024)

/* Error texts, as redis-server 7 sends them (without "-" and CRLF). */
#define RESP_ERR_MBULK_LEN   "ERR Protocol error: invalid multibulk length"
#define RESP_ERR_BULK_LEN    "ERR Protocol error: invalid bulk length"
#define RESP_ERR_QUOTES      "ERR Protocol error: unbalanced quotes in request"
#define RESP_ERR_INLINE_BIG  "ERR Protocol error: too big inline request"
#define RESP_ERR_MBULK_BIG   "ERR Protocol error: too big mbulk count string"
#define RESP_ERR_BULK_BIG    "ERR Protocol error: too big bulk count string"
#define RESP_ERR_UNAUTH_MBULK "ERR Protocol error: unauthenticated multibulk length"
#define RESP_ERR_UNAUTH_BULK "ERR Protocol error: unauthenticated bulk length"
/* ... and "ERR Protocol error: expected '$', got '<byte>'", built in errbuf. */

/* Bytes any single header, integer, double, boolean or null reply needs at most. */
#define RESP_HDR_MAX 32

struct resp_arg {
    const char *ptr;        /* into the caller's buffer */
    size_t len;
};

struct resp_limits {
    size_t max_bulk;        /* longest bulk argument (RESP_BULK_MAX in Redis) */
    uint32_t max_args;      /* largest multibulk count accepted */
    size_t max_inline;      /* longest inline line or header line (RESP_INLINE_MAX) */
    size_t stream_min;      /* bulks this long or longer: PARSE_STREAM; 0 never */
    bool unauthenticated;   /* also RESP_UNAUTH_ARGS and RESP_UNAUTH_BULK */
};

/*
 * The parsed request. The caller sets argv/argv_cap (the array may be shared
 * by all connections of a worker: the parser keeps nothing in it between
 * calls); resp_parse() sets the rest.
 */
struct resp_req {
    struct resp_arg *argv;  /* caller-provided, argv_cap entries */
    uint32_t argv_cap;
    uint32_t argc;          /* PARSE_OK: argument count; 0 = nothing to run */
    uint32_t argbase;       /* PARSE_OK: argv[0] is argument argbase of the
                               request (> 0 after a PARSE_STREAM) */
    uint32_t nargs;         /* PARSE_STREAM: the request's argument count */
    size_t stream_len;      /* PARSE_STREAM: data bytes of argument argc */
    bool is_inline;         /* PARSE_OK: it came as an inline line */
    const char *error;      /* PARSE_INVALID / PARSE_TOO_LONG: reply text */
    char errbuf[48];        /* backs r->error when it names a byte */
};

/*
 * Progress through one request; opaque to the caller. Zero it (or call
 * resp_state_init()) once per connection; resp_parse() resets it itself
 * after every result other than PARSE_AGAIN.
 */
struct resp_state {
    size_t pos;             /* offset of the first byte not yet consumed */
    size_t scan;            /* bytes from pos known to hold no terminator */
    size_t first;           /* offset of the first "$" header */
    size_t bulklen;         /* data bytes of the current argument */
    uint32_t nargs;         /* multibulk count */
    uint32_t argi;          /* arguments completed */
    uint32_t base;          /* arguments before the buffer's start (streamed past) */
    uint8_t phase;
    bool no_stream;         /* this request is parsed buffered, whatever its sizes */
};

void resp_state_init(struct resp_state *st);
/*
 * Decline a PARSE_STREAM: forget the progress and parse the same request
 * again, from the same p, with every argument buffered.
 */
void resp_state_nostream(struct resp_state *st);

/*
 * Parse the request at the head of p[0..n).
 *
 * Between a PARSE_AGAIN and the next call the caller may move or grow the
 * buffer, but p must again start at the same request and hold at least the
 * n bytes it held (plus whatever arrived since), with st untouched.
 *
 * PARSE_OK: r->argc arguments in r->argv[0..argc), *used = bytes of the
 *   request. The slices point into p and live as long as those bytes do.
 *   argc == 0 means an empty request ("*0", "*-1", a blank line): consume
 *   it and reply nothing. An inline request with quotes is decoded in place,
 *   which is why p is not const: only bytes within [0, *used) are written.
 * PARSE_STREAM: argument number r->argc, of r->stream_len bytes, starts at
 *   p[*used]; argv[0..argc) hold the arguments before it, as for PARSE_OK;
 *   r->nargs is the request's count. The caller consumes the *used bytes,
 *   then stream_len + 2 more (the data and the two bytes after it, which
 *   are not checked, as in Redis) outside the parser. If r->argc + 1 <
 *   r->nargs it then calls again, with p at the byte after those, for the
 *   rest: that PARSE_OK has argbase = the streamed argument's number + 1
 *   and argc = nargs - argbase, and argv_cap need only hold those. Else
 *   the request ends with the data and st is already reset.
 * PARSE_AGAIN: incomplete; *used = 0. Progress is saved in st.
 * PARSE_INVALID: malformed; PARSE_TOO_LONG: over a limit in lim or over
 *   r->argv_cap. Either way r->error holds Redis's reply text, *used = n,
 *   and the caller replies then closes.
 *
 * Work per call is linear in the bytes not examined by earlier calls, plus
 * O(argc) small header reads when a request completes after a PARSE_AGAIN.
 */
enum parse_status resp_parse(struct resp_req *r, struct resp_state *st,
                             char *p, size_t n, size_t *used,
                             const struct resp_limits *lim);

/* True if p[0..len) equals the NUL-terminated name, ignoring ASCII case. */
bool resp_name_eq(const char *p, size_t len, const char *name);

/*
 * Composer. Each function writes one RESP element into buf[0..cap) and
 * returns the bytes written, or 0 (writing nothing) if it would not fit.
 * Simple strings and errors have CR and LF replaced by blanks, so a reply
 * can never break the framing; the error text is sent as given (it should
 * begin with a code such as "ERR ").
 */
size_t resp_put_simple(char *buf, size_t cap, const char *s, size_t len);   /* +s  */
size_t resp_put_error(char *buf, size_t cap, const char *s, size_t len);    /* -s  */
size_t resp_put_int(char *buf, size_t cap, int64_t v);                      /* :v  */
size_t resp_put_bulk_hdr(char *buf, size_t cap, size_t len);                /* $len, data follows */
size_t resp_put_bulk(char *buf, size_t cap, const char *data, size_t len);  /* $len data */
size_t resp_put_null_bulk(char *buf, size_t cap);                           /* $-1 */
size_t resp_put_array_hdr(char *buf, size_t cap, size_t count);             /* *count */
size_t resp_put_null_array(char *buf, size_t cap);                          /* *-1 */
/* RESP3 */
size_t resp_put_map_hdr(char *buf, size_t cap, size_t pairs);               /* %pairs */
size_t resp_put_null(char *buf, size_t cap);                                /* _   */
size_t resp_put_double(char *buf, size_t cap, double d);                    /* ,d  (inf, -inf, nan) */
size_t resp_put_bool(char *buf, size_t cap, bool b);                        /* #t / #f */

#endif
