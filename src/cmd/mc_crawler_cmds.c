/*
 * memcached's `lru_crawler` commands.
 *
 * kioku's crawler is one background thread that keeps sweeping every class
 * in small bounded steps (storage/evict.c), so the commands map onto it
 * like this:
 *  - enable / disable start and stop that thread (`stats settings`
 *    lru_crawler follows);
 *  - crawl <ids|all> examines those classes at once, on the worker, in
 *    bounded steps (each holds one class lock and one stripe at a time),
 *    up to `tocrawl` chunks a class, and answers when done: no crawl is
 *    ever left running, so there is never a BUSY reply;
 *  - metadump / mgdump <ids|all|hash> walk the hash table with the SCAN
 *    cursor, whatever was named (memcached's "hash" mode, which sees every
 *    item once however the eviction order changes), listing the live items
 *    of the named classes. The walk is resumable: it stops when the queued
 *    output is full and goes on after the client has read, so a dump of
 *    millions of items holds a bounded amount of memory. Dumps on two
 *    connections do not wait for each other;
 *  - sleep is refused: the background crawler paces itself (a bounded step
 *    every 50 ms) and there is nothing for the value to change.
 * Lines are memcached's byte for byte: metadump's "key=<uri-encoded> exp=
 * la= cas= fetch= cls= size= flags= \n" (a trailing space, a bare newline)
 * between "OK\r\n" and "END\r\n"; mgdump's "mg <key>\r\n" and "EN\r\n".
 */
#include "cmd/mc_crawler_cmds.h"

#include <stdio.h>
#include <string.h>

#include "core/conn.h"
#include "storage/storage.h"
#include "util/fmt.h"

#define DUMP_SCAN_ITEMS 256     /* items per stripe hold */

static uint32_t tocrawl;        /* atomic: lru_crawler tocrawl, 0 all */

uint32_t mc_crawler_tocrawl(void)
{
    return __atomic_load_n(&tocrawl, __ATOMIC_RELAXED);
}

static void reply(struct conn *c, const char *line)
{
    conn_out(c, line, strlen(line));
}

/* Split args at spaces: at most max tokens; the count of all of them. */
static size_t split(const char *s, size_t n, const char **tok, size_t *len, size_t max)
{
    const char *e = s + n;
    size_t k = 0;

    for (;;) {
        while (s < e && *s == ' ')
            s++;
        if (s == e)
            return k;
        const char *b = s;
        while (s < e && *s != ' ')
            s++;
        if (k < max) {
            tok[k] = b;
            len[k] = (size_t)(s - b);
        }
        k++;
    }
}

static bool is(const char *t, size_t n, const char *word)
{
    return strlen(word) == n && memcmp(t, word, n) == 0;
}

/* A decimal uint32 token (memcached's safe_strtoul, without its sign
 * quirks). */
