/*
 * hiredis helpers for the integration tests that speak RESP: a bounded
 * connection and a compact text form of a reply, so a test compares one
 * string with what redis-server answers. Kept apart from harness.c so that
 * the memcached-only tests need not link hiredis.
 *
 * Like harness.c's socket helpers these never assert: client threads use
 * them too.
 */
#ifndef KIOKU_T_INTEGRATION_HARNESS_RESP_H
#define KIOKU_T_INTEGRATION_HARNESS_RESP_H

#include <stddef.h>

#include <hiredis/hiredis.h>

/* A connection to 127.0.0.1:port whose connect, reads and writes are each
 * bounded by kh_scale_ms(KH_IO_TIMEOUT_MS). NULL or rc->err set on failure. */
redisContext *kh_resp_connect(int port);

/* The reply as "+OK", "-ERR ...", ":3", "$v", "(nil)" or "[$a,(nil)]"
 * (other types "?typeN"), truncated to cap-1 bytes and NUL-terminated. */
void kh_resp_render(const redisReply *r, char *out, size_t cap);

#endif
