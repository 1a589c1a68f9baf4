/*
 * TLS: a transport for connections, and the certificates it serves.
 *
 * This header is free of OpenSSL: the rest of kioku sees a transport (the
 * vtable in core/conn.h) and a few calls. tls.c is the one file that
 * includes OpenSSL; tls_none.c stands in for it when kioku is configured
 * with --disable-tls (or OpenSSL was not found), and refuses to start TLS.
 *
 * Certificates can be reloaded while the server runs (refresh_certs,
 * SIGHUP): a reload builds a whole new context and swaps it in only when
 * every file loaded, so a bad file leaves the old certificates serving.
 * Connections keep the context they started with.
 */
#ifndef KIOKU_TLS_H
#define KIOKU_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct transport;

#define TLS_PATH_MAX 256

/* The -Z / -o ssl_* options, named as memcached names them. */
struct tls_config {
    bool enabled;                    /* -Z, or implied by tls_port */
    int port;                        /* --tls-port / -o tls_port; 0: -Z makes the main port TLS */
    bool resp_tls;                   /* -o resp_tls: the --resp-port listener speaks TLS too */
    char chain_cert[TLS_PATH_MAX];   /* ssl_chain_cert: PEM chain, server cert first */
    char key[TLS_PATH_MAX];          /* ssl_key: PEM private key; "": in chain_cert */
    char ca_cert[TLS_PATH_MAX];      /* ssl_ca_cert: CAs that client certificates must chain to */
    int verify_mode;                 /* ssl_verify_mode: 0 none, 1 request, 2 require, 3 once */
    int min_version;                 /* ssl_min_version: 2 (tlsv1.2, default) or 3 (tlsv1.3) */
    char ciphers[TLS_PATH_MAX];      /* ssl_ciphers: OpenSSL cipher list (TLS 1.2); "" default */
    int handshake_timeout;           /* ssl_handshake_timeout: seconds to finish a handshake */
    size_t wbuf_size;                /* ssl_wbuf_size (KiB there): most bytes per SSL_write; 16 KiB */
    bool session_cache;              /* ssl_session_cache: resumable sessions, cached server-side */
    bool kernel_tls;                 /* ssl_kernel_tls: let OpenSSL hand records to the kernel */
};

/* Bounds of ssl_wbuf_size, in KiB. */
#define TLS_WBUF_MIN_KB 1
#define TLS_WBUF_MAX_KB 1024

/* memcached's per-listener prefixes in -l: "notls:" (plain), "btls:" (TLS,
 * no client certificate asked for) and "mtls:" (TLS, one required). */
enum tls_listen_mode { TLS_LISTEN_DEFAULT, TLS_LISTEN_OFF, TLS_LISTEN_NOPEER, TLS_LISTEN_PEER };

/* The prefix that begins one -l entry; *skip gets its length (0 for
 * TLS_LISTEN_DEFAULT). Pure. */
enum tls_listen_mode tls_listen_prefix(const char *entry, size_t *skip);

void tls_config_default(struct tls_config *cfg);

/* Parse an ssl_min_version value: 2, 3, "tlsv1.2" or "tlsv1.3". Returns the
 * minor version (2 or 3), or -1. */
int tls_parse_min_version(const char *val);

/* Load the certificates and build the context. Returns the TLS transport,
 * or NULL with err filled (also when kioku was built without TLS). */
const struct transport *tls_setup(const struct tls_config *cfg, char *err, size_t errlen);

/* Reload certificate, key and CA from the configured files. Returns 0, or
 * -1 with err filled and the old context still in use. Any thread. */
int tls_refresh_certs(char *err, size_t errlen);
/* kioku ms when the certificates in use were loaded (start-up or the last
 * successful refresh); 0 without TLS. For memcached's
 * time_since_server_cert_refresh. */
int64_t tls_certs_loaded_ms(void);

/* memcached's ssl_new_sessions: sessions the cache has created (full
 * handshakes, and each TLS 1.3 ticket). 0 without ssl_session_cache. */
uint64_t tls_new_sessions(void);

/* Free the context (after every TLS connection is closed). */
void tls_teardown(void);

#endif
