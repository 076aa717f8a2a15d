#!/bin/bash
# Boot time under TCG: a Hull image against a plain Debian image of the same
# packages (Debian's own initramfs-tools configuration, ext4 root mounted
# read-write, no hull-init), both booted through OVMF and GRUB in the same
# QEMU configuration, alternating, RUNS times each (default 3).
#
# Per boot it measures
#   QEMU-to-ready   host clock: QEMU started -> the "ready" line on the
#                   serial console (after multi-user.target)
#   kernel-to-ready the guest's /proc/uptime on that line: firmware and GRUB
#                   excluded
#   kernel-to-init  the kernel's own timestamp of "Run /init as init process"
# and prints the medians, the ratios Hull / plain, the sizes of the Hull
# initramfs and root image, and systemd-analyze (time, critical-chain, blame)
# of the last Hull boot and the last plain boot.
# Usage (root): bench/boot.sh HULL_DISK_IMAGE PACKAGES_LAYER_TAR [RUNS]
#   PACKAGES_LAYER_TAR: /var/cache/hull-build/packages-*.tar of the same spec
set -euo pipefail
cd "$(dirname "$0")/.."
hull_img=$1
layer=$2
runs=${3:-3}
w=$(mktemp -d /var/tmp/hull-bench-boot.XXXXXX)
trap 'rm -rf "$w"' EXIT

# --- the plain Debian image
mkdir "$w/root"
tar --numeric-owner -xpf "$layer" -C "$w/root"
cat >"$w/root/etc/systemd/system/plain-ready.service" <<'EOU'
[Unit]
After=multi-user.target
Wants=multi-user.target
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo "hull: ready: plain uptime=$(cut -d" " -f1 /proc/uptime)" > /dev/console'
[Install]
WantedBy=multi-user.target
EOU
ln -sf /etc/systemd/system/plain-ready.service "$w/root/etc/systemd/system/multi-user.target.wants/plain-ready.service"
# the same report as Hull's hull-boot-report, about plain-ready
sed 's/hull-ready.service/plain-ready.service/' data/hull-boot-report >"$w/root/usr/local/bin/boot-report"
chmod 0755 "$w/root/usr/local/bin/boot-report"
cat >"$w/root/etc/systemd/system/boot-report.service" <<'EOU'
[Unit]
After=multi-user.target plain-ready.service
[Service]
Type=exec
ExecStart=/usr/local/bin/boot-report
[Install]
WantedBy=multi-user.target
EOU
ln -sf /etc/systemd/system/boot-report.service "$w/root/etc/systemd/system/multi-user.target.wants/boot-report.service"
echo "PARTLABEL=plain-root / ext4 rw 0 1" >"$w/root/etc/fstab"
kver=$(ls "$w/root/lib/modules")
cp "$w/root/boot/vmlinuz-$kver" "$w/vmlinuz"
cp "$w/root/boot/initrd.img-$kver" "$w/initrd.img"
mkfs.ext4 -q -F -L plain-root -d "$w/root" "$w/root.img" 2G
cat >"$w/grub.cfg" <<'EOG'
insmod part_gpt
insmod fat
serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
search --no-floppy --label --set=root PLAIN-ESP
set timeout=0
menuentry plain {
  linux /vmlinuz root=PARTLABEL=plain-root rw console=ttyS0,115200 panic=10
  initrd /initrd.img
}
EOG
grub-mkstandalone -O x86_64-efi --modules="part_gpt fat ext2 normal linux search search_label serial terminal" \
        --locales= --themes= --fonts= -o "$w/BOOTX64.EFI" "boot/grub/grub.cfg=$w/grub.cfg"
mkfs.vfat -F 32 -n PLAIN-ESP -C "$w/esp.img" 262144 >/dev/null
mmd -i "$w/esp.img" ::/EFI ::/EFI/BOOT
mcopy -i "$w/esp.img" "$w/BOOTX64.EFI" ::/EFI/BOOT/
mcopy -i "$w/esp.img" "$w/vmlinuz" "$w/initrd.img" ::/
truncate -s 2400M "$w/plain.img"
printf 'label: gpt\nstart=1MiB, size=256MiB, type=uefi, name=plain-esp\nsize=2GiB, type=linux, name=plain-root\n' |
        sfdisk -q "$w/plain.img"
