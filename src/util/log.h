/*
 * The verbosity level (-v, -vv, the `verbosity` command) and the one log
 * line it turns on for requests: memcached -vv's "<fd command" line.
 *
 * The level is one atomic int, read relaxed: with the default level 0 a
 * request pays one load and a compare. Lines go to stderr with one write
 * each (stdio locks the stream), so lines from different workers do not
 * interleave within a line.
 */
#ifndef KIOKU_LOG_H
#define KIOKU_LOG_H

#include <stdatomic.h>
#include <stddef.h>

/* Longest command text logged; the rest of a longer line (a long key list)
 * is replaced by "...", so one log line stays bounded. */
#define LOG_COMMAND_MAX 1024

/* Not for direct use: read through log_level(). */
extern atomic_int log_level_;

void log_setup(int level);

static inline int log_level(void)
{
    return atomic_load_explicit(&log_level_, memory_order_relaxed);
}

/* `verbosity <n>`: takes effect for the next request on every worker. */
void log_level_set(int level);

/* "<fd line": line[0..n) without its "\r\n" or "\n". Only at level 2 and
 * up; the caller checks log_level() first to keep the common path short. */
void log_command(int fd, const char *line, size_t n);

#endif
