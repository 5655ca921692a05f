#!/usr/bin/env python3
"""A fake Google Service Control (v1) for metergate's tests: nothing emulates it.

Faithful to the documented semantics of services.check and services.report
(googleapis google/api/servicecontrol/v1, the REST discovery text, and Google Cloud
Marketplace's "configure usage reports" guide):

- POST /v1/services/{service}:check  body {"operation": {...}}
  -> 200 {"operationId", "serviceConfigId"[, "checkErrors": [{"code", "detail"}]]}.
  Check errors are configured per consumer: --check-error project_number:1=BILLING_DISABLED.
- POST /v1/services/{service}:report body {"operations": [...]}
  -> 200 {"serviceConfigId"[, "reportErrors": [{"operationId", "status": {"code", "message"}}]]}.
  An HTTP 200 with reportErrors is a partial failure: the named operations did not land,
  the others did. --report-error-rate names random operations with UNAVAILABLE (code 14).
- A non-2xx answer means it is unknown which operations landed: --fail-rate answers 503
  before anything lands, --fail-after-rate lets the operations land and then answers 500.
- Every request body is logged as received ({"type": "body", "method", "text"}), so tests
  see the exact JSON text of each number on the wire.
- Operations are deduplicated by operationId: a repeat is answered as a success and does
  not land twice.
- Two metric values with the same metric name and labels in one operation reject the
  whole request (400 INVALID_ARGUMENT); so does any malformed operation (no operationId,
  consumerId not a Service Control consumer, a metric of another service, endTime before
  startTime, a value that is neither int64Value nor doubleValue).
- A request body over 1,000,000 bytes is refused (400 INVALID_ARGUMENT).
- Requests need "Authorization: Bearer <--token>" (401 otherwise).

Every operation that lands is logged as one JSON line to --log ({"type": "op", ...}); repeats
are logged as {"type": "dup", ...}, checks as {"type": "check", ...}, calls as
{"type": "call", ...}. Prints "PORT <n>" on stdout once listening on 127.0.0.1.
"""

import argparse
import datetime as dt
import json
import random
import re
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BYTES = 1_000_000
CONSUMER_PREFIXES = ("project:", "project_number:", "api_key:", "folders/", "organizations/")
INT64_RE = re.compile(r"^-?\d{1,19}$")


def parse_time(s):
    if not isinstance(s, str):
        return None
    t = s.strip()
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?([+-]\d\d:\d\d)$", t)
    if not m:
        return None
    frac = (m.group(2) or "")[:7]
    try:
        return dt.datetime.fromisoformat(m.group(1) + frac + m.group(3))
    except ValueError:
        return None


class BadRequest(Exception):
    pass


def check_operation(service, op):
    """Raises BadRequest when Service Control would refuse the whole request."""
    if not isinstance(op, dict):
        raise BadRequest("an operation is not an object")
    if not isinstance(op.get("operationId"), str) or not op["operationId"]:
        raise BadRequest("operationId is required")
    if not isinstance(op.get("operationName"), str) or not op["operationName"]:
        raise BadRequest("operationName is required")
    consumer = op.get("consumerId")
    if not isinstance(consumer, str) or not any(
        consumer.startswith(p) and len(consumer) > len(p) for p in CONSUMER_PREFIXES
    ):
        raise BadRequest("consumerId %r is not a valid consumer" % (consumer,))
    start, end = parse_time(op.get("startTime")), parse_time(op.get("endTime"))
    if start is None or end is None:
        raise BadRequest("startTime and endTime are required timestamps")
    if end < start:
        raise BadRequest("endTime is before startTime")
    if "labels" in op and not isinstance(op["labels"], dict):
        raise BadRequest("labels must be a map")
    sets = op.get("metricValueSets")
    if not isinstance(sets, list) or not sets:
        raise BadRequest("metricValueSets is required")
    seen = set()
    for s in sets:
        name = s.get("metricName") if isinstance(s, dict) else None
        if not isinstance(name, str) or not name.startswith(service + "/") or name == service + "/":
            raise BadRequest("metric %r is not a metric of service %s" % (name, service))
        values = s.get("metricValues")
        if not isinstance(values, list) or not values:
            raise BadRequest("metricValues is required")
        for v in values:
            labels = v.get("labels") or {}
            key = (name, json.dumps(labels, sort_keys=True))
            if key in seen:
                raise BadRequest(
                    "operation %s has two values of metric %s with the same labels" % (op["operationId"], name)
                )
            seen.add(key)
            kinds = [k for k in ("int64Value", "doubleValue", "boolValue", "stringValue", "distributionValue", "moneyValue") if k in v]
            if kinds == ["int64Value"]:
                iv = v["int64Value"]
                if isinstance(iv, bool) or not (isinstance(iv, int) or (isinstance(iv, str) and INT64_RE.match(iv))):
                    raise BadRequest("int64Value %r is not an int64" % (iv,))
            elif kinds == ["doubleValue"]:
                dv = v["doubleValue"]
                if isinstance(dv, bool) or not isinstance(dv, (int, float)):
                    raise BadRequest("doubleValue %r is not a number" % (dv,))
            else:
                raise BadRequest("a metric value needs exactly one of int64Value or doubleValue")
            for tk in ("startTime", "endTime"):
                if tk in v and parse_time(v[tk]) is None:
                    raise BadRequest("metric value %s is not a timestamp" % tk)


