#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# hull-init against real file systems: an erofs root image, a GPT disk on a
# loop device with an ext4 partition labelled hull-persist, overlayfs for
# /etc. Every hull-init run happens inside its own mount namespace
# (unshare -m --propagation private), standing in for one boot; nothing is
# mounted in the caller's namespace.
#
# Phases: boot1 (first boot), boot2 (the next boot, on an updated image),
# blkid (finding the partition by PARTUUID= and the default PARTLABEL=),
# negative (fatal errors), verity (only where device-mapper exists),
# writable_root (a root that has to be made read-only), pid1 (the real boot
# path: hull-init as PID 1 of a PID namespace, exec of init, reboot()).
#
#   test-init-layout.sh PATH-TO-hull-init
#
# Needs root, loop devices, erofs and overlayfs; exits 77 (skip) otherwise.

set -u

if [ "${1:-}" = "--phase" ]; then
        PHASE=$2
        HULL_INIT=$3
else
        PHASE=
        HULL_INIT=${1:-}
fi

FAILED=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; FAILED=$((FAILED + 1)); }
check() {
        local desc=$1
        shift
        if "$@"; then pass "$desc"; else fail "$desc"; fi
}
not() { ! "$@"; }
file_is() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }
not_writable() { ! touch "$1/.hull-test-write" 2>/dev/null; }
writes() { printf '%s' "$2" >"$1" 2>/dev/null; }
same_device() { [ "$(stat -c %d "$1")" = "$(stat -c %d "$2")" ]; }
json_has() { grep -q -- "$2" "$1"; }
mount_has_options() {
        local opts
        opts=$(findmnt -n -o OPTIONS --mountpoint "$1") || return 1
        for o in "${@:2}"; do
                [[ ",$opts," == *",$o,"* ]] || return 1
        done
}
fstype_is() { [ "$(findmnt -n -o FSTYPE --mountpoint "$1")" = "$2" ]; }
persist_layout_exists() {
        local d
        for d in etc/upper etc/work var home root hull; do
                [ -d "$1/$d" ] || return 1
        done
}
no_seed_leftovers() { [ -z "$(find "$1" -name .hull-seed.tmp 2>/dev/null)" ]; }

# Run hull-init in test mode; output in $T/out.log, exit status in $RC.
run_init() {
        "$HULL_INIT" --setup-only "$@" >"$T/out.log" 2>&1
        RC=$?
        sed 's/^/    | /' "$T/out.log"
}
output_has() { grep -q -- "$1" "$T/out.log"; }

# ---- phases, each run in a new mount namespace ----------------------------

