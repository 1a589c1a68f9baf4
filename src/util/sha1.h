/*
 * SHA-1 (FIPS 180-4), only to name scripts as Redis does: EVALSHA and
 * SCRIPT LOAD speak the lowercase hex digest of a script's body. Not for
 * security. Written from the standard so that kioku's non-TLS build needs
 * no crypto library; pure, allocation-free, safe on any thread.
 */
#ifndef KIOKU_SHA1_H
#define KIOKU_SHA1_H

#include <stddef.h>
#include <stdint.h>

#define SHA1_HEX_LEN 40

/* The 20-byte digest of data[0..n). */
void sha1(uint8_t out[20], const void *data, size_t n);
/* The lowercase hex digest, NUL-terminated (41 bytes). */
void sha1_hex(char out[SHA1_HEX_LEN + 1], const void *data, size_t n);

#endif
