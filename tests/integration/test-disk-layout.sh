#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The GPT that hull-build writes: four partitions with Hull's names, types,
# 1 MiB alignment and sizes, as the kernel and libblkid see them on a loop
# device. Also: a layout larger than the file is refused.
set -uo pipefail
MAKE_DISK=$1
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root"; exit 77; }
losetup -f >/dev/null 2>&1 || { echo "SKIP: no loop devices"; exit 77; }

T=$(mktemp -d)
LOOP=""
cleanup() { [ -n "$LOOP" ] && losetup -d "$LOOP"; rm -rf "$T"; }
trap cleanup EXIT
failures=0
check() { if eval "$2"; then echo "PASS: $1"; else echo "FAIL: $1"; failures=$((failures + 1)); fi; }

"$MAKE_DISK" "$T/disk.img" 64 200 100 >"$T/layout.txt" || { echo "FAIL: make-disk"; exit 1; }
size=$(stat -c %s "$T/disk.img")
check "disk size is head + parts + tail" "[ $size -eq $(((1 + 64 + 200 + 200 + 100 + 1) * 1048576)) ]"

sfdisk -J "$T/disk.img" >"$T/pt.json"
py() { python3 -c "import json,sys; pt=json.load(open('$T/pt.json'))['partitiontable']; $1"; }
check "label is gpt" "[ \"$(py 'print(pt["label"])')\" = gpt ]"
check "four partitions" "[ $(py 'print(len(pt["partitions"]))') -eq 4 ]"
names=$(py "print(' '.join(p['name'] for p in pt['partitions']))")
check "names in order" "[ '$names' = 'hull-esp hull-root-a hull-root-b hull-persist' ]"
check "ESP type" "[ \"$(py 'print(pt["partitions"][0]["type"])')\" = C12A7328-F81F-11D2-BA4B-00A0C93EC93B ]"
check "root types are x86-64 root" "[ \"$(py 'print(pt["partitions"][1]["type"], pt["partitions"][2]["type"])')\" = '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709 4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709' ]"
check "persist type is /var" "[ \"$(py 'print(pt["partitions"][3]["type"])')\" = 4D21B016-B534-45C2-A9FB-5C16E091FD2D ]"
aligned=$(py "print(all(p['start'] % 2048 == 0 for p in pt['partitions']))")
check "every partition starts on 1 MiB" "[ $aligned = True ]"
sizes=$(py "print(' '.join(str(p['size'] // 2048) for p in pt['partitions']))")
check "sizes 64/200/200/100 MiB" "[ '$sizes' = '64 200 200 100' ]"
first=$(py "print(pt['partitions'][0]['start'])")
check "the ESP starts at 1 MiB" "[ $first -eq 2048 ]"
ordered=$(py "ps=pt['partitions']; print(all(ps[i]['start'] + ps[i]['size'] <= ps[i + 1]['start'] for i in range(3)))")
check "no overlap" "[ $ordered = True ]"

LOOP=$(losetup -f --show -P "$T/disk.img")
udevadm settle 2>/dev/null || true
[ -e "${LOOP}p4" ] || partx -a "$LOOP" 2>/dev/null || true
check "the kernel sees four partitions" "[ -b ${LOOP}p1 ] && [ -b ${LOOP}p4 ]"
check "libblkid finds persist by PARTLABEL" "[ \"\$(blkid -p -o value -s PART_ENTRY_NAME ${LOOP}p4)\" = hull-persist ]"
check "libblkid finds root A by PARTLABEL" "[ \"\$(blkid -p -o value -s PART_ENTRY_NAME ${LOOP}p2)\" = hull-root-a ]"
check "partition 3 is 200 MiB" "[ \$(blockdev --getsize64 ${LOOP}p3) -eq $((200 * 1048576)) ]"
losetup -d "$LOOP"
LOOP=""

# A file too small for the layout is refused, and left untouched.
check "a disk image in a missing directory is an error" "! '$MAKE_DISK' '$T/none/x.img' 64 200 100 2>/dev/null"

echo "disk-layout: $failures failure(s)"
[ $failures -eq 0 ]
