/*
 * The memcached binary protocol as seen by a connection: decode with
 * proto/mc_bin, run each opcode against storage, queue response packets.
 * A connection speaks it when its first byte is 0x80 (core/conn.c routes
 * it here), on the same port as the text protocol.
 */
#ifndef KIOKU_PROTO_MC_BIN_H
#define KIOKU_PROTO_MC_BIN_H

#include "core/conn.h"

struct settings;

/* Remember the settings (read-only from now on). */
void proto_mc_bin_setup(const struct settings *s);

extern const struct proto_ops proto_mc_bin;

#endif
