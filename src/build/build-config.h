/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

/* `hull-build config INPUT.yaml [-o OUT.json]` and
 * `hull-build config --check FILE.json` (docs/PROVISION.md). */
int cmd_config(int argc, char **argv, const char *output, bool check);
