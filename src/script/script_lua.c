/*
 * The sandboxed Lua 5.1 interpreter of a script (see script_lua.h), and the
 * conversions that need no connection.
 *
 * Libraries: base, table, string, math, cjson and bit (no os, io, package
 * or debug; Redis's struct and cmsgpack are absent, Debian has no library
 * for them); dofile, loadfile, print, getfenv, setfenv, module, require
 * and newproxy removed, as Redis 7 has them absent.
 *
 * Globals are read-only, as in Redis 7.0: reading a global that does not
 * exist raises "Script attempted to access nonexistent global variable",
 * and assigning any global, or a field of a library table, raises "Attempt
 * to modify a readonly table". Redis does this inside its own copy of Lua;
 * stock Lua cannot mark a table read-only, so here the globals seen by
 * scripts are an empty proxy whose metatable reads through to the real
 * globals and refuses writes, and each library table is such a proxy too.
 * getmetatable() shows a read-only view of those metatables; rawset and
 * setmetatable refuse the proxies. load and loadstring take source text
 * only: a compiled chunk could break out of any sandbox.
 *
 * Errors are Redis 7's tables {err = "CODE message"}, and a script's
 * message handler adds where it was raised (source, line).
 */
#include "script/script_lua.h"

#include <lauxlib.h>
#include <lua-bitop.h>
#include <lua-cjson.h>
#include <lualib.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/resp_cmds.h"
#include "proto/resp_reply.h"
#include "util/log.h"
#include "util/sha1.h"

#define REPLY_DEPTH_MAX 1000         /* nesting of a reply read back */
#define REDIS_VERSION_NUM 0x070000   /* RESP_REDIS_VERSION as a number */

/* ---- errors as Redis 7 builds them: a table {err = "CODE message"} ---- */

/* "-CODE msg" keeps its code, "msg" gets "ERR"; a trailing CRLF goes. */
void script_lua_push_error(lua_State *L, const char *msg, size_t len)
{
    luaL_Buffer b;
    while (len > 0 && (msg[len - 1] == '\r' || msg[len - 1] == '\n'))
        len--;
    luaL_buffinit(L, &b);
    if (len > 0 && msg[0] == '-') {
        const char *sp = memchr(msg, ' ', len);
        if (sp == NULL) {
            luaL_addstring(&b, "ERR ");
            luaL_addlstring(&b, msg + 1, len - 1);
        } else {
            luaL_addlstring(&b, msg + 1, len - 1);
        }
    } else {
        luaL_addstring(&b, "ERR ");
        luaL_addlstring(&b, msg, len);
    }
    lua_newtable(L);
    lua_pushstring(L, "err");
    luaL_pushresult(&b);
    lua_rawset(L, -3);
}

int script_lua_raise(lua_State *L, const char *msg)
{
    script_lua_push_error(L, msg, strlen(msg));
    return lua_error(L);
}

/* The message handler of every script run: a string error becomes
 * {err = "ERR <text>"}, and the script's source and line are added. */
static int error_handler(lua_State *L)
{
    lua_Debug ar;
    bool have = false;
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar)) {
        have = true;
        if (strcmp(ar.what, "C") == 0)
            have = lua_getstack(L, 2, &ar) && lua_getinfo(L, "Sl", &ar);
    }
    if (!lua_istable(L, 1)) {
        const char *s = lua_tostring(L, 1);
        lua_newtable(L);
        lua_pushstring(L, "err");
        lua_pushfstring(L, "ERR %s", s != NULL ? s : luaL_typename(L, 1));
        lua_rawset(L, -3);
        lua_replace(L, 1);
    }
    lua_settop(L, 1);
    if (have) {
        lua_pushstring(L, "source");
        lua_pushstring(L, ar.source);
        lua_rawset(L, 1);
        lua_pushstring(L, "line");
        lua_pushinteger(L, ar.currentline);
        lua_rawset(L, 1);
    }
    return 1;
}

/* ---- RESP reply bytes -> Lua values ---- */

static bool push_reply(lua_State *L, const char *p, size_t n, size_t *used, int depth,
                       int resp);

