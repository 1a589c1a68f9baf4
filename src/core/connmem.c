/*
 * Connection buffer memory limit (see connmem.h). One number, fixed before
 * the workers start; each worker checks its own level against it, so the
 * check costs a load and a compare, and only when a buffer would grow.
 */
#include "core/connmem.h"

static size_t per_thread;   /* bytes a worker's buffers may hold; 0: no limit */

void connmem_setup(size_t limit, int nthreads)
{
    per_thread = limit == 0 || nthreads <= 0 ? 0 : limit / (size_t)nthreads;
    if (limit != 0 && per_thread == 0)
        per_thread = 1;
}

bool connmem_limited(void)
{
    return per_thread != 0;
}

bool connmem_admit(uint64_t held, size_t n)
{
    /* The level may read "negative" (wrapped) for a moment: a client of
     * this worker closed by another thread. Then it is small, not full. */
    if (per_thread == 0 || (int64_t)held < 0)
        return true;
    return held + n <= per_thread;
}
