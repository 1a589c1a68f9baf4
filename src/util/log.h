/*
 * The server's log: one API for every runtime message, with a severity,
 * written to stderr or to the -o logfile.
 *
 * Severities and the -v count that shows them:
 *   error, warning, notice   always (notice: what an operator asked for,
 *                            such as the SIGUSR1 stats snapshot)
 *   info                     -v
 *   debug                    -vv (memcached's "<fd command" lines)
 *   trace                    -vvv (connections opened and closed)
 *
 * A line's prefix depends on where it goes:
 *   stderr                   "error: " or "warning: " before those two
 *                            severities, nothing before the others (as
 *                            memcached prints them); no timestamp, since
 *                            journald, systemd and supervisors stamp lines
 *   stderr read by journald  "<3>" .. "<7>", the syslog priority, which
 *                            journald strips and records (journalctl -p);
 *                            detected by $JOURNAL_STREAM naming stderr
 *   -o logfile=PATH          "2026-01-31T12:00:00.000Z " (UTC) and then
 *                            the stderr form
 * Each line is formatted in a stack buffer and written with one write(2),
 * so lines from different threads never interleave, and the file is opened
 * O_APPEND, so logrotate's copytruncate works as well as rename + SIGHUP.
 *
 * The level is one atomic int, read relaxed: with the default level 0 a
 * request pays one load and a compare before log_command().
 */
#ifndef KIOKU_LOG_H
#define KIOKU_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* Longest command text logged; the rest of a longer line (a long key list)
 * is replaced by "...", so one log line stays bounded. */
#define LOG_COMMAND_MAX 1024
/* Longest log line, prefix and newline included; longer ones end in "...". */
#define LOG_LINE_MAX 4096

enum log_sev {
    LOG_SEV_ERROR,
    LOG_SEV_WARN,
    LOG_SEV_NOTICE,
    LOG_SEV_INFO,
    LOG_SEV_DEBUG,
    LOG_SEV_TRACE,
};

/* Where lines go; it decides the prefix (see above). */
enum log_sink {
    LOG_SINK_STDERR,
    LOG_SINK_JOURNAL,
    LOG_SINK_FILE,
};

/* Not for direct use: read through log_level(). */
extern atomic_int log_level_;

/* The -v count; stderr until log_open(). Checks $JOURNAL_STREAM. */
void log_setup(int level);

static inline int log_level(void)
{
    return atomic_load_explicit(&log_level_, memory_order_relaxed);
}

/* `verbosity <n>`: takes effect for the next line on every thread. */
void log_level_set(int level);

/* Pure: whether a line of severity sev is written at -v count level. */
static inline bool log_sev_enabled(enum log_sev sev, int level)
{
    /* error, warning and notice at 0; each -v one severity more */
    return (int)sev <= (int)LOG_SEV_NOTICE + level;
}

/* Write lines to path from now on (-o logfile). A relative path is made
 * absolute first, so a reopen after daemon()'s chdir finds the same file.
 * Call once, before any thread starts. Returns 0, or -1 with err filled. */
int log_open(const char *path, char *err, size_t errlen);

/* SIGHUP: open the log file's path again (after logrotate renamed it) and
 * move writers to it in one step (dup3 over the same descriptor, so a
 * thread writing meanwhile lands in the old file or the new one, never
 * nowhere). Without -o logfile it does nothing. Returns 0, or -1 with err
 * filled and the old file still in use. */
int log_reopen(char *err, size_t errlen);

/* The -o logfile path, "" for stderr. */
const char *log_path(void);

/*
 * Pure: compose one line into buf (cap bytes, at least 64): the sink's
 * prefix (ts: the time for LOG_SINK_FILE, else ignored), msg[0..n) with
 * any CR or LF made a space, and "\n". A line that does not fit ends in
 * "...\n". Returns its length.
 */
size_t log_format(char *buf, size_t cap, enum log_sink sink, enum log_sev sev,
                  const struct timespec *ts, const char *msg, size_t n);

/* Pure: whether $JOURNAL_STREAM's "DEV:INODE" names the file (dev, ino). */
bool log_journal_stream(const char *env, unsigned long long dev, unsigned long long ino);

/* One line at severity sev, if the level shows it. Not for hot paths:
 * formats with vsnprintf (a request logs only when asked for with -vv). */
void log_write(enum log_sev sev, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The level is checked before the arguments are evaluated, so a line
 * that is off costs one load and a compare. */
#define LOG_AT(sev, ...)                                  \
    do {                                                  \
        if (log_sev_enabled((sev), log_level()))          \
            log_write((sev), __VA_ARGS__);                \
    } while (0)
#define log_error(...) LOG_AT(LOG_SEV_ERROR, __VA_ARGS__)
#define log_warn(...) LOG_AT(LOG_SEV_WARN, __VA_ARGS__)
#define log_notice(...) LOG_AT(LOG_SEV_NOTICE, __VA_ARGS__)
#define log_info(...) LOG_AT(LOG_SEV_INFO, __VA_ARGS__)
#define log_debug(...) LOG_AT(LOG_SEV_DEBUG, __VA_ARGS__)
#define log_trace(...) LOG_AT(LOG_SEV_TRACE, __VA_ARGS__)

/* "<fd line" at debug level (memcached -vv's form): line[0..n) without its
 * "\r\n" or "\n". The caller checks log_level() first to keep the common
 * path short. */
void log_command(int fd, const char *line, size_t n);

#endif
