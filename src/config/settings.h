/*
 * Settings: the one configuration struct, filled from the command line at
 * start-up and read-only afterwards. Flags and defaults follow memcached's
 * so that an existing memcached command line starts kioku unchanged.
 *
 * settings_parse() prints nothing and exits nothing; main() acts on the
 * result. Apart from getopt's cursor it is pure, except that it reads the
 * config file that --config (or -o config=) names.
 */
#ifndef KIOKU_SETTINGS_H
#define KIOKU_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>

#include "storage/storage.h"
#include "tls/tls.h"

#define KIOKU_EX_USAGE 64   /* sysexits.h EX_USAGE */
#define KIOKU_EX_CONFIG 78  /* sysexits.h EX_CONFIG */

/* -B: which memcached protocol a connection speaks. */
enum settings_binding {
    BINDING_AUTO,     /* by the first byte (0x80: binary), memcached's default */
    BINDING_ASCII,    /* text only: a binary request is read as text */
    BINDING_BINARY,   /* binary only: text is read as (bad) binary */
};

struct settings {
    int port;                 /* -p, 11211; 0 off, -1 a port the kernel picks */
    int udp_port;             /* -U, 0 off (memcached's default since 1.5.6); -1 any */
    bool port_given;          /* -p was given: -U does not move TCP to its port */
    char listen[1024];        /* -l, comma-separated; "127.0.0.1" */
    char socket_path[256];    /* -s: unix socket instead of TCP */
    int socket_mask;          /* -a, octal, 0700 */
    int max_conns;            /* -c, 1024 */
    int threads;              /* -t, 4 */
    int backlog;              /* -b, 1024 */
    int reqs_per_event;       /* -R, 20 */
    int verbose;              /* -v count */
    bool daemonize;           /* -d */
    bool enable_shutdown;     /* -A */
    bool flush_enabled;       /* false with -F */
    bool lock_memory;         /* -k */
    bool coredumps;           /* -r */
    char user[64];            /* -u */
    char pid_file[256];       /* -P */
    char config_file[256];    /* --config / -o config: read before argv applies */
    char logfile[1024];       /* -o logfile / --logfile: "" for stderr */
    int shutdown_timeout;     /* -o shutdown_timeout: seconds replies may
                                 drain on SIGTERM before clients are cut; 3 */
    int idle_timeout;         /* -o idle_timeout, seconds; 0 none */
    size_t max_output;        /* -o max_output_buffer, bytes; 64 MiB, 0 none */
    size_t read_buf_mem_limit; /* -o read_buf_mem_limit (MiB), bytes; 0 none */
    int resp_port;            /* --resp-port / -o resp_port; 0 off (issue 4) */
    size_t proto_max_bulk_len; /* -o proto_max_bulk_len: longest RESP bulk; 512 MiB */
    char auth_file[256];      /* -Y: memcached's authfile of user:password lines */
    bool sasl;                /* -S: binary clients must authenticate (SASL PLAIN) */
    char requirepass[256];    /* --requirepass / -o requirepass: RESP's default user */
    char prefix_delimiter;    /* -D, ':': per-prefix stats (stats detail) */
    bool detail_enabled;      /* per-prefix stats on at start (-D turns it on) */
    enum settings_binding binding;   /* -B auto|ascii|binary */
    bool null_storage;        /* -o null_storage: benchmark mode, get/set answered
                                 without storage (a null server, bench/) */
    bool watch_enabled;       /* false with -W: `watch` refused */
    size_t watcher_logbuf_size; /* -o watcher_logbuf_size (KiB given): bytes
                                 buffered per watcher; 256 KiB */
    bool io_uring;            /* -o io_uring: workers do socket I/O through an
                                 io_uring (libevent where refused) */
    struct storage_config storage;
    struct tls_config tls;    /* -Z, --tls-port, -o ssl_* (issue 9) */
};

enum settings_action {
    SETTINGS_RUN,      /* start the server */
    SETTINGS_HELP,     /* print settings_usage() and exit 0 */
    SETTINGS_VERSION,  /* print the version and exit 0 */
    SETTINGS_ERROR,    /* print err, a --help hint, exit KIOKU_EX_USAGE */
    SETTINGS_CONFIG_ERROR,   /* the config file: print err, exit KIOKU_EX_CONFIG */
};

void settings_default(struct settings *s);

/* Parse argv over the defaults already in *s. On SETTINGS_ERROR a one-line
 * message is in err. Validates ranges (port, threads, sizes). With a config
 * file, *s is the file's options over those defaults, then argv's: the
 * command line wins; a bad file is SETTINGS_CONFIG_ERROR with
 * "FILE:LINE: message" (or "FILE: reason") in err. */
enum settings_action settings_parse(struct settings *s, int argc, char **argv,
                                    char *err, size_t errlen);

/* One config file option: key is a long option's name ("port",
 * "maxmemory-policy") or an -o key ("maxmemory_policy", "hashpower");
 * value is NULL for none. A flag takes no value, "yes" or "no" (no change).
 * Runs the same code as the command line. Returns 0, or -1 with err. */
int settings_apply_option(struct settings *s, const char *key, const char *value, char *err,
                          size_t errlen);

/* Parse a size with an optional k/m/g suffix ("1m", "512k", "2048").
 * Returns 0 and *out in bytes, or -1. */
int settings_parse_size(const char *str, size_t *out);

/* Parse a size as Redis's memtoll does ("64mb", "1gb", "67108864"): digits
 * and an optional case-insensitive unit, b = 1, k = 1000, kb = 1024,
 * m = 10^6, mb = 2^20, g = 10^9, gb = 2^30. Returns 0 and *out, or -1. */
int settings_parse_redis_size(const char *str, size_t *out);

/* Redis's bounds for proto-max-bulk-len: at least 1 MiB (its default is
 * 512 MiB, RESP_BULK_MAX). */
#define SETTINGS_BULK_MIN ((size_t)1024 * 1024)

/* Parse exactly n bytes at p as a decimal long long the way Redis's
 * string2ll does (no blanks, '+', leading zeros or "-0"); p need not be
 * NUL-terminated. Returns 0 and *out, or -1. Shared with CONFIG SET so
 * that the command line and RESP accept the same numbers. */
int settings_parse_ll(const char *p, size_t n, long long *out);

/* The --help text. */
const char *settings_usage(void);

#endif
