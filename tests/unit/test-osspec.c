/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <jansson.h>
#include <time.h>

#include "kube.h"
#include "osspec.h"
#include "tests.h"

#define SHA "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static json_t *load(const char *text) {
        json_error_t e;
        json_t *j = json_loads(text, 0, &e);
        if (!j) {
                fprintf(stderr, "bad test JSON: %s: %s\n", e.text, text);
                abort();
        }
        return j;
}

static int parse(const char *text, OsSpec *ret, char **ret_error) {
        json_t *j = load(text);
        int r = os_spec_parse(j, ret, ret_error);
        json_decref(j);
        return r;
}

/* A valid upgrade spec with 'extra' members spliced in ("" for none). */
static char *upgrade_with(const char *extra) {
        char *s;
        ASSERT_TRUE(asprintf(&s,
                             "{\"version\":\"1.2.0\",\"operation\":\"upgrade\","
                             "\"image\":{\"url\":\"https://updates.example.com/hull-1.2.0.hull\",\"sha256\":\"" SHA
                             "\"}%s%s}",
                             *extra ? "," : "", extra) > 0);
        return s;
}

static void expect_ok(const char *text, OsSpec *ret) {
        _cleanup_free_ char *err = NULL;
        int r = parse(text, ret, &err);
        if (r < 0) {
                fprintf(stderr, "unexpected failure: %s\n  for %s\n", err ?: "(no message)", text);
                abort();
        }
        ASSERT_TRUE(err == NULL);
}

static void expect_bad(const char *text, const char *substr) {
        _cleanup_free_ char *err = NULL;
        OsSpec s = { .version = (char *) "untouched" };
        int r = parse(text, &s, &err);
        if (r != -EINVAL || !err || !strstr(err, substr)) {
                fprintf(stderr, "for %s\n  got %d \"%s\", wanted -EINVAL with \"%s\"\n", text, r, err ?: "(null)",
                        substr);
                abort();
        }
        /* Nothing filled on error. */
        ASSERT_STREQ(s.version, "untouched");
}

static void expect_bad_extra(const char *extra, const char *substr) {
        _cleanup_free_ char *t = upgrade_with(extra);
        expect_bad(t, substr);
}

static void test_minimal_and_defaults(void) {
        _cleanup_free_ char *t = upgrade_with("");
        OsSpec s;

        expect_ok(t, &s);
        ASSERT_STREQ(s.version, "1.2.0");
        ASSERT_EQ(s.operation, OS_OPERATION_UPGRADE);
        ASSERT_STREQ(s.image.url, "https://updates.example.com/hull-1.2.0.hull");
        ASSERT_STREQ(s.image.sha256, SHA);
        ASSERT_TRUE(s.image.key_id == NULL);
        ASSERT_STREQ(s.node_selector, "");
        ASSERT_EQ(s.max_unavailable.percent, false);
        ASSERT_EQ(s.max_unavailable.value, 1);
        ASSERT_EQ(s.n_batches, 0);
        ASSERT_EQ(s.approved_batches, 0);
        ASSERT_EQ(s.paused, false);
        ASSERT_EQ(s.failure_budget, 1);
        ASSERT_EQ(s.node_timeout_seconds, 3600);
        ASSERT_EQ(s.window.set, false);
        ASSERT_EQ(s.drain.timeout_seconds, 600);
        ASSERT_EQ(s.drain.grace_period_seconds, -1);
        ASSERT_EQ(s.drain.delete_empty_dir_data, false);
        ASSERT_EQ(s.drain.force, false);
        ASSERT_TRUE(s.config == NULL);
        ASSERT_EQ(s.config_generation, 0);
        os_spec_done(&s);
        ASSERT_TRUE(s.version == NULL);
        os_spec_done(&s); /* twice is fine */

        /* An unset window is always open. */
        bool open = false;
        int64_t next = 42;
        ASSERT_OK(os_window_open(&s.window, 1700000000, &open, &next));
        ASSERT_TRUE(open);
        ASSERT_EQ(next, 0);
}

static void test_full(void) {
        OsSpec s;
        expect_ok("{\"version\":\"2.0.1-rc1\",\"operation\":\"upgrade\","
                  "\"nodeSelector\":{\"node-role.kubernetes.io/worker\":\"\",\"hull.dev/group\":\"workers\"},"
                  "\"image\":{\"url\":\"http://10.0.0.1/a.hull\",\"sha256\":\"" SHA "\",\"keyId\":\"0011223344556677\","
                  "\"kubeletVersion\":\"v1.33.0-rc.1\"},"
                  "\"strategy\":{\"maxUnavailable\":\"25%\",\"batches\":[{\"nodes\":1,\"manualGate\":true},"
                  "{\"nodes\":\"10%\",\"pauseSeconds\":600},{\"nodes\":\"100%\"}],\"approvedBatches\":1,"
                  "\"paused\":true,\"failureBudget\":0,\"nodeTimeoutSeconds\":60},"
                  "\"window\":{\"days\":[\"Sat\",\"Sun\"],\"start\":\"22:00\",\"end\":\"04:30\",\"timeZone\":\"Europe/Berlin\"},"
                  "\"drain\":{\"timeoutSeconds\":0,\"gracePeriodSeconds\":30,\"deleteEmptyDirData\":true,\"force\":true},"
                  "\"config\":{\"generation\":7,\"sysctl\":{\"vm.max_map_count\":\"262144\"}}}",
                  &s);
        ASSERT_STREQ(s.node_selector, "hull.dev/group=workers,node-role.kubernetes.io/worker=");
        ASSERT_STREQ(s.image.key_id, "0011223344556677");
        ASSERT_STREQ(s.image.kubelet_version, "v1.33.0-rc.1");
        ASSERT_EQ(s.max_unavailable.percent, true);
        ASSERT_EQ(s.max_unavailable.value, 25);
        ASSERT_EQ(s.n_batches, 3);
        ASSERT_EQ(s.batches[0].nodes.percent, false);
        ASSERT_EQ(s.batches[0].nodes.value, 1);
        ASSERT_EQ(s.batches[0].pause, OS_PAUSE_MANUAL);
        ASSERT_EQ(s.batches[1].nodes.percent, true);
        ASSERT_EQ(s.batches[1].nodes.value, 10);
        ASSERT_EQ(s.batches[1].pause, OS_PAUSE_DURATION);
        ASSERT_EQ(s.batches[1].pause_seconds, 600);
        ASSERT_EQ(s.batches[2].pause, OS_PAUSE_NONE);
        ASSERT_EQ(s.approved_batches, 1);
        ASSERT_EQ(s.paused, true);
        ASSERT_EQ(s.failure_budget, 0);
        ASSERT_EQ(s.node_timeout_seconds, 60);
        ASSERT_EQ(s.window.set, true);
        ASSERT_EQ(s.window.days, (1 << 0) | (1 << 6));
        ASSERT_EQ(s.window.start_minute, 22 * 60);
        ASSERT_EQ(s.window.end_minute, 4 * 60 + 30);
        ASSERT_STREQ(s.window.time_zone, "Europe/Berlin");
        ASSERT_EQ(s.drain.timeout_seconds, 0);
        ASSERT_EQ(s.drain.grace_period_seconds, 30);
        ASSERT_EQ(s.drain.delete_empty_dir_data, true);
        ASSERT_EQ(s.drain.force, true);
        ASSERT_TRUE(json_is_object(s.config));
        ASSERT_EQ(s.config_generation, 7);
        os_spec_done(&s);

        /* Window defaults: every day, UTC. */
        _cleanup_free_ char *t = upgrade_with("\"window\":{\"start\":\"01:00\",\"end\":\"02:00\"}");
        expect_ok(t, &s);
        ASSERT_EQ(s.window.days, 0x7f);
        ASSERT_STREQ(s.window.time_zone, "UTC");
        os_spec_done(&s);

        /* Rollback and config need no image; null members count as absent. */
        expect_ok("{\"version\":\"1.1.0\",\"operation\":\"rollback\",\"image\":null,\"strategy\":null}", &s);
        ASSERT_EQ(s.operation, OS_OPERATION_ROLLBACK);
        ASSERT_TRUE(s.image.url == NULL);
        ASSERT_EQ(s.max_unavailable.value, 1);
        os_spec_done(&s);
        expect_ok("{\"version\":\"1.1.0\",\"operation\":\"config\",\"config\":{\"generation\":3}}", &s);
        ASSERT_EQ(s.operation, OS_OPERATION_CONFIG);
        ASSERT_EQ(s.config_generation, 3);
        os_spec_done(&s);
}

