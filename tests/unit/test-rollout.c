/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <jansson.h>
#include <stdint.h>

#include "osspec.h"
#include "rollout.h"
#include "tests.h"

#define TASK "workers/2"
#define OLD_TASK "workers/1"
#define T0 1700000000LL /* 2023-11-14T22:13:20Z, a Tuesday */
#define SHA "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define MAX_NODES 64

/* A simulated fleet: what the operator would read from Nodes and OSNodes. */
typedef struct World {
        RolloutNode nodes[MAX_NODES];
        char names[MAX_NODES][16];
        size_t n;
        /* what the OS status holds */
        int64_t completed_batches, batch_completed_at;
} World;

static void world_init(World *w, size_t n, const char *version) {
        *w = (World) { .n = n };
        for (size_t i = 0; i < n; i++) {
                (void) snprintf(w->names[i], sizeof w->names[i], "node-%02zu", i);
                w->nodes[i] = (RolloutNode) {
                        .name = w->names[i],
                        .ready = true,
                        .phase = NODE_PHASE_IDLE,
                        .version = version,
                        .config_generation = 1,
                };
        }
}

static void spec_parse(const char *strategy_and_more, OsSpec *ret) {
        _cleanup_free_ char *text = NULL, *err = NULL;
        json_error_t e;
        json_t *j;

        ASSERT_TRUE(asprintf(&text,
                             "{\"version\":\"2.0\",\"operation\":\"upgrade\","
                             "\"image\":{\"url\":\"https://u.example/2.0.hull\",\"sha256\":\"" SHA "\"}%s%s}",
                             *strategy_and_more ? "," : "", strategy_and_more) > 0);
        j = json_loads(text, 0, &e);
        ASSERT_TRUE(j);
        int r = os_spec_parse(j, ret, &err);
        if (r < 0)
                fprintf(stderr, "%s\n", err);
        ASSERT_OK(r);
        json_decref(j);
}

static void plan_world(const OsSpec *s, World *w, int64_t now, RolloutPlan *ret) {
        RolloutInput in = {
                .spec = s,
                .task_id = TASK,
                .nodes = w->nodes,
                .n_nodes = w->n,
                .completed_batches = w->completed_batches,
                .batch_completed_at = w->batch_completed_at,
                .now = now,
        };
        ASSERT_OK(rollout_plan(&in, ret));
        ASSERT_TRUE(ret->message && *ret->message);
        for (const char *p = ret->message; *p; p++)
                ASSERT_TRUE(*p >= 0x20 && *p < 0x7f);
}

/* What the operator does with a plan: record the batch, annotate the chosen
 * nodes, label the quarantined ones. */
static void apply(World *w, const RolloutPlan *p, int64_t now) {
        w->completed_batches = p->completed_batches;
        w->batch_completed_at = p->batch_completed_at;
        for (size_t i = 0; i < p->n_choose; i++) {
                RolloutNode *n = w->nodes + p->choose[i];
                ASSERT_TRUE(n->task_id == NULL || !streq(n->task_id, TASK));
                n->task_id = TASK;
                n->task_chosen_at = now;
        }
        for (size_t i = 0; i < p->n_quarantine; i++)
                w->nodes[p->quarantine[i]].quarantined = true;
}

/* What hull-node reports. */
static void node_starts(World *w, size_t i) {
        w->nodes[i].unschedulable = true;
        w->nodes[i].phase = NODE_PHASE_DRAINING;
        w->nodes[i].phase_task_id = w->nodes[i].task_id;
}
static void node_done(World *w, size_t i, const char *version) {
        w->nodes[i].unschedulable = false;
        w->nodes[i].phase = NODE_PHASE_DONE;
        w->nodes[i].phase_task_id = w->nodes[i].task_id;
        w->nodes[i].version = version;
}
static void node_fails(World *w, size_t i) {
        w->nodes[i].unschedulable = false;
        w->nodes[i].phase = NODE_PHASE_FAILED;
        w->nodes[i].phase_task_id = w->nodes[i].task_id;
}

static void finish_chosen(World *w, const RolloutPlan *p) {
        for (size_t i = 0; i < p->n_choose; i++) {
                node_starts(w, p->choose[i]);
                node_done(w, p->choose[i], "2.0");
        }
}

static bool chosen(const RolloutPlan *p, const World *w, const char *name) {
        for (size_t i = 0; i < p->n_choose; i++)
                if (streq(w->nodes[p->choose[i]].name, name))
                        return true;
        return false;
}

static void test_phase_strings(void) {
        for (int i = 0; i < _NODE_PHASE_MAX; i++)
                ASSERT_EQ(node_phase_from_string(node_phase_to_string((NodePhase) i)), i);
        ASSERT_STREQ(node_phase_to_string(NODE_PHASE_ROLLED_BACK), "RolledBack");
        ASSERT_EQ(node_phase_from_string("done"), _NODE_PHASE_INVALID);
        ASSERT_EQ(node_phase_from_string(NULL), _NODE_PHASE_INVALID);
        ASSERT_TRUE(node_phase_to_string(_NODE_PHASE_MAX) == NULL);
        ASSERT_STREQ(rollout_hold_to_string(ROLLOUT_BATCH_GATE_MANUAL), "WaitingForApproval");
        ASSERT_STREQ(rollout_hold_to_string(ROLLOUT_COMPLETE), "Complete");
        ASSERT_TRUE(rollout_hold_to_string((RolloutHold) 99) == NULL);
}

