/*
 * memcached's `watch` on a text connection, and the events the memcached
 * commands report to watchers (util/watch.h has the buffers and formats).
 *
 * Every mc_watch_* event function is to be called only when
 * watch_on(<its flag>) is true, so that a request pays nothing when nobody
 * watches.
 */
#ifndef KIOKU_MC_WATCH_H
#define KIOKU_MC_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/conn.h"
#include "storage/item.h"
#include "util/watch.h"

struct mc_watch;

/*
 * `watch <streams...>` (args: the rest of the line). On success queues
 * "OK", sets *out and returns PROC_MORE: from then on the connection only
 * streams, and the protocol must discard its input and call
 * mc_watch_stop(*out) when it is released. Otherwise queues memcached's
 * error line and leaves *out NULL: under -W (enabled false), after other
 * requests of the same batch whose replies are still queued, or for an
 * unknown stream.
 */
enum proc_result mc_watch_start(struct conn *c, const char *args, size_t n, bool enabled,
                                struct mc_watch **out);
/* The connection closes (owner thread): stop streaming, free mw. */
void mc_watch_stop(struct mc_watch *mw);
/* The stream alone, for another protocol's command (RESP MONITOR): c's
 * worker sends it the lines of flags from now on; no reply is queued.
 * NULL with *why when no watcher could be added. Libevent workers only. */
struct mc_watch *mc_watch_open(struct conn *c, unsigned flags, enum watch_add_result *why);

/* ---- events from the memcached commands ---- */

/* A lookup's result (fetchers): it NULL for a miss, with miss saying why. */
void mc_watch_fetch(const struct conn *c, const char *key, size_t nkey, const struct item *it,
                    enum item_miss miss);
/* Look key up without touching it, as a store or delete does first, and
 * report that fetch (fetchers, if watched). Returns the item's class and
 * value size in *cls, *size (0 on a miss) for a deletion line. */
void mc_watch_peek(const struct conn *c, const char *key, size_t nkey, unsigned *cls,
                   uint32_t *size);
/* A store's outcome (mutations). it: the item that was to be stored. */
void mc_watch_store(const struct conn *c, const struct item *it, enum item_result res,
                    enum watch_store_cmd cmd);
/* A store refused before its item existed (too large, out of memory). */
void mc_watch_refused(const struct conn *c, const char *key, size_t nkey, bool too_large,
                      enum watch_store_cmd cmd);

#endif
