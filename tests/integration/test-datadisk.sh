#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Data disks on loop devices (datadisk.c through datadisk-tool): a blank
# disk is partitioned, formatted, gets a mount unit and is mounted; a second
# run formats nothing and the data stays; xfs and partition: false; a disk
# that holds anything else is refused and not one byte of it changes; wipe:
# true formats once and then keeps; a missing device and Hull's own boot
# disk are refused.
set -uo pipefail
TOOL=$1
LOOP_LIB_NAME=datadisk
. "$(dirname "$0")/loop-lib.sh"
sum() { sha256sum "$1" | cut -d' ' -f1; }
field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" "$2" | tail -1; }

R=$T/root
mkdir -p "$R"

# --- a blank disk, ext4, partitioned ---
D1=$(newloop d1 64)
"$TOOL" --root "$R" "$D1" ext4 data1 /srv/data >"$T/out1" 2>"$T/err1"
check "blank disk: applied" "[ $? -eq 0 ]"
check "blank disk: plan was format" "grep -q '^plan=format' $T/out1"
check "blank disk: formatted" "grep -q 'formatted=1' $T/out1"
check "one GPT partition named hull-data-data1" "[ \"\$(sfdisk -J $D1 | python3 -c 'import json,sys; p=json.load(sys.stdin)[\"partitiontable\"]; print(p[\"label\"], len(p[\"partitions\"]), p[\"partitions\"][0][\"name\"], p[\"partitions\"][0][\"type\"], p[\"partitions\"][0][\"start\"])')\" = 'gpt 1 hull-data-data1 0FC63DAF-8483-4772-8E79-3D69D8477DE4 2048' ]"
check "partition is ext4 labelled data1" "[ \"\$(blkid -p -o value -s TYPE ${D1}p1) \$(blkid -p -o value -s LABEL ${D1}p1)\" = 'ext4 data1' ]"
uuid1=$(blkid -p -o value -s UUID "${D1}p1")
U=$R/etc/systemd/system/srv-data.mount
check "unit file written" "[ -f $U ]"
check "unit What= by UUID" "grep -qx 'What=/dev/disk/by-uuid/$uuid1' $U"
check "unit Where=, Type=, Options=" "grep -qx 'Where=/srv/data' $U && grep -qx 'Type=ext4' $U && grep -qx 'Options=defaults' $U"
check "unit WantedBy=local-fs.target" "grep -qx 'WantedBy=local-fs.target' $U"
check "unit enabled" "[ \"\$(readlink $R/etc/systemd/system/local-fs.target.wants/srv-data.mount)\" = /etc/systemd/system/srv-data.mount ]"
check "mounted now" "findmnt -n -o SOURCE $R/srv/data | grep -qx ${D1}p1"
echo hello >"$R/srv/data/keep-me"
sync
unit_sum=$(sum "$U")
unit_mtime=$(stat -c %Y.%y "$U")

# --- run again: nothing formatted, the file is still there ---
"$TOOL" --root "$R" "$D1" ext4 data1 /srv/data >"$T/out2" 2>"$T/err2"
check "second run: succeeds" "[ $? -eq 0 ]"
check "second run: plan keep, nothing formatted, unit not rewritten, not mounted again" \
        "grep -q '^plan=keep' $T/out2 && grep -q 'formatted=0 unit_written=0 mounted=0' $T/out2"
check "second run: same UUID" "[ \"\$(blkid -p -o value -s UUID ${D1}p1)\" = $uuid1 ]"
check "second run: the file is still there" "[ \"\$(cat $R/srv/data/keep-me)\" = hello ]"
check "second run: unit unchanged (content and mtime)" "[ \$(sum $U) = $unit_sum ] && [ \"\$(stat -c %Y.%y $U)\" = '$unit_mtime' ]"
umount "$R/srv/data"

# after a reboot (not mounted): keep, and mounted again with the data
"$TOOL" --root "$R" "$D1" ext4 data1 /srv/data >"$T/out3" 2>"$T/err3"
check "unmounted keep: mounted again, nothing formatted" "grep -q 'formatted=0 unit_written=0 mounted=1' $T/out3 && [ \"\$(cat $R/srv/data/keep-me)\" = hello ]"
umount "$R/srv/data"

