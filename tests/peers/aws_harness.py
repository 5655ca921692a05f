#!/usr/bin/env python3
"""AWS Marketplace Metering peer for metergate's submit tests: moto, in-process, on loopback.

moto (PyPI `moto`, tested with 5.2.5) implements `BatchMeterUsage`; this harness is the test
code around it that moto lacks (see /work/shared/peers/README.md):

* seeds subscribed customers into moto's backend (`customers_by_product`), which no API fills;
* wraps the backend's `batch_meter_usage` to append every record moto receives, as one JSON
  line, to the file given by `--log`, so tests count at the peer and not in metergate;
* emulates the AWS idempotency moto lacks: per product, customer, dimension and hour, a
  repeat with the same quantity answers `Success` with the first `MeteringRecordId`, and one
  with another quantity answers `DuplicateRecord`;
* accepts the `CustomerAWSAccountId` + `LicenseArn` form (moto answers HTTP 500 to it, moto
  PR 10133) and logs which keys each record carried, so tests can see the wire;
* injects faults on request: throttling (HTTP 400 `ThrottlingException`), server errors
  (HTTP 500 `InternalServiceErrorException` or a bare 503) and per-record
  `UnprocessedRecords`, at given rates, from a seeded random generator;
* refuses unsigned requests (moto would route them to S3) and records each call's time and
  size, so tests can check the 25-record and 10-calls-per-second limits;
* emulates the exceptions that refuse a whole call (`--refuse CODE:FIELD=VALUE[,FIELD=VALUE]`):
  a call holding any record whose fields match (`product`, `identity`, `dimension`,
  `quantity`) is answered HTTP 400 with that exception, as AWS does for a stale dimension, a
  bad customer or an out-of-bounds timestamp; moto sees none of its records.

Usage:
    PYTHONPATH=.peers/moto python3 tests/peers/aws_harness.py --port 0 --log calls.jsonl \
        --subscribe prod-a:cust-1,cust-2 [--subscribe-file subs.json] \
        [--throttle 0.2] [--server-error 0.1] [--unprocessed 0.05] [--seed 7] \
        [--refuse InvalidUsageDimensionException:identity=cust-1,dimension=storage]

It prints `PORT <n>` on stdout once it listens, then serves until killed.
"""

import argparse
import io
import json
import math
import random
import signal
import sys
import threading
import time

try:
    from moto.meteringmarketplace import models as mm_models
    from moto.meteringmarketplace import responses as mm_responses
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server
except ImportError as e:  # pragma: no cover
    sys.stderr.write(
        "aws_harness: cannot import moto (%s); run scripts/peers/install_moto.sh and set "
        "PYTHONPATH=.peers/moto\n" % e
    )
    sys.exit(3)

LOCK = threading.Lock()
STATE = {
    "log": None,
    "rng": random.Random(0),
    "throttle": 0.0,
    "server_error": 0.0,
    "unprocessed": 0.0,
    # (product, identity, dimension, hour) -> (quantity, metering record id)
    "billed": {},
    # [(exception name, {field: value})]: a call with a matching record is refused whole.
    "refuse": [],
}


def record_fields(product, usage):
    account = usage.get("CustomerAWSAccountId")
    return {
        "product": product,
        "identity": account if account else usage.get("CustomerIdentifier", ""),
        "dimension": usage.get("Dimension"),
        "quantity": str(usage.get("Quantity")),
    }


def refusal(doc):
    """The exception that refuses this call, with how many records caused it, or None."""
    product = doc.get("ProductCode")
    records = [record_fields(product, u) for u in doc.get("UsageRecords", [])]
    for code, cond in STATE["refuse"]:
        hits = [r for r in records if all(r.get(k) == v for k, v in cond.items())]
        if hits:
            return code, len(hits)
    return None


