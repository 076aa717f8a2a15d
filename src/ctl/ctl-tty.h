/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "agent-client.h"

/* An interactive admin-container session: POST /v1/debug with "Upgrade:
 * hull-tty" on the agent's socket, then the connection is the terminal.
 * The local terminal (if stdin is one) is put in raw mode for the session
 * and restored. On an HTTP answer other than 101, returns 0 with
 * ret->status and ret->body/raw set (an error document) and
 * *ret_exit_status untouched; after a session, ret->status is 101 and
 * *ret_exit_status the remote command's exit status (255 if the agent did
 * not report one). -errno if the socket cannot be reached. */
int ctl_tty_session(const char *socket_path, const char *body_json, AgentResponse *ret, int *ret_exit_status);
