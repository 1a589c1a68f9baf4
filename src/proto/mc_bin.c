/*
 * Binary protocol decoding, driven by one table of opcode shapes.
 *
 * Each known opcode has a row: its name, the extras sizes it accepts, whether
 * it needs, forbids or tolerates a key, whether it may carry a value, how its
 * extras decode, and whether it is a quiet variant. The parser checks a
 * header against its row and nothing else, so adding an opcode is one line
 * and every opcode is validated by the same code.
 *
 * The shapes follow what memcached 1.6 accepts (checked against 1.6.18):
 * e.g. Get with extras or a value, Delete with extras, Flush with a key or
 * with 8 bytes of extras are all "Invalid arguments".
 *
 * The three parse depths share one function; the only difference is how many
 * body bytes must be present before PARSE_OK. Nothing is scanned, so a parse
 * is O(1) whatever the body size, and a caller that gets PARSE_AGAIN simply
 * calls again with more bytes: no state is kept between calls.
 */
#include "proto/mc_bin.h"

#include <string.h>

enum key_rule { KEY_NONE = 0, KEY_REQUIRED, KEY_OPTIONAL };

enum ext_kind {
    EXT_NONE = 0,
    EXT_STORE,      /* flags u32, exptime u32 */
    EXT_ARITH,      /* delta u64, initial u64, exptime u32 */
    EXT_EXPTIME,    /* exptime u32 (touch, gat, flush) */
    EXT_VERBOSITY,  /* level u32 */
};

struct opcode_shape {
    const char *name;       /* NULL: opcode unknown */
    uint8_t ext;            /* extras size accepted ... */
    uint8_t ext_alt;        /* ... or this one (same as ext if only one) */
    uint8_t key;            /* enum key_rule */
    uint8_t value;          /* 1: a value may follow */
    uint8_t kind;           /* enum ext_kind */
    uint8_t quiet;          /* 1: quiet variant */
    uint8_t loud;           /* the non-quiet opcode */
};

#define ROW(op, nm, e, ea, k, v, kd, q, l) \
    [op] = { nm, e, ea, k, v, kd, q, l }