static void test_errors(void) {
        /* top level */
        expect_bad("[]", "spec: must be an object");
        expect_bad("{\"operation\":\"upgrade\"}", "spec.version: required");
        expect_bad("{\"version\":\"1\"}", "spec.operation: required");
        expect_bad("{\"version\":\"1\",\"operation\":\"downgrade\"}", "spec.operation: \"downgrade\" is not one of");
        expect_bad("{\"version\":\"1\",\"operation\":7}", "spec.operation: must be a string");
        expect_bad("{\"version\":\"-1\",\"operation\":\"rollback\"}", "spec.version: \"-1\" is not a version");
        expect_bad("{\"version\":\"1 2\",\"operation\":\"rollback\"}", "spec.version");
        expect_bad("{\"version\":\"\",\"operation\":\"rollback\"}", "spec.version");
        expect_bad("{\"version\":\"1\",\"operation\":\"rollback\",\"verison\":\"2\"}", "spec: unknown field \"verison\"");

        /* image */
        /* the twin of the CRD's CEL rule on spec: the same words after "spec: " */
        expect_bad("{\"version\":\"1\",\"operation\":\"upgrade\"}",
                   "spec: spec.image.url and spec.image.sha256 are required for operation upgrade");
        expect_bad("{\"version\":\"1\",\"operation\":\"upgrade\",\"image\":{\"url\":\"https://x/y\"}}",
                   "spec: spec.image.url and spec.image.sha256 are required for operation upgrade");
        expect_bad("{\"version\":\"1\",\"operation\":\"upgrade\",\"image\":{\"sha256\":\"" SHA "\"}}",
                   "spec: spec.image.url and spec.image.sha256 are required for operation upgrade");
        expect_bad("{\"version\":\"1\",\"operation\":\"upgrade\",\"image\":{\"url\":null,\"sha256\":\"" SHA "\"}}",
                   "spec: spec.image.url and spec.image.sha256 are required for operation upgrade");
        expect_bad("{\"version\":\"1\",\"operation\":\"upgrade\",\"image\":{\"url\":\"ftp://x/y\",\"sha256\":\"" SHA "\"}}",
                   "spec.image.url: \"ftp://x/y\" is not an http");
        expect_bad("{\"version\":\"1\",\"operation\":\"upgrade\",\"image\":{\"url\":\"https://\",\"sha256\":\"" SHA "\"}}",
                   "spec.image.url");
        expect_bad("{\"version\":\"1\",\"operation\":\"upgrade\",\"image\":{\"url\":\"https://x/a b\",\"sha256\":\"" SHA
                   "\"}}",
                   "spec.image.url");
        expect_bad("{\"version\":\"1\",\"operation\":\"upgrade\",\"image\":{\"url\":\"https://x/y\",\"sha256\":\"abc\"}}",
                   "spec.image.sha256: \"abc\" is not 64 lowercase");
        expect_bad("{\"version\":\"1\",\"operation\":\"upgrade\",\"image\":{\"url\":\"https://x/y\",\"sha256\":"
                   "\"0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef\"}}",
                   "spec.image.sha256");
        expect_bad_extra("\"x\":1", "spec: unknown field \"x\"");

        /* oci:// references: pinned by digest, and sha256 is that digest (the
         * twin of the CEL rule on spec.image). */
#define UP(url, sha) "{\"version\":\"1\",\"operation\":\"upgrade\",\"image\":{\"url\":\"" url "\",\"sha256\":\"" sha "\"}}"
        {
                OsSpec o = {};
                expect_ok(UP("oci://registry.example.com:5000/hull/os@sha256:" SHA, SHA), &o);
                ASSERT_STREQ(o.image.url, "oci://registry.example.com:5000/hull/os@sha256:" SHA);
                os_spec_done(&o);
                expect_ok(UP("oci://registry.example.com/hull/os:2.0.0@sha256:" SHA, SHA), &o);
                os_spec_done(&o);
        }
        expect_bad(UP("oci://registry.example.com/hull/os:2.0.0", SHA), "spec.image.url: \"oci://registry.example.com/hull/os:2.0.0\" is not an http:// or https:// URL or an oci:// reference pinned by digest");
        expect_bad(UP("oci://hull/os@sha256:" SHA, SHA), "spec.image.url");
        expect_bad(UP("oci://registry.example.com/Hull@sha256:" SHA, SHA), "spec.image.url");
        expect_bad(UP("oci://registry.example.com/hull/os@sha256:" SHA,
                      "1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
                   "spec.image: for an oci:// url, sha256 must be the digest the url is pinned by");
#undef UP
        expect_bad("{\"version\":\"1\",\"operation\":\"upgrade\",\"image\":{\"url\":\"https://x/y\",\"sha256\":\"" SHA
                   "\",\"keyId\":\"00112233\"}}",
                   "spec.image.keyId: \"00112233\" is not 16");
        expect_bad("{\"version\":\"1\",\"operation\":\"upgrade\",\"image\":{\"url\":\"https://x/y\",\"sha256\":\"" SHA
                   "\",\"kubeletVersion\":\"1.32.0\"}}",
                   "spec.image.kubeletVersion: \"1.32.0\" is not a Kubernetes version such as v1.32.0");
        expect_bad("{\"version\":\"1\",\"operation\":\"upgrade\",\"image\":{\"url\":\"https://x/y\",\"sha256\":\"" SHA
                   "\",\"kubeletVersion\":132}}",
                   "spec.image.kubeletVersion");
        expect_bad("{\"version\":\"1\",\"operation\":\"upgrade\",\"image\":{\"url\":\"https://x/y\",\"sha256\":\"" SHA
                   "\",\"digest\":\"x\"}}",
                   "spec.image: unknown field \"digest\"");

        /* strategy */
        /* int-or-string fields: the words of their CEL rules, after the value */
#define MU_WORDS "must be a count from 0 to 1000000000 or a percentage from 0% to 100%"
#define NODES_WORDS "must be a count from 1 to 1000000000 or a percentage from 0% to 100%"
        expect_bad_extra("\"strategy\":{\"maxUnavailable\":-1}", "spec.strategy.maxUnavailable: -1: " MU_WORDS);
        expect_bad_extra("\"strategy\":{\"maxUnavailable\":1000000001}",
                         "spec.strategy.maxUnavailable: 1000000001: " MU_WORDS);
        expect_bad_extra("\"strategy\":{\"maxUnavailable\":\"120%\"}",
                         "spec.strategy.maxUnavailable: \"120%\": " MU_WORDS);
        expect_bad_extra("\"strategy\":{\"maxUnavailable\":\"abc\"}", "spec.strategy.maxUnavailable: \"abc\": " MU_WORDS);
        expect_bad_extra("\"strategy\":{\"maxUnavailable\":\"05%\"}", "spec.strategy.maxUnavailable: \"05%\": " MU_WORDS);
        expect_bad_extra("\"strategy\":{\"maxUnavailable\":\"5\"}", "spec.strategy.maxUnavailable: \"5\": " MU_WORDS);
        expect_bad_extra("\"strategy\":{\"maxUnavailable\":\"-5%\"}", "spec.strategy.maxUnavailable: \"-5%\": " MU_WORDS);
        expect_bad_extra("\"strategy\":{\"maxUnavailable\":\"5.5%\"}", "spec.strategy.maxUnavailable: \"5.5%\": " MU_WORDS);
        expect_bad_extra("\"strategy\":{\"maxUnavailable\":\"%\"}", "spec.strategy.maxUnavailable: \"%\": " MU_WORDS);
        expect_bad_extra("\"strategy\":{\"maxUnavailable\":\"1000%\"}", "spec.strategy.maxUnavailable: \"1000%\": " MU_WORDS);
        expect_bad_extra("\"strategy\":{\"maxUnavailable\":1.5}", "spec.strategy.maxUnavailable: must be an integer or");
        expect_bad_extra("\"strategy\":{\"maxUnavailable\":true}", "spec.strategy.maxUnavailable");
        expect_bad_extra("\"strategy\":{\"batches\":{}}", "spec.strategy.batches: must be an array");
        expect_bad_extra("\"strategy\":{\"batches\":[{\"nodes\":0}]}", "spec.strategy.batches[0].nodes: 0: " NODES_WORDS);
        expect_bad_extra("\"strategy\":{\"batches\":[{\"nodes\":1},{\"nodes\":-3}]}",
                         "spec.strategy.batches[1].nodes: -3: " NODES_WORDS);
        expect_bad_extra("\"strategy\":{\"batches\":[{\"nodes\":\"10 %\"}]}",
                         "spec.strategy.batches[0].nodes: \"10 %\": " NODES_WORDS);
        expect_bad_extra("\"strategy\":{\"batches\":[{\"nodes\":1},{}]}", "spec.strategy.batches[1].nodes: required");
        expect_bad_extra("\"strategy\":{\"batches\":[{\"nodes\":\"101%\"}]}",
                         "spec.strategy.batches[0].nodes: \"101%\": " NODES_WORDS);
        expect_bad_extra("\"strategy\":{\"batches\":[{\"nodes\":1,\"pauseSeconds\":-1}]}",
                         "spec.strategy.batches[0].pauseSeconds: -1 is less than 0");
        expect_bad_extra("\"strategy\":{\"batches\":[{\"nodes\":1,\"pauseSeconds\":5,\"manualGate\":true}]}",
                         "spec.strategy.batches[0]: manualGate and pauseSeconds exclude each other");
        expect_bad_extra("\"strategy\":{\"batches\":[{\"nodes\":1,\"manualGate\":\"yes\"}]}",
                         "spec.strategy.batches[0].manualGate: must be a boolean");
        expect_bad_extra("\"strategy\":{\"batches\":[{\"nodes\":1,\"gate\":true}]}",
                         "spec.strategy.batches[0]: unknown field \"gate\"");
        expect_bad_extra("\"strategy\":{\"approvedBatches\":-1}", "spec.strategy.approvedBatches");
        expect_bad_extra("\"strategy\":{\"failureBudget\":-2}", "spec.strategy.failureBudget: -2 is less than 0");
        expect_bad_extra("\"strategy\":{\"nodeTimeoutSeconds\":59}", "spec.strategy.nodeTimeoutSeconds: 59 is less than 60");
        expect_bad_extra("\"strategy\":{\"nodeTimeoutSeconds\":99999999999}", "spec.strategy.nodeTimeoutSeconds");
        expect_bad_extra("\"strategy\":{\"paused\":1}", "spec.strategy.paused: must be a boolean");
        expect_bad_extra("\"strategy\":[]", "spec.strategy: must be an object");

        /* window */
        expect_bad_extra("\"window\":{\"start\":\"25:00\",\"end\":\"02:00\"}", "spec.window.start: \"25:00\" is not a time");
        expect_bad_extra("\"window\":{\"start\":\"01:00\",\"end\":\"2:00\"}", "spec.window.end: \"2:00\" is not a time");
        expect_bad_extra("\"window\":{\"start\":\"01:00\",\"end\":\"01:60\"}", "spec.window.end");
        expect_bad_extra("\"window\":{\"end\":\"01:00\"}", "spec.window.start: required");
        expect_bad_extra("\"window\":{\"start\":\"01:00\",\"end\":\"01:00\"}",
                         "spec.window: start and end must differ: an empty window never opens (leave the window out "
                         "for always)");
        expect_bad_extra("\"window\":{\"start\":\"01:00\",\"end\":\"02:00\",\"days\":[\"Monday\"]}",
                         "spec.window.days[0]: \"Monday\" is not one of");
        expect_bad_extra("\"window\":{\"start\":\"01:00\",\"end\":\"02:00\",\"days\":[\"Mon\",\"Mon\"]}",
                         "spec.window.days[1]: Mon given twice");
        expect_bad_extra("\"window\":{\"start\":\"01:00\",\"end\":\"02:00\",\"days\":[]}", "spec.window.days");
        expect_bad_extra("\"window\":{\"start\":\"01:00\",\"end\":\"02:00\",\"timeZone\":\"Mars/Olympus_Mons\"}",
                         "spec.window.timeZone: \"Mars/Olympus_Mons\" is not a time zone");
        expect_bad_extra("\"window\":{\"start\":\"01:00\",\"end\":\"02:00\",\"timeZone\":\"../../etc/passwd\"}",
                         "spec.window.timeZone");
        expect_bad_extra("\"window\":{\"start\":\"01:00\",\"end\":\"02:00\",\"timeZone\":\"/etc/localtime\"}",
                         "spec.window.timeZone");
        expect_bad_extra("\"window\":{\"start\":\"01:00\",\"end\":\"02:00\",\"timeZone\":\"Europe\"}", /* a directory */
                         "spec.window.timeZone");
        expect_bad_extra("\"window\":{\"start\":\"01:00\",\"end\":\"02:00\",\"timeZone\":\"CET-1CEST\"}",
                         "spec.window.timeZone");

        /* drain */
        expect_bad_extra("\"drain\":{\"timeoutSeconds\":-1}", "spec.drain.timeoutSeconds: -1 is less than 0");
        expect_bad_extra("\"drain\":{\"gracePeriodSeconds\":-2}", "spec.drain.gracePeriodSeconds: -2 is less than -1");
        expect_bad_extra("\"drain\":{\"force\":\"true\"}", "spec.drain.force: must be a boolean");

        /* selector */
        expect_bad_extra("\"nodeSelector\":{\"a\":1}", "spec.nodeSelector.a: must be a string");
        expect_bad_extra("\"nodeSelector\":{\"bad key!\":\"x\"}", "spec.nodeSelector: \"bad key!\" is not a valid label key");
        expect_bad_extra("\"nodeSelector\":{\"a\":\"b,c=d\"}", "spec.nodeSelector.a: \"b,c=d\" is not a valid label value");

        /* config, checked by the node config parser */
        expect_bad("{\"version\":\"1\",\"operation\":\"config\"}", "spec: spec.config is required for operation config");
        expect_bad("{\"version\":\"1\",\"operation\":\"config\",\"config\":{\"sysctl\":{}}}", "spec.config.generation: required");
        expect_bad("{\"version\":\"1\",\"operation\":\"config\",\"config\":{\"generation\":0}}", "spec.config.generation");
        expect_bad("{\"version\":\"1\",\"operation\":\"config\",\"config\":{\"generation\":2,\"sysctls\":{}}}",
                   "spec.config.");
        expect_bad("{\"version\":\"1\",\"operation\":\"config\",\"config\":{\"generation\":2,"
                   "\"files\":[{\"path\":\"/usr/bin/x\",\"content\":\"\"}]}}",
                   "spec.config.files[0].path");
        expect_bad("{\"version\":\"1\",\"operation\":\"config\",\"config\":[]}", "spec.config: must be an object");

        /* Hostile strings are quoted and escaped, never copied raw. */
        _cleanup_free_ char *err = NULL;
        OsSpec s;
        ASSERT_ERROR(parse("{\"version\":\"1\",\"operation\":\"a\\u0001\\\"b\"}", &s, &err), EINVAL);
        ASSERT_TRUE(strstr(err, "\"a\\x01\\\"b\""));
        /* ret_error may be NULL. */
        ASSERT_ERROR(parse("{}", &s, NULL), EINVAL);
        ASSERT_ERROR(os_spec_parse(NULL, &s, NULL), EINVAL);
}

static void test_percent_resolve(void) {
        OsIntOrPercent p10 = { .percent = true, .value = 10 }, p0 = { .percent = true, .value = 0 },
                       p100 = { .percent = true, .value = 100 }, p25 = { .percent = true, .value = 25 },
                       n0 = { .value = 0 }, n3 = { .value = 3 }, n50 = { .value = 50 };

        ASSERT_EQ(os_int_or_percent_resolve(&p10, 10, false), 1);
        ASSERT_EQ(os_int_or_percent_resolve(&p10, 11, false), 2); /* 1.1 rounds up */
        ASSERT_EQ(os_int_or_percent_resolve(&p10, 5, false), 1);  /* 0.5 rounds up */
        ASSERT_EQ(os_int_or_percent_resolve(&p10, 100, false), 10);
        ASSERT_EQ(os_int_or_percent_resolve(&p25, 7, false), 2);
        ASSERT_EQ(os_int_or_percent_resolve(&p100, 7, false), 7);
        ASSERT_EQ(os_int_or_percent_resolve(&p0, 7, false), 0);
        ASSERT_EQ(os_int_or_percent_resolve(&p0, 7, true), 1);
        ASSERT_EQ(os_int_or_percent_resolve(&n0, 7, false), 0);
        ASSERT_EQ(os_int_or_percent_resolve(&n0, 7, true), 1);
        ASSERT_EQ(os_int_or_percent_resolve(&n3, 7, true), 3);
        ASSERT_EQ(os_int_or_percent_resolve(&n50, 7, false), 7); /* capped at total */
        ASSERT_EQ(os_int_or_percent_resolve(&n3, 0, true), 0);   /* nothing to resolve against */
        ASSERT_EQ(os_int_or_percent_resolve(&p100, 0, true), 0);
}

/* Unix time of a UTC calendar time. */
static int64_t utc(int y, int mo, int d, int h, int mi) {
        struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi };
        return (int64_t) timegm(&tm);
}

