/*
 * Redis transactions (MULTI / EXEC / DISCARD) for the RESP command layer;
 * see resp_multi.c for what is and is not guaranteed.
 */
#ifndef KIOKU_RESP_MULTI_H
#define KIOKU_RESP_MULTI_H

#include <stdbool.h>

#include "core/conn.h"
#include "proto/resp.h"

struct resp_cmd;
struct resp_multi;   /* one open transaction */

/* Commands that run at once even inside MULTI (EXEC, DISCARD, MULTI, WATCH,
 * QUIT); every other command is queued. */
bool resp_multi_runs_now(const struct resp_cmd *cmd);
/* Queue a checked command and answer +QUEUED (or an error that aborts the
 * transaction when it would outgrow its memory bound). */
void resp_multi_queue(struct conn *c, struct resp_multi *m, int argc, const struct resp_arg *argv);
/* A command failed its check inside MULTI: EXEC will answer -EXECABORT. */
void resp_multi_flag_error(struct resp_multi *m);
void resp_multi_free(struct resp_multi *m);

/* proto_resp.c keeps the open transaction in the connection's RESP state. */
struct resp_multi *resp_conn_multi(const struct conn *c);
void resp_conn_set_multi(struct conn *c, struct resp_multi *m);
/* Run one command that already passed its checks; returns the handler's
 * result. */
enum proc_result resp_run(struct conn *c, int argc, const struct resp_arg *argv);

#endif
