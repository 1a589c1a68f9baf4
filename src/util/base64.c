/*
 * Base64. The decoder works one 4-byte quantum at a time: each byte maps to
 * its 6-bit value or to a "bad" marker, padding is accepted only in the last
 * quantum, and every write is checked against cap before it happens, so the
 * code never reads outside src[0..n) or writes outside dst[0..cap).
 */
#include "util/base64.h"

#include <stdint.h>

static const char b64_alphabet[64] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

#define B64_BAD 0xff    /* not in the alphabet (padding included) */

/* The inverse of b64_alphabet; B64_BAD for anything else, '=' included. */
static uint8_t b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return (uint8_t)(c - 'A');
    }
    if (c >= 'a' && c <= 'z') {
        return (uint8_t)(c - 'a' + 26);
    }
    if (c >= '0' && c <= '9') {
        return (uint8_t)(c - '0' + 52);
    }
    if (c == '+') {
        return 62;
    }
    if (c == '/') {
        return 63;
    }
    return B64_BAD;
}

size_t base64_encode(char *dst, size_t cap, const void *src, size_t n)
{
    const uint8_t *s = src;
    size_t need = BASE64_ENCODED_LEN(n);
    size_t i, o = 0;

    if (n > (SIZE_MAX / 4) * 3 - 2 || need > cap) {
        return 0;
    }
    for (i = 0; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        dst[o++] = b64_alphabet[v >> 18];
        dst[o++] = b64_alphabet[(v >> 12) & 63];
        dst[o++] = b64_alphabet[(v >> 6) & 63];
        dst[o++] = b64_alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)s[i] << 16;
        dst[o++] = b64_alphabet[v >> 18];
        dst[o++] = b64_alphabet[(v >> 12) & 63];
        dst[o++] = '=';
        dst[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
        dst[o++] = b64_alphabet[v >> 18];
        dst[o++] = b64_alphabet[(v >> 12) & 63];
        dst[o++] = b64_alphabet[(v >> 6) & 63];
        dst[o++] = '=';
    }
    return o;
}

bool base64_decode(void *dst, size_t cap, const char *src, size_t n, size_t *out_len)
{
    uint8_t *d = dst;
    size_t i, o = 0;

    if (n % 4 != 0) {
        return false;
    }
    for (i = 0; i < n; i += 4) {
        const unsigned char *q = (const unsigned char *)src + i;
        uint8_t a = b64_value(q[0]), b = b64_value(q[1]);
        uint8_t c = b64_value(q[2]), e = b64_value(q[3]);
        bool last = i + 4 == n;

        if (a == B64_BAD || b == B64_BAD) {
            return false;
        }
        if (c == B64_BAD) {
            /* "xx==": one byte; only legal in the last quantum. */
            if (!last || q[2] != '=' || q[3] != '=' || (b & 0x0f) != 0) {
                return false;
            }
            if (o + 1 > cap) {
                return false;
            }
            d[o++] = (uint8_t)(a << 2 | b >> 4);
            break;
        }
        if (e == B64_BAD) {
            /* "xxx=": two bytes. */
            if (!last || q[3] != '=' || (c & 0x03) != 0) {
                return false;
            }
            if (o + 2 > cap) {
                return false;
            }
            d[o++] = (uint8_t)(a << 2 | b >> 4);
            d[o++] = (uint8_t)(b << 4 | c >> 2);
            break;
        }
        if (o + 3 > cap) {
            return false;
        }
        d[o++] = (uint8_t)(a << 2 | b >> 4);
        d[o++] = (uint8_t)(b << 4 | c >> 2);
        d[o++] = (uint8_t)(c << 6 | e);
    }
    *out_len = o;
    return true;
}
