#!/bin/sh
# TEST ONLY (never in a product image): a command channel for the host-side
# end-to-end test over a virtio-serial port, so that the test can drive
# hullctl in the guest and read the agent's JSON answers. Each command is
# one line; the reply is its output followed by "HULL-E2E-END <status>".
port=/dev/virtio-ports/hull.e2e
for i in $(seq 1 100); do [ -e $port ] && break; sleep 0.2; done
exec 3<>$port
echo "HULL-E2E-SHELL ready" >/dev/ttyS0
while :; do
        # While the host is not connected a read sees end-of-file at once:
        # wait and try again rather than exit.
        if ! IFS= read -r cmd <&3; then
                sleep 0.5
                continue
        fi
        [ -n "$cmd" ] || continue
        sh -c "$cmd" >&3 2>&1 </dev/null
        echo "HULL-E2E-END $?" >&3
done
