/*
 * Reading RESP replies: one element per call, see resp_reply.h. Lines end
 * in CRLF; numbers are strict decimal (an optional '-', digits). A bulk's
 * payload must be followed by CRLF.
 */
#include "proto/resp_reply.h"

#include <string.h>

/* The line after the type byte: [p+1, eol) with CRLF at eol. */
static enum parse_status line_end(const char *p, size_t n, size_t *eol)
{
    const char *cr = n > 1 ? memchr(p + 1, '\r', n - 1) : NULL;
    if (cr == NULL || (size_t)(cr - p) + 1 >= n)
        return PARSE_AGAIN;
    if (cr[1] != '\n')
        return PARSE_INVALID;
    *eol = (size_t)(cr - p);
    return PARSE_OK;
}

static bool parse_num(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    uint64_t v = 0;
    if (len > 0 && s[0] == '-') {
        neg = true;
        i = 1;
    }
    if (i == len || len - i > 19)
        return false;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX + (neg ? 1 : 0))
        return false;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

enum parse_status resp_reply_next(const char *p, size_t n, size_t *used,
                                  struct resp_reply_elem *e)
{
    size_t eol;
    if (n == 0)
        return PARSE_AGAIN;
    enum parse_status st = line_end(p, n, &eol);
    if (st != PARSE_OK)
        return st;
    memset(e, 0, sizeof(*e));
    e->ptr = p + 1;
    e->len = eol - 1;
    *used = eol + 2;
    switch (p[0]) {
    case '+':
        e->type = RR_STATUS;
        return PARSE_OK;
    case '-':
        e->type = RR_ERROR;
        return PARSE_OK;
    case ',':
        e->type = RR_DOUBLE;
        return PARSE_OK;
    case ':':
        e->type = RR_INT;
        return parse_num(e->ptr, e->len, &e->n) ? PARSE_OK : PARSE_INVALID;
    case '_':
        e->type = RR_NULL;
        return e->len == 0 ? PARSE_OK : PARSE_INVALID;
    case '#':
        e->type = RR_BOOL;
        if (e->len != 1 || (e->ptr[0] != 't' && e->ptr[0] != 'f'))
            return PARSE_INVALID;
        e->n = e->ptr[0] == 't';
        return PARSE_OK;
    case '*':
    case '%':
    case '~':
        e->type = p[0] == '*' ? RR_ARRAY : p[0] == '%' ? RR_MAP : RR_SET;
        if (!parse_num(e->ptr, e->len, &e->n) || e->n < -1)
            return PARSE_INVALID;
        e->null = e->n == -1;
        if (e->null && e->type != RR_ARRAY)
            return PARSE_INVALID;
        if (e->null)
            e->n = 0;
        return PARSE_OK;
    case '$': {
        int64_t len;
        e->type = RR_BULK;
        if (!parse_num(e->ptr, e->len, &len) || len < -1)
            return PARSE_INVALID;
        if (len == -1) {
            e->null = true;
            e->ptr = NULL;
            e->len = 0;
            return PARSE_OK;
        }
        size_t start = eol + 2;
        if ((uint64_t)len > n - start || n - start - (size_t)len < 2)
            return PARSE_AGAIN;
        if (p[start + (size_t)len] != '\r' || p[start + (size_t)len + 1] != '\n')
            return PARSE_INVALID;
        e->ptr = p + start;
        e->len = (size_t)len;
        *used = start + (size_t)len + 2;
        return PARSE_OK;
    }
    default:
        return PARSE_INVALID;
    }
}
