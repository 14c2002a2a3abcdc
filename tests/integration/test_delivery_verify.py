#!/usr/bin/env python3
"""Push delivery signatures checked by an independent implementation (issue 14).

The `standardwebhooks` package from the npm registry (tests/integration/node/, installed
with `npm ci` from the committed package-lock.json; no registry and no cached install
fails this test, it does not skip) verifies the deliveries qbcdc sent to a local receiver:
- every delivery verifies with the subscription's secret;
- a tampered body, a tampered timestamp, another webhook-id or another secret fail there;
- after a secret rotation both signatures are sent: npm's verifier accepts the delivery
  with the new secret and with the old one (during the grace period).
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403
from receiverlib import Receiver
from simlib import Sim, admin, register_realms, serve_env, wait_drained

NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node")


def npm_ready():
    if os.path.isdir(os.path.join(NODE_DIR, "node_modules", "standardwebhooks")):
        return True, "already installed"
    try:
        p = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, capture_output=True, text=True,
                           timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, str(e)
    return p.returncode == 0, p.stdout + p.stderr


def verify(cases):
    p = subprocess.run(["node", "verify.js"], cwd=NODE_DIR, input=json.dumps(cases), capture_output=True, text=True,
                       timeout=60)
    if p.returncode != 0:
        diag(p.stderr)
        return None
    return json.loads(p.stdout)


def case(secret, r, body=None, ts=None, msg_id=None):
    return {"secret": secret, "body": (body if body is not None else r["body"]).decode(),
            "headers": {"webhook-id": msg_id or r["id"], "webhook-timestamp": ts or r["ts"],
                        "webhook-signature": r["sig"]}}


ready, why = npm_ready()
if not ok(ready, "npm ci installed standardwebhooks into tests/integration/node", why):
    done_testing()

port = free_port()
sim = Sim(args=["--webhook-url", "http://127.0.0.1:%d/webhooks/intuit" % port], realms=1, entities=8)
env = serve_env(port, tmpdir("qbcdc-push-verify-"), sim)
env.update({"QBCDC_DELIVERY_ALLOW_PRIVATE": "1", "QBCDC_CDC_INTERVAL": "3600"})
data = env["QBCDC_DATA_DIR"]
q = Proc([QBCDC, "serve"], env=env)
ok(wait_http(port), "qbcdc serve is up", q.output())
rcv = Receiver()
st, sub = admin(port, "POST", "/admin/subscriptions", json.dumps({"url": rcv.url(), "batch_max": 3}))
is_(st, 201, "a subscription")
sid, secret = sub["id"], sub["secret"]
is_(register_realms(port, sim), 1, "a realm registered")
sim.json("POST", "/sim/mutate?n=12&per_hook=2")
wait_drained(sim, data, timeout=60)
deadline = time.time() + 30
while time.time() < deadline and admin(port, "GET", "/admin/subscriptions/%s" % sid)[1]["lag"]["sequences"]:
    time.sleep(0.2)
reqs = rcv.snapshot()
ok(len(reqs) >= 5, "deliveries arrived (%d)" % len(reqs))

res = verify([case(secret, r) for r in reqs])
is_(res, ["ok"] * len(reqs), "npm standardwebhooks verifies every delivery with the subscription's secret")
r = reqs[0]
tampered = r["body"].replace(b'"changes":[{', b'"changes":[ {', 1)
other_secret = "whsec_" + "A" * 43 + "="
res = verify([case(secret, r, body=tampered), case(secret, r, ts=str(int(r["ts"]) + 1)),
              case(secret, r, msg_id=r["id"] + "x"), case(other_secret, r)])
ok(res is not None and all(x != "ok" for x in res), "a tampered body, timestamp or id, or another secret, fails there",
   res)

# rotation: both signatures during the grace period
st, rot = admin(port, "PATCH", "/admin/subscriptions/%s" % sid, json.dumps({"rotate_secret": True}))
ok(st == 200 and rot.get("secret", "").startswith("whsec_") and rot["secret"] != secret,
   "PATCH rotate_secret answers the new secret once", rot)
new_secret = rot["secret"]
n0 = len(rcv.snapshot())
sim.json("POST", "/sim/mutate?n=4&per_hook=2")
wait_drained(sim, data, timeout=60)
deadline = time.time() + 30
while time.time() < deadline and len(rcv.snapshot()) == n0:
    time.sleep(0.2)
after = rcv.snapshot()[n0:]
ok(after and all(len(x["sig"].split(" ")) == 2 for x in after), "after a rotation two signatures are sent",
   [x["sig"] for x in after])
res = verify([case(new_secret, x) for x in after] + [case(secret, x) for x in after])
is_(res, ["ok"] * (2 * len(after)), "npm's verifier accepts them with the new secret and with the old one")
is_(q.stop(), 0, "qbcdc stops")
rcv.close()
sim.stop()
done_testing()
