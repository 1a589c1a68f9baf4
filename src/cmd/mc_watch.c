/*
 * `watch`: a memcached text connection turned into a log stream.
 *
 * After "OK" the connection runs no more commands: what it sends is read
 * and dropped, and closing it ends the watch (memcached stops reading a
 * watcher altogether; reading on lets us see the close at once). Lines
 * come from this watcher's buffer in util/watch.c and leave on the
 * connection's own worker:
 *
 *   - a producer on any thread that finds the buffer empty wakes us with
 *     event_active() on an event of our worker's base (libevent is set up
 *     for threads, so that call is safe from anywhere);
 *   - drain() then copies up to DRAIN_CHUNK bytes into the connection's
 *     output and writes, a few chunks per event, so one busy watcher
 *     cannot starve the worker's other clients;
 *   - when the socket takes no more, a second event on the same fd waits
 *     for it to be writable, and nothing more leaves the buffer meanwhile.
 *
 * So an unread watcher pins at most its buffer and one chunk; producers
 * skip what does not fit and never wait for it.
 *
 * A worker running io_uring has no libevent loop: there a producer pokes
 * the worker (worker_poke, through its pipe), which runs the connection,
 * and the connection's run calls pump() (conn->pump) once its queued
 * output is out. Waiting for the socket is the connection's own: output
 * it could not hand over makes it wait for EV_WRITE, and the run that
 * follows pumps again.
 *
 * The event functions below turn what a memcached command saw into
 * util/watch.c's fields. A store or delete reports the lookup memcached
 * makes before it (a `set` shows an item_get line, then item_store);
 * kioku's store does that lookup inside storage, so mc_watch_peek() makes
 * one of its own, only when someone watches.
 */
#include "cmd/mc_watch.h"

#include <event2/event.h>
#include <stdlib.h>

#include "core/worker.h"
#include "util/clock.h"

#define DRAIN_CHUNK (16 * 1024)
#define DRAIN_ROUNDS 8             /* chunks per event before yielding */

struct mc_watch {
    struct conn *c;
    struct worker *worker;
    struct watcher *w;
    struct event *wake_ev;         /* activated by producers (libevent) */
    struct event *write_ev;        /* the socket can take more (libevent) */
};

/* One chunk of the watcher's buffer into the connection's output: its
 * size; 0 when the buffer is empty (or no memory for the chunk). */
static size_t take_chunk(struct mc_watch *mw)
{
    char *p = conn_out_reserve(mw->c, DRAIN_CHUNK);
    if (p == NULL)
        return 0;
    size_t n = watch_read(mw->w, p, DRAIN_CHUNK);
    conn_out_commit(mw->c, n);
    return n;
}

static void drain(evutil_socket_t fd, short what, void *arg)
{
    struct mc_watch *mw = arg;
    struct conn *c = mw->c;
    (void)fd;
    (void)what;

    c->now = clock_now_ms();
    for (int round = 0; round < DRAIN_ROUNDS; round++) {
        enum flush_result f = conn_flush(c);
        if (f == FLUSH_ERROR) {
            conn_close(c);   /* frees mw through the protocol's release */
            return;
        }
        if (f == FLUSH_BLOCKED) {
            event_add(mw->write_ev, NULL);
            return;
        }
        if (c->close_after_write)
            return;          /* closing: its own event finishes the job */
        if (take_chunk(mw) == 0)
            return;          /* empty: the next line wakes us */
    }
    /* More may be buffered: let the worker's other clients run first. */
    event_active(mw->wake_ev, EV_READ, 0);
}

static void wake(void *arg)
{
    struct mc_watch *mw = arg;
    event_active(mw->wake_ev, EV_READ, 0);
}

/* On a ring worker: from the connection's run, its earlier output out.
 * Errors and a full socket are left to that run, which writes next. */
static void pump(struct conn *c, void *arg)
{
    struct mc_watch *mw = arg;
    for (int round = 0; round < DRAIN_ROUNDS; round++) {
        if (c->close_after_write || conn_out_full(c))
            return;
        if (take_chunk(mw) == 0)
            return;          /* empty: the next line pokes us */
        if (conn_flush(c) != FLUSH_DONE)
            return;
    }
    conn_activate(c);        /* more may be buffered: after the others */
}

static void wake_ring(void *arg)
{
    struct mc_watch *mw = arg;
    worker_poke(mw->worker);
}

enum proc_result mc_watch_start(struct conn *c, const char *args, size_t n, bool enabled,
                                struct mc_watch **out)
{
    unsigned flags;
    *out = NULL;
    if (!enabled) {
        CONN_OUT_LIT(c, "CLIENT_ERROR watch commands not allowed\r\n");
        return PROC_MORE;
    }
    if (c->out_bytes > 0) {
        /* Replies of earlier requests of the batch are still queued: the
         * stream would mix with them. memcached refuses so too. */
        CONN_OUT_LIT(c, "ERROR cannot pipeline other commands before watch\r\n");
        return PROC_MORE;
    }
    if (!watch_parse_flags(args, n, &flags)) {
        CONN_OUT_LIT(c, "ERROR\r\n");
        return PROC_MORE;
    }
    enum watch_add_result why;
    struct mc_watch *mw = mc_watch_open(c, flags, &why);
    if (mw == NULL && why == WATCH_ADD_TOO_MANY) {
        CONN_OUT_LIT(c, "WATCHER_TOO_MANY log watcher limit reached\r\n");
        return PROC_MORE;
    }
    if (mw == NULL) {
        CONN_OUT_LIT(c, "WATCHER_FAILED failed to add log watcher\r\n");
        return PROC_MORE;
    }
    /* Queued before any line can be: the wake-up runs on this thread,
     * after this request. */
    CONN_OUT_LIT(c, "OK\r\n");
    *out = mw;
    return PROC_MORE;
}

