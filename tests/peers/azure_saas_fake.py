#!/usr/bin/env python3
"""A stateful fake of Microsoft's SaaS fulfillment API v2 (subscriptions and plans) and the
Entra ID token endpoint, beside Prism (which serves Microsoft's own saasapi.v2.json and checks
every request's shape but keeps no state).

Following Microsoft's documented semantics (SaaS fulfillment APIs v2, api-version 2018-08-31):

- Entra ID client credentials, as in azure_fake.py: POST /{tenant}/oauth2/v2.0/token (scope
  20e940b3-4c77-4b0b-9a53-9e16a1b010a7/.default) or /{tenant}/oauth2/token (resource ...);
  a wrong secret answers 401 invalid_client. Secrets are never logged.
- GET /saas/subscriptions/?api-version=2018-08-31 (with or without the trailing slash, with or
  without an /api prefix): the publisher's subscriptions, --page-size at a time, each page but
  the last with an absolute "@nextLink" carrying a continuationToken. The token is opaque
  (base64 of the offset) and only this fake reads it.
- GET /saas/subscriptions/{id}/listAvailablePlans?api-version=2018-08-31[&planId=P]: the plans
  of the subscription's offer ({"plans": [...]}, filtered by planId), with
  planComponents.meteringDimensions.
- GET /saas/subscriptions/{id}/operations/{operationId}?api-version=2018-08-31 (Get
  Operation): the operation of --state's "operations" list with that id and subscriptionId
  (404 otherwise), as Microsoft's Operation object (id, activityId, subscriptionId, offerId,
  publisherId, planId, quantity, action, timeStamp, status).
- Every call needs a bearer token this fake issued (401 otherwise) and api-version (400).
- The subscriptions and plans are read from --state (JSON: {"subscriptions": [...],
  "plans": {"<offerId>": [...]}, "operations": [...]}) on every call, so a test changes the marketplace by
  rewriting the file.
- Fault injection: --fail-page N answers 500 for page N (0-based) every time; --fail-plans
  answers 500 to every listAvailablePlans call; --forbid answers 403 to everything.

Each API call is logged as one JSON line to --log: {"type": "call", "path", "http"}.
Prints "PORT <n>" on stdout once listening on 127.0.0.1.
"""

import argparse
import base64
import json
import re
import sys
import threading
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RESOURCE = "20e940b3-4c77-4b0b-9a53-9e16a1b010a7"
API_VERSION = "2018-08-31"


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.tokens = set()
        self.log_file = open(args.log, "a", buffering=1) if args.log else None

    def log(self, obj):
        if self.log_file:
            self.log_file.write(json.dumps(obj, sort_keys=True) + "\n")

    def data(self):
        with open(self.args.state) as f:
            return json.load(f)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "azure-saas-fake/1"

    def log_message(self, *a):
        pass

    def reply(self, code, obj=None):
        body = b"" if obj is None else json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_POST(self):
        st = self.server.state
        url = urllib.parse.urlsplit(self.path)
        raw = self.body()
        if re.fullmatch(r"/[^/]+/oauth2(/v2\.0)?/token", url.path):
            return self.token(st, url.path, raw)
        self.reply(404, {"error": {"code": "NotFound", "message": "no such path " + url.path}})

    def token(self, st, path, raw):
        form = dict(urllib.parse.parse_qsl(raw.decode("utf-8", "replace")))
        v2 = "/v2.0/" in path
        if form.get("grant_type") != "client_credentials" or not form.get("client_id"):
            return self.reply(400, {"error": "invalid_request", "error_description": "AADSTS900144: grant_type and client_id are required."})
        if v2 and form.get("scope") != RESOURCE + "/.default":
            return self.reply(400, {"error": "invalid_scope", "error_description": "AADSTS70011: The provided value for scope is not valid."})
        if not v2 and form.get("resource") != RESOURCE:
            return self.reply(400, {"error": "invalid_resource", "error_description": "AADSTS500011: The resource principal was not found."})
        if form.get("client_secret") != st.args.client_secret:
            return self.reply(401, {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."})
        tok = "fake-" + uuid.uuid4().hex
        with st.lock:
            st.tokens.add(tok)
            st.log({"type": "token", "client_id": form.get("client_id")})
        return self.reply(200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": tok})

    def do_GET(self):
        st = self.server.state
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        path = url.path[4:] if url.path.startswith("/api/") else url.path
        code, obj = self.route(st, path, q)
        with st.lock:
            st.log({"type": "call", "path": path, "http": code, "query": q})
        self.reply(code, obj)

    def route(self, st, path, q):
        if q.get("api-version") != API_VERSION:
            return 400, {"error": {"code": "BadArgument", "message": "api-version must be " + API_VERSION}}
        auth = self.headers.get("Authorization") or ""
        if not auth.startswith("Bearer ") or auth[7:] not in st.tokens:
            return 401, {"error": {"code": "Unauthorized", "message": "no valid bearer token"}}
        if st.args.forbid:
            return 403, None
        data = st.data()
        subs = data.get("subscriptions", [])
        if path in ("/saas/subscriptions", "/saas/subscriptions/"):
            token = q.get("continuationToken")
            try:
                offset = int(base64.urlsafe_b64decode(token.encode()).decode()) if token else 0
            except Exception:
                return 400, {"error": {"code": "BadArgument", "message": "bad continuationToken"}}
            page = offset // st.args.page_size
            if st.args.fail_page is not None and page == st.args.fail_page:
                return 500, {"error": {"code": "InternalServerError", "message": "injected"}}
            items = subs[offset:offset + st.args.page_size]
            out = {"subscriptions": items}
            nxt = offset + st.args.page_size
            if nxt < len(subs):
                tok = base64.urlsafe_b64encode(str(nxt).encode()).decode()
                host = self.headers.get("Host")
                out["@nextLink"] = "http://%s/saas/subscriptions/?continuationToken=%s&api-version=%s" % (
                    host, urllib.parse.quote(tok), API_VERSION)
            return 200, out
        m = re.fullmatch(r"/saas/subscriptions/([^/]+)/listAvailablePlans", path)
        if m:
            if st.args.fail_plans:
                return 500, {"error": {"code": "InternalServerError", "message": "injected"}}
            sid = m.group(1).lower()
            sub = next((s for s in subs if s.get("id", "").lower() == sid), None)
            if sub is None:
                return 404, {"error": {"code": "NotFound", "message": "no subscription " + sid}}
            plans = data.get("plans", {}).get(sub.get("offerId"), [])
            if q.get("planId"):
                plans = [p for p in plans if p.get("planId") == q["planId"]]
            return 200, {"plans": plans}
        m = re.fullmatch(r"/saas/subscriptions/([^/]+)/operations/([^/]+)", path)
        if m:
            sid, oid = m.group(1).lower(), m.group(2).lower()
            op = next((o for o in data.get("operations", [])
                       if o.get("id", "").lower() == oid and o.get("subscriptionId", "").lower() == sid), None)
            if op is None:
                return 404, {"error": {"code": "NotFound", "message": "no operation " + oid}}
            return 200, op
        return 404, {"error": {"code": "NotFound", "message": "no such path " + path}}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--log", help="JSON Lines log of every call")
    p.add_argument("--state", required=True, help="JSON file with subscriptions and plans")
    p.add_argument("--page-size", type=int, default=2)
    p.add_argument("--fail-page", type=int, default=None)
    p.add_argument("--fail-plans", action="store_true")
    p.add_argument("--forbid", action="store_true")
    p.add_argument("--client-secret", default="test-secret")
    args = p.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    srv.state = State(args)
    print("PORT %d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
