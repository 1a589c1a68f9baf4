/*
 * memcached's UDP protocol.
 *
 * The listener binds one socket per -l address and hands it over here.
 * udp_start() gives each worker a descriptor of its own (dup) of every
 * socket, registered in the worker's event base, as memcached gives each
 * worker thread the socket: whichever worker wakes first reads a datagram,
 * the others find none (EAGAIN) and sleep again. A client's requests may
 * so be served by any worker, which costs nothing: UDP requests share no
 * state between them. The wake-ups of the others cost CPU (about 6 us a
 * datagram with 4 workers); as memcached, several -l addresses give each
 * socket one worker instead, round-robin, and no such wake-ups.
 *
 * For each of its descriptors a worker keeps one struct conn, which is on
 * no connection list (the descriptor's event is udp.c's). A datagram is received
 * straight into its read buffer; past the eight-byte frame header the
 * payload is run by the memcached protocol its first byte names (binary
 * at 0x80, else text and meta), one request at a time: a budget of one
 * request makes process() stop after each, and what it queued leaves as
 * one message through udp_transport, which cuts it into datagrams of 1392
 * payload bytes, each with the request id, its sequence number and the
 * total. A reply longer than a connection queues at once (a get of many
 * keys past 512 KiB) leaves as several messages, as memcached sends one
 * per value. So the commands run exactly as they do over TCP, and neither
 * the event loop nor the protocols know of frames.
 *
 * A reply leaves at once: a datagram the send buffer has no room for
 * waits 10 ms at most, then that message is dropped (udp_replies_dropped).
 *
 * A request must fit its datagram (memcached's rule): a datagram that is
 * short or claims more than one datagram is dropped and counted
 * (udp_bad_frames); a storage command whose data block is cut off gets
 * CLIENT_ERROR bad data chunk (in text), and what follows a request that
 * is cut off is dropped. Nothing carries over to the next datagram. A
 * reply too long for the 16-bit datagram count is refused with
 * SERVER_ERROR (counted in udp_replies_dropped).
 */
#include "core/udp.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/settings.h"
#include "core/conn.h"
#include "core/udp_frame.h"
#include "core/worker.h"
#include "stats/stats.h"
#include "util/clock.h"

#define UDP_MAX_SOCKETS 16
/* The largest UDP payload IPv4 carries is 65507 bytes. */
#define UDP_RBUF (64 * 1024)
/* Datagrams one event reads before the worker's other clients run. */
#define UDP_READS_PER_EVENT 32
/* How long a reply waits for room in a full send buffer, once. */
#define UDP_SEND_WAIT_MS 10

/* The reply being sent: the transport state of a UDP conn. */
struct udp_out {
    int fd;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    struct udp_frame frame;        /* request id; seq and total of the message */
    bool discard;                  /* drop what is flushed (a refused reply) */
    bool lost;                     /* a datagram of this message could not leave */
    size_t fill;                   /* payload bytes in dgram */
    uint8_t dgram[UDP_FRAME_MAX];
};

/* One worker's descriptor of one socket. */
struct udp_port {
    struct conn *c;
    struct event *ev;
    bool counted;                  /* in curr_connections */
    struct udp_out out;
};

static int socks[UDP_MAX_SOCKETS];
static int nsocks;
static struct udp_port *ports;     /* nworkers * nsocks, fixed once started */
static size_t nports;
/* `stats conns` reads ports in any worker, and the server stops while the
 * workers still serve TCP: udp_teardown frees under this lock. Datagrams
 * never take it. */
static pthread_mutex_t ports_lock = PTHREAD_MUTEX_INITIALIZER;
static const struct conn_protocols *protocols;

int udp_add_socket(int fd)
{
    if (nsocks == UDP_MAX_SOCKETS)
        return -1;
    socks[nsocks++] = fd;
    return 0;
}

size_t udp_sockets(int *fds, size_t max)
{
    size_t n = 0;
    for (int i = 0; i < nsocks && n < max; i++)
        fds[n++] = socks[i];
    return n;
}

/* ---- the transport: a reply as framed datagrams ---- */

/* Send the datagram in o->dgram. A message whose datagram could not
 * leave is lost to the client anyway: the rest of it is dropped, so a
 * full send buffer costs a worker one short wait a message, not one a
 * datagram. */
