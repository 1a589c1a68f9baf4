/*
 * Listening sockets and the accept path. Accepting runs in one thread; a
 * new connection costs the acceptor one accept(), a check of the connection
 * count against -c, and a hand-off to a worker. Over the limit, the client
 * gets memcached's "ERROR Too many open connections", or Redis's "-ERR max
 * number of clients reached" on the RESP port or when the first byte it
 * already sent is a RESP one, and is closed; the acceptor keeps going. When the process runs out of descriptors, accepting
 * pauses briefly instead of spinning.
 *
 * -U adds a UDP socket on every -l address; core/udp.c serves them in the
 * workers, so nothing here reads a datagram. memcached's port numbers
 * apply: -p 0 (or -U 0) is off, -1 is a port the kernel chooses, and
 * MEMCACHED_PORT_FILENAME asks for a file naming the ports bound
 * (listener_write_ports).
 *
 * A listener may speak TLS (-Z, --tls-port): its kind carries LISTENER_TLS
 * (and, from memcached's -l prefixes notls:/btls:/mtls:, which of the main
 * listeners do and whether they require client certificates)
 * and the worker's connection then reads and writes through the TLS
 * transport. Nothing here touches TLS itself; the handshake happens in the
 * worker, driven by its event loop, so a slow client never holds up accept.
 */
#include "core/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config/settings.h"
#include "core/conn.h"
#include "core/udp.h"
#include "core/worker.h"
#include "stats/stats.h"

#define MAX_LISTENERS 64
#define UDP_SNDBUF (4 * 1024 * 1024)

struct listen_slot {
    struct evconnlistener *lev;
    int kind;                     /* enum conn_listener_kind | LISTENER_FLAGS */
    int tcp;
    bool main;                    /* -p's: the port file names it */
    int fd;                       /* for `stats conns`, which may look during a stop */
};

static struct event_base *base;
static struct listen_slot slots[MAX_LISTENERS];
static int nslots;
static int max_conns;
static struct event *resume_ev;

static const char too_many[] = "ERROR Too many open connections\r\n";
static const char too_many_resp[] = "-ERR max number of clients reached\r\n";

/* Refuse a client over -c in its protocol, as conn.c would choose it from
 * the first byte; a client that has sent nothing yet gets memcached's
 * line (a TLS client gets it in the clear, as from memcached: it is
 * refused before any handshake). Never waits (MSG_DONTWAIT). What the client sent is read, a few
 * KiB at most, so that the close is a FIN, not a reset that could destroy
 * the error line before the client reads it. */
static void reject(int fd, int kind)
{
    unsigned char in[4096];
    stats_conn_rejected();   /* first: counted before the client sees the close */
    ssize_t n = recv(fd, in, sizeof(in), MSG_DONTWAIT);
    bool resp = (kind & ~LISTENER_FLAGS) == LISTENER_RESP ||
                (n > 0 && (in[0] == '*' || (in[0] >= 'A' && in[0] <= 'Z')));
    ssize_t w = resp ? write(fd, too_many_resp, sizeof(too_many_resp) - 1)
                     : write(fd, too_many, sizeof(too_many) - 1);
    (void)w;
    for (int i = 0; i < 4 && n > 0; i++)
        n = recv(fd, in, sizeof(in), MSG_DONTWAIT);
    close(fd);
}

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd,
                      struct sockaddr *sa, int salen, void *arg)
{
    struct listen_slot *slot = arg;
    (void)lev;
    if (stats_curr_conns() >= (uint64_t)max_conns) {
        reject(fd, slot->kind);
        return;
    }
    if (slot->tcp) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    stats_conn_opened();
    worker_dispatch(fd, (enum conn_listener_kind)slot->kind, sa, (socklen_t)salen);
}

/* Written by the acceptor thread, read by `stats` in workers. */
static uint64_t disabled_num, disabled_us;
static int64_t disabled_since_us;   /* acceptor thread only */

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void listener_stats(struct listener_stats *out)
{
    out->disabled_num = __atomic_load_n(&disabled_num, __ATOMIC_RELAXED);
    out->disabled_us = __atomic_load_n(&disabled_us, __ATOMIC_RELAXED);
}

