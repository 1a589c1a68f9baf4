/*
 * memcached binary protocol: request decoding and response header encoding.
 *
 * A request is a 24-byte header, then a body of `bodylen` bytes laid out as
 * extras (extlen), key (keylen), value (the rest). All integers are big
 * endian. Request header:
 *
 *   0 magic 0x80 | 1 opcode | 2-3 key length | 4 extras length |
 *   5 data type | 6-7 vbucket | 8-11 total body length | 12-15 opaque |
 *   16-23 cas
 *
 * A response header has magic 0x81 and the status in bytes 6-7.
 *
 * Three entry points, all pure (bytes in, request out) and allocation free,
 * differ only in how much of the body they wait for:
 *   mc_bin_parse_header()  24 bytes: header checked, lengths validated;
 *   mc_bin_parse_prefix()  + extras and key: decoded, value left unread, so
 *                          the caller can stream a large value into an item;
 *   mc_bin_parse()         + the whole body: value given as a span.
 * Every check on an opcode's shape (extras size, key required or forbidden,
 * value allowed) needs only the header, so all three reject the same
 * requests at the same point: as soon as 24 bytes are in.
 *
 * Pointers in the request (key, value) point into the caller's buffer.
 */
#ifndef KIOKU_MC_BIN_H
#define KIOKU_MC_BIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/parse.h"

#define MC_BIN_HEADER_LEN   24
#define MC_BIN_KEY_MAX      250
#define MC_BIN_REQ_MAGIC    0x80
#define MC_BIN_RES_MAGIC    0x81

enum mc_bin_opcode {
    MC_BIN_GET        = 0x00,
    MC_BIN_SET        = 0x01,
    MC_BIN_ADD        = 0x02,
    MC_BIN_REPLACE    = 0x03,
    MC_BIN_DELETE     = 0x04,
    MC_BIN_INCREMENT  = 0x05,
    MC_BIN_DECREMENT  = 0x06,
    MC_BIN_QUIT       = 0x07,
    MC_BIN_FLUSH      = 0x08,
    MC_BIN_GETQ       = 0x09,
    MC_BIN_NOOP       = 0x0a,
    MC_BIN_VERSION    = 0x0b,
    MC_BIN_GETK       = 0x0c,
    MC_BIN_GETKQ      = 0x0d,
    MC_BIN_APPEND     = 0x0e,
    MC_BIN_PREPEND    = 0x0f,
    MC_BIN_STAT       = 0x10,
    MC_BIN_SETQ       = 0x11,
    MC_BIN_ADDQ       = 0x12,
    MC_BIN_REPLACEQ   = 0x13,
    MC_BIN_DELETEQ    = 0x14,
    MC_BIN_INCREMENTQ = 0x15,
    MC_BIN_DECREMENTQ = 0x16,
    MC_BIN_QUITQ      = 0x17,
    MC_BIN_FLUSHQ     = 0x18,
    MC_BIN_APPENDQ    = 0x19,
    MC_BIN_PREPENDQ   = 0x1a,
    MC_BIN_VERBOSITY  = 0x1b,
    MC_BIN_TOUCH      = 0x1c,
    MC_BIN_GAT        = 0x1d,
    MC_BIN_GATQ       = 0x1e,
    MC_BIN_SASL_LIST_MECHS = 0x20,  /* recognised; kioku answers as it likes */
    MC_BIN_SASL_AUTH  = 0x21,
    MC_BIN_SASL_STEP  = 0x22,
    MC_BIN_GATK       = 0x23,
    MC_BIN_GATKQ      = 0x24,
};

enum mc_bin_status {
    MC_BIN_SUCCESS          = 0x0000,
    MC_BIN_KEY_ENOENT       = 0x0001,   /* key not found */
    MC_BIN_KEY_EEXISTS      = 0x0002,   /* key exists (CAS mismatch, add) */
    MC_BIN_E2BIG            = 0x0003,   /* value too large */
    MC_BIN_EINVAL           = 0x0004,   /* invalid arguments */
    MC_BIN_NOT_STORED       = 0x0005,   /* item not stored */
    MC_BIN_DELTA_BADVAL     = 0x0006,   /* incr/decr on a non-numeric value */
    MC_BIN_AUTH_ERROR       = 0x0020,
    MC_BIN_AUTH_CONTINUE    = 0x0021,
    MC_BIN_UNKNOWN_COMMAND  = 0x0081,
    MC_BIN_ENOMEM           = 0x0082,   /* out of memory */
};