struct mc_watch *mc_watch_open(struct conn *c, unsigned flags, enum watch_add_result *why)
{
    struct mc_watch *mw = calloc(1, sizeof(*mw));
    *why = WATCH_ADD_FAILED;
    if (mw == NULL)
        return NULL;
    mw->c = c;
    mw->worker = c->worker;
    if (c->uc != NULL) {
        mw->w = watch_add(flags, wake_ring, mw, why);
        if (mw->w == NULL) {
            free(mw);
            return NULL;
        }
        c->pump = pump;
        c->pump_arg = mw;
        worker_pump_add(c);
        return mw;
    }
    mw->wake_ev = event_new(c->worker->base, -1, 0, drain, mw);
    mw->write_ev = event_new(c->worker->base, c->fd, EV_WRITE, drain, mw);
    if (mw->wake_ev != NULL && mw->write_ev != NULL)
        mw->w = watch_add(flags, wake, mw, why);
    if (mw->w == NULL) {
        mc_watch_stop(mw);
        return NULL;
    }
    return mw;
}

void mc_watch_stop(struct mc_watch *mw)
{
    if (mw == NULL)
        return;
    if (mw->w != NULL)
        watch_remove(mw->w);   /* no wake-up after this */
    if (mw->c->pump != NULL) {
        mw->c->pump = NULL;
        mw->c->pump_arg = NULL;
        worker_pump_remove(mw->c);
    }
    if (mw->wake_ev != NULL)
        event_free(mw->wake_ev);
    if (mw->write_ev != NULL)
        event_free(mw->write_ev);
    free(mw);
}

/* ---- events ---- */

static enum watch_get_status get_status(enum item_miss miss)
{
    switch (miss) {
    case ITEM_MISS_EXPIRED: return WATCH_GET_EXPIRED;
    case ITEM_MISS_FLUSHED: return WATCH_GET_FLUSHED;
    default: return WATCH_GET_NOT_FOUND;
    }
}

void mc_watch_fetch(const struct conn *c, const char *key, size_t nkey, const struct item *it,
                    enum item_miss miss)
{
    if (it != NULL)
        watch_item_get(key, nkey, WATCH_GET_FOUND, item_class_id(it), c->fd, item_nbytes(it));
    else
        watch_item_get(key, nkey, get_status(miss), 0, c->fd, 0);
}

void mc_watch_peek(const struct conn *c, const char *key, size_t nkey, unsigned *cls,
                   uint32_t *size)
{
    uint64_t hv = item_hash(key, nkey);
    enum item_miss miss = ITEM_MISS_ABSENT;
    item_lock(hv);
    /* Not item_get(): a look for the log must not count as a read. */
    struct item *it = do_item_find_value(key, nkey, hv, c->now, &miss);
    item_unlock(hv);
    *cls = it != NULL ? item_class_id(it) : 0;
    *size = it != NULL ? item_nbytes(it) : 0;
    if (watch_on(WATCH_FETCHERS))
        mc_watch_fetch(c, key, nkey, it, miss);
    if (it != NULL)
        item_put(it);
}

static enum watch_store_status store_status(enum item_result res)
{
    switch (res) {
    case ITEM_STORED: return WATCH_STORED;
    case ITEM_EXISTS: return WATCH_EXISTS;
    case ITEM_NOT_FOUND: return WATCH_NOT_FOUND;
    case ITEM_TOO_LARGE: return WATCH_TOO_LARGE;
    case ITEM_NOMEM: return WATCH_NO_MEMORY;
    default: return WATCH_NOT_STORED;
    }
}

void mc_watch_store(const struct conn *c, const struct item *it, enum item_result res,
                    enum watch_store_cmd cmd)
{
    int64_t exp = item_exptime(it);
    uint32_t ttl = 0;
    if (exp > c->now)   /* seconds left, rounded up: "set k 0 100 .." shows 100 */
        ttl = (uint32_t)((exp - c->now + 999) / 1000);
    watch_item_store(item_key(it), item_nkey(it), store_status(res), cmd, ttl, item_class_id(it),
                     c->fd, item_nbytes(it));
}

void mc_watch_refused(const struct conn *c, const char *key, size_t nkey, bool too_large,
                      enum watch_store_cmd cmd)
{
    watch_item_store(key, nkey, too_large ? WATCH_TOO_LARGE : WATCH_NO_MEMORY, cmd, 0, 0, c->fd,
                     0);
}
