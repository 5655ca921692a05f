#!/usr/bin/env python3
"""A stateful fake of Microsoft's marketplace metering API and Entra ID token endpoint.

Prism (serving Microsoft's own OpenAPI description) checks that every request metergate
sends has the right shape, but it keeps no state. This fake, beside it, does what Prism
cannot, following Microsoft's documented semantics (metering service API, metering FAQ):

- Entra ID client credentials: POST /{tenant}/oauth2/v2.0/token (scope
  20e940b3-4c77-4b0b-9a53-9e16a1b010a7/.default) or /{tenant}/oauth2/token (resource
  20e940b3-...), form-encoded; a wrong secret answers 401 invalid_client.
- POST /batchUsageEvent or /api/batchUsageEvent?api-version=2018-08-31 with a bearer token
  it issued (401 otherwise): 1..25 events (400 otherwise); per event: Accepted, Duplicate
  (one event per resource, dimension and hour, whatever the plan; the answer item echoes the
  accepted event, with its planId and quantity, and names it in
  error.additionalInfo.acceptedMessage), Expired (effectiveStartTime more than 24 hours
  ago), ResourceNotFound, ResourceNotActive, InvalidQuantity, BadArgument.
- --forbid answers every metering call 403 (the token's app did not publish the offer).
- Fault injection: --fail-rate answers 503 before anything lands; --fail-after-rate lets the
  events land and then answers 500 (the caller cannot know which landed).

Every event processed is logged as one JSON line to --log: {"type":"event", "status", ...};
every metering request body, as received, as {"type":"body", "text": ...}.
Prints "PORT <n>" on stdout once listening on 127.0.0.1.
"""

import argparse
import datetime as dt
import json
import random
import re
import sys
import threading
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RESOURCE = "20e940b3-4c77-4b0b-9a53-9e16a1b010a7"
API_VERSION = "2018-08-31"
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def parse_time(s):
    if not isinstance(s, str):
        return None
    t = s.strip()
    if t.endswith("Z") or t.endswith("z"):
        t = t[:-1] + "+00:00"
    # Python 3.11 fromisoformat takes fractions of any length up to 6 digits.
    m = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)$", t)
    if not m:
        return None
    frac = (m.group(2) or "")[:7]
    try:
        v = dt.datetime.fromisoformat(m.group(1) + frac + m.group(3))
    except ValueError:
        return None
    if v.tzinfo is None:
        return None
    return v.astimezone(dt.timezone.utc)


