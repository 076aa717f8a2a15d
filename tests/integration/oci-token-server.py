#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A docker/distribution token server for test-oci.sh: the Bearer flow.
Python standard library plus the openssl command (for the RS256 signature).

  oci-token-server.py --cert PEM --key PEM --sign-key RSA.pem --sign-cert RSA.crt
                      --issuer NAME --service NAME --user USER:PASSWORD
                      --port-file F --log F

Listens on 127.0.0.1 (TLS) and answers GET /token?service=S&scope=repository:R:A,B
with a JWT the registry (auth: token:, rootcertbundle = RSA.crt) accepts:
RS256, the signing certificate in the "x5c" header. Basic credentials must
be USER:PASSWORD (else 401); anonymous requests get a token without access.
Pull-only requests are answered as {"token": ...}, others as
{"access_token": ...}, so that a client is tested with both field names.
Every request is logged as "GET scope=... user=... status=CODE".
"""

import argparse
import base64
import http.server
import json
import os
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse

args = None
lock = threading.Lock()


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def sign(data):
    return subprocess.run(["openssl", "dgst", "-sha256", "-sign", args.sign_key], input=data,
                          capture_output=True, check=True).stdout


def cert_der():
    return subprocess.run(["openssl", "x509", "-in", args.sign_cert, "-outform", "DER"],
                          capture_output=True, check=True).stdout


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def answer(self, code, obj, user, scope):
        # Logged before the answer, so the log is complete once a client has it.
        with lock, open(args.log, "a") as f:
            f.write(f"GET scope={scope} user={user} status={code}\n")
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        u = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(u.query)
        scope = q.get("scope", [""])[0]
        user = "-"
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            pair = base64.b64decode(auth[6:]).decode()
            if pair != args.user:
                return self.answer(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]},
                                   pair.split(":")[0], scope)
            user = pair.split(":")[0]
        if u.path != "/token" or q.get("service", [""])[0] != args.service:
            return self.answer(400, {"errors": [{"code": "BAD", "message": "wrong service"}]}, user, scope)
        access = []
        if user != "-" and scope.startswith("repository:"):
            _, name, actions = scope.split(":", 2)
            access = [{"type": "repository", "name": name, "actions": actions.split(",")}]
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(cert_der()).decode()]}
        claims = {"iss": args.issuer, "sub": user, "aud": args.service, "exp": now + 300, "nbf": now - 10,
                  "iat": now, "jti": b64url(os.urandom(12)), "access": access}
        signing_input = (b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())).encode()
        token = signing_input.decode() + "." + b64url(sign(signing_input))
        field = "token" if scope.endswith(":pull") else "access_token"
        self.answer(200, {field: token, "expires_in": 300}, user, scope)


def main():
    global args
    p = argparse.ArgumentParser()
    for a in ("--cert", "--key", "--sign-key", "--sign-cert", "--issuer", "--service", "--user", "--port-file",
              "--log"):
        p.add_argument(a, required=True)
    args = p.parse_args()
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
