/*
 * RESP COMMAND: COUNT, INFO, DOCS, LIST [FILTERBY ...], GETKEYS, HELP.
 *
 * What it reports is Redis 7.0's for the same command: arity, flags in
 * Redis's order, key positions, ACL categories (derived as Redis derives
 * them) and, for a container (CLIENT, CONFIG, ...), its subcommands as
 * "parent|name" rows of their own. Only the subcommands kioku runs are
 * listed; their metadata is the table below, as Redis gives it. Tips and
 * key specs are empty. Not a hot path.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cmd/resp_cmds.h"
#include "util/glob.h"

/* Redis's ACL categories, in the order COMMAND INFO lists them. */
enum {
    ACL_KEYSPACE = 1 << 0, ACL_READ = 1 << 1, ACL_WRITE = 1 << 2, ACL_SORTEDSET = 1 << 3,
    ACL_HASH = 1 << 4, ACL_STRING = 1 << 5, ACL_BITMAP = 1 << 6, ACL_ADMIN = 1 << 7,
    ACL_FAST = 1 << 8, ACL_SLOW = 1 << 9, ACL_DANGEROUS = 1 << 10, ACL_CONNECTION = 1 << 11,
    ACL_TRANSACTION = 1 << 12, ACL_SCRIPTING = 1 << 13,
};

static const char *const acl_names[] = {
    "keyspace", "read", "write", "sortedset", "hash", "string", "bitmap", "admin",
    "fast", "slow", "dangerous", "connection", "transaction", "scripting",
};
#define NACL (sizeof(acl_names) / sizeof(acl_names[0]))

/* One subcommand: its parent's row gives the group. */
struct subcmd {
    const char *parent, *name;
    int arity;
    uint32_t flags;
    int first_key, last_key, key_step;
};

#define L RC_LOADING
#define S RC_STALE
#define NS RC_NOSCRIPT
static const struct subcmd subcmds[] = {
    {"client", "setname", 3, NS | L | S, 0, 0, 0},
    {"client", "getname", 2, NS | L | S, 0, 0, 0},
    {"client", "id", 2, NS | L | S, 0, 0, 0},
    {"client", "list", -2, RC_ADMIN | NS | L | S, 0, 0, 0},
    {"client", "info", 2, NS | L | S, 0, 0, 0},
    {"client", "kill", -3, RC_ADMIN | NS | L | S, 0, 0, 0},
    {"client", "help", 2, L | S, 0, 0, 0},
    {"command", "count", 2, L | S, 0, 0, 0},
    {"command", "info", -2, L | S, 0, 0, 0},
    {"command", "docs", -2, L | S, 0, 0, 0},
    {"command", "list", -2, L | S, 0, 0, 0},
    {"command", "getkeys", -4, L | S, 0, 0, 0},
    {"command", "help", 2, L | S, 0, 0, 0},
    {"config", "get", -3, RC_ADMIN | NS | L | S, 0, 0, 0},
    {"config", "set", -4, RC_ADMIN | NS | L | S, 0, 0, 0},
    {"config", "resetstat", 2, RC_ADMIN | NS | L | S, 0, 0, 0},
    {"config", "rewrite", 2, RC_ADMIN | NS | L | S, 0, 0, 0},
    {"config", "help", 2, L | S, 0, 0, 0},
    {"function", "flush", -2, RC_WRITE | NS, 0, 0, 0},
    {"function", "list", -2, NS, 0, 0, 0},
    {"function", "help", 2, L | S, 0, 0, 0},
    {"script", "load", 3, NS | S, 0, 0, 0},
    {"script", "exists", -3, NS, 0, 0, 0},
    {"script", "flush", -2, NS, 0, 0, 0},
    {"script", "kill", 2, NS | RC_ALLOW_BUSY, 0, 0, 0},
    {"script", "help", 2, L | S, 0, 0, 0},
    {"object", "encoding", 3, RC_READONLY, 2, 2, 1},
    {"object", "refcount", 3, RC_READONLY, 2, 2, 1},
    {"object", "idletime", 3, RC_READONLY, 2, 2, 1},
    {"object", "freq", 3, RC_READONLY, 2, 2, 1},
    {"object", "help", 2, L | S, 0, 0, 0},
    {"memory", "usage", -3, RC_READONLY, 2, 2, 1},
    {"memory", "help", 2, L | S, 0, 0, 0},
};
#undef L
#undef S
#undef NS
#define NSUB (sizeof(subcmds) / sizeof(subcmds[0]))

/* What COMMAND reports of a command or a subcommand. */
struct row {
    const struct resp_cmd *cmd;     /* the command, or a subcommand's parent */
    const struct subcmd *sub;       /* NULL for a command */
};