static bool is_open(const OsWindow *w, int64_t t, int64_t *next) {
        bool open;
        int64_t n;
        ASSERT_OK(os_window_open(w, t, &open, &n));
        if (next)
                *next = n;
        if (open)
                ASSERT_EQ(n, 0);
        else
                ASSERT_TRUE(n > t);
        return open;
}

#define DAY(d) (1u << (d)) /* 0 Sun .. 6 Sat */

static void test_window_utc(void) {
        OsWindow w = { .set = true, .days = 0x7f, .start_minute = 60, .end_minute = 180, .time_zone = (char *) "UTC" };
        int64_t next;

        /* 2024-03-04 is a Monday. */
        ASSERT_TRUE(!is_open(&w, utc(2024, 3, 4, 0, 59), &next));
        ASSERT_EQ(next, utc(2024, 3, 4, 1, 0));
        ASSERT_TRUE(is_open(&w, utc(2024, 3, 4, 1, 0), NULL));
        ASSERT_TRUE(is_open(&w, utc(2024, 3, 4, 2, 59), NULL));
        ASSERT_TRUE(!is_open(&w, utc(2024, 3, 4, 3, 0), &next)); /* end is exclusive */
        ASSERT_EQ(next, utc(2024, 3, 5, 1, 0));

        /* Monday only: from Monday after the window, a week later. */
        w.days = DAY(1);
        ASSERT_TRUE(!is_open(&w, utc(2024, 3, 4, 12, 0), &next));
        ASSERT_EQ(next, utc(2024, 3, 11, 1, 0));
        ASSERT_TRUE(!is_open(&w, utc(2024, 3, 5, 1, 30), &next)); /* Tuesday */
        ASSERT_EQ(next, utc(2024, 3, 11, 1, 0));
        ASSERT_TRUE(is_open(&w, utc(2024, 3, 11, 1, 30), NULL));

        /* Saturday and Sunday. */
        w.days = DAY(6) | DAY(0);
        ASSERT_TRUE(!is_open(&w, utc(2024, 3, 6, 1, 30), &next)); /* Wednesday */
        ASSERT_EQ(next, utc(2024, 3, 9, 1, 0));
        ASSERT_TRUE(is_open(&w, utc(2024, 3, 10, 2, 0), NULL)); /* Sunday */

        /* Unknown zone: -EINVAL. */
        bool open;
        w.time_zone = (char *) "Nowhere/Atlantis";
        ASSERT_ERROR(os_window_open(&w, utc(2024, 3, 4, 1, 0), &open, NULL), EINVAL);
        w.time_zone = NULL; /* NULL is UTC */
        ASSERT_OK(os_window_open(&w, utc(2024, 3, 10, 2, 0), &open, NULL));
        ASSERT_TRUE(open);
}