def fmt(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.rng = random.Random(args.seed)
        self.tokens = set()
        self.events = {}  # (resource, dimension, hour) -> accepted message
        self.resources = None
        if args.resources:
            with open(args.resources) as f:
                self.resources = {r.lower() for r in json.load(f)}
        self.inactive = {r.lower() for r in args.inactive}
        self.log_file = open(args.log, "a", buffering=1) if args.log else None

    def log(self, obj):
        if self.log_file:
            self.log_file.write(json.dumps(obj, sort_keys=True) + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "azure-fake/1"

    def log_message(self, *a):
        pass

    def reply(self, code, obj=None, headers=None):
        body = b"" if obj is None else json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
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
        if url.path in ("/batchUsageEvent", "/api/batchUsageEvent"):
            return self.batch(st, url, raw)
        self.reply(404, {"error": {"code": "NotFound", "message": "no such path " + url.path}})

    def token(self, st, path, raw):
        form = dict(urllib.parse.parse_qsl(raw.decode("utf-8", "replace")))
        v2 = "/v2.0/" in path
        if form.get("grant_type") != "client_credentials" or not form.get("client_id"):
            return self.reply(400, {"error": "invalid_request", "error_description": "AADSTS900144: grant_type and client_id are required.\r\nTrace ID: fake"})
        if v2 and form.get("scope") != RESOURCE + "/.default":
            return self.reply(400, {"error": "invalid_scope", "error_description": "AADSTS70011: The provided value for scope is not valid.\r\nTrace ID: fake"})
        if not v2 and form.get("resource") != RESOURCE:
            return self.reply(400, {"error": "invalid_resource", "error_description": "AADSTS500011: The resource principal was not found.\r\nTrace ID: fake"})
        if form.get("client_secret") != st.args.client_secret:
            return self.reply(401, {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: fake"})
        tok = "fake-" + uuid.uuid4().hex
        with st.lock:
            st.tokens.add(tok)
            st.log({"type": "token", "client_id": form.get("client_id")})
        life = st.args.token_life
        if v2:
            return self.reply(200, {"token_type": "Bearer", "expires_in": life, "ext_expires_in": life, "access_token": tok})
        return self.reply(200, {"token_type": "Bearer", "expires_in": str(life), "resource": RESOURCE, "access_token": tok})

    def batch(self, st, url, raw):
        q = dict(urllib.parse.parse_qsl(url.query))
        if q.get("api-version") != API_VERSION:
            return self.reply(400, {"code": "BadArgument", "message": "api-version must be " + API_VERSION})
        auth = self.headers.get("Authorization") or ""
        if not auth.startswith("Bearer ") or auth[7:] not in st.tokens:
            return self.reply(401, {"code": "Unauthorized", "message": "no valid bearer token"})
        if st.args.forbid:
            return self.reply(403, {"code": "Forbidden", "message": "The authentication token is not from the publisher of the offer."})
        with st.lock:
            st.log({"type": "body", "text": raw.decode("utf-8", "replace")})
        try:
            doc = json.loads(raw)
            events = doc["request"]
            assert isinstance(events, list)
        except Exception:
            return self.reply(400, {"code": "BadArgument", "message": "the body is not a BatchUsageEvent"})
        if not 1 <= len(events) <= 25:
            return self.reply(400, {"code": "BadArgument", "message": "a batch holds 1 to 25 usage events, not %d" % len(events)})
        with st.lock:
            roll = st.rng.random()
            if roll < st.args.fail_rate:
                st.log({"type": "call", "http": 503, "events": len(events)})
                return self.reply(503, {"code": "ServiceUnavailable", "message": "injected"})
            fail_after = st.rng.random() < st.args.fail_after_rate
            now = dt.datetime.now(dt.timezone.utc)
            results = [self.event(st, ev, now) for ev in events]
            st.log({"type": "call", "http": 500 if fail_after else 200, "events": len(events)})
        if fail_after:
            return self.reply(500, {"code": "InternalServerError", "message": "injected after the events landed"})
        self.reply(200, {"result": results, "count": len(results)})

    def event(self, st, ev, now):
        def out(status, **extra):
            item = {
                "usageEventId": extra.pop("usageEventId", None) or str(uuid.uuid4()),
                "status": status,
                "messageTime": fmt(now),
                "quantity": ev.get("quantity"),
                "dimension": ev.get("dimension"),
                "effectiveStartTime": ev.get("effectiveStartTime"),
                "planId": ev.get("planId"),
            }
            if "resourceId" in ev:
                item["resourceId"] = ev["resourceId"]
            if "resourceUri" in ev:
                item["resourceUri"] = ev["resourceUri"]
            item.update(extra)
            st.log({"type": "event", "status": status, "resource": (ev.get("resourceId") or ev.get("resourceUri") or "").lower(),
                    "plan": ev.get("planId"), "dimension": ev.get("dimension"),
                    "effectiveStartTime": ev.get("effectiveStartTime"), "quantity": ev.get("quantity"),
                    "usageEventId": item["usageEventId"]})
            return item

        rid, ruri = ev.get("resourceId"), ev.get("resourceUri")
        if (rid is None) == (ruri is None):
            return out("BadArgument", error={"code": "BadArgument", "message": "exactly one of resourceId and resourceUri"})
        if rid is not None and not (isinstance(rid, str) and UUID_RE.match(rid)):
            return out("BadArgument", error={"code": "BadArgument", "message": "resourceId is not a uuid"})
        for field in ("planId", "dimension"):
            if not isinstance(ev.get(field), str) or not ev.get(field):
                return out("BadArgument", error={"code": "BadArgument", "message": field + " is required"})
        qty = ev.get("quantity")
        if isinstance(qty, bool) or not isinstance(qty, (int, float)) or qty <= 0:
            return out("InvalidQuantity", error={"code": "BadArgument", "message": "quantity must be a number above 0"})
        t = parse_time(ev.get("effectiveStartTime"))
        if t is None:
            return out("BadArgument", error={"code": "BadArgument", "message": "effectiveStartTime is not a date-time"})
        if t < now - dt.timedelta(hours=24):
            return out("Expired", error={"code": "BadArgument", "message": "effectiveStartTime is more than 24 hours ago"})
        if t > now + dt.timedelta(minutes=5):
            return out("BadArgument", error={"code": "BadArgument", "message": "effectiveStartTime is in the future"})
        res = (rid or ruri).lower()
        if st.resources is not None and res not in st.resources:
            return out("ResourceNotFound", error={"code": "BadArgument", "message": "the resource is not found"})
        if res in st.inactive:
            return out("ResourceNotActive", error={"code": "BadArgument", "message": "the resource is not active"})
        hour = t.replace(minute=0, second=0, microsecond=0)
        key = (res, ev["dimension"], hour.isoformat())
        prev = st.events.get(key)
        if prev is not None:
            # The item echoes the original event (its id, plan and quantity).
            return out("Duplicate", usageEventId=prev["usageEventId"],
                       planId=prev["planId"], quantity=prev["quantity"],
                       effectiveStartTime=prev["effectiveStartTime"], error={
                "code": "Conflict",
                "message": "This usage event already exist.",
                "additionalInfo": {"acceptedMessage": prev},
            })
        accepted = out("Accepted")
        st.events[key] = dict(accepted)
        return accepted


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--log", help="JSON Lines log of every event and call")
    p.add_argument("--resources", help="JSON list of the resource ids/URIs that exist (default: any)")
    p.add_argument("--inactive", action="append", default=[], help="a resource that is not active")
    p.add_argument("--client-secret", default="test-secret")
    p.add_argument("--token-life", type=int, default=3599)
    p.add_argument("--fail-rate", type=float, default=0.0, help="503 before anything lands")
    p.add_argument("--fail-after-rate", type=float, default=0.0, help="500 after the events landed")
    p.add_argument("--forbid", action="store_true", help="answer every metering call 403")
    p.add_argument("--seed", type=int, default=None)
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
