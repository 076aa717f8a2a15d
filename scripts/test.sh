#!/bin/bash
# The test command: install dependencies, build Hull, run every test suite
# (unit, fuzz corpus replay, loop-device integration, QEMU end-to-end) and
# print "N passed, N failed, N skipped" as the last line.
set -uo pipefail
if [ "$(id -u)" -ne 0 ]; then exec sudo --preserve-env=CI "$0" "$@"; fi
cd "$(dirname "$0")/.."

scripts/deps.sh || { echo "0 passed, 1 failed"; exit 1; }
if [ ! -d build ]; then
        meson setup build || { echo "0 passed, 1 failed"; exit 1; }
fi
meson compile -C build || { echo "0 passed, 1 failed"; exit 1; }

log=$(mktemp)
meson test -C build --print-errorlogs --num-processes 2 "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

num() { sed -n "s/^$1: *\([0-9]*\).*/\1/p" "$log" | tail -n 1; }
ok=$(num "Ok"); fail=$(num "Fail"); skip=$(num "Skipped"); tout=$(num "Timeout"); xpass=$(num "Unexpected Pass")
ok=${ok:-0}; fail=$(( ${fail:-0} + ${tout:-0} + ${xpass:-0} )); skip=${skip:-0}
if [ "$status" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi
rm -f "$log"
echo "$ok passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
