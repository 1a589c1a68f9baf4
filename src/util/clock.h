/*
 * kioku time.
 *
 * All expiry and access times inside kioku are milliseconds of "kioku time":
 * unix epoch milliseconds as they were at start-up, advanced by the monotonic
 * clock since then. Absolute unix times from clients compare directly with
 * it, and a jump of the wall clock after start-up moves no item's expiry.
 *
 * The storage layer never reads the clock itself: callers pass `now` in, so
 * expiry rules are unit-testable with any time they like.
 */
#ifndef KIOKU_CLOCK_H
#define KIOKU_CLOCK_H

#include <stdint.h>

/* Record the wall-clock/monotonic pair; call once before any thread starts. */
void clock_setup(void);

/* Current kioku time in milliseconds (unix epoch based). Thread-safe. */
int64_t clock_now_ms(void);

/* Kioku time of process start, in milliseconds. */
int64_t clock_start_ms(void);

#endif
