# SPDX-License-Identifier: LGPL-2.1-or-later
# Sourced by the loop-device integration scripts (datadisk, install,
# provision): skip without root or loop devices; a scratch directory $T
# under /var/tmp; check NAME SHELL-TEST; newloop NAME SIZE_MIB; and a
# cleanup on exit that runs the script's loop_cleanup_hook (if it defines
# one), unmounts everything below $T, deepest first, and detaches every loop
# device whose backing file is in $T. Loops are found by backing file
# because newloop runs in $(...), a subshell that cannot record them.
# The caller sets LOOP_LIB_NAME first (names the scratch directory).
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root"; exit 77; }
losetup -f >/dev/null 2>&1 || { echo "SKIP: no loop devices"; exit 77; }

T=$(mktemp -d "/var/tmp/hull-${LOOP_LIB_NAME:-test}.XXXXXX")
failures=0

loop_cleanup() {
        if declare -F loop_cleanup_hook >/dev/null; then loop_cleanup_hook; fi
        for m in $(grep -o " $T[^ ]*" /proc/self/mounts | sort -r); do umount "$m" 2>/dev/null; done
        for l in $(losetup -n -O NAME,BACK-FILE -l | awk -v t="$T/" 'index($2, t) == 1 {print $1}'); do
                losetup -d "$l" 2>/dev/null
        done
        rm -rf "$T"
}
trap loop_cleanup EXIT

check() { if eval "$2"; then echo "PASS: $1"; else echo "FAIL: $1"; failures=$((failures + 1)); fi; }

newloop() { # name size_mib -> a loop device over $T/name.img, with partition scanning
        truncate -s "$2M" "$T/$1.img"
        losetup -f --show -P "$T/$1.img" || { echo "FAIL: losetup"; exit 1; }
}
