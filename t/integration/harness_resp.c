/*
 * hiredis helpers for the integration tests (see harness_resp.h).
 */
#include "harness_resp.h"

#include <stdio.h>
#include <string.h>

#include "harness.h"

redisContext *kh_resp_connect(int port)
{
    int ms = kh_scale_ms(KH_IO_TIMEOUT_MS);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    redisContext *rc = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (rc != NULL && rc->err == 0)
        redisSetTimeout(rc, tv);
    return rc;
}

void kh_resp_render(const redisReply *r, char *out, size_t cap)
{
    size_t n;
    switch (r->type) {
    case REDIS_REPLY_STATUS: snprintf(out, cap, "+%s", r->str); return;
    case REDIS_REPLY_ERROR: snprintf(out, cap, "-%s", r->str); return;
    case REDIS_REPLY_INTEGER: snprintf(out, cap, ":%lld", r->integer); return;
    case REDIS_REPLY_NIL: snprintf(out, cap, "(nil)"); return;
    case REDIS_REPLY_STRING: snprintf(out, cap, "$%.*s", (int)r->len, r->str); return;
    case REDIS_REPLY_ARRAY:
        n = (size_t)snprintf(out, cap, "[");
        for (size_t i = 0; i < r->elements && n < cap; i++) {
            if (i > 0)
                n += (size_t)snprintf(out + n, cap - n, ",");
            if (n < cap)
                kh_resp_render(r->element[i], out + n, cap - n);
            n += strlen(out + n);
        }
        if (n < cap)
            snprintf(out + n, cap - n, "]");
        return;
    default: snprintf(out, cap, "?type%d", r->type);
    }
}
