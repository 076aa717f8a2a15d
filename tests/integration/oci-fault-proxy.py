#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""HTTPS reverse proxy in front of a registry, with injectable faults, for
test-oci.sh. Python standard library only.

  oci-fault-proxy.py --upstream HOST:PORT --upstream-ca PEM --cert PEM --key PEM
                     --port-file F --log F --mode-file F

Listens on 127.0.0.1 and writes its port to --port-file. Each request reads
--mode-file (one word, empty: pass through):
  403           every request answers 403 with a registry error body
  429:N         the next N requests answer 429 with "Retry-After: 1"
  500:N         the next N requests answer 503
  redirect      blob GETs answer 307 to https://localhost:PORT/direct/...,
                which this proxy serves from upstream without credentials
  strip@N       the N-th request that carries an Authorization header goes
                upstream without it (an expired or revoked token: upstream
                answers 401 with its challenge)
Every request is logged as "METHOD PATH auth=yes|no status=CODE".
"""

import argparse
import http.client
import http.server
import os
import ssl
import sys
import threading

lock = threading.Lock()
args = None
log_file = None


authorized = 0


def take_mode(has_auth):
    """The mode for this request; counts N down in the file."""
    global authorized
    with lock:
        try:
            mode = open(args.mode_file).read().strip()
        except FileNotFoundError:
            return ""
        if mode.startswith("strip@"):
            if has_auth:
                authorized += 1
                if authorized == int(mode[6:]):
                    return "strip"
            return ""
        if ":" in mode:
            kind, n = mode.split(":", 1)
            n = int(n)
            if n <= 0:
                return ""
            with open(args.mode_file, "w") as f:
                f.write(f"{kind}:{n - 1}\n")
            return kind
        return mode


def log(line):
    with lock:
        log_file.write(line + "\n")
        log_file.flush()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, code, headers=(), body=b""):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        log(f"{self.command} {self.path} auth={'yes' if self.headers.get('Authorization') else 'no'} status={code}")

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path
        direct = path.startswith("/direct/")
        if direct:
            path = path[len("/direct"):]
        mode = "" if direct else take_mode(bool(self.headers.get("Authorization")))
        if mode == "403":
            return self.reply(403, [("Content-Type", "application/json")],
                              b'{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}')
        if mode == "429":
            return self.reply(429, [("Retry-After", "1"), ("Content-Type", "application/json")],
                              b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}')
        if mode == "500":
            return self.reply(503, [("Content-Type", "text/plain")], b"unavailable\n")
        if mode == "redirect" and self.command == "GET" and "/blobs/sha256:" in path and \
                self.headers.get("Authorization"):
            port = self.server.server_address[1]
            return self.reply(307, [("Location", f"https://localhost:{port}/direct{path}")])

        ctx = ssl.create_default_context(cafile=args.upstream_ca)
        host, port = args.upstream.rsplit(":", 1)
        conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=60)
        # Host stays the proxy's, so that the registry's upload locations
        # point back here.
        headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
        if mode == "strip":
            headers.pop("Authorization", None)
        if direct:
            # What blob storage would see: no registry credentials. The
            # upstream still wants them, so this stands in for a storage
            # URL that needs none (the proxy's own).
            headers.pop("Authorization", None)
            headers["Authorization"] = args.direct_auth
        conn.request(self.command, path, body=body if body else None, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() in ("connection", "transfer-encoding", "content-length"):
                continue
            self.send_header(k, v)
        self.send_header("Content-Length", resp.getheader("Content-Length") if self.command == "HEAD" and
                         resp.getheader("Content-Length") else str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        log(f"{self.command} {self.path} auth={'yes' if self.headers.get('Authorization') else 'no'} "
            f"status={resp.status}")

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = handle_any


def main():
    global args, log_file
    p = argparse.ArgumentParser()
    p.add_argument("--upstream", required=True)
    p.add_argument("--upstream-ca", required=True)
    p.add_argument("--direct-auth", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--port-file", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--mode-file", required=True)
    args = p.parse_args()
    log_file = open(args.log, "a")
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(tmp, args.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
