/*
 * Small helpers shared by the command layers of every protocol, so that a
 * hit, a miss or an expiry counts the same whichever protocol served it.
 */
#ifndef KIOKU_CMD_UTIL_H
#define KIOKU_CMD_UTIL_H

#include "core/conn.h"
#include "stats/stats.h"
#include "storage/item.h"

/* Count why a lookup missed (memcached's get_expired / get_flushed). */
static inline void cmd_count_miss(struct conn *c, enum item_miss miss)
{
    if (miss == ITEM_MISS_EXPIRED)
        STAT_INC(c->stats, get_expired);
    else if (miss == ITEM_MISS_FLUSHED)
        STAT_INC(c->stats, get_flushed);
}

/* Count a CAS-checked store's outcome (cas_hits / cas_badval / cas_misses),
 * also per slab class of the stored item. */
static inline void cmd_count_cas_cls(struct conn *c, enum item_result res, unsigned cls)
{
    if (res == ITEM_STORED) {
        STAT_INC(c->stats, cas_hits);
        STAT_SLAB_INC(c->stats, cls, cas_hits);
    } else if (res == ITEM_EXISTS) {
        STAT_INC(c->stats, cas_badval);
        STAT_SLAB_INC(c->stats, cls, cas_badval);
    } else if (res == ITEM_NOT_FOUND) {
        STAT_INC(c->stats, cas_misses);
    }
}

#endif