phase_boot1() {
        mkdir -p "$T/root"
        mount -t erofs -o ro "$T/root1.erofs" "$T/root" || { fail "mount root1.erofs"; return; }

        run_init --root="$T/root" --persist="$PART" --cmdline="console=ttyS0 hull.slot=a" --run-dir="$T/run1"
        check "boot 1: hull-init --setup-only succeeds" [ "$RC" -eq 0 ]
        [ "$RC" -eq 0 ] || return

        check "boot 1: the root stays read-only (/usr)" not_writable "$T/root/usr"
        check "boot 1: /etc is an overlay" fstype_is "$T/root/etc" overlay
        check "boot 1: /etc shows the image's files" file_is "$T/root/etc/hostname" "image"
        check "boot 1: /etc is writable" writes "$T/root/etc/newfile" "written-on-boot-1"
        check "boot 1: a new /etc file lands in persist's etc/upper" \
                file_is "$T/root/persist/etc/upper/newfile" "written-on-boot-1"
        check "boot 1: an /etc file of the image can be deleted" rm "$T/root/etc/removed-by-admin"
        check "boot 1: an /etc file of the image can be changed" writes "$T/root/etc/motd" "node motd"
        check "boot 1: /var is on the persist partition" same_device "$T/root/var" "$T/root/persist"
        check "boot 1: /persist is the persist partition" \
                [ "$(findmnt -n -o SOURCE --mountpoint "$T/root/persist")" = "$PART" ]
        check "boot 1: /persist is nosuid,nodev" mount_has_options "$T/root/persist" nosuid nodev
        check "boot 1: /var is nosuid,nodev" mount_has_options "$T/root/var" nosuid nodev
        check "boot 1: /home is on persist" same_device "$T/root/home" "$T/root/persist"
        check "boot 1: /root is on persist, mode 700" \
                eval 'same_device "$T/root/root" "$T/root/persist" && [ "$(stat -c %a "$T/root/root")" = 700 ]'
        check "boot 1: /tmp is a tmpfs of mode 1777" \
                eval 'fstype_is "$T/root/tmp" tmpfs && [ "$(stat -c %a "$T/root/tmp")" = 1777 ]'
        check "boot 1: the image's /var was seeded" file_is "$T/root/var/lib/hull-test/data.txt" "from-image-1"
        check "boot 1: seeding keeps mode, owner and mtime" \
                [ "$(stat -c '%a %u %g %Y' "$T/root/var/lib/hull-test/owned")" = "640 1234 5678 1000000000" ]
        check "boot 1: seeding keeps directory mode and owner" \
                [ "$(stat -c '%a %u %g' "$T/root/var/lib/hull-test/private")" = "750 4321 8765" ]
        check "boot 1: seeding keeps symbolic links" [ "$(readlink "$T/root/var/run")" = "/run" ]
        check "boot 1: seeding copies empty directories" [ -d "$T/root/var/log/empty" ]
        check "boot 1: seeding copies FIFOs" [ -p "$T/root/var/lib/hull-test/fifo" ]
        check "boot 1: seeding copies device nodes" \
                [ "$(stat -c '%F %t:%T' "$T/root/var/lib/hull-test/null")" = "character special file 1:3" ]
        check "boot 1: seeding leaves no temporary behind" no_seed_leftovers "$T/root/var"
        check "boot 1: hull-init made a machine ID (32 hex digits, version 4)" \
                grep -qE '^[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}$' "$T/root/etc/machine-id"
        check "boot 1: the machine ID is on persist" cmp -s "$T/root/etc/machine-id" "$T/root/persist/etc/upper/machine-id"
        cp "$T/root/etc/machine-id" "$T/machine-id.boot1"
        check "boot 1: the persist layout exists" persist_layout_exists "$T/root/persist"
        check "boot 1: .hull-layout is \"1\"" file_is "$T/root/persist/.hull-layout" "1"
        check "boot 1: boot.json has slot \"a\"" json_has "$T/run1/hull/boot.json" '"slot": "a"'
        check "boot 1: boot.json has first_boot true" json_has "$T/run1/hull/boot.json" '"first_boot": true'
        check "boot 1: boot.json has degraded false" json_has "$T/run1/hull/boot.json" '"degraded": false'
        check "boot 1: boot.json has no root hash" json_has "$T/run1/hull/boot.json" '"verity_roothash": null'
        check "boot 1: boot.json names the persist device" json_has "$T/run1/hull/boot.json" "\"persist_device\": \"$PART\""
        check "boot 1: boot.json has the boot id" \
                json_has "$T/run1/hull/boot.json" "\"boot_id\": \"$(cat /proc/sys/kernel/random/boot_id)\""
        if command -v jq >/dev/null; then
                check "boot 1: boot.json is valid JSON" jq -e . "$T/run1/hull/boot.json" >/dev/null
        fi
        check "boot 1: boot-history has one line for slot a" \
                eval '[ "$(wc -l <"$T/root/persist/hull/boot-history")" = 1 ] && grep -q " slot=a " "$T/root/persist/hull/boot-history"'

        # Node data that boot 2 must keep.
        check "boot 1: /var is writable" writes "$T/root/var/lib/hull-test/data.txt" "node-data"
        sync
        umount -R "$T/root" || fail "boot 1: unmount everything"
}

