#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# hull-initrd's dm-verity against cryptsetup's: images formatted the way
# hull-build does (veritysetup format --hash-offset=<fs size>, 4096-byte
# blocks, fixed salt and UUID) must give exactly the table `veritysetup open`
# loads; the device hull-initrd creates with its own ioctls must serve the
# data, and a flipped byte must read as EIO with status C. A wrong root hash
# fails the mount; a superblock we do not accept is refused by name.
# Without device-mapper in the kernel (some CI sandboxes) only the table is
# checked, against `veritysetup dump`, and the test ends as skipped.
set -uo pipefail
INITRD=$1
LOOP_LIB_NAME=initrd-verity
. "$(dirname "$0")/loop-lib.sh"
command -v veritysetup >/dev/null || { echo "SKIP: no veritysetup"; exit 77; }
command -v mkfs.erofs >/dev/null || { echo "SKIP: no mkfs.erofs"; exit 77; }

HAVE_DM=1
dmsetup version >/dev/null 2>&1 || { HAVE_DM=0; echo "NOTE: no device-mapper in this kernel: table checks only"; }
NAMES=()
loop_cleanup_hook() {
        for n in "${NAMES[@]}"; do
                umount "$T/mnt-$n" 2>/dev/null
                dmsetup remove "$n" 2>/dev/null
        done
}

SALT=5a1f5a1f5a1f5a1f5a1f5a1f5a1f5a1f5a1f5a1f5a1f5a1f5a1f5a1f5a1f5a1f
mkdir -p "$T/tree/etc" "$T/tree/usr/lib/hull"
echo "HULL-VERITY-MARKER-$$" >"$T/tree/etc/marker"
head -c 300000 /dev/urandom >"$T/tree/usr/lib/hull/blob"

# make_image NAME FSTYPE SALT -> $T/NAME.img with verity; prints "OFFSET HASH"
make_image() {
        local img=$T/$1.img
        case $2 in
        erofs) mkfs.erofs --quiet "$img" "$T/tree" >/dev/null || return 1 ;;
        ext4)
                truncate -s 16M "$img"
                mkfs.ext4 -q -b 4096 -d "$T/tree" "$img" || return 1 ;;
        esac
        local size
        size=$(stat -c %s "$img")
        size=$(( (size + 4095) / 4096 * 4096 ))
        truncate -s "$size" "$img"
        local out
        out=$(veritysetup format --hash-offset="$size" --data-block-size=4096 --hash-block-size=4096 \
                --salt="$3" --uuid=2f2a8b4c-0e31-4f7b-9b1c-3f7f1b2a9c11 "$img" "$img") || return 1
        echo "$size $(echo "$out" | sed -n 's/^Root hash:[[:space:]]*//p')"
}

cross_check() { # NAME FSTYPE SALT
        local name=$1 fstype=$2 salt=$3 off hash dev want have n
        read -r off hash < <(make_image "$name" "$fstype" "$salt")
        check "$name: image made" "[ -n \"$hash\" ] && [ ${#hash} -eq 64 ]"
        dev=$(losetup -f --show -r "$T/$name.img")

        have=$("$INITRD" --verity-table "$dev" "$off" "$hash")
        echo "hull-initrd: $have"
        # What cryptsetup itself reads from the superblock, without the kernel.
        local dump blocks salt majmin
        dump=$(veritysetup dump "$dev" --hash-offset="$off")
        blocks=$(echo "$dump" | sed -n 's/^Data blocks:[[:space:]]*//p')
        salt=$(echo "$dump" | sed -n 's/^Salt:[[:space:]]*//p')
        majmin=$(printf '%d:%d' "0x$(stat -L -c %t "$dev")" "0x$(stat -L -c %T "$dev")")
        check "$name: table matches veritysetup dump" "[ \"$have\" = \"0 $((blocks * 8)) verity 1 $majmin $majmin 4096 4096 $blocks $((off / 4096 + 1)) sha256 $hash $salt\" ]"
        check "$name: veritysetup verify accepts the image" "veritysetup verify $dev $dev $hash --hash-offset=$off"
        if [ "$HAVE_DM" = 1 ]; then
                NAMES+=("ref-$name-$$")
                veritysetup open "$dev" "ref-$name-$$" "$dev" "$hash" --hash-offset="$off"
                want=$(dmsetup table "ref-$name-$$")
                dmsetup remove "ref-$name-$$"
                echo "veritysetup: $want"
                check "$name: table identical to veritysetup's" "[ -n \"$want\" ] && [ \"$want\" = \"$have\" ]"

                local n="hull-$name-$$"
                NAMES+=("$n")
                "$INITRD" --verity-open "$dev" "$off" "$hash" "$n" >"$T/open-$name" 2>&1
                check "$name: hull-initrd --verity-open" "[ $? -eq 0 ]"
                check "$name: dmsetup sees the same table" "[ \"\$(dmsetup table $n)\" = \"$want\" ]"
                check "$name: /dev/mapper node made" "[ -b /dev/mapper/$n ]"
                check "$name: read-only device" "[ \"\$(blockdev --getro /dev/mapper/$n)\" = 1 ]"
                check "$name: status V" "[ \"\$(dmsetup status $n | awk '{print \$4}')\" = V ]"
                mkdir -p "$T/mnt-$n"
                mount -t "$fstype" -o ro "/dev/mapper/$n" "$T/mnt-$n"
                check "$name: data reads back" "cmp -s $T/tree/etc/marker $T/mnt-$n/etc/marker && cmp -s $T/tree/usr/lib/hull/blob $T/mnt-$n/usr/lib/hull/blob"
                umount "$T/mnt-$n"
                dmsetup remove "$n"
                rm -f "/dev/mapper/$n"
        fi
        losetup -d "$dev"
        echo "$off $hash" >"$T/$name.params"
}