static void resume_accept(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    for (int i = 0; i < nslots; i++)
        evconnlistener_enable(slots[i].lev);
    __atomic_add_fetch(&disabled_us, (uint64_t)(mono_us() - disabled_since_us), __ATOMIC_RELAXED);
}

static void on_accept_error(struct evconnlistener *lev, void *arg)
{
    int err = EVUTIL_SOCKET_ERROR();
    (void)lev;
    (void)arg;
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        /* Out of descriptors: stop accepting for a moment, don't spin. */
        struct timeval tv = {0, 100 * 1000};
        if (!evtimer_pending(resume_ev, NULL)) {
            disabled_since_us = mono_us();
            __atomic_add_fetch(&disabled_num, 1, __ATOMIC_RELAXED);
        }
        for (int i = 0; i < nslots; i++)
            evconnlistener_disable(slots[i].lev);
        event_add(resume_ev, &tv);
        stats_conn_rejected();
    }
}

static int add_listener(const struct sockaddr *sa, socklen_t len, int kind,
                        int backlog, int tcp, bool main, char *err, size_t errlen)
{
    if (nslots == MAX_LISTENERS) {
        snprintf(err, errlen, "too many listening addresses");
        return -1;
    }
    struct listen_slot *slot = &slots[nslots];
    unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE;
    if (sa->sa_family == AF_INET6)
        flags |= LEV_OPT_BIND_IPV6ONLY;
    slot->kind = kind;
    slot->tcp = tcp;
    slot->main = main;
    slot->lev = evconnlistener_new_bind(base, on_accept, slot, flags, backlog, sa, (int)len);
    if (slot->lev == NULL)
        return -1;
    evconnlistener_set_error_cb(slot->lev, on_accept_error);
    slot->fd = (int)evconnlistener_get_fd(slot->lev);
    nslots++;
    return 0;
}

/* Split one -l entry into host and port: "h", "h:p", "[v6]", "[v6]:p", "::1". */
static int split_host_port(char *entry, const char **host, const char **port)
{
    *port = NULL;
    if (entry[0] == '[') {
        char *close = strchr(entry, ']');
        if (close == NULL)
            return -1;
        *close = '\0';
        *host = entry + 1;
        if (close[1] == ':')
            *port = close + 2;
        else if (close[1] != '\0')
            return -1;
        return 0;
    }
    char *colon = strchr(entry, ':');
    if (colon != NULL && strchr(colon + 1, ':') == NULL) {
        *colon = '\0';
        *port = colon + 1;
    }
    *host = entry;
    return 0;
}

/* Listen on every -l address. kind may carry LISTENER_TLS. An addr:port
 * entry chooses the port of the main listener only; fixed_port listeners
 * (RESP, --tls-port) use default_port on every address. Likewise an entry's
 * TLS prefix (settings check it needs TLS) sets the main listener's TLS;
 * the others only skip it, and bind an address listed twice (with two
 * ports, say notls: and TLS) once. */
/* The addresses to bind for one -l host (empty: every address). */
static int resolve(const char *host, const char *port, int socktype, struct addrinfo **res,
                   char *err, size_t errlen)
{
    struct addrinfo hints = {0};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = socktype;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(*host ? host : NULL, port, &hints, res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve listen address %s: %s", host, gai_strerror(rc));
        return -1;
    }
    return 0;
}

