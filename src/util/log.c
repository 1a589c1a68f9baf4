/*
 * Verbosity and the per-request log line (see log.h). Not a hot path: a
 * request reaches log_command() only when an operator asked for -vv.
 */
#include "util/log.h"

#include <stdio.h>

atomic_int log_level_;

void log_setup(int level)
{
    atomic_store(&log_level_, level);
}

void log_level_set(int level)
{
    atomic_store_explicit(&log_level_, level, memory_order_relaxed);
}

void log_command(int fd, const char *line, size_t n)
{
    if (n > 0 && line[n - 1] == '\n')
        n--;
    if (n > 0 && line[n - 1] == '\r')
        n--;
    if (n > LOG_COMMAND_MAX)
        fprintf(stderr, "<%d %.*s...\n", fd, LOG_COMMAND_MAX, line);
    else
        fprintf(stderr, "<%d %.*s\n", fd, (int)n, line);
}