static void test_node_state(void) {
        OsSpec s;
        spec_parse("", &s);
        RolloutInput in = { .spec = &s, .task_id = TASK };
        RolloutNode n = { .name = "a", .ready = true, .version = "1.0" };

        ASSERT_EQ(rollout_node_state(&in, &n), ROLLOUT_NODE_PENDING);
        n.version = NULL; /* unknown */
        ASSERT_EQ(rollout_node_state(&in, &n), ROLLOUT_NODE_PENDING);
        n.version = "2.0"; /* already there before the rollout */
        ASSERT_EQ(rollout_node_state(&in, &n), ROLLOUT_NODE_UPDATED);

        n.version = "1.0";
        n.task_id = TASK; /* annotated, hull-node has not reported yet */
        ASSERT_EQ(rollout_node_state(&in, &n), ROLLOUT_NODE_IN_PROGRESS);
        n.phase_task_id = TASK;
        n.phase = NODE_PHASE_REBOOTING;
        ASSERT_EQ(rollout_node_state(&in, &n), ROLLOUT_NODE_IN_PROGRESS);
        n.version = "2.0"; /* rebooted into it, but still verifying */
        n.phase = NODE_PHASE_VERIFYING;
        ASSERT_EQ(rollout_node_state(&in, &n), ROLLOUT_NODE_IN_PROGRESS);
        n.phase = NODE_PHASE_DONE;
        ASSERT_EQ(rollout_node_state(&in, &n), ROLLOUT_NODE_UPDATED);
        n.version = "1.0"; /* Done, yet not at the version: failed */
        ASSERT_EQ(rollout_node_state(&in, &n), ROLLOUT_NODE_FAILED);
        n.phase = NODE_PHASE_FAILED;
        ASSERT_EQ(rollout_node_state(&in, &n), ROLLOUT_NODE_FAILED);
        n.phase = NODE_PHASE_ROLLED_BACK;
        ASSERT_EQ(rollout_node_state(&in, &n), ROLLOUT_NODE_FAILED);
        /* Failed on a task of this rollout, even once the annotation is gone. */
        n.task_id = NULL;
        ASSERT_EQ(rollout_node_state(&in, &n), ROLLOUT_NODE_FAILED);

        /* A task of an older generation: busy until hull-node reports on it. */
        n = (RolloutNode) { .name = "a", .ready = true, .version = "1.0", .task_id = OLD_TASK };
        ASSERT_EQ(rollout_node_state(&in, &n), ROLLOUT_NODE_IN_PROGRESS);
        n.phase_task_id = OLD_TASK;
        n.phase = NODE_PHASE_STAGING;
        ASSERT_EQ(rollout_node_state(&in, &n), ROLLOUT_NODE_IN_PROGRESS);
        n.phase = NODE_PHASE_FAILED; /* failed the old task: fair game again */
        ASSERT_EQ(rollout_node_state(&in, &n), ROLLOUT_NODE_PENDING);
        n.phase = NODE_PHASE_DONE;
        ASSERT_EQ(rollout_node_state(&in, &n), ROLLOUT_NODE_PENDING);
        n.version = "2.0";
        ASSERT_EQ(rollout_node_state(&in, &n), ROLLOUT_NODE_UPDATED);

        /* Quarantined: failed, whatever else. */
        n.quarantined = true;
        ASSERT_EQ(rollout_node_state(&in, &n), ROLLOUT_NODE_FAILED);
        os_spec_done(&s);

        /* Config: the generation counts, not the version. */
        json_t *j = json_loads("{\"version\":\"1.0\",\"operation\":\"config\",\"config\":{\"generation\":5}}", 0, NULL);
        ASSERT_TRUE(j);
        ASSERT_OK(os_spec_parse(j, &s, NULL));
        json_decref(j);
        n = (RolloutNode) { .name = "a", .ready = true, .version = "0.9", .config_generation = 4 };
        ASSERT_EQ(rollout_node_state(&in, &n), ROLLOUT_NODE_PENDING);
        n.config_generation = 5;
        ASSERT_EQ(rollout_node_state(&in, &n), ROLLOUT_NODE_UPDATED);
        n.config_generation = 6;
        ASSERT_EQ(rollout_node_state(&in, &n), ROLLOUT_NODE_UPDATED);
        n.task_id = TASK;
        ASSERT_EQ(rollout_node_state(&in, &n), ROLLOUT_NODE_IN_PROGRESS);
        os_spec_done(&s);
}

static void test_simple_rolling(void) {
        OsSpec s;
        World w;
        RolloutPlan p;

        spec_parse("\"strategy\":{\"maxUnavailable\":2}", &s);
        world_init(&w, 5, "1.0");
        /* Name order, whatever the input order. */
        w.names[0][6] = '9'; /* "node-09" */
        plan_world(&s, &w, T0, &p);
        ASSERT_EQ(p.hold, ROLLOUT_GO);
        ASSERT_EQ(p.desired, 5);
        ASSERT_EQ(p.n_batches, 1);
        ASSERT_EQ(p.current_batch, 0);
        ASSERT_EQ(p.n_choose, 2);
        ASSERT_TRUE(chosen(&p, &w, "node-01"));
        ASSERT_TRUE(chosen(&p, &w, "node-02"));
        ASSERT_STREQ(p.message, "batch 1/1: 0 of 5 nodes updated, 0 in progress, starting 2");
        apply(&w, &p, T0);
        rollout_plan_done(&p);

        /* Both in progress: maxUnavailable 2 reached. */
        plan_world(&s, &w, T0 + 10, &p);
        ASSERT_EQ(p.hold, ROLLOUT_WAITING);
        ASSERT_EQ(p.n_choose, 0);
        ASSERT_EQ(p.in_progress, 2);
        ASSERT_EQ(p.unavailable, 2);
        ASSERT_STREQ(p.message, "batch 1/1: 0 of 5 nodes updated, 2 in progress, maxUnavailable 2 reached");
        /* Looks again when the first would time out. */
        ASSERT_EQ(p.requeue_at, T0 + 3600 + 1);
        rollout_plan_done(&p);

        /* One done: one more. */
        node_starts(&w, 1);
        node_done(&w, 1, "2.0");
        plan_world(&s, &w, T0 + 20, &p);
        ASSERT_EQ(p.hold, ROLLOUT_GO);
        ASSERT_EQ(p.n_choose, 1);
        ASSERT_TRUE(chosen(&p, &w, "node-03"));
        ASSERT_EQ(p.updated, 1);
        rollout_plan_done(&p);
        os_spec_done(&s);
}

static void test_not_ready_eats_budget(void) {
        OsSpec s;
        World w;
        RolloutPlan p;

        spec_parse("\"strategy\":{\"maxUnavailable\":2}", &s);
        world_init(&w, 6, "1.0");
        w.nodes[4].ready = false;
        plan_world(&s, &w, T0, &p);
        ASSERT_EQ(p.unavailable, 1);
        ASSERT_EQ(p.n_choose, 1); /* 2 - 1 NotReady */
        ASSERT_TRUE(chosen(&p, &w, "node-00"));
        rollout_plan_done(&p);

        /* Cordoned by someone else counts too; NotReady and cordoned once. */
        w.nodes[4].unschedulable = true;
        w.nodes[5].unschedulable = true;
        plan_world(&s, &w, T0, &p);
        ASSERT_EQ(p.unavailable, 2);
        ASSERT_EQ(p.n_choose, 0);
        ASSERT_EQ(p.hold, ROLLOUT_WAITING);
        ASSERT_TRUE(strstr(p.message, "maxUnavailable 2 reached"));
        rollout_plan_done(&p);

        /* More unavailable than allowed: nothing, never negative room. */
        w.nodes[3].ready = false;
        plan_world(&s, &w, T0, &p);
        ASSERT_EQ(p.unavailable, 3);
        ASSERT_EQ(p.n_choose, 0);
        rollout_plan_done(&p);

        /* A NotReady or cordoned pending node is never chosen. */
        world_init(&w, 3, "1.0");
        w.nodes[0].ready = false;
        w.nodes[1].unschedulable = true;
        os_spec_done(&s);
        spec_parse("\"strategy\":{\"maxUnavailable\":\"100%\"}", &s);
        plan_world(&s, &w, T0, &p);
        ASSERT_EQ(p.n_choose, 1);
        ASSERT_TRUE(chosen(&p, &w, "node-02"));
        rollout_plan_done(&p);

        /* A node busy with a task of an older generation is unavailable. */
        world_init(&w, 4, "1.0");
        w.nodes[0].task_id = OLD_TASK;
        w.nodes[0].task_chosen_at = T0 - 60;
        os_spec_done(&s);
        spec_parse("\"strategy\":{\"maxUnavailable\":2}", &s);
        plan_world(&s, &w, T0, &p);
        ASSERT_EQ(p.in_progress, 1);
        ASSERT_EQ(p.unavailable, 1);
        ASSERT_EQ(p.n_choose, 1);
        ASSERT_TRUE(chosen(&p, &w, "node-01"));
        rollout_plan_done(&p);
        os_spec_done(&s);
}

/* Selected nodes the planner may not touch (another OS selects them too)
 * that are down still use up maxUnavailable: a task handed out before the
 * conflict arose runs on. */
