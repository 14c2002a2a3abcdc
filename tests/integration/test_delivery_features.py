#!/usr/bin/env python3
"""Push delivery subscriptions (issue 14): what an operator does with them.

- URL policy: loopback/private receivers are refused with 400 and the reason unless
  QBCDC_DELIVERY_ALLOW_PRIVATE=1; bad bodies (unknown field, bad secret, bad scheme) too.
- Filters: only the changes of the subscription's entities and ops, all of them, and the
  cursor still reaches the head (past the changes filtered out).
- Pause and resume; replay from a sequence (PATCH start_after), from a time, and
  POST .../redeliver; a given secret is used.
- The schedule's horizon (QBCDC_DELIVERY_SCHEDULE=0,1,1): after 3 failed attempts the
  subscription is disabled with the reason and its cursor kept; resumed, it goes on from
  there. A 410 disables at once. A 429's Retry-After is honoured.
- Everything survives a restart; DELETE removes it.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import openapi_check as oc  # noqa: E402  (first: may re-exec with /usr/bin/python3)
from harness import *  # noqa: F401,F403
from receiverlib import Receiver, sign
from simlib import ADMIN, Sim, admin, feed_changes, register_realms, serve_env, wait_drained


def sub_state(port, sid):
    return admin(port, "GET", "/admin/subscriptions/%s" % sid)[1]


def create(port, body):
    st, j = admin(port, "POST", "/admin/subscriptions", json.dumps(body))
    ok(st == 201, "created %s" % json.dumps({k: v for k, v in body.items() if k != "url"}), j)
    return j


# ---- the URL policy, without QBCDC_DELIVERY_ALLOW_PRIVATE
p0, port0, _ = start_qbcdc(extra_env={"QBCDC_ADMIN_TOKEN": ADMIN})
st, j = admin(port0, "POST", "/admin/subscriptions", json.dumps({"url": "http://127.0.0.1:9/hook"}))
ok(st == 400 and "private" in j.get("message", "") and "QBCDC_DELIVERY_ALLOW_PRIVATE" in j["message"],
   "a loopback receiver is refused with 400 and the reason", j)
st, j = admin(port0, "POST", "/admin/subscriptions", json.dumps({"url": "http://10.1.2.3/hook"}))
ok(st == 400 and "10.1.2.3" in j.get("message", ""), "so is a private address", j)
st, j = admin(port0, "POST", "/admin/subscriptions", json.dumps({"url": "ftp://8.8.8.8/"}))
ok(st == 400 and "http or https" in j.get("message", ""), "and another scheme", j)
st, j = admin(port0, "POST", "/admin/subscriptions", json.dumps({"url": "https://8.8.8.8/", "colour": "red"}))
ok(st == 400 and "colour" in j.get("message", ""), "an unknown field is refused, not ignored", j)
st, j = admin(port0, "POST", "/admin/subscriptions", json.dumps({"url": "https://8.8.8.8/", "secret": "hunter2"}))
ok(st == 400 and j.get("error") == "bad_secret", "a secret that is not whsec_ + base64 is refused", j)
st, j = admin(port0, "POST", "/admin/subscriptions", json.dumps({"url": "https://8.8.8.8/", "batch_max": 0}))
ok(st == 400 and "batch_max" in j.get("message", ""), "batch_max 0 is refused", j)
st, j = admin(port0, "POST", "/admin/subscriptions", "not json")
is_(st, 400, "a body that is not JSON: 400")
st, j = admin(port0, "POST", "/admin/subscriptions", json.dumps({"url": "https://8.8.8.8/hook"}))
ok(st == 201 and j["state"] == "active", "a public receiver is accepted", j)
st, j = admin(port0, "GET", "/admin/subscriptions/999")
is_(st, 404, "an unknown subscription: 404")
st, _, _ = request(port0, "GET", "/admin/subscriptions")
is_(st, 401, "without the admin token: 401")
is_(p0.stop(), 0, "that qbcdc stops")

# ---- the rest with loopback receivers allowed and a short schedule
port = free_port()
sim = Sim(args=["--webhook-url", "http://127.0.0.1:%d/webhooks/intuit" % port], realms=2, entities=10)
env = serve_env(port, tmpdir("qbcdc-push-feat-"), sim)
env.update({"QBCDC_DELIVERY_ALLOW_PRIVATE": "1", "QBCDC_CDC_INTERVAL": "3600", "QBCDC_DELIVERY_SCHEDULE": "0,1,1"})
data = env["QBCDC_DATA_DIR"]
q = Proc([QBCDC, "serve"], env=env)
ok(wait_http(port), "qbcdc serve is up", q.output())

all_rcv, filt_rcv, pause_rcv = Receiver(), Receiver(), Receiver()
fail_state = {"code": 500}
dead_rcv = Receiver(lambda r: ("status", fail_state["code"], 0))
gone_rcv = Receiver(lambda r: ("status", 410, 0))
ra_hits = []
ra_rcv = Receiver(lambda r: (ra_hits.append(time.time()) or ("status", 429, 0, {"Retry-After": "3"}))
                  if len(ra_hits) == 0 else ("status", 200, 0))
given = "whsec_" + "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"  # base64 of "secretsecretsecretsecret"
s_all = create(port, {"url": all_rcv.url(), "start_after": 0, "secret": given, "batch_max": 50})
ok(s_all.get("secret") == given, "a given secret is kept (and answered once)")
s_filt = create(port, {"url": filt_rcv.url(), "start_after": 0, "entities": ["invoice", "Customer"],
                       "ops": ["update", "delete"], "batch_max": 4})
is_(s_filt["entities"], ["Invoice", "Customer"], "entity names are made canonical")
s_pause = create(port, {"url": pause_rcv.url(), "start_after": 0})
s_dead = create(port, {"url": dead_rcv.url(), "start_after": 0, "batch_max": 1000})
s_gone = create(port, {"url": gone_rcv.url(), "start_after": 0})
s_ra = create(port, {"url": ra_rcv.url(), "start_after": 0})

is_(register_realms(port, sim), 2, "two realms registered")
sim.json("POST", "/sim/mutate?n=80&per_hook=4")
ok(not wait_drained(sim, data, timeout=60), "every change fetched")
changes = feed_changes(port)
head = max(changes)
ok(wait_for(lambda: sub_state(port, s_all["id"])["cursor"] == head, 30), "the plain subscription reaches the head")
is_(all_rcv.acked_seqs(), sorted(changes), "and got every change in order")
r0 = all_rcv.snapshot()[0]
is_(r0["sig"], sign(given, r0["id"], r0["ts"], r0["body"]), "signed with the given secret")

# filters
ok(wait_for(lambda: sub_state(port, s_filt["id"])["cursor"] == head, 30),
   "the filtered subscription's cursor reaches the head too (past what it filtered out)")
want = [s for s, c in sorted(changes.items()) if c["entity"] in ("Invoice", "Customer") and c["op"] in
        ("update", "delete")]
got = filt_rcv.acked_seqs()
ok(len(want) > 0 and got == want, "it got exactly the Invoice and Customer updates and deletes, in order (%d of %d)"
   % (len(got), len(changes)), "got %s\nwant %s" % (got[:20], want[:20]))

# a 410 disables at once
g = wait_for(lambda: (lambda s: s if s["state"] == "disabled" else None)(sub_state(port, s_gone["id"])), 10)
ok(g and "410" in g["disabled_reason"] and len(gone_rcv.snapshot()) == 1 and g["cursor"] == 0,
   "a 410 disables the subscription at once, with the reason, its cursor kept", g)

# the horizon: 3 attempts (0,1,1 s), then disabled with the reason
d = wait_for(lambda: (lambda s: s if s["state"] == "disabled" else None)(sub_state(port, s_dead["id"])), 15)
ok(d and "gave up after 3 attempts" in d["disabled_reason"] and "HTTP 500" in d["disabled_reason"],
   "after the schedule (0,1,1) the subscription is disabled, saying why", d)
dr = dead_rcv.snapshot()
ok(len(dr) == 3 and len({x["id"] for x in dr}) == 1, "3 attempts of one delivery (one webhook-id), no more")
ok(len(dr) == 3 and 0.8 < dr[1]["at"] - dr[0]["at"] < 1.5 and 0.8 < dr[2]["at"] - dr[1]["at"] < 1.5,
   "about a second apart, as scheduled", [x["at"] for x in dr])
ok(d and d["cursor"] == 0 and d["lag"]["sequences"] == head, "its cursor stayed where it was: nothing skipped", d)
ok(metric(port, "qbcdc_delivery_disabled_total") == 2.0, "qbcdc_delivery_disabled_total counts both")
time.sleep(1.5)
is_(len(dead_rcv.snapshot()), 3, "a disabled subscription is not tried again")

# Retry-After
ok(wait_for(lambda: sub_state(port, s_ra["id"])["cursor"] == head, 20), "after a 429 it delivers the rest")
rr = ra_rcv.snapshot()
ok(len(rr) >= 2 and rr[1]["at"] - rr[0]["at"] >= 2.9 and rr[1]["id"] == rr[0]["id"],
   "a 429's Retry-After: 3 is honoured (the retry came %.1f s later, same webhook-id; the schedule said 1 s)"
   % (rr[1]["at"] - rr[0]["at"] if len(rr) > 1 else -1))

# pause
st, j = admin(port, "POST", "/admin/subscriptions/%s/pause" % s_pause["id"])
ok(st == 200 and j["state"] == "paused" and j["paused"] is True, "POST .../pause: paused", j)
n_paused = len(pause_rcv.snapshot())
sim.json("POST", "/sim/mutate?n=20&per_hook=4")
ok(not wait_drained(sim, data, timeout=60), "more changes fetched")
changes = feed_changes(port)
head = max(changes)
ok(wait_for(lambda: sub_state(port, s_all["id"])["cursor"] == head, 30), "others keep delivering")
p = sub_state(port, s_pause["id"])
ok(len(pause_rcv.snapshot()) == n_paused and p["lag"]["sequences"] > 0, "a paused subscription gets nothing; its "
   "lag grows (%d)" % p["lag"]["sequences"])
time.sleep(1)
p = sub_state(port, s_pause["id"])
ok(p["lag"]["seconds"] >= 1.0, "its lag in seconds: how long ago the oldest change it has not had was committed "
   "(%.2f s)" % p["lag"]["seconds"])
ok(metric(port, 'qbcdc_delivery_lag_seconds{subscription="%s"}' % s_pause["id"]) >= 1.0 and
   metric(port, 'qbcdc_delivery_lag_sequences{subscription="%s"}' % s_pause["id"]) == p["lag"]["sequences"],
   "/metrics has both lags per subscription")
is_(metric(port, 'qbcdc_delivery_subscriptions{state="paused"}'), 1.0, "qbcdc_delivery_subscriptions counts it paused")

# restart: everything is in the store
n_all = len(all_rcv.snapshot())
is_(q.stop(), 0, "qbcdc stops")
q = Proc([QBCDC, "serve"], env=env)
ok(wait_http(port), "and starts again")
time.sleep(1)
is_(len(all_rcv.snapshot()), n_all, "a clean stop committed every cursor: nothing is delivered again after it")
st, lst = admin(port, "GET", "/admin/subscriptions")
by = {x["id"]: x for x in lst["subscriptions"]}
ok(by[s_pause["id"]]["state"] == "paused" and by[s_dead["id"]]["state"] == "disabled" and
   "gave up" in by[s_dead["id"]]["disabled_reason"] and by[s_all["id"]]["cursor"] == head,
   "after a restart: still paused, still disabled with its reason, cursors kept", lst)
ok(by[s_filt["id"]]["entities"] == ["Invoice", "Customer"] and by[s_filt["id"]]["batch_max"] == 4,
   "settings kept")

st, j = admin(port, "POST", "/admin/subscriptions/%s/resume" % s_pause["id"])
ok(st == 200 and j["state"] == "active", "POST .../resume", j)
ok(wait_for(lambda: sub_state(port, s_pause["id"])["cursor"] == head, 30), "resumed, it catches up")
is_(pause_rcv.acked_seqs(), sorted(changes), "with every change, in order, none lost while paused")

# the disabled one, its receiver fixed, resumed: from its cursor
fail_state["code"] = 200
st, j = admin(port, "POST", "/admin/subscriptions/%s/resume" % s_dead["id"])
ok(st == 200 and j["state"] == "active" and j["disabled_reason"] is None, "a disabled subscription resumed", j)
ok(wait_for(lambda: sub_state(port, s_dead["id"])["cursor"] == head, 30), "goes on from its cursor to the head")
is_(dead_rcv.acked_seqs(), sorted(changes), "and its receiver has everything, in order")

# replay from a sequence, redeliver, replay from a time
n0 = len(all_rcv.acked())
st, j = admin(port, "PATCH", "/admin/subscriptions/%s" % s_all["id"], json.dumps({"start_after": head - 10}))
ok(st == 200 and j["cursor"] == head - 10, "PATCH start_after moves the cursor back", j)
ok(wait_for(lambda: sub_state(port, s_all["id"])["cursor"] == head, 20), "and it delivers up to the head again")
again = [c["seq"] for r in all_rcv.acked()[n0:] for c in json.loads(r["body"])["data"]["changes"]]
is_(again, list(range(head - 9, head + 1)), "the last 10 changes came again, in order")
n0 = len(all_rcv.acked())
st, j = admin(port, "POST", "/admin/subscriptions/%s/redeliver" % s_all["id"], json.dumps({"from": 3}))
ok(st == 200 and j["cursor"] == 2, "POST .../redeliver {from: 3}", j)
ok(wait_for(lambda: sub_state(port, s_all["id"])["cursor"] == head, 20), "delivered up to the head again")
again = [c["seq"] for r in all_rcv.acked()[n0:] for c in json.loads(r["body"])["data"]["changes"]]
is_(again, list(range(3, head + 1)), "from sequence 3 on")
st, j = admin(port, "PATCH", "/admin/subscriptions/%s" % s_all["id"], json.dumps({"start_after": "2020-01-01T00:00:00Z"}))
ok(st == 200 and j["cursor"] == 0, "start_after as a time before the feed: from the start", j)
st, j = admin(port, "PATCH", "/admin/subscriptions/%s" % s_all["id"], json.dumps({"start_after": "yesterday"}))
is_(st, 400, "start_after that is neither a sequence, head nor a time: 400")
st, j = admin(port, "PATCH", "/admin/subscriptions/%s" % s_all["id"], json.dumps({"start_after": head + 5}))
ok(st == 400 and "past the feed's head" in j.get("message", ""), "start_after past the head (it would skip changes "
   "to come): 400", j)
ok(wait_for(lambda: sub_state(port, s_all["id"])["cursor"] == head, 20), "(back at the head)")
n0 = len(all_rcv.acked())
st, j = admin(port, "POST", "/admin/subscriptions/%s/redeliver" % s_all["id"], json.dumps({"from": 5, "to": 8}))
ok(st == 200 and j["cursor"] == 4 and j["redelivering"] == {"to": 8, "resume_after": head},
   "POST .../redeliver {from: 5, to: 8}: a range", j)
ok(wait_for(lambda: sub_state(port, s_all["id"])["cursor"] == head, 20), "then back at the head")
time.sleep(0.5)
again = [c["seq"] for r in all_rcv.acked()[n0:] for c in json.loads(r["body"])["data"]["changes"]]
is_(again, [5, 6, 7, 8], "exactly sequences 5-8 came again, nothing after them")
st, j = admin(port, "POST", "/admin/subscriptions/%s/redeliver" % s_all["id"], json.dumps({"from": head + 2}))
ok(st == 400 and "at most" in j.get("message", ""), "a redeliver past the cursor would skip changes: 400", j)
st, j = admin(port, "POST", "/admin/subscriptions/%s/redeliver" % s_all["id"], json.dumps({"from": 5, "to": 4}))
is_(st, 400, "to before from: 400")

# delete
st, j = admin(port, "DELETE", "/admin/subscriptions/%s" % s_filt["id"])
ok(st == 200 and j.get("deleted") is True, "DELETE", j)
is_(admin(port, "GET", "/admin/subscriptions/%s" % s_filt["id"])[0], 404, "then it is gone")
is_(admin(port, "DELETE", "/admin/subscriptions/%s" % s_filt["id"])[0], 404, "a second DELETE: 404")
n_f = len(filt_rcv.snapshot())
sim.json("POST", "/sim/mutate?n=10&per_hook=2")
wait_drained(sim, data, timeout=60)
head = max(feed_changes(port))
wait_for(lambda: sub_state(port, s_all["id"])["cursor"] == head, 20)
is_(len(filt_rcv.snapshot()), n_f, "a deleted subscription's receiver gets nothing more")

# the answers and the delivery body against docs/openapi.json
_, doc = oc.load_doc()
AUTH = {"Authorization": "Bearer " + ADMIN, "Content-Type": "application/json"}
calls = [("POST", "/admin/subscriptions", {"url": all_rcv.url("/x"), "entities": ["Bill"]}, 201),
         ("POST", "/admin/subscriptions", {"url": "ftp://x/"}, 400),
         ("GET", "/admin/subscriptions", None, 200),
         ("GET", "/admin/subscriptions/%s" % s_all["id"], None, 200),
         ("GET", "/admin/subscriptions/4242", None, 404),
         ("PATCH", "/admin/subscriptions/%s" % s_all["id"], {"batch_max": 20}, 200),
         ("PATCH", "/admin/subscriptions/%s" % s_all["id"], {"rotate_secret": True}, 200),
         ("PATCH", "/admin/subscriptions/%s" % s_all["id"], {"batch_max": "x"}, 400),
         ("POST", "/admin/subscriptions/%s/pause" % s_all["id"], None, 200),
         ("POST", "/admin/subscriptions/%s/resume" % s_all["id"], None, 200),
         ("POST", "/admin/subscriptions/%s/redeliver" % s_all["id"], {"from": 0}, 400),
         ("DELETE", "/admin/subscriptions/%s" % s_pause["id"], None, 200)]
for m, path, body, want in calls:
    st, h, b = request(port, m, path, json.dumps(body) if body is not None else None, AUTH)
    probs = oc.check_answer(doc, m, path, st, h, b)
    ok(st == want and not probs, "%s %s answers %d as documented" % (m, path, want), "%d %s %s" % (st, probs, b[:300]))
probs = oc.schema_errors(doc, oc.component(doc, "DeliveryPayload"), json.loads(all_rcv.snapshot()[-1]["body"]))
ok(not probs, "a delivery's body validates against DeliveryPayload", probs)
is_(q.stop(), 0, "qbcdc stops")
for r in (all_rcv, filt_rcv, pause_rcv, dead_rcv, gone_rcv, ra_rcv):
    r.close()
sim.stop()
done_testing()