static void test_window_midnight(void) {
        /* Monday 22:00 to Tuesday 04:00: the day list names the start day. */
        OsWindow w = { .set = true, .days = DAY(1), .start_minute = 22 * 60, .end_minute = 4 * 60,
                       .time_zone = (char *) "UTC" };
        int64_t next;

        ASSERT_TRUE(!is_open(&w, utc(2024, 3, 4, 3, 0), &next)); /* Monday 03:00: Sunday's window is not listed */
        ASSERT_EQ(next, utc(2024, 3, 4, 22, 0));
        ASSERT_TRUE(!is_open(&w, utc(2024, 3, 4, 21, 59), &next));
        ASSERT_EQ(next, utc(2024, 3, 4, 22, 0));
        ASSERT_TRUE(is_open(&w, utc(2024, 3, 4, 22, 0), NULL));
        ASSERT_TRUE(is_open(&w, utc(2024, 3, 4, 23, 59), NULL));
        ASSERT_TRUE(is_open(&w, utc(2024, 3, 5, 0, 0), NULL)); /* Tuesday morning belongs to Monday's window */
        ASSERT_TRUE(is_open(&w, utc(2024, 3, 5, 3, 59), NULL));
        ASSERT_TRUE(!is_open(&w, utc(2024, 3, 5, 4, 0), &next));
        ASSERT_EQ(next, utc(2024, 3, 11, 22, 0));
        ASSERT_TRUE(!is_open(&w, utc(2024, 3, 5, 22, 30), NULL)); /* Tuesday evening: not listed */
}