static void test_unavailable_elsewhere(void) {
        OsSpec s;
        World w;
        RolloutPlan p;

        spec_parse("\"strategy\":{\"maxUnavailable\":2}", &s);
        world_init(&w, 6, "1.0");
        for (int64_t down = 0; down <= 3; down++) {
                RolloutInput in = { .spec = &s, .task_id = TASK, .nodes = w.nodes, .n_nodes = w.n, .now = T0,
                                    .unavailable_elsewhere = down };
                ASSERT_OK(rollout_plan(&in, &p));
                ASSERT_EQ(p.desired, 6);
                ASSERT_EQ(p.unavailable, down);
                ASSERT_EQ(p.n_choose, (size_t) MAX(2 - down, (int64_t) 0));
                if (down >= 2) {
                        ASSERT_EQ(p.hold, ROLLOUT_WAITING);
                        ASSERT_TRUE(strstr(p.message, "maxUnavailable 2 reached"));
                }
                rollout_plan_done(&p);
        }
        os_spec_done(&s);
}

static void test_canary_batches(void) {
        OsSpec s;
        World w;
        RolloutPlan p;
        int64_t now = T0;

        /* 20 nodes: canary 1 (manual gate), 10% (2 nodes, then a 10 minute
         * pause), the rest; maxUnavailable 5. */
        spec_parse("\"strategy\":{\"maxUnavailable\":5,\"batches\":[{\"nodes\":1,\"manualGate\":true},"
                   "{\"nodes\":\"10%\",\"pauseSeconds\":600},{\"nodes\":\"100%\"}]}",
                   &s);
        world_init(&w, 20, "1.0");

        plan_world(&s, &w, now, &p);
        ASSERT_EQ(p.n_batches, 3);
        ASSERT_EQ(p.current_batch, 0);
        ASSERT_EQ(p.hold, ROLLOUT_GO);
        ASSERT_EQ(p.n_choose, 1); /* the canary only, although maxUnavailable is 5 */
        ASSERT_TRUE(chosen(&p, &w, "node-00"));
        apply(&w, &p, now);
        rollout_plan_done(&p);

        /* The canary in progress: batch full. */
        node_starts(&w, 0);
        plan_world(&s, &w, now += 60, &p);
        ASSERT_EQ(p.hold, ROLLOUT_WAITING);
        ASSERT_EQ(p.n_choose, 0);
        ASSERT_EQ(p.completed_batches, 0);
        apply(&w, &p, now);
        rollout_plan_done(&p);

        /* Canary done: batch 0 finished now; the manual gate holds. */
        node_done(&w, 0, "2.0");
        plan_world(&s, &w, now += 60, &p);
        ASSERT_EQ(p.hold, ROLLOUT_BATCH_GATE_MANUAL);
        ASSERT_EQ(p.current_batch, 1);
        ASSERT_EQ(p.completed_batches, 1);
        ASSERT_EQ(p.batch_completed_at, now);
        ASSERT_EQ(p.n_choose, 0);
        ASSERT_EQ(p.requeue_at, 0); /* only the spec changing moves it on */
        ASSERT_STREQ(p.message, "batch 2/3: 1 of 20 nodes updated, 0 in progress, batch 2 waits for approval "
                                "(spec.strategy.approvedBatches >= 1)");
        apply(&w, &p, now);
        rollout_plan_done(&p);
        int64_t canary_done = now;

        /* Later, still not approved: the completion time stays. */
        plan_world(&s, &w, now += 3600, &p);
        ASSERT_EQ(p.hold, ROLLOUT_BATCH_GATE_MANUAL);
        ASSERT_EQ(p.batch_completed_at, canary_done);
        rollout_plan_done(&p);

        /* Approved: batch 1 = 10% of 20 = 2 nodes. */
        s.approved_batches = 1;
        plan_world(&s, &w, now, &p);
        ASSERT_EQ(p.hold, ROLLOUT_GO);
        ASSERT_EQ(p.n_choose, 2);
        ASSERT_TRUE(chosen(&p, &w, "node-01"));
        ASSERT_TRUE(chosen(&p, &w, "node-02"));
        apply(&w, &p, now);
        node_starts(&w, 1);
        node_starts(&w, 2);
        rollout_plan_done(&p);

        /* One of two done: batch 1 not finished, nothing more chosen. */
        node_done(&w, 1, "2.0");
        plan_world(&s, &w, now += 60, &p);
        ASSERT_EQ(p.hold, ROLLOUT_WAITING);
        ASSERT_EQ(p.n_choose, 0);
        ASSERT_EQ(p.current_batch, 1);
        rollout_plan_done(&p);

        /* Both done: the timed gate; requeue when it ends. */
        node_done(&w, 2, "2.0");
        plan_world(&s, &w, now += 60, &p);
        int64_t batch1_done = now;
        ASSERT_EQ(p.hold, ROLLOUT_BATCH_GATE_TIMER);
        ASSERT_EQ(p.completed_batches, 2);
        ASSERT_EQ(p.batch_completed_at, batch1_done);
        ASSERT_EQ(p.requeue_at, batch1_done + 600);
        ASSERT_EQ(p.n_choose, 0);
        apply(&w, &p, now);
        rollout_plan_done(&p);

        plan_world(&s, &w, batch1_done + 599, &p);
        ASSERT_EQ(p.hold, ROLLOUT_BATCH_GATE_TIMER);
        rollout_plan_done(&p);

        /* Pause over: the rest, maxUnavailable at a time. */
        now = batch1_done + 600;
        plan_world(&s, &w, now, &p);
        ASSERT_EQ(p.hold, ROLLOUT_GO);
        ASSERT_EQ(p.current_batch, 2);
        ASSERT_EQ(p.n_choose, 5);
        ASSERT_TRUE(chosen(&p, &w, "node-03"));
        ASSERT_TRUE(chosen(&p, &w, "node-07"));
        apply(&w, &p, now);
        finish_chosen(&w, &p);
        rollout_plan_done(&p);

        for (int round = 0; round < 10; round++) {
                plan_world(&s, &w, now += 60, &p);
                apply(&w, &p, now);
                finish_chosen(&w, &p);
                bool complete = p.hold == ROLLOUT_COMPLETE;
                rollout_plan_done(&p);
                if (complete)
                        break;
        }
        plan_world(&s, &w, now, &p);
        ASSERT_EQ(p.hold, ROLLOUT_COMPLETE);
        ASSERT_EQ(p.updated, 20);
        ASSERT_EQ(p.completed_batches, 3);
        ASSERT_STREQ(p.message, "all 20 nodes updated");
        rollout_plan_done(&p);

        /* Percent batches resolve up, each at least one node, and the last
         * always reaches every node: 3 nodes, batches 1 / 10% / 10%. */
        os_spec_done(&s);
        spec_parse("\"strategy\":{\"maxUnavailable\":3,\"batches\":[{\"nodes\":1},{\"nodes\":\"10%\"},{\"nodes\":\"10%\"}]}",
                   &s);
        world_init(&w, 3, "1.0");
        w.nodes[0].version = "2.0";
        w.nodes[1].version = "2.0";
        plan_world(&s, &w, T0, &p);
        ASSERT_EQ(p.current_batch, 2);
        ASSERT_EQ(p.n_choose, 1);
        rollout_plan_done(&p);
        os_spec_done(&s);
}

