/*
 * memcached meta commands (mg, ms, md, ma, mn, me): the flag parser and the
 * composer of returned flags.
 *
 * mc_text_parse() splits a meta line into the command, the key token and the
 * rest of the line (`args`). mc_meta_parse() turns key + args into a
 * struct mc_meta_req: which flags were sent (a bitmask), their decoded
 * tokens, the ms data length, the key to look up (base64-decoded when 'b' is
 * given) and the order in which the client asked for returned flags. It is
 * pure: it sees only the bytes it is given and writes only *r and the
 * caller's key buffer; it allocates nothing.
 *
 * mc_meta_compose_flags() is the other half: given the request and the
 * values the command produced, it writes the flags part of the reply line
 * (" f30 t-1 c123 kfoo O9") in the order the client asked for them, so the
 * command code only fills in values.
 *
 * Flags and the commands they apply to. mg, ms, md and ma accept every
 * letter of the table and ignore the ones that do not apply to them (their
 * tokens are still checked), as memcached 1.6.45 does; me looks only for b
 * right after the key and ignores the rest of its line. Any other letter is
 * "invalid flag"; a letter given twice is "duplicate flag"; P and L, proxy
 * hints, take any token and are ignored:
 *
 *   flag       mg  ms  md  ma  me   meaning
 *   b          x   x   x   x   x    key is base64; decoded before lookup
 *   c          x   x       x        return CAS (mg: item's; ms/ma: new one)
 *   C<u64>     x   x   x   x        compare CAS before changing the item;
 *                                   mg: no value when it matches (HD)
 *   D<u64>                 x        delta (default 1)
 *   E<u64>     x   x   x   x        use this as the item's new CAS
 *   f          x                    return client flags
 *   F<u32>         x                set client flags (default 0)
 *   h          x                    return 0/1: fetched before this command
 *   I              x   x            ms: invalidate if CAS older; md: mark
 *                                   stale instead of removing
 *   J<u64>                 x        initial value on auto-create (default 0)
 *   k          x   x   x   x        return the key (as sent)
 *   l          x                    return seconds since last access
 *   M<char>        x       x        mode: ms E add, A append, P prepend,
 *                                   R replace, S set (default); ma I or +
 *                                   incr (default), D or - decr
 *   N<ttl>     x   x       x        auto-create on miss with this TTL (ms:
 *                                   append mode only)
 *   O<opaque>  x   x   x   x        up to 32 bytes echoed in the reply
 *   q          x   x   x   x        quiet: hide the reply on the common case
 *                                   (mg: EN, ms: HD, md: HD, ma: HD)
 *   R<ttl>     x                    win recache if remaining TTL below token
 *   s          x   x                return item size
 *   t          x           x        return remaining TTL (-1: never expires)
 *   T<ttl>     x   x   x   x        mg/ma: update TTL; ms: TTL; md: TTL
 *                                   when marking stale (with I)
 *   u          x                    do not bump in LRU / mark as fetched
 *   v          x           x        return the value (VA instead of HD)
 *   x                  x            md: drop the value, keep the item
 *
 * mn ignores the rest of its line, as memcached does.
 *
 * Tokens: <u64>/<u32> are plain decimal digits in range; <ttl> is decimal
 * with an optional leading '-' (a signed 64-bit value: the command applies
 * the expiry rules); tokenless flags ignore any characters glued to them
 * (memcached 1.6 does the same: "k1" is "k"). Flags are separated by one or
 * more spaces.
 */
#ifndef KIOKU_MC_META_H
#define KIOKU_MC_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/parse.h"

#define MC_META_KEY_MAX     250     /* key bytes, as sent and as decoded */
#define MC_META_OPAQUE_MAX  32      /* bytes of an O token after the 'O' */
#define MC_META_RET_MAX     8       /* distinct returnable flags: c f h k l O s t */
/* mc_meta_compose_flags() never writes more than this. */
#define MC_META_FLAGS_OUT_MAX 512