def log_line(obj):
    obj["t"] = time.time()
    line = json.dumps(obj, sort_keys=True)
    with LOCK:
        if STATE["log"] is not None:
            STATE["log"].write(line + "\n")
            STATE["log"].flush()


def chance(p):
    if p <= 0:
        return False
    with LOCK:
        return STATE["rng"].random() < p


def hour_of(ts):
    if isinstance(ts, (int, float)):
        return int(math.floor(ts / 3600.0))
    # ISO text (not what the Rust SDK sends, but accept it).
    from datetime import datetime

    t = datetime.fromisoformat(str(ts).replace("Z", "+00:00"))
    return int(math.floor(t.timestamp() / 3600.0))


def batch_meter_usage(self):
    """Replaces MarketplaceMeteringResponse.batch_meter_usage."""
    body = json.loads(self.body)
    product = body["ProductCode"]
    backend = self.backend
    results = []
    unprocessed = []
    for usage in body["UsageRecords"]:
        account = usage.get("CustomerAWSAccountId")
        identity = account if account else usage.get("CustomerIdentifier", "")
        entry = {
            "type": "record",
            "product": product,
            "identity": identity,
            "customer_identifier": usage.get("CustomerIdentifier"),
            "account_id": account,
            "license_arn": usage.get("LicenseArn"),
            "dimension": usage.get("Dimension"),
            "timestamp": usage.get("Timestamp"),
            "quantity": usage.get("Quantity"),
            "allocations": usage.get("UsageAllocations"),
            "keys": sorted(usage.keys()),
        }
        if chance(STATE["unprocessed"]):
            entry["status"] = "Unprocessed"
            log_line(entry)
            unprocessed.append(usage)
            continue
        # moto's own Result and subscription check, on the identity whichever form it has.
        as_moto = dict(usage)
        as_moto["CustomerIdentifier"] = identity
        as_moto.setdefault("Quantity", 0)
        result = mm_models.Result(**as_moto)
        if not backend.customers_by_product[product].is_subscribed(identity):
            result.status = result.CUSTOMER_NOT_SUBSCRIBED
        else:
            key = (product, identity, usage.get("Dimension"), hour_of(usage.get("Timestamp")))
            with LOCK:
                prior = STATE["billed"].get(key)
                if prior is None:
                    STATE["billed"][key] = (as_moto["Quantity"], result.metering_record_id)
            if prior is not None:
                if prior[0] == as_moto["Quantity"]:
                    result["MeteringRecordId"] = prior[1]
                else:
                    result.status = result.DUPLICATE_RECORD
        if account:
            rec = result.usage_record
            del rec["CustomerIdentifier"]
            rec["CustomerAWSAccountId"] = account
            if usage.get("LicenseArn") is not None:
                rec["LicenseArn"] = usage["LicenseArn"]
        entry["status"] = result.status
        entry["metering_record_id"] = result.metering_record_id
        log_line(entry)
        results.append(result)
    return json.dumps({"Results": results, "UnprocessedRecords": unprocessed})


mm_responses.MarketplaceMeteringResponse.batch_meter_usage = batch_meter_usage


def error_response(start_response, status, code, message):
    body = json.dumps({"__type": code, "message": message}).encode()
    start_response(
        status,
        [
            ("Content-Type", "application/x-amz-json-1.1"),
            ("Content-Length", str(len(body))),
            ("x-amzn-ErrorType", code),
        ],
    )
    return [body]