static bool push_aggregate(lua_State *L, const struct resp_reply_elem *e, const char *p,
                           size_t n, size_t *off, int depth, int resp)
{
    bool resp3 = resp == 3;
    lua_newtable(L);
    if (e->type == RR_ARRAY || !resp3) {
        int64_t count = e->type == RR_MAP ? e->n * 2 : e->n;
        for (int64_t i = 1; i <= count; i++) {
            size_t u;
            if (!push_reply(L, p + *off, n - *off, &u, depth + 1, resp))
                return false;
            *off += u;
            lua_rawseti(L, -2, (int)i);
        }
        return true;
    }
    /* RESP3 after redis.setresp(3): {map = {k = v}} and {set = {k = true}}. */
    lua_pushstring(L, e->type == RR_MAP ? "map" : "set");
    lua_newtable(L);
    for (int64_t i = 0; i < e->n; i++) {
        size_t u;
        if (!push_reply(L, p + *off, n - *off, &u, depth + 1, resp))
            return false;
        *off += u;
        if (e->type == RR_MAP) {
            if (!push_reply(L, p + *off, n - *off, &u, depth + 1, resp))
                return false;
            *off += u;
        } else {
            lua_pushboolean(L, 1);
        }
        lua_rawset(L, -3);
    }
    lua_rawset(L, -3);
    return true;
}

/* Push the reply element at p as Redis converts it: integer -> number,
 * bulk -> string, null -> false, array -> table, status -> {ok = s},
 * error -> {err = s}. False on bytes that are not a whole reply. */
static bool push_reply(lua_State *L, const char *p, size_t n, size_t *used, int depth,
                       int resp)
{
    struct resp_reply_elem e;
    if (depth > REPLY_DEPTH_MAX || !lua_checkstack(L, 4) ||
        resp_reply_next(p, n, used, &e) != PARSE_OK)
        return false;
    switch (e.type) {
    case RR_INT:
        lua_pushnumber(L, (lua_Number)e.n);
        return true;
    case RR_BULK:
        if (e.null)
            lua_pushboolean(L, 0);
        else
            lua_pushlstring(L, e.ptr, e.len);
        return true;
    case RR_STATUS:
    case RR_ERROR:
        lua_newtable(L);
        lua_pushstring(L, e.type == RR_STATUS ? "ok" : "err");
        lua_pushlstring(L, e.ptr, e.len);
        lua_rawset(L, -3);
        return true;
    case RR_NULL:
        lua_pushnil(L);
        return true;
    case RR_BOOL:
        lua_pushboolean(L, (int)e.n);
        return true;
    case RR_DOUBLE: {
        char buf[64];
        size_t k = e.len < sizeof(buf) - 1 ? e.len : sizeof(buf) - 1;
        memcpy(buf, e.ptr, k);
        buf[k] = '\0';
        lua_newtable(L);
        lua_pushstring(L, "double");
        lua_pushnumber(L, strtod(buf, NULL));
        lua_rawset(L, -3);
        return true;
    }
    case RR_ARRAY:
    case RR_MAP:
    case RR_SET:
        if (e.null) {
            lua_pushboolean(L, 0);
            return true;
        }
        return push_aggregate(L, &e, p, n, used, depth, resp);
    }
    return false;
}

static int l_sha1hex(lua_State *L)
{
    if (lua_gettop(L) != 1)
        return script_lua_raise(L, "wrong number of arguments");
    size_t len = 0;
    const char *s = lua_tolstring(L, 1, &len);
    char hex[SHA1_HEX_LEN + 1];
    sha1_hex(hex, s != NULL ? s : "", s != NULL ? len : 0);
    lua_pushstring(L, hex);
    return 1;
}

static int l_error_reply(lua_State *L)
{
    if (lua_gettop(L) != 1 || lua_type(L, 1) != LUA_TSTRING) {
        script_lua_push_error(L, "wrong number or type of arguments", 33);
        return 1;
    }
    size_t len;
    const char *s = lua_tolstring(L, 1, &len);
    if (len > 0 && s[0] == '-') {
        script_lua_push_error(L, s, len);
    } else {
        lua_pushfstring(L, "-%s", s);
        s = lua_tolstring(L, -1, &len);
        script_lua_push_error(L, s, len);
    }
    return 1;
}

static int l_status_reply(lua_State *L)
{
    if (lua_gettop(L) != 1 || lua_type(L, 1) != LUA_TSTRING) {
        script_lua_push_error(L, "wrong number or type of arguments", 33);
        return 1;
    }
    lua_newtable(L);
    lua_pushstring(L, "ok");
    lua_pushvalue(L, 1);
    lua_rawset(L, -3);
    return 1;
}

