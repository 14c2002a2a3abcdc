#!/usr/bin/env python3
"""push_receiver.py — a downstream app's end of qbcdc's push delivery, with nothing but the
standard library (see the README's "Push delivery").

    QBCDC_PUSH_SECRET=whsec_... python3 examples/push_receiver.py --listen 127.0.0.1:8000

Create the subscription with `qbcdc subscriptions create --url http://HOST:8000/` (its answer
holds the secret). For every POST it:
  1. verifies the Standard Webhooks signature (any of the `v1,` signatures in
     webhook-signature, HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>" keyed by the
     base64 after whsec_) and that webhook-timestamp is within 5 minutes: else 401;
  2. drops a delivery whose webhook-id it has seen (a retry of one it took): 204;
  3. prints each change as one JSON line on stdout, in feed order, and remembers the last
     sequence; a change at or below it is a redelivery (printed only with --replays);
  4. answers 204. Anything that fails before the answer makes qbcdc retry, in order.

Replace step 3 with your own processing; keep it before the answer, so that a crash means a
retry, not a loss. Seen ids and the last sequence are kept in memory here: keep them with
your data to survive restarts.
"""
import argparse
import base64
import hashlib
import hmac
import http.server
import json
import os
import sys
import threading
import time

TOLERANCE = 300


def verify(secret, headers, body):
    """None when the delivery is authentic, else why not"""
    msg_id, ts, sigs = headers.get("webhook-id"), headers.get("webhook-timestamp"), headers.get("webhook-signature")
    if not msg_id or not ts or not sigs:
        return "missing webhook-id, webhook-timestamp or webhook-signature"
    try:
        if abs(time.time() - int(ts)) > TOLERANCE:
            return "timestamp too old or too new"
    except ValueError:
        return "bad timestamp"
    key = base64.b64decode(secret[len("whsec_"):] if secret.startswith("whsec_") else secret)
    want = base64.b64encode(hmac.new(key, ("%s.%s." % (msg_id, ts)).encode() + body, hashlib.sha256).digest())
    for s in sigs.split(" "):
        version, _, value = s.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), want):
            return None
    return "no signature matches"


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.seen = set()
        self.last_seq = 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", default="127.0.0.1:8000")
    ap.add_argument("--replays", action="store_true", help="print redelivered changes too")
    args = ap.parse_args()
    secret = os.environ.get("QBCDC_PUSH_SECRET")
    if not secret:
        sys.exit("push_receiver: set QBCDC_PUSH_SECRET (the subscription's whsec_ secret)")
    host, port = args.listen.rsplit(":", 1)
    st = State()

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def answer(self, code):
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            why = verify(secret, self.headers, body)
            if why is not None:
                print("push_receiver: refused: %s" % why, file=sys.stderr, flush=True)
                return self.answer(401)
            with st.lock:
                if self.headers["webhook-id"] in st.seen:
                    return self.answer(204)
                try:
                    changes = json.loads(body)["data"]["changes"]
                except (ValueError, KeyError, TypeError):
                    return self.answer(400)
                for c in changes:
                    if c["seq"] > st.last_seq or args.replays:
                        sys.stdout.write(json.dumps(c, separators=(",", ":")) + "\n")
                    st.last_seq = max(st.last_seq, c["seq"])
                sys.stdout.flush()
                st.seen.add(self.headers["webhook-id"])
            self.answer(204)

    srv = http.server.ThreadingHTTPServer((host, int(port)), H)
    print("push_receiver: listening on %s" % args.listen, file=sys.stderr, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
