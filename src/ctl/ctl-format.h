/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <jansson.h>
#include <stdio.h>

#include "macro.h"

/* Human-readable rendering of hull-agent's documents (docs/AGENT-API.md).
 * Pure: JSON in, text out, so that the exact wording is unit tested. Missing
 * or mistyped fields print as "-" instead of failing, because the operator
 * needs what the agent did send most when something is off. Strings from the
 * agent are printed with control characters replaced, so a message that
 * quotes a remote server cannot drive the terminal. */

/* The label column of "hullctl status", also used to indent continuation
 * lines under it. */
#define CTL_LABEL_WIDTH 17

/* GET /v1/status. -EBADMSG if status is not an object. */
int ctl_format_status(json_t *status, FILE *f);

/* One line summing up an operation object (id, type, version and slot,
 * state, phase and progress or when it finished), and for a failed one a
 * second line "error: MESSAGE (CODE)" indented by indent spaces. A JSON null
 * prints "none". -EBADMSG for anything else that is not an object. */
int ctl_format_operation(json_t *op, unsigned indent, FILE *f);

/* A hook operation's "hook"."output", as the hook wrote it (controls other
 * than newline and tab replaced), ending in a newline; nothing if empty.
 * -EBADMSG if op is not a hook operation. */
int ctl_format_hook_output(json_t *op, FILE *f);

/* The live progress line of a running operation: phase, a bar, percent,
 * done/total (MiB for stage) and the rate (bytes per second; <= 0 to leave
 * it out), truncated to fit in width columns, without a newline. */
void ctl_format_progress(json_t *op, double rate, unsigned width, FILE *f);

/* Percent done of an operation, or -1 if it has no total. */
int ctl_operation_percent(json_t *op);

/* GET /v1/audit: one line per record. -EBADMSG if records is not an array. */
int ctl_format_audit(json_t *records, FILE *f);
