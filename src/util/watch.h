/*
 * Log streaming for memcached's `watch` command.
 *
 * A watcher is a client that asked to see events (fetches, stores,
 * evictions, deletions, connections opening and closing) as text lines in
 * memcached 1.6's format: "ts=<sec>.<usec> gid=<n> type=<event> k=v...\n".
 * Producers (workers, the evictor) format a line and hand it to every
 * watcher that wants it; each watcher's own worker sends it on. This module
 * is the meeting point and knows nothing of connections: a watcher is a
 * bounded byte buffer, a flag set and a wake-up callback.
 *
 * Nobody watching costs a producer one relaxed atomic load (watch_on()):
 * no lock, no formatting, no clock read.
 */
#ifndef KIOKU_WATCH_H
#define KIOKU_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* What a watcher asked for (memcached's names, parsed by watch_parse_flags). */
enum watch_flag {
    WATCH_FETCHERS = 1u << 0,
    WATCH_MUTATIONS = 1u << 1,
    WATCH_EVICTIONS = 1u << 2,
    WATCH_CONNEVENTS = 1u << 3,
    WATCH_DELETIONS = 1u << 4,
    /* Accepted as memcached does; kioku has no such events, so these
     * streams stay silent. */
    WATCH_RAWCMDS = 1u << 5,
    WATCH_SYSEVENTS = 1u << 6,
    WATCH_PROXYREQS = 1u << 7,
    WATCH_PROXYEVENTS = 1u << 8,
    WATCH_PROXYUSER = 1u << 9,
    /* RESP MONITOR: each line is a whole RESP simple string, so a line that
     * does not fit is dropped without memcached's "skipped=" line. Not a
     * word of `watch`. */
    WATCH_MONITOR = 1u << 10,
};

/* memcached's limit on watchers at once. */
#define WATCH_MAX 20
/* memcached's default per-watcher buffer (-o watcher_logbuf_size, KiB). */
#define WATCH_BUF_DEFAULT ((size_t)256 * 1024)
/* The longest line: a 250-byte key URI-encoded is 750 bytes. */
#define WATCH_LINE_MAX 1024

/* The union of every watcher's flags; read only through watch_on(). */
extern unsigned watch_active_flags;

/* Does anyone watch any of flags? The only cost of watching on a hot path
 * when nobody does. */
static inline bool watch_on(unsigned flags)
{
    return (__atomic_load_n(&watch_active_flags, __ATOMIC_RELAXED) & flags) != 0;
}

/* Each watcher's buffer holds bufsize bytes (0: WATCH_BUF_DEFAULT). Call
 * before any thread starts. */
void watch_setup(size_t bufsize);
/* Drop every watcher (their owners must be gone). */
void watch_teardown(void);

/*
 * The arguments of `watch` (space-separated, n bytes) as flags. No word:
 * fetchers, as memcached. Each word is matched as memcached 1.6.45 does,
 * as a prefix of a stream's name ("fetch" is fetchers). False on a word
 * that names no stream.
 */
bool watch_parse_flags(const char *args, size_t n, unsigned *flags);

struct watcher;
enum watch_add_result { WATCH_ADD_OK, WATCH_ADD_TOO_MANY, WATCH_ADD_FAILED };

/*
 * Register a watcher for flags. wake(arg) is called, from whichever thread
 * produced the line and with the watcher's lock held (so it must only
 * signal: libevent's event_active() is fine), when the watcher's buffer
 * goes from empty to not empty, and not again until watch_read() has
 * emptied it. Returns NULL with *why on failure.
 */
struct watcher *watch_add(unsigned flags, void (*wake)(void *arg), void *arg,
                          enum watch_add_result *why);
/* Unregister: after this returns, wake is never called again for w. */
void watch_remove(struct watcher *w);
/*
 * Take up to cap buffered bytes (whole lines, or a line's beginning whose
 * rest comes next call). Returns the byte count. When this empties the
 * buffer, the next line will wake the watcher again; until then the
 * caller must call again when it can take more.
 */
size_t watch_read(struct watcher *w, char *buf, size_t cap);

/* ---- events (call only when watch_on(flag) is true) ---- */

/* memcached's item_get status. */
enum watch_get_status { WATCH_GET_NOT_FOUND, WATCH_GET_FOUND, WATCH_GET_FLUSHED,
                        WATCH_GET_EXPIRED };
/* memcached's item_store status and command. */
enum watch_store_status { WATCH_NOT_STORED, WATCH_STORED, WATCH_EXISTS, WATCH_NOT_FOUND,
                          WATCH_TOO_LARGE, WATCH_NO_MEMORY };
enum watch_store_cmd { WATCH_CMD_ADD = 1, WATCH_CMD_SET, WATCH_CMD_REPLACE, WATCH_CMD_APPEND,
                       WATCH_CMD_PREPEND, WATCH_CMD_CAS };
/* memcached's connection close reasons. */
enum watch_close_reason { WATCH_CLOSE_ERROR, WATCH_CLOSE_NORMAL, WATCH_CLOSE_IDLE_TIMEOUT,
                          WATCH_CLOSE_SHUTDOWN };

/* size is the value's length in bytes (without CRLF); cfd the client's fd. */
void watch_item_get(const char *key, size_t nkey, enum watch_get_status st, unsigned clsid,
                    int cfd, uint32_t size);
void watch_item_store(const char *key, size_t nkey, enum watch_store_status st,
                      enum watch_store_cmd cmd, uint32_t ttl, unsigned clsid, int cfd,
                      uint32_t size);
/* ttl: seconds left, -1 for none; la: seconds since the last access. */
void watch_eviction(const char *key, size_t nkey, bool fetched, long long ttl, uint32_t la,
                    unsigned clsid, uint32_t size);
/* cmd: "delete" or "md". */
void watch_deletion(const char *key, size_t nkey, const char *cmd, unsigned clsid,
                    uint32_t size);
/* peer NULL or of length 0: a unix socket ("local"). */
void watch_conn_new(const struct sockaddr *peer, socklen_t peer_len, int cfd);
void watch_conn_close(const struct sockaddr *peer, socklen_t peer_len, int cfd,
                      enum watch_close_reason reason);

/* ---- for `stats` ---- */

struct watch_stats {
    uint64_t worker_written;    /* lines producers made */
    uint64_t worker_dropped;    /* lines producers could not hand over: none
                                   (kioku has no per-worker log buffer) */
    uint64_t watcher_skipped;   /* lines a full watcher buffer did not take */
    uint64_t watcher_sent;      /* lines put in watcher buffers */
    uint64_t watchers;          /* watchers now */
};
void watch_stats_get(struct watch_stats *out);

/* ---- formatting (for tests) ---- */

/* Key bytes as memcached URI-encodes them: [A-Za-z0-9._~-] as they are,
 * every other byte %XX (upper-case hex). dst holds 3 * nkey bytes; returns
 * the length written. */
size_t watch_uriencode(char *dst, const char *key, size_t nkey);
/* Hand a finished line (ending in '\n') to the watchers of flag, as the
 * event functions do after formatting. */
void watch_emit(unsigned flag, const char *line, size_t n);

#endif
