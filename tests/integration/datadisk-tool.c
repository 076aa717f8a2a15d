/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Drives datadisk_plan() + datadisk_apply() for test-datadisk.sh:
 *   datadisk-tool [--root DIR] [--no-live] [--wait SEC] [--no-partition] [--wipe]
 *                 [--options OPTS] [--plan-only] DEVICE FSTYPE LABEL MOUNT
 * Prints "action=... formatted=0|1 unit=... uuid=..." on success; on a
 * refusal prints the message and exits 2 (3 for anything else). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datadisk.h"

int main(int argc, char **argv) {
        DataDiskSpec s = { .partition = true };
        DataDiskOptions o = { .live = true };
        bool plan_only = false;
        static const struct option opts[] = {
                { "root", required_argument, NULL, 'r' },   { "no-live", no_argument, NULL, 'n' },
                { "wait", required_argument, NULL, 'w' },   { "no-partition", no_argument, NULL, 'P' },
                { "wipe", no_argument, NULL, 'W' },         { "options", required_argument, NULL, 'o' },
                { "plan-only", no_argument, NULL, 'p' },    {},
        };
        int c;

        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0)
                switch (c) {
                case 'r':
                        o.root = optarg;
                        break;
                case 'n':
                        o.live = false;
                        break;
                case 'w':
                        o.wait_sec = atoi(optarg) ?: -1;
                        break;
                case 'P':
                        s.partition = false;
                        break;
                case 'W':
                        s.wipe = true;
                        break;
                case 'o':
                        s.options = optarg;
                        break;
                case 'p':
                        plan_only = true;
                        break;
                default:
                        return 3;
                }
        if (argc - optind != 4) {
                fprintf(stderr, "usage: datadisk-tool [options] DEVICE FSTYPE LABEL MOUNT\n");
                return 3;
        }
        s.device = argv[optind];
        s.filesystem = argv[optind + 1];
        s.label = argv[optind + 2];
        s.mount = argv[optind + 3];

        DataDiskPlan plan = {};
        char *error = NULL;
        int r = datadisk_plan(&s, &o, &plan, &error);
        if (r < 0) {
                fprintf(stderr, "refused (%s): %s\n", strerror(-r), error ?: "(no message)");
                free(error);
                return 2;
        }
        printf("plan=%s device=%s unit=%s\n", datadisk_action_to_string(plan.action), plan.device, plan.unit_name);
        if (plan_only) {
                datadisk_plan_done(&plan);
                return 0;
        }
        DataDiskResult res = {};
        r = datadisk_apply(&plan, &o, &res, &error);
        if (r < 0) {
                fprintf(stderr, "apply failed (%s): %s\n", strerror(-r), error ?: "(no message)");
                free(error);
                datadisk_plan_done(&plan);
                return 3;
        }
        printf("action=%s formatted=%d unit_written=%d mounted=%d unit=%s uuid=%s\n",
               datadisk_action_to_string(plan.action), res.formatted, res.unit_written, res.mounted, res.unit_name, res.uuid);
        datadisk_result_done(&res);
        datadisk_plan_done(&plan);
        return 0;
}