static void test_window_dst(void) {
        /* Europe/Berlin: 2024-03-31 02:00 CET jumps to 03:00 CEST (01:00 UTC);
         * 2024-10-27 03:00 CEST goes back to 02:00 CET (01:00 UTC). */
        OsWindow w = { .set = true, .days = 0x7f, .start_minute = 1 * 60, .end_minute = 4 * 60,
                       .time_zone = (char *) "Europe/Berlin" };
        int64_t next;

        /* Winter: 01:00 local is 00:00 UTC. */
        ASSERT_TRUE(!is_open(&w, utc(2024, 3, 29, 23, 59), &next));
        ASSERT_EQ(next, utc(2024, 3, 30, 0, 0));
        ASSERT_TRUE(is_open(&w, utc(2024, 3, 30, 2, 59), NULL)); /* 03:59 CET */
        ASSERT_TRUE(!is_open(&w, utc(2024, 3, 30, 3, 0), &next));
        /* The next opening is the night of the change: 01:00 CET = 00:00 UTC. */
        ASSERT_EQ(next, utc(2024, 3, 31, 0, 0));
        /* That night the window is three wall-clock hours but two real ones:
         * 04:00 CEST is 02:00 UTC. */
        ASSERT_TRUE(is_open(&w, utc(2024, 3, 31, 1, 30), NULL)); /* 03:30 CEST */
        ASSERT_TRUE(!is_open(&w, utc(2024, 3, 31, 2, 0), &next));
        /* Summer: 01:00 CEST is 23:00 UTC the day before. */
        ASSERT_EQ(next, utc(2024, 3, 31, 23, 0));
        ASSERT_TRUE(!is_open(&w, utc(2024, 3, 31, 22, 59), NULL));
        ASSERT_TRUE(is_open(&w, utc(2024, 3, 31, 23, 0), NULL));

        /* A window starting inside the gap (02:30-05:00) opens at the change,
         * 03:00 CEST = 01:00 UTC, the first wall time at or after 02:30. */
        w.start_minute = 2 * 60 + 30;
        w.end_minute = 5 * 60;
        ASSERT_TRUE(!is_open(&w, utc(2024, 3, 30, 22, 0), &next));
        ASSERT_EQ(next, utc(2024, 3, 31, 1, 0));
        ASSERT_TRUE(is_open(&w, utc(2024, 3, 31, 1, 0), NULL));
        ASSERT_TRUE(!is_open(&w, utc(2024, 3, 31, 0, 59), NULL)); /* 01:59 CET */

        /* A window wholly inside the gap (02:10-02:50, Sundays only) does not
         * open that night; the next opening is a week later, in summer time. */
        w.days = DAY(0);
        w.start_minute = 2 * 60 + 10;
        w.end_minute = 2 * 60 + 50;
        ASSERT_TRUE(!is_open(&w, utc(2024, 3, 30, 22, 0), &next));
        ASSERT_EQ(next, utc(2024, 4, 7, 0, 10));

        /* Autumn: the hour 02:00-03:00 happens twice; a 02:00-03:00 window is
         * open both times. */
        w.days = 0x7f;
        w.start_minute = 2 * 60;
        w.end_minute = 3 * 60;
        ASSERT_TRUE(is_open(&w, utc(2024, 10, 27, 0, 30), NULL)); /* 02:30 CEST */
        ASSERT_TRUE(is_open(&w, utc(2024, 10, 27, 1, 30), NULL)); /* 02:30 CET */
        ASSERT_TRUE(!is_open(&w, utc(2024, 10, 27, 2, 0), NULL)); /* 03:00 CET */

        /* The process's TZ is left as it was. */
        ASSERT_TRUE(setenv("TZ", "America/New_York", 1) == 0);
        tzset();
        ASSERT_TRUE(is_open(&w, utc(2024, 10, 27, 1, 30), NULL));
        ASSERT_STREQ(getenv("TZ"), "America/New_York");
        ASSERT_TRUE(unsetenv("TZ") == 0);
        ASSERT_TRUE(is_open(&w, utc(2024, 10, 27, 1, 30), NULL));
        ASSERT_TRUE(getenv("TZ") == NULL);
}

static void test_window_parsed(void) {
        /* The parsed form drives os_window_open(): Mon 22:00-04:00 New York. */
        _cleanup_free_ char *t = upgrade_with(
                "\"window\":{\"days\":[\"Mon\"],\"start\":\"22:00\",\"end\":\"04:00\",\"timeZone\":\"America/New_York\"}");
        OsSpec s;
        int64_t next;

        expect_ok(t, &s);
        /* 2024-06-10 is a Monday; EDT is UTC-4. */
        ASSERT_TRUE(!is_open(&s.window, utc(2024, 6, 11, 1, 59), &next));
        ASSERT_EQ(next, utc(2024, 6, 11, 2, 0));
        ASSERT_TRUE(is_open(&s.window, utc(2024, 6, 11, 2, 0), NULL));
        ASSERT_TRUE(is_open(&s.window, utc(2024, 6, 11, 7, 59), NULL));
        ASSERT_TRUE(!is_open(&s.window, utc(2024, 6, 11, 8, 0), NULL));
        os_spec_done(&s);
}

