/*
 * Lua scripts (EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, SCRIPT): Redis 7's
 * scripting on Lua 5.1, run by the worker that received the request.
 *
 * Each worker thread has its own Lua interpreter, made on its first
 * script, so no lock guards an interpreter. Script bodies are shared
 * through script_cache.h. A script's redis.call() runs a command through
 * the ordinary RESP command table and handlers, on a connection of the
 * script's own whose replies are read back into Lua values.
 *
 * Atomicity: a script holds the storage stripes of the keys it declares
 * (KEYS) from start to end, so no other client's command on those keys
 * runs in between; the commands it runs itself skip those locks. See
 * script.c for keys a script touches without declaring them.
 *
 * Run time: past busy-reply-threshold (CONFIG SET, default 5000 ms) a
 * script is busy; while any script is busy other clients' commands are
 * refused with -BUSY (script_busy(), one relaxed load per command), and
 * SCRIPT KILL stops a busy script that has not written. A busy script
 * serves the RESP clients of its own worker every few tens of ms, so they
 * get -BUSY too; see script.c.
 */
#ifndef KIOKU_SCRIPT_H
#define KIOKU_SCRIPT_H

#include <stdatomic.h>
#include <stdbool.h>

struct conn;
struct resp_arg;

/* Not for direct use: read through script_busy(). */
extern atomic_int script_busy_;

/* True while some script runs past the busy threshold. */
static inline bool script_busy(void)
{
    return atomic_load_explicit(&script_busy_, memory_order_relaxed) != 0;
}

#define SCRIPT_ERR_BUSY \
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."

/* Slots for `workers` worker threads (SCRIPT KILL finds scripts there).
 * Call before the workers start. Returns 0 or -1. */
int script_setup(int workers);
void script_teardown(void);

/* EVAL / EVALSHA / EVAL_RO / EVALSHA_RO: argv as received (argv[1] the
 * body or digest, argv[2] numkeys, then keys and arguments). Replies on c. */
void script_eval(struct conn *c, int argc, const struct resp_arg *argv, bool by_sha,
                 bool read_only);
/* SCRIPT LOAD: compile (so errors show now), cache, reply the digest. */
void script_load(struct conn *c, const struct resp_arg *body);
/* SCRIPT KILL: reply +OK, -NOTBUSY or -UNKILLABLE. */
void script_kill(struct conn *c);
/* SHUTDOWN NOSAVE: every running script, busy or not, wrote or not, ends
 * at its next hook, so that the workers can stop; from any thread, once. */
void script_stop_all(void);

/* busy-reply-threshold (alias lua-time-limit), milliseconds; 0: never busy. */
unsigned script_get_busy_threshold(void);
void script_set_busy_threshold(unsigned ms);

#endif
