/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "macro.h"

/* HTTP/JSON client of hull-agent's API (docs/AGENT-API.md) over its Unix
 * socket. One connection is kept open and reused across calls, which matters
 * when polling an operation twice a second. */

#define AGENT_DEFAULT_SOCKET "/run/hull/agent.sock"

/* The API has no reason to send more; a bigger body is a broken or hostile
 * peer, not data to buffer. */
#define AGENT_BODY_MAX (16U * 1024U * 1024U)

typedef struct AgentClient AgentClient;

typedef struct AgentResponse {
        long status;            /* HTTP status */
        char *raw;              /* body as received, NUL-terminated ("" if none) */
        size_t raw_size;
        json_t *body;           /* parsed body; NULL if the body was empty */
} AgentResponse;

void agent_response_done(AgentResponse *r);

int agent_client_new(const char *socket_path, AgentClient **ret) _warn_unused_result_;
AgentClient *agent_client_free(AgentClient *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(AgentClient *, agent_client_free);

/* Seconds a whole call may take; 0 means no limit. Default 300. */
void agent_client_set_timeout(AgentClient *c, long seconds);

/* Send METHOD path (e.g. "/v1/status") with body (NULL: no body) and wait
 * for the answer. Any HTTP status counts as an answer: the caller looks at
 * ret->status and the error object in ret->body.
 *
 * Errors: the socket cannot be reached: the errno of connect() (-ENOENT,
 * -ECONNREFUSED, -EACCES, ...) and agent_client_unreachable() is true; the
 * body is over AGENT_BODY_MAX: -E2BIG; a body that is not JSON: -EBADMSG;
 * anything else in the transfer: -EIO. agent_client_error() describes the
 * last failure either way. */
int agent_client_call(AgentClient *c, const char *method, const char *path, json_t *body,
                    AgentResponse *ret) _warn_unused_result_;

bool agent_client_unreachable(const AgentClient *c);
const char *agent_client_error(const AgentClient *c);
const char *agent_client_socket(const AgentClient *c);

/* The "error" object of an error body: code and message, either of which
 * may be NULL if the body does not have them. Either out-parameter may be
 * NULL when only the other is wanted. */
void agent_response_error(const AgentResponse *r, const char **ret_code, const char **ret_message);