static void test_operations(void) {
        ASSERT_STREQ(os_operation_to_string(OS_OPERATION_UPGRADE), "upgrade");
        ASSERT_STREQ(os_operation_to_string(OS_OPERATION_ROLLBACK), "rollback");
        ASSERT_STREQ(os_operation_to_string(OS_OPERATION_CONFIG), "config");
        ASSERT_TRUE(os_operation_to_string((OsOperation) 17) == NULL);
        ASSERT_EQ(os_operation_from_string("config"), OS_OPERATION_CONFIG);
        ASSERT_ERROR(os_operation_from_string("Config"), EINVAL);
        ASSERT_TRUE(os_time_zone_is_valid("UTC"));
        ASSERT_TRUE(os_time_zone_is_valid("Europe/Berlin"));
        ASSERT_TRUE(!os_time_zone_is_valid("Europe/../Europe/Berlin"));
        ASSERT_TRUE(!os_time_zone_is_valid(""));
        ASSERT_TRUE(!os_time_zone_is_valid("zone.tab")); /* not a TZif file */
}

/* Exactly what the CRD's CEL rules accept: every percentage "0%".."100%"
 * (the regex of maxUnavailable, the 101-string list of batch sizes) and the
 * counts at both ends of the range. */
static void test_int_or_percent_forms(void) {
        for (int i = 0; i <= 100; i++) {
                _cleanup_free_ char *extra = NULL, *t = NULL;
                OsSpec s;

                ASSERT_TRUE(asprintf(&extra, "\"strategy\":{\"maxUnavailable\":\"%d%%\",\"batches\":[{\"nodes\":\"%d%%\"}]}",
                                     i, i) > 0);
                t = upgrade_with(extra);
                expect_ok(t, &s);
                ASSERT_EQ(s.max_unavailable.percent, true);
                ASSERT_EQ(s.max_unavailable.value, i);
                ASSERT_EQ(s.batches[0].nodes.value, i);
                os_spec_done(&s);
        }
        static const char *const ok_counts[] = {
                "\"strategy\":{\"maxUnavailable\":0,\"batches\":[{\"nodes\":1}]}",
                "\"strategy\":{\"maxUnavailable\":1000000000,\"batches\":[{\"nodes\":1000000000}]}",
        };
        for (size_t i = 0; i < ELEMENTSOF(ok_counts); i++) {
                _cleanup_free_ char *t = upgrade_with(ok_counts[i]);
                OsSpec s;
                expect_ok(t, &s);
                os_spec_done(&s);
        }
        static const char *const bad[] = { "00%", "01%", "100", "0", "%", "1%%", "+5%", " 5%", "5% ", "101%", "99.%" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *extra = NULL, *want = NULL;
                ASSERT_TRUE(asprintf(&extra, "\"strategy\":{\"batches\":[{\"nodes\":\"%s\"}]}", bad[i]) > 0);
                ASSERT_TRUE(asprintf(&want, "spec.strategy.batches[0].nodes: \"%s\": %s", bad[i], NODES_WORDS) > 0);
                expect_bad_extra(extra, want);
        }
}


#define IMG_URL "\"url\":\"https://updates.example.com/hull-1.2.0.hull\",\"sha256\":\"" SHA "\""