static void test_already_updated_count(void) {
        OsSpec s;
        World w;
        RolloutPlan p;

        /* Three of ten nodes run 2.0 already: they count as progressed, so
         * the canary batch (1) and the 10% batch (cumulative 2) are passed
         * at once; only the gate before the current batch applies. */
        spec_parse("\"strategy\":{\"maxUnavailable\":2,\"batches\":[{\"nodes\":1,\"manualGate\":true},"
                   "{\"nodes\":\"10%\",\"manualGate\":true},{\"nodes\":\"100%\"}]}",
                   &s);
        world_init(&w, 10, "1.0");
        w.nodes[3].version = w.nodes[5].version = w.nodes[7].version = "2.0";
        plan_world(&s, &w, T0, &p);
        ASSERT_EQ(p.updated, 3);
        ASSERT_EQ(p.current_batch, 2);
        ASSERT_EQ(p.completed_batches, 2);
        ASSERT_EQ(p.hold, ROLLOUT_BATCH_GATE_MANUAL);
        rollout_plan_done(&p);
        s.approved_batches = 2;
        plan_world(&s, &w, T0, &p);
        ASSERT_EQ(p.hold, ROLLOUT_GO);
        ASSERT_EQ(p.n_choose, 2);
        ASSERT_TRUE(chosen(&p, &w, "node-00"));
        ASSERT_TRUE(chosen(&p, &w, "node-01"));
        rollout_plan_done(&p);
        os_spec_done(&s);
}

static void test_failure_budget(void) {
        OsSpec s;
        World w;
        RolloutPlan p;

        /* Default budget 1: the first failure halts. */
        spec_parse("\"strategy\":{\"maxUnavailable\":2}", &s);
        ASSERT_EQ(s.failure_budget, 1);
        world_init(&w, 6, "1.0");
        plan_world(&s, &w, T0, &p);
        apply(&w, &p, T0);
        rollout_plan_done(&p);
        node_starts(&w, 0);
        node_starts(&w, 1);
        node_fails(&w, 0);
        plan_world(&s, &w, T0 + 60, &p);
        ASSERT_EQ(p.hold, ROLLOUT_FAILURE_BUDGET);
        ASSERT_EQ(p.failed, 1);
        ASSERT_EQ(p.in_progress, 1); /* node-01 goes on by itself */
        ASSERT_EQ(p.n_choose, 0);
        ASSERT_TRUE(strstr(p.message, "halted: failureBudget 1 reached"));
        rollout_plan_done(&p);
        /* Still halted with node-01 done: failures do not heal. */
        node_done(&w, 1, "2.0");
        plan_world(&s, &w, T0 + 120, &p);
        ASSERT_EQ(p.hold, ROLLOUT_FAILURE_BUDGET);
        ASSERT_EQ(p.n_choose, 0);
        rollout_plan_done(&p);

        /* Budget 2: goes on after one failure, halts at the second. */
        s.failure_budget = 2;
        plan_world(&s, &w, T0 + 120, &p);
        ASSERT_EQ(p.hold, ROLLOUT_GO);
        ASSERT_EQ(p.n_choose, 2);
        apply(&w, &p, T0 + 120);
        for (size_t i = 0; i < p.n_choose; i++)
                node_starts(&w, p.choose[i]);
        node_fails(&w, p.choose[0]);
        rollout_plan_done(&p);
        plan_world(&s, &w, T0 + 180, &p);
        ASSERT_EQ(p.hold, ROLLOUT_FAILURE_BUDGET);
        ASSERT_EQ(p.failed, 2);
        rollout_plan_done(&p);

        /* Budget 0: never halts; a RolledBack node is a failure too. */
        s.failure_budget = 0;
        w.nodes[2].phase = NODE_PHASE_ROLLED_BACK;
        plan_world(&s, &w, T0 + 180, &p);
        ASSERT_EQ(p.failed, 2);
        ASSERT_EQ(p.hold, ROLLOUT_GO);
        ASSERT_EQ(p.n_choose, 1); /* one of maxUnavailable 2 is still in progress */
        rollout_plan_done(&p);

        /* Every node updated or failed, budget 0: not complete, waiting. */
        for (size_t i = 0; i < w.n; i++)
                if (w.nodes[i].phase != NODE_PHASE_FAILED && w.nodes[i].phase != NODE_PHASE_ROLLED_BACK) {
                        w.nodes[i].task_id = TASK;
                        node_done(&w, i, "2.0");
                }
        plan_world(&s, &w, T0 + 240, &p);
        ASSERT_EQ(p.hold, ROLLOUT_WAITING);
        ASSERT_EQ(p.updated, 4);
        ASSERT_EQ(p.failed, 2);
        ASSERT_EQ(p.n_choose, 0);
        rollout_plan_done(&p);
        os_spec_done(&s);
}

static void test_quarantine(void) {
        OsSpec s;
        World w;
        RolloutPlan p;

        spec_parse("\"strategy\":{\"maxUnavailable\":1,\"failureBudget\":3,\"nodeTimeoutSeconds\":600}", &s);
        world_init(&w, 3, "1.0");
        plan_world(&s, &w, T0, &p);
        ASSERT_EQ(p.n_choose, 1);
        apply(&w, &p, T0);
        node_starts(&w, 0); /* and hangs, cordoned */
        rollout_plan_done(&p);

        plan_world(&s, &w, T0 + 600, &p); /* exactly the timeout: not yet */
        ASSERT_EQ(p.n_quarantine, 0);
        ASSERT_EQ(p.requeue_at, T0 + 601);
        ASSERT_EQ(p.in_progress, 1);
        rollout_plan_done(&p);

        plan_world(&s, &w, T0 + 601, &p);
        ASSERT_EQ(p.n_quarantine, 1);
        ASSERT_EQ(p.quarantine[0], 0);
        ASSERT_EQ(p.failed, 1);
        ASSERT_EQ(p.in_progress, 0);
        ASSERT_EQ(p.unavailable, 1); /* still cordoned */
        ASSERT_EQ(p.n_choose, 0);    /* and that eats maxUnavailable 1 */
        apply(&w, &p, T0 + 601);
        rollout_plan_done(&p);

        /* Labelled: failed by the label now, not quarantined again. Ready
         * and uncordoned, yet with its task unfinished, it is still
         * unavailable: hull-node may cordon and drain it any moment (a
         * node quarantined while staging a slow download does). */
        w.nodes[0].unschedulable = false;
        w.nodes[0].phase = NODE_PHASE_STAGING;
        plan_world(&s, &w, T0 + 700, &p);
        ASSERT_EQ(p.n_quarantine, 0);
        ASSERT_EQ(p.failed, 1);
        ASSERT_EQ(p.in_progress, 0);
        ASSERT_EQ(p.unavailable, 1);
        ASSERT_EQ(p.n_choose, 0);
        rollout_plan_done(&p);

        /* hull-node finished it (Done, uncordoned): the label still counts
         * it failed, and the rollout goes on within its budget. */
        node_done(&w, 0, "2.0");
        plan_world(&s, &w, T0 + 710, &p);
        ASSERT_EQ(p.n_quarantine, 0);
        ASSERT_EQ(p.failed, 1);
        ASSERT_EQ(p.updated, 0);
        ASSERT_EQ(p.unavailable, 0);
        ASSERT_EQ(p.n_choose, 1);
        ASSERT_TRUE(chosen(&p, &w, "node-01"));
        rollout_plan_done(&p);

        /* The label removed by a person: updated. */
        w.nodes[0].quarantined = false;
        plan_world(&s, &w, T0 + 720, &p);
        ASSERT_EQ(p.failed, 0);
        ASSERT_EQ(p.updated, 1);
        rollout_plan_done(&p);

        /* The task withdrawn by a person (annotation removed) while the
         * node hangs: no longer busy; unavailable only while cordoned. */
        world_init(&w, 3, "1.0");
        w.nodes[0].task_id = TASK;
        w.nodes[0].task_chosen_at = T0;
        node_starts(&w, 0);
        w.nodes[0].quarantined = true;
        w.nodes[0].unschedulable = false;
        plan_world(&s, &w, T0 + 700, &p);
        ASSERT_EQ(p.unavailable, 1);
        ASSERT_EQ(p.n_choose, 0);
        rollout_plan_done(&p);
        w.nodes[0].task_id = NULL;
        plan_world(&s, &w, T0 + 700, &p);
        ASSERT_EQ(p.failed, 1);
        ASSERT_EQ(p.unavailable, 0);
        ASSERT_EQ(p.n_choose, 1);
        rollout_plan_done(&p);

        /* A node whose task time is unknown never times out. */
        world_init(&w, 2, "1.0");
        w.nodes[0].task_id = TASK;
        w.nodes[0].task_chosen_at = 0;
        plan_world(&s, &w, T0 + 100000, &p);
        ASSERT_EQ(p.n_quarantine, 0);
        ASSERT_EQ(p.in_progress, 1);
        rollout_plan_done(&p);
        os_spec_done(&s);
}