static bool token_u32(const char *t, size_t n, uint32_t *out)
{
    uint64_t v = 0;

    if (n == 0 || n > 10)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (t[i] < '0' || t[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(t[i] - '0');
    }
    if (v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

/* "all", ("hash" for dumps), or "id,id,..." with ids 1..63 (memcached's
 * class range, whether or not the class has items). False: BADCLASS. */
static bool parse_classes(const char *t, size_t n, bool dump, uint64_t *out)
{
    if (is(t, n, "all") || (dump && is(t, n, "hash"))) {
        *out = ~(uint64_t)1;    /* every id but 0 */
        return true;
    }
    *out = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        uint32_t id;

        while (j < n && t[j] != ',')
            j++;
        if (!token_u32(t + i, j - i, &id) || id < 1 || id > STORAGE_CLASS_MAX)
            return false;
        *out |= (uint64_t)1 << id;
        i = j + 1;
    }
    return *out != 0;
}

static void crawl(struct conn *c, const char *t, size_t n)
{
    uint64_t classes;
    uint32_t max = mc_crawler_tocrawl();

    if (!storage_crawler_on()) {
        reply(c, "CLIENT_ERROR lru crawler disabled\r\n");
        return;
    }
    if (!parse_classes(t, n, false, &classes)) {
        reply(c, "BADCLASS invalid class id\r\n");
        return;
    }
    for (unsigned id = 1; id <= storage_class_count() && id <= STORAGE_CLASS_MAX; id++)
        if (classes & ((uint64_t)1 << id))
            storage_crawl_class(id, max, c->now);
    reply(c, "OK\r\n");
}

bool mc_crawler_cmd(struct conn *c, struct mc_crawler_dump *d, const char *args, size_t len,
                    bool pipelined)
{
    const char *tok[2];
    size_t tl[2];
    size_t n = split(args, len, tok, tl, 2);
    uint32_t v;

    if (n == 1 && is(tok[0], tl[0], "enable")) {
        reply(c, storage_crawler_set(true) == 0 ? "OK\r\n"
                                                : "ERROR failed to start lru crawler thread\r\n");
    } else if (n == 1 && is(tok[0], tl[0], "disable")) {
        storage_crawler_set(false);
        reply(c, "OK\r\n");
    } else if (n == 2 && is(tok[0], tl[0], "crawl")) {
        crawl(c, tok[1], tl[1]);
    } else if (n == 2 && is(tok[0], tl[0], "tocrawl")) {
        if (!token_u32(tok[1], tl[1], &v)) {
            reply(c, "CLIENT_ERROR bad command line format\r\n");
        } else {
            __atomic_store_n(&tocrawl, v, __ATOMIC_RELAXED);
            reply(c, "OK\r\n");
        }
    } else if (n == 2 && is(tok[0], tl[0], "sleep")) {
        if (!token_u32(tok[1], tl[1], &v))
            reply(c, "CLIENT_ERROR bad command line format\r\n");
        else if (v > 1000000)
            reply(c, "CLIENT_ERROR sleep must be one second or less\r\n");
        else
            reply(c, "CLIENT_ERROR kioku's crawler paces itself: sleep is not set\r\n");
    } else if (n == 2 && (is(tok[0], tl[0], "metadump") || is(tok[0], tl[0], "mgdump"))) {
        bool mg = tok[0][1] == 'g';

        if (!storage_crawler_on()) {
            reply(c, "CLIENT_ERROR lru crawler disabled\r\n");
        } else if (pipelined) {
            reply(c, mg ? "ERROR cannot pipeline other commands before mgdump\r\n"
                        : "ERROR cannot pipeline other commands before metadump\r\n");
        } else if (!parse_classes(tok[1], tl[1], true, &d->classes)) {
            reply(c, "BADCLASS invalid class id\r\n");
        } else {
            d->cursor = 0;
            d->mg = mg;
            reply(c, "OK\r\n");
            return true;
        }
    } else {
        reply(c, "ERROR\r\n");
    }
    return false;
}

/* memcached's uriencode: alphanumerics and "-._~" stay, the rest is %XX. */
static size_t uri_encode(char *dst, const char *src, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t d = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)src[i];

        if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            dst[d++] = (char)ch;
        } else {
            dst[d++] = '%';
            dst[d++] = hex[ch >> 4];
            dst[d++] = hex[ch & 15];
        }
    }
    return d;
}

struct dump_ctx {
    struct conn *c;
    bool mg;
};

/* Under a stripe lock: format into the output, nothing else. */
static void dump_line(void *arg, const struct storage_meta_entry *e)
{
    const struct dump_ctx *x = arg;
    size_t cap = 3 * e->nkey + 200;
    char *p = conn_out_reserve(x->c, cap);
    size_t n = 0;

    if (p == NULL)
        return;
    if (x->mg) {
        memcpy(p, "mg ", 3);
        memcpy(p + 3, e->key, e->nkey);
        n = 3 + e->nkey;
        p[n++] = '\r';
        p[n++] = '\n';
        conn_out_commit(x->c, n);
        return;
    }
    memcpy(p, "key=", 4);
    n = 4 + uri_encode(p + 4, e->key, e->nkey);
    if (e->exptime == 0)
        n += (size_t)snprintf(p + n, cap - n, " exp=-1");
    else
        n += (size_t)snprintf(p + n, cap - n, " exp=%lld", (long long)(e->exptime / 1000));
    n += (size_t)snprintf(p + n, cap - n, " la=%lld cas=%llu fetch=%s cls=%u size=%llu flags=%u \n",
                          (long long)(e->atime / 1000), (unsigned long long)e->cas,
                          e->fetched ? "yes" : "no", e->clsid, (unsigned long long)e->size,
                          e->flags);
    conn_out_commit(x->c, n);
}

bool mc_crawler_dump_step(struct conn *c, struct mc_crawler_dump *d)
{
    struct dump_ctx x = {c, d->mg};

    do {
        d->cursor = storage_meta_scan(d->cursor, c->now, d->classes, DUMP_SCAN_ITEMS,
                                      dump_line, &x);
        if (d->cursor == 0) {
            reply(c, d->mg ? "EN\r\n" : "END\r\n");
            return true;
        }
    } while (!conn_out_full(c));
    return false;
}
