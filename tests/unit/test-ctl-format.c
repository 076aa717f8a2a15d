/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <jansson.h>
#include <stdio.h>

#include "ctl-format.h"
#include "tests.h"

static json_t *parse(const char *text) {
        json_error_t e;
        json_t *j = json_loads(text, JSON_DECODE_ANY, &e);
        if (!j) {
                fprintf(stderr, "bad test JSON at %d:%d: %s\n", e.line, e.column, e.text);
                abort();
        }
        return j;
}

typedef enum Which { STATUS, OPERATION, AUDIT, HOOK_OUTPUT } Which;

/* Render doc (JSON text) with one of the formatters and compare the text. */
static void check(Which which, const char *doc, const char *expected) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);
        json_t *j = parse(doc);

        ASSERT_TRUE(f);
        switch (which) {
        case STATUS:
                ASSERT_OK(ctl_format_status(j, f));
                break;
        case OPERATION:
                ASSERT_OK(ctl_format_operation(j, 4, f));
                break;
        case AUDIT:
                ASSERT_OK(ctl_format_audit(j, f));
                break;
        case HOOK_OUTPUT:
                ASSERT_OK(ctl_format_hook_output(j, f));
                break;
        }
        ASSERT_EQ(fclose(f), 0);
        if (strcmp(buf, expected) != 0) {
                fprintf(stderr, "--- expected\n%s--- got\n%s---\n", expected, buf);
                abort();
        }
        free(buf);
        json_decref(j);
}

static char *progress(const char *doc, double rate, unsigned width) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);
        json_t *j = parse(doc);

        ASSERT_TRUE(f);
        ctl_format_progress(j, rate, width, f);
        ASSERT_EQ(fclose(f), 0);
        json_decref(j);
        return buf;
}

/* The example of docs/AGENT-API.md, with the stage of the example operation
 * half way through writing. */
static void test_status_running(void) {
        check(STATUS,
              "{\"api\": \"v1\","
              " \"os\": {\"name\": \"hull-demo\", \"version\": \"1.0.0\", \"pretty_name\": \"Hull hull-demo 1.0.0\"},"
              " \"boot\": {\"slot\": \"a\", \"degraded\": false, \"boot_id\": \"x\", \"first_boot\": false},"
              " \"slots\": {"
              "   \"b\": {\"state\": \"staged\", \"version\": \"2.0.0\", \"priority\": 0, \"tries\": 0, \"good\": false, \"booted\": false},"
              "   \"a\": {\"state\": \"good\", \"version\": \"1.0.0\", \"priority\": 10, \"tries\": 0, \"good\": true, \"booted\": true}},"
              " \"health\": {\"state\": \"healthy\", \"message\": null},"
              " \"config\": {\"generation\": 3},"
              " \"reboot_required\": false,"
              " \"operation\": {\"id\": 7, \"type\": \"stage\", \"state\": \"running\", \"phase\": \"writing\","
              "   \"done\": 123731968, \"total\": 361889792, \"started\": \"2026-11-22T01:40:00Z\", \"finished\": null,"
              "   \"error\": null, \"version\": \"2.0.0\", \"slot\": \"b\"}}",
              "OS:              hull-demo 1.0.0\n"
              "Booted slot:     a\n"
              "Health:          healthy\n"
              "Config:          generation 3\n"
              "Reboot required: no\n"
              "\n"
              "SLOT  STATE   VERSION  PRIORITY  TRIES  BOOTED\n"
              "a     good    1.0.0          10      0  *\n"
              "b     staged  2.0.0           0      0\n"
              "\n"
              "Last operation:  #7 stage (version 2.0.0, slot b): running, phase writing, 34% (118.0/345.1 MiB)\n");
}

/* Slots with the components of their images: printed in Kubernetes'
 * order, a slot without them as "-", a component this hullctl does not
 * know after the known ones, control characters defused, a mistyped
 * "components" ignored. */
