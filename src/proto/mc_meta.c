/*
 * Meta command flags: a table-driven parser and the reply-flag composer.
 *
 * Every flag letter has one row in meta_flags[]: its bit, the kind of token
 * it takes and the commands it applies to. Parsing a line is then a single
 * left-to-right pass over the space-separated tokens: look the letter up,
 * reject it if no command knows it or it was already seen, decode its token
 * by kind, and store the value if the flag applies to this command. A known
 * flag that does not apply (mg with I, md with c) is checked the same way
 * and then ignored, as memcached 1.6.45 does for mg/ms/md/ma. me looks only
 * for b right after the key and ignores the rest of its line, as memcached. Checks that memcached makes after the
 * pass (the M mode, the base64 key) come after the loop, so the first error
 * reported is the one memcached would report.
 *
 * The request keeps the letters of returnable flags in arrival order; the
 * composer walks that list, so replies carry flags in the client's order
 * without the command code knowing about order at all.
 */
#include "proto/mc_meta.h"

#include <string.h>

#include "util/base64.h"

enum meta_tok {
    TOK_NONE = 0,   /* no token; characters glued to the letter are ignored */
    TOK_U64,        /* decimal, 0..2^64-1 */
    TOK_U32,        /* decimal, 0..2^32-1 */
    TOK_TTL,        /* decimal with optional '-', signed 64-bit */
    TOK_OPAQUE,     /* any bytes, at most MC_META_OPAQUE_MAX */
    TOK_MODE,       /* its first character, checked after the pass */
    TOK_IGNORE,     /* anything; P and L */
};

#define CMD(c) (1u << (c))
#define MG CMD(MC_META_MG)
#define MS CMD(MC_META_MS)
#define MD CMD(MC_META_MD)
#define MA CMD(MC_META_MA)
#define ME CMD(MC_META_ME)

struct meta_flag {
    uint32_t bit;       /* MC_META_F_*; 0: no such flag */
    uint8_t tok;        /* enum meta_tok */
    uint8_t cmds;       /* CMD() bits of the commands it applies to */
    uint8_t bad_tok;    /* enum mc_meta_err for a malformed token */
    uint8_t returned;   /* 1: the letter asks for a value in the reply */
};

/* Indexed by the flag letter (only 'A'..'z' are looked up). */
static const struct meta_flag meta_flags[128] = {
    ['b'] = { MC_META_F_BASE64,      TOK_NONE,   MG | MS | MD | MA | ME, 0, 0 },
    ['c'] = { MC_META_F_RET_CAS,     TOK_NONE,   MG | MS | MA,      0, 1 },
    ['C'] = { MC_META_F_COMPARE_CAS, TOK_U64,    MG | MS | MD | MA, MC_META_ERR_TOKEN, 0 },
    ['D'] = { MC_META_F_DELTA,       TOK_U64,    MA,                MC_META_ERR_DELTA, 0 },
    ['E'] = { MC_META_F_NEW_CAS,     TOK_U64,    MG | MS | MD | MA, MC_META_ERR_TOKEN, 0 },
    ['f'] = { MC_META_F_RET_FLAGS,   TOK_NONE,   MG,                0, 1 },
    ['F'] = { MC_META_F_SET_FLAGS,   TOK_U32,    MS,                MC_META_ERR_FORMAT, 0 },
    ['h'] = { MC_META_F_RET_HIT,     TOK_NONE,   MG,                0, 1 },
    ['I'] = { MC_META_F_INVALIDATE,  TOK_NONE,   MS | MD,           0, 0 },
    ['J'] = { MC_META_F_INITIAL,     TOK_U64,    MA,                MC_META_ERR_INITIAL, 0 },
    ['k'] = { MC_META_F_RET_KEY,     TOK_NONE,   MG | MS | MD | MA, 0, 1 },
    ['l'] = { MC_META_F_RET_ACCESS,  TOK_NONE,   MG,                0, 1 },
    ['L'] = { MC_META_F_PROXY,       TOK_IGNORE, MG | MS | MD | MA | ME, 0, 0 },
    ['M'] = { MC_META_F_MODE,        TOK_MODE,   MS | MA,           0, 0 },
    ['N'] = { MC_META_F_VIVIFY,      TOK_TTL,    MG | MS | MA,      MC_META_ERR_TOKEN, 0 },
    ['O'] = { MC_META_F_OPAQUE,      TOK_OPAQUE, MG | MS | MD | MA, MC_META_ERR_OPAQUE, 1 },
    ['P'] = { MC_META_F_PROXY,       TOK_IGNORE, MG | MS | MD | MA | ME, 0, 0 },
    ['q'] = { MC_META_F_QUIET,       TOK_NONE,   MG | MS | MD | MA, 0, 0 },
    ['R'] = { MC_META_F_RECACHE,     TOK_TTL,    MG,                MC_META_ERR_TOKEN, 0 },
    ['s'] = { MC_META_F_RET_SIZE,    TOK_NONE,   MG | MS,           0, 1 },
    ['t'] = { MC_META_F_RET_TTL,     TOK_NONE,   MG | MA,           0, 1 },
    ['T'] = { MC_META_F_TTL,         TOK_TTL,    MG | MS | MD | MA, MC_META_ERR_TOKEN, 0 },
    ['u'] = { MC_META_F_NO_BUMP,     TOK_NONE,   MG,                0, 0 },
    ['v'] = { MC_META_F_RET_VALUE,   TOK_NONE,   MG | MA,           0, 0 },
    ['x'] = { MC_META_F_DROP_VALUE,  TOK_NONE,   MD,                0, 0 },
};

