/*
 * The memory limit of connection buffers: memcached's -o read_buf_mem_limit.
 *
 * memcached gives each worker thread an equal share of the limit for its
 * read buffers and response objects. kioku's connections each own a read
 * buffer and a write buffer (18 KiB together), which grow for a long
 * request or a large reply and shrink back after. With a limit, a buffer
 * grows only while what the worker's buffers hold beyond those first ones,
 * the growth included, stays within the worker's share; the first ones are
 * bounded by the connection limit (-c) instead, so idle clients cost the
 * share nothing, as memcached's hold no read buffer. conn.c asks here
 * before it grows one.
 */
#ifndef KIOKU_CONNMEM_H
#define KIOKU_CONNMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* limit: bytes for all workers (0: none), split evenly over nthreads.
 * Once, before the workers start. */
void connmem_setup(size_t limit, int nthreads);
/* Whether the limit is set. */
bool connmem_limited(void);
/* May a worker whose buffers hold `held` bytes beyond their first ones
 * grow them by n more? */
bool connmem_admit(uint64_t held, size_t n);

#endif
