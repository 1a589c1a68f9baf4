/*
 * tcp_floor: the kernel's CPU cost of one request-reply exchange over
 * loopback TCP, with no server around it.
 *
 * One thread holds both ends of a connection and, per exchange, sends a
 * request-sized message, receives it on the other end, sends a reply-sized
 * one back and receives that. A server at pipeline 1 pays about half of an
 * exchange per request: it receives the request and sends the reply, and
 * its send runs the client's TCP input too (loopback). So half an exchange
 * is the floor under any server's CPU per request at pipeline 1, before
 * epoll, wake-ups and its own code. Rounds alternate read/write with
 * recv/send, and the medians are printed.
 *
 *   cc -O2 -o /tmp/tcp_floor bench/tcp_floor.c
 *   taskset -c 0 /tmp/tcp_floor [exchanges per round (100000)] [rounds (10)]
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define REQ_LEN 30   /* "get memtier-12345\r\n" and some */
#define REP_LEN 60   /* "VALUE memtier-12345 0 32\r\n" + 32 bytes + "END" */
#define MAX_ROUNDS 100

static double cpu_now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* Receive exactly n bytes (loopback delivers a small message whole, but
 * say so rather than assume it). */
static void take(int fd, char *buf, size_t n, int use_recv)
{
    size_t got = 0;

    while (got < n) {
        ssize_t r = use_recv ? recv(fd, buf + got, n - got, 0) : read(fd, buf + got, n - got);
        if (r <= 0)
            die("receive");
        got += (size_t)r;
    }
}

static void give(int fd, const char *buf, size_t n, int use_send)
{
    ssize_t w = use_send ? send(fd, buf, n, MSG_NOSIGNAL) : write(fd, buf, n);

    if (w != (ssize_t)n)
        die("send");
}

/* CPU ns per exchange over n exchanges. */
static double run(int client, int server, long n, int sock_calls)
{
    char req[REQ_LEN], rep[REP_LEN], buf[REP_LEN];
    double t0, t1;
    long i;

    memset(req, 'q', sizeof(req));
    memset(rep, 'r', sizeof(rep));
    t0 = cpu_now();
    for (i = 0; i < n; i++) {
        give(client, req, sizeof(req), sock_calls);
        take(server, buf, sizeof(req), sock_calls);
        give(server, rep, sizeof(rep), sock_calls);
        take(client, buf, sizeof(rep), sock_calls);
    }
    t1 = cpu_now();
    return (t1 - t0) / (double)n * 1e9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 100000;
    int rounds = argc > 2 ? atoi(argv[2]) : 10;
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    double rw[MAX_ROUNDS], sr[MAX_ROUNDS];
    int l, c, s, one = 1, i;

    if (n < 1 || n > 10000000 || rounds < 1 || rounds > MAX_ROUNDS) {
        fprintf(stderr, "usage: tcp_floor [exchanges 1..10000000] [rounds 1..%d]\n", MAX_ROUNDS);
        return 2;
    }
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if ((l = socket(AF_INET, SOCK_STREAM, 0)) < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        listen(l, 1) < 0 || getsockname(l, (struct sockaddr *)&a, &alen) < 0)
        die("listen on 127.0.0.1");
    if ((c = socket(AF_INET, SOCK_STREAM, 0)) < 0 || connect(c, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        (s = accept(l, NULL, NULL)) < 0)
        die("connect");
    /* As servers and memtier set them: no Nagle delay on either side. */
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    run(c, s, n / 10 + 1, 1);   /* warm-up */
    for (i = 0; i < rounds; i++) {
        rw[i] = run(c, s, n, 0);
        sr[i] = run(c, s, n, 1);
    }
    qsort(rw, (size_t)rounds, sizeof(double), cmp);
    qsort(sr, (size_t)rounds, sizeof(double), cmp);
    printf("CPU ns per exchange (request %d B, reply %d B), median of %d rounds of %ld:\n",
           REQ_LEN, REP_LEN, rounds, n);
    printf("  write/read  %8.0f   (half: %.0f, the floor per request at pipeline 1)\n",
           rw[rounds / 2], rw[rounds / 2] / 2);
    printf("  send/recv   %8.0f   (half: %.0f)\n", sr[rounds / 2], sr[rounds / 2] / 2);
    close(c);
    close(s);
    close(l);
    return 0;
}