/* ACL categories as Redis 7.0 derives them: the group's, the ones its
 * table names for a few commands, then @write, @read, @admin with
 * @dangerous, and @fast or else @slow from the flags. A container has
 * only @slow: its subcommands carry the rest. */
static unsigned acl_categories(const struct row *r)
{
    static const struct { const char *group; unsigned cat; } groups[] = {
        {"generic", ACL_KEYSPACE}, {"string", ACL_STRING}, {"bitmap", ACL_BITMAP},
        {"hash", ACL_HASH}, {"sorted-set", ACL_SORTEDSET}, {"connection", ACL_CONNECTION},
        {"transactions", ACL_TRANSACTION}, {"scripting", ACL_SCRIPTING},
    };
    static const struct { const char *name; unsigned cat; } named[] = {
        {"dbsize", ACL_KEYSPACE}, {"flushall", ACL_KEYSPACE | ACL_DANGEROUS},
        {"flushdb", ACL_KEYSPACE | ACL_DANGEROUS}, {"keys", ACL_DANGEROUS},
        {"info", ACL_DANGEROUS}, {"command", ACL_CONNECTION},
    };
    uint32_t flags = r->sub != NULL ? r->sub->flags : r->cmd->flags;
    unsigned cat = 0;

    if (flags & RC_CONTAINER)
        return ACL_SLOW;
    for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++)
        if (strcmp(r->cmd->group, groups[i].group) == 0)
            cat |= groups[i].cat;
    for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++)
        if (strcmp(r->cmd->name, named[i].name) == 0)
            cat |= named[i].cat;
    if (flags & RC_WRITE)
        cat |= ACL_WRITE;
    if ((flags & RC_READONLY) && !(cat & ACL_SCRIPTING))
        cat |= ACL_READ;
    if (flags & RC_ADMIN)
        cat |= ACL_ADMIN | ACL_DANGEROUS;
    cat |= (flags & RC_FAST) ? ACL_FAST : ACL_SLOW;
    return cat;
}

/* "parent|name" or the command's name. */
static size_t row_name(const struct row *r, char *buf, size_t cap)
{
    int n = r->sub != NULL ? snprintf(buf, cap, "%s|%s", r->sub->parent, r->sub->name)
                           : snprintf(buf, cap, "%s", r->cmd->name);
    return n < 0 ? 0 : ((size_t)n < cap ? (size_t)n : cap - 1);
}

static void info_row(struct conn *c, const struct row *r)
{
    /* Redis's order; movablekeys goes just before allow_busy. */
    static const struct { uint32_t flag; const char *name; } names[] = {
        {RC_WRITE, "write"}, {RC_READONLY, "readonly"}, {RC_DENYOOM, "denyoom"},
        {RC_ADMIN, "admin"}, {RC_NOSCRIPT, "noscript"}, {RC_LOADING, "loading"},
        {RC_STALE, "stale"}, {RC_SKIP_MONITOR, "skip_monitor"},
        {RC_SKIP_SLOWLOG, "skip_slowlog"}, {RC_FAST, "fast"}, {RC_NOAUTH, "no_auth"},
        {RC_NO_MANDATORY_KEYS, "no_mandatory_keys"}, {RC_NO_MULTI, "no_multi"},
        {RC_ALLOW_BUSY, "allow_busy"},
    };
    const struct resp_cmd *cmd = r->cmd;
    const struct subcmd *sub = r->sub;
    bool container = sub == NULL && (cmd->flags & RC_CONTAINER);
    uint32_t flags = sub != NULL ? sub->flags : container ? 0 : cmd->flags;
    bool movable = sub == NULL && cmd->numkeys_at != 0;
    int first = sub != NULL ? sub->first_key : cmd->first_key;
    int last = sub != NULL ? sub->last_key : cmd->last_key;
    int step = sub != NULL ? sub->key_step : cmd->key_step;
    unsigned cat = acl_categories(r);
    char name[64];
    size_t n = 0, nlen = row_name(r, name, sizeof(name));

    /* Keys found through numkeys are not shown; a destination before them
     * is. A container's keys are its subcommands'. */
    if (container)
        first = last = step = 0;
    else if (movable && first > 0)
        last = first, step = 1;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        n += (flags & names[i].flag) != 0;
    rs_array(c, 10);
    rs_bulk(c, name, nlen);
    rs_int(c, sub != NULL ? sub->arity : cmd->arity);
    rs_set(c, n + movable);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (movable && names[i].flag == RC_ALLOW_BUSY)
            rs_simple(c, "movablekeys");
        if (flags & names[i].flag)
            rs_simple(c, names[i].name);
    }
    rs_int(c, first);
    rs_int(c, last);
    rs_int(c, step);
    n = 0;
    for (size_t i = 0; i < NACL; i++)
        n += (cat >> i) & 1;
    rs_set(c, n);
    for (size_t i = 0; i < NACL; i++) {
        if ((cat >> i) & 1) {
            char cname[32];
            snprintf(cname, sizeof(cname), "@%s", acl_names[i]);
            rs_simple(c, cname);
        }
    }
    rs_set(c, 0);     /* tips */
    rs_array(c, 0);   /* key specs */
    n = 0;
    for (size_t i = 0; sub == NULL && i < NSUB; i++)
        n += strcmp(subcmds[i].parent, cmd->name) == 0;
    rs_array(c, n);
    if (n == 0)
        return;
    for (size_t i = 0; i < NSUB; i++) {
        if (strcmp(subcmds[i].parent, cmd->name) == 0) {
            struct row sr = {cmd, &subcmds[i]};
            info_row(c, &sr);
        }
    }
}