struct mc_bin_req {
    /* header, as sent */
    uint8_t opcode;
    uint8_t extlen;
    uint16_t keylen;
    uint8_t datatype;       /* reserved; memcached ignores it, so do we */
    uint16_t vbucket;       /* ignored by memcached */
    uint32_t bodylen;
    uint32_t opaque;        /* echoed in the response */
    uint64_t cas;           /* 0: no CAS check */

    /* extras, decoded for the opcodes that carry them (0 otherwise) */
    uint32_t flags;         /* set/add/replace: client flags */
    uint32_t exptime;       /* set family, incr/decr, touch/gat, flush */
    uint64_t delta;         /* incr/decr */
    uint64_t initial;       /* incr/decr: value on miss; exptime 0xffffffff
                             * means "do not create" */
    uint32_t verbosity;     /* verbosity level */

    const uint8_t *key;     /* keylen bytes; set by _prefix and full parse */
    const uint8_t *value;   /* full parse only; NULL after _prefix */
    uint32_t vlen;          /* bodylen - extlen - keylen, always set */

    /* when the parse fails: */
    uint16_t status;        /* enum mc_bin_status to answer with */
    bool fatal;             /* framing is lost: close without answering */
};

/*
 * Decode and validate the 24-byte header at p[0..n). max_body bounds the
 * body length the caller is willing to read or skip.
 *
 * PARSE_AGAIN     n < 24.
 * PARSE_OK        header valid; r->vlen set.
 * PARSE_INVALID   r->fatal: bad magic, or key + extras longer than the body:
 *                   nothing can be trusted, close the connection.
 *                 otherwise r->status = MC_BIN_EINVAL: extras size wrong for
 *                   the opcode, key missing or forbidden, key over 250 bytes,
 *                   value where none is allowed. The header is consumed and
 *                   r->bodylen bytes remain to skip (memcached 1.6 answers and
 *                   closes).
 * PARSE_UNKNOWN   opcode not known: r->status = MC_BIN_UNKNOWN_COMMAND; skip
 *                   r->bodylen bytes and carry on.
 * PARSE_TOO_LONG  bodylen > max_body: r->status = MC_BIN_E2BIG; skip
 *                   r->bodylen bytes (without buffering them) or close.
 */
enum parse_status mc_bin_parse_header(struct mc_bin_req *r, const uint8_t *p, size_t n,
                                      size_t max_body);

/*
 * Header, extras and key: as mc_bin_parse_header(), but PARSE_OK only once
 * 24 + extlen + keylen bytes are in; then r->key and the extras fields are
 * set, r->value is NULL and *used = 24 + extlen + keylen (r->vlen value bytes
 * follow). On any status other than PARSE_OK and PARSE_AGAIN, *used is 24 (0
 * when r->fatal); on PARSE_AGAIN it is 0.
 */
enum parse_status mc_bin_parse_prefix(struct mc_bin_req *r, const uint8_t *p, size_t n,
                                      size_t max_body, size_t *used);

/*
 * A whole request: PARSE_OK once 24 + bodylen bytes are in, with r->value
 * pointing at the r->vlen value bytes and *used = 24 + bodylen. Other
 * statuses as for mc_bin_parse_prefix(). Work is O(1): nothing is scanned.
 */
enum parse_status mc_bin_parse(struct mc_bin_req *r, const uint8_t *p, size_t n,
                               size_t max_body, size_t *used);

/*
 * Write a response header: magic 0x81, data type 0, body length
 * extlen + keylen + vlen (the caller keeps that within 32 bits).
 */
void mc_bin_write_header(uint8_t out[MC_BIN_HEADER_LEN], uint8_t opcode, uint16_t status,
                         uint8_t extlen, uint16_t keylen, uint32_t vlen,
                         uint32_t opaque, uint64_t cas);

/* True for an opcode kioku recognises (including the SASL ones). */
bool mc_bin_opcode_known(uint8_t opcode);

/* True for the quiet variants (GetQ, SetQ, ..., GATKQ). */
bool mc_bin_opcode_is_quiet(uint8_t opcode);

/* The non-quiet opcode of a quiet one (GetKQ -> GetK); others unchanged. */
uint8_t mc_bin_opcode_loud(uint8_t opcode);

/* True when the response carries the key (GetK, GetKQ, GATK, GATKQ). */
bool mc_bin_opcode_returns_key(uint8_t opcode);

/* "get", "setq", ...; "unknown" for an opcode not known. */
const char *mc_bin_opcode_name(uint8_t opcode);

/*
 * The text memcached puts in the body of an error response ("Not found",
 * "Invalid arguments", ...); "" for MC_BIN_SUCCESS, "Unknown error" for a
 * status not in enum mc_bin_status.
 */
const char *mc_bin_status_str(uint16_t status);

#endif
