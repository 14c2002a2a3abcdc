"""receiverlib.py — a local webhook receiver for the push delivery tests (test_delivery*.py).

A threaded HTTP server on a loopback port that records every request it is sent (headers,
raw body, the answer it chose) and answers as its behaviour says: a status (or a
function choosing one), connection resets, slow answers, and going down (the port refuses
connections) for a while. Also checks Standard Webhooks signatures in Python.
"""
import base64
import hashlib
import hmac
import http.server
import json
import random
import socket
import struct
import threading
import time

from harness import free_port


def sign(secret, msg_id, ts, body):
    """the Standard Webhooks v1 signature (our own check; test_delivery_verify.py uses npm's)."""
    key = base64.b64decode(secret[len("whsec_"):] if secret.startswith("whsec_") else secret)
    mac = hmac.new(key, ("%s.%s." % (msg_id, ts)).encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


class Receiver:
    """behaviour(rec) -> ("status", code, delay_s) | ("reset",); rec is the request's record."""

    def __init__(self, behaviour=None, port=None):
        self.port = port or free_port()
        self.behaviour = behaviour or (lambda rec: ("status", 200, 0))
        self.lock = threading.Lock()
        self.requests = []  # dicts: id, ts, sig, body (bytes), answer ("200", "reset", ...), at
        self.server = None
        self.up()

    def up(self):
        recv = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def setup(self):
                super().setup()
                # headers and body go out in two writes: without this, Nagle holds the body
                # back for the client's delayed ACK (40 ms a request)
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                rec = {"id": self.headers.get("webhook-id"), "ts": self.headers.get("webhook-timestamp"),
                       "sig": self.headers.get("webhook-signature"), "body": body, "path": self.path,
                       "at": time.time(), "ctype": self.headers.get("Content-Type")}
                act = recv.behaviour(rec)
                if act[0] == "reset":
                    rec["answer"] = "reset"
                    with recv.lock:
                        recv.requests.append(rec)
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                code, delay = act[1], act[2]
                if delay:
                    rec["slow"] = delay
                    time.sleep(delay)
                rec["answer"] = code
                with recv.lock:
                    recv.requests.append(rec)
                extra = act[3] if len(act) > 3 else {}
                out = b"{}"
                self.send_response(code)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                try:
                    self.wfile.write(out)
                except OSError:
                    pass

        class S(http.server.ThreadingHTTPServer):
            allow_reuse_address = True
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # resets and clients that gave up are part of the test

        self.server = S(("127.0.0.1", self.port), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self):
        """the port refuses connections until up()"""
        self.server.shutdown()
        self.server.server_close()

    def url(self, path="/hook"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def snapshot(self):
        with self.lock:
            return list(self.requests)

    def acked(self):
        """the requests answered 2xx, first of each webhook-id, in the order they arrived"""
        seen, out = set(), []
        for r in self.snapshot():
            if isinstance(r["answer"], int) and 200 <= r["answer"] < 300 and r["id"] not in seen:
                seen.add(r["id"])
                out.append(r)
        return out

    def acked_seqs(self):
        seqs = []
        for r in self.acked():
            seqs.extend(c["seq"] for c in json.loads(r["body"])["data"]["changes"])
        return seqs

    def close(self):
        try:
            self.down()
        except Exception:
            pass


def flaky(seed=1, p500=0.30, preset=0.05, pslow=0.05, slow_s=1.5):
    """a behaviour: 500 at p500, a reset at preset, a slow 200 at pslow, else 200"""
    rnd = random.Random(seed)
    lock = threading.Lock()

    def b(rec):
        with lock:
            x = rnd.random()
        if x < p500:
            return ("status", 500, 0)
        if x < p500 + preset:
            return ("reset",)
        if x < p500 + preset + pslow:
            return ("status", 200, slow_s)
        return ("status", 200, 0)

    return b
