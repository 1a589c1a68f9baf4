/*
 * The Lua side of scripts: a sandboxed Lua 5.1 interpreter as Redis 7
 * gives scripts (libraries, read-only globals, the redis table), Redis's
 * error tables, and RESP reply bytes read back as Lua values. Nothing here
 * knows a connection, a lock or a command; script.c runs scripts on it.
 * Each interpreter belongs to one thread.
 */
#ifndef KIOKU_SCRIPT_LUA_H
#define KIOKU_SCRIPT_LUA_H

#include <lauxlib.h>
#include <lua.h>
#include <stdbool.h>
#include <stddef.h>

/* Registry keys: the real globals table (scripts see a read-only proxy),
 * and the message handler to run scripts with (lua_pcall's errfunc). */
#define SCRIPT_REG_GLOBALS "kioku_globals"
#define SCRIPT_REG_ERRH "kioku_errh"

/* A new interpreter; redis_fns (NULL-terminated) join the redis table
 * before it is sealed. math.random starts from Redis's initial state.
 * NULL when memory is short. */
lua_State *script_lua_open(const luaL_Reg *redis_fns);

/* Push Redis's error table {err = "CODE msg"}: a message "-CODE msg"
 * keeps its code, any other gets "ERR ", a trailing CRLF goes. */
void script_lua_push_error(lua_State *L, const char *msg, size_t len);
/* Push it and raise it. */
int script_lua_raise(lua_State *L, const char *msg);

/*
 * Push the RESP reply at p[0..n) as Redis converts it: integer -> number,
 * bulk -> string, null -> false, array -> table, status -> {ok = s},
 * error -> {err = s}; with resp 3 also map -> {map = {}}, set -> {set =
 * {}}, null -> nil, boolean, double -> {double = n}. *used is its size.
 * False (the stack as it was, but for partial tables) on bytes that are
 * not one whole reply, or nesting deeper than 1000.
 */
bool script_lua_push_reply(lua_State *L, const char *p, size_t n, size_t *used, int resp);

#endif
