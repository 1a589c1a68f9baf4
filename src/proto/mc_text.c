/*
 * memcached text protocol: the command-line parser.
 *
 * Design. One call parses one line and is stateless: the caller keeps the
 * bytes and calls again with more when told PARSE_AGAIN. The work is one
 * memchr for the newline (bounded by the line limit), then one walk over the
 * line: the command token is looked up in mc_cmds[] (a table of name, arity
 * and handler), and the handler reads its tokens in place. Nothing is copied
 * or allocated; the request points into the caller's buffer.
 *
 * Tokens are separated by one or more spaces only (a tab is part of a token,
 * as in memcached). Leading and trailing spaces are ignored, and one "\r"
 * right before the "\n" is dropped.
 *
 * What we mirror from memcached 1.6.45:
 *  - too few tokens answer "CLIENT_ERROR bad command line format" (e.g.
 *    "get", "gat 10", "set k 0 0", "incr k", "verbosity", "mg"); it is
 *    PARSE_INVALID here with r->cmd set;
 *  - tokens past the ones a command takes are ignored ("incr k 1 x y" is
 *    incr k 1), and "noreply" counts only as the last token, where it hides
 *    the reply, error lines included (so "incr k noreply" is silent; a
 *    storage line must get as far as a valid <bytes> first);
 *  - except delete, which keeps 1.6.18's rule because memccapable (and
 *    clients written against it) expect it: "delete <key> 0" and
 *    "delete <key> 0 noreply" are the legacy forms, any other extra token
 *    is "CLIENT_ERROR bad command line format.  Usage: delete <key>
 *    [noreply]";
 *  - a line shorter than two bytes ("", "x") is "CLIENT_ERROR bad command
 *    line format", any other unknown command "ERROR";
 *  - a storage line whose <bytes> is valid is followed by its data block
 *    even when the line is refused, so the caller skips it (has_data);
 *  - flush_all's and gat's bad exptime is "invalid exptime argument", a
 *    storage line's bad number is "bad command line format".
 *
 * Keys: memcached 1.6.45 checks only a key's length (1..250 bytes), and a
 * key is whatever lies between spaces, so control bytes, tabs, 0x7f and
 * bytes >= 0x80 are all key bytes. Real clients rely on it: memcaslap's
 * generated keys contain 0x10. The protocol text asks clients not to send
 * such keys; it does not ask servers to refuse them.
 *
 * Where we are deliberately stricter than memcached 1.6.18:
 *  - numbers are plain decimal: a '+' sign (memcached accepts it through
 *    strtoul) and, for unsigned fields, any '-' are invalid; a value too big
 *    for its field is invalid where memcached silently truncates it to 32
 *    bits (flags 4294967296 is stored as 0, bytes 4294967297 reads 1 byte,
 *    verbosity 4294967296 is OK);
 *  - exptime/delay accept the whole int64 range; the command layer clamps.
 * Meta command keys are not validated here: with the 'b' flag the key is
 * base64, so mc_meta checks it.
 */
#include "proto/mc_text.h"

#include <limits.h>
#include <string.h>

#define ERR_ERROR     "ERROR"
#define ERR_FORMAT    "CLIENT_ERROR bad command line format"
#define ERR_EXPTIME   "CLIENT_ERROR invalid exptime argument"
#define ERR_DELTA     "CLIENT_ERROR invalid numeric delta argument"
#define ERR_DELETE    "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]"
#define ERR_TOO_LONG  "CLIENT_ERROR line too long"

/* Largest storage <bytes>: memcached rejects vlen > INT_MAX - 2. */
#define MC_VLEN_MAX ((int64_t)INT_MAX - 2)

/* Most tokens after the command a fixed-arity command takes (cas: 6). */
#define MC_TOK_MAX 6

struct mc_tok {
    const char *s;
    size_t n;
};

/* The line after the command token, and its tokens for fixed-arity rows. */
struct mc_line {
    const char *s, *e;
    size_t n;                   /* tokens after the command */
    struct mc_tok t[MC_TOK_MAX];
    struct mc_tok last;         /* the last token, where "noreply" counts */
};

typedef enum parse_status (*mc_handler)(struct mc_text_req *r,
                                        const struct mc_line *l);

