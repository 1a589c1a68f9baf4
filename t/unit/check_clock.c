/*
 * Unit tests for kioku time (src/util/clock.c): it must never read behind
 * the wall clock it started from, or an absolute expiry a client computes
 * from its own clock (PXAT now + 10000) reads back as more than 10000 ms.
 */
#include <check.h>
#include <stdlib.h>
#include <time.h>

#include "util/clock.h"

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Each set-up captures new sub-millisecond phases of the two clocks; with
 * milliseconds rounded separately some phases left kioku time behind. */
START_TEST(test_now_is_never_behind_the_wall_clock_whatever_the_start_phase)
{
    for (int setup = 0; setup < 300; setup++) {
        clock_setup();
        for (int i = 0; i < 200; i++) {
            int64_t before = wall_ms();
            int64_t now = clock_now_ms();
            ck_assert_msg(now >= before, "kioku %lld ms < wall %lld ms (set-up %d)",
                          (long long)now, (long long)before, setup);
        }
        struct timespec nap = {0, 37000};   /* shift the phase a little */
        nanosleep(&nap, NULL);
    }
}
END_TEST

START_TEST(test_start_is_the_wall_clock_at_setup)
{
    int64_t before = wall_ms();
    clock_setup();
    int64_t after = wall_ms();
    ck_assert(clock_start_ms() >= before && clock_start_ms() <= after);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("clock");
    TCase *tc = tcase_create("clock");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_now_is_never_behind_the_wall_clock_whatever_the_start_phase);
    tcase_add_test(tc, test_start_is_the_wall_clock_at_setup);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