# the same disk asked for as xfs (or with another label) is someone else's data
"$TOOL" --root "$R" --no-live "$D1" ext4 other /srv/other >"$T/out" 2>"$T/err"
check "a different label on a formatted disk is refused (-EEXIST)" "[ $? -eq 2 ] && grep -q 'holds a gpt partition table with 1 partition(s), the first holding \"ext4\" (label \"data1\"); refusing to format it. Set wipe: true to destroy it' $T/err"

# --- xfs ---
D2=$(newloop d2 400)
"$TOOL" --root "$R" "$D2" xfs xdata /var/lib/ceph >"$T/out" 2>"$T/err"
check "xfs: applied" "[ $? -eq 0 ] && grep -q 'formatted=1' $T/out"
check "xfs: partition is xfs labelled xdata" "[ \"\$(blkid -p -o value -s TYPE ${D2}p1) \$(blkid -p -o value -s LABEL ${D2}p1)\" = 'xfs xdata' ]"
check "xfs: unit name escaped (var-lib-ceph.mount), Type=xfs" "grep -qx 'Type=xfs' $R/etc/systemd/system/var-lib-ceph.mount"
check "xfs: mounted" "findmnt -n -o FSTYPE $R/var/lib/ceph | grep -qx xfs"
echo x >"$R/var/lib/ceph/x"
sync
uuid2=$(blkid -p -o value -s UUID "${D2}p1")
"$TOOL" --root "$R" "$D2" xfs xdata /var/lib/ceph >"$T/out" 2>"$T/err"
check "xfs again: keep, same UUID, file kept" "grep -q 'plan=keep' $T/out && grep -q formatted=0 $T/out && [ \"\$(blkid -p -o value -s UUID ${D2}p1)\" = $uuid2 ] && [ -f $R/var/lib/ceph/x ]"
umount "$R/var/lib/ceph"
D2s=$(newloop d2small 64)
"$TOOL" --root "$R" --no-live "$D2s" xfs small /srv/small >"$T/out" 2>"$T/err"
check "xfs on 64 MiB: too small (-ENOSPC), message" "[ $? -eq 2 ] && grep -q 'too small for xfs' $T/err"

# --- partition: false, with options and an escaped mount point ---
D3=$(newloop d3 64)
"$TOOL" --root "$R" --no-partition --options noatime,nodev "$D3" ext4 raw "/srv/my-db" >"$T/out" 2>"$T/err"
check "whole device: applied" "[ $? -eq 0 ] && grep -q formatted=1 $T/out"
check "whole device: ext4 on the device itself, no partition table" "[ \"\$(blkid -p -o value -s TYPE $D3)\" = ext4 ] && ! sfdisk -d $D3 >/dev/null 2>&1"
U3="$R/etc/systemd/system/srv-my\\x2ddb.mount"
check "whole device: unit name as systemd-escape" "[ -f \"$U3\" ] && [ \"\$(systemd-escape --path --suffix=mount /srv/my-db)\" = 'srv-my\\x2ddb.mount' ]"
check "whole device: options in the unit and in the mount" "grep -qx 'Options=noatime,nodev' \"$U3\" && findmnt -n -o OPTIONS $R/srv/my-db | grep -q noatime"
umount "$R/srv/my-db"
"$TOOL" --root "$R" --no-partition --no-live "$D3" ext4 raw "/srv/my-db" >"$T/out" 2>"$T/err"
check "whole device again: keep" "grep -q 'plan=keep' $T/out && grep -q formatted=0 $T/out"
"$TOOL" --root "$R" --no-live "$D3" ext4 raw "/srv/my-db" >"$T/out" 2>"$T/err"
check "whole-device ext4 asked for with partition: true is refused" "[ $? -eq 2 ] && grep -q 'holds a \"ext4\" signature' $T/err"