/* Decimal digits only, no sign, no overflow. */
static bool parse_u64(const char *p, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    size_t i;

    if (n == 0) {
        return false;
    }
    for (i = 0; i < n; i++) {
        unsigned d = (unsigned)(unsigned char)p[i] - '0';
        if (d > 9 || v > (UINT64_MAX - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* Optional '-', then digits; the full int64 range. */
static bool parse_i64(const char *p, size_t n, int64_t *out)
{
    bool neg = n > 0 && p[0] == '-';
    uint64_t mag;

    if (!parse_u64(p + neg, n - neg, &mag)) {
        return false;
    }
    if (neg) {
        if (mag > (uint64_t)INT64_MAX + 1) {
            return false;
        }
        *out = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
    } else {
        if (mag > (uint64_t)INT64_MAX) {
            return false;
        }
        *out = (int64_t)mag;
    }
    return true;
}

static void req_reset(struct mc_meta_req *r, enum mc_meta_cmd cmd)
{
    memset(r, 0, sizeof(*r));
    r->cmd = cmd;
    r->delta = 1;
    r->err = MC_META_OK;
    r->mode = cmd == MC_META_MS ? MC_META_MODE_SET
            : cmd == MC_META_MA ? MC_META_MODE_INCR : MC_META_MODE_NONE;
}

static enum parse_status fail(struct mc_meta_req *r, enum mc_meta_err err)
{
    r->err = err;
    return PARSE_INVALID;
}

/* Map an M character to a mode of cmd; MODE_NONE if it is not one. */
static enum mc_meta_mode mode_of(enum mc_meta_cmd cmd, char c)
{
    if (cmd == MC_META_MS) {
        switch (c) {
        case 'S': return MC_META_MODE_SET;
        case 'E': return MC_META_MODE_ADD;
        case 'A': return MC_META_MODE_APPEND;
        case 'P': return MC_META_MODE_PREPEND;
        case 'R': return MC_META_MODE_REPLACE;
        default: return MC_META_MODE_NONE;
        }
    }
    switch (c) {
    case 'I': case '+': return MC_META_MODE_INCR;
    case 'D': case '-': return MC_META_MODE_DECR;
    default: return MC_META_MODE_NONE;
    }
}

/* Store one flag's decoded token. tok/ntok exclude the letter. */
/* Decode the flag's token; when it applies, store it in r. */
static enum mc_meta_err store_flag(struct mc_meta_req *r, char letter,
                                   const struct meta_flag *f, bool applies,
                                   const char *tok, size_t ntok)
{
    uint64_t u = 0;
    int64_t s = 0;

    switch (f->tok) {
    case TOK_U64:
    case TOK_U32:
        if (!parse_u64(tok, ntok, &u) || (f->tok == TOK_U32 && u > UINT32_MAX)) {
            return f->bad_tok;
        }
        break;
    case TOK_TTL:
        if (!parse_i64(tok, ntok, &s)) {
            return f->bad_tok;
        }
        break;
    case TOK_OPAQUE:
        if (ntok > MC_META_OPAQUE_MAX) {
            return MC_META_ERR_OPAQUE;
        }
        break;
    default:
        break;
    }
    if (!applies) {
        return MC_META_OK;
    }

    switch (letter) {
    case 'C': r->compare_cas = u; break;
    case 'E': r->new_cas = u; break;
    case 'D': r->delta = u; break;
    case 'J': r->initial = u; break;
    case 'F': r->client_flags = (uint32_t)u; break;
    case 'T': r->ttl = s; break;
    case 'N': r->vivify_ttl = s; break;
    case 'R': r->recache_ttl = s; break;
    case 'O': r->opaque = tok; r->nopaque = (uint8_t)ntok; break;
    default: break;
    }
    if (f->returned) {
        r->ret[r->nret++] = letter;     /* each letter once: <= MC_META_RET_MAX */
    }
    r->flags |= f->bit;
    return MC_META_OK;
}

enum parse_status mc_meta_parse(struct mc_meta_req *r, enum mc_meta_cmd cmd,
                                const char *key, size_t nkey,
                                const char *args, size_t nargs,
                                char keybuf[MC_META_KEY_MAX])
{
    const char *p = args, *end = args + nargs;
    uint64_t seen = 0;          /* one bit per letter: 'A'..'Z' 0..25, 'a'..'z' 26..51 */
    char mode_char = 0;

    req_reset(r, cmd);
    if ((unsigned)cmd >= MC_META_CMD_COUNT) {
        return fail(r, MC_META_ERR_FORMAT);
    }
    if (cmd == MC_META_MN) {
        return PARSE_OK;        /* memcached ignores anything after "mn" */
    }
    if (nkey == 0 || nkey > MC_META_KEY_MAX) {
        return fail(r, MC_META_ERR_FORMAT);
    }
    r->key = r->key_token = key;
    r->nkey = r->nkey_token = nkey;
    if (end > p && end[-1] == '\r') {
        end--;
    }

    if (cmd == MC_META_MS) {
        const char *t;
        uint64_t dl;

        while (p < end && *p == ' ') {
            p++;
        }
        for (t = p; p < end && *p != ' '; p++) {
        }
        if (!parse_u64(t, (size_t)(p - t), &dl) || dl > UINT32_MAX) {
            return fail(r, MC_META_ERR_FORMAT);
        }
        r->datalen = (uint32_t)dl;
        r->datalen_ok = true;
    }

    if (cmd == MC_META_ME) {
        while (p < end && *p == ' ') {
            p++;
        }
        if (end - p >= 1 && p[0] == 'b' && (end - p == 1 || p[1] == ' ')) {
            r->flags |= MC_META_F_BASE64;
        }
        p = end;
    }

    for (;;) {
        const struct meta_flag *f;
        const char *t;
        unsigned char letter;
        unsigned idx;
        bool applies;
        enum mc_meta_err err;

        while (p < end && *p == ' ') {
            p++;
        }
        if (p == end) {
            break;
        }
        for (t = p; p < end && *p != ' '; p++) {
        }
        letter = (unsigned char)t[0];
        if (letter >= 'A' && letter <= 'Z') {
            idx = letter - 'A';
        } else if (letter >= 'a' && letter <= 'z') {
            idx = letter - 'a' + 26;
        } else {
            return fail(r, MC_META_ERR_FLAG);
        }
        f = &meta_flags[letter];
        applies = (f->cmds & CMD(cmd)) != 0;
        if (f->bit == 0) {
            return fail(r, MC_META_ERR_FLAG);
        }
        if (seen & (UINT64_C(1) << idx)) {
            return fail(r, MC_META_ERR_DUPLICATE);
        }
        seen |= UINT64_C(1) << idx;
        err = store_flag(r, (char)letter, f, applies, t + 1, (size_t)(p - t - 1));
        if (err != MC_META_OK) {
            return fail(r, err);
        }
        if (f->tok == TOK_MODE && applies) {
            mode_char = p - t > 1 ? t[1] : '\0';   /* "MSS" is S, "M" alone no mode */
        }
    }

    if (r->flags & MC_META_F_MODE) {
        r->mode = mode_of(cmd, mode_char);
        if (r->mode == MC_META_MODE_NONE) {
            return fail(r, MC_META_ERR_MODE);
        }
    }
    if (r->flags & MC_META_F_BASE64) {
        size_t n = 0;
        if (!base64_decode(keybuf, MC_META_KEY_MAX, key, nkey, &n) || n == 0) {
            return fail(r, MC_META_ERR_KEY_DECODE);
        }
        r->key = keybuf;
        r->nkey = n;
    }
    return PARSE_OK;
}

const char *mc_meta_errstr(enum mc_meta_cmd cmd, enum mc_meta_err err)
{
    /* ma folds its flag errors into one message in memcached 1.6.45 (md did
     * too in earlier 1.6 releases). */
    bool folded = cmd == MC_META_MA;

    switch (err) {
    case MC_META_OK:
        return "";
    case MC_META_ERR_FLAG:
        return folded ? "CLIENT_ERROR invalid or duplicate flag" : "CLIENT_ERROR invalid flag";
    case MC_META_ERR_DUPLICATE:
        return folded ? "CLIENT_ERROR invalid or duplicate flag" : "CLIENT_ERROR duplicate flag";
    case MC_META_ERR_TOKEN:
        return folded ? "CLIENT_ERROR invalid or duplicate flag"
                      : "CLIENT_ERROR bad token in command line format";
    case MC_META_ERR_DELTA:
        return folded ? "CLIENT_ERROR invalid or duplicate flag"
                      : "CLIENT_ERROR invalid numeric delta value";
    case MC_META_ERR_INITIAL:
        return folded ? "CLIENT_ERROR invalid or duplicate flag"
                      : "CLIENT_ERROR invalid numeric initial value";
    case MC_META_ERR_MODE:
        return cmd == MC_META_MA ? "CLIENT_ERROR invalid mode for ma M token"
                                 : "CLIENT_ERROR invalid mode for ms M token";
    case MC_META_ERR_OPAQUE:
        return "CLIENT_ERROR opaque token too long";
    case MC_META_ERR_KEY_DECODE:
        if (cmd == MC_META_ME) {
            return "CLIENT_ERROR bad command line format";
        }
        return folded ? "CLIENT_ERROR invalid or duplicate flag"
                      : "CLIENT_ERROR error decoding key";
    case MC_META_ERR_FORMAT:
    default:
        return "CLIENT_ERROR bad command line format";
    }
}

/* Output cursor: counts the full length, writes only what fits. */
struct out {
    char *p;
    size_t cap;
    size_t len;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->len < o->cap) {
        size_t room = o->cap - o->len;
        memcpy(o->p + o->len, s, n < room ? n : room);
    }
    o->len += n;
}

static void put_u64(struct out *o, uint64_t v)
{
    char buf[20];
    size_t i = sizeof(buf);

    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    put(o, buf + i, sizeof(buf) - i);
}

static void put_i64(struct out *o, int64_t v)
{
    if (v < 0) {
        put(o, "-", 1);
        put_u64(o, (uint64_t)0 - (uint64_t)v);
    } else {
        put_u64(o, (uint64_t)v);
    }
}

/* " <letter>" as the start of one returned flag. */
static void put_flag(struct out *o, char letter)
{
    char s[2] = { ' ', letter };
    put(o, s, 2);
}

size_t mc_meta_compose_flags(char *out, size_t cap, const struct mc_meta_req *r,
                             const struct mc_meta_vals *v)
{
    struct out o = { out, cap, 0 };
    uint8_t i;

    for (i = 0; i < r->nret; i++) {
        char c = r->ret[i];
        uint32_t bit = meta_flags[(unsigned char)c].bit;

        if (c == 'k') {
            put_flag(&o, 'k');
            put(&o, r->key_token, r->nkey_token);
            if (r->flags & MC_META_F_BASE64) {
                put(&o, " b", 2);
            }
            continue;
        }
        if (c == 'O') {
            put_flag(&o, 'O');
            put(&o, r->opaque, r->nopaque);
            continue;
        }
        if (!(v->have & bit)) {
            continue;
        }
        put_flag(&o, c);
        switch (c) {
        case 'c': put_u64(&o, v->cas); break;
        case 'f': put_u64(&o, v->client_flags); break;
        case 'h': put(&o, v->hit_before ? "1" : "0", 1); break;
        case 'l': put_i64(&o, v->last_access); break;
        case 's': put_u64(&o, v->size); break;
        case 't': put_i64(&o, v->ttl); break;
        default: break;
        }
    }
    if (v->have & MC_META_F_WON) {
        put(&o, " W", 2);
    }
    if (v->have & MC_META_F_STALE) {
        put(&o, " X", 2);
    }
    if (v->have & MC_META_F_WIN_SENT) {
        put(&o, " Z", 2);
    }
    return o.len;
}

const char *mc_meta_cmd_name(enum mc_meta_cmd cmd)
{
    static const char *const names[MC_META_CMD_COUNT] = {
        [MC_META_MG] = "mg", [MC_META_MS] = "ms", [MC_META_MD] = "md",
        [MC_META_MA] = "ma", [MC_META_MN] = "mn", [MC_META_ME] = "me",
    };
    return (unsigned)cmd < MC_META_CMD_COUNT ? names[cmd] : "unknown";
}
