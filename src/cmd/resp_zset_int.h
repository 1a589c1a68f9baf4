/*
 * What resp_zset.c (one key at a time) shares with resp_zsetops.c (the
 * commands on several keys: ZUNION/ZINTER/ZDIFF and their STORE forms,
 * ZINTERCARD, ZRANGESTORE, ZMPOP): opening a set, ZRANGE's parsing and
 * walk, result buffers and replies. Internal to the RESP sorted-set
 * commands.
 */
#ifndef KIOKU_RESP_ZSET_INT_H
#define KIOKU_RESP_ZSET_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cmd/resp_cmds.h"
#include "storage/coll.h"
#include "types/zset.h"

#define ZERR_WRONGTYPE "WRONGTYPE Operation against a key holding the wrong kind of value"

/* ZRANGE's row variants (aux): range type in the low bits, direction above. */
enum { ZR_AUTO = 0, ZR_RANK = 1, ZR_SCORE = 2, ZR_LEX = 3 };
enum { ZD_AUTO = 0, ZD_FWD = 1, ZD_REV = 2 };
#define ZR_AUX(type, dir) ((type) | ((dir) << 4))

/*
 * Members copied out of one or more sets: a command on several keys
 * (ZUNIONSTORE & co., ZRANGESTORE) computes its whole result before it
 * writes the destination, which may be one of its sources. Heap memory,
 * bounded by the sources' sizes (Redis builds such a result whole too).
 */
struct zop_ent {
    const char *m;              /* into buf, set by zs_res_seal() */
    size_t off, len;
    double score;
    uint32_t src;               /* ZUNION: the source's place in the fold order */
};

struct zop_res {
    struct zop_ent *e;
    size_t n, cap;
    char *buf;
    size_t used, bcap;
    bool nomem;                 /* an add failed: the result is not whole */
};


struct range_req {
    int type;
    bool reverse, scores;
    int64_t start, end;         /* ZR_RANK */
    int64_t offset, limit;      /* LIMIT; limit < 0: all */
    struct zrange_score score;
    struct zrange_lex lex;
};

/* The set of an opened key, and the limits its encoding follows. */
struct zset *zs_root(struct coll_handle *h);
struct zset_limits zs_limits(void);

/* A score as ZADD takes it; false if it is not one. */
bool zs_parse_score(const struct resp_arg *a, double *out);

/* Replies: a list header of n members, with scores or not, and one entry. */
void zs_reply_list_hdr(struct conn *c, size_t n, bool scores);
void zs_reply_entry(struct conn *c, const struct zset_entry *e, bool scores);

/* A result copied out of sets: add (false when out of memory, with nomem
 * set), seal before reading the members, free. Starts zeroed. */
bool zs_res_add(struct zop_res *r, const struct zset_entry *e, uint32_t src);
void zs_res_seal(struct zop_res *r);
void zs_res_free(struct zop_res *r);

/* Redis's rank arithmetic: negative counts from the end, clipped; false
 * when nothing is left. */
bool zs_clip_ranks(int64_t start, int64_t end, size_t len, size_t *s, size_t *e);
/* Walk a score or lex range: reply the entries when c is not NULL, copy
 * them into res when it is not NULL; returns how many. */
size_t zs_range_walk(struct conn *c, struct zop_res *res, struct coll_handle *h, const struct range_req *q);
/* ZRANGE's arguments from argv[first] on; false after replying the error. */
bool zs_parse_range_req(struct conn *c, const struct resp_call *call, int first, bool store,
                        struct range_req *q);
/* Pop and reply n members from the low (or, with max, high) end. */
void zs_pop_some(struct conn *c, struct arena *a, struct zset *z, bool max, size_t n, bool nested);

#endif
