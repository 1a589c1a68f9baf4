/*
 * The TLS transport over OpenSSL: the one file in kioku that includes it.
 *
 * A TLS connection is an ordinary connection whose transport reads and
 * writes through an SSL object (struct tls_conn in c->tp_data). Nothing
 * here blocks: the socket stays non-blocking and the handshake is driven
 * by the connection's own read events. The first read runs SSL_accept()
 * until it completes; "want read/write" is reported to the connection as
 * EAGAIN, so it waits for the next event like any socket. A peer that sends
 * something that is not a ClientHello fails the handshake and is closed; a
 * peer that stalls mid-handshake is closed by a timer after
 * ssl_handshake_timeout seconds. Either way the worker never waits on it.
 *
 * Reads loop SSL_read() until the caller's buffer is full or the socket has
 * nothing more, so a short read still means "drained", as the connection
 * assumes: no decrypted bytes are left behind in OpenSSL while the
 * connection waits for an event that would not come.
 *
 * Writes copy the iovecs into a buffer of ssl_wbuf_size bytes (16 KiB, one
 * maximal record, unless configured) and hand it to SSL_write() (partial
 * writes on, moving buffer allowed): one TLS record per 16 KiB instead of
 * one per reply fragment; a smaller buffer makes smaller records, a larger
 * one fewer SSL_write calls. The buffer belongs to the worker thread, as
 * writes never wait: allocated on its first TLS write, freed when it exits.
 * When the socket is full, the connection retries from the same offset
 * with at least as many bytes, which is what OpenSSL requires of a retried
 * write.
 *
 * Resumption: without ssl_session_cache there is none, no cache and no
 * tickets, so every connection pays a full handshake. With it, sessions
 * live in OpenSSL's server-side cache (bounded: 20480 sessions, 5 minutes
 * each by default) and tickets only name them (TLS 1.2 session ids, TLS
 * 1.3 stateful tickets), so no session state leaves the server under a
 * ticket key. A listener that requires client certificates (-l mtls:)
 * resumes only its own sessions: each kind of listener has its own session
 * id context, or a session made without a certificate could skip the check.
 * A certificate reload starts an empty cache with its new context.
 *
 * The context is swapped whole on a certificate reload, under ctx_lock; an
 * SSL object holds its own reference, so open connections are unaffected.
 */
#include "tls/tls.h"

#include <errno.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/conn.h"
#include "core/worker.h"
#include "stats/stats.h"
#include "util/clock.h"


struct tls_conn {
    SSL *ssl;
    struct event *timer;   /* handshake deadline; NULL once established */
    bool established;
    bool failed;           /* a fatal TLS error: no close_notify */
};

static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;
static SSL_CTX *ctx;                  /* under ctx_lock */
static int64_t loaded_ms;             /* under ctx_lock: when ctx was built */
static struct tls_config config;      /* set once by tls_setup */
static pthread_key_t wbuf_key;        /* each worker's write buffer */
static uint64_t new_sessions;         /* atomic: ssl_new_sessions */

/* Session id contexts: sessions resume only on the kind of listener that
 * made them. */
static const char sid_default[] = "kioku";
static const char sid_nopeer[] = "kioku-btls";
static const char sid_peer[] = "kioku-mtls";

/* The most recent OpenSSL error of this thread as text; clears the queue. */
static void last_error(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    if (e == 0)
        snprintf(buf, len, "unknown error");
    else
        ERR_error_string_n(e, buf, len);
    ERR_clear_error();
}

/* OpenSSL calls this in the worker thread for each session it caches. 0:
 * we keep no reference. */
static int session_created(SSL *ssl, SSL_SESSION *sess)
{
    (void)ssl;
    (void)sess;
    __atomic_add_fetch(&new_sessions, 1, __ATOMIC_RELAXED);
    return 0;
}

uint64_t tls_new_sessions(void)
{
    return __atomic_load_n(&new_sessions, __ATOMIC_RELAXED);
}