static int l_log(lua_State *L)
{
    int argc = lua_gettop(L);
    if (argc < 2)
        return script_lua_raise(L, "redis.log() requires two arguments or more.");
    if (!lua_isnumber(L, 1))
        return script_lua_raise(L, "First argument must be a number (log level).");
    int level = (int)lua_tonumber(L, 1);
    if (level < 0 || level > 3)
        return script_lua_raise(L, "Invalid debug level.");
    /* LOG_WARNING is always written; VERBOSE with -v, DEBUG with -vv, ... */
    static const enum log_sev sev_of[] = {LOG_SEV_TRACE, LOG_SEV_DEBUG, LOG_SEV_INFO,
                                          LOG_SEV_WARN};
    if (!log_sev_enabled(sev_of[level], log_level()))
        return 0;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 2; i <= argc; i++) {
        size_t len;
        const char *s = lua_tolstring(L, i, &len);
        if (s == NULL)
            continue;
        if (i > 2)
            luaL_addchar(&b, ' ');
        luaL_addlstring(&b, s, len);
    }
    luaL_pushresult(&b);
    log_write(sev_of[level], "script: %s", lua_tostring(L, -1));
    return 0;
}

static int l_replicate_commands(lua_State *L)
{
    lua_pushboolean(L, 1);   /* always on in Redis 7 */
    return 1;
}

static int l_nothing(lua_State *L)
{
    (void)L;
    return 0;
}

static int l_false(lua_State *L)
{
    lua_pushboolean(L, 0);
    return 1;
}

/* ---- deterministic math.random ----
 * The 48-bit linear congruential generator of drand48 (a = 0x5DEECE66D,
 * c = 11), started from its customary state as Redis's is, scaled and
 * ranged as Lua 5.1's math.random does. Per worker, so a script's random
 * numbers depend only on what ran before it on that worker. */

#define RAND48_INIT 0x1234abcd330eULL

static __thread uint64_t rand_state;

static int32_t rand48_next(void)
{
    rand_state = (rand_state * 0x5deece66dULL + 0xb) & ((1ULL << 48) - 1);
    return (int32_t)(rand_state >> 17);
}

static int l_random(lua_State *L)
{
    lua_Number r = (lua_Number)(rand48_next() % INT32_MAX) / (lua_Number)INT32_MAX;
    switch (lua_gettop(L)) {
    case 0:
        lua_pushnumber(L, r);
        break;
    case 1: {
        int u = luaL_checkint(L, 1);
        luaL_argcheck(L, 1 <= u, 1, "interval is empty");
        lua_pushnumber(L, floor(r * u) + 1);
        break;
    }
    case 2: {
        int l = luaL_checkint(L, 1);
        int u = luaL_checkint(L, 2);
        luaL_argcheck(L, l <= u, 2, "interval is empty");
        lua_pushnumber(L, floor(r * (u - l + 1)) + l);
        break;
    }
    default:
        return luaL_error(L, "wrong number of arguments");
    }
    return 1;
}

static int l_randomseed(lua_State *L)
{
    rand_state = ((uint64_t)(uint32_t)luaL_checkint(L, 1) << 16) | 0x330e;
    return 0;
}

/* ---- read-only globals ---- */

static int ro_newindex(lua_State *L)
{
    return luaL_error(L, "Attempt to modify a readonly table");
}

static int global_index(lua_State *L)
{
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
    if (!lua_isnil(L, -1))
        return 1;
    const char *name = lua_tostring(L, 2);
    return luaL_error(L, "Script attempted to access nonexistent global variable '%s'",
                      name != NULL ? name : "?");
}

static bool is_protected(lua_State *L, int idx)
{
    if (!lua_istable(L, idx) || !lua_getmetatable(L, idx))
        return false;
    lua_pushstring(L, "__newindex");
    lua_rawget(L, -2);
    bool ro = lua_tocfunction(L, -1) == ro_newindex;
    lua_pop(L, 2);
    return ro;
}

static int refuse_protected(lua_State *L)
{
    lua_pushstring(L, "Attempt to modify a readonly table");   /* no position, as Redis */
    return lua_error(L);
}

static int l_rawset(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkany(L, 2);
    luaL_checkany(L, 3);
    if (is_protected(L, 1))
        return refuse_protected(L);
    lua_settop(L, 3);
    lua_rawset(L, 1);
    return 1;
}

