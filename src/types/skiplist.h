/*
 * Skiplist with spans: the ordered half of a large sorted set.
 *
 * Nodes are arena blocks named by 32-bit references, ordered by (score,
 * member) with members compared as bytes (memcmp over the shorter, then the
 * shorter first), the order Redis keeps. Every forward link also records
 * how many nodes it jumps (its span), so a node's rank and the node at a
 * rank are found in O(log n) by summing spans on the way down. Level 0 is
 * doubly linked (backward refs) for reverse ranges.
 *
 * The node's level is drawn from a xorshift state kept in the struct zsl
 * itself, so the module has no global state and a key's layout does not
 * depend on the members an attacker picks.
 *
 * The caller holds whatever lock guards the arena; nothing here locks.
 */
#ifndef KIOKU_SKIPLIST_H
#define KIOKU_SKIPLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "types/arena.h"

#define ZSL_MAXLEVEL 32

struct zsl_level {
    uint32_t forward;           /* next node on this level, ARENA_NONE at the end */
    uint32_t span;              /* nodes passed by following forward */
};

struct zsl_node {
    double score;
    uint32_t backward;          /* previous node on level 0, ARENA_NONE for the first */
    uint32_t mlen;
    uint32_t level;
    uint32_t pad;
    struct zsl_level lv[];      /* `level` entries, then the member's bytes */
};

/* Plain data: lives in a collection root. */
struct zsl {
    uint32_t header;            /* node with ZSL_MAXLEVEL levels and no member */
    uint32_t tail;
    uint32_t length;
    uint32_t level;             /* levels in use, at least 1 */
    uint32_t rng;               /* xorshift32 state for node levels */
};

/* A score interval; min/max may be infinite. */
struct zrange_score {
    double min, max;
    bool minex, maxex;          /* exclusive ends */
};

enum zlex_kind { ZLEX_INCL, ZLEX_EXCL, ZLEX_NEG_INF, ZLEX_POS_INF };

struct zlex_bound {
    enum zlex_kind kind;
    const void *s;              /* for INCL/EXCL; borrowed from the caller */
    size_t len;
};

/* A member interval ("[a", "(a", "-", "+"), meaningful when scores tie. */
struct zrange_lex {
    struct zlex_bound min, max;
};

/* Member order: memcmp over the common length, then the shorter first. */
int zsl_cmp(const void *a, size_t alen, const void *b, size_t blen);

bool zsl_score_gte_min(double v, const struct zrange_score *r);
bool zsl_score_lte_max(double v, const struct zrange_score *r);
/* True when no value can be in the range (min above max, or a point with
 * an exclusive end). */
bool zsl_score_empty(const struct zrange_score *r);
bool zsl_lex_gte_min(const void *m, size_t mlen, const struct zrange_lex *r);
bool zsl_lex_lte_max(const void *m, size_t mlen, const struct zrange_lex *r);
bool zsl_lex_empty(const struct zrange_lex *r);

/* Bytes a node of `level` levels holding an mlen-byte member needs. */
size_t zsl_node_size(uint32_t level, size_t mlen);
/* The longest member a node can hold in one arena block. */
size_t zsl_member_max(void);

static inline struct zsl_node *zsl_node(const struct arena *a, uint32_t ref)
{
    return arena_ptr(a, ref);
}

static inline const void *zsl_member(const struct zsl_node *n)
{
    return (const char *)&n->lv[n->level];
}

/* An empty list: allocates the header. 0, or -1 without memory. */
int zsl_create(struct arena *a, struct zsl *l, uint32_t seed);
/* Free every node and the header. */
void zsl_destroy(struct arena *a, struct zsl *l);

/* Insert a new node; the member is copied. Its ref, or ARENA_NONE without
 * memory (list unchanged). The caller makes sure (score, member) is not in
 * the list yet. */
uint32_t zsl_insert(struct arena *a, struct zsl *l, double score, const void *m, size_t mlen);
/* Unlink and free a node. */
void zsl_delete(struct arena *a, struct zsl *l, uint32_t ref);
/* Give a node a new score, moving it if its place changes; never
 * allocates, the ref stays the same. */
void zsl_update_score(struct arena *a, struct zsl *l, uint32_t ref, double score);

/* 1-based rank of the node holding (score, member), 0 if none. */
size_t zsl_rank(const struct arena *a, const struct zsl *l, double score, const void *m, size_t mlen);
/* The node at a 1-based rank, ARENA_NONE when out of range. */
uint32_t zsl_by_rank(const struct arena *a, const struct zsl *l, size_t rank);
/* First / last node in a range, ARENA_NONE when the range holds none. */
uint32_t zsl_first_in_score(const struct arena *a, const struct zsl *l, const struct zrange_score *r);
uint32_t zsl_last_in_score(const struct arena *a, const struct zsl *l, const struct zrange_score *r);
uint32_t zsl_first_in_lex(const struct arena *a, const struct zsl *l, const struct zrange_lex *r);
uint32_t zsl_last_in_lex(const struct arena *a, const struct zsl *l, const struct zrange_lex *r);

/* Called with each node a range removal takes out, before it is freed. */
typedef void (*zsl_del_fn)(void *arg, const struct zsl_node *n);
/* Remove every node in a range in one pass (O(log n + removed)); returns
 * how many. Ranks are 1-based and inclusive. */
size_t zsl_delete_score(struct arena *a, struct zsl *l, const struct zrange_score *r, zsl_del_fn fn, void *arg);
size_t zsl_delete_lex(struct arena *a, struct zsl *l, const struct zrange_lex *r, zsl_del_fn fn, void *arg);
size_t zsl_delete_rank(struct arena *a, struct zsl *l, size_t start, size_t end, zsl_del_fn fn, void *arg);

#endif