static void test_status_components(void) {
        check(STATUS,
              "{\"os\": {\"name\": \"hull-demo\", \"version\": \"1.0.0\"},"
              " \"boot\": {\"slot\": \"a\"},"
              " \"slots\": {"
              "   \"a\": {\"state\": \"good\", \"version\": \"1.0.0\", \"priority\": 10, \"tries\": 0, \"booted\": true,"
              "           \"components\": {\"containerd\": \"1.6.20\", \"kernel\": \"6.1.0-28-amd64\", \"kubelet\": \"v1.32.0\", \"runc\": \"1.1.5\"}},"
              "   \"b\": {\"state\": \"staged\", \"version\": \"2.0.0\", \"priority\": 0, \"tries\": 0, \"booted\": false,"
              "           \"components\": {\"crun\": \"1.8\\u001b[2J\", \"kernel\": \"6.1.0-31-amd64\"}}},"
              " \"health\": {\"state\": \"healthy\", \"message\": null},"
              " \"config\": {\"generation\": 0}, \"reboot_required\": false, \"operation\": null}",
              "OS:              hull-demo 1.0.0\n"
              "Booted slot:     a\n"
              "Health:          healthy\n"
              "Config:          none applied (generation 0)\n"
              "Reboot required: no\n"
              "\n"
              "SLOT  STATE   VERSION  PRIORITY  TRIES  BOOTED\n"
              "a     good    1.0.0          10      0  *\n"
              "b     staged  2.0.0           0      0\n"
              "\n"
              "SLOT  COMPONENTS\n"
              "a     kubelet v1.32.0, containerd 1.6.20, runc 1.1.5, kernel 6.1.0-28-amd64\n"
              "b     kernel 6.1.0-31-amd64, crun 1.8?[2J\n"
              "\n"
              "Last operation:  none\n");

        check(STATUS,
              "{\"slots\": {"
              "   \"a\": {\"state\": \"good\", \"version\": \"1.0.0\", \"priority\": 10, \"tries\": 0, \"booted\": true,"
              "           \"components\": {\"kubelet\": \"v1.32.0\"}},"
              "   \"b\": {\"state\": \"empty\", \"version\": null, \"priority\": 0, \"tries\": 0, \"booted\": false,"
              "           \"components\": \"v1.33.0\"}}}",
              "OS:              - -\n"
              "Booted slot:     -\n"
              "Health:          -\n"
              "Config:          -\n"
              "Reboot required: -\n"
              "\n"
              "SLOT  STATE  VERSION  PRIORITY  TRIES  BOOTED\n"
              "a     good   1.0.0          10      0  *\n"
              "b     empty  -               0      0\n"
              "\n"
              "SLOT  COMPONENTS\n"
              "a     kubelet v1.32.0\n"
              "b     -\n"
              "\n"
              "Last operation:  -\n");

        /* Components that are all empty objects: no section at all. */
        check(STATUS,
              "{\"slots\": {\"a\": {\"state\": \"good\", \"version\": \"1\", \"priority\": 1, \"tries\": 0,"
              " \"components\": {}}}}",
              "OS:              - -\n"
              "Booted slot:     -\n"
              "Health:          -\n"
              "Config:          -\n"
              "Reboot required: -\n"
              "\n"
              "SLOT  STATE  VERSION  PRIORITY  TRIES  BOOTED\n"
              "a     good   1               1      0\n"
              "\n"
              "Last operation:  -\n");
}

/* After a fallback: booted from b while it was trying, a was rolled away
 * from, the health check failed and the last stage failed verification. */
static void test_status_failed(void) {
        check(STATUS,
              "{\"os\": {\"name\": \"hull-demo\", \"version\": \"2.0.0-rc.1\"},"
              " \"boot\": {\"slot\": \"b\", \"degraded\": true, \"first_boot\": true},"
              " \"slots\": {"
              "   \"a\": {\"state\": \"bad\", \"version\": \"1.0.0\", \"priority\": 5, \"tries\": 0, \"booted\": false},"
              "   \"b\": {\"state\": \"exhausted\", \"version\": \"2.0.0-rc.1\", \"priority\": 10, \"tries\": 0, \"booted\": true}},"
              " \"health\": {\"state\": \"unhealthy\", \"message\": \"kubelet is not ready\"},"
              " \"config\": {\"generation\": 0},"
              " \"reboot_required\": true,"
              " \"operation\": {\"id\": 12, \"type\": \"stage\", \"state\": \"failed\", \"phase\": \"verifying\","
              "   \"done\": 0, \"total\": 361889792, \"finished\": \"2026-11-22T01:40:02Z\","
              "   \"error\": {\"code\": \"bad_signature\", \"message\": \"the bundle's signature does not verify against key 0123456789abcdef\", \"errno\": \"EKEYREJECTED\"},"
              "   \"version\": \"3.0.0\", \"slot\": \"a\"}}",
              "OS:              hull-demo 2.0.0-rc.1\n"
              "Booted slot:     b (degraded: booted by fallback) (first boot)\n"
              "Health:          unhealthy: kubelet is not ready\n"
              "Config:          none applied (generation 0)\n"
              "Reboot required: yes\n"
              "\n"
              "SLOT  STATE      VERSION     PRIORITY  TRIES  BOOTED\n"
              "a     bad        1.0.0              5      0\n"
              "b     exhausted  2.0.0-rc.1        10      0  *\n"
              "\n"
              "Last operation:  #12 stage (version 3.0.0, slot a): failed in phase verifying at 0%, finished 2026-11-22T01:40:02Z\n"
              "                 error: the bundle's signature does not verify against key 0123456789abcdef (bad_signature)\n");
}

