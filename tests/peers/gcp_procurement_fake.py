#!/usr/bin/env python3
"""A faithful fake of Google's Cloud Commerce Partner Procurement API (v1), the part
`metergate contracts sync --marketplace gcp` reads. Nothing emulates it.

Following the public reference (cloudcommerceprocurement.googleapis.com, v1):

- GET /v1/providers/{provider}/entitlements[?pageSize=N&pageToken=T&filter=...]: the
  provider's entitlements, at most min(pageSize, --max-page-size) a page, with an opaque
  nextPageToken on every page but the last ({"entitlements": [...], "nextPageToken": "..."};
  an empty list is {}). A pageToken this fake did not issue answers 400 INVALID_ARGUMENT.
- GET /v1/providers/{provider}/entitlements/{id}: one entitlement, or 404 NOT_FOUND.
- GET /v1/providers/{provider}/accounts: the accounts of the entitlements.
- Every call needs "Authorization: Bearer <--token>" (401 UNAUTHENTICATED otherwise); another
  provider answers 403 PERMISSION_DENIED. Errors use Google's {"error": {"code", "message",
  "status"}} shape.
- Entitlements are read from --state (JSON: {"entitlements": [...]}) on every call, so a test
  changes the marketplace by rewriting the file.
- Fault injection: --fail-page N answers 503 UNAVAILABLE for page N (0-based) every time.

Each call is logged as one JSON line to --log: {"type": "call", "path", "http"}.
Prints "PORT <n>" on stdout once listening on 127.0.0.1.
"""

import argparse
import base64
import json
import re
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def error(code, status, message):
    return code, {"error": {"code": code, "message": message, "status": status}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "procurement-fake/1"

    def log_message(self, *a):
        pass

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        a = self.server.args
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        code, obj = self.route(a, url.path, q)
        with self.server.lock:
            if self.server.log:
                self.server.log.write(json.dumps({"type": "call", "path": url.path, "http": code, "query": q}, sort_keys=True) + "\n")
        self.reply(code, obj)

    def route(self, a, path, q):
        if self.headers.get("Authorization") != "Bearer " + a.token:
            return error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
        m = re.fullmatch(r"/v1/providers/([^/]+)/(entitlements|accounts)(?:/([^/]+))?", path)
        if not m:
            return error(404, "NOT_FOUND", "no such path " + path)
        if m.group(1) != a.provider:
            return error(403, "PERMISSION_DENIED", "The caller does not have permission")
        with open(a.state) as f:
            ents = json.load(f).get("entitlements", [])
        if m.group(2) == "accounts":
            names = sorted({e.get("account") for e in ents if e.get("account")})
            return 200, {"accounts": [{"name": n, "provider": a.provider, "state": "ACCOUNT_ACTIVE"} for n in names]}
        if m.group(3):
            for e in ents:
                if e["name"].rsplit("/", 1)[-1] == m.group(3):
                    return 200, e
            return error(404, "NOT_FOUND", "Entitlement not found")
        size = min(int(q.get("pageSize") or a.max_page_size), a.max_page_size)
        tok = q.get("pageToken")
        try:
            offset = int(base64.urlsafe_b64decode(tok.encode()).decode().split(":")[1]) if tok else 0
        except Exception:
            return error(400, "INVALID_ARGUMENT", "Invalid page token")
        if a.fail_page is not None and offset // size == a.fail_page:
            return error(503, "UNAVAILABLE", "The service is currently unavailable.")
        page = ents[offset:offset + size]
        out = {"entitlements": page} if page else {}
        if offset + size < len(ents):
            out["nextPageToken"] = base64.urlsafe_b64encode(("page:%d" % (offset + size)).encode()).decode()
        return 200, out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--log")
    p.add_argument("--state", required=True)
    p.add_argument("--provider", default="example-partner-id")
    p.add_argument("--token", default="test-gcp-token")
    p.add_argument("--max-page-size", type=int, default=2)
    p.add_argument("--fail-page", type=int, default=None)
    args = p.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    srv.args = args
    srv.lock = threading.Lock()
    srv.log = open(args.log, "a", buffering=1) if args.log else None
    print("PORT %d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
