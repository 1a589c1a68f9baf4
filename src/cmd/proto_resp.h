/*
 * RESP (the Redis protocol) as seen by a connection: parse requests with
 * proto/resp, run each against the same item store the memcached protocols
 * use, queue the replies. The commands live in resp_strings.c (values),
 * resp_keys.c (keys, expiry, iteration) and resp_server.c (connection and
 * server); resp_cmds.h is their shared interface.
 */
#ifndef KIOKU_PROTO_RESP_H
#define KIOKU_PROTO_RESP_H

#include "core/conn.h"

struct settings;

/* Remember the settings (read-only from now on). Call before workers start. */
void proto_resp_setup(const struct settings *s);

extern const struct proto_ops proto_resp;

#endif
