#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A minimal collector for the status documents tritonfleet hosts POST (roles/triton_status).

    tools/tritonfleet_collector.py --dir /srv/tritonfleet/status --token-file /etc/tritonfleet/collector-token \
        [--listen 127.0.0.1:9900] [--tls-cert cert.pem --tls-key key.pem]

Accepts ``POST`` (any path) with ``Authorization: Bearer <token>`` and a JSON status document,
and stores it as ``<dir>/<host>.json`` (replaced atomically), which is what
``playbooks/fleet_status.yml`` reads. A wrong or missing token gets 401, a body that is not a
status document 400; every request is logged on stderr with the client, the host and the
outcome, never with a token. Python standard library only; for a fleet, put it behind the
TLS-terminating proxy you already run, or give it a certificate.
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import re
import ssl
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MAX_BODY = 8 * 1024 * 1024
HOST_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}$")
STATUS_KIND = "tritonfleet.status"


def store(directory: Path, body: bytes) -> tuple[int, str]:
    """Check ``body`` and store it; return (HTTP status, what happened)."""
    try:
        document = json.loads(body)
    except ValueError:
        return 400, "body is not JSON"
    if not isinstance(document, dict) or document.get("kind") != STATUS_KIND:
        return 400, f"body is not a {STATUS_KIND} document"
    host = document.get("host")
    if not isinstance(host, str) or not HOST_NAME.match(host):
        return 400, "document names no usable host"
    handle, temporary = tempfile.mkstemp(prefix=f".{host}.", suffix=".tmp", dir=directory)
    with os.fdopen(handle, "wb") as stream:
        stream.write(body)
    os.chmod(temporary, 0o644)
    os.replace(temporary, directory / f"{host}.json")
    return 204, f"stored {host}.json"


def handler(directory: Path, token: str | None) -> type[BaseHTTPRequestHandler]:
    class Collector(BaseHTTPRequestHandler):
        server_version = "tritonfleet-collector/1"

        def do_POST(self) -> None:
            given = self.headers.get("Authorization", "")
            if token is not None and not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                self._answer(401, "rejected: missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length <= 0 or length > MAX_BODY:
                self._answer(400 if length <= 0 else 413, f"body of {length} bytes refused")
                return
            status, outcome = store(directory, self.rfile.read(length))
            self._answer(status, outcome)

        def _answer(self, status: int, outcome: str, headers: dict[str, str] | None = None) -> None:
            sys.stderr.write(
                f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {self.client_address[0]} "
                f"POST {self.path} -> {status} {outcome}\n"
            )
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            """Requests are logged once, by _answer, without headers."""

    return Collector


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True, help="where <host>.json documents are stored")
    parser.add_argument("--token-file", type=Path, help="file with the bearer token hosts must send")
    parser.add_argument("--no-token", action="store_true", help="accept documents without a token")
    parser.add_argument("--listen", default="127.0.0.1:9900", help="address:port (default 127.0.0.1:9900)")
    parser.add_argument("--tls-cert", type=Path, help="certificate (PEM) to serve HTTPS")
    parser.add_argument("--tls-key", type=Path, help="private key (PEM) of --tls-cert")
    args = parser.parse_args()
    if not args.token_file and not args.no_token:
        parser.error("--token-file is required (or --no-token for a collector without authentication)")
    token = args.token_file.read_text(encoding="utf-8").strip() if args.token_file else None
    args.dir.mkdir(parents=True, exist_ok=True)
    address, _, port = args.listen.rpartition(":")
    server = ThreadingHTTPServer((address or "127.0.0.1", int(port)), handler(args.dir, token))
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    sys.stderr.write(f"listening on {args.listen}, storing into {args.dir}\n")
    sys.stderr.flush()
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
