/*
 * Command-line parsing. One getopt_long table mirrors memcached's short and
 * long flags; -o takes memcached's comma-separated key=value list, of which
 * we accept the keys kioku gives a meaning to. Everything is validated here,
 * so the rest of the server can trust the struct.
 *
 * A config file (--config, -o config=) names the same options: a long
 * option's name finds its row in the getopt table and runs the same case of
 * apply_opt; any other key is tried as an -o key. The file is applied over
 * the defaults first and the command line again over it, so the command
 * line wins.
 */
#include "config/settings.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "config/conffile.h"
#include "storage/evict.h"

void settings_default(struct settings *s)
{
    memset(s, 0, sizeof(*s));
    s->port = 11211;
    s->udp_port = 0;
    snprintf(s->listen, sizeof(s->listen), "%s", "127.0.0.1");
    s->socket_mask = 0700;
    s->max_conns = 1024;
    s->threads = 4;
    s->backlog = 1024;
    s->reqs_per_event = 20;
    s->max_output = (size_t)64 << 20;
    s->shutdown_timeout = 3;
    s->proto_max_bulk_len = (size_t)512 << 20;   /* Redis's default */
    s->flush_enabled = true;
    s->prefix_delimiter = ':';
    s->watch_enabled = true;
    s->watcher_logbuf_size = (size_t)256 * 1024;
    storage_config_default(&s->storage);
    tls_config_default(&s->tls);
}

int settings_parse_size(const char *str, size_t *out)
{
    char *end;
    errno = 0;
    if (str == NULL || *str < '0' || *str > '9')
        return -1;
    unsigned long long v = strtoull(str, &end, 10);
    if (errno != 0)
        return -1;
    unsigned shift = 0;
    switch (*end) {
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    default: break;
    }
    if (*end != '\0' || v > (SIZE_MAX >> shift))
        return -1;
    *out = (size_t)v << shift;
    return 0;
}

int settings_parse_redis_size(const char *str, size_t *out)
{
    static const struct { const char *unit; unsigned long long mul; } units[] = {
        {"", 1}, {"b", 1}, {"k", 1000}, {"kb", 1024}, {"m", 1000 * 1000}, {"mb", 1024 * 1024},
        {"g", 1000 * 1000 * 1000}, {"gb", 1024 * 1024 * 1024},
    };
    if (str == NULL || *str < '0' || *str > '9')
        return -1;
    const char *u = str;
    while (*u >= '0' && *u <= '9')
        u++;
    long long digits;
    if (settings_parse_ll(str, (size_t)(u - str), &digits) != 0)
        return -1;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcasecmp(u, units[i].unit) != 0)
            continue;
        unsigned long long v = (unsigned long long)digits;
        if (v > SIZE_MAX / units[i].mul)
            return -1;
        *out = (size_t)(v * units[i].mul);
        return 0;
    }
    return -1;
}

