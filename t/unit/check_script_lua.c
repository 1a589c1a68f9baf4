/*
 * Unit tests for script/script_lua: RESP reply bytes read back as the Lua
 * values Redis gives scripts, and the sandbox (no os/io, read-only
 * globals and library tables, no binary chunks, deterministic
 * math.random from Redis's starting point, the redis.* helpers). No
 * server, no connection: scripts run on a bare interpreter.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "script/script_lua.h"

static const luaL_Reg no_fns[] = {{NULL, NULL}};

/* Run src with Redis's message handler; the error text, or NULL. */
static const char *run(lua_State *L, const char *src)
{
    static char err[512];
    lua_settop(L, 0);
    lua_getfield(L, LUA_REGISTRYINDEX, SCRIPT_REG_ERRH);
    ck_assert_int_eq(luaL_loadbuffer(L, src, strlen(src), "@user_script"), 0);
    if (lua_pcall(L, 0, 1, 1) == 0)
        return NULL;
    ck_assert(lua_istable(L, -1));
    lua_getfield(L, -1, "err");
    snprintf(err, sizeof(err), "%s", lua_tostring(L, -1));
    return err;
}

static void push_n(lua_State *L, const char *resp, size_t n, int version)
{
    size_t used = 0;
    lua_settop(L, 0);
    ck_assert(script_lua_push_reply(L, resp, n, &used, version));
    ck_assert_uint_eq(used, n);
    ck_assert_int_eq(lua_gettop(L), 1);
}

static void push(lua_State *L, const char *resp, int version)
{
    push_n(L, resp, strlen(resp), version);
}

START_TEST(test_resp2_replies_become_redis_lua_values)
{
    lua_State *L = script_lua_open(no_fns);
    push(L, ":-42\r\n", 2);
    ck_assert(lua_type(L, 1) == LUA_TNUMBER && lua_tonumber(L, 1) == -42);
    push_n(L, "$3\r\na\0b\r\n", 9, 2);
    size_t len;
    const char *str = lua_tolstring(L, 1, &len);
    ck_assert(lua_type(L, 1) == LUA_TSTRING && len == 3 && memcmp(str, "a\0b", 3) == 0);
    push(L, "$-1\r\n", 2);
    ck_assert(lua_type(L, 1) == LUA_TBOOLEAN && !lua_toboolean(L, 1));
    push(L, "*-1\r\n", 2);
    ck_assert(lua_type(L, 1) == LUA_TBOOLEAN && !lua_toboolean(L, 1));
    push(L, "+OK\r\n", 2);
    lua_getfield(L, 1, "ok");
    ck_assert_str_eq(lua_tostring(L, -1), "OK");
    push(L, "-ERR bad\r\n", 2);
    lua_getfield(L, 1, "err");
    ck_assert_str_eq(lua_tostring(L, -1), "ERR bad");
    push(L, "*3\r\n$1\r\na\r\n*1\r\n:7\r\n$-1\r\n", 2);
    ck_assert_int_eq((int)lua_objlen(L, 1), 3);
    lua_rawgeti(L, 1, 1);
    ck_assert_str_eq(lua_tostring(L, -1), "a");
    lua_rawgeti(L, 1, 2);
    lua_rawgeti(L, -1, 1);
    ck_assert(lua_tonumber(L, -1) == 7);
    lua_rawgeti(L, 1, 3);
    ck_assert(lua_type(L, -1) == LUA_TBOOLEAN);
    lua_close(L);
}
END_TEST

START_TEST(test_resp3_replies_after_setresp_3)
{
    lua_State *L = script_lua_open(no_fns);
    push(L, "%1\r\n$1\r\nk\r\n:1\r\n", 3);
    lua_getfield(L, 1, "map");
    lua_getfield(L, -1, "k");
    ck_assert(lua_tonumber(L, -1) == 1);
    push(L, "~1\r\n$1\r\nm\r\n", 3);
    lua_getfield(L, 1, "set");
    lua_getfield(L, -1, "m");
    ck_assert(lua_toboolean(L, -1));
    push(L, "_\r\n", 3);
    ck_assert(lua_isnil(L, 1));
    push(L, "#t\r\n", 3);
    ck_assert(lua_type(L, 1) == LUA_TBOOLEAN && lua_toboolean(L, 1));
    push(L, ",1.5\r\n", 3);
    lua_getfield(L, 1, "double");
    ck_assert(lua_tonumber(L, -1) == 1.5);
    /* The same map for a RESP2 script is a flat array. */
    push(L, "%1\r\n$1\r\nk\r\n:1\r\n", 2);
    ck_assert_int_eq((int)lua_objlen(L, 1), 2);
    lua_close(L);
}
END_TEST

START_TEST(test_truncated_or_malformed_replies_are_refused)
{
    lua_State *L = script_lua_open(no_fns);
    const char *bad[] = {"*2\r\n:1\r\n", "$5\r\nab", "?\r\n", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t used;
        ck_assert(!script_lua_push_reply(L, bad[i], strlen(bad[i]), &used, 2));
    }
    lua_close(L);
}
END_TEST