static int l_setmetatable(lua_State *L)
{
    int t = lua_type(L, 2);
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_argcheck(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table expected");
    if (is_protected(L, 1))
        return refuse_protected(L);
    if (luaL_getmetafield(L, 1, "__metatable"))
        return luaL_error(L, "cannot change a protected metatable");
    lua_settop(L, 2);
    lua_setmetatable(L, 1);
    return 1;
}

/* Compiled (binary) chunks could break the sandbox: load and loadstring
 * take source text only. */
#define BINARY_REFUSED "binary chunks are not allowed in scripts"

static int l_loadstring(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    const char *name = luaL_optstring(L, 2, s);
    if (len > 0 && s[0] == LUA_SIGNATURE[0]) {
        lua_pushnil(L);
        lua_pushstring(L, BINARY_REFUSED);
        return 2;
    }
    if (luaL_loadbuffer(L, s, len, name) == 0)
        return 1;
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
}

struct load_state {
    bool first, binary;
};

/* load()'s reader: the function in slot 1 gives the pieces; slot 3 keeps
 * the current one alive. */
static const char *load_reader(lua_State *L, void *ud, size_t *size)
{
    struct load_state *ls = ud;
    luaL_checkstack(L, 2, "too many nested functions");
    lua_pushvalue(L, 1);
    lua_call(L, 0, 1);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        *size = 0;
        return NULL;
    }
    if (!lua_isstring(L, -1)) {
        luaL_error(L, "reader function must return a string");
        return NULL;
    }
    lua_replace(L, 3);
    const char *s = lua_tolstring(L, 3, size);
    if (ls->first && *size > 0) {
        ls->first = false;
        if (s[0] == LUA_SIGNATURE[0]) {
            ls->binary = true;
            *size = 0;
            return NULL;
        }
    }
    return s;
}

static int l_load(lua_State *L)
{
    struct load_state ls = {true, false};
    luaL_checktype(L, 1, LUA_TFUNCTION);
    const char *name = luaL_optstring(L, 2, "=(load)");
    lua_settop(L, 3);
    int rc = lua_load(L, load_reader, &ls, name);
    if (rc == 0 && !ls.binary)
        return 1;
    if (ls.binary) {
        lua_pop(L, 1);
        lua_pushstring(L, BINARY_REFUSED);
    }
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
}

/* Redis 7's pcall: an error table caught from redis.call comes back as
 * its message, as scripts written for Redis 6 expect. */
static int l_lua_pcall(lua_State *L)
{
    luaL_checkany(L, 1);
    int argc = lua_gettop(L);
    lua_pushboolean(L, 1);
    lua_insert(L, 1);
    if (lua_pcall(L, argc - 1, LUA_MULTRET, 0) != 0) {
        lua_remove(L, 1);
        if (lua_istable(L, -1)) {
            lua_pushstring(L, "err");
            lua_rawget(L, -2);
            if (lua_isstring(L, -1))
                lua_replace(L, -2);
            else
                lua_pop(L, 1);
        }
        lua_pushboolean(L, 0);
        lua_insert(L, 1);
    }
    return lua_gettop(L);
}

/* Finish the metatable on top of the stack: writes refused, and what
 * getmetatable() shows is a read-only view of it, so neither the table
 * nor its metatable can be changed from a script. */
static void seal_metatable(lua_State *L)
{
    int mt = lua_gettop(L);
    lua_pushcfunction(L, ro_newindex);
    lua_setfield(L, mt, "__newindex");
    lua_newtable(L);                    /* the view */
    lua_newtable(L);                    /* its own metatable */
    lua_pushvalue(L, mt);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, ro_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_setfield(L, mt, "__metatable");
}

/* Replace the table at globals[name] by a read-only proxy of it. */
static void protect_table(lua_State *L, int globals, const char *name)
{
    lua_getfield(L, globals, name);
    int real = lua_gettop(L);
    lua_newtable(L);                    /* the proxy */
    lua_newtable(L);                    /* its metatable */
    lua_pushvalue(L, real);
    lua_setfield(L, -2, "__index");
    seal_metatable(L);
    lua_setmetatable(L, -2);
    lua_setfield(L, globals, name);
    lua_pop(L, 1);
}

static void open_lib(lua_State *L, const char *name, lua_CFunction fn)
{
    lua_pushcfunction(L, fn);
    lua_pushstring(L, name);
    lua_call(L, 1, 0);
}

static void set_fn(lua_State *L, const char *name, lua_CFunction fn)
{
    lua_pushcfunction(L, fn);
    lua_setfield(L, -2, name);
}

static void set_num(lua_State *L, const char *name, lua_Number v)
{
    lua_pushnumber(L, v);
    lua_setfield(L, -2, name);
}