static const struct opcode_shape shapes[256] = {
    ROW(MC_BIN_GET,        "get",        0, 0, KEY_REQUIRED, 0, EXT_NONE,    0, MC_BIN_GET),
    ROW(MC_BIN_GETQ,       "getq",       0, 0, KEY_REQUIRED, 0, EXT_NONE,    1, MC_BIN_GET),
    ROW(MC_BIN_GETK,       "getk",       0, 0, KEY_REQUIRED, 0, EXT_NONE,    0, MC_BIN_GETK),
    ROW(MC_BIN_GETKQ,      "getkq",      0, 0, KEY_REQUIRED, 0, EXT_NONE,    1, MC_BIN_GETK),
    ROW(MC_BIN_SET,        "set",        8, 8, KEY_REQUIRED, 1, EXT_STORE,   0, MC_BIN_SET),
    ROW(MC_BIN_SETQ,       "setq",       8, 8, KEY_REQUIRED, 1, EXT_STORE,   1, MC_BIN_SET),
    ROW(MC_BIN_ADD,        "add",        8, 8, KEY_REQUIRED, 1, EXT_STORE,   0, MC_BIN_ADD),
    ROW(MC_BIN_ADDQ,       "addq",       8, 8, KEY_REQUIRED, 1, EXT_STORE,   1, MC_BIN_ADD),
    ROW(MC_BIN_REPLACE,    "replace",    8, 8, KEY_REQUIRED, 1, EXT_STORE,   0, MC_BIN_REPLACE),
    ROW(MC_BIN_REPLACEQ,   "replaceq",   8, 8, KEY_REQUIRED, 1, EXT_STORE,   1, MC_BIN_REPLACE),
    ROW(MC_BIN_APPEND,     "append",     0, 0, KEY_REQUIRED, 1, EXT_NONE,    0, MC_BIN_APPEND),
    ROW(MC_BIN_APPENDQ,    "appendq",    0, 0, KEY_REQUIRED, 1, EXT_NONE,    1, MC_BIN_APPEND),
    ROW(MC_BIN_PREPEND,    "prepend",    0, 0, KEY_REQUIRED, 1, EXT_NONE,    0, MC_BIN_PREPEND),
    ROW(MC_BIN_PREPENDQ,   "prependq",   0, 0, KEY_REQUIRED, 1, EXT_NONE,    1, MC_BIN_PREPEND),
    ROW(MC_BIN_DELETE,     "delete",     0, 0, KEY_REQUIRED, 0, EXT_NONE,    0, MC_BIN_DELETE),
    ROW(MC_BIN_DELETEQ,    "deleteq",    0, 0, KEY_REQUIRED, 0, EXT_NONE,    1, MC_BIN_DELETE),
    ROW(MC_BIN_INCREMENT,  "increment",  20, 20, KEY_REQUIRED, 0, EXT_ARITH, 0, MC_BIN_INCREMENT),
    ROW(MC_BIN_INCREMENTQ, "incrementq", 20, 20, KEY_REQUIRED, 0, EXT_ARITH, 1, MC_BIN_INCREMENT),
    ROW(MC_BIN_DECREMENT,  "decrement",  20, 20, KEY_REQUIRED, 0, EXT_ARITH, 0, MC_BIN_DECREMENT),
    ROW(MC_BIN_DECREMENTQ, "decrementq", 20, 20, KEY_REQUIRED, 0, EXT_ARITH, 1, MC_BIN_DECREMENT),
    ROW(MC_BIN_QUIT,       "quit",       0, 0, KEY_NONE,     0, EXT_NONE,    0, MC_BIN_QUIT),
    ROW(MC_BIN_QUITQ,      "quitq",      0, 0, KEY_NONE,     0, EXT_NONE,    1, MC_BIN_QUIT),
    ROW(MC_BIN_FLUSH,      "flush",      0, 4, KEY_NONE,     0, EXT_EXPTIME, 0, MC_BIN_FLUSH),
    ROW(MC_BIN_FLUSHQ,     "flushq",     0, 4, KEY_NONE,     0, EXT_EXPTIME, 1, MC_BIN_FLUSH),
    ROW(MC_BIN_NOOP,       "noop",       0, 0, KEY_NONE,     0, EXT_NONE,    0, MC_BIN_NOOP),
    ROW(MC_BIN_VERSION,    "version",    0, 0, KEY_NONE,     0, EXT_NONE,    0, MC_BIN_VERSION),
    ROW(MC_BIN_STAT,       "stat",       0, 0, KEY_OPTIONAL, 0, EXT_NONE,    0, MC_BIN_STAT),
    ROW(MC_BIN_VERBOSITY,  "verbosity",  4, 4, KEY_NONE,     0, EXT_VERBOSITY, 0, MC_BIN_VERBOSITY),
    ROW(MC_BIN_TOUCH,      "touch",      4, 4, KEY_REQUIRED, 0, EXT_EXPTIME, 0, MC_BIN_TOUCH),
    ROW(MC_BIN_GAT,        "gat",        4, 4, KEY_REQUIRED, 0, EXT_EXPTIME, 0, MC_BIN_GAT),
    ROW(MC_BIN_GATQ,       "gatq",       4, 4, KEY_REQUIRED, 0, EXT_EXPTIME, 1, MC_BIN_GAT),
    ROW(MC_BIN_GATK,       "gatk",       4, 4, KEY_REQUIRED, 0, EXT_EXPTIME, 0, MC_BIN_GATK),
    ROW(MC_BIN_GATKQ,      "gatkq",      4, 4, KEY_REQUIRED, 0, EXT_EXPTIME, 1, MC_BIN_GATK),
    ROW(MC_BIN_SASL_LIST_MECHS, "sasl_list_mechs", 0, 0, KEY_NONE, 0, EXT_NONE, 0,
        MC_BIN_SASL_LIST_MECHS),
    ROW(MC_BIN_SASL_AUTH,  "sasl_auth",  0, 0, KEY_REQUIRED, 1, EXT_NONE,    0, MC_BIN_SASL_AUTH),
    ROW(MC_BIN_SASL_STEP,  "sasl_step",  0, 0, KEY_REQUIRED, 1, EXT_NONE,    0, MC_BIN_SASL_STEP),
};

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static enum parse_status reject(struct mc_bin_req *r, enum parse_status st,
                                uint16_t status, bool fatal)
{
    r->status = status;
    r->fatal = fatal;
    return st;
}

/* Does the header agree with the opcode's row? (Only lengths are involved.) */
static bool shape_ok(const struct opcode_shape *s, const struct mc_bin_req *r)
{
    if (r->extlen != s->ext && r->extlen != s->ext_alt) {
        return false;
    }
    if ((s->key == KEY_REQUIRED && r->keylen == 0) ||
        (s->key == KEY_NONE && r->keylen != 0)) {
        return false;
    }
    return s->value || r->vlen == 0;
}

enum parse_status mc_bin_parse_header(struct mc_bin_req *r, const uint8_t *p, size_t n,
                                      size_t max_body)
{
    const struct opcode_shape *s;

    memset(r, 0, sizeof(*r));
    if (n < MC_BIN_HEADER_LEN) {
        return PARSE_AGAIN;
    }
    if (p[0] != MC_BIN_REQ_MAGIC) {
        return reject(r, PARSE_INVALID, MC_BIN_EINVAL, true);
    }
    r->opcode = p[1];
    r->keylen = be16(p + 2);
    r->extlen = p[4];
    r->datatype = p[5];
    r->vbucket = be16(p + 6);
    r->bodylen = be32(p + 8);
    r->opaque = be32(p + 12);
    r->cas = be64(p + 16);

    if ((uint32_t)r->keylen + r->extlen > r->bodylen) {
        return reject(r, PARSE_INVALID, MC_BIN_EINVAL, true);
    }
    r->vlen = r->bodylen - r->keylen - r->extlen;
    if (r->bodylen > max_body) {
        return reject(r, PARSE_TOO_LONG, MC_BIN_E2BIG, false);
    }
    s = &shapes[r->opcode];
    if (s->name == NULL) {
        return reject(r, PARSE_UNKNOWN, MC_BIN_UNKNOWN_COMMAND, false);
    }
    if (!shape_ok(s, r) || r->keylen > MC_BIN_KEY_MAX) {
        return reject(r, PARSE_INVALID, MC_BIN_EINVAL, false);
    }
    return PARSE_OK;
}

