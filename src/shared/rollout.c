/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rollout.h"

#define MESSAGE_MAX 512

static const char *const node_phase_names[_NODE_PHASE_MAX] = {
        [NODE_PHASE_IDLE] = "Idle",
        [NODE_PHASE_STAGING] = "Staging",
        [NODE_PHASE_DRAINING] = "Draining",
        [NODE_PHASE_REBOOTING] = "Rebooting",
        [NODE_PHASE_VERIFYING] = "Verifying",
        [NODE_PHASE_DONE] = "Done",
        [NODE_PHASE_FAILED] = "Failed",
        [NODE_PHASE_ROLLED_BACK] = "RolledBack",
};

const char *node_phase_to_string(NodePhase p) {
        if (p < 0 || p >= _NODE_PHASE_MAX)
                return NULL;
        return node_phase_names[p];
}

NodePhase node_phase_from_string(const char *s) {
        if (!s)
                return _NODE_PHASE_INVALID;
        for (int i = 0; i < _NODE_PHASE_MAX; i++)
                if (streq(s, node_phase_names[i]))
                        return (NodePhase) i;
        return _NODE_PHASE_INVALID;
}

static const char *const hold_names[] = {
        [ROLLOUT_GO] = "Go",
        [ROLLOUT_COMPLETE] = "Complete",
        [ROLLOUT_PAUSED] = "Paused",
        [ROLLOUT_FAILURE_BUDGET] = "FailureBudgetExceeded",
        [ROLLOUT_WINDOW_CLOSED] = "WindowClosed",
        [ROLLOUT_BATCH_GATE_MANUAL] = "WaitingForApproval",
        [ROLLOUT_BATCH_GATE_TIMER] = "BatchPause",
        [ROLLOUT_WAITING] = "Waiting",
        [ROLLOUT_VERSION_SKEW] = "VersionSkew",
        [ROLLOUT_VERSION_UNKNOWN] = "WaitingForAPIServerVersion",
        [ROLLOUT_IMAGE_TOO_NEW] = "ImageTooNew",
        [ROLLOUT_WAITING_FOR_PROMOTION] = "WaitingForPromotion",
};

const char *rollout_hold_to_string(RolloutHold h) {
        if ((unsigned) h >= ELEMENTSOF(hold_names))
                return NULL;
        return hold_names[h];
}

void rollout_plan_done(RolloutPlan *p) {
        if (!p)
                return;
        free(p->choose);
        free(p->quarantine);
        free(p->message);
        *p = (RolloutPlan) {};
}

static bool str_eq(const char *a, const char *b) {
        return a && b && streq(a, b);
}

static bool phase_terminal(NodePhase p) {
        return p == NODE_PHASE_DONE || p == NODE_PHASE_FAILED || p == NODE_PHASE_ROLLED_BACK;
}

/* Whether the node runs what the spec wants. */
static bool at_target(const OsSpec *s, const RolloutNode *n) {
        bool config_ok = !s->config || n->config_generation >= s->config_generation;

        if (s->operation == OS_OPERATION_CONFIG)
                return config_ok;
        return str_eq(n->version, s->version) && config_ok;
}

/* A task on the node that hull-node has not finished. hull-node does not
 * know about quarantine: it works on such a task until it is done, failed
 * or withdrawn (the annotation removed), and may cordon, drain and reboot
 * the node any time until then. */
static bool node_busy(const RolloutNode *n) {
        return n->task_id && !(str_eq(n->phase_task_id, n->task_id) && phase_terminal(n->phase));
}

RolloutNodeState rollout_node_state(const RolloutInput *in, const RolloutNode *n) {
        bool phase_ours = str_eq(n->phase_task_id, in->task_id);

        if (n->quarantined)
                return ROLLOUT_NODE_FAILED;
        if (phase_ours && (n->phase == NODE_PHASE_FAILED || n->phase == NODE_PHASE_ROLLED_BACK))
                return ROLLOUT_NODE_FAILED;

        /* A task on the node that hull-node has not finished, whichever
         * rollout gave it: the node is busy. */
        if (node_busy(n))
                return ROLLOUT_NODE_IN_PROGRESS;

        if (at_target(in->spec, n))
                return ROLLOUT_NODE_UPDATED;
        /* Done with our task, yet not at the target: giving it the same task
         * again would change nothing, so it failed. */
        if (phase_ours && n->phase == NODE_PHASE_DONE)
                return ROLLOUT_NODE_FAILED;
        return ROLLOUT_NODE_PENDING;
}

