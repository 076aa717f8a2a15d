/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* os_spec_parse() on arbitrary JSON. A refusal must say why in printable
 * ASCII and leave the output alone; an accepted spec must hold every
 * promise of osspec.h, its window must answer for any time, and the
 * planner must respect maxUnavailable on a small fleet under it. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz.h"
#include "osspec.h"
#include "rollout.h"

static void check_window(const OsWindow *w, int64_t t) {
        bool open;
        int64_t next;

        if (os_window_open(w, t, &open, &next) < 0)
                abort(); /* the parser checked the zone */
        if (open ? next != 0 : (next <= t || next > t + 9 * 86400))
                abort();
        if (!open) {
                bool open2;
                if (os_window_open(w, next, &open2, NULL) < 0 || !open2)
                        abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *err = NULL;
        json_t *j;
        OsSpec s;
        uint64_t h = 1469598103934665603ULL;
        int r;

        if (size > 1024 * 1024)
                return 0;
        j = json_loadb((const char *) data, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
        if (!j)
                return 0;

        memset(&s, 0xaa, sizeof s);
        r = os_spec_parse(j, &s, &err);
        json_decref(j);
        if (r < 0) {
                const uint8_t *p = (const uint8_t *) &s;
                for (size_t i = 0; i < sizeof s; i++)
                        if (p[i] != 0xaa)
                                abort(); /* nothing filled on error */
                if (r != -EINVAL && r != -ENOMEM)
                        abort();
                if (r == -EINVAL && !err)
                        abort();
                for (const char *c = err; c && *c; c++)
                        if (*c < 0x20 || *c > 0x7e)
                                abort();
                return 0;
        }
        if (err)
                abort();

        if (!s.version || !s.node_selector || !os_operation_to_string(s.operation))
                abort();
        if (s.operation == OS_OPERATION_UPGRADE && (!s.image.url || !s.image.sha256 || strlen(s.image.sha256) != 64))
                abort();
        if (s.operation == OS_OPERATION_CONFIG && (!s.config || s.config_generation < 1))
                abort();
        if (s.max_unavailable.value < 0 || (s.max_unavailable.percent && s.max_unavailable.value > 100))
                abort();
        if (s.failure_budget < 0 || s.node_timeout_seconds < 60 || s.approved_batches < 0 ||
            s.drain.timeout_seconds < 0 || s.drain.grace_period_seconds < -1)
                abort();
        for (size_t i = 0; i < s.n_batches; i++)
                if (s.batches[i].nodes.value < (s.batches[i].nodes.percent ? 0 : 1) || s.batches[i].pause_seconds < 0)
                        abort();
        if (s.window.set && (s.window.days == 0 || s.window.days > 0x7f || !s.window.time_zone ||
                             s.window.start_minute == s.window.end_minute))
                abort();

        for (size_t i = 0; i < size; i++)
                h = (h ^ data[i]) * 1099511628211ULL;
        int64_t t = 946684800 + (int64_t) (h % (100ULL * 365 * 86400)); /* 2000..2100 */
        check_window(&s.window, t);
        check_window(&s.window, t - t % 86400);

        /* A fleet of 7 nodes in assorted states. */
        RolloutNode nodes[7];
        const char *names[7] = { "g", "f", "e", "d", "c", "b", "a" };
        for (size_t i = 0; i < 7; i++) {
                uint64_t b = h >> (i * 8);
                nodes[i] = (RolloutNode) {
                        .name = names[i],
                        .ready = (b & 7) != 0,
                        .unschedulable = (b & 0x18) == 0x18,
                        .quarantined = (b & 0xe0) == 0xe0,
                        .task_id = (b & 0x20) ? "os/1" : NULL,
                        .task_chosen_at = t - (int64_t) (b % 5000),
                        .phase = (NodePhase) ((b >> 3) % _NODE_PHASE_MAX),
                        .phase_task_id = (b & 0x40) ? "os/1" : NULL,
                        .version = (b & 0x80) ? s.version : "0",
                        .config_generation = (int64_t) (b % 3),
                };
        }
        RolloutInput in = { .spec = &s, .task_id = "os/1", .nodes = nodes, .n_nodes = 7,
                            .completed_batches = (int64_t) (h % 4), .batch_completed_at = t - 100, .now = t };
        RolloutPlan p = {};
        if (rollout_plan(&in, &p) < 0)
                abort();
        int64_t max_u = os_int_or_percent_resolve(&s.max_unavailable, 7, true);
        if (p.n_choose > 0 && p.unavailable + (int64_t) p.n_choose > max_u)
                abort();
        if (p.updated + p.in_progress + p.failed > p.desired || p.current_batch >= p.n_batches || !p.message)
                abort();
        for (size_t i = 0; i < p.n_choose; i++)
                if (!nodes[p.choose[i]].ready || nodes[p.choose[i]].unschedulable ||
                    rollout_node_state(&in, nodes + p.choose[i]) != ROLLOUT_NODE_PENDING)
                        abort();
        rollout_plan_done(&p);
        os_spec_done(&s);
        return 0;
}
