/*
 * EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT: the RESP side of Lua
 * scripting. Argument checks and Redis's replies are here; running a
 * script, the interpreters and the script cache are src/script/.
 *
 * One handler serves the four EVAL rows: the row's aux says which (bit 0
 * by digest, bit 1 read-only).
 */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "cmd/resp_cmds.h"
#include "script/script.h"
#include "script/script_cache.h"
#include "util/sha1.h"

enum proc_result resp_cmd_eval(struct conn *c, const struct resp_call *call)
{
    script_eval(c, call->argc, call->argv, (call->cmd->aux & 1) != 0, (call->cmd->aux & 2) != 0);
    return PROC_MORE;
}

static void script_exists(struct conn *c, const struct resp_call *call)
{
    rs_array(c, (size_t)(call->argc - 2));
    for (int i = 2; i < call->argc; i++) {
        const struct resp_arg *a = &call->argv[i];
        char sha[SHA1_HEX_LEN];
        bool ok = a->len == SHA1_HEX_LEN;
        for (size_t k = 0; ok && k < SHA1_HEX_LEN; k++) {
            char ch = a->ptr[k];
            sha[k] = ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
        }
        rs_int(c, ok && script_cache_exists(sha));
    }
}

static void script_flush(struct conn *c, const struct resp_call *call)
{
    if (call->argc == 3 && !rs_arg_is(&call->argv[2], "sync") &&
        !rs_arg_is(&call->argv[2], "async")) {
        rs_error(c, "ERR SCRIPT FLUSH only support SYNC|ASYNC option");
        return;
    }
    if (call->argc > 3) {
        rs_error(c, "ERR SCRIPT FLUSH only support SYNC|ASYNC option");
        return;
    }
    script_cache_flush();
    rs_ok(c);
}

static void script_help(struct conn *c, const struct resp_call *call)
{
    (void)call;
    static const char *const lines[] = {
        "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "EXISTS <sha1> [<sha1> ...]",
        "    Return information about the existence of the scripts in the script cache.",
        "FLUSH [ASYNC|SYNC]",
        "    Flush the Lua scripts cache.",
        "KILL",
        "    Kill the currently executing Lua script.",
        "LOAD <script>",
        "    Load a script into the scripts cache without executing it.",
        "HELP",
        "    Print this help.",
    };
    size_t n = sizeof(lines) / sizeof(lines[0]);
    rs_array(c, n);
    for (size_t i = 0; i < n; i++)
        rs_simple(c, lines[i]);
}

enum proc_result resp_cmd_script(struct conn *c, const struct resp_call *call)
{
    const struct resp_arg *sub = &call->argv[1];
    const char *name = NULL;
    bool arity_ok = false;
    if (rs_arg_is(sub, "load")) {
        name = "load";
        arity_ok = call->argc == 3;
    } else if (rs_arg_is(sub, "exists")) {
        name = "exists";
        arity_ok = call->argc >= 3;
    } else if (rs_arg_is(sub, "flush")) {
        name = "flush";
        arity_ok = call->argc >= 2;
    } else if (rs_arg_is(sub, "kill")) {
        name = "kill";
        arity_ok = call->argc == 2;
    } else if (rs_arg_is(sub, "help")) {
        name = "help";
        arity_ok = call->argc == 2;
    }
    if (name == NULL) {
        size_t len = strnlen(sub->ptr, sub->len);
        rs_errorf(c, "ERR unknown subcommand '%.*s'. Try SCRIPT HELP.",
                  (int)(len < 128 ? len : 128), sub->ptr);
        return PROC_MORE;
    }
    if (!arity_ok) {
        rs_errorf(c, "ERR wrong number of arguments for 'script|%s' command", name);
        return PROC_MORE;
    }
    if (name[0] == 'l')
        script_load(c, &call->argv[2]);
    else if (name[0] == 'e')
        script_exists(c, call);
    else if (name[0] == 'f')
        script_flush(c, call);
    else if (name[0] == 'k')
        script_kill(c);
    else
        script_help(c, call);
    return PROC_MORE;
}

bool resp_script_allowed_when_busy(const struct resp_cmd *cmd, int argc,
                                   const struct resp_arg *argv)
{
    if (cmd->fn == resp_cmd_script)
        return argc == 2 && rs_arg_is(&argv[1], "kill");
    return cmd->fn == resp_cmd_auth || cmd->fn == resp_cmd_hello || cmd->fn == resp_cmd_quit ||
           cmd->fn == resp_cmd_shutdown;   /* which answers -BUSY itself, but to NOSAVE */
}
