/*
 * The config file (--config FILE, -o config=FILE): one option a line, named
 * as on the command line. This module knows the file's syntax only; what a
 * key means is the caller's business, through a callback, so the command
 * line and the file share one table and one code path for every option.
 *
 * Syntax, line by line:
 *   # a comment (a line whose first non-blank byte is '#')
 *   key = value        or   key value   or   key=value
 *   key                (a flag, or an -o key that takes no value)
 * The value is the rest of the line without its surrounding blanks, taken
 * literally: no quotes, no escapes, and a '#' after the key is part of it.
 */
#ifndef KIOKU_CONFFILE_H
#define KIOKU_CONFFILE_H

#include <stddef.h>

/* Longest line and largest file accepted; a config file is short. */
#define CONFFILE_LINE_MAX 4096
#define CONFFILE_SIZE_MAX (1024 * 1024)

/* Applies one option. value is NULL when the line has none ("key" alone),
 * "" when it has an empty one ("key ="). Returns 0, or -1 with a message
 * (without file or line) in err. */
typedef int (*conffile_set_fn)(void *ctx, const char *key, const char *value, char *err,
                               size_t errlen);

/* Parses text[0..len), which need not be NUL-terminated, calling set for
 * each option in file order. Pure: no I/O. On the first error returns -1
 * with "NAME:LINE: message" in err (NAME is used only for messages). */
int conffile_parse(const char *name, const char *text, size_t len, conffile_set_fn set,
                   void *ctx, char *err, size_t errlen);

/* Reads the file at path (at most CONFFILE_SIZE_MAX bytes) and parses it as
 * conffile_parse does. Returns 0, or -1 with "PATH: reason" or
 * "PATH:LINE: message" in err. */
int conffile_read(const char *path, conffile_set_fn set, void *ctx, char *err, size_t errlen);

#endif
