#!/usr/bin/env python3
"""A faithful fake of the AWS Marketplace Agreement API (AWSMPCommerceService_v20200301) and
Entitlement API (AWSMPEntitlementService), the parts `metergate contracts sync --marketplace aws`
reads. No emulator (moto included) covers them.

Wire protocol, as the official Rust SDKs speak it (aws-sdk-marketplaceagreement 1.124,
aws-sdk-marketplaceentitlement 1.126): BOTH services use Smithy RPC v2 CBOR:
POST /service/{ServiceName}/operation/{Operation}, "smithy-protocol: rpc-v2-cbor", CBOR bodies,
timestamps as CBOR tag 1 (epoch seconds), errors as a CBOR map {"__type", "message"} with the
model's HTTP status. Member names follow the models: lowerCamel for the agreement service
(agreementId, acceptor.accountId, proposalSummary.resources[].id, acceptedTerms[] as a union
{"usageBasedPricingTerm": {"rateCards": [{"rateCard": [{"dimensionKey", "price"}]}]}}, nextToken),
PascalCase for the entitlement service (ProductCode, Dimension, CustomerAWSAccountId,
LicenseArn, Value, NextToken).

Operations: SearchAgreements (catalog AWSMarketplace, filters PartyType=Proposer and
AgreementType=PurchaseAgreement required; ValidationException otherwise), DescribeAgreement,
GetAgreementTerms (ResourceNotFoundException for an unknown id), GetEntitlements (ProductCode
required; InvalidParameterException otherwise). Lists are paged: at most
min(maxResults, --max-page-size) items, with an opaque nextToken on every page but the last;
a token this fake did not issue is a ValidationException / InvalidParameterException.

Every request must be SigV4-signed: "Authorization: AWS4-HMAC-SHA256 Credential=<key>/<date>/
<region>/aws-marketplace/aws4_request, SignedHeaders=..., Signature=..." and X-Amz-Date
(403 MissingAuthenticationTokenException / InvalidSignatureException otherwise; the signature
itself is not recomputed). --access-key-id names the only accepted key.

State: --state JSON {"agreements": [{"agreementId", "status", "accountId", "productId",
"startTime", "endTime", "dimensions": [...], "licenseArn"}], "entitlements": {productCode: [...]}}
read on every call, so a test changes the marketplace by rewriting the file.

Fault injection: --fail OPERATION:STATUS:CODE (repeatable) answers every call to OPERATION
with that error (e.g. GetAgreementTerms:400:ThrottlingException, SearchAgreements:403:
AccessDeniedException, GetEntitlements:500:InternalServiceErrorException).

Each call is logged as one JSON line to --log: {"type": "call", "service", "operation", "http"}.
Prints "PORT <n>" on stdout once listening on 127.0.0.1.
"""

import argparse
import base64
import json
import os
import re
import sys
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".peers", "cbor2"))
import cbor2  # noqa: E402

AGREEMENT = "AWSMPCommerceService_v20200301"
ENTITLEMENT = "AWSMPEntitlementService"


def ts(s):
    if s is None:
        return None
    return cbor2.CBORTag(1, datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp())


def err(status, code, message):
    return status, {"__type": code, "message": message}


def page(items, body, a, tokname, bad):
    size = min(int(body.get(tokname[0]) or a.max_page_size), a.max_page_size)
    tok = body.get(tokname[1])
    try:
        off = int(base64.urlsafe_b64decode(tok.encode()).decode().split(":")[1]) if tok else 0
    except Exception:
        return None, bad
    out = items[off:off + size]
    nxt = base64.urlsafe_b64encode(("page:%d" % (off + size)).encode()).decode() if off + size < len(items) else None
    return (out, nxt), None