enum mc_meta_cmd {
    MC_META_MG = 0,     /* meta get */
    MC_META_MS,         /* meta set */
    MC_META_MD,         /* meta delete */
    MC_META_MA,         /* meta arithmetic */
    MC_META_MN,         /* meta no-op */
    MC_META_ME,         /* meta debug */
    MC_META_CMD_COUNT
};

/* One bit per flag letter, for mc_meta_req.flags and mc_meta_vals.have. */
enum mc_meta_flag {
    MC_META_F_BASE64      = 1u << 0,    /* b */
    MC_META_F_RET_CAS     = 1u << 1,    /* c */
    MC_META_F_COMPARE_CAS = 1u << 2,    /* C */
    MC_META_F_DELTA       = 1u << 3,    /* D */
    MC_META_F_NEW_CAS     = 1u << 4,    /* E */
    MC_META_F_RET_FLAGS   = 1u << 5,    /* f */
    MC_META_F_SET_FLAGS   = 1u << 6,    /* F */
    MC_META_F_RET_HIT     = 1u << 7,    /* h */
    MC_META_F_INVALIDATE  = 1u << 8,    /* I */
    MC_META_F_INITIAL     = 1u << 9,    /* J */
    MC_META_F_RET_KEY     = 1u << 10,   /* k */
    MC_META_F_RET_ACCESS  = 1u << 11,   /* l */
    MC_META_F_MODE        = 1u << 12,   /* M */
    MC_META_F_VIVIFY      = 1u << 13,   /* N */
    MC_META_F_OPAQUE      = 1u << 14,   /* O */
    MC_META_F_QUIET       = 1u << 15,   /* q */
    MC_META_F_RECACHE     = 1u << 16,   /* R */
    MC_META_F_RET_SIZE    = 1u << 17,   /* s */
    MC_META_F_RET_TTL     = 1u << 18,   /* t */
    MC_META_F_TTL         = 1u << 19,   /* T */
    MC_META_F_NO_BUMP     = 1u << 20,   /* u */
    MC_META_F_RET_VALUE   = 1u << 21,   /* v */
    MC_META_F_DROP_VALUE  = 1u << 22,   /* x */
    MC_META_F_PROXY       = 1u << 23,   /* P or L (ignored) */
    /* Reply-only flags (mc_meta_vals.have), never parsed from a request. */
    MC_META_F_WON         = 1u << 24,   /* W: client won the recache */
    MC_META_F_STALE       = 1u << 25,   /* X: item is stale */
    MC_META_F_WIN_SENT    = 1u << 26,   /* Z: a win was already handed out */
};

/* M token, normalised. MODE_NONE only for commands without M. */
enum mc_meta_mode {
    MC_META_MODE_NONE = 0,
    MC_META_MODE_SET,       /* ms default, 'S' */
    MC_META_MODE_ADD,       /* 'E' */
    MC_META_MODE_APPEND,    /* 'A' */
    MC_META_MODE_PREPEND,   /* 'P' */
    MC_META_MODE_REPLACE,   /* 'R' */
    MC_META_MODE_INCR,      /* ma default, 'I' or '+' */
    MC_META_MODE_DECR,      /* 'D' or '-' */
};

/* Why a line was rejected; mc_meta_errstr() gives the reply line. */
enum mc_meta_err {
    MC_META_OK = 0,
    MC_META_ERR_FORMAT,         /* bad key length, missing/bad ms datalen, bad F */
    MC_META_ERR_FLAG,           /* unknown flag letter (or not one of me's) */
    MC_META_ERR_DUPLICATE,      /* flag letter given twice */
    MC_META_ERR_TOKEN,          /* missing or bad number for C E N R T */
    MC_META_ERR_DELTA,          /* missing or bad number for D */
    MC_META_ERR_INITIAL,        /* missing or bad number for J */
    MC_META_ERR_MODE,           /* M character not a mode of this command */
    MC_META_ERR_OPAQUE,         /* O token longer than MC_META_OPAQUE_MAX */
    MC_META_ERR_KEY_DECODE,     /* 'b' given and the key is not base64 */
    MC_META_ERR_COUNT
};

struct mc_meta_req {
    enum mc_meta_cmd cmd;
    uint32_t flags;             /* MC_META_F_* bits of the flags sent */

