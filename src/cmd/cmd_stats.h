/*
 * The memcached `stats` family: general, settings, items, slabs, conns,
 * reset, sizes and detail, with memcached 1.6's names so that dashboards
 * and exporters read kioku unchanged.
 */
#ifndef KIOKU_CMD_STATS_H
#define KIOKU_CMD_STATS_H

#include <stddef.h>
#include <stdint.h>

struct conn;
struct settings;

void cmd_stats_setup(const struct settings *s);
/* One stat, in the order `stats` lists them; value is NUL-terminated text. */
typedef void (*cmd_stats_fn)(void *arg, const char *name, const char *value);

enum cmd_stats_result {
    CMD_STATS_LISTED,   /* the group's pairs went to fn (possibly none) */
    CMD_STATS_RESET,    /* "reset": counters now read as zero; no pairs */
    CMD_STATS_DETAIL_OK,    /* "detail on|off": done; no pairs */
    CMD_STATS_DETAIL_DUMP,  /* "detail dump": the caller sends
                               prefix_stats_dump(); no pairs */
    CMD_STATS_DETAIL_USAGE, /* "detail" with no or another word; no pairs */
    CMD_STATS_UNKNOWN,  /* no such group; no pairs */
};

/*
 * Emit the stats group named by args ("" general, "settings", "items",
 * "slabs", "conns", "sizes", "kioku": kioku's own counters) as (name, value)
 * pairs through fn, or run
 * "reset" or "detail on|off"; the two protocols send "detail dump" in their
 * own form; the text
 * reply and the binary protocol's Stat packets both come from here, so the
 * two list the same stats. now is kioku ms. Not a hot path (formats with
 * snprintf, takes the worker list locks for "conns").
 */
enum cmd_stats_result cmd_stats_pairs(const char *args, size_t len, int64_t now,
                                      cmd_stats_fn fn, void *arg);

/* Queue the reply to "stats <args>" (args may be empty). */
void cmd_stats_text(struct conn *c, const char *args, size_t len);

#endif