/* A command by name, or "parent|sub" for a subcommand: false if none. */
static bool row_find(const char *name, size_t len, struct row *r)
{
    const char *bar = memchr(name, '|', len);

    r->sub = NULL;
    r->cmd = resp_cmd_find(name, bar != NULL ? (size_t)(bar - name) : len);
    if (r->cmd == NULL || bar == NULL)
        return r->cmd != NULL;
    const char *sn = bar + 1;
    size_t slen = len - (size_t)(sn - name);
    for (size_t i = 0; i < NSUB; i++) {
        if (strcmp(subcmds[i].parent, r->cmd->name) == 0 && strlen(subcmds[i].name) == slen &&
            strncasecmp(subcmds[i].name, sn, slen) == 0) {
            r->sub = &subcmds[i];
            return true;
        }
    }
    return false;
}

static void command_docs_one(struct conn *c, const struct resp_cmd *cmd)
{
    rs_bulk_str(c, cmd->name);
    rs_map(c, 3);
    rs_bulk_str(c, "summary");
    rs_bulk_str(c, cmd->summary);
    rs_bulk_str(c, "since");
    rs_bulk_str(c, "1.0.0");
    rs_bulk_str(c, "group");
    rs_bulk_str(c, cmd->group);
}

static void command_all(struct conn *c, const struct resp_call *call)
{
    size_t n;
    const struct resp_cmd *t = resp_cmd_table(&n);
    (void)call;
    rs_array(c, n);
    for (size_t i = 0; i < n; i++) {
        struct row r = {&t[i], NULL};
        info_row(c, &r);
    }
}

static void command_count(struct conn *c, const struct resp_call *call)
{
    size_t n;
    (void)call;
    resp_cmd_table(&n);
    rs_int(c, (int64_t)n);
}

static void command_info(struct conn *c, const struct resp_call *call)
{
    if (call->argc == 2) {
        command_all(c, call);
        return;
    }
    rs_array(c, (size_t)call->argc - 2);
    for (int i = 2; i < call->argc; i++) {
        struct row r;
        if (row_find(call->argv[i].ptr, call->argv[i].len, &r))
            info_row(c, &r);
        else
            rs_null(c);
    }
}

static void command_docs(struct conn *c, const struct resp_call *call)
{
    size_t n, found = 0;
    const struct resp_cmd *t = resp_cmd_table(&n);
    if (call->argc == 2) {
        rs_map(c, n);
        for (size_t i = 0; i < n; i++)
            command_docs_one(c, &t[i]);
        return;
    }
    for (int i = 2; i < call->argc; i++)
        found += resp_cmd_find(call->argv[i].ptr, call->argv[i].len) != NULL;
    rs_map(c, found);
    for (int i = 2; i < call->argc; i++) {
        const struct resp_cmd *cmd = resp_cmd_find(call->argv[i].ptr, call->argv[i].len);
        if (cmd != NULL)
            command_docs_one(c, cmd);
    }
}

/* COMMAND LIST's filter: none, a module (kioku has none), an ACL category
 * or a name pattern (matched against "parent|sub" for a subcommand). */
struct list_filter {
    enum { F_NONE, F_MODULE, F_ACLCAT, F_PATTERN } by;
    unsigned cat;       /* F_ACLCAT; 0: no such category */
    const struct resp_arg *pattern;
};

static bool list_keep(const struct list_filter *f, const struct row *r)
{
    char name[64];
    size_t len;

    switch (f->by) {
    case F_NONE: return true;
    case F_MODULE: return false;
    case F_ACLCAT: return f->cat != 0 && (acl_categories(r) & f->cat) != 0;
    case F_PATTERN:
        len = row_name(r, name, sizeof(name));
        return glob_match(f->pattern->ptr, f->pattern->len, name, len, true);
    }
    return false;
}

