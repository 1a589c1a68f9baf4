/*
 * The log (see log.h). Everything a line needs is in one stack buffer and
 * leaves in one write(2): no stdio stream, no lock, no allocation. The
 * destination is fixed before any thread starts (log_setup, log_open); a
 * SIGHUP reopen swaps the file under the same descriptor number, so the
 * writers never read a changing variable.
 */
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

atomic_int log_level_;

/* Set before any thread starts, then only read. */
static int log_fd = STDERR_FILENO;
static enum log_sink log_sink = LOG_SINK_STDERR;
static char log_file[PATH_MAX];

void log_setup(int level)
{
    struct stat st;
    const char *env = getenv("JOURNAL_STREAM");
    atomic_store(&log_level_, level);
    if (env != NULL && fstat(STDERR_FILENO, &st) == 0 &&
        log_journal_stream(env, (unsigned long long)st.st_dev, (unsigned long long)st.st_ino))
        log_sink = LOG_SINK_JOURNAL;
}

void log_level_set(int level)
{
    atomic_store_explicit(&log_level_, level, memory_order_relaxed);
}

bool log_journal_stream(const char *env, unsigned long long dev, unsigned long long ino)
{
    char *end;
    errno = 0;
    unsigned long long d = strtoull(env, &end, 10);
    if (end == env || *end != ':' || errno != 0)
        return false;
    const char *p = end + 1;
    unsigned long long i = strtoull(p, &end, 10);
    return end != p && *end == '\0' && errno == 0 && d == dev && i == ino;
}

static int open_log(const char *path)
{
    /* 0640: at -vv the file holds keys clients sent */
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

int log_open(const char *path, char *err, size_t errlen)
{
    char cwd[PATH_MAX];
    int n;
    if (path[0] == '/')
        n = snprintf(log_file, sizeof(log_file), "%s", path);
    else if (getcwd(cwd, sizeof(cwd)) != NULL)
        n = snprintf(log_file, sizeof(log_file), "%s/%s", cwd, path);
    else
        n = -1;
    if (n < 0 || (size_t)n >= sizeof(log_file)) {
        snprintf(err, errlen, "cannot open the log file %s: path too long", path);
        log_file[0] = '\0';
        return -1;
    }
    int fd = open_log(log_file);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open the log file %s: %s", log_file, strerror(errno));
        log_file[0] = '\0';
        return -1;
    }
    log_fd = fd;
    log_sink = LOG_SINK_FILE;
    return 0;
}

int log_reopen(char *err, size_t errlen)
{
    if (log_sink != LOG_SINK_FILE)
        return 0;
    int fd = open_log(log_file);
    if (fd < 0) {
        snprintf(err, errlen, "cannot reopen the log file %s: %s", log_file, strerror(errno));
        return -1;
    }
    int rc = dup3(fd, log_fd, O_CLOEXEC);
    if (rc < 0)
        snprintf(err, errlen, "cannot reopen the log file %s: %s", log_file, strerror(errno));
    close(fd);
    return rc < 0 ? -1 : 0;
}

const char *log_path(void)
{
    return log_file;
}

size_t log_format(char *buf, size_t cap, enum log_sink sink, enum log_sev sev,
                  const struct timespec *ts, const char *msg, size_t n)
{
    static const char *const tag[] = {
        [LOG_SEV_ERROR] = "error: ", [LOG_SEV_WARN] = "warning: ",
        [LOG_SEV_NOTICE] = "", [LOG_SEV_INFO] = "", [LOG_SEV_DEBUG] = "", [LOG_SEV_TRACE] = "",
    };
    /* syslog priorities: err 3, warning 4, notice 5, info 6, debug 7 */
    static const char prio[] = {'3', '4', '5', '6', '7', '7'};
    size_t len = 0;
    if (sink == LOG_SINK_FILE && ts != NULL) {
        struct tm tm;
        gmtime_r(&ts->tv_sec, &tm);
        int w = snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ ", tm.tm_year + 1900,
                         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                         ts->tv_nsec / 1000000);
        len = w > 0 && (size_t)w < cap ? (size_t)w : 0;
    }
    if (sink == LOG_SINK_JOURNAL) {
        buf[len++] = '<';
        buf[len++] = prio[sev];
        buf[len++] = '>';
    } else {
        size_t t = strlen(tag[sev]);
        memcpy(buf + len, tag[sev], t);
        len += t;
    }
    size_t room = cap - len - 1;   /* the newline */
    bool cut = n > room;
    if (cut)
        n = room - 3;
    for (size_t i = 0; i < n; i++) {
        char c = msg[i];
        buf[len++] = c == '\n' || c == '\r' ? ' ' : c;
    }
    if (cut) {
        memcpy(buf + len, "...", 3);
        len += 3;
    }
    buf[len++] = '\n';
    return len;
}

static void emit(enum log_sev sev, const char *msg, size_t n)
{
    char line[LOG_LINE_MAX];
    struct timespec ts = {0, 0};
    if (log_sink == LOG_SINK_FILE)
        clock_gettime(CLOCK_REALTIME, &ts);
    size_t len = log_format(line, sizeof(line), log_sink, sev, &ts, msg, n);
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(log_fd, line + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;   /* nowhere left to say so */
        off += (size_t)w;
    }
}

void log_write(enum log_sev sev, const char *fmt, ...)
{
    /* one byte over a line: a message that filled it is seen as cut */
    char msg[LOG_LINE_MAX + 1];
    if (!log_sev_enabled(sev, log_level()))
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    emit(sev, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
}

void log_command(int fd, const char *line, size_t n)
{
    char msg[LOG_COMMAND_MAX + 32];
    if (!log_sev_enabled(LOG_SEV_DEBUG, log_level()))
        return;
    if (n > 0 && line[n - 1] == '\n')
        n--;
    if (n > 0 && line[n - 1] == '\r')
        n--;
    int w = n > LOG_COMMAND_MAX
                ? snprintf(msg, sizeof(msg), "<%d %.*s...", fd, LOG_COMMAND_MAX, line)
                : snprintf(msg, sizeof(msg), "<%d %.*s", fd, (int)n, line);
    if (w > 0)
        emit(LOG_SEV_DEBUG, msg, (size_t)w < sizeof(msg) ? (size_t)w : sizeof(msg) - 1);
}
