/*
 * Connections: I/O states, buffers and the transport, nothing of protocols.
 *
 * A connection reads into a read buffer and hands it to its protocol's
 * process() (chosen from the first byte), which parses as many complete
 * requests as it can and queues replies. Replies are gathered: small text
 * is copied into one write buffer, values are referenced straight from their
 * items (holding a reference until written), and the whole batch leaves in
 * as few writev() calls as IOV_MAX allows. So a pipelined burst, or a
 * multi-get of 100 keys, is one read and one write.
 *
 * A storage command's value is read by the connection on the protocol's
 * behalf (conn_read_value): what the read buffer already holds is copied,
 * the rest is read from the socket straight into the item.
 *
 * All I/O goes through a transport (plain sockets, TLS from src/tls/, or
 * an io_uring worker's ring from uring.c), so protocol code never sees a
 * file descriptor. Waiting goes through the worker's loop: libevent
 * events, or the ring's queue on an io_uring worker.
 *
 * A connection belongs to one worker thread and is touched only by it.
 */
#ifndef KIOKU_CONN_H
#define KIOKU_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

struct conn;
struct item;
struct worker;
struct thread_stats;
struct event;
struct uconn;

struct transport {
    const char *name;
    /* Optional: set up per-connection state (c->tp_data) once c->fd,
     * c->worker are set. 0, or -1 (nothing left to free, fd still open). */
    int (*open)(struct conn *c);
    /* As read(2)/writev(2): >0 bytes, 0 on EOF (read), -1 with errno. */
    ssize_t (*read)(struct conn *c, void *buf, size_t n);
    ssize_t (*writev)(struct conn *c, const struct iovec *iov, int iovcnt);
    void (*close)(struct conn *c);
};

extern const struct transport transport_plain;

/* What a protocol tells the connection after process() or value_done(). */
enum proc_result {
    PROC_MORE,    /* consumed all complete requests; wants more input */
    PROC_YIELD,   /* stopped early (request budget or output full); call again */
    PROC_NREAD,   /* a value is being read: conn_read_value() returned false */
    PROC_CLOSE,   /* send what is queued, then close */
};

struct proto_ops {
    const char *name;
    /* Parse and execute requests from the read buffer (conn_rbuf/conn_consume). */
    enum proc_result (*process)(struct conn *c);
    /* The value asked for with conn_read_value() has fully arrived. */
    enum proc_result (*value_done)(struct conn *c);
    /* The connection closes: drop protocol state (not the read item). */
    void (*release)(struct conn *c);
};

/* Protocols by what the first byte of a connection says. */
struct conn_protocols {
    const struct proto_ops *text;    /* memcached text (and meta) */
    const struct proto_ops *binary;  /* first byte 0x80; NULL: read as text (-B ascii) */
    const struct proto_ops *resp;    /* first byte '*' or A-Z, or a RESP listener */
    bool resp_by_first_byte;         /* false: RESP only on a RESP listener */
};

enum conn_listener_kind { LISTENER_MEMCACHED, LISTENER_RESP };
/* Or-ed into the kind handed to conn_create(): the listener speaks TLS, so
 * the connection uses the transport given to conn_set_tls(). */
#define LISTENER_TLS 0x100
/* With LISTENER_TLS, from -l mtls: / btls: (tls/tls.h): client certificates
 * required / not asked for on this listener, whatever ssl_verify_mode says. */
#define LISTENER_TLS_PEER 0x200
#define LISTENER_TLS_NOPEER 0x400
#define LISTENER_FLAGS (LISTENER_TLS | LISTENER_TLS_PEER | LISTENER_TLS_NOPEER)

/* Why a connection closed, as memcached's `watch connevents` names it. A
 * protocol that closes on bad input sets CONN_CLOSE_ERROR before PROC_CLOSE. */
enum conn_close_reason { CONN_CLOSE_NORMAL, CONN_CLOSE_ERROR, CONN_CLOSE_IDLE,
                         CONN_CLOSE_SHUTDOWN };

/* Protocol-private storage inside each connection. */
#define CONN_PROTO_DATA 128

