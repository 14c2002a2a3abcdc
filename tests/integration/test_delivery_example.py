#!/usr/bin/env python3
"""examples/push_receiver.py (the README's push delivery receiver) against qbcdc + qbosim.

The example verifies every delivery, drops retries by webhook-id and prints each change once,
in feed order: what it prints is the feed, exactly. A forged signature or a stale timestamp
gets 401 from it.
"""
import base64
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403
from receiverlib import sign
from simlib import Sim, admin, register_realms, serve_env, wait_drained

FEED = {"Authorization": "Bearer test-feed-token"}
secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
rport = free_port()
ex = Proc([sys.executable, os.path.join(ROOT, "examples", "push_receiver.py"), "--listen",
                             "127.0.0.1:%d" % rport], env={"QBCDC_PUSH_SECRET": secret})
deadline = time.time() + 10
while time.time() < deadline:  # until it listens
    try:
        socket.create_connection(("127.0.0.1", rport), timeout=1).close()
        break
    except OSError:
        time.sleep(0.05)

port = free_port()
sim = Sim(args=["--webhook-url", "http://127.0.0.1:%d/webhooks/intuit" % port], realms=2, entities=8)
env = serve_env(port, tmpdir("qbcdc-push-ex-"), sim)
env.update({"QBCDC_DELIVERY_ALLOW_PRIVATE": "1", "QBCDC_CDC_INTERVAL": "3600"})
q = Proc([QBCDC, "serve"], env=env)
ok(wait_http(port), "qbcdc serve is up", q.output())
st, sub = admin(port, "POST", "/admin/subscriptions", json.dumps({"url": "http://127.0.0.1:%d/" % rport,
                                                                   "secret": secret, "batch_max": 10}))
is_(st, 201, "a subscription to the example receiver")
is_(register_realms(port, sim), 2, "two realms registered")
sim.json("POST", "/sim/mutate?n=40&per_hook=4")
ok(not wait_drained(sim, env["QBCDC_DATA_DIR"], timeout=60), "every change fetched")
feed, after = [], 0
while True:
    st, _, b = request(port, "GET", "/v1/changes?limit=1000&after=%d" % after, headers=FEED)
    page = json.loads(b)
    feed += page["changes"]
    if not page["changes"]:
        break
    after = page["next"]
deadline = time.time() + 30
while time.time() < deadline and admin(port, "GET", "/admin/subscriptions/%s" % sub["id"])[1]["cursor"] != after:
    time.sleep(0.2)
s = admin(port, "GET", "/admin/subscriptions/%s" % sub["id"])[1]
ok(s["cursor"] == after and s["delivered"]["failed_attempts"] == 0,
   "the receiver acknowledged every delivery (cursor %d, no failed attempt)" % s["cursor"], s)

body = b'{"type":"qbcdc.changes","data":{"changes":[]}}'
ts = str(int(time.time()))
st, _, _ = request(rport, "POST", "/", body, {"webhook-id": "msg_x", "webhook-timestamp": ts,
                                               "webhook-signature": "v1,AAAA"})
is_(st, 401, "a forged signature: 401")
old = str(int(time.time()) - 3600)
st, _, _ = request(rport, "POST", "/", body, {"webhook-id": "msg_x", "webhook-timestamp": old,
                                               "webhook-signature": sign(secret, "msg_x", old, body)})
is_(st, 401, "a correctly signed delivery an hour old: 401")
st, _, _ = request(rport, "POST", "/", body, {"webhook-id": "msg_x", "webhook-timestamp": ts,
                                               "webhook-signature": "v1,AAAA " + sign(secret, "msg_x", ts, body)})
is_(st, 204, "one matching signature among several: 204")
ex.stop()
printed = [json.loads(line) for line in ex.output().splitlines() if line.startswith("{")]
is_([c["seq"] for c in printed], [c["seq"] for c in feed], "it printed every change once, in feed order")
is_(printed, feed, "each the object /v1/changes serves")
is_(q.stop(), 0, "qbcdc stops")
sim.stop()
done_testing()
