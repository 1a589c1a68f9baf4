/*
 * MULTI / EXEC / DISCARD: Redis transactions as cache clients use them
 * (redis-py's pipeline() wraps its commands in MULTI ... EXEC by default).
 *
 * After MULTI, every command except EXEC, DISCARD, MULTI, WATCH and QUIT is
 * checked (name, arity, key lengths) and queued, and answered +QUEUED; a
 * command that fails the check is answered with its error and marks the
 * transaction so that EXEC refuses it (-EXECABORT), as Redis 7 does. EXEC
 * then runs the queued commands in order, back to back on this connection's
 * worker, and answers one array with their replies.
 *
 * Isolation is weaker than Redis's: each command is atomic on its own, but
 * a command from a client on another worker thread may run between two
 * commands of a transaction. For that reason WATCH (optimistic locking,
 * which depends on that isolation) is refused with an error rather than
 * half-honoured; compare-and-set is SET NX or memcached's CAS.
 *
 * Queued commands are copied into one growing buffer per transaction as
 * (argc, then each argument's length and bytes), bounded by MULTI_MAX_BYTES
 * so a client cannot make a transaction hold unbounded memory.
 */
#include "cmd/resp_multi.h"

#include <stdlib.h>
#include <string.h>

#include "cmd/resp_cmds.h"

#define MULTI_MAX_BYTES ((size_t)64 * 1024 * 1024)

struct resp_multi {
    char *buf;
    size_t len, cap;
    uint32_t ncmds;
    uint32_t max_argc;
    bool dirty;               /* a command failed its check: EXEC aborts */
};

void resp_multi_free(struct resp_multi *m)
{
    if (m != NULL) {
        free(m->buf);
        free(m);
    }
}

bool resp_multi_runs_now(const struct resp_cmd *cmd)
{
    return cmd->fn == resp_cmd_exec || cmd->fn == resp_cmd_discard ||
           cmd->fn == resp_cmd_multi || cmd->fn == resp_cmd_watch || cmd->fn == resp_cmd_quit;
}

void resp_multi_flag_error(struct resp_multi *m)
{
    m->dirty = true;
}

static bool reserve(struct resp_multi *m, size_t n)
{
    if (m->cap - m->len >= n)
        return true;
    if (n > MULTI_MAX_BYTES - m->len)
        return false;
    size_t cap = m->cap != 0 ? m->cap : 4096;
    while (cap - m->len < n)
        cap *= 2;
    if (cap > MULTI_MAX_BYTES)
        cap = MULTI_MAX_BYTES;
    char *p = realloc(m->buf, cap);
    if (p == NULL)
        return false;
    m->buf = p;
    m->cap = cap;
    return true;
}

static void put_u32(struct resp_multi *m, uint32_t v)
{
    memcpy(m->buf + m->len, &v, sizeof(v));
    m->len += sizeof(v);
}

void resp_multi_queue(struct conn *c, struct resp_multi *m, int argc, const struct resp_arg *argv)
{
    size_t need = sizeof(uint32_t) * (1 + (size_t)argc);
    for (int i = 0; i < argc; i++)
        need += argv[i].len;
    if (!reserve(m, need)) {
        m->dirty = true;
        rs_error(c, "ERR transaction too large: kioku queues at most 64 MiB of commands");
        return;
    }
    put_u32(m, (uint32_t)argc);
    for (int i = 0; i < argc; i++) {
        put_u32(m, (uint32_t)argv[i].len);
        memcpy(m->buf + m->len, argv[i].ptr, argv[i].len);
        m->len += argv[i].len;
    }
    m->ncmds++;
    if ((uint32_t)argc > m->max_argc)
        m->max_argc = (uint32_t)argc;
    rs_simple(c, "QUEUED");
}

enum proc_result resp_cmd_multi(struct conn *c, const struct resp_call *call)
{
    (void)call;
    if (resp_conn_multi(c) != NULL) {
        rs_error(c, "ERR MULTI calls can not be nested");
        return PROC_MORE;
    }
    struct resp_multi *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        rs_error(c, RS_ERR_OOM);
        return PROC_MORE;
    }
    resp_conn_set_multi(c, m);
    rs_ok(c);
    return PROC_MORE;
}

enum proc_result resp_cmd_discard(struct conn *c, const struct resp_call *call)
{
    (void)call;
    struct resp_multi *m = resp_conn_multi(c);
    if (m == NULL) {
        rs_error(c, "ERR DISCARD without MULTI");
        return PROC_MORE;
    }
    resp_conn_set_multi(c, NULL);
    resp_multi_free(m);
    rs_ok(c);
    return PROC_MORE;
}

static uint32_t get_u32(const char **p)
{
    uint32_t v;
    memcpy(&v, *p, sizeof(v));
    *p += sizeof(v);
    return v;
}

enum proc_result resp_cmd_exec(struct conn *c, const struct resp_call *call)
{
    (void)call;
    struct resp_multi *m = resp_conn_multi(c);
    if (m == NULL) {
        rs_error(c, "ERR EXEC without MULTI");
        return PROC_MORE;
    }
    /* Detached first: the queued commands run, they are not queued again. */
    resp_conn_set_multi(c, NULL);
    if (m->dirty) {
        resp_multi_free(m);
        rs_error(c, "EXECABORT Transaction discarded because of previous errors.");
        return PROC_MORE;
    }
    struct resp_arg *argv = calloc(m->max_argc > 0 ? m->max_argc : 1, sizeof(*argv));
    if (argv == NULL) {
        resp_multi_free(m);
        rs_error(c, RS_ERR_OOM);
        return PROC_MORE;
    }
    enum proc_result res = PROC_MORE;
    rs_array(c, m->ncmds);
    const char *p = m->buf;
    for (uint32_t k = 0; k < m->ncmds; k++) {
        uint32_t argc = get_u32(&p);
        for (uint32_t i = 0; i < argc; i++) {
            argv[i].len = get_u32(&p);
            argv[i].ptr = p;
            p += argv[i].len;
        }
        /* Checked when queued; a command asking to close (none can be
         * queued now) closes after the whole reply. */
        if (resp_run(c, (int)argc, argv) == PROC_CLOSE)
            res = PROC_CLOSE;
    }
    free(argv);
    resp_multi_free(m);
    return res;
}

enum proc_result resp_cmd_watch(struct conn *c, const struct resp_call *call)
{
    (void)call;
    if (resp_conn_multi(c) != NULL)
        rs_error(c, "ERR WATCH inside MULTI is not allowed");
    else
        rs_error(c, "ERR WATCH is not supported: kioku does not isolate transactions "
                    "(use SET NX or memcached CAS)");
    return PROC_MORE;
}

enum proc_result resp_cmd_unwatch(struct conn *c, const struct resp_call *call)
{
    (void)call;
    rs_ok(c);   /* nothing is ever watched */
    return PROC_MORE;
}