/* Build a context from the configured files. NULL with err filled. */
static SSL_CTX *ctx_build(char *err, size_t errlen)
{
    char why[256];
    SSL_CTX *c = SSL_CTX_new(TLS_server_method());
    if (c == NULL) {
        last_error(why, sizeof(why));
        snprintf(err, errlen, "cannot create a TLS context: %s", why);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(c, config.min_version == 3 ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                           SSL_OP_CIPHER_SERVER_PREFERENCE);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    /* A client that closes without close_notify (Python's ssl does) ends
     * like one that sent it: OpenSSL 3 would call that a fatal error and
     * drop its session from the cache. Requests carry their own length, so
     * a cut cannot pass for a whole one. */
    SSL_CTX_set_options(c, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
    SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                        SSL_MODE_RELEASE_BUFFERS);
    /* Tickets off either way: with the cache they carry only an id. */
    SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
    if (config.session_cache) {
        SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_SERVER);
        SSL_CTX_sess_set_new_cb(c, session_created);
        SSL_CTX_set_num_tickets(c, 1);
    } else {
        SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_num_tickets(c, 0);
    }
    SSL_CTX_set_session_id_context(c, (const unsigned char *)sid_default, sizeof(sid_default) - 1);
    if (config.kernel_tls) {
#ifdef SSL_OP_ENABLE_KTLS
        /* OpenSSL uses kernel TLS where the kernel and cipher allow it and
         * quietly does the work itself where not. */
        SSL_CTX_set_options(c, SSL_OP_ENABLE_KTLS);
#else
        snprintf(err, errlen, "Kernel TLS offload is not available");
        goto fail;
#endif
    }

    /* As memcached: the key may be in the chain file. */
    const char *key = config.key[0] != '\0' ? config.key : config.chain_cert;
    if (config.chain_cert[0] == '\0') {
        snprintf(err, errlen, "TLS needs -o ssl_chain_cert=FILE,ssl_key=FILE");
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(c, config.chain_cert) != 1) {
        last_error(why, sizeof(why));
        snprintf(err, errlen, "Error loading the certificate chain: %s : %s", config.chain_cert, why);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM) != 1) {
        last_error(why, sizeof(why));
        snprintf(err, errlen, "Error loading the key: %s : %s", key, why);
        goto fail;
    }
    if (SSL_CTX_check_private_key(c) != 1) {
        last_error(why, sizeof(why));
        snprintf(err, errlen, "Error validating the certificate: %s", why);
        goto fail;
    }
    if (config.ca_cert[0] != '\0') {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(config.ca_cert);
        if (SSL_CTX_load_verify_locations(c, config.ca_cert, NULL) != 1 || names == NULL) {
            last_error(why, sizeof(why));
            snprintf(err, errlen, "Error loading the CA certificate: %s : %s", config.ca_cert, why);
            if (names != NULL)
                sk_X509_NAME_pop_free(names, X509_NAME_free);
            goto fail;
        }
        SSL_CTX_set_client_CA_list(c, names);
    }
    if (config.ciphers[0] != '\0' && SSL_CTX_set_cipher_list(c, config.ciphers) != 1) {
        last_error(why, sizeof(why));
        snprintf(err, errlen, "Error setting the ciphers: %s : %s", config.ciphers, why);
        goto fail;
    }
    static const int verify[] = {
        SSL_VERIFY_NONE,
        SSL_VERIFY_PEER,
        SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
        SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT | SSL_VERIFY_CLIENT_ONCE,
    };
    SSL_CTX_set_verify(c, verify[config.verify_mode & 3], NULL);
    return c;
fail:
    SSL_CTX_free(c);
    return NULL;
}

int tls_refresh_certs(char *err, size_t errlen)
{
    pthread_mutex_lock(&ctx_lock);
    bool on = ctx != NULL;
    pthread_mutex_unlock(&ctx_lock);
    if (!on) {
        snprintf(err, errlen, "TLS not enabled");
        return -1;
    }
    SSL_CTX *fresh = ctx_build(err, errlen);
    if (fresh == NULL)
        return -1;
    pthread_mutex_lock(&ctx_lock);
    SSL_CTX *old = ctx;
    ctx = fresh;
    loaded_ms = clock_now_ms();
    pthread_mutex_unlock(&ctx_lock);
    SSL_CTX_free(old);   /* connections that use it hold their own reference */
    return 0;
}

