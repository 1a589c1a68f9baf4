/*
 * Base64 (RFC 4648 section 4: the standard alphabet, '=' padding).
 *
 * Used for binary keys in meta commands (the 'b' flag): the key arrives
 * encoded, is decoded once into a caller buffer, and is encoded again only
 * when a reply echoes it. Both directions write into a caller buffer whose
 * size they are told; nothing is allocated, nothing is global, so the
 * functions are safe on any thread and on the request path.
 *
 * Decoding is strict: the input length must be a multiple of 4, only the
 * alphabet and trailing padding are allowed (no whitespace, no URL-safe
 * alphabet), and the unused bits before the padding must be zero. A strict
 * decoder means one byte string has one encoding, so echoing the client's
 * token is the same as re-encoding the decoded key.
 */
#ifndef KIOKU_BASE64_H
#define KIOKU_BASE64_H

#include <stdbool.h>
#include <stddef.h>

/* Encoded length of n bytes, padding included (no terminating NUL). */
#define BASE64_ENCODED_LEN(n) ((((n) + 2) / 3) * 4)
/* Largest decoded length of an n-byte encoding (exact less the padding). */
#define BASE64_DECODED_MAX(n) (((n) / 4) * 3)

/*
 * Encode src[0..n) into dst. dst must hold BASE64_ENCODED_LEN(n) bytes;
 * if cap is smaller nothing is written and 0 is returned (only n == 0 also
 * returns 0). Returns the number of bytes written; no NUL is added.
 */
size_t base64_encode(char *dst, size_t cap, const void *src, size_t n);

/*
 * Decode src[0..n) into dst (cap bytes). Returns false, with *out_len left
 * untouched, if the input is not canonical base64 or the result would not
 * fit in cap bytes; dst may then hold partial output. On success *out_len
 * is the decoded length. An empty input decodes to zero bytes.
 */
bool base64_decode(void *dst, size_t cap, const char *src, size_t n, size_t *out_len);

#endif