static void test_window_and_pause(void) {
        OsSpec s;
        World w;
        RolloutPlan p;

        /* Window 01:00-03:00 UTC, every day; T0 is 22:13 UTC. */
        spec_parse("\"strategy\":{\"maxUnavailable\":2,\"nodeTimeoutSeconds\":86400},"
                   "\"window\":{\"start\":\"01:00\",\"end\":\"03:00\"}",
                   &s);
        world_init(&w, 4, "1.0");
        w.nodes[0].task_id = TASK; /* in progress: goes on */
        w.nodes[0].task_chosen_at = T0 - 60;
        plan_world(&s, &w, T0, &p);
        ASSERT_EQ(p.hold, ROLLOUT_WINDOW_CLOSED);
        ASSERT_EQ(p.n_choose, 0);
        ASSERT_EQ(p.requeue_at, 1700010000LL); /* 2023-11-15T01:00:00Z */
        ASSERT_TRUE(strstr(p.message, "maintenance window closed until 2023-11-15T01:00:00Z"));
        rollout_plan_done(&p);
        /* A node timing out earlier than that wakes the operator first. */
        s.node_timeout_seconds = 3600;
        plan_world(&s, &w, T0, &p);
        ASSERT_EQ(p.hold, ROLLOUT_WINDOW_CLOSED);
        ASSERT_EQ(p.requeue_at, T0 - 60 + 3600 + 1);
        rollout_plan_done(&p);
        s.node_timeout_seconds = 86400;

        plan_world(&s, &w, 1700010000LL, &p);
        ASSERT_EQ(p.hold, ROLLOUT_GO);
        ASSERT_EQ(p.n_choose, 1);
        rollout_plan_done(&p);

        /* Paused: nothing, whatever the window. */
        s.paused = true;
        plan_world(&s, &w, 1700010000LL, &p);
        ASSERT_EQ(p.hold, ROLLOUT_PAUSED);
        ASSERT_EQ(p.n_choose, 0);
        ASSERT_TRUE(strstr(p.message, ", paused"));
        rollout_plan_done(&p);

        /* An unknown time zone (a hand-built spec): -EINVAL. */
        free(s.window.time_zone);
        s.window.time_zone = strdup("Nowhere/Atlantis");
        RolloutInput in = { .spec = &s, .task_id = TASK, .nodes = w.nodes, .n_nodes = w.n, .now = T0 };
        p = (RolloutPlan) {};
        ASSERT_ERROR(rollout_plan(&in, &p), EINVAL);
        ASSERT_TRUE(p.message == NULL);
        os_spec_done(&s);
}

static void test_complete_and_empty(void) {
        OsSpec s;
        World w;
        RolloutPlan p;

        spec_parse("", &s);
        world_init(&w, 3, "2.0");
        plan_world(&s, &w, T0, &p);
        ASSERT_EQ(p.hold, ROLLOUT_COMPLETE);
        ASSERT_EQ(p.updated, 3);
        ASSERT_EQ(p.n_choose, 0);
        ASSERT_EQ(p.completed_batches, 1);
        ASSERT_EQ(p.batch_completed_at, T0);
        rollout_plan_done(&p);

        /* Complete even when paused or outside the window. */
        s.paused = true;
        plan_world(&s, &w, T0, &p);
        ASSERT_EQ(p.hold, ROLLOUT_COMPLETE);
        rollout_plan_done(&p);

        /* No nodes selected. */
        world_init(&w, 0, "1.0");
        plan_world(&s, &w, T0, &p);
        ASSERT_EQ(p.hold, ROLLOUT_COMPLETE);
        ASSERT_EQ(p.desired, 0);
        ASSERT_STREQ(p.message, "all 0 nodes updated");
        rollout_plan_done(&p);
        os_spec_done(&s);
}

static bool plans_equal(const RolloutPlan *a, const RolloutPlan *b, const World *wa, const World *wb) {
        if (a->desired != b->desired || a->updated != b->updated || a->in_progress != b->in_progress ||
            a->failed != b->failed || a->unavailable != b->unavailable || a->current_batch != b->current_batch ||
            a->n_batches != b->n_batches || a->completed_batches != b->completed_batches ||
            a->batch_completed_at != b->batch_completed_at || a->hold != b->hold || a->requeue_at != b->requeue_at ||
            a->n_choose != b->n_choose || a->n_quarantine != b->n_quarantine || !streq(a->message, b->message))
                return false;
        /* Same nodes by name (the input order may differ). */
        for (size_t i = 0; i < a->n_choose; i++)
                if (!streq(wa->nodes[a->choose[i]].name, wb->nodes[b->choose[i]].name))
                        return false;
        for (size_t i = 0; i < a->n_quarantine; i++)
                if (!streq(wa->nodes[a->quarantine[i]].name, wb->nodes[b->quarantine[i]].name))
                        return false;
        return true;
}

/* xorshift64*: reproducible randomness. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void) {
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return rng_state * 2685821657736338117ULL;
}
static unsigned rnd_below(unsigned n) {
        return (unsigned) (rnd() % n);
}

/* The invariant under random outcomes: a plan never chooses a node unless,
 * with it, unavailable nodes (in progress, NotReady or cordoned, counted
 * here independently of the planner) stay within maxUnavailable; and a
 * restarted operator (a second call, a shuffled node list) decides the same. */
