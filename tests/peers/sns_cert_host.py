#!/usr/bin/env python3
"""A stand-in for the Amazon SNS host a subscriber talks to, on loopback, for the tests of
`POST /v1/events/aws`:

- GET /<name>.pem: the signing certificate <name>.pem from --dir (what SigningCertURL names:
  https://sns.<region>.amazonaws.com/SimpleNotificationService-<hash>.pem); 404 when missing.
- GET /?Action=ConfirmSubscription&TopicArn=...&Token=...: what a SubscriptionConfirmation's
  SubscribeURL names. Answers SNS's ConfirmSubscriptionResponse XML with a SubscriptionArn.

With --cert and --key (PEM) it serves HTTPS, as SNS does; the tests make the certificate with
their own test certificate authority and configure metergate to trust that CA.

Each request is logged as one JSON line to --log: {"type": "cert", "path"} or
{"type": "confirm", "topic", "token"} or {"type": "other", "path"}.
Prints "PORT <n>" on stdout once listening on 127.0.0.1.
"""

import argparse
import json
import os
import ssl
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sns-cert-host/1"

    def log_message(self, *a):
        pass

    def log(self, obj):
        st = self.server.state
        with st["lock"]:
            if st["log"]:
                st["log"].write(json.dumps(obj, sort_keys=True) + "\n")

    def reply(self, code, body, ctype):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        if url.path.endswith(".pem"):
            self.log({"type": "cert", "path": url.path})
            name = os.path.basename(url.path)
            path = os.path.join(self.server.state["dir"], name)
            if not os.path.isfile(path):
                return self.reply(404, b"not found", "text/plain")
            with open(path, "rb") as f:
                return self.reply(200, f.read(), "application/x-pem-file")
        if q.get("Action") == "ConfirmSubscription":
            topic, token = q.get("TopicArn", ""), q.get("Token", "")
            self.log({"type": "confirm", "topic": topic, "token": token})
            if not topic or not token:
                return self.reply(400, b"<ErrorResponse><Error><Code>InvalidParameter</Code></Error></ErrorResponse>", "text/xml")
            body = ("<ConfirmSubscriptionResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\">"
                    "<ConfirmSubscriptionResult><SubscriptionArn>%s:confirmed</SubscriptionArn>"
                    "</ConfirmSubscriptionResult></ConfirmSubscriptionResponse>" % topic).encode()
            return self.reply(200, body, "text/xml")
        self.log({"type": "other", "path": url.path})
        self.reply(404, b"not found", "text/plain")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--log")
    p.add_argument("--dir", required=True, help="directory of .pem files to serve")
    p.add_argument("--cert", help="server certificate (PEM) for HTTPS")
    p.add_argument("--key", help="server key (PEM) for HTTPS")
    args = p.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    srv.state = {
        "dir": args.dir,
        "lock": threading.Lock(),
        "log": open(args.log, "a", buffering=1) if args.log else None,
    }
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print("PORT %d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