/* A fresh node: one slot empty, no operation yet; and a document missing
 * most fields, which prints dashes rather than failing. */
static void test_status_sparse(void) {
        check(STATUS,
              "{\"os\": {\"name\": \"hull-demo\", \"version\": \"1.0.0\"},"
              " \"boot\": {\"slot\": \"a\"},"
              " \"slots\": {"
              "   \"a\": {\"state\": \"trying\", \"version\": \"1.0.0\", \"priority\": 10, \"tries\": 2, \"booted\": true},"
              "   \"b\": {\"state\": \"empty\", \"version\": null, \"priority\": 0, \"tries\": 0, \"booted\": false}},"
              " \"health\": {\"state\": \"pending\", \"message\": null},"
              " \"config\": {\"generation\": 1}, \"reboot_required\": false, \"operation\": null}",
              "OS:              hull-demo 1.0.0\n"
              "Booted slot:     a\n"
              "Health:          pending\n"
              "Config:          generation 1\n"
              "Reboot required: no\n"
              "\n"
              "SLOT  STATE   VERSION  PRIORITY  TRIES  BOOTED\n"
              "a     trying  1.0.0          10      2  *\n"
              "b     empty   -               0      0\n"
              "\n"
              "Last operation:  none\n");

        check(STATUS, "{\"api\": \"v1\", \"slots\": {\"a\": {\"priority\": \"high\"}}}",
              "OS:              - -\n"
              "Booted slot:     -\n"
              "Health:          -\n"
              "Config:          -\n"
              "Reboot required: -\n"
              "\n"
              "SLOT  STATE  VERSION  PRIORITY  TRIES  BOOTED\n"
              "a     -      -               -      -\n"
              "\n"
              "Last operation:  -\n");

        json_t *j = parse("[1, 2]");
        ASSERT_ERROR(ctl_format_status(j, stdout), EBADMSG);
        ASSERT_ERROR(ctl_format_operation(j, 0, stdout), EBADMSG);
        json_decref(j);
}

static void test_operation(void) {
        check(OPERATION,
              "{\"id\": 7, \"type\": \"stage\", \"state\": \"succeeded\", \"phase\": \"finishing\", \"done\": 361889792,"
              " \"total\": 361889792, \"finished\": \"2026-11-22T01:45:00Z\", \"error\": null, \"version\": \"2.0.0\", \"slot\": \"b\"}",
              "#7 stage (version 2.0.0, slot b): succeeded, finished 2026-11-22T01:45:00Z\n");
        /* Steps rather than bytes for anything but stage; an error given as
         * a bare string. */
        check(OPERATION,
              "{\"id\": 8, \"type\": \"mark-good\", \"state\": \"running\", \"phase\": \"health-checks\", \"done\": 2, \"total\": 5}",
              "#8 mark-good: running, phase health-checks, 40% (2/5)\n");
        check(OPERATION,
              "{\"id\": 9, \"type\": \"stage\", \"state\": \"failed\", \"phase\": \"writing\", \"done\": 100, \"total\": 200,"
              " \"slot\": \"b\", \"error\": \"disk on fire\"}",
              "#9 stage (slot b): failed in phase writing at 50%\n"
              "    error: disk on fire\n");
        check(OPERATION,
              "{\"type\": \"stage\", \"state\": \"running\", \"phase\": \"fetching-header\", \"done\": 1048576, \"total\": 0}",
              "stage: running, phase fetching-header (1.0 MiB)\n");
        /* A delta download, and a fallback with its notice. */
        check(OPERATION,
              "{\"id\": 10, \"type\": \"stage\", \"state\": \"succeeded\", \"version\": \"2.0.0\", \"slot\": \"b\","
              " \"notice\": null, \"transfer\": {\"bundle\": 379584512, \"fetched\": 4194304, \"reused\": 375390208,"
              " \"resumed\": 104857600, \"full\": false}}",
              "#10 stage (version 2.0.0, slot b): succeeded\n"
              "    download: 4.0 MiB of 362.0 MiB (1.1%), 358.0 MiB already on this node (100.0 MiB of it from an interrupted stage)\n");
        check(OPERATION,
              "{\"id\": 11, \"type\": \"stage\", \"state\": \"succeeded\", \"notice\": \"the server ignores HTTP Range requests:"
              " downloading the whole bundle\", \"transfer\": {\"bundle\": 1048576, \"fetched\": 1048576, \"reused\": 0,"
              " \"resumed\": 0, \"full\": true}}",
              "#11 stage: succeeded\n"
              "    notice: the server ignores HTTP Range requests: downloading the whole bundle\n"
              "    download: 1.0 MiB of 1.0 MiB (100.0%), the whole bundle\n");
        check(OPERATION, "null", "none\n");
        /* Whatever the agent passes on from elsewhere cannot drive the terminal. */
        check(OPERATION,
              "{\"id\": 1, \"type\": \"stage\", \"state\": \"failed\", \"error\": {\"code\": \"download_failed\","
              " \"message\": \"HTTP 404 \\u001b[2J from server\\r\\nx\"}}",
              "#1 stage: failed\n"
              "    error: HTTP 404 ?[2J from server??x (download_failed)\n");
}