int settings_parse_ll(const char *p, size_t n, long long *out)
{
    /* Redis's string2ll: no blanks, no '+', no leading zeros, no "-0". */
    if (n == 0 || n > 20)
        return -1;
    if (n == 1 && p[0] == '0') {
        *out = 0;
        return 0;
    }
    size_t i = 0;
    bool neg = p[0] == '-';
    if (neg)
        i++;
    if (i >= n || p[i] < '1' || p[i] > '9')
        return -1;
    unsigned long long v = 0;
    for (; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (ULLONG_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (neg) {
        if (v > (unsigned long long)LLONG_MAX + 1)
            return -1;
        *out = v == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)v;
    } else {
        if (v > (unsigned long long)LLONG_MAX)
            return -1;
        *out = (long long)v;
    }
    return 0;
}

/* A whole decimal int in [lo, hi]. */
static int parse_int(const char *str, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    if (str == NULL || *str == '\0')
        return -1;
    long v = strtol(str, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

/* One of the eviction knobs, as Redis's CONFIG SET parses it, in [lo, INT_MAX]. */
static int parse_knob(const char *str, long long lo, unsigned *out)
{
    long long v;
    if (str == NULL || settings_parse_ll(str, strlen(str), &v) != 0 || v < lo || v > INT_MAX)
        return -1;
    *out = (unsigned)v;
    return 0;
}

/* Writes "allkeys-s3fifo, allkeys-lru, ..." (every name evict_policy_parse takes). */
static void policy_names(char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < EVICT_NPOLICIES && n < cap; i++) {
        int w = snprintf(buf + n, cap - n, "%s%s", i ? ", " : "",
                         evict_policy_name((enum evict_policy)i));
        if (w < 0)
            break;
        n += (size_t)w;
    }
}

/* --maxmemory-policy / -o maxmemory_policy. noeviction is -M: the storage
 * engine reads evict as well as policy. */
static int set_policy(struct settings *s, const char *name, char *err, size_t errlen)
{
    enum evict_policy p;
    if (name == NULL || evict_policy_parse(name, &p) != 0) {
        char names[200];
        policy_names(names, sizeof(names));
        snprintf(err, errlen, "unknown maxmemory-policy \"%.40s\": must be one of %s",
                 name ? name : "", names);
        return -1;
    }
    s->storage.policy = (unsigned)p;
    s->storage.evict = p != EVICT_NOEVICTION;
    return 0;
}

/* The knobs shared by the long options and -o; name is the -o spelling. */
static int set_knob(struct settings *s, const char *name, const char *val, char *err,
                    size_t errlen)
{
    if (strcmp(name, "maxmemory_policy") == 0)
        return set_policy(s, val, err, errlen);
    if (strcmp(name, "lfu_log_factor") == 0) {
        if (parse_knob(val, 0, &s->storage.lfu_log_factor) == 0)
            return 0;
        snprintf(err, errlen, "lfu_log_factor must be an integer from 0 to %d", INT_MAX);
    } else if (strcmp(name, "lfu_decay_time") == 0) {
        if (parse_knob(val, 0, &s->storage.lfu_decay_time) == 0)
            return 0;
        snprintf(err, errlen, "lfu_decay_time must be an integer (minutes) from 0 to %d", INT_MAX);
    } else if (strcmp(name, "maxmemory_samples") == 0) {
        if (parse_knob(val, 1, &s->storage.samples) == 0)
            return 0;
        snprintf(err, errlen, "maxmemory_samples must be an integer from 1 to %d", INT_MAX);
    } else {
        return 1;   /* not a knob */
    }
    return -1;
}

static int copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        return -1;
    memcpy(dst, src, n + 1);
    return 0;
}

enum { OPT_RESP_PORT = 1000, OPT_MAXMEMORY, OPT_POLICY, OPT_LFU_LOG_FACTOR, OPT_LFU_DECAY_TIME,
       OPT_SAMPLES, OPT_REQUIREPASS, OPT_TLS_PORT, OPT_LOGFILE, OPT_CONFIG };

static const struct option long_opts[] = {
    {"port", required_argument, NULL, 'p'},
    {"udp-port", required_argument, NULL, 'U'},
    {"unix-socket", required_argument, NULL, 's'},
    {"unix-mask", required_argument, NULL, 'a'},
    {"enable-shutdown", no_argument, NULL, 'A'},
    {"listen", required_argument, NULL, 'l'},
    {"daemon", no_argument, NULL, 'd'},
    {"enable-coredumps", no_argument, NULL, 'r'},
    {"user", required_argument, NULL, 'u'},
    {"memory-limit", required_argument, NULL, 'm'},
    {"disable-evictions", no_argument, NULL, 'M'},
    {"conn-limit", required_argument, NULL, 'c'},
    {"lock-memory", no_argument, NULL, 'k'},
    {"verbose", optional_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {"pidfile", required_argument, NULL, 'P'},
    {"slab-growth-factor", required_argument, NULL, 'f'},
    {"slab-min-size", required_argument, NULL, 'n'},
    {"enable-largepages", no_argument, NULL, 'L'},
    {"threads", required_argument, NULL, 't'},
    {"max-reqs-per-event", required_argument, NULL, 'R'},
    {"disable-cas", no_argument, NULL, 'C'},
    {"listen-backlog", required_argument, NULL, 'b'},
    {"max-item-size", required_argument, NULL, 'I'},
    {"disable-flush-all", no_argument, NULL, 'F'},
    {"extended", required_argument, NULL, 'o'},
    {"memory-file", required_argument, NULL, 'e'},
    {"prefix-delimiter", required_argument, NULL, 'D'},
    {"protocol", required_argument, NULL, 'B'},
    {"resp-port", required_argument, NULL, OPT_RESP_PORT},
    {"enable-ssl", no_argument, NULL, 'Z'},
    {"tls-port", required_argument, NULL, OPT_TLS_PORT},
    {"maxmemory", required_argument, NULL, OPT_MAXMEMORY},
    {"maxmemory-policy", required_argument, NULL, OPT_POLICY},
    {"lfu-log-factor", required_argument, NULL, OPT_LFU_LOG_FACTOR},
    {"lfu-decay-time", required_argument, NULL, OPT_LFU_DECAY_TIME},
    {"maxmemory-samples", required_argument, NULL, OPT_SAMPLES},
    {"enable-sasl", no_argument, NULL, 'S'},
    {"auth-file", required_argument, NULL, 'Y'},
    {"requirepass", required_argument, NULL, OPT_REQUIREPASS},
    {"logfile", required_argument, NULL, OPT_LOGFILE},
    {"config", required_argument, NULL, OPT_CONFIG},
    {"disable-watch", no_argument, NULL, 'W'},
    {NULL, 0, NULL, 0},
};

static const char short_opts[] = ":p:U:s:a:Al:dru:m:Mc:kvhVP:f:n:Lt:R:Cb:I:Fo:e:SY:ZD:B:W";

/* One TLS -o option (memcached's names). 1: not a TLS option; 0 or -1. */
static int parse_tls_opt(struct tls_config *t, const char *kv, const char *val, char *err,
                         size_t errlen)
{
    char *path = NULL;
    if (strcmp(kv, "ssl_chain_cert") == 0)
        path = t->chain_cert;
    else if (strcmp(kv, "ssl_key") == 0)
        path = t->key;
    else if (strcmp(kv, "ssl_ca_cert") == 0)
        path = t->ca_cert;
    else if (strcmp(kv, "ssl_ciphers") == 0)
        path = t->ciphers;
    if (path != NULL) {
        if (val == NULL || *val == '\0' || copy_str(path, TLS_PATH_MAX, val) != 0) {
            snprintf(err, errlen, "-o %s needs a value shorter than %d bytes", kv, TLS_PATH_MAX);
            return -1;
        }
        return 0;
    }
    if (strcmp(kv, "ssl_verify_mode") == 0) {
        if (parse_int(val, 0, 3, &t->verify_mode) != 0) {
            snprintf(err, errlen, "ssl_verify_mode must be 0 (none), 1 (request), 2 (require) or 3 (once)");
            return -1;
        }
    } else if (strcmp(kv, "ssl_min_version") == 0) {
        if ((t->min_version = tls_parse_min_version(val)) < 0) {
            snprintf(err, errlen, "ssl_min_version must be 2 (tlsv1.2) or 3 (tlsv1.3)");
            return -1;
        }
    } else if (strcmp(kv, "ssl_handshake_timeout") == 0) {
        if (parse_int(val, 1, 3600, &t->handshake_timeout) != 0) {
            snprintf(err, errlen, "ssl_handshake_timeout must be 1 to 3600 seconds");
            return -1;
        }
    } else if (strcmp(kv, "tls_port") == 0) {
        if (parse_int(val, 1, 65535, &t->port) != 0) {
            snprintf(err, errlen, "tls_port must be a port number");
            return -1;
        }
        t->enabled = true;
    } else if (strcmp(kv, "resp_tls") == 0) {
        if (val != NULL) {
            snprintf(err, errlen, "-o resp_tls takes no value");
            return -1;
        }
        t->resp_tls = true;
    } else if (strcmp(kv, "ssl_wbuf_size") == 0) {
        int kb;
        if (parse_int(val, TLS_WBUF_MIN_KB, TLS_WBUF_MAX_KB, &kb) != 0) {
            snprintf(err, errlen, "ssl_wbuf_size must be %d to %d (KiB)", TLS_WBUF_MIN_KB, TLS_WBUF_MAX_KB);
            return -1;
        }
        t->wbuf_size = (size_t)kb * 1024;
    } else if (strcmp(kv, "ssl_session_cache") == 0) {
        if (val != NULL) {
            snprintf(err, errlen, "-o ssl_session_cache takes no value");
            return -1;
        }
        t->session_cache = true;
    } else if (strcmp(kv, "ssl_kernel_tls") == 0) {
        if (val != NULL) {
            snprintf(err, errlen, "-o ssl_kernel_tls takes no value");
            return -1;
        }
        t->kernel_tls = true;
    } else {
        return 1;
    }
    return 0;
}

/* memcached: -l notls:/btls:/mtls: choose TLS per listener, so only with
 * TLS on. Returns the first prefix used, or NULL. */
static const char *tls_prefix_used(const char *list)
{
    static const char *const names[] = {
        [TLS_LISTEN_OFF] = "notls", [TLS_LISTEN_NOPEER] = "btls", [TLS_LISTEN_PEER] = "mtls",
    };
    for (const char *p = list; *p != '\0'; p++) {
        size_t skip;
        enum tls_listen_mode m = tls_listen_prefix(p, &skip);
        if (m != TLS_LISTEN_DEFAULT)
            return names[m];
        p += strcspn(p, ",");
        if (*p == '\0')
            break;
    }
    return NULL;
}

#define OUTPUT_LIMIT_MIN (64 * 1024)

/* One -o key with its value (NULL: none). Returns 0, -1 with err filled,
 * or 1 when kv is not an -o key. */
static int parse_extended_kv(struct settings *s, const char *kv, const char *val, char *err,
                             size_t errlen)
{
    int v, knob = set_knob(s, kv, val, err, errlen);
    if (knob <= 0)
        return knob;
    if ((knob = parse_tls_opt(&s->tls, kv, val, err, errlen)) <= 0)
        return knob;
    if (strcmp(kv, "hashpower") == 0) {
        if (parse_int(val, 12, 32, &v) != 0) {
            snprintf(err, errlen, "hashpower must be an integer from 12 to 32");
            return -1;
        }
        s->storage.hashpower = (unsigned)v;
    } else if (strcmp(kv, "resp_port") == 0) {
        if (parse_int(val, 0, 65535, &v) != 0) {
            snprintf(err, errlen, "resp_port must be a port number");
            return -1;
        }
        s->resp_port = v;
    } else if (strcmp(kv, "memory_file") == 0) {
        if (val == NULL || *val == '\0' ||
            copy_str(s->storage.memory_file, sizeof(s->storage.memory_file), val) != 0) {
            snprintf(err, errlen, "memory_file needs a path");
            return -1;
        }
    } else if (strcmp(kv, "requirepass") == 0) {
        if (val == NULL || copy_str(s->requirepass, sizeof(s->requirepass), val) != 0) {
            snprintf(err, errlen, "requirepass needs a value of at most %zu bytes",
                     sizeof(s->requirepass) - 1);
            return -1;
        }
    } else if (strcmp(kv, "idle_timeout") == 0) {
        if (parse_int(val, 0, INT_MAX / 1000, &v) != 0) {
            snprintf(err, errlen, "idle_timeout must be a number of seconds (0: none)");
            return -1;
        }
        s->idle_timeout = v;
    } else if (strcmp(kv, "logfile") == 0) {
        if (val == NULL || *val == '\0' || copy_str(s->logfile, sizeof(s->logfile), val) != 0) {
            snprintf(err, errlen, "logfile needs a path shorter than %zu bytes", sizeof(s->logfile));
            return -1;
        }
    } else if (strcmp(kv, "shutdown_timeout") == 0) {
        if (parse_int(val, 0, 3600, &v) != 0) {
            snprintf(err, errlen, "shutdown_timeout must be 0 to 3600 seconds");
            return -1;
        }
        s->shutdown_timeout = v;
    } else if (strcmp(kv, "max_output_buffer") == 0) {
        size_t sz;
        if (settings_parse_size(val, &sz) != 0 || (sz != 0 && sz < OUTPUT_LIMIT_MIN)) {
            snprintf(err, errlen, "max_output_buffer must be 0 (no limit) or a size of at "
                                  "least 64k (k/m/g suffix)");
            return -1;
        }
        s->max_output = sz;
    } else if (strcmp(kv, "read_buf_mem_limit") == 0) {
        /* memcached's: megabytes for all workers' connection buffers. */
        if (parse_int(val, 0, 4095, &v) != 0) {
            snprintf(err, errlen, "read_buf_mem_limit must be 0 (no limit) to 4095 megabytes");
            return -1;
        }
        s->read_buf_mem_limit = (size_t)v << 20;
    } else if (strcmp(kv, "proto_max_bulk_len") == 0) {
        size_t sz;
        if (val == NULL || settings_parse_redis_size(val, &sz) != 0 || sz < SETTINGS_BULK_MIN ||
            sz > (size_t)LLONG_MAX) {
            snprintf(err, errlen, "proto_max_bulk_len must be a size of at least 1mb "
                                  "(Redis units: 512mb, 1gb, bytes)");
            return -1;
        }
        s->proto_max_bulk_len = sz;
    } else if (strcmp(kv, "slab_automove") == 0) {
        /* Bare, as memcached's tests give it: 1. */
        if (val == NULL)
            val = "1";
        if (parse_int(val, 0, 2, &v) != 0) {
            snprintf(err, errlen, "slab_automove must be 0, 1 or 2");
            return -1;
        }
        s->storage.slab_automove = (unsigned)v;
    } else if (strcmp(kv, "slab_reassign") == 0 || strcmp(kv, "no_slab_reassign") == 0 ||
               strcmp(kv, "lru_crawler") == 0 || strcmp(kv, "no_lru_crawler") == 0) {
        if (val != NULL) {
            snprintf(err, errlen, "-o %s takes no value", kv);
            return -1;
        }
        if (strstr(kv, "slab_reassign") != NULL)
            s->storage.slab_reassign = kv[0] != 'n';
        else
            s->storage.crawler = kv[0] != 'n';
    } else if (strcmp(kv, "watcher_logbuf_size") == 0) {
        /* memcached's unit: KiB */
        if (parse_int(val, 1, 1024 * 1024, &v) != 0) {
            snprintf(err, errlen, "watcher_logbuf_size must be a number of kilobytes, 1 to 1048576");
            return -1;
        }
        s->watcher_logbuf_size = (size_t)v * 1024;
    } else if (strcmp(kv, "null_storage") == 0) {
        if (val != NULL) {
            snprintf(err, errlen, "-o %s takes no value", kv);
            return -1;
        }
        s->null_storage = true;
    } else if (strcmp(kv, "io_uring") == 0) {
        if (val != NULL) {
            snprintf(err, errlen, "-o %s takes no value", kv);
            return -1;
        }
        s->io_uring = true;
    } else if (strcmp(kv, "maxconns_fast") == 0 || strcmp(kv, "modern") == 0) {
        /* kioku always refuses past -c at once; "modern" changes nothing. */
        if (val != NULL) {
            snprintf(err, errlen, "-o %s takes no value", kv);
            return -1;
        }
    } else if (strcmp(kv, "config") == 0) {
        if (val == NULL || *val == '\0' ||
            copy_str(s->config_file, sizeof(s->config_file), val) != 0) {
            snprintf(err, errlen, "config needs a path shorter than %zu bytes",
                     sizeof(s->config_file));
            return -1;
        }
    } else {
        return 1;
    }
    return 0;
}

/* One -o key[=value]. Returns 0, or -1 with err filled. */
static int parse_extended_one(struct settings *s, char *kv, char *err, size_t errlen)
{
    char *val = strchr(kv, '=');
    if (val != NULL)
        *val++ = '\0';
    int r = parse_extended_kv(s, kv, val, err, errlen);
    if (r > 0)
        snprintf(err, errlen, "Illegal suboption \"%s\"", kv);
    return r != 0 ? -1 : 0;
}

static int parse_extended(struct settings *s, const char *arg, char *err, size_t errlen)
{
    char buf[1024];
    if (copy_str(buf, sizeof(buf), arg) != 0) {
        snprintf(err, errlen, "-o argument too long");
        return -1;
    }
    char *save = NULL;
    for (char *kv = strtok_r(buf, ",", &save); kv != NULL; kv = strtok_r(NULL, ",", &save))
        if (parse_extended_one(s, kv, err, errlen) != 0)
            return -1;
    return 0;
}

#define FAIL(...) do { snprintf(err, errlen, __VA_ARGS__); return SETTINGS_ERROR; } while (0)

/* Apply one option; returns SETTINGS_RUN to continue. */
static enum settings_action apply_opt(struct settings *s, int c, const char *arg,
                                      char *err, size_t errlen)
{
    size_t sz;
    int v;
    switch (c) {
    case 'p':
        if (parse_int(arg, -1, 65535, &s->port) != 0) FAIL("invalid port: %s", arg);
        s->port_given = true;
        break;
    case 'U':
        if (parse_int(arg, -1, 65535, &s->udp_port) != 0) FAIL("invalid UDP port: %s", arg);
        break;
    case 's':
        if (copy_str(s->socket_path, sizeof(s->socket_path), arg) != 0) FAIL("unix socket path too long");
        break;
    case 'a': {
        char *end;
        long m = strtol(arg, &end, 8);
        if (*arg == '\0' || *end != '\0' || m < 0 || m > 0777) FAIL("invalid unix socket mask: %s", arg);
        s->socket_mask = (int)m;
        break;
    }
    case 'A': s->enable_shutdown = true; break;
    case 'l':
        if (copy_str(s->listen, sizeof(s->listen), arg) != 0 || *arg == '\0') FAIL("invalid listen address list");
        break;
    case 'd': s->daemonize = true; break;
    case 'r': s->coredumps = true; break;
    case 'u':
        if (copy_str(s->user, sizeof(s->user), arg) != 0) FAIL("user name too long");
        break;
    case 'm':
        /* memcached takes megabytes, and accepts a k/m/g suffix too. */
        if (settings_parse_size(arg, &sz) != 0) FAIL("invalid memory limit: %s", arg);
        if (arg[strlen(arg) - 1] >= '0' && arg[strlen(arg) - 1] <= '9') {
            if (sz > SIZE_MAX >> 20) FAIL("invalid memory limit: %s", arg);
            sz <<= 20;
        }
        if (sz == 0) FAIL("memory limit must be at least 1 megabyte");
        s->storage.mem_limit = sz;
        break;
    case 'M':
        s->storage.evict = false;
        s->storage.policy = EVICT_NOEVICTION;
        break;
    case 'c':
        if (parse_int(arg, 1, 1 << 20, &s->max_conns) != 0) FAIL("invalid connection limit: %s", arg);
        break;
    case 'k': s->lock_memory = true; break;
    case 'v':
        s->verbose++;
        if (arg != NULL)   /* --verbose=N */
            for (const char *q = arg; *q == 'v'; q++) s->verbose++;
        break;
    case 'h': return SETTINGS_HELP;
    case 'V': return SETTINGS_VERSION;
    case 'e':
        if (copy_str(s->storage.memory_file, sizeof(s->storage.memory_file), arg) != 0 ||
            *arg == '\0')
            FAIL("invalid memory file path");
        break;
    case 'P':
        if (copy_str(s->pid_file, sizeof(s->pid_file), arg) != 0) FAIL("pid file path too long");
        break;
    case 'f': {
        char *end;
        errno = 0;
        double f = strtod(arg, &end);
        if (errno != 0 || *arg == '\0' || *end != '\0' || !(f > 1.0) || f > 64.0)
            FAIL("factor must be greater than 1: %s", arg);
        s->storage.growth_factor = f;
        break;
    }
    case 'n':
        if (parse_int(arg, 1, 1 << 20, &v) != 0) FAIL("invalid slab min size: %s", arg);
        s->storage.chunk_size_min = (size_t)v;
        break;
    case 'L': s->storage.prealloc = true; break;
    case 't':
        if (parse_int(arg, 1, 1024, &s->threads) != 0) FAIL("number of threads must be from 1 to 1024: %s", arg);
        break;
    case 'R':
        if (parse_int(arg, 1, 1 << 20, &s->reqs_per_event) != 0) FAIL("invalid max requests per event: %s", arg);
        break;
    case 'C': s->storage.use_cas = false; break;
    case 'b':
        if (parse_int(arg, 1, 1 << 20, &s->backlog) != 0) FAIL("invalid listen backlog: %s", arg);
        break;
    case 'I':
        if (settings_parse_size(arg, &sz) != 0) FAIL("invalid max item size: %s", arg);
        if (sz < 1024) FAIL("item max size cannot be less than 1024 bytes");
        if (sz > ((size_t)1 << 30)) FAIL("cannot set item size limit higher than 1 gigabyte");
        s->storage.item_size_max = sz;
        break;
    case 'F': s->flush_enabled = false; break;
    case 'W': s->watch_enabled = false; break;
    case 'S': s->sasl = true; break;
    case 'Y':
        if (*arg == '\0' || copy_str(s->auth_file, sizeof(s->auth_file), arg) != 0)
            FAIL("invalid auth file path");
        break;
    case OPT_REQUIREPASS:
        if (copy_str(s->requirepass, sizeof(s->requirepass), arg) != 0)
            FAIL("requirepass is longer than %zu bytes", sizeof(s->requirepass) - 1);
        break;
    case OPT_LOGFILE:
        if (arg[0] == '\0' || copy_str(s->logfile, sizeof(s->logfile), arg) != 0)
            FAIL("logfile needs a path shorter than %zu bytes", sizeof(s->logfile));
        break;
    case 'D':
        /* memcached takes the first byte, and -D turns the counting on */
        if (arg[0] == '\0') FAIL("No delimiter specified");
        s->prefix_delimiter = arg[0];
        s->detail_enabled = true;
        break;
    case 'B':
        if (strcmp(arg, "auto") == 0) s->binding = BINDING_AUTO;
        else if (strcmp(arg, "ascii") == 0) s->binding = BINDING_ASCII;
        else if (strcmp(arg, "binary") == 0) s->binding = BINDING_BINARY;
        else FAIL("Invalid value for binding protocol: %s -- should be one of auto, binary, or ascii", arg);
        break;
    case 'o':
        if (parse_extended(s, arg, err, errlen) != 0) return SETTINGS_ERROR;
        break;
    case OPT_RESP_PORT:
        if (parse_int(arg, 0, 65535, &s->resp_port) != 0) FAIL("invalid RESP port: %s", arg);
        break;
    case 'Z': s->tls.enabled = true; break;
    case OPT_TLS_PORT:
        if (parse_int(arg, 1, 65535, &s->tls.port) != 0) FAIL("invalid TLS port: %s", arg);
        s->tls.enabled = true;
        break;
    case OPT_MAXMEMORY:
        /* Redis's units, not -m's megabytes: 67108864, 64mb, 1gb, 100m (10^6). */
        if (settings_parse_redis_size(arg, &sz) != 0)
            FAIL("invalid --maxmemory: %s (bytes, or a number with b, k, kb, m, mb, g or gb)", arg);
        if (sz == 0) FAIL("--maxmemory must not be 0: kioku always has a memory limit");
        s->storage.mem_limit = sz;
        break;
    case OPT_POLICY:
        if (set_knob(s, "maxmemory_policy", arg, err, errlen) != 0) return SETTINGS_ERROR;
        break;
    case OPT_LFU_LOG_FACTOR:
        if (set_knob(s, "lfu_log_factor", arg, err, errlen) != 0) return SETTINGS_ERROR;
        break;
    case OPT_LFU_DECAY_TIME:
        if (set_knob(s, "lfu_decay_time", arg, err, errlen) != 0) return SETTINGS_ERROR;
        break;
    case OPT_SAMPLES:
        if (set_knob(s, "maxmemory_samples", arg, err, errlen) != 0) return SETTINGS_ERROR;
        break;
    case OPT_CONFIG:
        if (parse_extended_kv(s, "config", arg, err, errlen) != 0) return SETTINGS_ERROR;
        break;
    default:
        FAIL("unknown option");
    }
    return SETTINGS_RUN;
}

/* The getopt loop alone: argv over whatever *s holds. */
static enum settings_action parse_argv(struct settings *s, int argc, char **argv, char *err,
                                       size_t errlen)
{
    int c;
    optind = 0;   /* GNU: re-initialise, so tests can parse more than once */
    opterr = 0;
    while ((c = getopt_long(argc, argv, short_opts, long_opts, NULL)) != -1) {
        if (c == '?') {
            if (optopt != 0 && optopt < 256) FAIL("unknown option -%c", optopt);
            FAIL("unknown option %s", argv[optind - 1]);
        }
        if (c == ':') {
            if (optopt != 0 && optopt < 256) FAIL("option -%c needs a value", optopt);
            FAIL("option %s needs a value", argv[optind - 1]);
        }
        enum settings_action a = apply_opt(s, c, optarg, err, errlen);
        if (a != SETTINGS_RUN)
            return a;
    }
    if (optind < argc)
        FAIL("unexpected argument: %s", argv[optind]);
    return SETTINGS_RUN;
}

/* Rules across options, once every source has been applied. */
static enum settings_action check_combination(struct settings *s, char *err, size_t errlen)
{
    /* memcached: -U without -p puts TCP on the UDP port too */
    if (s->udp_port != 0 && !s->port_given)
        s->port = s->udp_port;
    if (s->udp_port != 0 && s->auth_file[0] != '\0')
        FAIL("Cannot use UDP with ascii authentication enabled (-U 0 to disable)");
    if (s->udp_port != 0 && s->sasl)
        FAIL("Cannot enable UDP while using binary SASL authentication");
    if (s->storage.item_size_max > s->storage.mem_limit / 2)
        FAIL("cannot set item size limit (-I) higher than 1/2 of memory max (-m, --maxmemory)");
    if (s->resp_port != 0 && s->resp_port == s->port && s->socket_path[0] == '\0')
        FAIL("--resp-port must differ from --port");
    if (s->tls.port != 0 && (s->tls.port == s->resp_port ||
                             (s->tls.port == s->port && s->socket_path[0] == '\0')))
        FAIL("--tls-port must differ from --port and --resp-port");
    if (s->tls.resp_tls && (!s->tls.enabled || s->resp_port == 0))
        FAIL("-o resp_tls needs -Z (or --tls-port) and --resp-port");
    const char *prefix = tls_prefix_used(s->listen);
    if (prefix != NULL && !s->tls.enabled && s->socket_path[0] == '\0')
        FAIL("'%s' option is valid only when SSL is enabled", prefix);
    return SETTINGS_RUN;
}

int settings_apply_option(struct settings *s, const char *key, const char *value, char *err,
                          size_t errlen)
{
    if (strcmp(key, "config") == 0) {
        snprintf(err, errlen, "a config file cannot name another one");
        return -1;
    }
    for (const struct option *o = long_opts; o->name != NULL; o++) {
        if (strcmp(o->name, key) != 0)
            continue;
        if (o->has_arg == no_argument) {
            /* A flag: "daemon", "daemon yes"; "daemon no" leaves it as it was. */
            if (value != NULL && strcmp(value, "no") == 0)
                return 0;
            if (value != NULL && strcmp(value, "yes") != 0) {
                snprintf(err, errlen, "option '%s' is a flag: give no value, yes or no", key);
                return -1;
            }
            value = NULL;
        } else if (o->has_arg == required_argument && value == NULL) {
            snprintf(err, errlen, "option '%s' needs a value", key);
            return -1;
        } else if (o->has_arg == optional_argument) {
            /* verbose: alone (-v) or a level, applied as that many -v. */
            int level = 1;
            if (value != NULL && parse_int(value, 0, 9, &level) != 0) {
                snprintf(err, errlen, "option '%s' takes no value or a level from 0 to 9", key);
                return -1;
            }
            for (int i = 0; i < level; i++)
                apply_opt(s, o->val, NULL, err, errlen);
            return 0;
        }
        enum settings_action a = apply_opt(s, o->val, value, err, errlen);
        if (a == SETTINGS_HELP || a == SETTINGS_VERSION) {
            snprintf(err, errlen, "option '%s' is for the command line only", key);
            return -1;
        }
        return a == SETTINGS_RUN ? 0 : -1;
    }
    int r = parse_extended_kv(s, key, value, err, errlen);
    if (r > 0)
        snprintf(err, errlen, "unknown option '%s'", key);
    return r != 0 ? -1 : 0;
}

static int conffile_apply(void *ctx, const char *key, const char *value, char *err,
                          size_t errlen)
{
    return settings_apply_option(ctx, key, value, err, errlen);
}

enum settings_action settings_parse(struct settings *s, int argc, char **argv,
                                    char *err, size_t errlen)
{
    struct settings base = *s;
    enum settings_action a = parse_argv(s, argc, argv, err, errlen);
    if (a != SETTINGS_RUN)
        return a;
    if (s->config_file[0] != '\0') {
        /* Start over: the file over the defaults, then argv over both. */
        char path[sizeof(s->config_file)];
        memcpy(path, s->config_file, sizeof(path));
        *s = base;
        if (conffile_read(path, conffile_apply, s, err, errlen) != 0)
            return SETTINGS_CONFIG_ERROR;
        if (s->config_file[0] != '\0') {   /* "extended = config=..." */
            snprintf(err, errlen, "%s: a config file cannot name another one", path);
            return SETTINGS_CONFIG_ERROR;
        }
        if ((a = parse_argv(s, argc, argv, err, errlen)) != SETTINGS_RUN)
            return a;
    }
    return check_combination(s, err, errlen);
}

const char *settings_usage(void)
{
    return PACKAGE_NAME " " PACKAGE_VERSION "\n"
"-p, --port=<num>          TCP port to listen on (default: 11211; 0 off, -1 any)\n"
"-U, --udp-port=<num>      UDP port to listen on (default: 0, off; -1 any)\n"
"-s, --unix-socket=<file>  UNIX socket to listen on (disables network support)\n"
"-a, --unix-mask=<mask>    access mask for UNIX socket, in octal (default: 700)\n"
"-A, --enable-shutdown     enable the \"shutdown\" and RESP SHUTDOWN commands\n"
"-l, --listen=<addr>       interfaces to listen on, comma separated; IPv6 as\n"
"                          [::1]; addr:port overrides -p (default: 127.0.0.1);\n"
"                          with TLS, an address prefixed notls: is plain, btls:\n"
"                          TLS, mtls: TLS requiring client certificates\n"
"-d, --daemon              run as a daemon\n"
"-r, --enable-coredumps    maximize core file limit\n"
"-u, --user=<user>         assume identity of <username> (only when run as root;\n"
"                          as root it is required: -u root keeps root)\n"
"-m, --memory-limit=<num>  item memory in megabytes (default: 64)\n"
"    --maxmemory=<size>    item memory in Redis's units: bytes, or with b, k (1000),\n"
"                          kb (1024), m, mb, g, gb; e.g. 64mb, 1gb (same as -m)\n"
"-M, --disable-evictions   return error on memory exhausted instead of evicting\n"
"                          (same as --maxmemory-policy=noeviction)\n"
"    --maxmemory-policy=<name> which items to evict when memory is full:\n"
"                          allkeys-s3fifo (default), allkeys-lru, allkeys-lfu,\n"
"                          allkeys-random, volatile-lru, volatile-lfu,\n"
"                          volatile-ttl, volatile-random, noeviction\n"
"    --lfu-log-factor=<n>  LFU counter growth: higher is slower (default: 10)\n"
"    --lfu-decay-time=<min> minutes for an LFU counter to halve; 0 never (default: 1)\n"
"    --maxmemory-samples=<n> keys sampled per LRU/LFU/TTL eviction (default: 5, max 64)\n"
"-c, --conn-limit=<num>    max simultaneous connections (default: 1024)\n"
"-k, --lock-memory         lock down all paged memory\n"
"-v, --verbose             also log info lines (start, stop, reloads); errors\n"
"                          and warnings are always logged\n"
"-vv                       also log each command line, as \"<fd command\"\n"
"-vvv                      also log connections opened and closed\n"
"-h, --help                print this help and exit\n"
"-V, --version             print version and exit\n"
"    --config=<file>       read options from <file>, one a line, `key = value`,\n"
"                          by long name or -o key (port = 11211, hashpower = 20);\n"
"                          the command line wins over the file\n"
"-P, --pidfile=<file>      save PID in <file>\n"
"    --logfile=<file>      same as -o logfile=<file>\n"
"-e, --memory-file=<file>  keep item memory in <file> (on tmpfs, e.g. /dev/shm):\n"
"                          a stop by SIGTERM or SIGUSR2 saves its layout, and the\n"
"                          next start with the same settings finds every item again\n"
"-f, --slab-growth-factor=<num> chunk size growth factor (default: 1.25)\n"
"-n, --slab-min-size=<bytes> min space used for key+value+flags (default: 48)\n"
"-L, --enable-largepages   preallocate all item memory at start-up, in huge\n"
"                          pages where the kernel has transparent huge pages\n"
"-t, --threads=<num>       number of worker threads (default: 4)\n"
"-R, --max-reqs-per-event  requests processed per connection per event (default: 20)\n"
"-C, --disable-cas         disable use of CAS\n"
"-b, --listen-backlog=<num> set the backlog queue limit (default: 1024)\n"
"-I, --max-item-size=<num> max item size, k/m suffix (default: 1m, min: 1k, max: 1024m)\n"
"-F, --disable-flush-all   disable flush_all command\n"
"-W, --disable-watch       disable watch commands (live logging)\n"
"-Y, --auth-file=<file>    require authentication from every client, checked\n"
"                          against <file> of user:password lines: text clients\n"
"                          send `set <any key> 0 0 <n>` with data \"user password\",\n"
"                          binary clients SASL PLAIN, RESP clients AUTH user pass\n"
"                          (AUTH pass: the user \"default\")\n"
"-S, --enable-sasl         binary clients must authenticate with SASL PLAIN;\n"
"                          passwords from -Y (or $MEMCACHED_SASL_PWDB)\n"
"    --requirepass=<pass>  RESP clients must AUTH with <pass> (user \"default\");\n"
"                          visible in ps: prefer a \"default\" entry in -Y's file\n"
"-B, --protocol=<name>     protocol: auto (default: text, binary and RESP by\n"
"                          the first byte), ascii or binary (that one only;\n"
"                          RESP then only on --resp-port)\n"
"-D, --prefix-delimiter=<char> count gets, sets and deletes per key prefix\n"
"                          (the bytes before <char>) and turn that counting on;\n"
"                          without -D it starts off with ':' (stats detail on)\n"
"    --resp-port=<num>     also listen for Redis (RESP) clients on this port\n"
"-Z, --enable-ssl          enable TLS: without --tls-port the TCP ports (-p, and\n"
"                          --resp-port) speak TLS only, as memcached -Z does\n"
"    --tls-port=<num>      serve TLS on this port beside the plain ones (implies -Z)\n"
"-o, --extended            comma separated list of extended options:\n"
"   - hashpower=<n>        initial hash table size is 2^n buckets (default: 16)\n"
"   - memory_file=<file>   as -e\n"
"   - config=<file>        same as --config\n"
"   - slab_reassign, no_slab_reassign\n"
"                          let pages move between slab classes (default: on)\n"
"   - slab_automove=<0|1|2> move pages by themselves: 0 off, 1 when a class keeps\n"
"                          evicting while another holds old items, and to the\n"
"                          classes where they buy most hits (default), 2 on\n"
"                          every eviction\n"
"   - lru_crawler, no_lru_crawler\n"
"                          reclaim expired items in the background (default: on)\n"
"   - idle_timeout=<sec>   close a client that sends no request, or reads none\n"
"                          of its replies, for this long (default: 0, never)\n"
"   - logfile=<file>       write the log to <file> instead of stderr; SIGHUP\n"
"                          reopens it (logrotate)\n"
"   - shutdown_timeout=<sec> on SIGTERM/SIGINT, wait this long for replies in\n"
"                          flight before closing clients (default: 3)\n"
"   - max_output_buffer=<size> disconnect a client whose unread replies would\n"
"                          pass this size, k/m/g suffix; 0 none (default: 64m)\n"
"   - read_buf_mem_limit=<mb> megabytes for all connections' read and write\n"
"                          buffers, split over the worker threads; past it no\n"
"                          buffer grows; 0 none (default: 0)\n"
"   - proto_max_bulk_len=<size> longest RESP bulk string (value) accepted, in\n"
"                          Redis units, at least 1mb (default: 512mb); a value\n"
"                          may also take at most half of -m\n"
"   - resp_port=<num>      same as --resp-port\n"
"   - maxmemory_policy=<name> same as --maxmemory-policy\n"
"   - requirepass=<pass>   same as --requirepass (no commas)\n"
"   - lfu_log_factor=<n>   same as --lfu-log-factor\n"
"   - lfu_decay_time=<min> same as --lfu-decay-time\n"
"   - maxmemory_samples=<n> same as --maxmemory-samples\n"
"   - idle_timeout=<secs>  close connections idle that long (default: 0, never)\n"
"   - maxconns_fast        accepted for memcached compatibility (always on)\n"
"   - modern               accepted for memcached compatibility (no effect)\n"
"   - ssl_chain_cert=<file> TLS certificate chain in PEM format (server cert first)\n"
"   - ssl_key=<file>       TLS private key in PEM format, if not in ssl_chain_cert\n"
"   - ssl_ca_cert=<file>   PEM file of the CAs client certificates must chain to\n"
"   - ssl_verify_mode=<n>  client certificates: 0 none (default), 1 request,\n"
"                          2 require, 3 once (require, not on renegotiation)\n"
"   - ssl_min_version=<v>  oldest TLS accepted: 2 or tlsv1.2 (default), 3 or tlsv1.3\n"
"   - ssl_ciphers=<list>   OpenSSL cipher list for TLS 1.2 (':'-separated)\n"
"   - ssl_handshake_timeout=<s> close clients that do not finish the TLS\n"
"                          handshake in this many seconds (default: 10)\n"
"   - tls_port=<num>       same as --tls-port\n"
"   - resp_tls             with -Z and --tls-port, --resp-port speaks TLS too\n"
"   - ssl_wbuf_size=<kb>   bytes gathered per TLS write, in KiB (default: 16);\n"
"                          records are at most this and 16 KiB\n"
"   - ssl_session_cache    let TLS clients resume sessions, cached server-side\n"
"   - ssl_kernel_tls       let OpenSSL offload TLS records to the kernel where\n"
"                          it can (kernel tls module, OpenSSL built for it)\n"
"   - watcher_logbuf_size=<KiB> bytes buffered per `watch` client; lines that\n"
"                          do not fit are skipped (default: 256)\n"
"   - null_storage         BENCHMARK ONLY, not a cache: parse every request but\n"
"                          answer get/set without storage (bench/README.md)\n"
"   - io_uring             workers do socket I/O through io_uring (Linux 6.1+),\n"
"                          libevent where the kernel refuses it or with TLS\n"
"   TLS certificates are reloaded by the refresh_certs command and on SIGHUP.\n";
}
