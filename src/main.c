/*
 * kioku: wires the modules together. Parse settings, set up storage, the
 * protocols, the workers and the listeners, run the acceptor until SIGINT
 * or SIGTERM (core/signals.c), then stop in reverse order: no new
 * connections, in-flight replies written (for at most -o shutdown_timeout),
 * threads joined, memory freed.
 *
 * Command-line refusals (bad options, root without -u) are usage output,
 * printed plainly as memcached prints them; everything after goes through
 * util/log.h.
 */
#include <errno.h>
#include <event2/event.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "config.h"
#include "auth/auth.h"
#include "cmd/cmd_stats.h"
#include "cmd/proto_mc_bin.h"
#include "cmd/proto_mc_text.h"
#include "cmd/proto_resp.h"
#include "config/settings.h"
#include "config/version.h"
#include "core/conn.h"
#include "core/connmem.h"
#include "core/listener.h"
#include "core/signals.h"
#include "core/udp.h"
#include "core/worker.h"
#include "stats/prefix_stats.h"
#include "storage/storage.h"
#include "tls/tls.h"
#include "util/clock.h"
#include "util/daemon.h"
#include "util/log.h"
#include "util/notify.h"
#include "util/watch.h"

#define EX_OSERR_CODE 71
#define EX_NOUSER_CODE 67
#define EX_CANTCREAT_CODE 73

static struct settings settings;   /* filled before any thread starts, then read-only */

/* libevent's own warnings go where kioku's lines go (the log file too). */
static void libevent_log(int severity, const char *msg)
{
    if (severity >= EVENT_LOG_ERR)
        log_error("libevent: %s", msg);
    else if (severity == EVENT_LOG_WARN)
        log_warn("libevent: %s", msg);
    else
        log_debug("libevent: %s", msg);
}

static void raise_fd_limit(int max_conns)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)max_conns + 64;   /* listeners, pipes, logs */
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
        return;
    rl.rlim_cur = want;
    if (rl.rlim_max < want)
        rl.rlim_max = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        log_warn("cannot raise the open files limit to %llu; -c %d may not be reachable",
                 (unsigned long long)want, max_conns);
}

/*
 * memcached's rule: root must name the user to run as (-u root keeps root,
 * on purpose); other users' -u is ignored. Done before anything listens,
 * as memcached does. Returns 0, or the exit status with a message printed
 * (memcached's messages and sysexits codes).
 */
static int drop_privileges(const char *user)
{
    if (getuid() != 0 && geteuid() != 0)
        return 0;
    if (user[0] == '\0') {
        fprintf(stderr, "must add '-u root' to start as root\n");
        return KIOKU_EX_USAGE;
    }
    struct passwd *pw = getpwnam(user);
    if (pw == NULL) {
        log_error("can't find the user %s to switch to", user);
        return EX_NOUSER_CODE;
    }
    /* EPERM: already without supplementary groups (as memcached, go on). */
    if (setgroups(0, NULL) != 0 && errno != EPERM) {
        log_error("failed to drop supplementary groups: %s", strerror(errno));
        return EX_OSERR_CODE;
    }
    if (setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
        log_error("failed to assume identity of user %s: %s", user, strerror(errno));
        return EX_OSERR_CODE;
    }
    return 0;
}

/* Written once the listeners are up, by the process that serves (after -d
 * forked). A pid file that cannot be written stops the start: a service
 * manager watching it would otherwise wait in vain. */
