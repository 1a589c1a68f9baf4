/*
 * The memcached text protocol as seen by a connection: parse with
 * proto/mc_text, run each command against storage, queue the reply.
 */
#ifndef KIOKU_PROTO_MC_TEXT_H
#define KIOKU_PROTO_MC_TEXT_H

#include "core/conn.h"

struct settings;

/* Remember the settings (read-only from now on). */
void proto_mc_text_setup(const struct settings *s);

extern const struct proto_ops proto_mc_text;

#endif