def value_of(op):
    v = op["metricValueSets"][0]["metricValues"][0]
    return v.get("int64Value", v.get("doubleValue"))


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.rng = random.Random(args.seed)
        self.landed = {}  # operationId -> operation
        self.check_errors = {}
        for item in args.check_error:
            consumer, _, code = item.rpartition("=")
            self.check_errors[consumer] = code
        self.log_file = open(args.log, "a", buffering=1) if args.log else None

    def log(self, obj):
        if self.log_file:
            self.log_file.write(json.dumps(obj, sort_keys=True) + "\n")


def gerror(code, status, message):
    return {"error": {"code": code, "message": message, "status": status}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "gcp-fake/1"

    def log_message(self, *a):
        pass

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        st = self.server.state
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        m = re.fullmatch(r"/v1/services/([^/:]+):(check|report)", path)
        if not m:
            return self.reply(404, gerror(404, "NOT_FOUND", "no such method " + path))
        if self.headers.get("Authorization") != "Bearer " + st.args.token:
            return self.reply(401, gerror(401, "UNAUTHENTICATED", "Request had invalid authentication credentials."))
        service, method = m.group(1), m.group(2)
        with st.lock:
            st.log({"type": "body", "method": method, "text": raw.decode("utf-8", "replace")})
        if len(raw) > MAX_BYTES:
            with st.lock:
                st.log({"type": "call", "method": method, "http": 400, "bytes": len(raw)})
            return self.reply(400, gerror(400, "INVALID_ARGUMENT", "Request payload size exceeds the limit: %d bytes." % MAX_BYTES))
        try:
            doc = json.loads(raw)
        except ValueError:
            return self.reply(400, gerror(400, "INVALID_ARGUMENT", "Invalid JSON payload received."))
        with st.lock:
            if st.rng.random() < st.args.fail_rate:
                st.log({"type": "call", "method": method, "http": 503})
                return self.reply(503, gerror(503, "UNAVAILABLE", "injected: the service is unavailable"))
            if method == "check":
                return self.check(st, service, doc)
            return self.report(st, service, doc, len(raw))

    def check(self, st, service, doc):
        op = doc.get("operation") if isinstance(doc, dict) else None
        try:
            check_operation(service, op)
        except BadRequest as e:
            st.log({"type": "call", "method": "check", "http": 400})
            return self.reply(400, gerror(400, "INVALID_ARGUMENT", str(e)))
        out = {"operationId": op["operationId"], "serviceConfigId": "2026-01-01r0"}
        code = st.check_errors.get(op["consumerId"])
        if code:
            out["checkErrors"] = [{"code": code, "detail": "configured for consumer " + op["consumerId"]}]
        st.log({"type": "check", "consumerId": op["consumerId"], "operationId": op["operationId"], "error": code})
        self.reply(200, out)

    def report(self, st, service, doc, size):
        ops = doc.get("operations") if isinstance(doc, dict) else None
        if not isinstance(ops, list) or not ops:
            return self.reply(400, gerror(400, "INVALID_ARGUMENT", "operations is required"))
        try:
            for op in ops:
                check_operation(service, op)
        except BadRequest as e:
            st.log({"type": "call", "method": "report", "http": 400, "operations": len(ops)})
            return self.reply(400, gerror(400, "INVALID_ARGUMENT", str(e)))
        errors = []
        for op in ops:
            oid = op["operationId"]
            code = st.check_errors.get(op["consumerId"])
            if code:
                errors.append({"operationId": oid, "status": {"code": 7, "message": code}})
                continue
            if st.rng.random() < st.args.report_error_rate:
                errors.append({"operationId": oid, "status": {"code": 14, "message": "injected: try again"}})
                continue
            ms = op["metricValueSets"][0]
            rec = {
                "service": service,
                "operationId": oid,
                "consumerId": op["consumerId"],
                "metric": ms["metricName"],
                "value": value_of(op),
                "startTime": op["startTime"],
                "endTime": op["endTime"],
            }
            if oid in st.landed:
                st.log(dict(rec, type="dup"))
            else:
                st.landed[oid] = op
                st.log(dict(rec, type="op"))
        fail_after = st.rng.random() < st.args.fail_after_rate
        st.log({"type": "call", "method": "report", "http": 500 if fail_after else 200,
                "operations": len(ops), "errors": len(errors), "bytes": size})
        if fail_after:
            return self.reply(500, gerror(500, "INTERNAL", "injected after the operations landed"))
        out = {"serviceConfigId": "2026-01-01r0"}
        if errors:
            out["reportErrors"] = errors
        self.reply(200, out)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--log", help="JSON Lines log of every landed operation, repeat, check and call")
    p.add_argument("--token", default="test-token", help="the bearer token requests must carry")
    p.add_argument("--check-error", action="append", default=[], metavar="CONSUMER=CODE",
                   help="answer services.check for CONSUMER with this check error code")
    p.add_argument("--fail-rate", type=float, default=0.0, help="503 before anything lands")
    p.add_argument("--fail-after-rate", type=float, default=0.0, help="500 after the operations landed")
    p.add_argument("--report-error-rate", type=float, default=0.0, help="per operation: reportErrors UNAVAILABLE")
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
