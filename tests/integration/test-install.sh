#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# hull-install on loop devices, from a small synthetic installer medium (the
# layout of hull/ that `hull-build installer` writes): the GPT and sizes for
# a given disk size, root A = the root image, root B blank, persist ext4 with
# the machine config; a disk holding data is refused and left unchanged,
# --force overwrites it; too small disks, the medium itself and bad media are
# refused.
set -uo pipefail
HULL_INSTALL=$1
HULL_BUILD=$2
LOOP_LIB_NAME=install
. "$(dirname "$0")/loop-lib.sh"
MiB=1048576

# The medium: an 8 MiB ESP (vfat), a 12 MiB ext4 root image, a config.
M=$T/media/hull
mkdir -p "$M" "$T/mnt" "$T/rootdir/etc"
echo "synthetic root" >"$T/rootdir/etc/hull-test"
mkfs.ext4 -q -F -L hull-root -d "$T/rootdir" "$T/root.img" 12M
cp "$T/root.img" "$M/root.img"
mkfs.vfat -n HULL-ESP -C "$T/esp.img" 8192 >/dev/null
echo "esp content" >"$T/esp.txt"
mcopy -i "$T/esp.img" "$T/esp.txt" ::/HULL.TXT
zstd -q -3 "$T/esp.img" -o "$M/esp.img.zst"
printf 'hull_config: 1\nhostname: loop-node\n' >"$T/machine.yaml"
"$HULL_BUILD" config "$T/machine.yaml" -o "$M/config.json" 2>/dev/null || { echo "FAIL: hull-build config"; exit 1; }
media_json() { # root_size persist_min
        cat >"$M/install.json" <<EOF
{"hull_install": 1, "name": "synthetic", "version": "0.1", "esp_size": $((8 * MiB)), "root_size": $1,
 "persist_min": $2, "root_image": "root.img", "root_image_size": $(stat -c %s "$T/root.img"),
 "esp_image": "esp.img.zst", "esp_image_size": $((8 * MiB)), "config": "config.json"}
EOF
}
media_json $((32 * MiB)) $((16 * MiB))

new_disk() { # name MiB -> loop device
        truncate -s 0 "$T/$1"
        truncate -s "$2M" "$T/$1"
        local l
        l=$(losetup -f --show "$T/$1")
        echo "$l"
}
sum() { sha256sum "$1" | cut -d' ' -f1; }
pt() { sfdisk -J "$1" | python3 -c "import json,sys; pt=json.load(sys.stdin)['partitiontable']; $2"; }
part_start() { pt "$1" "print([p['start'] for p in pt['partitions'] if p['name'] == '$2'][0] * 512)"; }
part_size() { pt "$1" "print([p['size'] for p in pt['partitions'] if p['name'] == '$2'][0] * 512)"; }

# --- a fresh 128 MiB disk ------------------------------------------------
D=$(new_disk disk.img 128)
"$HULL_INSTALL" --media "$M" --disk "$D" >"$T/out" 2>&1
rc=$?
cat "$T/out"
check "installs onto an empty loop device" "[ $rc -eq 0 ]"
check "says what it installed" "grep -q 'installed synthetic 0.1 on $D' '$T/out'"
names=$(pt "$T/disk.img" "print(' '.join(p['name'] for p in pt['partitions']))")
check "GPT with Hull's four partitions" "[ '$names' = 'hull-esp hull-root-a hull-root-b hull-persist' ]"
sizes=$(pt "$T/disk.img" "print(' '.join(str(p['size'] // 2048) for p in pt['partitions']))")
check "sizes: ESP 8, roots 32 (the spec's), persist the rest of 128 MiB (54)" "[ '$sizes' = '8 32 32 54' ]"
ra=$(part_start "$T/disk.img" hull-root-a)
rsz=$(stat -c %s "$T/root.img")
check "root A holds the root image" "cmp -s -n $rsz -i 0:$ra '$T/root.img' '$T/disk.img'"
rb=$(part_start "$T/disk.img" hull-root-b)
check "root B is blank" "[ \"\$(dd if='$T/disk.img' bs=1M skip=$((rb / MiB)) count=1 status=none | tr -d '\\0' | wc -c)\" -eq 0 ]"
es=$(part_start "$T/disk.img" hull-esp)
check "the ESP is the ESP image" "cmp -s -n $((8 * MiB)) -i 0:$es '$T/esp.img' '$T/disk.img'"
check "the ESP's files are there" "mtype -i '$T/disk.img@@$es' ::/HULL.TXT | grep -q 'esp content'"
ps=$(part_start "$T/disk.img" hull-persist)
pz=$(part_size "$T/disk.img" hull-persist)
PL=$(losetup -f --show -r -o "$ps" --sizelimit "$pz" "$T/disk.img")
check "persist is ext4 labelled hull-persist" "[ \"\$(blkid -o value -s TYPE $PL)/\$(blkid -o value -s LABEL $PL)\" = ext4/hull-persist ]"
mount -o ro "$PL" "$T/mnt"
check "persist holds hull/provision/config.json, the config given" "cmp -s '$M/config.json' '$T/mnt/hull/provision/config.json'"
check "config.json is 0600 root:root" "[ \"\$(stat -c %a:%u:%g '$T/mnt/hull/provision/config.json')\" = 600:0:0 ]"
check "hull/provision is 0700" "[ \"\$(stat -c %a '$T/mnt/hull/provision')\" = 700 ]"
check "the file system fills the partition" "[ \$((\$(stat -f -c '%b * %S' '$T/mnt'))) -gt $((40 * MiB)) ]"
umount "$T/mnt"
losetup -d "$PL"
e2fsck -n -f "$T/disk.img?offset=$ps" >/dev/null 2>&1 || true