phase_boot2() {
        mkdir -p "$T/root"
        mount -t erofs -o ro "$T/root2.erofs" "$T/root" || { fail "mount root2.erofs"; return; }

        run_init --root="$T/root" --persist="$PART" --cmdline="hull.slot=b hull.boot=degraded" --run-dir="$T/run2"
        check "boot 2 (new image): hull-init --setup-only succeeds" [ "$RC" -eq 0 ]
        [ "$RC" -eq 0 ] || return

        check "boot 2: the /etc file of boot 1 survived" file_is "$T/root/etc/newfile" "written-on-boot-1"
        check "boot 2: the machine ID of boot 1 is kept" cmp -s "$T/root/etc/machine-id" "$T/machine-id.boot1"
        check "boot 2: the /etc file deleted on boot 1 stays deleted" not [ -e "$T/root/etc/removed-by-admin" ]
        check "boot 2: the /etc file changed on boot 1 keeps the change" file_is "$T/root/etc/motd" "node motd"
        check "boot 2: a new /etc file of the new image shows" file_is "$T/root/etc/new-in-image-2" "new"
        check "boot 2: an unchanged /etc file follows the new image" file_is "$T/root/etc/hostname" "image-2"
        check "boot 2: existing /var data was not overwritten" file_is "$T/root/var/lib/hull-test/data.txt" "node-data"
        check "boot 2: a new /var file of the new image was seeded" \
                file_is "$T/root/var/lib/hull-test/new-in-2/file" "seeded-2"
        check "boot 2: a new /var directory of the new image was seeded" \
                file_is "$T/root/var/lib/newservice/state" "fresh"
        check "boot 2: seeding leaves no temporary behind" no_seed_leftovers "$T/root/var"
        check "boot 2: boot.json has slot \"b\"" json_has "$T/run2/hull/boot.json" '"slot": "b"'
        check "boot 2: boot.json has first_boot false" json_has "$T/run2/hull/boot.json" '"first_boot": false'
        check "boot 2: boot.json has degraded true" json_has "$T/run2/hull/boot.json" '"degraded": true'
        check "boot 2: boot-history has two lines" \
                eval '[ "$(wc -l <"$T/root/persist/hull/boot-history")" = 2 ] && tail -n1 "$T/root/persist/hull/boot-history" | grep -q " slot=b .* degraded=1 "'
        umount -R "$T/root" || fail "boot 2: unmount everything"
}

# The persist partition found by libblkid, with no udev links to help.
phase_blkid() {
        mkdir -p "$T/root"
        mount -t erofs -o ro "$T/root2.erofs" "$T/root" || { fail "mount root2.erofs"; return; }

        # Also: a boot-history beyond 64 KiB is rotated on this boot.
        mkdir -p "$T/p"
        mount "$PART" "$T/p" &&
                head -c 70000 /dev/zero | tr '\0' 'x' >>"$T/p/hull/boot-history" &&
                umount "$T/p" || fail "blkid: grow boot-history"

        local partuuid
        partuuid=$(blkid -p -s PART_ENTRY_UUID -o value "$PART")
        run_init --root="$T/root" --cmdline="hull.slot=a hull.persist=PARTUUID=$partuuid" --run-dir="$T/run3"
        check "blkid: hull.persist=PARTUUID= finds the partition" \
                eval '[ "$RC" -eq 0 ] && json_has "$T/run3/hull/boot.json" "\"persist_device\": \"$PART\""'
        check "blkid: its temporary configuration is gone" not [ -e "$T/run3/hull/blkid.conf" ]
        check "boot-history: rotated to boot-history.1 beyond 64 KiB" \
                eval '[ "$(stat -c %s "$T/root/persist/hull/boot-history.1")" -gt 65536 ] &&
                      [ "$(wc -l <"$T/root/persist/hull/boot-history")" = 1 ]'
        umount -R "$T/root" 2>/dev/null

        # The default, PARTLABEL=hull-persist, only if ours is the only one.
        if [ "$(blkid -t PARTLABEL=hull-persist -o device 2>/dev/null | wc -l)" = 1 ]; then
                mount -t erofs -o ro "$T/root2.erofs" "$T/root"
                run_init --root="$T/root" --cmdline="hull.slot=a" --run-dir="$T/run4"
                check "blkid: the default PARTLABEL=hull-persist finds the partition" \
                        eval '[ "$RC" -eq 0 ] && json_has "$T/run4/hull/boot.json" "\"persist_device\": \"$PART\""'
                umount -R "$T/root" 2>/dev/null
        else
                echo "SKIP: another device carries PARTLABEL=hull-persist; not testing the default lookup"
        fi
}