static void test_hook(void) {
        /* Running, succeeded, failed, killed (no exit status), interrupted. */
        check(OPERATION,
              "{\"id\": 12, \"type\": \"hook\", \"state\": \"running\", \"phase\": null, \"done\": 0, \"total\": 0,"
              " \"error\": null, \"version\": null, \"slot\": null, \"hook\": {\"name\": \"ceph-noout\","
              " \"stage\": \"pre-drain\", \"exit_code\": null, \"output\": \"setting noout\\n\"}}",
              "#12 hook ceph-noout (stage pre-drain): running\n");
        check(OPERATION,
              "{\"id\": 12, \"type\": \"hook\", \"state\": \"succeeded\", \"finished\": \"2026-11-22T01:45:00Z\","
              " \"hook\": {\"name\": \"ceph-noout\", \"stage\": \"pre-drain\", \"exit_code\": 0, \"output\": \"\"}}",
              "#12 hook ceph-noout (stage pre-drain): succeeded, exit status 0, finished 2026-11-22T01:45:00Z\n");
        check(OPERATION,
              "{\"id\": 13, \"type\": \"hook\", \"state\": \"failed\", \"error\": {\"code\": \"hook_failed\","
              " \"message\": \"hook ceph-noout exited with status 3: HEALTH_ERR\"}, \"hook\": {\"name\": \"ceph-noout\","
              " \"stage\": \"manual\", \"exit_code\": 3, \"output\": \"HEALTH_ERR\\n\"}}",
              "#13 hook ceph-noout (stage manual): failed, exit status 3\n"
              "    error: hook ceph-noout exited with status 3: HEALTH_ERR (hook_failed)\n");
        check(OPERATION,
              "{\"id\": 14, \"type\": \"hook\", \"state\": \"failed\", \"error\": {\"code\": \"hook_timeout\","
              " \"message\": \"hook x did not finish within its timeout of 1 s\"}, \"hook\": {\"name\": \"x\","
              " \"stage\": \"post-boot\", \"exit_code\": null, \"output\": \"\"}}",
              "#14 hook x (stage post-boot): failed\n"
              "    error: hook x did not finish within its timeout of 1 s (hook_timeout)\n");
        /* A hook object missing its fields (an older agent, a bug) still prints. */
        check(OPERATION, "{\"id\": 15, \"type\": \"hook\", \"state\": \"failed\", \"hook\": {}}",
              "#15 hook - (stage -): failed\n");

        /* The output: lines and tabs kept, escapes defused, a newline added. */
        check(HOOK_OUTPUT, "{\"type\": \"hook\", \"hook\": {\"output\": \"a\\tb\\n\\u001b[31mred\\r\"}}",
              "a\tb\n?[31mred?\n");
        check(HOOK_OUTPUT, "{\"type\": \"hook\", \"hook\": {\"output\": \"done\\n\"}}", "done\n");
        check(HOOK_OUTPUT, "{\"type\": \"hook\", \"hook\": {\"output\": \"\"}}", "");
        check(HOOK_OUTPUT, "{\"type\": \"hook\", \"hook\": {}}", "");
        json_t *stage = parse("{\"type\": \"stage\"}");
        ASSERT_ERROR(ctl_format_hook_output(stage, stdout), EBADMSG);
        json_decref(stage);
}

