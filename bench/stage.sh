#!/bin/bash
# Stage throughput against dd, in one run: the same payload written to the
# same loop-device partition by "dd bs=1M conv=fsync" and by the update
# library's stage path (signature, streaming SHA-256, write, fsync, cache
# drop and read-back verification, kernel files on a FAT ESP, GRUB
# environment updates). Prints the median of 3 alternating runs and the
# ratio dd_time / stage_time (1.0 = as fast as dd; the target is >= 0.9).
# Usage (root): bench/stage.sh [PAYLOAD_MIB]   (default 512)
set -euo pipefail
cd "$(dirname "$0")/.."
mib=${1:-512}
tool=build/tests/integration/update-tool
hb=build/src/build/hull-build
w=$(mktemp -d /var/tmp/hull-bench-stage.XXXXXX)
LOOP=""
cleanup() { umount "$w/esp" 2>/dev/null || true; [ -n "$LOOP" ] && losetup -d "$LOOP"; rm -rf "$w"; }
trap cleanup EXIT
[ -n "${HULL_BENCH_KEEP:-}" ] && trap "" EXIT

build/tests/integration/make-disk "$w/disk.img" 128 $((mib + 64)) 32 >/dev/null
LOOP=$(losetup -f --show -P "$w/disk.img")
[ -e "${LOOP}p4" ] || partx -a "$LOOP"
mkfs.vfat -F 32 "${LOOP}p1" >/dev/null
mkdir -p "$w/esp" "$w/keys"
mount "${LOOP}p1" "$w/esp" 2>/dev/null || echo "note: no vfat in this kernel; ESP files go to a directory on $(df --output=fstype "$w" | tail -1)"
mkdir -p "$w/esp/EFI/hull"
env=$w/esp/EFI/hull/grubenv
grub-editenv "$env" create
grub-editenv "$env" set hull_a_prio=10 hull_a_tries=0 hull_a_good=1 hull_b_prio=0 hull_b_tries=0 hull_b_good=0

$hb keygen "$w/k.pem" "$w/keys/k.pem" >/dev/null 2>&1
head -c "${mib}M" /dev/urandom >"$w/rootfs"
head -c 8M /dev/urandom >"$w/kernel"
head -c 30M /dev/urandom >"$w/initrd"
cat "$w/rootfs" "$w/kernel" "$w/initrd" >"$w/payload"   # what dd writes: the same bytes
$tool make-bundle "$w/k.pem" "$w/b.hullb" 2.0.0 x86_64 "$w/rootfs" "$w/kernel" "$w/initrd" >/dev/null

now() { date +%s.%N; }
dd_t=() st_t=()
for i in 1 2 3; do
        cat "$w/payload" "$w/b.hullb" >/dev/null   # both inputs warm in the page cache
        t0=$(now)
        dd if="$w/payload" of="${LOOP}p3" bs=1M conv=fsync status=none
        t1=$(now)
        $tool --esp "$w/esp" --slot-a "${LOOP}p2" --slot-b "${LOOP}p3" --keys "$w/keys" --booted a \
                stage "$w/b.hullb" >/dev/null 2>&1
        t2=$(now)
        dd_t+=("$(echo "$t1 - $t0" | bc)")
        st_t+=("$(echo "$t2 - $t1" | bc)")
done
med() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
d=$(med "${dd_t[@]}") s=$(med "${st_t[@]}")
total=$(( mib + 38 ))
printf 'payload            %d MiB (rootfs %d MiB + kernel 8 + initrd 30)\n' "$total" "$mib"
printf 'dd bs=1M fsync     %.2f s  %.0f MiB/s   (runs: %s)\n' "$d" "$(echo "$total / $d" | bc -l)" "${dd_t[*]}"
printf 'hull stage         %.2f s  %.0f MiB/s   (runs: %s)\n' "$s" "$(echo "$total / $s" | bc -l)" "${st_t[*]}"
printf 'ratio dd/stage     %.2f\n' "$(echo "$d / $s" | bc -l)"