def summary(ag):
    d = {
        "agreementId": ag["agreementId"],
        "acceptanceTime": ts(ag.get("startTime")),
        "startTime": ts(ag.get("startTime")),
        "endTime": ts(ag.get("endTime")),
        "agreementType": "PurchaseAgreement",
        "acceptor": {"accountId": ag["accountId"]},
        "proposer": {"accountId": "111122223333"},
        "proposalSummary": {"resources": [{"id": ag["productId"], "type": "SaaSProduct"}], "offerId": "offer-" + ag["productId"]},
        "status": ag["status"],
    }
    return {k: v for k, v in d.items() if v is not None}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "aws-contracts-fake/1"

    def log_message(self, *a):
        pass

    def do_POST(self):
        a = self.server.args
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        m = re.fullmatch(r"/service/([^/]+)/operation/([^/?]+)", self.path.split("?")[0])
        service, op = (m.group(1), m.group(2)) if m else ("", "")
        code, obj = self.route(a, service, op, raw)
        with self.server.lock:
            if self.server.log:
                self.server.log.write(json.dumps({"type": "call", "service": service, "operation": op, "http": code}) + "\n")
        body = cbor2.dumps(obj)
        self.send_response(code)
        self.send_header("Content-Type", "application/cbor")
        self.send_header("smithy-protocol", "rpc-v2-cbor")
        self.send_header("x-amzn-requestid", "fake-%d" % id(obj))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def route(self, a, service, op, raw):
        auth = self.headers.get("Authorization") or ""
        if not auth.startswith("AWS4-HMAC-SHA256 ") or not self.headers.get("X-Amz-Date"):
            return err(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
        cm = re.search(r"Credential=([^/]+)/\d{8}/[a-z0-9-]+/([a-z-]+)/aws4_request", auth)
        if not cm or cm.group(2) != "aws-marketplace" or "Signature=" not in auth or "SignedHeaders=" not in auth:
            return err(403, "InvalidSignatureException", "The request signature does not name service aws-marketplace")
        if cm.group(1) != a.access_key_id:
            return err(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
        if self.headers.get("smithy-protocol") != "rpc-v2-cbor":
            return err(400, "SerializationException", "smithy-protocol: rpc-v2-cbor is required")
        try:
            body = cbor2.loads(raw) if raw else {}
        except Exception:
            return err(400, "SerializationException", "the body is not CBOR")
        for f in a.fail or []:
            fop, st, fcode = f.split(":")
            if fop == op:
                return err(int(st), fcode, "injected failure")
        with open(a.state) as fh:
            state = json.load(fh)
        ags = state.get("agreements", [])
        if service == AGREEMENT:
            if op == "SearchAgreements":
                flt = {f.get("name"): f.get("values") for f in body.get("filters") or []}
                if body.get("catalog") != "AWSMarketplace" or "Proposer" not in (flt.get("PartyType") or []) or "PurchaseAgreement" not in (flt.get("AgreementType") or []):
                    return err(400, "ValidationException", "catalog AWSMarketplace with PartyType and AgreementType filters required")
                res, bad = page(ags, body, a, ("maxResults", "nextToken"), err(400, "ValidationException", "invalid nextToken"))
                if bad:
                    return bad
                out = {"agreementViewSummaries": [summary(x) for x in res[0]]}
                if res[1]:
                    out["nextToken"] = res[1]
                return 200, out
            if op in ("DescribeAgreement", "GetAgreementTerms"):
                ag = next((x for x in ags if x["agreementId"] == body.get("agreementId")), None)
                if ag is None:
                    return err(400, "ResourceNotFoundException", "agreement not found")
                if op == "DescribeAgreement":
                    return 200, summary(ag)
                terms = [{"usageBasedPricingTerm": {"type": "UsageBasedPricingTerm", "id": "term-%d" % i, "currencyCode": "USD",
                                                    "rateCards": [{"rateCard": [{"dimensionKey": d, "price": "0.01"}]}]}}
                         for i, d in enumerate(ag.get("dimensions", []))]
                terms.append({"legalTerm": {"type": "LegalTerm", "id": "legal-1", "documents": []}})
                res, bad = page(terms, body, a, ("maxResults", "nextToken"), err(400, "ValidationException", "invalid nextToken"))
                if bad:
                    return bad
                out = {"acceptedTerms": res[0]}
                if res[1]:
                    out["nextToken"] = res[1]
                return 200, out
        if service == ENTITLEMENT and op == "GetEntitlements":
            pc = body.get("ProductCode")
            if not pc:
                return err(400, "InvalidParameterException", "ProductCode is required")
            ents = state.get("entitlements", {}).get(pc, [])
            res, bad = page(ents, body, a, ("MaxResults", "NextToken"), err(400, "InvalidParameterException", "invalid NextToken"))
            if bad:
                return bad
            out = {"Entitlements": [{**{k: v for k, v in e.items() if k != "ExpirationDate"}, "ProductCode": pc,
                                     **({"ExpirationDate": ts(e["ExpirationDate"])} if e.get("ExpirationDate") else {})} for e in res[0]]}
            if res[1]:
                out["NextToken"] = res[1]
            return 200, out
        return err(404, "UnknownOperationException", "no such operation %s/%s" % (service, op))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--log")
    p.add_argument("--state", required=True)
    p.add_argument("--access-key-id", default="AKIDEXAMPLE")
    p.add_argument("--max-page-size", type=int, default=2)
    p.add_argument("--fail", action="append")
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