static int bind_tcp_list(const char *list, int default_port, int kind, bool fixed_port,
                         int backlog, char *err, size_t errlen)
{
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s", list);
    char *save = NULL;
    const char *seen[MAX_LISTENERS];   /* hosts bound so far, in buf */
    int nseen = 0;
    for (char *entry = strtok_r(buf, ",", &save); entry != NULL; entry = strtok_r(NULL, ",", &save)) {
        const char *host, *port;
        char portbuf[16];
        size_t skip;
        enum tls_listen_mode mode = tls_listen_prefix(entry, &skip);
        int k = kind;
        entry += skip;
        if (!fixed_port && mode != TLS_LISTEN_DEFAULT) {
            static const int flags[] = {
                [TLS_LISTEN_OFF] = 0,
                [TLS_LISTEN_NOPEER] = LISTENER_TLS | LISTENER_TLS_NOPEER,
                [TLS_LISTEN_PEER] = LISTENER_TLS | LISTENER_TLS_PEER,
            };
            k = (kind & ~LISTENER_FLAGS) | flags[mode];
        }
        if (split_host_port(entry, &host, &port) != 0) {
            snprintf(err, errlen, "invalid listen address: %s", entry);
            return -1;
        }
        if (fixed_port) {
            bool dup = false;
            for (int i = 0; i < nseen && !dup; i++)
                dup = strcmp(seen[i], host) == 0;
            if (dup)
                continue;
            if (nseen < MAX_LISTENERS)
                seen[nseen++] = host;
        }
        if (port == NULL || fixed_port) {
            snprintf(portbuf, sizeof(portbuf), "%d", default_port < 0 ? 0 : default_port);
            port = portbuf;
        }
        struct addrinfo *res;
        if (resolve(host, port, SOCK_STREAM, &res, err, errlen) != 0)
            return -1;
        for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
            if (add_listener(ai->ai_addr, ai->ai_addrlen, k, backlog, 1, !fixed_port, err,
                             errlen) != 0) {
                snprintf(err, errlen, "failed to listen on TCP port %s of %s: %s", port,
                         *host ? host : "*", strerror(errno));
                freeaddrinfo(res);
                return -1;
            }
        }
        freeaddrinfo(res);
    }
    return 0;
}

/* One UDP socket, bound and non-blocking, for core/udp.c. */
static int bind_udp(const struct addrinfo *ai)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* A reply's datagrams leave in one burst: room for a large one (the
     * kernel caps this at net.core.wmem_max). */
    int sndbuf = UDP_SNDBUF;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    if (ai->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || udp_add_socket(fd) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return 0;
}

/* -U on every -l address (an addr:port entry's port and its TLS prefix
 * are the TCP listener's alone); -1: a port of the kernel's choosing for
 * each. A fixed port binds an address listed twice once. */
static int bind_udp_list(const char *list, int udp_port, char *err, size_t errlen)
{
    char buf[1024], portbuf[16];
    snprintf(buf, sizeof(buf), "%s", list);
    snprintf(portbuf, sizeof(portbuf), "%d", udp_port < 0 ? 0 : udp_port);
    char *save = NULL;
    const char *seen[MAX_LISTENERS];   /* hosts bound so far, in buf */
    int nseen = 0;
    for (char *entry = strtok_r(buf, ",", &save); entry != NULL; entry = strtok_r(NULL, ",", &save)) {
        const char *host, *port;
        size_t skip;
        tls_listen_prefix(entry, &skip);
        entry += skip;
        if (split_host_port(entry, &host, &port) != 0) {
            snprintf(err, errlen, "invalid listen address: %s", entry);
            return -1;
        }
        if (udp_port > 0) {
            bool dup = false;
            for (int i = 0; i < nseen && !dup; i++)
                dup = strcmp(seen[i], host) == 0;
            if (dup)
                continue;
            if (nseen < MAX_LISTENERS)
                seen[nseen++] = host;
        }
        struct addrinfo *res;
        if (resolve(host, portbuf, SOCK_DGRAM, &res, err, errlen) != 0)
            return -1;
        for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
            if (bind_udp(ai) != 0) {
                snprintf(err, errlen, "failed to listen on UDP port %s of %s: %s", portbuf,
                         *host ? host : "*", strerror(errno));
                freeaddrinfo(res);
                return -1;
            }
        }
        freeaddrinfo(res);
    }
    return 0;
}

static int bind_unix(const char *path, int mask, int backlog, char *err, size_t errlen)
{
    struct sockaddr_un sun = {0};
    struct stat st;
    sun.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun.sun_path)) {
        snprintf(err, errlen, "unix socket path too long: %s", path);
        return -1;
    }
    strcpy(sun.sun_path, path);
    /* Replace a stale socket left by an earlier run, never another file. */
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path);
    mode_t old = umask((mode_t)(~mask & 0777));
    int rc = add_listener((struct sockaddr *)&sun, sizeof(sun), LISTENER_MEMCACHED, backlog, 0, false,
                          err, errlen);
    umask(old);
    if (rc != 0)
        snprintf(err, errlen, "failed to listen on unix socket %s: %s", path, strerror(errno));
    return rc;
}