/* Decode extras and key; the caller checked that they are all in p. */
static void decode_prefix(struct mc_bin_req *r, const uint8_t *p)
{
    const uint8_t *ext = p + MC_BIN_HEADER_LEN;

    switch (shapes[r->opcode].kind) {
    case EXT_STORE:
        r->flags = be32(ext);
        r->exptime = be32(ext + 4);
        break;
    case EXT_ARITH:
        r->delta = be64(ext);
        r->initial = be64(ext + 8);
        r->exptime = be32(ext + 16);
        break;
    case EXT_EXPTIME:
        if (r->extlen == 4) {
            r->exptime = be32(ext);
        }
        break;
    case EXT_VERBOSITY:
        r->verbosity = be32(ext);
        break;
    default:
        break;
    }
    r->key = r->keylen ? ext + r->extlen : NULL;
}

/* Shared by the prefix and full parses; full says whether to wait for the value. */
static enum parse_status parse_upto(struct mc_bin_req *r, const uint8_t *p, size_t n,
                                    size_t max_body, size_t *used, bool full)
{
    enum parse_status st = mc_bin_parse_header(r, p, n, max_body);
    size_t need;

    *used = 0;
    if (st == PARSE_AGAIN) {
        return st;
    }
    if (st != PARSE_OK) {
        *used = r->fatal ? 0 : MC_BIN_HEADER_LEN;
        return st;
    }
    need = MC_BIN_HEADER_LEN + (size_t)r->extlen + r->keylen + (full ? r->vlen : 0);
    if (n < need) {
        return PARSE_AGAIN;
    }
    decode_prefix(r, p);
    if (full) {
        r->value = p + MC_BIN_HEADER_LEN + r->extlen + r->keylen;
    }
    *used = need;
    return PARSE_OK;
}

enum parse_status mc_bin_parse_prefix(struct mc_bin_req *r, const uint8_t *p, size_t n,
                                      size_t max_body, size_t *used)
{
    return parse_upto(r, p, n, max_body, used, false);
}

enum parse_status mc_bin_parse(struct mc_bin_req *r, const uint8_t *p, size_t n,
                               size_t max_body, size_t *used)
{
    return parse_upto(r, p, n, max_body, used, true);
}

void mc_bin_write_header(uint8_t out[MC_BIN_HEADER_LEN], uint8_t opcode, uint16_t status,
                         uint8_t extlen, uint16_t keylen, uint32_t vlen,
                         uint32_t opaque, uint64_t cas)
{
    out[0] = MC_BIN_RES_MAGIC;
    out[1] = opcode;
    put16(out + 2, keylen);
    out[4] = extlen;
    out[5] = 0;
    put16(out + 6, status);
    put32(out + 8, (uint32_t)extlen + keylen + vlen);
    put32(out + 12, opaque);
    put32(out + 16, (uint32_t)(cas >> 32));
    put32(out + 20, (uint32_t)cas);
}

bool mc_bin_opcode_known(uint8_t opcode)
{
    return shapes[opcode].name != NULL;
}

bool mc_bin_opcode_is_quiet(uint8_t opcode)
{
    return shapes[opcode].quiet != 0;
}

uint8_t mc_bin_opcode_loud(uint8_t opcode)
{
    return shapes[opcode].name != NULL ? shapes[opcode].loud : opcode;
}

bool mc_bin_opcode_returns_key(uint8_t opcode)
{
    uint8_t loud = mc_bin_opcode_loud(opcode);
    return loud == MC_BIN_GETK || loud == MC_BIN_GATK;
}

const char *mc_bin_opcode_name(uint8_t opcode)
{
    return shapes[opcode].name != NULL ? shapes[opcode].name : "unknown";
}

const char *mc_bin_status_str(uint16_t status)
{
    switch (status) {
    case MC_BIN_SUCCESS: return "";
    case MC_BIN_KEY_ENOENT: return "Not found";
    case MC_BIN_KEY_EEXISTS: return "Data exists for key.";
    case MC_BIN_E2BIG: return "Too large.";
    case MC_BIN_EINVAL: return "Invalid arguments";
    case MC_BIN_NOT_STORED: return "Not stored.";
    case MC_BIN_DELTA_BADVAL: return "Non-numeric server-side value for incr or decr";
    case MC_BIN_AUTH_ERROR: return "Auth failure.";
    case MC_BIN_AUTH_CONTINUE: return "Continue";
    case MC_BIN_UNKNOWN_COMMAND: return "Unknown command";
    case MC_BIN_ENOMEM: return "Out of memory";
    default: return "Unknown error";
    }
}