    const char *key;            /* the key to look up: the token, or the */
    size_t nkey;                /*   decoded bytes in the caller's keybuf */
    const char *key_token;      /* the key exactly as sent (echoed by 'k') */
    size_t nkey_token;

    uint32_t datalen;           /* ms: data bytes that follow (without CRLF) */
    bool datalen_ok;            /* ms: datalen parsed; set even on PARSE_INVALID
                                 * so the caller can swallow the data block */

    uint64_t compare_cas;       /* C */
    uint64_t new_cas;           /* E */
    uint64_t delta;             /* D; 1 if not given */
    uint64_t initial;           /* J; 0 if not given */
    uint32_t client_flags;      /* F; 0 if not given */
    int64_t ttl;                /* T */
    int64_t vivify_ttl;         /* N */
    int64_t recache_ttl;        /* R */
    enum mc_meta_mode mode;     /* M; the command's default if not given */

    const char *opaque;         /* O token without the 'O' (points into args) */
    uint8_t nopaque;

    char ret[MC_META_RET_MAX];  /* returnable flag letters, in request order */
    uint8_t nret;

    enum mc_meta_err err;       /* MC_META_OK unless PARSE_INVALID */
};

/*
 * Parse the key and flags of one meta command.
 *
 * key[0..nkey) is the key token and args[0..nargs) the rest of the line
 * after it, without the line ending (a trailing '\r' is tolerated). keybuf
 * (MC_META_KEY_MAX bytes, owned by the caller) receives the decoded key when
 * 'b' is given. r->key, r->key_token and r->opaque point into key, args or
 * keybuf: they are valid while those are.
 *
 * Checks, in the order memcached applies them: key length (1..250 bytes),
 * ms datalen, then each flag left to right (known for the command, not
 * repeated, token well formed), then the M mode and the base64 key.
 *
 * PARSE_OK: *r filled. PARSE_INVALID: r->err says why (for ms, r->datalen_ok
 * says whether the data block can be skipped). Never PARSE_AGAIN: the line
 * is complete. Work is bounded by nargs.
 */
enum parse_status mc_meta_parse(struct mc_meta_req *r, enum mc_meta_cmd cmd,
                                const char *key, size_t nkey,
                                const char *args, size_t nargs,
                                char keybuf[MC_META_KEY_MAX]);

/*
 * The error line for a rejected command, e.g. "CLIENT_ERROR duplicate flag"
 * (no CRLF). The strings are memcached 1.6.45's, which differ by command: ma
 * reports most flag errors as "invalid or duplicate flag".
 */
const char *mc_meta_errstr(enum mc_meta_cmd cmd, enum mc_meta_err err);

/* Values a command produced, for mc_meta_compose_flags(). */
struct mc_meta_vals {
    uint32_t have;          /* MC_META_F_RET_* bits whose value below is set,
                             * plus MC_META_F_WON / _STALE / _WIN_SENT */
    uint64_t cas;           /* c */
    uint32_t client_flags;  /* f */
    bool hit_before;        /* h */
    int64_t last_access;    /* l: seconds */
    uint64_t size;          /* s: value bytes */
    int64_t ttl;            /* t: seconds remaining, -1 for never */
};

/*
 * Write the flags part of a reply line into out[0..cap): for each returnable
 * flag the client sent, in its order, " <letter><value>" if the command set
 * that value in v->have ('k' and 'O' need no value: they echo the request;
 * 'k' is followed by " b" when the key was base64), then " W", " X", " Z"
 * for the reply-only bits. A miss passes have == 0 and gets only k and O,
 * as memcached does.
 *
 * Returns the length of the full output (at most MC_META_FLAGS_OUT_MAX, no
 * NUL). If that is more than cap, only part was written: pass a buffer of
 * MC_META_FLAGS_OUT_MAX bytes and it always fits.
 */
size_t mc_meta_compose_flags(char *out, size_t cap, const struct mc_meta_req *r,
                             const struct mc_meta_vals *v);

/* "mg", "ms", ... for logs and stats. */
const char *mc_meta_cmd_name(enum mc_meta_cmd cmd);

#endif