START_TEST(test_sandbox_has_no_os_io_or_file_loading)
{
    lua_State *L = script_lua_open(no_fns);
    const char *names[] = {"os", "io", "debug", "package", "require", "loadfile", "dofile",
                           "print", "getfenv", "setfenv", "newproxy", "module"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char src[64], want[160];
        snprintf(src, sizeof(src), "return %s", names[i]);
        snprintf(want, sizeof(want), "ERR user_script:1: Script attempted to access "
                 "nonexistent global variable '%s'", names[i]);
        const char *err = run(L, src);
        ck_assert_ptr_nonnull(err);
        ck_assert_str_eq(err, want);
    }
    ck_assert_ptr_null(run(L, "return string.rep('x', 2) .. table.concat({1}) .. math.floor(1.5)"));
    ck_assert_ptr_null(run(L, "return cjson.encode({a = bit.band(7, 3)})"));
    ck_assert_str_eq(lua_tostring(L, -1), "{\"a\":3}");
    lua_close(L);
}
END_TEST

START_TEST(test_globals_and_library_tables_are_read_only)
{
    lua_State *L = script_lua_open(no_fns);
    ck_assert_str_eq(run(L, "x = 1"), "ERR user_script:1: Attempt to modify a readonly table");
    ck_assert_str_eq(run(L, "redis = 1"), "ERR user_script:1: Attempt to modify a readonly table");
    ck_assert_str_eq(run(L, "string.x = 1"), "ERR user_script:1: Attempt to modify a readonly table");
    ck_assert_str_eq(run(L, "redis.call = 1"), "ERR user_script:1: Attempt to modify a readonly table");
    ck_assert_str_eq(run(L, "cjson.decode = 1"), "ERR user_script:1: Attempt to modify a readonly table");
    ck_assert_str_eq(run(L, "bit.band = 1"), "ERR user_script:1: Attempt to modify a readonly table");
    ck_assert_str_eq(run(L, "rawset(_G, 'x', 1)"), "ERR Attempt to modify a readonly table");
    ck_assert_str_eq(run(L, "setmetatable(_G, {})"), "ERR Attempt to modify a readonly table");
    ck_assert_str_eq(run(L, "getmetatable(_G).__index = {}"),
                     "ERR user_script:1: Attempt to modify a readonly table");
    ck_assert_str_eq(run(L, "loadstring('y = 1')()"),
                     "ERR [string \"y = 1\"]:1: Attempt to modify a readonly table");
    /* Locals and fresh tables are the script's own. */
    ck_assert_ptr_null(run(L, "local t = {} t.x = 1 setmetatable(t, {}) return t.x"));
    lua_close(L);
}
END_TEST

START_TEST(test_binary_chunks_are_refused)
{
    lua_State *L = script_lua_open(no_fns);
    ck_assert_ptr_null(run(L, "local f, e = loadstring(string.dump(function() return 1 end)) "
                              "assert(f == nil and e ~= nil)"));
    ck_assert_ptr_null(run(L, "local s = string.dump(function() return 1 end) local done = false "
                              "local f = load(function() if done then return nil end done = true "
                              "return s end) assert(f == nil)"));
    ck_assert_ptr_null(run(L, "assert(loadstring('return 1')() == 1)"));
    lua_close(L);
}
END_TEST

START_TEST(test_math_random_starts_where_redis_does)
{
    /* A fresh redis-server 7.0.15 answers 40, then 85, to math.random(100). */
    lua_State *L = script_lua_open(no_fns);
    ck_assert_ptr_null(run(L, "return math.random(100)"));
    ck_assert(lua_tonumber(L, -1) == 40);
    ck_assert_ptr_null(run(L, "return math.random(100)"));
    ck_assert(lua_tonumber(L, -1) == 85);
    ck_assert_ptr_null(run(L, "math.randomseed(7) local a = math.random() math.randomseed(7) "
                              "assert(a == math.random())"));
    lua_close(L);
}
END_TEST

START_TEST(test_redis_helpers)
{
    lua_State *L = script_lua_open(no_fns);
    ck_assert_ptr_null(run(L, "return redis.sha1hex('return 1')"));
    ck_assert_str_eq(lua_tostring(L, -1), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
    ck_assert_ptr_null(run(L, "return redis.error_reply('E2').err"));
    ck_assert_str_eq(lua_tostring(L, -1), "ERR E2");
    ck_assert_ptr_null(run(L, "return redis.error_reply('-MY code').err"));
    ck_assert_str_eq(lua_tostring(L, -1), "MY code");
    ck_assert_ptr_null(run(L, "return redis.status_reply('FINE').ok"));
    ck_assert_str_eq(lua_tostring(L, -1), "FINE");
    ck_assert_ptr_null(run(L, "return redis.LOG_WARNING + redis.REPL_ALL"));
    ck_assert(lua_tonumber(L, -1) == 6);
    ck_assert_str_eq(run(L, "redis.sha1hex()"), "ERR wrong number of arguments");
    ck_assert_str_eq(run(L, "error('boom')"), "ERR user_script:1: boom");
    lua_close(L);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("script_lua");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_resp2_replies_become_redis_lua_values);
    tcase_add_test(tc, test_resp3_replies_after_setresp_3);
    tcase_add_test(tc, test_truncated_or_malformed_replies_are_refused);
    tcase_add_test(tc, test_sandbox_has_no_os_io_or_file_loading);
    tcase_add_test(tc, test_globals_and_library_tables_are_read_only);
    tcase_add_test(tc, test_binary_chunks_are_refused);
    tcase_add_test(tc, test_math_random_starts_where_redis_does);
    tcase_add_test(tc, test_redis_helpers);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