/* ---- the transport ---- */

static void handshake_expired(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;
    STAT_INC(c->stats, ssl_handshake_errors);
    conn_close(c);   /* frees the timer through tls_close */
}

static int tls_open(struct conn *c)
{
    struct tls_conn *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return -1;
    pthread_mutex_lock(&ctx_lock);
    t->ssl = ctx != NULL ? SSL_new(ctx) : NULL;
    pthread_mutex_unlock(&ctx_lock);
    if (t->ssl == NULL || SSL_set_fd(t->ssl, c->fd) != 1)
        goto fail;
    SSL_set_accept_state(t->ssl);
    /* -l mtls: / btls: override ssl_verify_mode on that listener */
    if (c->listen_flags & LISTENER_TLS_PEER) {
        SSL_set_verify(t->ssl, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        SSL_set_session_id_context(t->ssl, (const unsigned char *)sid_peer, sizeof(sid_peer) - 1);
    } else if (c->listen_flags & LISTENER_TLS_NOPEER) {
        SSL_set_verify(t->ssl, SSL_VERIFY_NONE, NULL);
        SSL_set_session_id_context(t->ssl, (const unsigned char *)sid_nopeer, sizeof(sid_nopeer) - 1);
    }
    struct timeval tv = {config.handshake_timeout, 0};
    t->timer = evtimer_new(c->worker->base, handshake_expired, c);
    if (t->timer == NULL || evtimer_add(t->timer, &tv) != 0)
        goto fail;
    c->tp_data = t;
    return 0;
fail:
    if (t->timer != NULL)
        event_free(t->timer);
    SSL_free(t->ssl);
    free(t);
    ERR_clear_error();
    return -1;
}

/* Map an SSL result to the transport's errno contract. "Want write" on a
 * read is reported as EAGAIN like "want read": the connection then waits
 * to read, which is right as long as the socket takes our handshake flight
 * (a few KiB, into an empty send buffer). Were it ever full, the handshake
 * deadline still closes the connection; renegotiation, the other source,
 * is refused (SSL_OP_NO_RENEGOTIATION). */
static ssize_t tls_result(struct tls_conn *t, int rc)
{
    switch (SSL_get_error(t->ssl, rc)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:   /* the peer's close_notify */
        return 0;
    default:
        t->failed = true;
        ERR_clear_error();
        errno = ECONNRESET;
        return -1;
    }
}

/* Drive the handshake: 1 done, otherwise as tls_result. A handshake that
 * fails (or times out) counts in memcached's ssl_handshake_errors. */
static ssize_t tls_handshake(struct conn *c, struct tls_conn *t)
{
    ERR_clear_error();
    int rc = SSL_do_handshake(t->ssl);
    if (rc != 1) {
        ssize_t r = tls_result(t, rc);
        if (r == 0) {   /* closed before it began: a failed handshake */
            t->failed = true;
            errno = ECONNRESET;
            r = -1;
        }
        if (t->failed)
            STAT_INC(c->stats, ssl_handshake_errors);
        return r;
    }
    t->established = true;
    event_free(t->timer);
    t->timer = NULL;
    return 1;
}

static ssize_t tls_read(struct conn *c, void *buf, size_t n)
{
    struct tls_conn *t = c->tp_data;
    if (!t->established && tls_handshake(c, t) != 1)
        return -1;
    size_t got = 0;
    while (got < n) {
        size_t want = n - got;
        int chunk = want > INT32_MAX ? INT32_MAX : (int)want;
        ERR_clear_error();
        int rc = SSL_read(t->ssl, (char *)buf + got, chunk);
        if (rc > 0) {
            got += (size_t)rc;
            continue;
        }
        if (got > 0)
            return (ssize_t)got;   /* the error (or EAGAIN) comes back next call */
        return tls_result(t, rc);
    }
    return (ssize_t)got;
}

static ssize_t tls_writev(struct conn *c, const struct iovec *iov, int iovcnt)
{
    struct tls_conn *t = c->tp_data;
    const size_t cap = config.wbuf_size;
    size_t done = 0;
    int i = 0;
    size_t skip = 0;   /* bytes of iov[i] already sent */
    if (!t->established && tls_handshake(c, t) != 1)
        return -1;
    char *chunk = pthread_getspecific(wbuf_key);
    if (chunk == NULL) {   /* this worker's first TLS write */
        chunk = malloc(cap);
        if (chunk == NULL || pthread_setspecific(wbuf_key, chunk) != 0) {
            free(chunk);
            errno = ENOMEM;
            return -1;
        }
    }
    while (i < iovcnt) {
        /* Gather up to cap bytes from where the last write stopped. */
        size_t len = 0;
        int j = i;
        size_t off = skip;
        while (j < iovcnt && len < cap) {
            size_t take = iov[j].iov_len - off;
            if (take > cap - len)
                take = cap - len;
            memcpy(chunk + len, (const char *)iov[j].iov_base + off, take);
            len += take;
            off += take;
            if (off == iov[j].iov_len) {
                j++;
                off = 0;
            }
        }
        if (len == 0)
            break;
        /* With partial writes one SSL_write sends at most one record, so
         * the gathered bytes go out in several calls, copied once. A
         * retry after an error here starts from the unsent bytes, the
         * ones OpenSSL expects again. */
        for (size_t sent = 0; sent < len;) {
            ERR_clear_error();
            int rc = SSL_write(t->ssl, chunk + sent, (int)(len - sent));
            if (rc <= 0) {
                if (done > 0)
                    return (ssize_t)done;
                ssize_t r = tls_result(t, rc);
                if (r == 0) {
                    errno = EPIPE;
                    r = -1;
                }
                return r;
            }
            sent += (size_t)rc;
            done += (size_t)rc;
        }
        i = j;
        skip = off;
    }
    return (ssize_t)done;
}

static void tls_close(struct conn *c)
{
    struct tls_conn *t = c->tp_data;
    if (t != NULL) {
        if (t->timer != NULL)
            event_free(t->timer);
        if (t->established && !t->failed) {
            ERR_clear_error();
            SSL_shutdown(t->ssl);   /* best effort close_notify, never waits */
        }
        SSL_free(t->ssl);
        ERR_clear_error();
        free(t);
        c->tp_data = NULL;
    }
    close(c->fd);
}

static const struct transport transport_tls = {
    .name = "tls", .open = tls_open, .read = tls_read, .writev = tls_writev, .close = tls_close,
};

const struct transport *tls_setup(const struct tls_config *cfg, char *err, size_t errlen)
{
    config = *cfg;
    if (config.wbuf_size < TLS_WBUF_MIN_KB * 1024 || config.wbuf_size > TLS_WBUF_MAX_KB * 1024) {
        snprintf(err, errlen, "ssl_wbuf_size must be %d to %d (KiB)", TLS_WBUF_MIN_KB, TLS_WBUF_MAX_KB);
        return NULL;
    }
    if (config.verify_mode < 0 || config.verify_mode > 3) {
        snprintf(err, errlen, "ssl_verify_mode must be 0, 1, 2 or 3");
        return NULL;
    }
    if (config.verify_mode >= 2 && config.ca_cert[0] == '\0') {
        snprintf(err, errlen, "ssl_verify_mode=%d needs ssl_ca_cert", config.verify_mode);
        return NULL;
    }
    SSL_CTX *c = ctx_build(err, errlen);
    if (c == NULL)
        return NULL;
    if (pthread_key_create(&wbuf_key, free) != 0) {
        snprintf(err, errlen, "cannot create a thread key for TLS write buffers");
        SSL_CTX_free(c);
        return NULL;
    }
    pthread_mutex_lock(&ctx_lock);
    ctx = c;
    loaded_ms = clock_now_ms();
    pthread_mutex_unlock(&ctx_lock);
    return &transport_tls;
}

int64_t tls_certs_loaded_ms(void)
{
    pthread_mutex_lock(&ctx_lock);
    int64_t t = loaded_ms;
    pthread_mutex_unlock(&ctx_lock);
    return t;
}

void tls_teardown(void)
{
    pthread_mutex_lock(&ctx_lock);
    SSL_CTX *c = ctx;
    ctx = NULL;
    pthread_mutex_unlock(&ctx_lock);
    SSL_CTX_free(c);
}