phase_negative() {
        mkdir -p "$T/root"
        mount -t erofs -o ro "$T/root1.erofs" "$T/root" || { fail "mount root1.erofs"; return; }

        run_init --root="$T/root" --persist=/dev/hull-test-no-such-device --cmdline="hull.slot=a" --run-dir="$T/run-n1"
        check "missing persist device: non-zero exit" [ "$RC" -ne 0 ]
        check "missing persist device: the message names the persist partition" \
                output_has "FATAL: cannot find the persist partition (/dev/hull-test-no-such-device)"
        check "missing persist device: nothing was mounted" not fstype_is "$T/root/etc" overlay

        run_init --root="$T/root" --cmdline="hull.slot=a hull.persist=PARTLABEL=hull-test-no-such-label-$$" \
                --run-dir="$T/run-n2"
        check "unknown persist label: non-zero exit" [ "$RC" -ne 0 ]
        check "unknown persist label: the message names the label" \
                output_has "cannot find the persist partition (PARTLABEL=hull-test-no-such-label-$$)"

        run_init --root="$T/root" --persist="$PART" --run-dir="$T/run-n3" \
                --cmdline="hull.slot=a hull.verity.roothash=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        check "root hash on a non-verity root: non-zero exit" [ "$RC" -ne 0 ]
        check "root hash on a non-verity root: the message mentions verity" output_has "verity"
        check "root hash on a non-verity root: persist was not mounted" \
                not findmnt -n --mountpoint "$T/root/persist"

        run_init --root="$T/root" --persist="$PART" --cmdline="hull.verity.roothash=xyz" --run-dir="$T/run-n4"
        check "malformed root hash: refused, not skipped" \
                eval '[ "$RC" -ne 0 ] && output_has "invalid value for hull.verity.roothash="'

        "$HULL_INIT" --root="$T/root" >"$T/out.log" 2>&1
        RC=$?
        check "without --setup-only, not PID 1: refuses to run" eval '[ "$RC" -ne 0 ] && output_has "Refusing to run"'
        umount -R "$T/root" 2>/dev/null
}

# A real dm-verity root, where the kernel has device-mapper.
phase_verity() {
        if [ ! -e /dev/mapper/control ] || ! command -v veritysetup >/dev/null; then
                echo "SKIP: no device-mapper or no veritysetup; not testing a verity root"
                return
        fi
        local hash
        cp "$T/root1.erofs" "$T/verity-data.img"
        hash=$(veritysetup format "$T/verity-data.img" "$T/verity-hash.img" | sed -n 's/^Root hash:[[:space:]]*//p')
        if [ -z "$hash" ] ||
                ! veritysetup open "$T/verity-data.img" "$VERITY_NAME" "$T/verity-hash.img" "$hash" 2>/dev/null; then
                echo "SKIP: cannot open a dm-verity device (no dm-verity in this kernel?)"
                return
        fi
        mkdir -p "$T/root"
        mount -t erofs -o ro "/dev/mapper/$VERITY_NAME" "$T/root" || { fail "verity: mount"; return; }

        run_init --root="$T/root" --persist="$PART" --cmdline="hull.slot=a hull.verity.roothash=$hash" \
                --run-dir="$T/run-v1"
        check "verity: the matching root hash is accepted" \
                eval '[ "$RC" -eq 0 ] && json_has "$T/run-v1/hull/boot.json" "\"verity_roothash\": \"$hash\""'
        umount -R "$T/root"

        mount -t erofs -o ro "/dev/mapper/$VERITY_NAME" "$T/root"
        local wrong
        wrong=$(printf '%s' "$hash" | tr '0-9a-f' '1-9a-f0')
        run_init --root="$T/root" --persist="$PART" --cmdline="hull.slot=a hull.verity.roothash=$wrong" \
                --run-dir="$T/run-v2"
        check "verity: another root hash is refused" \
                eval '[ "$RC" -ne 0 ] && output_has "dm-verity root hash of the root device"'
        umount -R "$T/root"
        veritysetup close "$VERITY_NAME"
}

