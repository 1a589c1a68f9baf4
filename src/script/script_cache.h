/*
 * The script cache: script bodies by SHA-1, shared by every worker.
 *
 * EVAL, SCRIPT LOAD and SCRIPT EXISTS on any worker see one cache, as in
 * Redis. Each worker keeps its own compiled copy of a script (its own Lua
 * state, see script.h) and fetches the body from here the first time it
 * runs a script by its digest. SCRIPT FLUSH empties the cache and bumps a
 * generation number; a worker that sees a new generation drops its Lua
 * state and its compiled scripts before running the next one.
 *
 * One mutex guards the table; a worker takes it only for a script it has
 * not compiled yet, never for a script it already holds.
 */
#ifndef KIOKU_SCRIPT_CACHE_H
#define KIOKU_SCRIPT_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* sha: 40 lowercase hex digits (not NUL-terminated here). Returns 0, or -1
 * out of memory. Adding a digest already present is a no-op. */
int script_cache_add(const char *sha, const char *body, size_t len);
bool script_cache_exists(const char *sha);
/* A malloc()ed copy of the body (the caller frees it), or NULL when the
 * digest is unknown or memory is short. */
char *script_cache_get(const char *sha, size_t *len);
/* Forget every script; workers recompile from the next generation on. */
void script_cache_flush(void);
uint64_t script_cache_generation(void);
/* Scripts held, and the bytes of their bodies (INFO). */
void script_cache_usage(size_t *count, size_t *bytes);

#endif
