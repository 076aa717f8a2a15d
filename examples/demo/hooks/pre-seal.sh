#!/bin/sh
# Runs inside the image tree (chroot) just before it is sealed.
# $HULL_ROOT is also set for hooks that prefer to work from outside.
set -eu
# Containers need the overlay and br_netfilter modules on a Kubernetes node.
printf 'overlay\nbr_netfilter\n' > /etc/modules-load.d/hull-k8s.conf