/*
 * One command. A row with max_args > 0 takes tokens: the dispatcher splits
 * the line into its first max_args tokens and refuses fewer than min_args
 * (storage rows check that themselves, to know whether data follows). A
 * row with max_args 0 takes any number of tokens (a key list, a meta flag
 * list, stats arguments) and its handler reads l->s..l->e.
 */
struct mc_cmd_row {
    const char *name;
    unsigned char len;
    unsigned char min_args;
    unsigned char max_args;
    mc_handler parse;
};

/* ---- small pure helpers ---- */

/* Any byte but the token separator: see the design note on keys. */
static inline bool is_key_byte(unsigned char c)
{
    return c != ' ';
}

static inline bool tok_is(const struct mc_tok *t, const char *lit, size_t n)
{
    return t->n == n && memcmp(t->s, lit, n) == 0;
}

static inline bool tok_noreply(const struct mc_tok *t)
{
    return tok_is(t, "noreply", 7);
}

/* A key of 1..MC_TEXT_KEY_MAX bytes (a token never holds a space). */
static bool key_ok(const struct mc_tok *t)
{
    if (t->n == 0 || t->n > MC_TEXT_KEY_MAX)
        return false;
    for (size_t i = 0; i < t->n; i++)
        if (!is_key_byte((unsigned char)t->s[i]))
            return false;
    return true;
}

/* Plain decimal digits only (at least one), value <= max. Leading zeros are
 * fine, as with strtoull; the overflow check bounds the value, not the length. */