# --- the same disk again: it holds data now -------------------------------
before=$(sum "$T/disk.img")
"$HULL_INSTALL" --media "$M" --disk "$D" >"$T/out" 2>&1
rc=$?
check "a disk holding a partition table is refused" "[ $rc -ne 0 ] && grep -q 'holds data (gpt partition table)' '$T/out'"
check "the message says how to force" "grep -q 'hull.install.force=1' '$T/out'"
check "the refused disk is unchanged" "[ \"\$(sum '$T/disk.img')\" = $before ]"

# --- force, with roots as large as the disk allows ------------------------
"$HULL_INSTALL" --media "$M" --disk "$D" --force --root-size max >"$T/out" 2>&1
rc=$?
check "--force overwrites it" "[ $rc -eq 0 ] && grep -q 'overwriting it' '$T/out'"
sizes=$(pt "$T/disk.img" "print(' '.join(str(p['size'] // 2048) for p in pt['partitions']))")
check "root-size max: roots (128-2-8-16)/2 = 51, persist 16" "[ '$sizes' = '8 51 51 16' ]"

# --- a bare file system is data too -----------------------------------------
D2=$(new_disk fs.img 128)
mkfs.ext4 -q -F -L precious "$D2"
before=$(sum "$T/fs.img")
"$HULL_INSTALL" --media "$M" --disk "$D2" >"$T/out" 2>&1
check "a disk holding a bare ext4 is refused" "grep -q 'holds data (ext4 signature)' '$T/out'"
check "and unchanged" "[ \"\$(sum '$T/fs.img')\" = $before ]"

# --- too small ------------------------------------------------------------
D3=$(new_disk small.img 64)
"$HULL_INSTALL" --media "$M" --disk "$D3" >"$T/out" 2>&1
rc=$?
check "a 64 MiB disk is too small for 32 MiB roots" "[ $rc -ne 0 ] && grep -q 'too small' '$T/out'"
check "and it is untouched" "[ \"\$(tr -d '\\0' <'$T/small.img' | wc -c)\" -eq 0 ]"
"$HULL_INSTALL" --media "$M" --disk "$D3" --root-size 40M >"$T/out" 2>&1
check "an explicit root size the disk cannot give is refused" "grep -q 'too small' '$T/out'"
"$HULL_INSTALL" --media "$M" --disk "$D3" --root-size 1M >"$T/out" 2>&1
check "a root size below the image is refused" "grep -q 'smaller than the root image' '$T/out'"

# --- never the medium -------------------------------------------------------
"$HULL_INSTALL" --media "$M" --disk "$D3" --medium "$D3" >"$T/out" 2>&1
check "the medium's own disk is refused" "grep -q 'holds the installer medium' '$T/out'"
"$HULL_INSTALL" --media "$M" --disk "$D3" --root-device "$D3" >"$T/out" 2>&1
check "the disk backing the live root is refused" "grep -q 'holds the installer medium' '$T/out'"

# --- bad settings and media ---------------------------------------------------
"$HULL_INSTALL" --media "$M" --disk vda >"$T/out" 2>&1
check "a disk name without /dev/ is refused" "grep -q 'expected auto or /dev/NAME' '$T/out'"
"$HULL_INSTALL" --media "$M" --disk /dev/does-not-exist >"$T/out" 2>&1
check "a missing disk is refused" "grep -q 'not found' '$T/out'"
"$HULL_INSTALL" --media "$T" --disk "$D3" >"$T/out" 2>&1
check "a directory without install.json is refused" "grep -q 'is the installer medium there' '$T/out'"
cp "$M/config.json" "$T/config.good"
echo '{"hull_config": 1, "hostname": "-bad-"}' >"$M/config.json"
"$HULL_INSTALL" --media "$M" --disk "$D3" --root-size max >"$T/out" 2>&1
check "an invalid machine config is refused before writing" "grep -q 'machine config.*invalid' '$T/out' && [ \"\$(tr -d '\\0' <'$T/small.img' | wc -c)\" -eq 0 ]"
cp "$T/config.good" "$M/config.json"
echo '{"hull_install": 2}' >"$M/install.json"
"$HULL_INSTALL" --media "$M" --disk "$D3" >"$T/out" 2>&1
check "an install.json of another format is refused" "grep -q 'hull_install' '$T/out'"
media_json $((32 * MiB)) $((16 * MiB))
head -c $(($(stat -c %s "$M/esp.img.zst") - 20)) "$M/esp.img.zst" >"$T/esp.trunc" && mv "$T/esp.trunc" "$M/esp.img.zst"
"$HULL_INSTALL" --media "$M" --disk "$D3" --root-size max >"$T/out" 2>&1
rc=$?
check "a truncated ESP image fails clearly" "[ $rc -ne 0 ] && grep -q 'ESP image on the medium is corrupt' '$T/out'"

echo "$failures failure(s)"
[ "$failures" -eq 0 ]
