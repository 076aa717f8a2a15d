#!/bin/sh
set -eu
systemctl enable hull-e2e-shell.service systemd-networkd.service
