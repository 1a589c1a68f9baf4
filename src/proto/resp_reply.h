/*
 * RESP replies, read back: the inverse of resp.h's composer.
 *
 * A script's redis.call() runs a command through the ordinary command
 * layer, which writes its reply as RESP bytes; this reader turns those
 * bytes back into values, one element at a time. It is pure (bytes in,
 * one element out), so nested replies are walked by the caller: an array
 * element says how many elements follow it. Nothing is allocated; string
 * payloads are slices of the input.
 */
#ifndef KIOKU_RESP_REPLY_H
#define KIOKU_RESP_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/parse.h"

enum resp_reply_type {
    RR_STATUS,    /* +text */
    RR_ERROR,     /* -text */
    RR_INT,       /* :n */
    RR_BULK,      /* $len data, or null ($-1) */
    RR_ARRAY,     /* *count, or null (*-1): count elements follow */
    RR_MAP,       /* RESP3 %pairs: 2*pairs elements follow */
    RR_SET,       /* RESP3 ~count */
    RR_NULL,      /* RESP3 _ */
    RR_BOOL,      /* RESP3 #t / #f: n is 1 or 0 */
    RR_DOUBLE,    /* RESP3 ,text */
};

struct resp_reply_elem {
    enum resp_reply_type type;
    bool null;            /* $-1 or *-1 */
    const char *ptr;      /* STATUS, ERROR, BULK, DOUBLE: the text */
    size_t len;
    int64_t n;            /* INT value; ARRAY/MAP/SET count; BOOL 0/1 */
};

/*
 * Read the element at the head of p[0..n). PARSE_OK: *e is set and *used
 * is its size (for an aggregate, only its header). PARSE_AGAIN: more bytes
 * are needed. PARSE_INVALID: not a RESP element.
 */
enum parse_status resp_reply_next(const char *p, size_t n, size_t *used,
                                  struct resp_reply_elem *e);

#endif