static void test_random_simulation(void) {
        for (int run = 0; run < 40; run++) {
                OsSpec s;
                World w, shuffled;
                size_t n = 1 + rnd_below(40);
                int64_t now = T0;
                char strategy[256];

                (void) snprintf(strategy, sizeof strategy,
                                "\"strategy\":{\"maxUnavailable\":%s,\"failureBudget\":0,\"nodeTimeoutSeconds\":600,"
                                "\"batches\":[{\"nodes\":1,\"manualGate\":true},{\"nodes\":\"%u%%\",\"pauseSeconds\":120},"
                                "{\"nodes\":\"100%%\"}]}",
                                run % 3 == 0 ? "\"30%\"" : run % 3 == 1 ? "1" : "3", 1 + rnd_below(100));
                spec_parse(strategy, &s);
                s.approved_batches = 5;
                world_init(&w, n, "1.0");
                int64_t max_u = os_int_or_percent_resolve(&s.max_unavailable, (int64_t) n, true);
                bool done = false;

                for (int step = 0; step < 3000 && !done; step++) {
                        RolloutPlan p, p2, p3;

                        now += 30;
                        /* The world moves: NotReady flips, nodes progress. */
                        for (size_t i = 0; i < n; i++) {
                                RolloutNode *nd = w.nodes + i;
                                if (rnd_below(100) < 3)
                                        nd->ready = !nd->ready;
                                if (step > 600)
                                        nd->ready = true; /* let it settle */
                                if (nd->quarantined && nd->unschedulable && rnd_below(4) == 0)
                                        nd->unschedulable = false; /* someone repaired it */
                                /* Quarantined or not, hull-node works on. */
                                if (!nd->task_id ||
                                    (nd->phase_task_id && streq(nd->phase_task_id, nd->task_id) &&
                                     (nd->phase == NODE_PHASE_DONE || nd->phase == NODE_PHASE_FAILED)))
                                        continue;
                                unsigned roll = rnd_below(100);
                                if (!nd->phase_task_id || !streq(nd->phase_task_id, nd->task_id)) {
                                        if (roll < 60)
                                                node_starts(&w, i);
                                } else if (roll < 40)
                                        node_done(&w, i, "2.0");
                                else if (roll < 45)
                                        node_fails(&w, i);
                                /* else: still working, or hanging until the timeout */
                        }

                        plan_world(&s, &w, now, &p);

                        /* Restart equivalence: the same input twice, and the
                         * same nodes in reverse order. */
                        plan_world(&s, &w, now, &p2);
                        ASSERT_TRUE(plans_equal(&p, &p2, &w, &w));
                        shuffled = w;
                        for (size_t i = 0; i < n; i++) {
                                shuffled.nodes[i] = w.nodes[n - 1 - i];
                                memcpy(shuffled.names[i], w.names[n - 1 - i], sizeof w.names[i]);
                                shuffled.nodes[i].name = shuffled.names[i];
                        }
                        plan_world(&s, &shuffled, now, &p3);
                        ASSERT_TRUE(plans_equal(&p, &p3, &w, &shuffled));

                        apply(&w, &p, now);

                        /* The invariant, counted independently. */
                        int64_t unavailable = 0;
                        for (size_t i = 0; i < n; i++) {
                                const RolloutNode *nd = w.nodes + i;
                                bool busy = nd->task_id &&
                                            !(nd->phase_task_id && streq(nd->phase_task_id, nd->task_id) &&
                                              (nd->phase == NODE_PHASE_DONE || nd->phase == NODE_PHASE_FAILED));
                                if (busy || !nd->ready || nd->unschedulable)
                                        unavailable++;
                        }
                        if (p.n_choose > 0)
                                ASSERT_TRUE(unavailable <= max_u);
                        ASSERT_TRUE(p.unavailable + (int64_t) p.n_choose <= MAX(max_u, p.unavailable));
                        for (size_t i = 0; i < p.n_choose; i++) {
                                ASSERT_TRUE(w.nodes[p.choose[i]].ready);
                                /* Chosen nodes were schedulable when chosen; hull-node cordons later. */
                        }
                        ASSERT_TRUE(p.updated + p.in_progress + p.failed <= p.desired);
                        done = p.hold == ROLLOUT_COMPLETE ||
                               (p.in_progress == 0 && p.updated + p.failed == p.desired && p.n_quarantine == 0);
                        rollout_plan_done(&p);
                        rollout_plan_done(&p2);
                        rollout_plan_done(&p3);
                }
                /* With every node Ready again and no budget, it ends. */
                ASSERT_TRUE(done);
                os_spec_done(&s);
        }
}

static void plan_skew(const OsSpec *s, World *w, int64_t now, const char *refusal, bool unknown, RolloutPlan *ret) {
        RolloutInput in = {
                .spec = s,
                .task_id = TASK,
                .nodes = w->nodes,
                .n_nodes = w->n,
                .completed_batches = w->completed_batches,
                .batch_completed_at = w->batch_completed_at,
                .now = now,
                .skew_refusal = refusal,
                .skew_unknown = unknown,
        };
        ASSERT_OK(rollout_plan(&in, ret));
}

static void test_version_skew(void) {
        static const char refusal[] =
                "kubelet v1.33.0 of image 2.0 is newer than the API server v1.32.4 (version skew policy)";
        OsSpec s;
        World w;
        RolloutPlan p;

        ASSERT_STREQ(rollout_hold_to_string(ROLLOUT_VERSION_SKEW), "VersionSkew");
        ASSERT_STREQ(rollout_hold_to_string(ROLLOUT_VERSION_UNKNOWN), "WaitingForAPIServerVersion");

        /* Refused: nothing starts, whatever else would hold it. */
        spec_parse("\"strategy\":{\"maxUnavailable\":2,\"paused\":true}", &s);
        world_init(&w, 3, "1.0");
        plan_skew(&s, &w, T0, refusal, false, &p);
        ASSERT_EQ(p.hold, ROLLOUT_VERSION_SKEW);
        ASSERT_EQ(p.n_choose, 0);
        ASSERT_STREQ(p.message, "batch 1/1: 0 of 3 nodes updated, 0 in progress, refused: kubelet v1.33.0 of image 2.0 "
                                "is newer than the API server v1.32.4 (version skew policy)");
        rollout_plan_done(&p);
        os_spec_done(&s);

        /* Nodes already in progress go on (they are counted, not stopped);
         * no new one starts. */
        spec_parse("\"strategy\":{\"maxUnavailable\":2}", &s);
        plan_world(&s, &w, T0, &p);
        ASSERT_EQ(p.n_choose, 2);
        apply(&w, &p, T0);
        rollout_plan_done(&p);
        plan_skew(&s, &w, T0 + 5, refusal, false, &p);
        ASSERT_EQ(p.hold, ROLLOUT_VERSION_SKEW);
        ASSERT_EQ(p.n_choose, 0);
        ASSERT_EQ(p.in_progress, 2);
        ASSERT_EQ(p.n_quarantine, 0);
        rollout_plan_done(&p);

        /* A complete rollout stays complete. */
        for (size_t i = 0; i < w.n; i++) {
                w.nodes[i].task_id = TASK;
                node_starts(&w, i);
                node_done(&w, i, "2.0");
        }
        plan_skew(&s, &w, T0 + 10, refusal, false, &p);
        ASSERT_EQ(p.hold, ROLLOUT_COMPLETE);
        rollout_plan_done(&p);

        /* Unknown API server version: nothing starts, look again soon. */
        world_init(&w, 3, "1.0");
        plan_skew(&s, &w, T0, NULL, true, &p);
        ASSERT_EQ(p.hold, ROLLOUT_VERSION_UNKNOWN);
        ASSERT_EQ(p.n_choose, 0);
        ASSERT_EQ(p.requeue_at, T0 + ROLLOUT_SKEW_RETRY_SECONDS);
        ASSERT_STREQ(p.message, "batch 1/1: 0 of 3 nodes updated, 0 in progress, waiting for the API server version "
                                "(GET /version) for the kubelet version skew check");
        rollout_plan_done(&p);
        /* ... but a pause or a closed window is the better reason. */
        s.paused = true;
        plan_skew(&s, &w, T0, NULL, true, &p);
        ASSERT_EQ(p.hold, ROLLOUT_PAUSED);
        rollout_plan_done(&p);
        s.paused = false;
        /* Allowed: as without the check. */
        plan_skew(&s, &w, T0, NULL, false, &p);
        ASSERT_EQ(p.hold, ROLLOUT_GO);
        ASSERT_EQ(p.n_choose, 2);
        rollout_plan_done(&p);
        os_spec_done(&s);
}


