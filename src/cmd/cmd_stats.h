/*
 * The memcached `stats` family: general, settings, items, slabs, conns,
 * reset, sizes and detail, with memcached 1.6's names so that dashboards
 * and exporters read kioku unchanged.
 */
#ifndef KIOKU_CMD_STATS_H
#define KIOKU_CMD_STATS_H

#include <stddef.h>

struct conn;
struct settings;

void cmd_stats_setup(const struct settings *s);
/* Queue the reply to "stats <args>" (args may be empty). */
void cmd_stats_text(struct conn *c, const char *args, size_t len);

#endif