static void test_gates(void) {
        OsSpec s;

        /* Defaults: no gate. */
        {
                _cleanup_free_ char *t = upgrade_with("");
                expect_ok(t, &s);
                ASSERT_TRUE(s.after_os == NULL);
                ASSERT_EQ(s.after_soak_seconds, 0);
                ASSERT_EQ(s.min_image_age_seconds, 0);
                ASSERT_TRUE(!s.image.has_created);
                ASSERT_EQ(os_spec_check_name(&s, "production", NULL), 0);
                os_spec_done(&s);
        }
        /* Both gates. */
        expect_ok("{\"version\":\"1.2.0\",\"operation\":\"upgrade\",\"image\":{" IMG_URL
                  ",\"created\":\"2026-12-03T10:00:00Z\"},\"strategy\":{\"after\":{\"os\":\"staging.eu-1\","
                  "\"soakSeconds\":3600},\"minImageAgeSeconds\":86400}}",
                  &s);
        ASSERT_STREQ(s.after_os, "staging.eu-1");
        ASSERT_EQ(s.after_soak_seconds, 3600);
        ASSERT_EQ(s.min_image_age_seconds, 86400);
        ASSERT_TRUE(s.image.has_created);
        ASSERT_EQ(s.image.created, 1796292000); /* date -u -d 2026-12-03T10:00:00Z +%s */
        ASSERT_EQ(os_spec_check_name(&s, "production", NULL), 0);
        {
                _cleanup_free_ char *err = NULL;
                ASSERT_EQ(os_spec_check_name(&s, "staging.eu-1", &err), -EINVAL);
                ASSERT_STREQ(err, "spec.strategy.after.os: \"staging.eu-1\": must name another OS object, not this one");
        }
        os_spec_done(&s);

        /* soakSeconds defaults to 0; the edges. */
        expect_ok("{\"version\":\"1.2.0\",\"operation\":\"upgrade\",\"image\":{" IMG_URL "},"
                  "\"strategy\":{\"after\":{\"os\":\"a\"}}}",
                  &s);
        ASSERT_STREQ(s.after_os, "a");
        ASSERT_EQ(s.after_soak_seconds, 0);
        os_spec_done(&s);
        {
                _cleanup_free_ char *t = upgrade_with("\"strategy\":{\"after\":{\"os\":\"s\",\"soakSeconds\":31536000}}");
                expect_ok(t, &s);
                ASSERT_EQ(s.after_soak_seconds, 31536000);
                os_spec_done(&s);
        }
        /* Other operations may carry the gates (they do not apply); a
         * rollback needs no image.created for minImageAgeSeconds. */
        expect_ok("{\"version\":\"1.1.0\",\"operation\":\"rollback\",\"strategy\":{\"after\":{\"os\":\"staging\"},"
                  "\"minImageAgeSeconds\":60}}",
                  &s);
        ASSERT_EQ(s.min_image_age_seconds, 60);
        os_spec_done(&s);
        /* minImageAgeSeconds 0 without created is fine; leap day. */
        {
                _cleanup_free_ char *t = upgrade_with("\"strategy\":{\"minImageAgeSeconds\":0}");
                expect_ok(t, &s);
                os_spec_done(&s);
        }
        expect_ok("{\"version\":\"1.2.0\",\"operation\":\"upgrade\",\"image\":{" IMG_URL
                  ",\"created\":\"2028-02-29T23:59:59Z\"}}",
                  &s);
        ASSERT_EQ(s.image.created, 1835481599);
        os_spec_done(&s);

        /* Refusals. */
        expect_bad_extra("\"strategy\":{\"minImageAgeSeconds\":60}",
                         "spec: spec.image.created is required for operation upgrade when "
                         "spec.strategy.minImageAgeSeconds is above 0");
        expect_bad_extra("\"strategy\":{\"minImageAgeSeconds\":-1}", "spec.strategy.minImageAgeSeconds: -1 is less than 0");
        expect_bad_extra("\"strategy\":{\"minImageAgeSeconds\":\"60\"}",
                         "spec.strategy.minImageAgeSeconds: must be an integer, not a string");
        expect_bad_extra("\"strategy\":{\"after\":\"staging\"}", "spec.strategy.after: must be an object, not a string");
        expect_bad_extra("\"strategy\":{\"after\":{}}", "spec.strategy.after.os: required");
        expect_bad_extra("\"strategy\":{\"after\":{\"soakSeconds\":5}}", "spec.strategy.after.os: required");
        expect_bad_extra("\"strategy\":{\"after\":{\"os\":\"s\",\"soak\":5}}",
                         "spec.strategy.after: unknown field \"soak\"");
        expect_bad_extra("\"strategy\":{\"after\":{\"os\":\"s\",\"soakSeconds\":-1}}",
                         "spec.strategy.after.soakSeconds: -1 is less than 0");
        expect_bad_extra("\"strategy\":{\"after\":{\"os\":\"s\",\"soakSeconds\":31536001}}",
                         "spec.strategy.after.soakSeconds: 31536001 is too large (at most 31536000, a year)");
        expect_bad_extra("\"strategy\":{\"after\":{\"os\":\"s\",\"soakSeconds\":1.5}}",
                         "spec.strategy.after.soakSeconds: must be an integer, not a number");
        expect_bad_extra("\"strategy\":{\"after\":{\"os\":5}}", "spec.strategy.after.os: must be a string, not an integer");
        static const char *const bad_names[] = { "", "Staging", "-a", "a-", ".a", "a.", "a..b", "a.-b", "a-.b",
                                                 "a_b", "a b", "a/b" };
        for (size_t i = 0; i < ELEMENTSOF(bad_names); i++) {
                _cleanup_free_ char *extra = NULL;
                ASSERT_TRUE(asprintf(&extra, "\"strategy\":{\"after\":{\"os\":\"%s\"}}", bad_names[i]) > 0);
                expect_bad_extra(extra, "spec.strategy.after.os: \"");
                expect_bad_extra(extra, "is not an OS object name (a DNS-1123 subdomain");
        }
        {
                char longname[256];
                memset(longname, 'a', 254);
                longname[254] = '\0';
                _cleanup_free_ char *extra = NULL;
                ASSERT_TRUE(asprintf(&extra, "\"strategy\":{\"after\":{\"os\":\"%s\"}}", longname) > 0);
                expect_bad_extra(extra, "is not an OS object name");
                longname[253] = '\0';
                free(extra);
                ASSERT_TRUE(asprintf(&extra, "\"strategy\":{\"after\":{\"os\":\"%s\"}}", longname) > 0);
                _cleanup_free_ char *t = upgrade_with(extra);
                expect_ok(t, &s);
                os_spec_done(&s);
        }
        static const char *const bad_times[] = { "2026-12-03T10:00:00", "2026-12-03T10:00:00+00:00",
                                                 "2026-12-03T10:00:00.5Z", "2026-12-03 10:00:00Z", "2026-02-30T10:00:00Z",
                                                 "2027-02-29T10:00:00Z", "2026-13-01T10:00:00Z", "2026-12-03T24:00:00Z",
                                                 "2026-12-03T10:00:60Z", "2026-12-03t10:00:00z", "1969-12-31T23:59:59Z",
                                                 "yesterday", "" };
        for (size_t i = 0; i < ELEMENTSOF(bad_times); i++) {
                _cleanup_free_ char *t = NULL, *want = NULL;
                ASSERT_TRUE(asprintf(&t,
                                     "{\"version\":\"1.2.0\",\"operation\":\"upgrade\",\"image\":{" IMG_URL
                                     ",\"created\":\"%s\"}}",
                                     bad_times[i]) > 0);
                ASSERT_TRUE(asprintf(&want,
                                     "spec.image.created: \"%s\" is not a UTC time YYYY-MM-DDTHH:MM:SSZ (RFC 3339) "
                                     "from 1970 on",
                                     bad_times[i]) > 0);
                expect_bad(t, want);
        }
        expect_bad("{\"version\":\"1.2.0\",\"operation\":\"upgrade\",\"image\":{" IMG_URL ",\"created\":1796292000}}",
                   "spec.image.created: must be a string, not an integer");
}

