#!/bin/bash
# Idle memory of hull-agent, against two baselines measured in the same run:
# a do-nothing C program, and one that only starts a libmicrohttpd daemon and
# calls sd_notify() (the floor any agent built on Debian's libmicrohttpd,
# which is linked with GnuTLS, and libsystemd pays). Prints RSS, PSS and
# private dirty memory (what the process costs beyond shared library text).
# Usage (root): bench/agent-memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
agent=build/src/agent/hull-agent
w=$(mktemp -d /var/tmp/hull-bench-mem.XXXXXX)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$w"' EXIT

cat >"$w/empty.c" <<'C'
#include <unistd.h>
int main(void) { pause(); return 0; }
C
cat >"$w/floor.c" <<'C'
#include <microhttpd.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>
int main(void) {
        struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                                                MHD_USE_NO_LISTEN_SOCKET, 0, NULL, NULL, NULL, NULL, MHD_OPTION_END);
        sd_notify(0, "READY=1");
        pause();
        return d ? 0 : 1;
}
C
cc -O2 -o "$w/empty" "$w/empty.c"
cc -O2 -o "$w/floor" "$w/floor.c" $(pkg-config --cflags --libs libmicrohttpd libsystemd)

mkdir -p "$w/keys" "$w/esp/EFI/hull" "$w/state"
build/src/build/hull-build keygen "$w/k.pem" "$w/keys/k.pem" >/dev/null 2>&1
grub-editenv "$w/esp/EFI/hull/grubenv" create
grub-editenv "$w/esp/EFI/hull/grubenv" set hull_a_prio=10 hull_a_good=1 hull_a_tries=0 hull_b_prio=0 hull_b_tries=0 hull_b_good=0
echo '{"slot":"a","boot_id":"x","persist_device":null}' >"$w/boot.json"
truncate -s 64M "$w/a" "$w/b"

"$w/empty" & pids+=($!)
"$w/floor" & pids+=($!)
$agent --socket "$w/s" --state-dir "$w/state" --esp "$w/esp" --slot-a "$w/a" --slot-b "$w/b" --keys "$w/keys" \
        --boot-json "$w/boot.json" --no-systemd-check --offline 2>/dev/null & pids+=($!)
sleep 2
# Some traffic first: idle after work is what a node sees.
for i in $(seq 1 50); do curl -s --unix-socket "$w/s" http://localhost/v1/status >/dev/null; done
sleep 1

mem() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/smaps_rollup"; }
printf '%-34s %9s %9s %14s\n' "process" "RSS KiB" "PSS KiB" "private KiB"
names=("empty C program" "libmicrohttpd + sd_notify floor" "hull-agent (idle, after 50 calls)")
for i in 0 1 2; do
        p=${pids[$i]}
        printf '%-34s %9d %9d %14d\n' "${names[$i]}" "$(mem "$p" Rss)" "$(mem "$p" Pss)" "$(mem "$p" Private_Dirty)"
done
a=$(mem "${pids[2]}" Rss) f=$(mem "${pids[1]}" Rss)
printf 'ratio agent/floor RSS: %.2f; threads: %s\n' "$(echo "$a / $f" | bc -l)" "$(awk '/^Threads/{print $2}' /proc/${pids[2]}/status)"