int listener_setup(const struct settings *s, char *err, size_t errlen)
{
    /* memcached -Z: without a TLS port of their own, the TCP ports speak TLS. */
    int main_tls = s->tls.enabled && s->tls.port == 0 ? LISTENER_TLS : 0;
    int resp_tls = main_tls != 0 || s->tls.resp_tls ? LISTENER_TLS : 0;
    max_conns = s->max_conns;
    base = event_base_new();
    if (base == NULL) {
        snprintf(err, errlen, "cannot create an event base");
        return -1;
    }
    resume_ev = evtimer_new(base, resume_accept, NULL);
    if (resume_ev == NULL) {
        snprintf(err, errlen, "cannot create an event");
        return -1;
    }
    if (s->socket_path[0] != '\0') {
        if (bind_unix(s->socket_path, s->socket_mask, s->backlog, err, errlen) != 0)
            return -1;
    } else {
        if (s->port != 0 && bind_tcp_list(s->listen, s->port, LISTENER_MEMCACHED | main_tls, false,
                                          s->backlog, err, errlen) != 0)
            return -1;
        /* as memcached: no UDP beside a unix socket */
        if (s->udp_port != 0 && bind_udp_list(s->listen, s->udp_port, err, errlen) != 0)
            return -1;
    }
    if (s->resp_port != 0 &&
        bind_tcp_list(s->listen, s->resp_port, LISTENER_RESP | resp_tls, true, s->backlog, err, errlen) != 0)
        return -1;
    if (s->tls.enabled && s->tls.port != 0 &&
        bind_tcp_list(s->listen, s->tls.port, LISTENER_MEMCACHED | LISTENER_TLS, true, s->backlog,
                      err, errlen) != 0)
        return -1;
    return 0;
}

size_t listener_fds(int *fds, size_t max)
{
    /* Workers call this while the main thread may be in listener_teardown:
     * the count is read once, and only the descriptors, never the freed
     * listeners, are read. */
    int ns = __atomic_load_n(&nslots, __ATOMIC_ACQUIRE);
    size_t n = 0;
    for (int i = 0; i < ns && n < max; i++)
        fds[n++] = slots[i].fd;
    return n;
}

/* "TCP INET: 11211" for a socket, as memcached writes its port file. */
static void port_line(FILE *f, int fd, const char *proto)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET)
        fprintf(f, "%s INET: %u\n", proto, ntohs(((struct sockaddr_in *)&ss)->sin_port));
    else if (ss.ss_family == AF_INET6)
        fprintf(f, "%s INET6: %u\n", proto, ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
}

int listener_write_ports(const char *path, char *err, size_t errlen)
{
    char tmp[1100];
    int udp[16];
    snprintf(tmp, sizeof(tmp), "%s.lck", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        snprintf(err, errlen, "cannot write the port file %s: %s", tmp, strerror(errno));
        return -1;
    }
    for (int i = 0; i < nslots; i++)
        if (slots[i].main && slots[i].tcp)
            port_line(f, (int)evconnlistener_get_fd(slots[i].lev), "TCP");
    size_t nu = udp_sockets(udp, sizeof(udp) / sizeof(udp[0]));
    for (size_t i = 0; i < nu; i++)
        port_line(f, udp[i], "UDP");
    /* renamed only when complete: a reader polling for the file sees all of it */
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot write the port file %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

struct event_base *listener_base(void)
{
    return base;
}

void listener_run(void)
{
    event_base_dispatch(base);
}

void listener_teardown(void)
{
    int ns = nslots;
    __atomic_store_n(&nslots, 0, __ATOMIC_RELEASE);
    for (int i = 0; i < ns; i++)
        evconnlistener_free(slots[i].lev);
    if (resume_ev != NULL)
        event_free(resume_ev);
    resume_ev = NULL;
    if (base != NULL)
        event_base_free(base);
    base = NULL;
}
