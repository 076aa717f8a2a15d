#!/bin/sh
set -eu
systemctl enable hull-e2e-check.service
