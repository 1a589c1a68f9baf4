/*
 * libFuzzer target: the whole request path, from bytes read to replies
 * written, against a real in-memory store.
 *
 * Each input is one or two client connections of the same worker: the
 * bytes after the first "\n=====\n" are the second client's. A real
 * struct conn (conn_create on a worker of our own, with its own
 * event_base) gets a mock transport instead of a socket: reads hand out the
 * input in pieces and then report the end of the stream, writes swallow the
 * replies. The two connections take turns, so one can delete or overwrite
 * the item whose value the other is still sending, or change keys between
 * the other's MULTI and EXEC.
 *
 * The connection's own state machine chooses the protocol from the first
 * byte, as the server does, and runs the text, meta, binary or RESP command
 * layer against storage set up once with little memory (so eviction and
 * allocation failures happen). So values split across reads, refused
 * values being skipped, output that the "socket" takes a few bytes at a
 * time, the request budget and MULTI/EXEC all run as in the server, under
 * ASan and UBSan, and a connection must free everything it took when it
 * closes. The worker is ours, not worker_setup()'s, so `stats conns` and
 * CLIENT LIST list no connections.
 *
 * The first byte of the input is not sent: it chooses how the transport
 * behaves (see struct mode). The store is flushed before every input so
 * that an input's outcome depends little on the ones before it (pages
 * already taken by classes stay taken, as in a long-running server).
 */
#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cmd_stats.h"
#include "cmd/proto_mc_bin.h"
#include "cmd/proto_mc_text.h"
#include "cmd/proto_resp.h"
#include "config/settings.h"
#include "core/conn.h"
#include "core/worker.h"
#include "stats/stats.h"
#include "storage/item.h"
#include "storage/storage.h"
#include "util/clock.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

static struct settings settings;
static struct worker worker;
static int idle_fd;                /* never readable: the conn's event fd */
static const struct conn_protocols protocols = {
    .text = &proto_mc_text, .binary = &proto_mc_bin, .resp = &proto_resp,
};

/* How the transport behaves, from the input's first byte. */
struct mode {
    enum conn_listener_kind kind;  /* bit 0: a --resp-port connection */
    size_t read_chunk;             /* bits 1-3: bytes per read */
    bool read_gaps;                /* bit 4: every other read is EAGAIN */
    size_t write_chunk;            /* bit 5: the socket takes 7 bytes a call */
    bool write_gaps;               /* bit 6: every other writev is EAGAIN */
    int reqs_per_event;            /* bit 7: -R 1 instead of 20 */
};

#define SPLIT "\n=====\n"   /* separates the first client's bytes from the second's */

/* One client: its bytes, how far the server has read them, its conn. */
struct client {
    struct conn *c;            /* valid while !closed */
    const uint8_t *in;
    size_t in_len, in_pos;
    unsigned reads, writes;
    bool closed;
};

static struct mode mode;
static struct client clients[2];

static struct client *client_of(const struct conn *c)
{
    for (int i = 0; i < 2; i++)
        if (clients[i].c == c && !clients[i].closed)
            return &clients[i];
    abort();   /* a transport call for a connection we do not know */
}

static ssize_t mock_read(struct conn *c, void *buf, size_t n)
{
    struct client *cl = client_of(c);
    if (mode.read_gaps && (cl->reads++ & 1) == 0) {
        errno = EAGAIN;
        return -1;
    }
    size_t left = cl->in_len - cl->in_pos;
    if (left == 0)
        return 0;   /* the client is done: EOF */
    size_t take = left < n ? left : n;
    if (take > mode.read_chunk)
        take = mode.read_chunk;
    memcpy(buf, cl->in + cl->in_pos, take);
    cl->in_pos += take;
    return (ssize_t)take;
}

