/*
 * libFuzzer target: the whole request path, from bytes read to replies
 * written, against a real in-memory store.
 *
 * Each input is one client connection. A real struct conn (conn_create on a
 * worker of our own, with its own event_base) gets a mock transport instead
 * of a socket: reads hand out the input in pieces and then report the end
 * of the stream, writes swallow the replies. The connection's own state
 * machine chooses the protocol from the first byte, as the server does, and
 * runs the text, meta, binary or RESP command layer against storage set up
 * once with little memory (so eviction and allocation failures happen). So
 * values split across reads, refused values being skipped, output that the
 * "socket" takes a few bytes at a time, the request budget and MULTI/EXEC
 * all run as in the server, under ASan and UBSan, and a connection must
 * free everything it took when it closes.
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

static struct {
    struct mode mode;
    const uint8_t *in;
    size_t in_len, in_pos;
    unsigned reads, writes;
    size_t written;
    bool closed;
} mock;

static ssize_t mock_read(struct conn *c, void *buf, size_t n)
{
    (void)c;
    if (mock.mode.read_gaps && (mock.reads++ & 1) == 0) {
        errno = EAGAIN;
        return -1;
    }
    size_t left = mock.in_len - mock.in_pos;
    if (left == 0)
        return 0;   /* the client is done: EOF */
    size_t take = left < n ? left : n;
    if (take > mock.mode.read_chunk)
        take = mock.mode.read_chunk;
    memcpy(buf, mock.in + mock.in_pos, take);
    mock.in_pos += take;
    return (ssize_t)take;
}

static ssize_t mock_writev(struct conn *c, const struct iovec *iov, int iovcnt)
{
    (void)c;
    CHECK(iovcnt > 0);
    if (mock.mode.write_gaps && (mock.writes++ & 1) == 0) {
        errno = EAGAIN;
        return -1;
    }
    size_t done = 0;
    for (int i = 0; i < iovcnt && done < mock.mode.write_chunk; i++) {
        size_t n = iov[i].iov_len;
        if (n > mock.mode.write_chunk - done)
            n = mock.mode.write_chunk - done;
        /* Touch every byte, so ASan checks the whole reply is readable. */
        const volatile uint8_t *b = iov[i].iov_base;
        for (size_t k = 0; k < n; k++)
            (void)b[k];
        done += n;
    }
    mock.written += done;
    return (ssize_t)done;
}

static void mock_close(struct conn *c)
{
    (void)c;
    CHECK(!mock.closed);
    mock.closed = true;
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
    memset(&mock, 0, sizeof(mock));
    mock.mode = mode_of(data[0]);
    mock.in = data + 1;
    mock.in_len = size - 1;
    conn_setup(&protocols, mock.mode.reqs_per_event);
    item_flush(0, clock_now_ms());

    stats_conn_opened();
    struct conn *c = conn_create(&worker, idle_fd, mock.mode.kind, NULL, 0);
    CHECK(c != NULL);
    c->tp = &mock_tp;
    /* Drive it as its worker would: an event says "readable" (or
     * "writable"), the connection reads, runs, writes; a connection that
     * yields re-activates itself. Until it closes at the end of input. */
    while (!mock.closed) {
        event_active(c->ev, EV_READ, 0);
        event_base_loop(worker.base, EVLOOP_NONBLOCK);
    }
    CHECK(worker.nconns == 0);
    return 0;
}