dd if="$w/esp.img" of="$w/plain.img" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$w/root.img" of="$w/plain.img" bs=1M seek=257 conv=notrunc,sparse status=none

# --- the Hull image, with hull.boot.report on its command line (grubenv
# hull_cmdline, which grub.cfg appends for both slots)
esp_off=$(sfdisk -J "$hull_img" | python3 -c 'import json,sys; p=json.load(sys.stdin)["partitiontable"]; \
print([x for x in p["partitions"] if x.get("name") == "hull-esp"][0]["start"] * p.get("sectorsize", 512))')
cp --sparse=always "$hull_img" "$w/hull.img"
mcopy -i "$w/hull.img@@$esp_off" ::/EFI/hull/grubenv "$w/grubenv"
grub-editenv "$w/grubenv" set hull_cmdline=hull.boot.report
mcopy -o -i "$w/hull.img@@$esp_off" "$w/grubenv" ::/EFI/hull/grubenv
mcopy -i "$w/hull.img@@$esp_off" ::/EFI/hull/a/initrd.img "$w/hull-initrd.img"
plain_initrd=$(stat -c %s "$w/initrd.img")
hull_initrd=$(stat -c %s "$w/hull-initrd.img")

# --- boot both, alternating
boot_once() { # IMAGE LOG -> "qemu kernel init", the report in LOG.report
        local copy="$w/copy.img" out
        cp --sparse=always "$1" "$copy"
        out=$(python3 tests/e2e/hullvm.py "$copy" --log "$2" --timeout 900 --report)
        rm -f "$copy"
        printf '%s\n' "$out" >"$2.report"
        printf '%s %s %s\n' \
                "$(sed -n 's/^ready after \([0-9.]*\) s.*/\1/p' <<<"$out")" \
                "$(sed -n 's/^ready after .* uptime=\([0-9.]*\).*/\1/p' <<<"$out")" \
                "$(sed -n 's/^kernel-to-init \([0-9.]*\) s/\1/p' <<<"$out")"
}
: >"$w/hull.times"
: >"$w/plain.times"
for i in $(seq "$runs"); do
        read -r hq hk hi < <(boot_once "$w/hull.img" "$w/hull-$i.log")
        read -r pq pk pi < <(boot_once "$w/plain.img" "$w/plain-$i.log")
        echo "$hq $hk $hi" >>"$w/hull.times"
        echo "$pq $pk $pi" >>"$w/plain.times"
        printf 'run %d: Hull QEMU-to-ready %6.1f s, kernel-to-ready %6.1f s, kernel-to-init %5.1f s | ' "$i" "$hq" "$hk" "$hi"
        printf 'plain %6.1f s, %6.1f s, %5.1f s\n' "$pq" "$pk" "$pi"
done

median() { # FILE COLUMN
        awk -v c="$2" '{print $c}' "$1" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'
}
echo
printf '%-28s %10s %10s %8s\n' "median of $runs runs" "Hull" "plain" "ratio"
for col in 1:QEMU-to-ready 2:kernel-to-ready 3:kernel-to-init; do
        h=$(median "$w/hull.times" "${col%%:*}")
        p=$(median "$w/plain.times" "${col%%:*}")
        printf '%-28s %8.1f s %8.1f s %8.2f\n' "${col#*:}" "$h" "$p" "$(echo "$h / $p" | bc -l)"
done
printf '%-28s %8.1f MiB %6.1f MiB %6.2f\n' "initramfs" "$(echo "$hull_initrd / 1048576" | bc -l)" \
        "$(echo "$plain_initrd / 1048576" | bc -l)" "$(echo "$hull_initrd / $plain_initrd" | bc -l)"
echo
echo "=== Hull, last boot ==="
sed -n '/BENCH-REPORT-BEGIN/,$p' "$w/hull-$runs.log.report" | sed 1d
echo
echo "=== plain Debian, last boot ==="
sed -n '/BENCH-REPORT-BEGIN/,$p' "$w/plain-$runs.log.report" | sed 1d
