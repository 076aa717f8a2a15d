#!/bin/bash
# Boot time to ready under TCG: a Hull image against a plain Debian image of
# the same packages (same kernel, same initramfs tools, ext4 root mounted
# read-write, no hull-init), both booted through OVMF and GRUB in the same
# QEMU configuration. "Ready" is multi-user.target reached, announced on the
# serial console by an identical one-shot unit.
# Usage (root): bench/boot.sh HULL_DISK_IMAGE PACKAGES_LAYER_TAR [RUNS]
#   PACKAGES_LAYER_TAR: /var/cache/hull-build/packages-*.tar of the same spec
set -euo pipefail
cd "$(dirname "$0")/.."
hull_img=$1
layer=$2
runs=${3:-2}
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
ExecStart=/bin/sh -c 'echo "hull: ready: plain" > /dev/console'
[Install]
WantedBy=multi-user.target
EOU
ln -sf /etc/systemd/system/plain-ready.service "$w/root/etc/systemd/system/multi-user.target.wants/plain-ready.service"
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

# --- boot both, alternating
boot_once() {
        local img=$1 copy="$w/copy.img"
        cp --sparse=always "$img" "$copy"
        python3 tests/e2e/hullvm.py "$copy" --log "$w/console.log" --timeout 900 | sed -n 's/^ready after \([0-9.]*\) s.*/\1/p'
        rm -f "$copy"
}
hull_sum=0
plain_sum=0
for i in $(seq "$runs"); do
        h=$(boot_once "$hull_img")
        p=$(boot_once "$w/plain.img")
        echo "run $i: hull ${h}s plain ${p}s"
        hull_sum=$(echo "$hull_sum + $h" | bc -l)
        plain_sum=$(echo "$plain_sum + $p" | bc -l)
done
printf '%-40s %8.1f s\n' "Hull image, QEMU start to ready" "$(echo "$hull_sum / $runs" | bc -l)"
printf '%-40s %8.1f s\n' "plain Debian, same packages" "$(echo "$plain_sum / $runs" | bc -l)"
printf '%-40s %8.2f\n' "ratio Hull / plain" "$(echo "$hull_sum / $plain_sum" | bc -l)"