cross_check erofs erofs "$SALT"
cross_check ext4 ext4 "$SALT"
cross_check nosalt erofs -

if [ "$HAVE_DM" = 1 ]; then
# --- a flipped byte in the data: EIO and status C ---
read -r off hash <"$T/erofs.params"
cp "$T/erofs.img" "$T/flip.img"
pos=$(grep -obUa "HULL-VERITY-MARKER-$$" "$T/flip.img" | head -1 | cut -d: -f1)
check "flip: marker found in the image" "[ -n \"$pos\" ]"
printf 'X' | dd of="$T/flip.img" bs=1 seek="$pos" conv=notrunc status=none
dev=$(losetup -f --show -r "$T/flip.img")
n="hull-flip-$$"
NAMES+=("$n")
"$INITRD" --verity-open "$dev" "$off" "$hash" "$n" >/dev/null 2>&1
check "flip: device created (corruption is found on read)" "[ $? -eq 0 ]"
mkdir -p "$T/mnt-$n"
if mount -t erofs -o ro "/dev/mapper/$n" "$T/mnt-$n" 2>/dev/null; then
        cat "$T/mnt-$n/etc/marker" >/dev/null 2>"$T/flip-err"
        rc=$?
        check "flip: reading the file fails" "[ $rc -ne 0 ]"
        check "flip: with EIO" "grep -q 'Input/output error' $T/flip-err"
        umount "$T/mnt-$n"
else
        check "flip: mount fails (byte in metadata)" "true"
fi
check "flip: status C" "[ \"\$(dmsetup status $n | awk '{print \$4}')\" = C ]"
dmsetup remove "$n"
losetup -d "$dev"

# --- a wrong root hash: the mount fails, status C ---
dev=$(losetup -f --show -r "$T/erofs.img")
bad=$(echo "$hash" | tr '0-9a-f' '1-9a-f0')
n="hull-badhash-$$"
NAMES+=("$n")
"$INITRD" --verity-open "$dev" "$off" "$bad" "$n" >/dev/null 2>&1
check "wrong hash: device created" "[ $? -eq 0 ]"
mkdir -p "$T/mnt-$n"
check "wrong hash: mount fails" "! mount -t erofs -o ro /dev/mapper/$n $T/mnt-$n 2>/dev/null"
check "wrong hash: status C" "[ \"\$(dmsetup status $n | awk '{print \$4}')\" = C ]"
dmsetup remove "$n"

losetup -d "$dev"
fi

# --- superblocks and offsets hull-initrd refuses ---
read -r off hash <"$T/erofs.params"
dev=$(losetup -f --show -r "$T/erofs.img")
"$INITRD" --verity-table "$dev" 4096 "$hash" >/dev/null 2>"$T/err-off"
check "wrong offset: refused" "[ $? -ne 0 ] && grep -q 'no dm-verity superblock' $T/err-off"
"$INITRD" --verity-table "$dev" "$((off + 1))" "$hash" >/dev/null 2>"$T/err-align"
check "unaligned offset: refused" "[ $? -ne 0 ] && grep -q 'multiple of 4096' $T/err-align"
losetup -d "$dev"
cp "$T/erofs.img" "$T/sb.img"
printf '\x02' | dd of="$T/sb.img" bs=1 seek="$((off + 8))" conv=notrunc status=none
dev=$(losetup -f --show -r "$T/sb.img")
"$INITRD" --verity-table "$dev" "$off" "$hash" >/dev/null 2>"$T/err-ver"
check "superblock version 2: refused" "[ $? -ne 0 ] && grep -q 'version is not 1' $T/err-ver"
losetup -d "$dev"
cp "$T/erofs.img" "$T/sb.img"
printf 'sha1\0\0' | dd of="$T/sb.img" bs=1 seek="$((off + 32))" conv=notrunc status=none
dev=$(losetup -f --show -r "$T/sb.img")
"$INITRD" --verity-table "$dev" "$off" "$hash" >/dev/null 2>"$T/err-alg"
check "sha1: refused" "[ $? -ne 0 ] && grep -q 'not sha256' $T/err-alg"
losetup -d "$dev"

[ "$failures" -eq 0 ] || { echo "$failures check(s) failed"; exit 1; }
[ "$HAVE_DM" = 1 ] || { echo "SKIP: table checks passed; no device-mapper for the ioctl and EIO checks"; exit 77; }
echo "all checks passed"
