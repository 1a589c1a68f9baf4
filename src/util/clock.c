/*
 * kioku time: a wall-clock base captured once, advanced by CLOCK_MONOTONIC,
 * so that expiry is immune to wall-clock jumps after start-up (memcached does
 * the same with its process_started offset).
 */
#include "util/clock.h"

#include <time.h>

static int64_t base_unix_ns;  /* written once in clock_setup() */
static int64_t base_mono_ns;

static int64_t ts_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The monotonic base is read first: the wall clock read after it is then
 * the later of the two, and kioku time runs ahead of the wall clock by that
 * gap (nanoseconds) instead of behind it. */
void clock_setup(void)
{
    base_mono_ns = ts_ns(CLOCK_MONOTONIC);
    base_unix_ns = ts_ns(CLOCK_REALTIME);
}

/* Whole milliseconds of (wall base + monotonic elapsed), both kept in
 * nanoseconds: rounding each to ms first could leave kioku time up to two
 * milliseconds behind the wall clock, and a client that sets PXAT to its
 * now + 10000 then read a PTTL of 10001 (Redis's "GETEX PXAT option"). */
int64_t clock_now_ms(void)
{
    return (base_unix_ns + (ts_ns(CLOCK_MONOTONIC) - base_mono_ns)) / 1000000;
}

int64_t clock_start_ms(void)
{
    return base_unix_ns / 1000000;
}