struct conn {
    int fd;
    enum conn_listener_kind kind;
    int listen_flags;              /* the LISTENER_FLAGS of its listener */
    const struct transport *tp;
    void *tp_data;                 /* transport state (e.g. an SSL *) */
    const struct proto_ops *proto; /* NULL until the first byte arrives */
    struct worker *worker;
    struct thread_stats *stats;    /* the worker's counters */
    struct event *ev;              /* libevent's, or NULL on an io_uring worker */
    struct uconn *uc;              /* the io_uring worker's, or NULL */
    short ev_flags;                /* what c waits for (EV_READ/EV_WRITE) */
    uint8_t state;                 /* enum conn_state in conn.c */
    bool close_after_write;
    bool yielded;
    bool out_over;                 /* past the output limit: closing */
    bool draining;                 /* stopping: answer what was read, read no more */
    uint8_t close_reason;          /* enum conn_close_reason */
    bool streaming;                /* a log stream (`watch`): never idle */
    /* On an io_uring worker, a stream's source (mc_watch.c): run each time
     * c runs, once its queued output is out; worker_poke() runs c. */
    void (*pump)(struct conn *c, void *arg);
    void *pump_arg;
    struct conn *pump_prev, *pump_next;   /* the worker's pumped conns */
    bool kill_asked;               /* CLIENT KILL from another connection; set
                                    * under the worker's conns_lock, acted on
                                    * by the owner (worker_kill_marked) */
    int budget;                    /* requests left in this event (-R) */
    uint64_t id;                   /* unique per process */
    int64_t now;                   /* kioku ms, read once per event */
    int64_t created;               /* kioku ms */
    int64_t last_cmd;              /* kioku ms of the last request */
    int64_t last_write;            /* kioku ms of the last bytes written */

    /* read buffer: [rpos, rend) is unparsed input */
    char *rbuf;
    size_t rcap, rpos, rend;

    /* a value being read into an item, or bytes being discarded */
    struct item *nread_item;
    size_t nread_off, nread_len;
    size_t swallow;

    /* output: entries point into wbuf (by offset) or into held items */
    struct out_entry *out;
    int nout, outcap, out_pos;     /* out_pos: first entry not fully written */
    size_t out_off;                /* bytes of out[out_pos] already written */
    char *wbuf;
    size_t wlen, wcap;
    struct item **refs;
    int nrefs, refcap;
    size_t out_bytes;              /* queued, not yet written */
    uint32_t out_epoch;            /* counts resets of the output arrays */

    struct sockaddr_storage peer;
    socklen_t peer_len;
    struct conn *prev, *next;      /* the worker's list */
    char name[64];                 /* RESP CLIENT SETNAME */
    uint64_t proto_data[CONN_PROTO_DATA / 8];
};

/* Create a connection for an accepted fd, owned by worker w (called in w's
 * thread); kind may carry LISTENER_TLS. Returns NULL (fd closed) on failure. */
struct conn *conn_create(struct worker *w, int fd, enum conn_listener_kind kind,
                         const struct sockaddr *peer, socklen_t peer_len);
/* The read/write buffers of a connection (conn_create does this; tests that
 * drive the output path with their own transport use it directly). */
int conn_buffers_init(struct conn *c);
void conn_buffers_free(struct conn *c);

enum flush_result { FLUSH_DONE, FLUSH_BLOCKED, FLUSH_ERROR };
/* Write queued output with as few writev calls as IOV_MAX allows; on
 * FLUSH_DONE every item reference the output held is released. */
enum flush_result conn_flush(struct conn *c);

/*
 * Serving a connection from inside another one's request (a script past
 * busy-reply-threshold, through worker_serve_pending). Only RESP is
 * served there: its dispatcher answers -BUSY to what may not run then.
 * Other protocols wait, their bytes unread, for their own event.
 */
/* poll(2) events to wait for before conn_serve_nested(c), or 0: c waits. */
short conn_nested_events(const struct conn *c);
/* Run c as its event would. c may be closed (freed) on return. */
void conn_serve_nested(struct conn *c);

/* Run c's state machine, as its event would (an io_uring worker's loop
 * calls it). c may be closed (freed) on return. */
void conn_ready(struct conn *c);
/* Run c again soon, after the worker's other ready connections. */
void conn_activate(struct conn *c);

/* Close and free now (in the owner thread). */
void conn_close(struct conn *c);
/* The server stops: read nothing more, answer the requests already read
 * (finishing a reply in progress), close once the output is written. */