static bool parse_u64(const struct mc_tok *t, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;

    if (t->n == 0)
        return false;
    for (size_t i = 0; i < t->n; i++) {
        unsigned d = (unsigned)((unsigned char)t->s[i] - '0');
        if (d > 9)
            return false;
        if (v > (max - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* Optional '-', then plain decimal digits; the int64 range. */
static bool parse_i64(const struct mc_tok *t, int64_t *out)
{
    struct mc_tok d = *t;
    bool neg = d.n > 0 && d.s[0] == '-';
    uint64_t v;

    if (neg) {
        d.s++;
        d.n--;
    }
    if (!parse_u64(&d, neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, &v))
        return false;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

static bool parse_u32(const struct mc_tok *t, uint32_t *out)
{
    uint64_t v;

    if (!parse_u64(t, UINT32_MAX, &v))
        return false;
    *out = (uint32_t)v;
    return true;
}

/*
 * Split s[0..e) at spaces. Stores at most max tokens in t, and the last one
 * in *last, and returns the total count. Bounded by the line, which is
 * bounded by the line limit.
 */
static size_t tokenize(const char *s, const char *e, struct mc_tok *t, size_t max,
                       struct mc_tok *last)
{
    size_t n = 0;

    last->s = s;
    last->n = 0;
    for (;;) {
        while (s < e && *s == ' ')
            s++;
        if (s == e)
            return n;
        const char *b = s;
        while (s < e && *s != ' ')
            s++;
        last->s = b;
        last->n = (size_t)(s - b);
        if (n < max)
            t[n] = *last;
        n++;
    }
}


/* s[0..e) without leading and trailing spaces, into args. */
static void set_args(struct mc_text_req *r, const char *s, const char *e)
{
    while (s < e && *s == ' ')
        s++;
    while (e > s && e[-1] == ' ')
        e--;
    r->args = s;
    r->args_len = (size_t)(e - s);
}

static enum parse_status invalid(struct mc_text_req *r, const char *err)
{
    r->error = err;
    return PARSE_INVALID;
}

/* ---- per-command handlers: l is the line after the command token ---- */

/*
 * get/gets/gat/gats: validate every key in one pass. The key list is kept
 * as one span (r->keys) and walked again with mc_text_next_key, so no array
 * of keys is needed however many there are.
 */
static enum parse_status parse_retrieval(struct mc_text_req *r,
                                         const struct mc_line *l)
{
    const char *s = l->s, *e = l->e;
    bool touch = r->cmd == MC_GAT || r->cmd == MC_GATS;

    while (s < e && *s == ' ')
        s++;
    if (touch) {
        struct mc_tok t = { s, 0 };
        while (s < e && *s != ' ')
            s++;
        t.n = (size_t)(s - t.s);
        if (t.n == 0)
            return invalid(r, ERR_FORMAT);
        if (!parse_i64(&t, &r->exptime))
            return invalid(r, ERR_EXPTIME);
        while (s < e && *s == ' ')
            s++;
    }
    while (e > s && e[-1] == ' ')
        e--;
    if (s == e)
        return invalid(r, ERR_FORMAT);

    unsigned nkeys = 0;
    size_t klen = 0;
    for (const char *c = s; c < e; c++) {
        unsigned char b = (unsigned char)*c;
        if (b == ' ') {
            if (klen != 0)
                nkeys++;
            klen = 0;
        } else if (!is_key_byte(b) || ++klen > MC_TEXT_KEY_MAX) {
            return invalid(r, ERR_FORMAT);
        }
    }
    if (klen != 0)
        nkeys++;
    r->keys = s;
    r->keys_len = (size_t)(e - s);
    r->nkeys = nkeys;
    return PARSE_OK;
}

/* set/add/replace/append/prepend/cas: key flags exptime bytes [cas] [noreply] */
static enum parse_status parse_storage(struct mc_text_req *r,
                                       const struct mc_line *l)
{
    const struct mc_tok *t = l->t;
    size_t n = l->n;
    bool cas = r->cmd == MC_CAS;
    int64_t vlen = -1;

    /* memcached reads <bytes> first: without it nothing else counts */
    if (n < 4 || !parse_i64(&t[3], &vlen) || vlen < 0 || vlen > MC_VLEN_MAX)
        return invalid(r, ERR_FORMAT);
    r->vlen = (uint32_t)vlen;
    r->has_data = true;
    r->noreply = tok_noreply(&l->last);
    r->key = t[0].s;
    r->nkey = t[0].n;
    if (n < (cas ? 5u : 4u) || !key_ok(&t[0]) || !parse_u32(&t[1], &r->flags) ||
        !parse_i64(&t[2], &r->exptime) ||
        (cas && !parse_u64(&t[4], UINT64_MAX, &r->cas)))
        return invalid(r, ERR_FORMAT);
    return PARSE_OK;
}


/* A single-key command's key: record it; false if it is not a valid key. */
static bool take_key(struct mc_text_req *r, const struct mc_tok *t)
{
    r->key = t->s;
    r->nkey = t->n;
    return key_ok(t);
}
/* delete <key> [0] [noreply]: see the design note for the legacy "0". */
static enum parse_status parse_delete(struct mc_text_req *r,
                                      const struct mc_line *l)
{
    const struct mc_tok *t = l->t;
    size_t n = l->n;

    if (n > 1) {
        bool zero = tok_is(&t[1], "0", 1);
        r->noreply = tok_noreply(&l->last);
        if (n > 3 || !(n == 2 ? (zero || r->noreply) : (zero && r->noreply)))
            return invalid(r, ERR_DELETE);
    }
    if (!take_key(r, &t[0]))
        return invalid(r, ERR_FORMAT);
    return PARSE_OK;
}

/* incr/decr <key> <delta> [noreply] */
static enum parse_status parse_arith(struct mc_text_req *r, const struct mc_line *l)
{
    const struct mc_tok *t = l->t;

    r->noreply = tok_noreply(&l->last);
    if (!take_key(r, &t[0]))
        return invalid(r, ERR_FORMAT);
    if (!parse_u64(&t[1], UINT64_MAX, &r->delta))
        return invalid(r, ERR_DELTA);
    return PARSE_OK;
}

/* touch <key> <exptime> [noreply] */
static enum parse_status parse_touch(struct mc_text_req *r, const struct mc_line *l)
{
    const struct mc_tok *t = l->t;

    r->noreply = tok_noreply(&l->last);
    if (!take_key(r, &t[0]))
        return invalid(r, ERR_FORMAT);
    if (!parse_i64(&t[1], &r->exptime))
        return invalid(r, ERR_EXPTIME);
    return PARSE_OK;
}

/* flush_all [delay] [noreply]: a lone "noreply" is not a delay. */
static enum parse_status parse_flush_all(struct mc_text_req *r,
                                         const struct mc_line *l)
{
    const struct mc_tok *t = l->t;
    size_t n = l->n;

    r->noreply = n > 0 && tok_noreply(&l->last);
    if (n > (r->noreply ? 1u : 0u) && !parse_i64(&t[0], &r->delay))
        return invalid(r, ERR_EXPTIME);
    return PARSE_OK;
}

/* verbosity <level> [noreply] */
static enum parse_status parse_verbosity(struct mc_text_req *r,
                                         const struct mc_line *l)
{
    const struct mc_tok *t = l->t;

    r->noreply = tok_noreply(&l->last);
    if (!parse_u32(&t[0], &r->level))
        return invalid(r, ERR_FORMAT);
    return PARSE_OK;
}

/* cache_memlimit <megabytes> [noreply]: memcached answers a missing or
 * non-numeric count with a bare "ERROR"; the range is the command's. */
static enum parse_status parse_memlimit(struct mc_text_req *r, const struct mc_line *l)
{
    r->noreply = l->n > 0 && tok_noreply(&l->last);
    if (l->n == 0 || !parse_u32(&l->t[0], &r->megabytes))
        return invalid(r, ERR_ERROR);
    return PARSE_OK;
}

/* version, quit: extra tokens are ignored, as memcached does. */
static enum parse_status parse_bare(struct mc_text_req *r, const struct mc_line *l)
{
    (void)r;
    (void)l;
    return PARSE_OK;
}

/* stats, shutdown, mn: the rest of the line is for the command layer. */
static enum parse_status parse_rest(struct mc_text_req *r, const struct mc_line *l)
{
    set_args(r, l->s, l->e);
    return PARSE_OK;
}

/* mg/ms/md/ma/me <key> <flags...>: the key and flags are mc_meta's to check. */
static enum parse_status parse_meta(struct mc_text_req *r, const struct mc_line *l)
{
    const char *s = l->s, *e = l->e;

    while (s < e && *s == ' ')
        s++;
    const char *k = s;
    while (s < e && *s != ' ')
        s++;
    if (s == k)
        return invalid(r, ERR_FORMAT);
    r->key = k;
    r->nkey = (size_t)(s - k);
    set_args(r, s, e);
    return PARSE_OK;
}

/* ---- the command table, indexed by enum mc_cmd ---- */

#define ROW(c, nm, lo, hi, fn) [c] = { nm, sizeof(nm) - 1, lo, hi, fn }

static const struct mc_cmd_row mc_cmds[MC_CMD_COUNT] = {
    ROW(MC_GET, "get", 0, 0, parse_retrieval),
    ROW(MC_SET, "set", 4, 5, parse_storage),
    ROW(MC_GETS, "gets", 0, 0, parse_retrieval),
    ROW(MC_DELETE, "delete", 1, 3, parse_delete),
    ROW(MC_META_GET, "mg", 0, 0, parse_meta),
    ROW(MC_META_SET, "ms", 0, 0, parse_meta),
    ROW(MC_INCR, "incr", 2, 3, parse_arith),
    ROW(MC_DECR, "decr", 2, 3, parse_arith),
    ROW(MC_GAT, "gat", 0, 0, parse_retrieval),
    ROW(MC_GATS, "gats", 0, 0, parse_retrieval),
    ROW(MC_ADD, "add", 4, 5, parse_storage),
    ROW(MC_REPLACE, "replace", 4, 5, parse_storage),
    ROW(MC_APPEND, "append", 4, 5, parse_storage),
    ROW(MC_PREPEND, "prepend", 4, 5, parse_storage),
    ROW(MC_CAS, "cas", 5, 6, parse_storage),
    ROW(MC_TOUCH, "touch", 2, 3, parse_touch),
    ROW(MC_META_DELETE, "md", 0, 0, parse_meta),
    ROW(MC_META_ARITH, "ma", 0, 0, parse_meta),
    ROW(MC_META_NOOP, "mn", 0, 0, parse_rest),
    ROW(MC_META_DEBUG, "me", 0, 0, parse_meta),
    ROW(MC_FLUSH_ALL, "flush_all", 0, 2, parse_flush_all),
    ROW(MC_VERSION, "version", 0, 0, parse_bare),
    ROW(MC_VERBOSITY, "verbosity", 1, 2, parse_verbosity),
    ROW(MC_QUIT, "quit", 0, 0, parse_bare),
    ROW(MC_STATS, "stats", 0, 0, parse_rest),
    ROW(MC_SHUTDOWN, "shutdown", 0, 0, parse_rest),
    ROW(MC_SLABS, "slabs", 0, 0, parse_rest),
    ROW(MC_REFRESH_CERTS, "refresh_certs", 0, 0, parse_bare),
    ROW(MC_CACHE_MEMLIMIT, "cache_memlimit", 0, 2, parse_memlimit),
    ROW(MC_LRU_CRAWLER, "lru_crawler", 0, 0, parse_rest),
    ROW(MC_WATCH, "watch", 0, 0, parse_rest),
};

#undef ROW

/*
 * Find a command by name. Linear over at most MC_CMD_COUNT rows, but a row
 * is skipped on its length and first byte, so the cost is a few byte
 * compares; the commonest commands are listed first.
 */
static enum mc_cmd lookup(const char *s, size_t n)
{
    for (int i = 1; i < MC_CMD_COUNT; i++) {
        const struct mc_cmd_row *row = &mc_cmds[i];
        if (row->len == n && row->name[0] == s[0] &&
            memcmp(row->name, s, n) == 0)
            return (enum mc_cmd)i;
    }
    return MC_NONE;
}

/*
 * Does a line that has no newline within MC_TEXT_LINE_MAX bytes start with a
 * retrieval command? p holds at least MC_TEXT_LINE_MAX bytes.
 */
static bool is_keys_line(const char *p)
{
    const char *s = p, *lim = p + MC_TEXT_LINE_MAX - 6;

    while (s < lim && *s == ' ')
        s++;
    if (s[0] != 'g' || (s[1] != 'e' && s[1] != 'a') || s[2] != 't')
        return false;
    return s[3] == ' ' || (s[3] == 's' && s[4] == ' ');
}

enum parse_status mc_text_parse(struct mc_text_req *r, const char *p, size_t n,
                                size_t *used)
{
    const char *nl = memchr(p, '\n', n < MC_TEXT_LINE_MAX ? n : MC_TEXT_LINE_MAX);

    *used = 0;
    if (nl == NULL) {
        if (n < MC_TEXT_LINE_MAX)
            return PARSE_AGAIN;
        if (is_keys_line(p)) {
            size_t lim = n < MC_TEXT_KEYS_LINE_MAX ? n : MC_TEXT_KEYS_LINE_MAX;
            nl = memchr(p + MC_TEXT_LINE_MAX, '\n', lim - MC_TEXT_LINE_MAX);
            if (nl == NULL && n < MC_TEXT_KEYS_LINE_MAX)
                return PARSE_AGAIN;
        }
        if (nl == NULL) {
            memset(r, 0, sizeof(*r));
            r->error = ERR_TOO_LONG;
            return PARSE_TOO_LONG;
        }
    }

    const char *s = p, *e = nl;
    memset(r, 0, sizeof(*r));
    *used = (size_t)(nl - p) + 1;
    if (e > s && e[-1] == '\r')
        e--;
    while (s < e && *s == ' ')
        s++;
    const char *c = s;
    while (s < e && *s != ' ')
        s++;
    r->cmd = s > c ? lookup(c, (size_t)(s - c)) : MC_NONE;
    if (r->cmd == MC_NONE) {
        /* memcached 1.6.45 refuses a line this short before looking it up */
        r->error = e - p < 2 ? ERR_FORMAT : ERR_ERROR;
        struct mc_tok last;
        r->http = tokenize(s, e, NULL, 0, &last) > 0 && last.n >= 5 &&
                  memcmp(last.s, "HTTP/", 5) == 0;
        return PARSE_UNKNOWN;
    }
    const struct mc_cmd_row *row = &mc_cmds[r->cmd];
    struct mc_line l;
    l.s = s;
    l.e = e;
    l.n = 0;
    if (row->max_args > 0) {
        l.n = tokenize(s, e, l.t, MC_TOK_MAX, &l.last);
        if (l.n < row->min_args && row->parse != parse_storage)
            return invalid(r, ERR_FORMAT);
    }
    return row->parse(r, &l);
}

bool mc_text_next_key(const char **cur, const char *end, const char **key, size_t *nkey)
{
    const char *s = *cur;

    while (s < end && *s == ' ')
        s++;
    if (s == end) {
        *cur = s;
        return false;
    }
    const char *k = s;
    while (s < end && *s != ' ')
        s++;
    *key = k;
    *nkey = (size_t)(s - k);
    *cur = s;
    return true;
}

const char *mc_cmd_name(enum mc_cmd cmd)
{
    if ((int)cmd <= MC_NONE || cmd >= MC_CMD_COUNT)
        return "unknown";
    return mc_cmds[cmd].name;
}
