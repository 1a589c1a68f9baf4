/*
 * kioku time: a wall-clock base captured once, advanced by CLOCK_MONOTONIC,
 * so that expiry is immune to wall-clock jumps after start-up (memcached does
 * the same with its process_started offset).
 */
#include "util/clock.h"

#include <time.h>

static int64_t base_unix_ms;  /* written once in clock_setup() */
static int64_t base_mono_ms;

static int64_t ts_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void clock_setup(void)
{
    base_unix_ms = ts_ms(CLOCK_REALTIME);
    base_mono_ms = ts_ms(CLOCK_MONOTONIC);
}

int64_t clock_now_ms(void)
{
    return base_unix_ms + (ts_ms(CLOCK_MONOTONIC) - base_mono_ms);
}

int64_t clock_start_ms(void)
{
    return base_unix_ms;
}
