/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* "hullctl cluster ...": argv starts at "cluster". Returns the exit status. */
int cluster_main(int argc, char **argv);
