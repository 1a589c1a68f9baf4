/*
 * -d with a start-up report (see daemon.h). One pipe: the child writes a
 * byte to it once ready; the parent blocks reading it. EOF without that
 * byte means the child exited (or closed the pipe by dying), so the parent
 * collects and mirrors its exit status.
 */
#include "util/daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static int ready_fd = -1;   /* the child's end of the pipe; -1 without -d */

static void parent_wait(int fd, pid_t child)
{
    char c;
    ssize_t n;
    do {
        n = read(fd, &c, 1);
    } while (n < 0 && errno == EINTR);
    if (n == 1)
        _exit(0);
    int st;
    while (waitpid(child, &st, 0) < 0 && errno == EINTR)
        ;
    _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 1);
}

int daemon_start(char *err, size_t errlen)
{
    int fds[2];
    if (pipe(fds) != 0) {
        snprintf(err, errlen, "failed to daemonize: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "failed to daemonize: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid > 0) {
        close(fds[1]);
        parent_wait(fds[0], pid);
    }
    close(fds[0]);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    ready_fd = fds[1];
    setsid();
    if (chdir("/") != 0) {
        /* / always exists; nothing sensible to do otherwise. */
    }
    return 0;
}

void daemon_ready(bool keep_stderr)
{
    if (ready_fd < 0)
        return;
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        if (!keep_stderr)
            dup2(null, STDERR_FILENO);
        if (null > STDERR_FILENO)
            close(null);
    }
    char c = 1;
    while (write(ready_fd, &c, 1) < 0 && errno == EINTR)
        ;
    close(ready_fd);
    ready_fd = -1;
}