static void spec_parse_text(const char *text, OsSpec *ret) {
        _cleanup_free_ char *err = NULL;
        json_t *j = json_loads(text, 0, NULL);
        ASSERT_TRUE(j);
        int r = os_spec_parse(j, ret, &err);
        if (r < 0)
                fprintf(stderr, "%s\n", err);
        ASSERT_OK(r);
        json_decref(j);
}

static void plan_after(const OsSpec *s, World *w, int64_t now, const RolloutPromotion *after, RolloutPlan *ret) {
        RolloutInput in = {
                .spec = s,
                .task_id = TASK,
                .nodes = w->nodes,
                .n_nodes = w->n,
                .completed_batches = w->completed_batches,
                .batch_completed_at = w->batch_completed_at,
                .now = now,
        };
        if (after)
                in.after = *after;
        ASSERT_OK(rollout_plan(&in, ret));
        for (const char *p = ret->message; *p; p++)
                ASSERT_TRUE(*p >= 0x20 && *p < 0x7f);
}

#define PROMO_PREFIX "batch 1/1: 0 of 4 nodes updated, 0 in progress, waiting for OS staging to be Complete at 2.0 for 3600 s"

static void test_promotion(void) {
        OsSpec s;
        World w;
        RolloutPlan p;
        RolloutPromotion a;

        ASSERT_STREQ(rollout_hold_to_string(ROLLOUT_WAITING_FOR_PROMOTION), "WaitingForPromotion");
        spec_parse("\"strategy\":{\"maxUnavailable\":2,\"after\":{\"os\":\"staging\",\"soakSeconds\":3600}}", &s);
        world_init(&w, 4, "1.0");

        /* The other OS does not exist. */
        a = (RolloutPromotion) {};
        plan_after(&s, &w, T0, &a, &p);
        ASSERT_EQ(p.hold, ROLLOUT_WAITING_FOR_PROMOTION);
        ASSERT_EQ(p.n_choose, 0);
        ASSERT_EQ(p.requeue_at, 0); /* only its change can open the gate */
        ASSERT_STREQ(p.message, PROMO_PREFIX ": OS staging does not exist");
        rollout_plan_done(&p);
        /* It is set to another version (Complete there long ago). */
        a = (RolloutPromotion) { .exists = true, .version = "1.9", .complete = true, .complete_since = T0 - 86400,
                                 .desired = 2 };
        plan_after(&s, &w, T0, &a, &p);
        ASSERT_EQ(p.hold, ROLLOUT_WAITING_FOR_PROMOTION);
        ASSERT_EQ(p.n_choose, 0);
        ASSERT_STREQ(p.message, PROMO_PREFIX ": OS staging is set to 1.9");
        rollout_plan_done(&p);
        a.version = NULL;
        plan_after(&s, &w, T0, &a, &p);
        ASSERT_STREQ(p.message, PROMO_PREFIX ": OS staging has no version");
        rollout_plan_done(&p);
        /* The same version, not Complete. */
        a = (RolloutPromotion) { .exists = true, .version = "2.0", .complete = false, .desired = 2 };
        plan_after(&s, &w, T0, &a, &p);
        ASSERT_EQ(p.hold, ROLLOUT_WAITING_FOR_PROMOTION);
        ASSERT_EQ(p.requeue_at, 0);
        ASSERT_STREQ(p.message, PROMO_PREFIX ": OS staging is not Complete");
        rollout_plan_done(&p);
        /* Complete with no nodes proves nothing. */
        a = (RolloutPromotion) { .exists = true, .version = "2.0", .complete = true, .complete_since = T0 - 86400 };
        plan_after(&s, &w, T0, &a, &p);
        ASSERT_EQ(p.hold, ROLLOUT_WAITING_FOR_PROMOTION);
        ASSERT_STREQ(p.message, PROMO_PREFIX ": OS staging selects no nodes");
        rollout_plan_done(&p);
        /* Complete since T0: soaking until T0 + 3600, look again then. */
        a = (RolloutPromotion) { .exists = true, .version = "2.0", .complete = true, .complete_since = T0, .desired = 2 };
        plan_after(&s, &w, T0 + 1800, &a, &p);
        ASSERT_EQ(p.hold, ROLLOUT_WAITING_FOR_PROMOTION);
        ASSERT_EQ(p.n_choose, 0);
        ASSERT_EQ(p.requeue_at, T0 + 3600);
        ASSERT_STREQ(p.message,
                     PROMO_PREFIX " (Complete since 2023-11-14T22:13:20Z, starting at 2023-11-14T23:13:20Z)");
        rollout_plan_done(&p);
        plan_after(&s, &w, T0 + 3599, &a, &p);
        ASSERT_EQ(p.hold, ROLLOUT_WAITING_FOR_PROMOTION);
        ASSERT_EQ(p.requeue_at, T0 + 3600);
        rollout_plan_done(&p);
        /* Holds that come first: paused, failure budget. */
        s.paused = true;
        plan_after(&s, &w, T0 + 1800, &a, &p);
        ASSERT_EQ(p.hold, ROLLOUT_PAUSED);
        rollout_plan_done(&p);
        s.paused = false;
        w.nodes[3].quarantined = true;
        plan_after(&s, &w, T0 + 1800, &a, &p);
        ASSERT_EQ(p.hold, ROLLOUT_FAILURE_BUDGET);
        rollout_plan_done(&p);
        w.nodes[3].quarantined = false;
        /* ... and a closed window comes after it. */
        {
                OsSpec sw;
                spec_parse("\"strategy\":{\"after\":{\"os\":\"staging\",\"soakSeconds\":3600}},"
                           "\"window\":{\"start\":\"02:00\",\"end\":\"03:00\"}",
                           &sw);
                plan_after(&sw, &w, T0 + 1800, &a, &p);
                ASSERT_EQ(p.hold, ROLLOUT_WAITING_FOR_PROMOTION);
                rollout_plan_done(&p);
                plan_after(&sw, &w, T0 + 3600, &a, &p);
                ASSERT_EQ(p.hold, ROLLOUT_WINDOW_CLOSED);
                rollout_plan_done(&p);
                os_spec_done(&sw);
        }

        /* Exactly at the end of the soak: it starts. */
        plan_after(&s, &w, T0 + 3600, &a, &p);
        ASSERT_EQ(p.hold, ROLLOUT_GO);
        ASSERT_EQ(p.n_choose, 2);
        apply(&w, &p, T0 + 3600);
        rollout_plan_done(&p);

        /* Started: the other OS moving on (another version, gone) no
         * longer holds it; nodes in progress finish, the next start. */
        a = (RolloutPromotion) { .exists = true, .version = "2.1", .complete = false, .desired = 2 };
        plan_after(&s, &w, T0 + 3700, &a, &p);
        ASSERT_EQ(p.hold, ROLLOUT_WAITING);
        ASSERT_EQ(p.in_progress, 2);
        rollout_plan_done(&p);
        node_starts(&w, 0);
        node_done(&w, 0, "2.0");
        node_starts(&w, 1);
        node_done(&w, 1, "2.0");
        /* hull-node removed the annotations of the Done nodes: only the
         * OSNode still names the task. */
        w.nodes[0].task_id = w.nodes[1].task_id = NULL;
        a = (RolloutPromotion) {};
        plan_after(&s, &w, T0 + 3800, &a, &p);
        ASSERT_EQ(p.hold, ROLLOUT_GO);
        ASSERT_EQ(p.n_choose, 2);
        ASSERT_TRUE(chosen(&p, &w, "node-02") && chosen(&p, &w, "node-03"));
        apply(&w, &p, T0 + 3800);
        finish_chosen(&w, &p);
        rollout_plan_done(&p);
        plan_after(&s, &w, T0 + 3900, &a, &p);
        ASSERT_EQ(p.hold, ROLLOUT_COMPLETE);
        rollout_plan_done(&p);

        /* An older task on a node (failed here) is not this rollout's
         * start. */
        world_init(&w, 4, "1.0");
        w.nodes[0].task_id = OLD_TASK;
        w.nodes[0].phase_task_id = OLD_TASK;
        w.nodes[0].phase = NODE_PHASE_FAILED;
        plan_after(&s, &w, T0, NULL, &p);
        ASSERT_EQ(p.hold, ROLLOUT_WAITING_FOR_PROMOTION);
        rollout_plan_done(&p);

        /* Complete wins: every node at the version already. */
        world_init(&w, 4, "2.0");
        plan_after(&s, &w, T0, NULL, &p);
        ASSERT_EQ(p.hold, ROLLOUT_COMPLETE);
        rollout_plan_done(&p);
        os_spec_done(&s);

        /* soakSeconds 0: Complete is enough, from the second it is. */
        spec_parse("\"strategy\":{\"after\":{\"os\":\"staging\"}}", &s);
        world_init(&w, 4, "1.0");
        a = (RolloutPromotion) { .exists = true, .version = "2.0", .complete = true, .complete_since = T0, .desired = 1 };
        plan_after(&s, &w, T0, &a, &p);
        ASSERT_EQ(p.hold, ROLLOUT_GO);
        rollout_plan_done(&p);
        a.complete = false;
        plan_after(&s, &w, T0, &a, &p);
        ASSERT_EQ(p.hold, ROLLOUT_WAITING_FOR_PROMOTION);
        ASSERT_STREQ(p.message, "batch 1/1: 0 of 4 nodes updated, 0 in progress, waiting for OS staging to be "
                                "Complete at 2.0: OS staging is not Complete");
        rollout_plan_done(&p);
        os_spec_done(&s);

        /* A rollback (an emergency) and a config rollout are not gated. */
        spec_parse_text("{\"version\":\"1.0\",\"operation\":\"rollback\","
                        "\"strategy\":{\"after\":{\"os\":\"staging\",\"soakSeconds\":3600}}}",
                        &s);
        world_init(&w, 4, "2.0");
        plan_after(&s, &w, T0, NULL, &p);
        ASSERT_EQ(p.hold, ROLLOUT_GO);
        ASSERT_EQ(p.n_choose, 1);
        rollout_plan_done(&p);
        os_spec_done(&s);
        spec_parse_text("{\"version\":\"1.0\",\"operation\":\"config\",\"config\":{\"generation\":3},"
                        "\"strategy\":{\"after\":{\"os\":\"staging\",\"soakSeconds\":3600}}}",
                        &s);
        world_init(&w, 4, "1.0");
        plan_after(&s, &w, T0, NULL, &p);
        ASSERT_EQ(p.hold, ROLLOUT_GO);
        rollout_plan_done(&p);
        os_spec_done(&s);
}

