#!/usr/bin/env python3
"""A fake Orb API (the subscription costs endpoint) for metergate's tests.

Faithful to Orb's published API reference ("Fetch subscription costs", "Fetch customer
costs", "Error responses"):

- GET /v1/subscriptions/{subscription_id}/costs
  Query: timeframe_start (inclusive), timeframe_end (exclusive), ISO 8601 date-times;
  view_mode = cumulative (the default) | periodic; currency (the currency or custom pricing
  unit to use). Without bounds: the current billing period.
  -> 200 {"data": [{"timeframe_start", "timeframe_end", "subtotal", "total",
                    "per_price_costs": [{"price_id", "price": {...}, "quantity",
                                         "subtotal", "total"}]}]}
  The endpoint is not paginated. One datapoint per day. Cumulative: each datapoint counts
  from the start of the billing period that contains it (timeframe_start is that period's
  start, even before the requested timeframe_start), timeframe_end grows one day at a time.
  Periodic: the difference of each cumulative datapoint with the previous one of the same
  period (one-day windows). Billing periods are calendar months (UTC). `total` includes the
  subscription's monthly minimum (if any) and credits (negative amounts); `subtotal`
  excludes the minimum. Amounts are decimal strings. Only windows where the subscription is
  active (from its start_date) are returned.
- Errors follow RFC 7807: {"type", "status", "title", "detail"} (400 adds
  "validation_errors"): 401 without "Authorization: Bearer <--api-key>", 404 for an unknown
  subscription, 400 for a bad timeframe, view_mode or currency, 500 during an outage.

The costs come from a JSON state file (--state), read again on every request so a test can
change them between imports:

  {"outage": false,
   "subscriptions": {"sub_1": {"currency": "USD", "start_date": "2026-01-01T00:00:00Z",
                               "minimum": "0",
                               "events": [{"at": "...", "price_id": "price_api",
                                           "quantity": "12", "amount": "1.23"}]}}}

Every request is logged to --log as one JSON line {"type": "call", "path", "query",
"status"}. Prints "PORT <n>" once listening on 127.0.0.1; stops by itself after --lifetime
seconds.
"""

import argparse
import datetime as dt
import json
import sys
import threading
import urllib.parse
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ERR = "https://docs.withorb.com/reference/error-responses#"
DAY = dt.timedelta(days=1)


def parse_time(s):
    if not isinstance(s, str) or not s:
        return None
    t = s.strip().replace("Z", "+00:00")
    try:
        v = dt.datetime.fromisoformat(t)
    except ValueError:
        try:
            v = dt.datetime.fromisoformat(t + "T00:00:00+00:00")
        except ValueError:
            return None
    if v.tzinfo is None:
        v = v.replace(tzinfo=dt.timezone.utc)
    return v.astimezone(dt.timezone.utc)