static void test_hooks_and_verify(void) {
        _cleanup_free_ char *t = NULL;
        OsSpec s = {};

        /* Absent: no hooks, the default gate (DaemonSet pods, 600 s). */
        t = upgrade_with("");
        expect_ok(t, &s);
        ASSERT_EQ(s.hooks.n_pre_drain, 0u);
        ASSERT_EQ(s.hooks.n_post_boot, 0u);
        ASSERT_EQ(s.verify.timeout_seconds, 600);
        ASSERT_TRUE(s.verify.pod_selector == NULL);
        ASSERT_TRUE(s.hooks_json == NULL && s.verify_json == NULL);
        os_spec_done(&s);
        free(t);

        t = upgrade_with("\"hooks\":{\"preDrain\":[{\"exec\":\"ceph-noout\"},"
                         "{\"waitFor\":{\"label\":\"storage.example.com/drain-ok\",\"value\":\"yes\"},\"timeoutSeconds\":60}],"
                         "\"postBoot\":[{\"waitFor\":{\"annotation\":\"example.com/smoke\"}}]},"
                         "\"verify\":{\"timeoutSeconds\":120,\"podSelector\":{\"matchLabels\":{\"tier\":\"node\"},"
                         "\"matchExpressions\":[{\"key\":\"app\",\"operator\":\"In\",\"values\":[\"cni\",\"csi\"]},"
                         "{\"key\":\"canary\",\"operator\":\"DoesNotExist\"}]}}");
        expect_ok(t, &s);
        ASSERT_EQ(s.hooks.n_pre_drain, 2u);
        ASSERT_EQ(s.hooks.pre_drain[0].kind, OS_HOOK_EXEC);
        ASSERT_STREQ(s.hooks.pre_drain[0].name, "ceph-noout");
        ASSERT_EQ(s.hooks.pre_drain[0].timeout_seconds, 300);
        ASSERT_EQ(s.hooks.pre_drain[1].kind, OS_HOOK_WAIT_LABEL);
        ASSERT_STREQ(s.hooks.pre_drain[1].name, "storage.example.com/drain-ok");
        ASSERT_STREQ(s.hooks.pre_drain[1].value, "yes");
        ASSERT_EQ(s.hooks.pre_drain[1].timeout_seconds, 60);
        ASSERT_EQ(s.hooks.n_post_boot, 1u);
        ASSERT_EQ(s.hooks.post_boot[0].kind, OS_HOOK_WAIT_ANNOTATION);
        ASSERT_TRUE(s.hooks.post_boot[0].value == NULL);
        _cleanup_free_ char *d = os_hook_describe(&s.hooks.pre_drain[1]);
        ASSERT_STREQ(d, "wait for label storage.example.com/drain-ok=yes");
        ASSERT_EQ(s.verify.timeout_seconds, 120);
        ASSERT_STREQ(s.verify.pod_selector, "tier=node,app in (cni,csi),!canary");
        ASSERT_TRUE(json_is_object(s.hooks_json) && json_is_object(s.verify_json));
        /* The selector string is what kube_selector_matches() and list calls take. */
        json_t *yes = load("{\"tier\":\"node\",\"app\":\"csi\"}"), *no = load("{\"tier\":\"node\",\"app\":\"csi\",\"canary\":\"1\"}");
        ASSERT_EQ(kube_selector_matches(s.verify.pod_selector, yes), 1);
        ASSERT_EQ(kube_selector_matches(s.verify.pod_selector, no), 0);
        json_decref(yes);
        json_decref(no);
        os_spec_done(&s);

        /* What the task annotation carries parses with the same functions. */
        json_t *h = load("{\"preDrain\":[{\"exec\":\"x\",\"timeoutSeconds\":5}]}");
        OsHooks hooks = {};
        ASSERT_EQ(os_hooks_parse(h, "hooks", &hooks, NULL), 0);
        ASSERT_EQ(hooks.n_pre_drain, 1u);
        ASSERT_EQ(hooks.pre_drain[0].timeout_seconds, 5);
        os_hooks_done(&hooks);
        json_decref(h);
        OsVerify v = {};
        ASSERT_EQ(os_verify_parse(json_null(), "verify", &v, NULL), 0);
        ASSERT_EQ(v.timeout_seconds, 600);
        os_verify_done(&v);

        expect_bad_extra("\"hooks\":{\"preDrain\":[{}]}", "spec.hooks.preDrain[0]: exactly one of exec and waitFor");
        expect_bad_extra("\"hooks\":{\"preDrain\":[{\"exec\":\"a\",\"waitFor\":{\"label\":\"b\"}}]}",
                         "exactly one of exec and waitFor");
        expect_bad_extra("\"hooks\":{\"postBoot\":[{\"exec\":\"../bin/sh\"}]}", "spec.hooks.postBoot[0].exec: \"../bin/sh\" is not a hook name");
        expect_bad_extra("\"hooks\":{\"postBoot\":[{\"exec\":\".hidden\"}]}", "is not a hook name");
        expect_bad_extra("\"hooks\":{\"preDrain\":[{\"waitFor\":{}}]}", "spec.hooks.preDrain[0].waitFor: exactly one of label and annotation");
        expect_bad_extra("\"hooks\":{\"preDrain\":[{\"waitFor\":{\"label\":\"a\",\"annotation\":\"b\"}}]}",
                         "exactly one of label and annotation");
        expect_bad_extra("\"hooks\":{\"preDrain\":[{\"waitFor\":{\"label\":\"bad key!\"}}]}", "is not a valid label key");
        expect_bad_extra("\"hooks\":{\"preDrain\":[{\"waitFor\":{\"label\":\"k\",\"value\":\"no spaces\"}}]}",
                         "is not a valid label value");
        expect_bad_extra("\"hooks\":{\"preDrain\":[{\"exec\":\"a\",\"timeoutSeconds\":0}]}", "spec.hooks.preDrain[0].timeoutSeconds");
        expect_bad_extra("\"hooks\":{\"preDrain\":[{\"exec\":\"a\",\"timeoutSeconds\":86401}]}", "must be at most 86400");
        expect_bad_extra("\"hooks\":{\"preDrain\":[{\"exec\":\"a\",\"run\":\"b\"}]}", "spec.hooks.preDrain[0]");
        expect_bad_extra("\"hooks\":{\"afterDrain\":[]}", "spec.hooks");
        expect_bad_extra("\"hooks\":{\"preDrain\":{\"exec\":\"a\"}}", "spec.hooks.preDrain: must be an array");
        expect_bad_extra("\"hooks\":{\"preDrain\":[{\"exec\":\"1\"},{\"exec\":\"2\"},{\"exec\":\"3\"},{\"exec\":\"4\"},"
                         "{\"exec\":\"5\"},{\"exec\":\"6\"},{\"exec\":\"7\"},{\"exec\":\"8\"},{\"exec\":\"9\"}]}",
                         "more than 8 hooks");
        expect_bad_extra("\"verify\":{\"timeoutSeconds\":5}", "spec.verify.timeoutSeconds");
        expect_bad_extra("\"verify\":{\"podSelector\":{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\"}]}}",
                         "values must be non-empty for In and NotIn");
        expect_bad_extra("\"verify\":{\"podSelector\":{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Exists\","
                         "\"values\":[\"x\"]}]}}", "values must be non-empty for In and NotIn and empty");
        expect_bad_extra("\"verify\":{\"podSelector\":{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Has\"}]}}",
                         "is not one of In, NotIn, Exists, DoesNotExist");
        expect_bad_extra("\"verify\":{\"podSelector\":{\"matchLabels\":{\"a\":\"b c\"}}}", "spec.verify.podSelector.matchLabels.a");
        expect_bad_extra("\"verify\":{\"podSelector\":{\"matchFields\":{}}}", "spec.verify.podSelector");
        expect_bad_extra("\"verify\":\"yes\"", "spec.verify: must be an object");
}

/* The id that ties a node's progress and failures to a rollout; hullctl
 * cluster retry computes it from the spec as the operator does. */
static void test_task_id(void) {
        OsSpec s;
        _cleanup_free_ char *plain = upgrade_with(""), *a = NULL, *b = NULL, *c = NULL;
        expect_ok(plain, &s);
        a = os_task_id("workers", &s);
        ASSERT_STREQ(a, "workers/upgrade/1.2.0");
        os_spec_done(&s);
        _cleanup_free_ char *withcfg = upgrade_with("\"config\":{\"generation\":7}");
        expect_ok(withcfg, &s);
        b = os_task_id("workers", &s);
        ASSERT_STREQ(b, "workers/upgrade/1.2.0/config-7");
        os_spec_done(&s);
        expect_ok("{\"version\":\"1.1.0\",\"operation\":\"config\",\"config\":{\"generation\":3}}", &s);
        c = os_task_id("gpu", &s);
        ASSERT_STREQ(c, "gpu/config/3");
        os_spec_done(&s);
}

int main(void) {
        TEST_RUN(test_minimal_and_defaults);
        TEST_RUN(test_task_id);
        TEST_RUN(test_full);
        TEST_RUN(test_errors);
        TEST_RUN(test_percent_resolve);
        TEST_RUN(test_int_or_percent_forms);
        TEST_RUN(test_window_utc);
        TEST_RUN(test_window_midnight);
        TEST_RUN(test_window_dst);
        TEST_RUN(test_window_parsed);
        TEST_RUN(test_operations);
        TEST_RUN(test_gates);
        TEST_RUN(test_hooks_and_verify);
        return 0;
}