static void test_image_too_new(void) {
        OsSpec s;
        World w;
        RolloutPlan p;

        ASSERT_STREQ(rollout_hold_to_string(ROLLOUT_IMAGE_TOO_NEW), "ImageTooNew");
        /* created T0 (2023-11-14T22:13:20Z), at least 600 s old. */
        spec_parse_text("{\"version\":\"2.0\",\"operation\":\"upgrade\",\"image\":{\"url\":\"https://u.example/2.0.hull\","
                        "\"sha256\":\"" SHA "\",\"created\":\"2023-11-14T22:13:20Z\"},"
                        "\"strategy\":{\"maxUnavailable\":2,\"minImageAgeSeconds\":600}}",
                        &s);
        ASSERT_EQ(s.image.created, T0);
        world_init(&w, 4, "1.0");
        plan_after(&s, &w, T0 - 100, NULL, &p); /* a clock behind the publisher's */
        ASSERT_EQ(p.hold, ROLLOUT_IMAGE_TOO_NEW);
        ASSERT_EQ(p.requeue_at, T0 + 600);
        rollout_plan_done(&p);
        plan_after(&s, &w, T0 + 599, NULL, &p);
        ASSERT_EQ(p.hold, ROLLOUT_IMAGE_TOO_NEW);
        ASSERT_EQ(p.n_choose, 0);
        ASSERT_EQ(p.requeue_at, T0 + 600);
        ASSERT_STREQ(p.message, "batch 1/1: 0 of 4 nodes updated, 0 in progress, image 2.0 created "
                                "2023-11-14T22:13:20Z is too new: minImageAgeSeconds 600, starting at "
                                "2023-11-14T22:23:20Z");
        rollout_plan_done(&p);
        /* Paused comes first; ImageTooNew before a promotion gate. */
        s.paused = true;
        plan_after(&s, &w, T0, NULL, &p);
        ASSERT_EQ(p.hold, ROLLOUT_PAUSED);
        rollout_plan_done(&p);
        s.paused = false;
        free(s.after_os);
        s.after_os = strdup("staging");
        ASSERT_TRUE(s.after_os);
        plan_after(&s, &w, T0, NULL, &p);
        ASSERT_EQ(p.hold, ROLLOUT_IMAGE_TOO_NEW);
        rollout_plan_done(&p);
        plan_after(&s, &w, T0 + 600, NULL, &p);
        ASSERT_EQ(p.hold, ROLLOUT_WAITING_FOR_PROMOTION);
        rollout_plan_done(&p);
        free(s.after_os);
        s.after_os = NULL;
        /* Exactly at created + minImageAgeSeconds: it starts. */
        plan_after(&s, &w, T0 + 600, NULL, &p);
        ASSERT_EQ(p.hold, ROLLOUT_GO);
        ASSERT_EQ(p.n_choose, 2);
        apply(&w, &p, T0 + 600);
        rollout_plan_done(&p);
        /* Started: a later created (an edit) stops nothing. */
        s.image.created = T0 + 10000;
        node_starts(&w, 0);
        node_done(&w, 0, "2.0");
        plan_after(&s, &w, T0 + 700, NULL, &p);
        ASSERT_EQ(p.hold, ROLLOUT_GO);
        ASSERT_EQ(p.n_choose, 1);
        rollout_plan_done(&p);
        os_spec_done(&s);

        /* A rollback is not gated. */
        spec_parse_text("{\"version\":\"1.0\",\"operation\":\"rollback\",\"image\":{\"created\":\"2023-11-14T22:13:20Z\"},"
                        "\"strategy\":{\"minImageAgeSeconds\":600}}",
                        &s);
        world_init(&w, 4, "2.0");
        plan_after(&s, &w, T0, NULL, &p);
        ASSERT_EQ(p.hold, ROLLOUT_GO);
        rollout_plan_done(&p);
        os_spec_done(&s);
}

int main(void) {
        TEST_RUN(test_phase_strings);
        TEST_RUN(test_node_state);
        TEST_RUN(test_simple_rolling);
        TEST_RUN(test_not_ready_eats_budget);
        TEST_RUN(test_unavailable_elsewhere);
        TEST_RUN(test_canary_batches);
        TEST_RUN(test_already_updated_count);
        TEST_RUN(test_failure_budget);
        TEST_RUN(test_quarantine);
        TEST_RUN(test_window_and_pause);
        TEST_RUN(test_complete_and_empty);
        TEST_RUN(test_version_skew);
        TEST_RUN(test_promotion);
        TEST_RUN(test_image_too_new);
        TEST_RUN(test_random_simulation);
        return 0;
}
