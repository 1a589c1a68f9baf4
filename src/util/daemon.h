/*
 * -d: run in the background, yet report start-up as the foreground does.
 * daemon(3) returns in the child at once, so an error found later (port in
 * use, bad certificate, unwritable pid file) would go unseen and the shell
 * would get exit status 0. Here the parent waits on a pipe until the child
 * says it is ready (the parent exits 0) or the child exits (the parent
 * exits with its status); the child's messages reach the terminal until it
 * is ready.
 */
#ifndef KIOKU_DAEMON_H
#define KIOKU_DAEMON_H

#include <stdbool.h>
#include <stddef.h>

/* Forks and returns 0 in the child, which is a new session's leader with
 * its working directory at /. The parent never returns. Before any thread
 * starts. Returns -1 with err when the fork fails (nothing changed). */
int daemon_start(char *err, size_t errlen);

/* In the child, once it serves: the parent exits 0, and standard input,
 * output and (unless keep_stderr) error go to /dev/null. Does nothing when
 * daemon_start() was not called. */
void daemon_ready(bool keep_stderr);

#endif
