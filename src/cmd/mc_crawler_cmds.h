/*
 * memcached's `lru_crawler` text commands over kioku's crawler: enable,
 * disable, crawl, tocrawl, sleep, metadump and mgdump, with memcached
 * 1.6.45's replies.
 */
#ifndef KIOKU_MC_CRAWLER_CMDS_H
#define KIOKU_MC_CRAWLER_CMDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn;

/* A metadump or mgdump in progress on one connection (the text protocol
 * keeps it in its per-connection state). */
struct mc_crawler_dump {
    uint64_t cursor;        /* storage_meta_scan()'s */
    uint64_t classes;       /* bit id: class id is listed */
    bool mg;                /* mgdump: "mg <key>" lines, then "EN" */
};

/*
 * Run `lru_crawler <args>` (args: the rest of the line, trimmed) and queue
 * its reply. True when a dump has started: its "OK" is queued and the
 * caller calls mc_crawler_dump_step() until it returns true. `pipelined`:
 * replies of earlier commands are still queued (memcached refuses a dump
 * then).
 */
bool mc_crawler_cmd(struct conn *c, struct mc_crawler_dump *d, const char *args, size_t len,
                    bool pipelined);

/*
 * Queue the next items of the dump: true when it is done ("END" or "EN"
 * queued); false when the queued output is full, to be called again once
 * the connection has written. One call holds one hash stripe at a time,
 * for a bounded number of items.
 */
bool mc_crawler_dump_step(struct conn *c, struct mc_crawler_dump *d);

/* `lru_crawler tocrawl`: the most chunks a requested crawl examines per
 * class (0: all), for `stats settings`. */
uint32_t mc_crawler_tocrawl(void);

#endif