static void send_dgram(struct conn *c, struct udp_out *o)
{
    udp_frame_encode(o->dgram, &o->frame);
    size_t len = UDP_FRAME_HEADER + o->fill;
    o->frame.seq++;
    o->fill = 0;
    if (o->lost)
        return;
    for (int tries = 0; tries < 2; tries++) {
        ssize_t n = sendto(o->fd, o->dgram, len, MSG_DONTWAIT, (struct sockaddr *)&o->peer,
                           o->peer_len);
        if (n >= 0) {
            STAT_ADD(c->stats, bytes_written, UDP_FRAME_HEADER);   /* payload: conn_flush */
            return;
        }
        if (errno == EINTR) {
            tries--;
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            break;
        /* The send buffer is full: wait a little, once; UDP may lose it anyway. */
        struct pollfd p = {.fd = o->fd, .events = POLLOUT};
        if (poll(&p, 1, UDP_SEND_WAIT_MS) <= 0)
            break;
    }
    o->lost = true;
    STAT_INC(c->stats, udp_replies_dropped);
}

/* Called by conn_flush() with the queued reply; takes it all. Payload is
 * copied into whole datagrams; the last, short one leaves with the last
 * bytes of the message (conn_flush passes at most IOV_MAX entries a call,
 * so a message may take several calls). */
static ssize_t udp_writev(struct conn *c, const struct iovec *iov, int iovcnt)
{
    struct udp_out *o = c->tp_data;
    size_t sum = 0;
    for (int i = 0; i < iovcnt; i++)
        sum += iov[i].iov_len;
    if (o->discard)
        return (ssize_t)sum;
    bool last = sum == c->out_bytes;
    for (int i = 0; i < iovcnt; i++) {
        const uint8_t *p = iov[i].iov_base;
        size_t left = iov[i].iov_len;
        while (left > 0) {
            size_t take = UDP_FRAME_DATA - o->fill;
            if (take > left)
                take = left;
            memcpy(o->dgram + UDP_FRAME_HEADER + o->fill, p, take);
            o->fill += take;
            p += take;
            left -= take;
            if (o->fill == UDP_FRAME_DATA)
                send_dgram(c, o);
        }
    }
    if (last && o->fill > 0)
        send_dgram(c, o);
    return (ssize_t)sum;
}

static ssize_t udp_read(struct conn *c, void *buf, size_t n)
{
    /* Datagrams are received by udp_event(); a conn here never reads. */
    (void)c;
    (void)buf;
    (void)n;
    errno = EAGAIN;
    return -1;
}

static void udp_close(struct conn *c)
{
    (void)c;   /* udp_teardown() closes the descriptors */
}

static const struct transport udp_transport = {
    .name = "udp", .read = udp_read, .writev = udp_writev, .close = udp_close,
};

/* ---- serving a datagram ---- */

/* Send what the request queued as one message. */
static void send_message(struct conn *c, struct udp_out *o, bool text)
{
    if (c->out_pos == c->nout)
        return;
    size_t total = udp_frame_count(c->out_bytes);
    if (total > UDP_FRAME_MAX_TOTAL) {
        /* The 16-bit count cannot say how many datagrams follow. */
        STAT_INC(c->stats, udp_replies_dropped);
        o->discard = true;
        conn_flush(c);
        o->discard = false;
        if (!text)
            return;
        CONN_OUT_LIT(c, "SERVER_ERROR object too large for cache\r\n");
        total = 1;
    }
    o->frame.seq = 0;
    o->frame.total = (uint16_t)total;
    o->fill = 0;
    o->lost = false;
    conn_flush(c);   /* never blocks: udp_writev takes everything */
}

static void serve_datagram(struct udp_port *u, const struct udp_frame *f, size_t n)
{
    struct conn *c = u->c;
    struct udp_out *o = &u->out;
    c->rpos = UDP_FRAME_HEADER;
    c->rend = n;
    c->now = clock_now_ms();
    __atomic_store_n(&c->last_cmd, c->now, __ATOMIC_RELAXED);
    bool binary = (unsigned char)c->rbuf[c->rpos] == 0x80 && protocols->binary != NULL;
    c->proto = binary ? protocols->binary : protocols->text;
    /* -B binary makes the text protocol binary too */
    bool text = c->proto != protocols->binary;
    memset(c->proto_data, 0, sizeof(c->proto_data));
    o->frame = (struct udp_frame){.request_id = f->request_id};

    /* Each round runs one request, or one more part of a reply too long
     * to queue at once (a get of many keys), so a datagram of n bytes
     * needs fewer than n rounds; the bound is a guard, not a limit. */
    for (size_t round = 0; round < n; round++) {
        c->budget = 1;
        enum proc_result r = c->proto->process(c);
        bool cut = r == PROC_NREAD && conn_in_value(c);
        if (cut && conn_drop_input(c) && text)
            CONN_OUT_LIT(c, "CLIENT_ERROR bad data chunk\r\n");
        send_message(c, o, text);
        /* close_after_write: past -o max_output_buffer, or out of memory */
        if (cut || r == PROC_MORE || r == PROC_CLOSE || c->close_after_write)
            break;
    }
    if (c->proto->release != NULL)
        c->proto->release(c);
    conn_drop_input(c);
}

static void udp_event(evutil_socket_t fd, short what, void *arg)
{
    struct udp_port *u = arg;
    struct conn *c = u->c;
    (void)what;
    for (int i = 0; i < UDP_READS_PER_EVENT; i++) {
        u->out.peer_len = sizeof(u->out.peer);
        /* MSG_TRUNC: the datagram's real length, to refuse one cut short */
        ssize_t n = recvfrom(fd, c->rbuf, c->rcap, MSG_TRUNC, (struct sockaddr *)&u->out.peer,
                             &u->out.peer_len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;   /* EAGAIN: none left, or another worker took it */
        }
        STAT_ADD(c->stats, bytes_read, n);
        struct udp_frame f;
        if (udp_frame_decode((const uint8_t *)c->rbuf, (size_t)n, &f) != UDP_FRAME_OK ||
            (size_t)n > c->rcap) {
            STAT_INC(c->stats, udp_bad_frames);
            continue;
        }
        serve_datagram(u, &f, (size_t)n);
    }
}

/* ---- life cycle ---- */

static int port_open(struct udp_port *u, struct worker *w, int fd)
{
    struct conn *c = calloc(1, sizeof(*c));
    u->c = c;
    u->out.fd = fd;
    if (c == NULL || conn_buffers_init(c) != 0)
        return -1;
    char *big = realloc(c->rbuf, UDP_RBUF);
    if (big == NULL)
        return -1;
    c->rbuf = big;
    c->rcap = UDP_RBUF;
    c->fd = fd;
    c->kind = LISTENER_MEMCACHED;
    c->tp = &udp_transport;
    c->tp_data = &u->out;
    c->worker = w;
    c->stats = w->stats;
    c->created = c->last_cmd = c->last_write = clock_now_ms();
    u->ev = event_new(w->base, fd, EV_READ | EV_PERSIST, udp_event, u);
    if (u->ev == NULL || event_add(u->ev, NULL) != 0)
        return -1;
    stats_conn_opened();   /* as memcached counts its UDP conns in curr_connections */
    u->counted = true;
    return 0;
}

int udp_workers_per_socket(const struct settings *s)
{
    return strchr(s->listen, ',') != NULL ? 1 : s->threads;
}

int udp_start(const struct conn_protocols *protos, int per_socket, char *err, size_t errlen)
{
    protocols = protos;
    if (nsocks == 0)
        return 0;
    int nw = worker_count();
    if (per_socket < 1 || per_socket > nw)
        per_socket = nw;
    /* Workers serve each descriptor as soon as it is added; one that
     * answers `stats conns` meanwhile waits for the list to be whole. */
    pthread_mutex_lock(&ports_lock);
    ports = calloc((size_t)per_socket * (size_t)nsocks, sizeof(*ports));
    if (ports == NULL)
        goto fail;
    for (int i = 0; i < per_socket; i++) {
        for (int s = 0; s < nsocks; s++) {
            /* The first takes the bound descriptor itself; the others dup it. */
            int fd = i == 0 ? socks[s] : fcntl(socks[s], F_DUPFD_CLOEXEC, 0);
            struct udp_port *u = &ports[nports++];
            u->out.fd = -1;
            /* one worker a socket: spread the sockets round-robin */
            struct worker *w = worker_get(per_socket == 1 ? s % nw : i);
            if (fd < 0 || port_open(u, w, fd) != 0)
                goto fail;   /* udp_teardown() frees what was opened */
        }
    }
    pthread_mutex_unlock(&ports_lock);
    return 0;
fail:
    pthread_mutex_unlock(&ports_lock);
    snprintf(err, errlen, "cannot serve UDP: %s", strerror(errno));
    return -1;
}

void udp_teardown(void)
{
    /* Not under ports_lock: a datagram being served (a `stats conns`) may
     * take it, and event_free waits for that datagram. */
    for (size_t i = 0; i < nports; i++) {
        if (ports[i].ev != NULL)
            event_free(ports[i].ev);
        ports[i].ev = NULL;
    }
    pthread_mutex_lock(&ports_lock);
    for (size_t i = 0; i < nports; i++) {
        struct udp_port *u = &ports[i];
        if (u->c != NULL) {
            conn_buffers_free(u->c);
            free(u->c);
        }
        if (u->counted)
            stats_conn_closed();
        /* the first worker's descriptors are the sockets, closed below */
        if (u->out.fd >= 0 && i >= (size_t)nsocks)
            close(u->out.fd);
    }
    free(ports);
    ports = NULL;
    nports = 0;
    for (int i = 0; i < nsocks; i++)
        close(socks[i]);
    nsocks = 0;
    pthread_mutex_unlock(&ports_lock);
}

size_t udp_conns(struct udp_conn_info *out, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&ports_lock);
    for (size_t i = 0; i < nports && n < max; i++) {
        const struct conn *c = ports[i].c;
        if (c == NULL)
            continue;
        out[n].fd = ports[i].out.fd;
        out[n].last_cmd = __atomic_load_n(&c->last_cmd, __ATOMIC_RELAXED);
        n++;
    }
    pthread_mutex_unlock(&ports_lock);
    return n;
}
