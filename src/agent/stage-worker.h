/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "agent-api.h"
#include "agent.h"

/* Child side: "hull-agent --stage-worker JOB" (JOB is JSON made by the
 * parent). Returns the process exit status. */
int stage_worker_main(const char *job);

/* Parent side: run one stage into slot (the inactive one) in a child
 * process, updating a->op's phase and progress as it reports them, and
 * clearing slot's record (agent_slot_record_clear()) once it starts being
 * written. 0 with the staged version and the components its manifest
 * records (possibly none), or a negative errno with a message. */
int stage_worker_run(Agent *a, const StageRequest *req, Slot slot, char ret_version[static 65],
                     Components *ret_components, char **ret_error);