/* The commands and subcommands the filter keeps: counted, and with emit
 * written as bulk strings. */
static size_t list_walk(struct conn *c, const struct list_filter *f, bool emit)
{
    size_t n, kept = 0;
    const struct resp_cmd *t = resp_cmd_table(&n);
    char name[64];

    for (size_t i = 0; i < n; i++) {
        struct row r = {&t[i], NULL};
        if (list_keep(f, &r)) {
            kept++;
            if (emit)
                rs_bulk(c, name, row_name(&r, name, sizeof(name)));
        }
        for (size_t k = 0; k < NSUB; k++) {
            if (strcmp(subcmds[k].parent, t[i].name) != 0)
                continue;
            struct row sr = {&t[i], &subcmds[k]};
            if (list_keep(f, &sr)) {
                kept++;
                if (emit)
                    rs_bulk(c, name, row_name(&sr, name, sizeof(name)));
            }
        }
    }
    return kept;
}

/* COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN pattern] */
static void command_list(struct conn *c, const struct resp_call *call)
{
    struct list_filter f = {F_NONE, 0, NULL};

    if (call->argc != 2) {
        if (call->argc != 5 || !rs_arg_is(&call->argv[2], "filterby")) {
            rs_error(c, RS_ERR_SYNTAX);
            return;
        }
        const struct resp_arg *by = &call->argv[3], *what = &call->argv[4];
        if (rs_arg_is(by, "module")) {
            f.by = F_MODULE;
        } else if (rs_arg_is(by, "aclcat")) {
            f.by = F_ACLCAT;
            for (size_t i = 0; i < NACL; i++)
                if (rs_arg_is(what, acl_names[i]))
                    f.cat = 1u << i;
        } else if (rs_arg_is(by, "pattern")) {
            f.by = F_PATTERN;
            f.pattern = what;
        } else {
            rs_error(c, RS_ERR_SYNTAX);
            return;
        }
    }
    rs_array(c, list_walk(c, &f, false));
    list_walk(c, &f, true);
}

static void command_getkeys(struct conn *c, const struct resp_call *call)
{
    const struct resp_cmd *cmd = resp_cmd_find(call->argv[2].ptr, call->argv[2].len);
    int argc = call->argc - 2;
    const struct resp_arg *argv = call->argv + 2;
    struct resp_keys k;
    size_t n = 0;
    int i;
    if (cmd == NULL) {
        rs_error(c, "ERR Invalid command specified");
        return;
    }
    if (!resp_cmd_has_keys(cmd)) {
        rs_error(c, "ERR The command has no key arguments");
        return;
    }
    if ((cmd->arity > 0 && argc != cmd->arity) || (cmd->arity < 0 && argc < -cmd->arity)) {
        rs_error(c, "ERR Invalid number of arguments specified for command");
        return;
    }
    resp_keys_begin(&k, cmd, argc, argv);
    if (k.bad) {
        rs_error(c, "ERR Invalid arguments specified for command");
        return;
    }
    while (resp_keys_next(&k, &i))
        n++;
    rs_array(c, n);
    resp_keys_begin(&k, cmd, argc, argv);
    while (resp_keys_next(&k, &i))
        rs_bulk(c, argv[i].ptr, argv[i].len);
}

static void command_help(struct conn *c, const struct resp_call *call)
{
    static const char *const lines[] = {
        "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "(no subcommand)", "    Return details about all commands.",
        "COUNT", "    Return the total number of commands in this server.",
        "LIST", "    Return a list of all commands in this server.",
        "INFO [<command-name> ...]", "    Return details about the given commands.",
        "DOCS [<command-name> ...]", "    Return documentation details about the given commands.",
        "GETKEYS <full-command>", "    Return the keys from a full command.",
        "HELP", "    Print this help.", NULL,
    };
    (void)call;
    resp_reply_help(c, lines);
}

static const struct resp_sub command_subs[] = {
    {"count", 2, command_count}, {"info", -2, command_info}, {"docs", -2, command_docs},
    {"list", -2, command_list}, {"getkeys", -4, command_getkeys}, {"help", 2, command_help},
};

enum proc_result resp_cmd_command(struct conn *c, const struct resp_call *call)
{
    if (call->argc == 1)
        command_all(c, call);
    else
        resp_run_sub(c, call, command_subs, sizeof(command_subs) / sizeof(command_subs[0]),
                     "COMMAND");
    return PROC_MORE;
}