def fmt_time(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S+00:00")


def fmt_amount(d):
    d = Decimal(d)
    if d == d.to_integral_value():
        return "%s.00" % d.quantize(Decimal(1))
    s = format(d.normalize(), "f")
    if len(s.split(".")[1]) < 2:
        s += "0"
    return s


def day_floor(t):
    return t.replace(hour=0, minute=0, second=0, microsecond=0)


def period_start(t):
    return t.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()

    def load(self):
        with open(self.args.state) as f:
            return json.load(f)

    def log(self, entry):
        if not self.args.log:
            return
        with self.lock, open(self.args.log, "a") as f:
            f.write(json.dumps(entry) + "\n")


def costs_between(sub, start, end):
    """Per price: (quantity, amount) of the events in [start, end)."""
    out = {}
    for e in sub.get("events", []):
        at = parse_time(e.get("at"))
        if at is None or not (start <= at < end):
            continue
        pid = e.get("price_id", "price_default")
        q, a = out.get(pid, (Decimal(0), Decimal(0)))
        out[pid] = (q + Decimal(str(e.get("quantity", "0"))), a + Decimal(str(e["amount"])))
    return out


def datapoint(sub, start, end, per_price, minimum):
    subtotal = sum((a for _, a in per_price.values()), Decimal(0))
    total = max(subtotal, minimum) if minimum > 0 else subtotal
    return {
        "timeframe_start": fmt_time(start),
        "timeframe_end": fmt_time(end),
        "subtotal": fmt_amount(subtotal),
        "total": fmt_amount(total),
        "per_price_costs": [
            {
                "price_id": pid,
                "price": {"id": pid, "currency": sub.get("currency", "USD"), "model_type": "unit"},
                "quantity": float(q),
                "subtotal": fmt_amount(a),
                "total": fmt_amount(a),
            }
            for pid, (q, a) in sorted(per_price.items())
        ],
    }


def costs(sub, ts, te, view_mode):
    minimum = Decimal(str(sub.get("minimum", "0")))
    active_from = parse_time(sub.get("start_date")) or ts
    day = day_floor(max(ts, active_from))
    data = []
    prev = {}
    while day < te:
        end = day + DAY
        ps = period_start(day)
        cum = datapoint(sub, ps, end, costs_between(sub, ps, end), minimum)
        if view_mode == "cumulative":
            data.append(cum)
        else:
            last = prev.get(fmt_time(ps))
            if last is None:
                point = dict(cum, timeframe_start=fmt_time(day))
            else:
                diff = lambda k: fmt_amount(Decimal(cum[k]) - Decimal(last[k]))
                point = dict(cum, timeframe_start=fmt_time(day), subtotal=diff("subtotal"),
                             total=diff("total"),
                             per_price_costs=[dict(p) for p in cum["per_price_costs"]])
            data.append(point)
            prev[fmt_time(ps)] = cum
        day = end
    return data


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, status, body):
        raw = json.dumps(body).encode()
        # Logged before the answer goes out, so a client that has its answer finds the call
        # in the log (a test reading the log right after its call never misses it).
        self.server.state.log({**self.call, "status": status})
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)
        return status

    def error(self, status, kind, title, detail, **extra):
        body = {"type": ERR + kind, "status": status, "title": title, "detail": detail}
        body.update(extra)
        return self.reply(status, body)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        self.call = {"type": "call", "path": url.path, "query": query}
        self.handle_get(url.path, query)

    def handle_get(self, path, query):
        st = self.server.state
        auth = self.headers.get("Authorization", "")
        if auth != "Bearer " + st.args.api_key:
            return self.error(401, "401-authentication-error", "Authentication failure",
                              "Your request did not provide a valid or well-formatted API key.")
        parts = path.strip("/").split("/")
        if len(parts) != 4 or parts[0] != "v1" or parts[1] != "subscriptions" or parts[3] != "costs":
            return self.error(404, "404-url-not-found", "URL not found",
                              "The requested URL was not found on the server.")
        state = st.load()
        if state.get("outage"):
            return self.error(500, "500-internal-server-error", "Internal server error",
                              "An unexpected error occurred.")
        sub_id = urllib.parse.unquote(parts[2])
        sub = state.get("subscriptions", {}).get(sub_id)
        if sub is None:
            return self.error(404, "404-resource-not-found", "A specified resource was not found.",
                              "Could not find a resource of type Subscription with identifier: %s." % sub_id)
        view_mode = query.get("view_mode", "cumulative")
        bad = []
        if view_mode not in ("cumulative", "periodic"):
            bad.append({"field": "view_mode", "message": "must be one of periodic, cumulative"})
        now = dt.datetime.now(dt.timezone.utc)
        ts = parse_time(query["timeframe_start"]) if "timeframe_start" in query else period_start(now)
        te = parse_time(query["timeframe_end"]) if "timeframe_end" in query else period_start(now + dt.timedelta(days=32))
        if ts is None:
            bad.append({"field": "timeframe_start", "message": "not a valid date-time"})
        if te is None:
            bad.append({"field": "timeframe_end", "message": "not a valid date-time"})
        if ts is not None and te is not None and ts >= te:
            bad.append({"field": "timeframe_end", "message": "must be after timeframe_start"})
        cur = query.get("currency")
        if cur is not None and cur.upper() != sub.get("currency", "USD").upper():
            bad.append({"field": "currency", "message": "no prices in %s for this subscription" % cur})
        if bad:
            return self.error(400, "400-request-validation-errors", "Request validation error",
                              "The request failed validation.", validation_errors=bad)
        return self.reply(200, {"data": costs(sub, ts, te, view_mode)})


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--state", required=True, help="JSON file with the subscriptions' costs")
    p.add_argument("--log", help="JSON Lines log of every call")
    p.add_argument("--api-key", default="test-orb-key")
    p.add_argument("--lifetime", type=float, default=600.0, help="stop after this many seconds")
    args = p.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    srv.state = State(args)
    timer = threading.Timer(args.lifetime, srv.shutdown)
    timer.daemon = True
    timer.start()
    print("PORT %d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