class FaultInjector:
    """WSGI middleware in front of moto: checks signatures, logs calls, injects faults."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.endswith("BatchMeterUsage"):
            return self.app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        auth = environ.get("HTTP_AUTHORIZATION", "")
        call = {"type": "call", "signed": auth.startswith("AWS4-HMAC-SHA256 ")}
        scope = auth.split("Credential=", 1)[1].split(",", 1)[0] if "Credential=" in auth else ""
        parts = scope.split("/")
        call["service"] = parts[3] if len(parts) > 3 else None
        call["region"] = parts[2] if len(parts) > 2 else None
        try:
            doc = json.loads(body)
            call["product"] = doc.get("ProductCode")
            call["records"] = len(doc.get("UsageRecords", []))
        except ValueError:
            doc = {}
            call["product"] = None
            call["records"] = None
        if not call["signed"]:
            call["fault"] = "unsigned"
            log_line(call)
            return error_response(
                start_response, "400 Bad Request", "MissingAuthenticationTokenException",
                "Missing Authentication Token",
            )
        refused = refusal(doc) if call["records"] is not None else None
        if refused is not None:
            call["fault"] = refused[0]
            call["faulty_records"] = refused[1]
            log_line(call)
            return error_response(
                start_response, "400 Bad Request", refused[0],
                "injected: %d record(s) of this call are at fault" % refused[1],
            )
        if chance(STATE["throttle"]):
            call["fault"] = "throttle"
            log_line(call)
            return error_response(
                start_response, "400 Bad Request", "ThrottlingException", "Rate exceeded"
            )
        if chance(STATE["server_error"]):
            call["fault"] = "5xx"
            log_line(call)
            with LOCK:
                bare = STATE["rng"].random() < 0.5
            if bare:
                body = b"Service Unavailable"
                start_response(
                    "503 Service Unavailable",
                    [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
                )
                return [body]
            return error_response(
                start_response, "500 Internal Server Error", "InternalServiceErrorException",
                "injected server error",
            )
        call["fault"] = None
        log_line(call)
        return self.app(environ, start_response)


class HarnessServer(ThreadedMotoServer):
    """moto's ThreadedMotoServer with the fault injector in front of its WSGI app."""

    def _server_entry(self):
        app = FaultInjector(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(
            self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--log", help="append one JSON line per call and per received record")
    ap.add_argument("--subscribe", action="append", default=[],
                    help="PRODUCT:CUSTOMER[,CUSTOMER...] (identifiers or account ids)")
    ap.add_argument("--subscribe-file", help='JSON {"product": ["customer", ...]}')
    ap.add_argument("--account", default="123456789012")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--throttle", type=float, default=0.0, help="chance a call is throttled")
    ap.add_argument("--server-error", type=float, default=0.0, help="chance of a 5xx")
    ap.add_argument("--unprocessed", type=float, default=0.0,
                    help="chance a record comes back in UnprocessedRecords")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--refuse", action="append", default=[],
                    help="CODE:FIELD=VALUE[,FIELD=VALUE]: refuse a whole call with exception "
                         "CODE when one of its records matches (fields: product, identity, "
                         "dimension, quantity)")
    args = ap.parse_args()
    for r in args.refuse:
        code, _, conds = r.partition(":")
        cond = dict(c.split("=", 1) for c in conds.split(",") if c)
        STATE["refuse"].append((code, cond))

    STATE["rng"] = random.Random(args.seed)
    STATE["throttle"] = args.throttle
    STATE["server_error"] = args.server_error
    STATE["unprocessed"] = args.unprocessed
    if args.log:
        STATE["log"] = open(args.log, "a", encoding="utf-8")

    subs = {}
    for s in args.subscribe:
        product, _, customers = s.partition(":")
        subs.setdefault(product, []).extend(c for c in customers.split(",") if c)
    if args.subscribe_file:
        with open(args.subscribe_file, encoding="utf-8") as f:
            for product, customers in json.load(f).items():
                subs.setdefault(product, []).extend(customers)
    backend = mm_models.meteringmarketplace_backends[args.account][args.region]
    for product, customers in subs.items():
        backend.customers_by_product[product].extend(customers)

    # Quiet werkzeug's per-request access log; the --log file is the record.
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = HarnessServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    sys.stdout.write("PORT %d\n" % port)
    sys.stdout.flush()

    done = threading.Event()

    def stop(*_):
        done.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    done.wait()
    server.stop()


if __name__ == "__main__":
    main()