void conn_shutdown(struct conn *c);

void conn_setup(const struct conn_protocols *protos, int reqs_per_event);
/* The transport of connections accepted on a TLS listener (before workers start). */
void conn_set_tls(const struct transport *tls);

/*
 * Per-connection limits, set once before the workers start.
 * max_output (bytes, 0 none): a client whose queued replies would pass it
 * is disconnected, its queued output dropped (output_limit_disconnects).
 * idle_timeout (seconds, 0 none): see conn_idle_kick().
 */
void conn_set_limits(size_t max_output, int idle_timeout);
/*
 * Close c if it has been idle longer than the idle timeout: waiting for a
 * request (or the rest of one) with none run, or for the client to read
 * its replies with nothing written, for that long. A value being read is
 * not idle (as in memcached, which kicks only connections waiting for a
 * command), nor is a log stream (c->streaming, a `watch`). Owner thread
 * only; true when c was closed (idle_kicks).
 */
bool conn_idle_kick(struct conn *c, int64_t now);

/* ---- for protocols ---- */

/* Unparsed input. */
static inline const char *conn_rbuf(const struct conn *c) { return c->rbuf + c->rpos; }
static inline size_t conn_rlen(const struct conn *c) { return c->rend - c->rpos; }
void conn_consume(struct conn *c, size_t n);

/* Queue bytes to send (copied). */
void conn_out(struct conn *c, const void *data, size_t n);
static inline void conn_out_str(struct conn *c, const char *s, size_t n) { conn_out(c, s, n); }
#define CONN_OUT_LIT(c, lit) conn_out((c), (lit), sizeof(lit) - 1)
/* Reserve n bytes of output to format into; conn_out_commit() the used part. */
char *conn_out_reserve(struct conn *c, size_t n);
/* Where the queued output ends now (conn_out_mark), and dropping what was
 * queued after it (conn_out_rollback: RESP's CLIENT REPLY OFF). Nothing is
 * dropped, and false returned, if any of it was already written. */
struct conn_out_mark {
    uint32_t epoch;
    int nout, nrefs;
    size_t wlen, last_len;
};
void conn_out_mark(const struct conn *c, struct conn_out_mark *m);
bool conn_out_rollback(struct conn *c, const struct conn_out_mark *m);
void conn_out_commit(struct conn *c, size_t used);
/* Queue bytes [off, off+n) of the item's value+CRLF. Small values are
 * copied; larger ones are sent from the item, which stays referenced until
 * they are written. Admitted while the output queued before it is within
 * the output limit, however large the value itself. */
void conn_out_item(struct conn *c, struct item *it, size_t off, size_t n);
/* "\r\n" after a part of a value queued by conn_out_item(): it goes with
 * that value, so the output limit that admitted the value admits it. */
void conn_out_value_end(struct conn *c);
/* True when enough output is queued that the protocol should yield. */
bool conn_out_full(const struct conn *c);

/*
 * Read n bytes into the item's value+CRLF area from offset 0. Takes over the
 * caller's reference. Returns true if the bytes were all in the read buffer
 * (the item is back with the caller via conn_take_value(), now); false if the
 * protocol must return PROC_NREAD and will get value_done() later.
 */
bool conn_read_value(struct conn *c, struct item *it, size_t n);
/* The item read by conn_read_value(); the caller now owns the reference. */
struct item *conn_take_value(struct conn *c);
/* Discard the next n bytes of input (e.g. a refused value). */
void conn_swallow(struct conn *c, size_t n);
/*
 * For a transport whose requests cannot continue in its next read (a UDP
 * datagram, core/udp.c): forget the unparsed input and a value being read
 * (its item released) or skipped, and any close or output-limit verdict,
 * so the connection reads its next request afresh. Returns true when a
 * value was being read, i.e. its request was cut short.
 */
bool conn_drop_input(struct conn *c);
/* A value is being read or skipped: its bytes have not all come. */
bool conn_in_value(const struct conn *c);
/* Spend one request of this event's budget; false when it is used up. */
bool conn_budget(struct conn *c);

/* Peer address as text ("127.0.0.1:5000", "[::1]:5000", "unix"). */
void conn_peer_name(const struct conn *c, char *buf, size_t len);
const char *conn_state_name(const struct conn *c);

#endif
