#include "arena_heap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct block {
    void *p;
    size_t n;           /* 0: slot free */
};

struct arena {
    struct block *b;    /* b[0] unused: ref 0 is ARENA_NONE */
    size_t cap, used;   /* slots allocated, slots handed out (high mark) */
    size_t live, blocks, limit;
    long fail_after;
    size_t *free_slots;
    size_t nfree;
};

static void die(const char *what)
{
    fprintf(stderr, "arena_heap: %s\n", what);
    abort();
}

struct arena *arena_heap_new(size_t limit)
{
    struct arena *a = calloc(1, sizeof(*a));
    if (a == NULL)
        die("out of memory");
    a->limit = limit;
    a->fail_after = -1;
    a->used = 1;
    return a;
}

void arena_heap_destroy(struct arena *a, int expect_empty)
{
    if (expect_empty && a->blocks != 0)
        die("blocks still allocated at destroy");
    for (size_t i = 1; i < a->used; i++)
        free(a->b[i].p);
    free(a->b);
    free(a->free_slots);
    free(a);
}

size_t arena_heap_blocks(const struct arena *a) { return a->blocks; }
size_t arena_heap_live(const struct arena *a) { return a->live; }
void arena_heap_fail_after(struct arena *a, long n) { a->fail_after = n; }

uint32_t arena_alloc(struct arena *a, size_t n)
{
    if (n == 0 || n > ARENA_ALLOC_MAX)
        die("bad allocation size");
    if (a->fail_after == 0)
        return ARENA_NONE;
    if (a->limit != 0 && a->live + n > a->limit)
        return ARENA_NONE;
    if (a->fail_after > 0)
        a->fail_after--;
    size_t slot;
    if (a->nfree > 0) {
        slot = a->free_slots[--a->nfree];
    } else {
        if (a->used >= a->cap) {
            a->cap = a->cap ? a->cap * 2 : 64;
            a->b = realloc(a->b, a->cap * sizeof(*a->b));
            a->free_slots = realloc(a->free_slots, a->cap * sizeof(*a->free_slots));
            if (a->b == NULL || a->free_slots == NULL)
                die("out of memory");
        }
        slot = a->used++;
        a->b[slot].p = NULL;
    }
    if (slot > UINT32_MAX)
        die("too many blocks");
    free(a->b[slot].p);
    /* Garbage, not zeroes: an encoding that reads before it writes shows. */
    a->b[slot].p = malloc(n);
    if (a->b[slot].p == NULL)
        die("out of memory");
    memset(a->b[slot].p, 0xa5, n);
    a->b[slot].n = n;
    a->live += n;
    a->blocks++;
    return (uint32_t)slot;
}

void arena_free(struct arena *a, uint32_t ref, size_t n)
{
    if (ref == ARENA_NONE || ref >= a->used || a->b[ref].n == 0)
        die("free of a block not allocated");
    if (a->b[ref].n != n)
        die("free with the wrong size");
    memset(a->b[ref].p, 0x5a, n);
    a->b[ref].n = 0;
    a->live -= n;
    a->blocks--;
    a->free_slots[a->nfree++] = ref;
}

void *arena_ptr(const struct arena *a, uint32_t ref)
{
    if (ref == ARENA_NONE || ref >= a->used || a->b[ref].n == 0)
        die("pointer to a block not allocated");
    return a->b[ref].p;
}

size_t arena_bytes(const struct arena *a) { return a->live; }
