#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The C Kubernetes client against the API-server double over TLS with a
# bearer token read from a file: a throwaway CA and server certificate, a
# kubeconfig with certificate-authority-data and tokenFile, then the C test.
#
#   test-kube-client.sh APISERVER_PY TEST_KUBE_CLIENT_EXE
set -euo pipefail

apiserver=$1
exe=$2
tmp=$(mktemp -d /tmp/test-kube-client.XXXXXX)
pid=
cleanup() {
        if [ -n "$pid" ]; then
                kill "$pid" 2>/dev/null || true
                wait "$pid" 2>/dev/null || true
        fi
        if [ "${KEEP_TMP:-0}" = 1 ]; then
                echo "kept $tmp" >&2
        else
                rm -rf "$tmp"
        fi
}
trap cleanup EXIT

# CA and a server certificate for 127.0.0.1 / localhost.
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/ca.key" -out "$tmp/ca.pem" \
        -days 2 -subj "/CN=hull-test-ca" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout "$tmp/server.key" -out "$tmp/server.csr" \
        -subj "/CN=kube-apiserver" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > "$tmp/ext.cnf"
openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial \
        -out "$tmp/server.pem" -days 2 -extfile "$tmp/ext.cnf" 2>/dev/null

echo "token-one" > "$tmp/server-token"
mkdir "$tmp/client"
echo "token-one" > "$tmp/client/token"

python3 "$apiserver" --port 0 --port-file "$tmp/port" --tls-cert "$tmp/server.pem" --tls-key "$tmp/server.key" \
        --token-file "$tmp/server-token" --bookmark-interval 1 --log "$tmp/apiserver.log" &
pid=$!
for _ in $(seq 100); do
        [ -s "$tmp/port" ] && break
        kill -0 "$pid" 2>/dev/null || { echo "apiserver.py died" >&2; cat "$tmp/apiserver.log" >&2 || true; exit 1; }
        sleep 0.1
done
[ -s "$tmp/port" ] || { echo "apiserver.py did not start" >&2; exit 1; }
port=$(cat "$tmp/port")

# tokenFile relative to the kubeconfig's directory, as kubectl resolves it.
cat > "$tmp/client/kubeconfig" <<EOC
apiVersion: v1
kind: Config
current-context: test
clusters:
- name: double
  cluster:
    server: https://127.0.0.1:$port
    certificate-authority-data: $(base64 -w0 < "$tmp/ca.pem")
users:
- name: tester
  user:
    tokenFile: token
contexts:
- name: test
  context:
    cluster: double
    user: tester
EOC

if ! "$exe" "$tmp/client/kubeconfig" "$tmp/server-token" "$tmp/client/token"; then
        echo "--- apiserver.py log (tail) ---" >&2
        tail -n 60 "$tmp/apiserver.log" >&2 || true
        exit 1
fi
