/*
 * Sorted set: members (byte strings) ordered by a double score, ties by
 * member bytes, as Redis orders them. Pure data structure over an arena:
 * no locks, no protocol, no slab; the caller holds the key's lock.
 *
 * Two encodings, as Redis has:
 *  - compact ("listpack"): one arena block of entries back to back in
 *    order, each [u32 len][f64 score][member][u32 len] (the trailing length
 *    walks it backwards). Used while the set has at most max_entries
 *    members of at most max_value bytes; every operation is a scan of at
 *    most that many entries.
 *  - skiplist: a skiplist with spans (skiplist.h) for order and rank in
 *    O(log n), plus an adict mapping member -> node ref for O(1) lookup.
 * A set is converted once, when an insert passes a limit, never back.
 *
 * Pointers handed out (members in an iterator entry) point into arena
 * blocks: valid until the set is changed; copy them before.
 */
#ifndef KIOKU_ZSET_H
#define KIOKU_ZSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "types/adict.h"
#include "types/arena.h"
#include "types/skiplist.h"

enum zset_enc { ZSET_COMPACT = 0, ZSET_SKIPLIST = 1 };

/* Plain data, refs only: lives in the key's collection root. */
struct zset {
    uint32_t enc;
    uint32_t len;                       /* members */
    union {
        struct {
            uint32_t blk;               /* ARENA_NONE while empty */
            uint32_t cap, used;         /* bytes allocated / in use */
        } c;
        struct {
            struct zsl zsl;
            struct adict dict;          /* member -> node ref (4 bytes) */
        } s;
    } u;
};

/* The compact encoding's limits (zset-max-listpack-entries / -value). */
struct zset_limits {
    size_t max_entries;
    size_t max_value;
};

/* The longest member: a skiplist node and an index entry each hold a copy
 * in one arena block (Redis allows 512MB; longer ones answer an error). */
#define ZSET_MEMBER_MAX (ARENA_ALLOC_MAX - 1024)

/* ZADD's options and what it did, as Redis names them. */
enum {
    ZADD_IN_INCR = 1 << 0,
    ZADD_IN_NX = 1 << 1,
    ZADD_IN_XX = 1 << 2,
    ZADD_IN_GT = 1 << 3,
    ZADD_IN_LT = 1 << 4,
};
enum {
    ZADD_OUT_NOP = 1 << 0,              /* nothing done because of the options */
    ZADD_OUT_ADDED = 1 << 1,
    ZADD_OUT_UPDATED = 1 << 2,
};

/* Result codes. */
enum {
    ZSET_OK = 0,
    ZSET_NOMEM = -1,                    /* set unchanged */
    ZSET_NAN = -2,                      /* the score (after INCR) is NaN; unchanged */
    ZSET_TOOBIG = -3,                   /* member longer than one arena block holds */
};

struct zset_entry {
    const void *m;
    size_t mlen;
    double score;
};

enum zset_iter_kind { ZITER_RANK, ZITER_SCORE, ZITER_LEX };

/* A walk over part of the set in either direction; filled by
 * zset_iter_*() and read with zset_iter_next(). */
struct zset_iter {
    struct arena *a;
    const struct zset *z;
    enum zset_iter_kind kind;
    bool reverse;
    uint32_t pos;                       /* compact: byte offset; skiplist: node ref */
    bool valid;
    size_t left;                        /* ZITER_RANK: entries still to give */
    struct zrange_score score;
    struct zrange_lex lex;              /* borrows the bounds' bytes */
};

/* An empty set in the compact encoding (allocates nothing). */
void zset_init(struct zset *z);
/* Free every block; the set is empty again. */
void zset_free(struct arena *a, struct zset *z);
static inline size_t zset_len(const struct zset *z) { return z->len; }
/* "listpack" or "skiplist", as OBJECT ENCODING answers. */
const char *zset_encoding(const struct zset *z);

/*
 * ZADD of one member: flags ZADD_IN_*, *out gets ZADD_OUT_*, *newscore the
 * member's score afterwards when it was added or updated (or kept, with
 * INCR of 0). Returns ZSET_OK or an error code, leaving the set unchanged.
 */
int zset_add(struct arena *a, struct zset *z, const struct zset_limits *lim,
             const void *m, size_t mlen, double score, int flags, int *out, double *newscore);
/* 1 and *score when the member is in the set, else 0. */
int zset_score(struct arena *a, const struct zset *z, const void *m, size_t mlen, double *score);
/* 1 removed, 0 absent. */
int zset_del(struct arena *a, struct zset *z, const void *m, size_t mlen);
/* 0-based rank from the low end (from the high end with reverse), -1 if
 * absent; *score gets its score when score != NULL. */
long zset_rank(struct arena *a, const struct zset *z, const void *m, size_t mlen, bool reverse, double *score);

/* Members with a score / member in the range. A lex range over members
 * whose scores differ follows Redis's steps, whatever they give (the
 * count may even wrap below zero, as Redis's does). */
size_t zset_count_score(struct arena *a, const struct zset *z, const struct zrange_score *r);
size_t zset_count_lex(struct arena *a, const struct zset *z, const struct zrange_lex *r);

/* Remove ranks start..end (0-based, inclusive, 0 <= start <= end < len),
 * or the members in a range; returns how many. Never allocates. */
size_t zset_remove_rank(struct arena *a, struct zset *z, size_t start, size_t end);
size_t zset_remove_score(struct arena *a, struct zset *z, const struct zrange_score *r);
size_t zset_remove_lex(struct arena *a, struct zset *z, const struct zrange_lex *r);

/* Walks. Rank: ranks start..end (0-based, inclusive, end < len), counted
 * from the high end with reverse. Score / lex: the members in the range,
 * from its low end (high end with reverse). */
void zset_iter_rank(struct zset_iter *it, struct arena *a, const struct zset *z,
                    size_t start, size_t end, bool reverse);
void zset_iter_score(struct zset_iter *it, struct arena *a, const struct zset *z,
                     const struct zrange_score *r, bool reverse);
void zset_iter_lex(struct zset_iter *it, struct arena *a, const struct zset *z,
                   const struct zrange_lex *r, bool reverse);
/* The next entry, false at the end. */
bool zset_iter_next(struct zset_iter *it, struct zset_entry *e);

/* ZSCAN: calls fn for some members and returns the next cursor (0: done).
 * The compact encoding is visited whole in one call, as Redis does. */
typedef void (*zset_scan_fn)(void *arg, const void *m, size_t mlen, double score);
uint64_t zset_scan(struct arena *a, const struct zset *z, uint64_t cursor, zset_scan_fn fn, void *arg);

/* ZUNION / ZINTER's AGGREGATE, and how a weighted score is folded in, as
 * Redis does: a score times its weight that is NaN (inf * 0) counts as 0,
 * a sum that is NaN (inf + -inf) is 0, MIN / MAX keep acc when val is NaN. */
enum zset_agg { ZAGG_SUM, ZAGG_MIN, ZAGG_MAX };
double zset_weigh(double score, double weight);
void zset_aggregate(double *acc, double val, enum zset_agg agg);

/* Check every invariant (order, spans, counts, index); 0 when sound.
 * For tests: O(n). */
int zset_verify(struct arena *a, const struct zset *z);

#endif