# --- refusals: not one byte changes ---
refused() { # name device expected-errmsg-regex [tool args...]
        local name=$1 dev=$2 re=$3
        shift 3
        local before after rc
        sync
        before=$(sum "$dev")
        "$TOOL" --root "$R" --no-live "$@" >"$T/out" 2>"$T/err"
        rc=$?
        sync
        after=$(sum "$dev")
        printf '%s\n' "$re" >"$T/re"
        check "$name: refused with a message" "[ $rc -eq 2 ] && grep -Eqf $T/re $T/err"
        check "$name: disk bytes unchanged" "[ $before = $after ]"
}
D4=$(newloop d4 64)
mkfs.ext4 -q -L precious "$D4"
refused "unrelated ext4" "$D4" 'holds a "ext4" signature \(label "precious"\); refusing to format it. Set wipe: true' "$D4" ext4 data4 /srv/d4
D5=$(newloop d5 64)
printf 'label: dos\n,10M,83\n' | sfdisk -q "$D5" >/dev/null
refused "a dos partition table" "$D5" 'holds a dos partition table with 1 partition' "$D5" ext4 data5 /srv/d5
D6=$(newloop d6 64)
mkswap -L swappy "$D6" >/dev/null
refused "a swap signature" "$D6" 'holds a "swap" signature' "$D6" ext4 data6 /srv/d6
D7=$(newloop d7 64)
printf 'some database bytes' | dd of="$D7" bs=1 seek=5000 conv=notrunc status=none
refused "unrecognised bytes in the first MiB" "$D7" 'unrecognised data in its first MiB' "$D7" ext4 data7 /srv/d7
D7b=$(newloop d7b 64)
printf 'tail bytes' | dd of="$D7b" bs=1 seek=$((63 * 1048576 + 100)) conv=notrunc status=none
refused "unrecognised bytes in the last MiB" "$D7b" 'unrecognised data in its last MiB' "$D7b" ext4 data7 /srv/d7
D7c=$(newloop d7c 64)
mkfs.ext4 -q -E offset=1048576 -L lost "$D7c" 32M
refused "an old partition's ext4 at 1 MiB without a table" "$D7c" 'signature at 1 MiB' "$D7c" ext4 data7 /srv/d7

# Hull's own boot disk: never, even with wipe
D8=$(newloop d8 64)
printf 'label: gpt\nsize=10M, name="hull-esp"\nsize=10M, name="hull-root-a"\nname="hull-persist"\n' | sfdisk -q "$D8" >/dev/null
refused "the boot disk" "$D8" "Hull's boot disk \(it holds the partition hull-(esp|root-a|persist)\)" --wipe "$D8" ext4 data8 /srv/d8
partx -u "$D8" 2>/dev/null || true
refused "the persist partition itself (partition: false, wipe)" "$D8" "Hull's boot disk \(it holds the partition hull-persist\)" --wipe --no-partition "${D8}p3" ext4 data8 /srv/d8

# a mounted device is never formatted
D9=$(newloop d9 64)
mkfs.ext4 -q -L busy "$D9"
mkdir -p "$T/m9"
mount -o ro,noload "$D9" "$T/m9"  # read-only: the checksum must not move by itself
refused "a mounted device (wipe)" "$D9" 'is mounted; refusing to format it' --wipe --no-partition "$D9" ext4 other /srv/d9
umount "$T/m9"

# a partition with partition: true; a file; a missing device; bad fields
"$TOOL" --root "$R" --no-live "${D1}p1" ext4 x /srv/x >"$T/out" 2>"$T/err"
check "a partition with partition: true is refused" "[ $? -eq 2 ] && grep -q 'is a partition; with partition: true the device must be a whole disk' $T/err"
"$TOOL" --root "$R" --no-live "$T/d1.img" ext4 x /srv/x >"$T/out" 2>"$T/err"
check "a regular file is refused" "[ $? -eq 2 ] && grep -q 'is not a block device' $T/err"
start=$(date +%s%3N)
"$TOOL" --root "$R" --no-live --wait 2 /dev/hull-no-such-disk ext4 x /srv/x >"$T/out" 2>"$T/err"
rc=$?
took=$(($(date +%s%3N) - start))
# It must have waited; the upper bound only catches a wait that never ends
# (a loaded CI host can be slow to run the tool at all).
check "a missing device: waited (2 s; took $took ms, exit $rc) and refused with a clear message: $(head -c 300 "$T/err")" \
        "[ $rc -eq 2 ] && [ $took -ge 1900 ] && [ $took -le 60000 ] && grep -q '/dev/hull-no-such-disk does not exist (waited 2 s for it)' $T/err"
