/*
 * memcached text protocol: the command-line parser.
 *
 * mc_text_parse() takes the bytes at the head of a connection's read buffer
 * and parses one command line (terminated by "\n" or "\r\n"). It does not
 * consume the data block of a storage command: the request says how many
 * bytes follow (vlen, not counting the final "\r\n") and the caller reads
 * them. The request points into the caller's buffer: it is valid until the
 * buffer moves.
 *
 * Meta commands (mg, ms, md, ma, mn, me) are recognised here and returned with
 * their key and the rest of the line in `args`; mc_meta parses their flags
 * and checks the key (it may be base64). Behaviour is memcached 1.6's except
 * where mc_text.c's design note says we are stricter.
 */
#ifndef KIOKU_MC_TEXT_H
#define KIOKU_MC_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/parse.h"

#define MC_TEXT_KEY_MAX 250
/* Longest command line other than a retrieval's key list: memcached's 2048
 * (it closes a connection that sends more without a newline). */
#define MC_TEXT_LINE_MAX 2048
/* Longest get/gets/gat/gats line: 16 MiB, over 65,000 keys of the 250-byte
 * maximum (a million of 15 bytes). memcached 1.6 has no cap: it grows its
 * read buffer for as long as a get line keeps coming. kioku grows its read
 * buffer too (and gives it back after the line) but caps it, so one client
 * cannot make the server hold unbounded memory; a longer line is answered
 * "CLIENT_ERROR line too long" and the connection closed. */
#define MC_TEXT_KEYS_LINE_MAX (16 * 1024 * 1024)

enum mc_cmd {
    MC_NONE = 0,
    MC_GET, MC_GETS, MC_GAT, MC_GATS,
    MC_SET, MC_ADD, MC_REPLACE, MC_APPEND, MC_PREPEND, MC_CAS,
    MC_DELETE, MC_INCR, MC_DECR, MC_TOUCH,
    MC_FLUSH_ALL, MC_VERSION, MC_VERBOSITY, MC_QUIT, MC_STATS, MC_SHUTDOWN,
    MC_META_GET, MC_META_SET, MC_META_DELETE, MC_META_ARITH, MC_META_NOOP,
    MC_META_DEBUG, MC_SLABS, MC_REFRESH_CERTS, MC_CACHE_MEMLIMIT, MC_LRU_CRAWLER,
    MC_WATCH,
    MC_CMD_COUNT
};

struct mc_text_req {
    enum mc_cmd cmd;
    const char *key;        /* single-key commands and meta commands */
    size_t nkey;
    const char *keys;       /* retrieval: the validated key list, space separated */
    size_t keys_len;
    unsigned nkeys;
    uint32_t flags;         /* storage: client flags */
    int64_t exptime;        /* storage, touch, gat: seconds as sent */
    uint32_t vlen;          /* storage: data bytes that follow (without CRLF) */
    uint64_t cas;           /* cas */
    uint64_t delta;         /* incr/decr */
    int64_t delay;          /* flush_all: seconds (0 if none given) */
    uint32_t level;         /* verbosity */
    uint32_t megabytes;     /* cache_memlimit */
    bool noreply;
    bool has_data;          /* storage: vlen was valid, so a data block follows
                               even when the line is refused */
    bool http;              /* unknown command ending in "HTTP/...": an HTTP
                               request line, which memcached answers by
                               closing the connection */
    const char *args;       /* stats/shutdown/meta: the rest of the line after
                               cmd (and key), trimmed of spaces; args_len 0
                               when there is none */
    size_t args_len;
    const char *error;      /* PARSE_UNKNOWN/INVALID/TOO_LONG: the exact reply
                               line memcached 1.6 sends, without "\r\n";
                               NULL on PARSE_OK. A static string. */
};

/*
 * Parse one command line from p[0..n). Never reads p[n] or beyond, and never
 * more than the line limit (MC_TEXT_LINE_MAX, or MC_TEXT_KEYS_LINE_MAX for a
 * line starting with get/gets/gat/gats). Allocates nothing.
 *
 * PARSE_OK: *r filled, *used = length of the line including its newline.
 *   r->error is NULL. gat/gats with an exptime but no key is PARSE_OK with
 *   nkeys 0 (memcached 1.6 answers "END").
 * PARSE_AGAIN: no complete line yet (and the limit is not reached); *used 0.
 * PARSE_UNKNOWN: empty line or a command we do not know; r->error "ERROR"
 *   ("CLIENT_ERROR bad command line format" for a line of under two bytes,
 *   as memcached 1.6.45); *used set.
 * PARSE_INVALID: known command with a bad line; r->cmd and r->error set,
 *   *used set. r->error is the exact line memcached 1.6.45 sends:
 *   - "CLIENT_ERROR bad command line format" for too few tokens, a bad key
 *     (empty or > 250 bytes) or a bad number in a
 *     storage/verbosity line;
 *   - "CLIENT_ERROR invalid exptime argument" (touch, gat/gats, flush_all);
 *   - "CLIENT_ERROR invalid numeric delta argument" (incr/decr);
 *   - "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]"
 *     (delete with extra tokens other than the legacy "0": 1.6.18's rule);
 *   - "ERROR" for cache_memlimit without a decimal uint32 megabyte count.
 *   Tokens past the ones a command takes are ignored. r->noreply is set when
 *   the last token is "noreply" (and the line got as far as memcached's own
 *   check of it): the error line is then not sent.
 *   Storage commands: when the <bytes> token was a valid length, r->has_data
 *   is set and r->vlen holds it: the data block follows and the caller skips
 *   vlen + 2 bytes, as memcached 1.6.45 does.
 * PARSE_TOO_LONG: no newline within the limit for this command; r->error
 *   "CLIENT_ERROR line too long"; *used 0. The caller answers and closes
 *   (memcached 1.6.18 closes without a reply).
 */
enum parse_status mc_text_parse(struct mc_text_req *r, const char *p, size_t n,
                                size_t *used);

/*
 * Iterate the keys of a retrieval request: *cur starts at r->keys and end is
 * r->keys + r->keys_len. On true, *key and *nkey name the next key (already
 * validated by mc_text_parse) and *cur moves past it. Returns false when no
 * key is left.
 */
bool mc_text_next_key(const char **cur, const char *end, const char **key, size_t *nkey);

/* Command name, for logs and stats ("get", "set", ...); "unknown" for
 * MC_NONE or an out-of-range value. Static string. */
const char *mc_cmd_name(enum mc_cmd cmd);

#endif
