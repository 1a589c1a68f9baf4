/*
 * memcached meta commands (mg, ms, md, ma, mn, me) as run on a connection.
 *
 * The text protocol recognises a meta line (proto/mc_text) and hands the
 * command, its key token and the rest of the line here; proto/mc_meta
 * parses the flags, this module runs the command against storage and
 * queues the reply. ms reads a data block: its request is kept in a small
 * state area that the text protocol reserves in its per-connection state,
 * and proto_mc_meta_set_done() completes it once the block has arrived.
 */
#ifndef KIOKU_PROTO_MC_META_H
#define KIOKU_PROTO_MC_META_H

#include <stddef.h>

#include "core/conn.h"
#include "proto/mc_meta.h"

struct settings;

/* Bytes of per-connection state an ms needs while its data block is read
 * (a multiple of 8; the caller keeps it 8-byte aligned). */
#define PROTO_MC_META_STATE 72

/* Remember the settings (read-only from now on). */
void proto_mc_meta_setup(const struct settings *s);

/*
 * Run one meta command line. key/nkey is the key token and args/nargs the
 * rest of the line, as mc_text_parse() returned them (valid during the
 * call only). state is the caller's PROTO_MC_META_STATE bytes, used by ms.
 * Returns PROC_MORE, or PROC_NREAD when ms waits for (or skips) its data
 * block; for PROC_NREAD with a value being read the caller routes its
 * value_done() to proto_mc_meta_set_done(). Counts the command in stats.
 */
enum proc_result proto_mc_meta_run(struct conn *c, void *state, enum mc_meta_cmd cmd,
                                   const char *key, size_t nkey,
                                   const char *args, size_t nargs);

/* The data block of an ms has arrived (conn_take_value() holds it): store
 * it and reply. Returns PROC_MORE. */
enum proc_result proto_mc_meta_set_done(struct conn *c, void *state);

#endif