# The boot path itself: hull-init as PID 1 of a PID namespace, chroot()ed into
# an image that contains it, its libraries and a fake systemd (a bash script).
# /dev is a tmpfs with just the nodes needed, and /dev/console and /dev/kmsg
# are plain files, so that the console output can be checked and nothing
# reaches the real console; /proc/cmdline is a file bind-mounted over the
# namespace's /proc. reboot() in a PID namespace only ends that namespace.
boot_pid1() {
        local cmdline=$1
        shift
        mount -t erofs -o ro "$T/root-pid1.erofs" "$T/root" || return 1
        mount -t tmpfs -o mode=0755 tmpfs "$T/root/dev" || return 1
        cp -a /dev/null /dev/zero /dev/urandom "$LOOP" "$PART" "$T/root/dev/" || return 1
        : >"$T/root/dev/console"
        : >"$T/root/dev/kmsg"
        printf '%s\n' "$cmdline" >"$T/cmdline"
        # A subshell, so that the shell's "Hangup" job report goes to the log.
        (
                timeout 60 unshare -p -f --kill-child bash -c '
                        mount -t proc proc "$T/root/proc" &&
                        mount --bind "$T/cmdline" "$T/root/proc/cmdline" &&
                        exec chroot "$T/root" /usr/lib/hull/hull-init "$@"' bash "$@"
                exit $?
        ) >"$T/pid1.log" 2>&1
        RC=$?
        grep -E '^(unshare|chroot|mount|timeout|bash):' "$T/pid1.log" | sed 's/^/    | /'
        sed 's/^/    | console: /' "$T/root/dev/console"
        sed 's/^/    | kmsg: /' "$T/root/dev/kmsg"
}

phase_pid1() {
        mkdir -p "$T/root"
        boot_pid1 "root=PARTLABEL=hull-root-a ro hull.slot=a hull.fatal_delay=0" single --log-level=debug
        check "PID 1: hull-init executes init, which exits normally" [ "$RC" -eq 0 ]
        local ev=$T/root/var/pid1-evidence
        [ -f "$ev" ] && sed 's/^/    | init: /' "$ev"
        check "PID 1: init gets the kernel's arguments unchanged" grep -qx "args=single --log-level=debug" "$ev"
        check "PID 1: init runs as PID 1" grep -qx "pid=1" "$ev"
        check "PID 1: init finds / read-only" grep -qx "usr=readonly" "$ev"
        check "PID 1: init finds /etc writable" grep -qx "etc=writable" "$ev"
        check "PID 1: init finds /etc an overlay and /var, /tmp, /proc, /sys, /run mounted" \
                grep -qx "mounts=etc-overlay var tmp-tmpfs proc sys run-tmpfs" "$ev"
        check "PID 1: init finds boot.json for slot a" grep -qx "bootjson=slot-a" "$ev"
        check "PID 1: progress goes to /dev/kmsg" grep -q "^<6>hull-init: Starting /lib/systemd/systemd" "$T/root/dev/kmsg"
        check "PID 1: the /etc write of init reached persist" [ -f "$T/root/persist/etc/upper/pid1-test" ]
        umount -R "$T/root" 2>/dev/null

        boot_pid1 "hull.slot=a hull.fatal_delay=1 hull.persist=PARTLABEL=hull-test-no-such-label" single
        check "PID 1 failure: hull-init reboots (ends the PID namespace)" [ "$RC" -eq $((128 + 1)) ]
        check "PID 1 failure: the console shows one clear paragraph" \
                grep -qx "hull-init: FATAL: cannot find the persist partition (PARTLABEL=hull-test-no-such-label): No such file or directory. The node cannot boot this slot; rebooting in 1 s so that the boot loader can fall back to the other slot." \
                "$T/root/dev/console"
        check "PID 1 failure: /dev/kmsg has it too, at LOG_CRIT" grep -q "^<2>hull-init: FATAL: cannot find the persist" \
                "$T/root/dev/kmsg"
        umount -R "$T/root" 2>/dev/null

        boot_pid1 "hull.slot=a hull.fatal_delay=0 hull.init=/no/such/init"
        check "PID 1, init missing: hull-init reboots" [ "$RC" -eq $((128 + 1)) ]
        check "PID 1, init missing: the console says so" \
                grep -q "FATAL: cannot execute /no/such/init: No such file or directory" "$T/root/dev/console"
        umount -R "$T/root" 2>/dev/null
}

# A writable root (a plain directory) is made read-only; a directory stands in
# for the persist partition.
phase_writable_root() {
        mkdir -p "$T/w"
        mount -t tmpfs tmpfs "$T/w" || { fail "mount a tmpfs for the writable root"; return; }
        cp -a "$T/tree1" "$T/w/root"
        mkdir "$T/w/persist"

        run_init --root="$T/w/root/" --persist="$T/w/persist" --cmdline="hull.slot=a"
        check "writable root: hull-init --setup-only succeeds" [ "$RC" -eq 0 ]
        check "writable root: it was made read-only" not_writable "$T/w/root/usr"
        check "writable root: /etc still takes writes" writes "$T/w/root/etc/newfile" "x"
        check "writable root: ... which land in the persist directory" file_is "$T/w/persist/etc/upper/newfile" "x"
        check "writable root: the default --run-dir is ROOT/run" json_has "$T/w/root/run/hull/boot.json" '"slot": "a"'
        umount -R "$T/w/root" 2>/dev/null

        cp -a "$T/tree1" "$T/w/noroot"
        rmdir "$T/w/noroot/persist"
        run_init --root="$T/w/noroot" --persist="$T/w/persist" --cmdline="hull.slot=a"
        check "image without /persist: fails, naming /persist" \
                eval '[ "$RC" -ne 0 ] && output_has "no /persist directory"'
        umount -R "$T/w" 2>/dev/null
}