static ssize_t mock_writev(struct conn *c, const struct iovec *iov, int iovcnt)
{
    struct client *cl = client_of(c);
    CHECK(iovcnt > 0);
    if (mode.write_gaps && (cl->writes++ & 1) == 0) {
        errno = EAGAIN;
        return -1;
    }
    size_t done = 0;
    for (int i = 0; i < iovcnt && done < mode.write_chunk; i++) {
        size_t n = iov[i].iov_len;
        if (n > mode.write_chunk - done)
            n = mode.write_chunk - done;
        /* Touch every byte, so ASan checks the whole reply is readable. */
        const volatile uint8_t *b = iov[i].iov_base;
        for (size_t k = 0; k < n; k++)
            (void)b[k];
        done += n;
    }
    return (ssize_t)done;
}

static void mock_close(struct conn *c)
{
    client_of(c)->closed = true;
}

static const struct transport mock_tp = {
    .name = "fuzz", .read = mock_read, .writev = mock_writev, .close = mock_close,
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char err[256];
    int fds[2];

    settings_default(&settings);
    settings.storage.mem_limit = 4 * 1024 * 1024;
    settings.storage.item_size_max = 1024 * 1024;
    settings.storage.crawler = false;
    settings.storage.slab_automove = 0;
    settings.storage.hashpower = 12;
    clock_setup();
    CHECK(storage_setup(&settings.storage, err, sizeof(err)) == 0);
    CHECK(stats_setup(1) == 0);
    conn_setup(&protocols, settings.reqs_per_event);
    proto_mc_text_setup(&settings);
    proto_resp_setup(&settings);
    proto_mc_bin_setup(&settings);
    cmd_stats_setup(&settings);

    worker.stats = stats_thread(0);
    worker.base = event_base_new();
    CHECK(worker.base != NULL);
    pthread_mutex_init(&worker.qlock, NULL);
    pthread_mutex_init(&worker.conns_lock, NULL);
    CHECK(pipe(fds) == 0);
    idle_fd = fds[0];
    return 0;
}

static struct mode mode_of(uint8_t b)
{
    static const size_t chunks[8] = {1, 2, 3, 5, 16, 100, 4096, SIZE_MAX};
    return (struct mode){
        .kind = (b & 1) ? LISTENER_RESP : LISTENER_MEMCACHED,
        .read_chunk = chunks[(b >> 1) & 7],
        .read_gaps = (b >> 4) & 1,
        .write_chunk = (b >> 5) & 1 ? 7 : SIZE_MAX,
        .write_gaps = (b >> 6) & 1,
        .reqs_per_event = (b >> 7) & 1 ? 1 : 20,
    };
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    mode = mode_of(data[0]);
    memset(clients, 0, sizeof(clients));
    const uint8_t *in = data + 1;
    size_t len = size - 1;
    const uint8_t *split = memmem(in, len, SPLIT, sizeof(SPLIT) - 1);
    clients[0].in = in;
    clients[0].in_len = split != NULL ? (size_t)(split - in) : len;
    if (split != NULL) {
        clients[1].in = split + sizeof(SPLIT) - 1;
        clients[1].in_len = len - (size_t)(clients[1].in - in);
    }
    int nclients = split != NULL ? 2 : 1;
    conn_setup(&protocols, mode.reqs_per_event);
    item_flush(0, clock_now_ms());

    for (int i = 0; i < nclients; i++) {
        stats_conn_opened();
        clients[i].c = conn_create(&worker, idle_fd, mode.kind, NULL, 0);
        CHECK(clients[i].c != NULL);
        clients[i].c->tp = &mock_tp;
    }
    for (int i = nclients; i < 2; i++)
        clients[i].closed = true;
    /* Drive them as their worker would: an event says "readable" (or
     * "writable"), the connection reads, runs, writes; a connection that
     * yields re-activates itself. Until both have closed at the end of
     * their input. */
    while (!clients[0].closed || !clients[1].closed) {
        for (int i = 0; i < 2; i++)
            if (!clients[i].closed)
                event_active(clients[i].c->ev, EV_READ, 0);
        event_base_loop(worker.base, EVLOOP_NONBLOCK);
    }
    CHECK(worker.nconns == 0);
    return 0;
}