static void redis_table(lua_State *L, const luaL_Reg *fns)
{
    lua_newtable(L);
    for (; fns->name != NULL; fns++)
        set_fn(L, fns->name, fns->func);
    set_fn(L, "sha1hex", l_sha1hex);
    set_fn(L, "error_reply", l_error_reply);
    set_fn(L, "status_reply", l_status_reply);
    set_fn(L, "log", l_log);
    set_fn(L, "replicate_commands", l_replicate_commands);
    set_fn(L, "breakpoint", l_false);   /* no debugger: as outside a debug session */
    set_fn(L, "debug", l_nothing);
    set_num(L, "LOG_DEBUG", 0);
    set_num(L, "LOG_VERBOSE", 1);
    set_num(L, "LOG_NOTICE", 2);
    set_num(L, "LOG_WARNING", 3);
    set_num(L, "REPL_NONE", 0);
    set_num(L, "REPL_AOF", 1);
    set_num(L, "REPL_SLAVE", 2);
    set_num(L, "REPL_REPLICA", 2);
    set_num(L, "REPL_ALL", 3);
    lua_pushstring(L, RESP_REDIS_VERSION);
    lua_setfield(L, -2, "REDIS_VERSION");
    set_num(L, "REDIS_VERSION_NUM", REDIS_VERSION_NUM);
    lua_setglobal(L, "redis");
}

/* Registry keys. */
lua_State *script_lua_open(const luaL_Reg *redis_fns)
{
    lua_State *L = luaL_newstate();
    if (L == NULL)
        return NULL;
    open_lib(L, "", luaopen_base);
    open_lib(L, LUA_TABLIBNAME, luaopen_table);
    open_lib(L, LUA_STRLIBNAME, luaopen_string);
    open_lib(L, LUA_MATHLIBNAME, luaopen_math);
    /* Debian's lua-cjson and lua-bitop, the cjson and bit tables Redis has
     * (struct and cmsgpack have no Debian library: absent here). */
    lua_pushcfunction(L, luaopen_cjson);
    lua_call(L, 0, 1);
    lua_setglobal(L, "cjson");
    lua_pushcfunction(L, luaopen_bit);
    lua_call(L, 0, 1);
    lua_setglobal(L, "bit");
    static const char *const removed[] = {
        "dofile", "loadfile", "print", "getfenv", "setfenv", "module", "require", "newproxy",
        NULL,
    };
    for (int i = 0; removed[i] != NULL; i++) {
        lua_pushnil(L);
        lua_setglobal(L, removed[i]);
    }
    lua_getglobal(L, "math");
    set_fn(L, "random", l_random);
    set_fn(L, "randomseed", l_randomseed);
    lua_pop(L, 1);
    lua_pushcfunction(L, l_lua_pcall);
    lua_setglobal(L, "pcall");
    lua_pushcfunction(L, l_rawset);
    lua_setglobal(L, "rawset");
    lua_pushcfunction(L, l_setmetatable);
    lua_setglobal(L, "setmetatable");
    lua_pushcfunction(L, l_loadstring);
    lua_setglobal(L, "loadstring");
    lua_pushcfunction(L, l_load);
    lua_setglobal(L, "load");
    redis_table(L, redis_fns);
    lua_pushcfunction(L, error_handler);
    lua_setfield(L, LUA_REGISTRYINDEX, SCRIPT_REG_ERRH);

    /* The real globals R, kept in the registry; scripts see the proxy P. */
    lua_pushvalue(L, LUA_GLOBALSINDEX);
    int R = lua_gettop(L);
    static const char *const libs[] = {"string", "math", "table", "redis", "coroutine",
                                       "cjson", "bit", NULL};
    for (int i = 0; libs[i] != NULL; i++)
        protect_table(L, R, libs[i]);
    lua_newtable(L);                           /* P */
    int P = lua_gettop(L);
    lua_newtable(L);
    lua_pushvalue(L, R);
    lua_pushcclosure(L, global_index, 1);
    lua_setfield(L, -2, "__index");
    seal_metatable(L);
    lua_setmetatable(L, P);
    lua_pushvalue(L, P);
    lua_setfield(L, R, "_G");
    lua_pushvalue(L, R);
    lua_setfield(L, LUA_REGISTRYINDEX, SCRIPT_REG_GLOBALS);
    lua_pushvalue(L, P);
    lua_replace(L, LUA_GLOBALSINDEX);          /* loadstring'ed code sees P too */
    lua_settop(L, 0);
    rand_state = RAND48_INIT;
    return L;
}


bool script_lua_push_reply(lua_State *L, const char *p, size_t n, size_t *used, int resp)
{
    return push_reply(L, p, n, used, 0, resp);
}