if [ -n "$PHASE" ]; then
        "phase_$PHASE"
        exit $((FAILED > 100 ? 100 : FAILED))
fi

# ---- set-up in the caller's namespace ------------------------------------

skip() {
        echo "SKIP: $*"
        exit 77
}

[ -n "$HULL_INIT" ] && [ -x "$HULL_INIT" ] || { echo "usage: $0 PATH-TO-hull-init" >&2; exit 2; }
HULL_INIT=$(readlink -f "$HULL_INIT")
[ "$(id -u)" = 0 ] || skip "needs root"
for t in mkfs.erofs mkfs.ext4 sfdisk losetup unshare findmnt blkid mount umount; do
        command -v "$t" >/dev/null || skip "$t is not installed"
done
[ -e /dev/loop-control ] || skip "no loop device support"
grep -qw erofs /proc/filesystems || modprobe erofs 2>/dev/null || skip "no erofs"
grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || skip "no overlayfs"

T=$(mktemp -d /tmp/hull-init-test.XXXXXX)
LOOP=
VERITY_NAME=hull-init-test-$$
cleanup() {
        # Mounts live in namespaces that are gone by now; this is for accidents.
        findmnt -rn -o TARGET | grep "^$T" | sort -r | while read -r m; do umount -l "$m"; done
        [ -e "/dev/mapper/$VERITY_NAME" ] && veritysetup close "$VERITY_NAME"
        [ -n "$LOOP" ] && losetup -d "$LOOP" 2>/dev/null
        for img in "$T/root1.erofs" "$T/root2.erofs" "$T/root-pid1.erofs"; do
                losetup -j "$img" -O NAME -n 2>/dev/null | while read -r l; do losetup -d "$l"; done
        done
        rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# Image 1: the directories the builder creates, an /etc, and a /var with a
# bit of everything seeding has to preserve.
R=$T/tree1
mkdir -p "$R"/{etc,var,home,root,tmp,persist,proc,sys,dev,run,usr/lib/hull,usr/bin}
printf image >"$R/etc/hostname"
printf "image motd" >"$R/etc/motd"
echo uninitialized >"$R/etc/machine-id"
echo "to be deleted" >"$R/etc/removed-by-admin"
mkdir -p "$R"/var/lib/hull-test "$R"/var/log/empty "$R"/var/cache
printf from-image-1 >"$R/var/lib/hull-test/data.txt"
printf owned >"$R/var/lib/hull-test/owned"
chown 1234:5678 "$R/var/lib/hull-test/owned"
chmod 640 "$R/var/lib/hull-test/owned"
touch -h -d @1000000000 "$R/var/lib/hull-test/owned"
mkdir "$R/var/lib/hull-test/private"
chown 4321:8765 "$R/var/lib/hull-test/private"
chmod 750 "$R/var/lib/hull-test/private"
ln -s /run "$R/var/run"
mkfifo "$R/var/lib/hull-test/fifo"
mknod "$R/var/lib/hull-test/null" c 1 3

# Image 2, "the update": changes in the image's /var must not reach the node's
# data, new entries must.
cp -a "$R" "$T/tree2"
R2=$T/tree2
printf image-2 >"$R2/etc/hostname"
printf new >"$R2/etc/new-in-image-2"
printf from-image-2 >"$R2/var/lib/hull-test/data.txt"
mkdir -p "$R2/var/lib/hull-test/new-in-2" "$R2/var/lib/newservice"
printf seeded-2 >"$R2/var/lib/hull-test/new-in-2/file"
printf fresh >"$R2/var/lib/newservice/state"

mkfs.erofs --quiet "$T/root1.erofs" "$T/tree1" >/dev/null || { echo "FAIL: mkfs.erofs"; exit 1; }

# Image for the PID 1 test: image 1 plus hull-init, bash as systemd, and their
# libraries.
copy_with_libs() {
        local f
        for f in "$1" $(ldd "$1" | grep -o '/[^ ]*'); do
                cp -L --parents "$f" "$2/" || return 1
        done
}
PID1=
if command -v ldd >/dev/null && command -v chroot >/dev/null; then
        R3=$T/tree3
        cp -a "$R" "$R3"
        copy_with_libs "$HULL_INIT" "$R3" && copy_with_libs "$(command -v bash)" "$R3" &&
                PID1=yes
        mkdir -p "$R3/usr/lib/hull" "$R3/lib/systemd" "$R3/bin"
        cp "$HULL_INIT" "$R3/usr/lib/hull/hull-init"
        [ -e "$R3/bin/bash" ] || cp -L "$(command -v bash)" "$R3/bin/bash"
        cat >"$R3/lib/systemd/systemd" <<'EOF_INIT'
#!/bin/bash
# Stands in for systemd: writes what it finds to /var (on persist) and exits.
{
        echo "pid=$$"
        echo "args=$*"
        if : 2>/dev/null >/usr/.hull-test; then echo "usr=writable"; else echo "usr=readonly"; fi
        if : 2>/dev/null >/etc/pid1-test; then echo "etc=writable"; fi
        mi=$(</proc/self/mountinfo)
        m=
        [[ $mi == *" /etc "*" - overlay "* ]] && m+="etc-overlay "
        [[ $mi == *" /var "* ]] && m+="var "
        [[ $mi == *" /tmp "*" - tmpfs "* ]] && m+="tmp-tmpfs "
        [[ $mi == *" /proc "*" - proc "* ]] && m+="proc "
        [[ $mi == *" /sys "*" - sysfs "* ]] && m+="sys "
        [[ $mi == *" /run "*" - tmpfs "* ]] && m+="run-tmpfs"
        echo "mounts=$m"
        json=$(</run/hull/boot.json)
        [[ $json == *'"slot": "a"'* ]] && echo "bootjson=slot-a"
} >/var/pid1-evidence 2>&1
exit 0
EOF_INIT
        chmod 755 "$R3/lib/systemd/systemd"
        mkfs.erofs --quiet "$T/root-pid1.erofs" "$R3" >/dev/null || PID1=
fi
mkfs.erofs --quiet "$T/root2.erofs" "$T/tree2" >/dev/null || { echo "FAIL: mkfs.erofs"; exit 1; }

# The disk: GPT, one partition labelled hull-persist, ext4 on it.
truncate -s 64M "$T/disk.img"
printf 'label: gpt\nstart=2048, size=120000, name="hull-persist"\n' | sfdisk -q "$T/disk.img" >/dev/null ||
        { echo "FAIL: sfdisk"; exit 1; }
LOOP=$(losetup -f --show -P "$T/disk.img") || skip "cannot set up a loop device"
PART=${LOOP}p1
for _ in $(seq 20); do [ -b "$PART" ] && break; sleep 0.1; done
# Kernels without GPT support in their partition scan: let partx add it.
[ -b "$PART" ] || partx -a "$LOOP" 2>/dev/null
for _ in $(seq 30); do [ -b "$PART" ] && break; sleep 0.1; done
[ -b "$PART" ] || { echo "FAIL: $PART did not appear"; exit 1; }
mkfs.ext4 -q -F "$PART" >/dev/null || { echo "FAIL: mkfs.ext4 $PART"; exit 1; }

export T PART LOOP VERITY_NAME
PHASES="boot1 boot2 blkid negative verity writable_root"
if [ -n "$PID1" ]; then
        PHASES+=" pid1"
else
        echo "SKIP: no ldd or chroot; not testing hull-init as PID 1"
fi
TOTAL_FAILED=0
for phase in $PHASES; do
        echo "== $phase"
        unshare -m --propagation private bash "$0" --phase "$phase" "$HULL_INIT"
        TOTAL_FAILED=$((TOTAL_FAILED + $?))
done

echo
if [ "$TOTAL_FAILED" -eq 0 ]; then
        echo "PASS: test-init-layout"
        exit 0
fi
echo "FAIL: test-init-layout ($TOTAL_FAILED failed checks)"
exit 1
