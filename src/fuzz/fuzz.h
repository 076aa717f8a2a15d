/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Every fuzz target implements the libFuzzer entry point. The same file is
 * linked either with libFuzzer (-Dfuzzer=true, clang) or with
 * fuzz-replay.c, which replays a corpus directory as an ordinary test. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