# a late device: appears while we wait
( sleep 1; ln -s "$D1" "$T/late-disk" ) &
"$TOOL" --root "$R" --no-live --wait 10 --plan-only "$T/late-disk" ext4 data1 /srv/data >"$T/out" 2>"$T/err"
check "a late device (symlink appearing after 1 s) is waited for and followed" "[ $? -eq 0 ] && grep -q \"plan=keep device=$D1 \" $T/out"
wait
"$TOOL" --root "$R" --no-live "$D4" ext4 'bad label!' /srv/x >"$T/out" 2>"$T/err"
check "a bad label" "[ $? -eq 2 ] && grep -q '^refused.*label: \"bad label!\" must be' $T/err"
"$TOOL" --root "$R" --no-live "$D4" ext4 ok /etc/foo >"$T/out" 2>"$T/err"
check "a mount point under /etc" "[ $? -eq 2 ] && grep -q 'mount: /etc/foo is in /etc' $T/err"
"$TOOL" --root "$R" --no-live "$D4" btrfs ok /srv/x >"$T/out" 2>"$T/err"
check "an unsupported file system" "[ $? -eq 2 ] && grep -q 'filesystem: \"btrfs\" is not supported' $T/err"
mkdir -p "$T/ro"
mount -t tmpfs -o ro tmpfs "$T/ro"
D10=$(newloop d10 64)
"$TOOL" --root "$T/ro" --no-live "$D10" ext4 ok /data >"$T/out" 2>"$T/err"
check "a mount point that cannot be created on a read-only root (-EROFS)" "[ $? -eq 2 ] && grep -q 'cannot be created on the read-only root' $T/err"
umount "$T/ro"

# --- wipe: true formats once, then keeps ---
before=$(sum "$D4")
"$TOOL" --root "$R" --wipe "$D4" ext4 data4 /srv/d4 >"$T/out" 2>"$T/err"
check "wipe: formatted" "[ $? -eq 0 ] && grep -q '^plan=wipe-and-format' $T/out && grep -q formatted=1 $T/out"
check "wipe: the old ext4 (label precious) is gone, hull-data-data4 is there" "[ \"\$(blkid -p -o value -s LABEL ${D4}p1)\" = data4 ] && ! blkid -p $D4 | grep -q precious"
uuid4=$(blkid -p -o value -s UUID "${D4}p1")
echo mine >"$R/srv/d4/file"
sync
"$TOOL" --root "$R" --wipe "$D4" ext4 data4 /srv/d4 >"$T/out" 2>"$T/err"
check "wipe again: keep, nothing formatted, same UUID, file kept" "grep -q '^plan=keep' $T/out && grep -q formatted=0 $T/out && [ \"\$(blkid -p -o value -s UUID ${D4}p1)\" = $uuid4 ] && [ \"\$(cat $R/srv/d4/file)\" = mine ]"
umount "$R/srv/d4"
"$TOOL" --root "$R" --wipe --no-live "$D5" xfs data5 /srv/d5 >"$T/out" 2>"$T/err"
check "wipe over a dos table: too small for xfs is still refused" "[ $? -eq 2 ] && grep -q 'too small' $T/err"
"$TOOL" --root "$R" --wipe --no-live "$D5" ext4 data5 /srv/d5 >"$T/out" 2>"$T/err"
check "wipe over a dos table: gpt now, ext4" "[ $? -eq 0 ] && [ \"\$(blkid -p -o value -s PTTYPE $D5)\" = gpt ] && [ \"\$(blkid -p -o value -s TYPE ${D5}p1)\" = ext4 ]"

echo "$failures failure(s)"
[ "$failures" -eq 0 ]
