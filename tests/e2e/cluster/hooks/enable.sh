#!/bin/sh
set -eu
systemctl enable hull-e2e-shell.service hull-node-e2e.service systemd-networkd.service