static int write_pid_file(const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        log_error("cannot write the pid file %s: %s", path, strerror(errno));
        return -1;
    }
    fprintf(f, "%ld\n", (long)getpid());
    if (fclose(f) != 0) {
        log_error("cannot write the pid file %s: %s", path, strerror(errno));
        unlink(path);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    char err[512] = "";
    settings_default(&settings);
    switch (settings_parse(&settings, argc, argv, err, sizeof(err))) {
    case SETTINGS_HELP:
        fputs(settings_usage(), stdout);
        return 0;
    case SETTINGS_VERSION:
        printf("%s %s\n", PACKAGE_NAME, KIOKU_PROTOCOL_VERSION);
        return 0;
    case SETTINGS_ERROR:
        fprintf(stderr, "%s: %s (try --help)\n", PACKAGE_NAME, err);
        return KIOKU_EX_USAGE;
    case SETTINGS_CONFIG_ERROR:
        fprintf(stderr, "%s: %s\n", PACKAGE_NAME, err);
        return KIOKU_EX_CONFIG;
    case SETTINGS_RUN:
        break;
    }
    log_setup(settings.verbose);
    event_set_log_callback(libevent_log);

    /* Passwords are loaded before daemon() changes directory to / and
     * before -u drops the rights to read the file. -S: memcached built with
     * ENABLE_SASL_PWDB takes the file from MEMCACHED_SASL_PWDB; kioku's -Y
     * file serves SASL too. */
    const char *pwdb = getenv("MEMCACHED_SASL_PWDB");
    if (settings.sasl && settings.auth_file[0] == '\0' && pwdb != NULL)
        snprintf(settings.auth_file, sizeof(settings.auth_file), "%s", pwdb);
    if (settings.sasl && settings.auth_file[0] == '\0') {
        fprintf(stderr, "%s: -S needs a password file: -Y <file> (or MEMCACHED_SASL_PWDB)\n",
                PACKAGE_NAME);
        return KIOKU_EX_USAGE;
    }
    if (auth_setup(settings.auth_file, settings.requirepass, err, sizeof(err)) != 0) {
        log_error("%s", err);
        return EXIT_FAILURE;
    }
    /* auth holds the password now; the settings copy is not kept. */
    memset(settings.requirepass, 0, sizeof(settings.requirepass));

    signal(SIGPIPE, SIG_IGN);
    signals_hold_early();
    raise_fd_limit(settings.max_conns);
    if (settings.coredumps) {
        struct rlimit rl = {RLIM_INFINITY, RLIM_INFINITY};
        setrlimit(RLIMIT_CORE, &rl);
    }
    int drop = drop_privileges(settings.user);
    if (drop != 0)
        return drop;
    /* As the user kioku runs as, so that a SIGHUP reopen has the same rights;
     * before the fork, whose chdir("/") a relative path must not follow. */
    if (settings.logfile[0] != '\0' && log_open(settings.logfile, err, sizeof(err)) != 0) {
        log_error("%s", err);
        return EX_CANTCREAT_CODE;
    }
    /* Before any thread starts; the parent waits for daemon_ready(). */
    if (settings.daemonize && daemon_start(err, sizeof(err)) != 0) {
        log_error("%s", err);
        return EX_OSERR_CODE;
    }
    if (settings.lock_memory && mlockall(MCL_CURRENT | MCL_FUTURE) != 0)
        log_warn("-k is set but memory could not be locked: %s", strerror(errno));

    clock_setup();
    watch_setup(settings.watcher_logbuf_size);
    prefix_stats_setup(settings.prefix_delimiter, settings.detail_enabled);
    if (storage_setup(&settings.storage, err, sizeof(err)) != 0) {
        log_error("%s", err);
        return KIOKU_EX_USAGE;
    }
    if (storage_warm_status()[0] != '\0')
        log_notice("%s", storage_warm_status());
    /* -B ascii: 0x80 is read as text (memcached answers ERROR); -B binary:
     * everything is read as binary (memcached closes on a bad magic byte).
     * Either way the main port speaks only that protocol; RESP stays on
     * --resp-port. */
    static struct conn_protocols protocols = {
        .text = &proto_mc_text, .binary = &proto_mc_bin, .resp = &proto_resp,
        .resp_by_first_byte = true,
    };
    if (settings.binding == BINDING_ASCII)
        protocols.binary = NULL;
    else if (settings.binding == BINDING_BINARY)
        protocols.text = &proto_mc_bin;
    if (settings.binding != BINDING_AUTO)
        protocols.resp_by_first_byte = false;
    conn_setup(&protocols, settings.reqs_per_event);
    conn_set_limits(settings.max_output, settings.idle_timeout);
    connmem_setup(settings.read_buf_mem_limit, settings.threads);
    proto_mc_text_setup(&settings);
    proto_resp_setup(&settings);
    proto_mc_bin_setup(&settings);
    cmd_stats_setup(&settings);
    if (settings.tls.enabled) {
        const struct transport *tls = tls_setup(&settings.tls, err, sizeof(err));
        if (tls == NULL) {
            log_error("%s", err);
            return KIOKU_EX_USAGE;
        }
        conn_set_tls(tls);
    }

    if (listener_setup(&settings, err, sizeof(err)) != 0) {
        log_error("%s", err);
        return EX_OSERR_CODE;
    }
    if (signals_setup(listener_base(), settings.tls.enabled) != 0) {
        log_error("cannot set up signal handling");
        return EX_OSERR_CODE;
    }
    if (settings.io_uring && settings.tls.enabled)
        log_warn("-o io_uring: not with TLS listeners; the workers use libevent");
    else if (settings.io_uring && settings.udp_port != 0)
        log_warn("-o io_uring: not with -U (UDP); the workers use libevent");
    worker_use_io_uring(settings.io_uring && !settings.tls.enabled && settings.udp_port == 0);
    if (worker_setup(settings.threads, settings.idle_timeout) != 0) {
        log_error("failed to start worker threads");
        return EX_OSERR_CODE;
    }
    if (udp_start(&protocols, udp_workers_per_socket(&settings), err, sizeof(err)) != 0) {
        log_error("%s", err);
        return EX_OSERR_CODE;
    }
    /* memcached's MEMCACHED_PORT_FILENAME: the ports bound, for whoever
     * started us with -p -1 or -U -1; removed at exit. As memcached, none
     * with a unix socket. */
    const char *port_file =
        settings.socket_path[0] == '\0' ? getenv("MEMCACHED_PORT_FILENAME") : NULL;
    if (port_file != NULL && port_file[0] != '\0' &&
        listener_write_ports(port_file, err, sizeof(err)) != 0) {
        log_error("%s", err);
        return EX_CANTCREAT_CODE;
    }
    if (settings.pid_file[0] != '\0' && write_pid_file(settings.pid_file) != 0)
        return EX_CANTCREAT_CODE;
    log_info("%s %s listening (threads %d, memory %zu MiB)", PACKAGE_NAME, PACKAGE_VERSION,
             settings.threads, settings.storage.mem_limit >> 20);
    char status[128];
    snprintf(status, sizeof(status), "accepting connections (threads %d, memory %zu MiB)",
             settings.threads, settings.storage.mem_limit >> 20);
    notify_ready(status);
    daemon_ready(settings.verbose > 0);

    listener_run();

    notify_stopping("stopping: finishing replies in flight");
    signals_teardown();
    listener_teardown();
    udp_teardown();
    worker_teardown(settings.shutdown_timeout);
    watch_teardown();
    int rc = 0;
    if (!signals_stop_saves()) {
        if (settings.storage.memory_file[0] != '\0')
            log_notice("warm restart: not saved (SHUTDOWN NOSAVE)");
    } else if (storage_save(err, sizeof(err)) != 0) {
        log_error("warm restart: %s", err);
        rc = EX_OSERR_CODE;
    } else if (settings.storage.memory_file[0] != '\0') {
        log_notice("warm restart: saved %s.meta", settings.storage.memory_file);
    }
    tls_teardown();
    storage_teardown();
    auth_teardown();
    prefix_stats_teardown();
    if (settings.pid_file[0] != '\0')
        unlink(settings.pid_file);
    if (port_file != NULL && port_file[0] != '\0')
        unlink(port_file);
    log_info("stopped");
    return rc;
}
