#!/bin/sh
# Runs inside the guest at the end of every boot and reports what it sees on
# the serial console, one line, for the host-side test to assert on.
# First boot: write a marker into /etc, then reboot. Second boot: report and
# power off.
out=/dev/ttyS0

if touch /usr/.hull-rw-probe 2>/dev/null; then rm -f /usr/.hull-rw-probe; root_ro=no; else root_ro=yes; fi
if findmnt -n -o OPTIONS / | grep -qw ro; then root_mount_ro=yes; else root_mount_ro=no; fi
persist_src=$(findmnt -n -o SOURCE /persist)
var_src=$(findmnt -n -o SOURCE /var)
case "$var_src" in "$persist_src"*) var_on_persist=yes ;; *) var_on_persist=no ;; esac
etc_fstype=$(findmnt -n -o FSTYPE /etc)
slot=$(sed -n 's/.*"slot": *"\([ab]\)".*/\1/p' /run/hull/boot.json)
if [ -f /etc/hull-e2e-marker ]; then marker=present; else marker=absent; fi
pkgmgr=absent
for b in apt apt-get dpkg; do command -v $b >/dev/null 2>&1 && pkgmgr=present; done
sshd=absent; [ -e /usr/sbin/sshd ] && sshd=present
root_src=$(findmnt -n -o SOURCE /)
root_fstype=$(findmnt -n -o FSTYPE /)
verity=$(sed -n 's/.*"verity_roothash": *"\([0-9a-f]*\)".*/\1/p' /run/hull/boot.json)
upper=absent; [ -f /persist/etc/upper/hull-e2e-marker ] && upper=present

echo "HULL-E2E root_ro=$root_ro root_src=$root_src root_fstype=$root_fstype verity=${verity:-none} root_mount_ro=$root_mount_ro etc=$etc_fstype var_on_persist=$var_on_persist slot=$slot marker=$marker marker_on_persist=$upper pkgmgr=$pkgmgr sshd=$sshd containerd=$(command -v containerd >/dev/null && echo yes || echo no) runc=$(command -v runc >/dev/null && echo yes || echo no)" > $out

if [ "$marker" = absent ]; then
        cat /proc/sys/kernel/random/boot_id > /etc/hull-e2e-marker
        sync
        echo "HULL-E2E rebooting" > $out
        systemctl reboot
else
        echo "HULL-E2E done" > $out
        systemctl poweroff
fi