static void test_progress(void) {
        const char *half = "{\"type\": \"stage\", \"state\": \"running\", \"phase\": \"writing\","
                           " \"done\": 180944896, \"total\": 361889792}";
        char *s;

        s = progress(half, 40.0 * 1024 * 1024, 80);
        ASSERT_STREQ(s, "writing         [############------------]  50%  172.6/345.1 MiB  40.0 MiB/s");
        ASSERT_TRUE(strlen(s) < 80);
        free(s);

        /* The bar does not change length with the numbers after it. */
        s = progress(half, 0, 80);
        ASSERT_STREQ(s, "writing         [############------------]  50%  172.6/345.1 MiB");
        free(s);

        s = progress(half, 0, 120);
        ASSERT_STREQ(s, "writing         [####################--------------------]  50%  172.6/345.1 MiB");
        free(s);

        /* Too narrow for a bar: percent and numbers, cut to the width. */
        s = progress(half, 40.0 * 1024 * 1024, 40);
        ASSERT_STREQ(s, "writing           50%  172.6/345.1 MiB ");
        ASSERT_EQ(strlen(s), 39);
        free(s);

        /* No total yet: no bar, no percent. */
        s = progress("{\"type\": \"stage\", \"state\": \"running\", \"phase\": \"fetching-header\", \"done\": 0}", 0, 80);
        ASSERT_STREQ(s, "fetching-header   0.0 MiB");
        free(s);

        s = progress("{\"type\": \"stage\", \"state\": \"running\", \"phase\": \"writing\", \"done\": 9, \"total\": 9}", 0, 80);
        ASSERT_STREQ(s, "writing         [########################] 100%  0.0/0.0 MiB");
        free(s);
}

static void test_audit(void) {
        check(AUDIT,
              "[{\"time\": \"2026-11-22T01:40:00.123456Z\", \"seq\": 12, \"uid\": 0, \"pid\": 4242, \"method\": \"POST\","
              "  \"path\": \"/v1/stage\", \"request\": {}, \"status\": 202, \"result\": \"accepted\", \"error\": null, \"op\": 7},"
              " {\"time\": \"2026-11-22T01:40:01.000000Z\", \"seq\": 13, \"uid\": 1000, \"pid\": 99, \"method\": \"POST\","
              "  \"path\": \"/v1/activate\", \"status\": 403, \"result\": \"refused\","
              "  \"error\": {\"code\": \"forbidden\", \"message\": \"uid 1000 is not allowed\"}},"
              " {\"time\": \"2026-11-22T01:42:00.000000Z\", \"seq\": 14, \"uid\": 0, \"pid\": 0, \"method\": \"-\","
              "  \"path\": \"stage\", \"request\": null, \"status\": null, \"op\": 7, \"result\": \"failed\","
              "  \"error\": {\"code\": \"truncated\", \"message\": \"the download ended early\"}},"
              " {\"time\": \"2026-11-22T01:43:00.000000Z\", \"op\": 8, \"result\": \"succeeded\"},"
              " {}]",
              "2026-11-22T01:40:00.123456Z  uid=0 pid=4242  POST /v1/stage (op 7)  202 accepted\n"
              "2026-11-22T01:40:01.000000Z  uid=1000 pid=99  POST /v1/activate  403 refused  error: uid 1000 is not allowed (forbidden)\n"
              "2026-11-22T01:42:00.000000Z  uid=0 pid=0  op 7 stage  failed  error: the download ended early (truncated)\n"
              "2026-11-22T01:43:00.000000Z  uid=- pid=-  op 8  succeeded\n"
              "-  uid=- pid=-  -  -\n");
        check(AUDIT, "[]", "");

        json_t *j = parse("{\"records\": []}");
        ASSERT_ERROR(ctl_format_audit(j, stdout), EBADMSG);
        json_decref(j);
}

int main(void) {
        TEST_RUN(test_status_running);
        TEST_RUN(test_status_failed);
        TEST_RUN(test_status_components);
        TEST_RUN(test_status_sparse);
        TEST_RUN(test_operation);
        TEST_RUN(test_hook);
        TEST_RUN(test_progress);
        TEST_RUN(test_audit);
        return 0;
}