/* Insertion sort by name (ties by index): deterministic, no global for a
 * comparator, and node lists are small. */
static void sort_by_name(const RolloutNode *nodes, size_t *idx, size_t n) {
        for (size_t i = 1; i < n; i++)
                for (size_t j = i; j > 0; j--) {
                        const RolloutNode *x = nodes + idx[j - 1], *y = nodes + idx[j];
                        int c = strcmp(x->name ?: "", y->name ?: "");
                        if (c < 0 || (c == 0 && idx[j - 1] < idx[j]))
                                break;
                        size_t t = idx[j];
                        idx[j] = idx[j - 1];
                        idx[j - 1] = t;
                }
}

static void format_time(int64_t t, char buf[static 32]) {
        time_t tt = (time_t) t;
        struct tm tm;

        if (!gmtime_r(&tt, &tm) || strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                (void) snprintf(buf, 32, "@%" PRId64, t);
}

/* Why the promotion gate holds, or NULL when it lets the rollout start.
 * *ret_at is when it will let it start if nothing changes (0: not known). */
static const char *promotion_hold(const RolloutInput *in, int64_t *ret_at) {
        const OsSpec *s = in->spec;
        const RolloutPromotion *a = &in->after;

        *ret_at = 0;
        if (!a->exists)
                return "missing";
        if (!str_eq(a->version, s->version))
                return "version";
        if (!a->complete)
                return "incomplete";
        if (a->desired <= 0)
                return "empty";
        if (in->now < a->complete_since + s->after_soak_seconds) {
                *ret_at = a->complete_since + s->after_soak_seconds;
                return "soaking";
        }
        return NULL;
}

_printf_(3, 4) static void msg_append(char *buf, size_t *len, const char *fmt, ...) {
        va_list ap;
        int k;

        if (*len >= MESSAGE_MAX - 1)
                return;
        va_start(ap, fmt);
        k = vsnprintf(buf + *len, MESSAGE_MAX - *len, fmt, ap);
        va_end(ap);
        if (k > 0)
                *len = MIN(*len + (size_t) k, (size_t) MESSAGE_MAX - 1);
}

int rollout_plan(const RolloutInput *in, RolloutPlan *ret) {
        _cleanup_free_ RolloutNodeState *state = NULL;
        _cleanup_free_ int64_t *cum = NULL;
        _cleanup_free_ size_t *choose = NULL, *quarantine = NULL, *cand = NULL;
        const OsSpec *s;
        RolloutPlan p = {};
        int64_t max_unavailable, progressed, cur, in_progress_ours = 0, want = 0, requeue = 0;
        size_t n_choose = 0, n_quarantine = 0, n_cand = 0;
        bool window_open = true, started = false;
        const char *promotion = NULL;
        int64_t gate_at = 0;
        int64_t next_open = 0;
        char msg[MESSAGE_MAX], tbuf[32];
        size_t ml = 0;
        const char *why_waiting = NULL;
        int r;

        if (!in || !in->spec || !ret || (in->n_nodes > 0 && !in->nodes))
                return -EINVAL;
        s = in->spec;

        if (in->n_nodes > 0) {
                state = calloc(in->n_nodes, sizeof(RolloutNodeState));
                choose = calloc(in->n_nodes, sizeof(size_t));
                quarantine = calloc(in->n_nodes, sizeof(size_t));
                cand = calloc(in->n_nodes, sizeof(size_t));
                if (!state || !choose || !quarantine || !cand)
                        return -ENOMEM;
        }

        if (s->window.set) {
                r = os_window_open(&s->window, in->now, &window_open, &next_open);
                if (r < 0)
                        return r;
        }

        p.desired = (int64_t) in->n_nodes;

        /* States, quarantine, counts. */
        for (size_t i = 0; i < in->n_nodes; i++) {
                const RolloutNode *n = in->nodes + i;

                state[i] = rollout_node_state(in, n);
                /* Given this rollout's task, now or before (hull-node
                 * removes the annotation once Done, the OSNode keeps the
                 * id): the start gates are passed. */
                if (str_eq(n->task_id, in->task_id) || str_eq(n->phase_task_id, in->task_id))
                        started = true;
                if (state[i] == ROLLOUT_NODE_IN_PROGRESS && n->task_chosen_at > 0) {
                        int64_t deadline = n->task_chosen_at + s->node_timeout_seconds;
                        if (in->now > deadline) {
                                quarantine[n_quarantine++] = i;
                                state[i] = ROLLOUT_NODE_FAILED;
                        } else if (requeue == 0 || deadline + 1 < requeue)
                                requeue = deadline + 1; /* look again when it would time out */
                }
                switch (state[i]) {
                case ROLLOUT_NODE_UPDATED:
                        p.updated++;
                        break;
                case ROLLOUT_NODE_IN_PROGRESS:
                        p.in_progress++;
                        if (str_eq(n->task_id, in->task_id))
                                in_progress_ours++;
                        break;
                case ROLLOUT_NODE_FAILED:
                        p.failed++;
                        break;
                case ROLLOUT_NODE_PENDING:
                        break;
                }
                /* A quarantined node counts as failed, but while its task
                 * is unfinished it is still unavailable: counting it as
                 * free would let the operator start another node, and then
                 * both drain at once when the quarantined one gets on. */
                if (state[i] == ROLLOUT_NODE_IN_PROGRESS || node_busy(n) || !n->ready || n->unschedulable)
                        p.unavailable++;
        }
        p.unavailable += MAX(in->unavailable_elsewhere, (int64_t) 0);
        max_unavailable = os_int_or_percent_resolve(&s->max_unavailable, p.desired, true);
        progressed = p.updated + in_progress_ours + p.failed;

        /* Batches: cumulative targets. */
        p.n_batches = s->n_batches > 0 ? (int64_t) s->n_batches : 1;
        cum = calloc((size_t) p.n_batches, sizeof(int64_t));
        if (!cum)
                return -ENOMEM;
        for (int64_t k = 0, sum = 0; k < p.n_batches; k++) {
                if (k == p.n_batches - 1)
                        sum = p.desired;
                else {
                        sum += os_int_or_percent_resolve(&s->batches[k].nodes, p.desired, true);
                        sum = MIN(sum, p.desired);
                }
                cum[k] = sum;
        }
        /* The batch the next nodes come from. */
        cur = p.n_batches - 1;
        for (int64_t k = 0; k < p.n_batches; k++)
                if (progressed < cum[k]) {
                        cur = k;
                        break;
                }

        /* Batches seen finished: every batch before the current one, once
         * no node of this rollout is in progress. Recorded whatever the
         * hold, so that the time is when it happened. */
        p.completed_batches = MAX(MIN(in->completed_batches, p.n_batches), 0);
        p.batch_completed_at = in->batch_completed_at;
        {
                int64_t reached = cur;
                if (p.updated == p.desired)
                        reached = p.n_batches;
                if (reached > p.completed_batches && in_progress_ours == 0) {
                        p.completed_batches = reached;
                        p.batch_completed_at = in->now;
                }
        }
        /* For the status: the batch being worked on, which is the oldest
         * one not seen finished while its last nodes are in progress. */
        p.current_batch = MIN(cur, p.completed_batches);

        /* Holds, most important first. */
        if (p.updated == p.desired)
                p.hold = ROLLOUT_COMPLETE;
        else if (in->skew_refusal)
                /* Before everything that would only delay it: a refused
                 * image stays refused until the spec or the cluster
                 * changes. */
                p.hold = ROLLOUT_VERSION_SKEW;
        else if (s->failure_budget > 0 && p.failed >= s->failure_budget)
                p.hold = ROLLOUT_FAILURE_BUDGET;
        else if (s->paused)
                p.hold = ROLLOUT_PAUSED;
        else if (s->operation == OS_OPERATION_UPGRADE && !started && s->min_image_age_seconds > 0 &&
                 s->image.has_created && in->now < s->image.created + s->min_image_age_seconds) {
                /* The start gates: only an upgrade (a rollback is an
                 * emergency, a config carries no image), and only until
                 * the first node got the task. Once started, the rollout
                 * finishes whatever the other OS does next. */
                p.hold = ROLLOUT_IMAGE_TOO_NEW;
                gate_at = s->image.created + s->min_image_age_seconds;
                if (requeue == 0 || gate_at < requeue)
                        requeue = gate_at;
        } else if (s->operation == OS_OPERATION_UPGRADE && !started && s->after_os &&
                   (promotion = promotion_hold(in, &gate_at))) {
                p.hold = ROLLOUT_WAITING_FOR_PROMOTION;
                if (gate_at > 0 && (requeue == 0 || gate_at < requeue))
                        requeue = gate_at;
        } else if (!window_open) {
                p.hold = ROLLOUT_WINDOW_CLOSED;
                if (next_open > 0 && (requeue == 0 || next_open < requeue))
                        requeue = next_open;
        } else if (p.completed_batches < cur) {
                p.hold = ROLLOUT_WAITING;
                why_waiting = "waiting for the batch to finish";
        } else if (cur > 0 && s->batches[cur - 1].pause == OS_PAUSE_MANUAL && s->approved_batches < cur)
                p.hold = ROLLOUT_BATCH_GATE_MANUAL;
        else if (cur > 0 && s->batches[cur - 1].pause == OS_PAUSE_DURATION &&
                 in->now < p.batch_completed_at + s->batches[cur - 1].pause_seconds) {
                int64_t at = p.batch_completed_at + s->batches[cur - 1].pause_seconds;
                p.hold = ROLLOUT_BATCH_GATE_TIMER;
                if (requeue == 0 || at < requeue)
                        requeue = at;
        } else if (in->skew_unknown) {
                int64_t at = in->now + ROLLOUT_SKEW_RETRY_SECONDS;
                p.hold = ROLLOUT_VERSION_UNKNOWN;
                if (requeue == 0 || at < requeue)
                        requeue = at;
        } else {
                int64_t batch_room = cum[cur] - progressed;
                int64_t unavail_room = max_unavailable - p.unavailable;

                want = MIN(batch_room, unavail_room);
                for (size_t i = 0; i < in->n_nodes; i++)
                        if (state[i] == ROLLOUT_NODE_PENDING && in->nodes[i].ready && !in->nodes[i].unschedulable)
                                cand[n_cand++] = i;
                sort_by_name(in->nodes, cand, n_cand);
                for (size_t i = 0; i < n_cand && (int64_t) n_choose < want; i++)
                        choose[n_choose++] = cand[i];

                if (n_choose > 0)
                        p.hold = ROLLOUT_GO;
                else {
                        p.hold = ROLLOUT_WAITING;
                        if (unavail_room <= 0)
                                why_waiting = "maxUnavailable reached";
                        else if (batch_room <= 0 && p.in_progress > 0)
                                why_waiting = "waiting for nodes in progress";
                        else if (batch_room <= 0)
                                why_waiting = "no node left to update";
                        else
                                why_waiting = "no pending node is ready and schedulable";
                }
        }

        /* The message. */
        msg[0] = '\0';
        if (p.hold == ROLLOUT_COMPLETE)
                msg_append(msg, &ml, "all %" PRId64 " nodes updated", p.desired);
        else {
                msg_append(msg, &ml, "batch %" PRId64 "/%" PRId64 ": %" PRId64 " of %" PRId64 " nodes updated, %" PRId64
                           " in progress",
                           p.current_batch + 1, p.n_batches, p.updated, p.desired, p.in_progress);
                if (p.failed > 0)
                        msg_append(msg, &ml, ", %" PRId64 " failed", p.failed);
                if (p.unavailable > p.in_progress)
                        msg_append(msg, &ml, ", %" PRId64 " unavailable", p.unavailable);
                switch (p.hold) {
                case ROLLOUT_GO:
                        msg_append(msg, &ml, ", starting %zu", n_choose);
                        break;
                case ROLLOUT_PAUSED:
                        msg_append(msg, &ml, ", paused");
                        break;
                case ROLLOUT_FAILURE_BUDGET:
                        msg_append(msg, &ml, ", halted: failureBudget %" PRId64 " reached", s->failure_budget);
                        break;
                case ROLLOUT_WINDOW_CLOSED:
                        format_time(next_open, tbuf);
                        msg_append(msg, &ml, ", maintenance window closed until %s", tbuf);
                        break;
                case ROLLOUT_BATCH_GATE_MANUAL:
                        msg_append(msg, &ml,
                                   ", batch %" PRId64 " waits for approval (spec.strategy.approvedBatches >= %" PRId64
                                   ")",
                                   cur + 1, cur);
                        break;
                case ROLLOUT_BATCH_GATE_TIMER:
                        format_time(requeue, tbuf);
                        msg_append(msg, &ml, ", batch %" PRId64 " starts at %s", cur + 1, tbuf);
                        break;
                case ROLLOUT_WAITING:
                        if (why_waiting && streq(why_waiting, "maxUnavailable reached"))
                                msg_append(msg, &ml, ", maxUnavailable %" PRId64 " reached", max_unavailable);
                        else
                                msg_append(msg, &ml, ", %s", why_waiting ?: "waiting");
                        break;
                case ROLLOUT_VERSION_SKEW:
                        msg_append(msg, &ml, ", refused: %s", in->skew_refusal);
                        break;
                case ROLLOUT_VERSION_UNKNOWN:
                        msg_append(msg, &ml, ", waiting for the API server version (GET /version) for the kubelet "
                                   "version skew check");
                        break;
                case ROLLOUT_IMAGE_TOO_NEW: {
                        char cbuf[32];
                        format_time(s->image.created, cbuf);
                        format_time(gate_at, tbuf);
                        msg_append(msg, &ml,
                                   ", image %s created %s is too new: minImageAgeSeconds %" PRId64 ", starting at %s",
                                   s->version, cbuf, s->min_image_age_seconds, tbuf);
                        break;
                }
                case ROLLOUT_WAITING_FOR_PROMOTION: {
                        const RolloutPromotion *a = &in->after;
                        msg_append(msg, &ml, ", waiting for OS %s to be Complete at %s", s->after_os, s->version);
                        if (s->after_soak_seconds > 0)
                                msg_append(msg, &ml, " for %" PRId64 " s", s->after_soak_seconds);
                        if (streq(promotion, "missing"))
                                msg_append(msg, &ml, ": OS %s does not exist", s->after_os);
                        else if (streq(promotion, "version") && a->version)
                                msg_append(msg, &ml, ": OS %s is set to %s", s->after_os, a->version);
                        else if (streq(promotion, "version"))
                                msg_append(msg, &ml, ": OS %s has no version", s->after_os);
                        else if (streq(promotion, "incomplete"))
                                msg_append(msg, &ml, ": OS %s is not Complete", s->after_os);
                        else if (streq(promotion, "empty"))
                                msg_append(msg, &ml, ": OS %s selects no nodes", s->after_os);
                        else {
                                /* Times, not "N s left": the message goes into
                                 * the status, which is written when it changes. */
                                char cbuf[32];
                                format_time(a->complete_since, cbuf);
                                format_time(gate_at, tbuf);
                                msg_append(msg, &ml, " (Complete since %s, starting at %s)", cbuf, tbuf);
                        }
                        break;
                }
                case ROLLOUT_COMPLETE:
                        break;
                }
        }
        p.message = strdup(msg);
        if (!p.message)
                return -ENOMEM;

        p.requeue_at = requeue;
        p.n_choose = n_choose;
        p.choose = TAKE_PTR(choose);
        p.n_quarantine = n_quarantine;
        p.quarantine = TAKE_PTR(quarantine);
        *ret = p;
        return 0;
}
