#!/usr/bin/env python3
"""qbosim: signed webhooks (qbo-facts §1) from /sim/mutate and from the schedule.

Classic and CloudEvents bodies, intuit-signature verifiable with the verifier token,
K changes per webhook, loss, duplication, retries on non-200, and agreement with
/sim/truth. Also the CDC cap (1000 objects shared across entities, §2).
"""
import datetime
import json
import time
import urllib.parse

from harness import diag, done_testing, is_, ok, sign
from simlib import VERIFIER, Receiver, Sim

# --- classic, on command ----------------------------------------------------------------------
rx = Receiver()
sim = Sim(realms=2, entities=10, args=["--webhook-url", rx.url])
realms = sorted(sim.realms())
st, j = sim.json("POST", "/sim/mutate?n=10&per_hook=3")
is_((st, j), (200, {"changes": 10}), "mutate n=10")
got = rx.bodies()
ok(len(got) >= 4, "webhooks delivered before mutate answered (%d)" % len(got))
sig_ok = all(h.get("intuit-signature") == sign(b, VERIFIER) for h, b in got)
ok(sig_ok, "every intuit-signature verifies with the verifier token")
ok(all(h.get("content-type", "").startswith("application/json") for h, _ in got), "classic Content-Type json")
total = 0
shape_ok = True
per_hook_ok = True
changes = []
for h, b in got:
    j = json.loads(b)
    notes = j.get("eventNotifications")
    if not isinstance(notes, list) or len(notes) != 1:
        shape_ok = False
        continue
    n = notes[0]
    ents = n["dataChangeEvent"]["entities"]
    per_hook_ok = per_hook_ok and 1 <= len(ents) <= 3
    for e in ents:
        total += 1
        changes.append((n["realmId"], e))
        if not (set(e) <= {"name", "id", "operation", "lastUpdated", "deletedId"} and isinstance(e["id"], str)
                and e["operation"] in ("Create", "Update", "Delete", "Merge", "Void")
                and e["name"] in ("Customer", "Vendor", "Item", "Account", "Invoice", "Payment", "Bill", "JournalEntry")):
            shape_ok = False
        if (e["operation"] == "Merge") != ("deletedId" in e):
            shape_ok = False
ok(shape_ok, "classic shape: one realm per body, entities name/id/operation/lastUpdated (§1.1)")
ok(per_hook_ok, "at most per_hook=3 changes per webhook")
is_(total, 10, "10 changes reported")
truth = sim.json("GET", "/sim/truth")[1]
consistent = True
for realm, e in changes:
    key = "%s/%s" % (e["name"], e["id"])
    t = truth[realm]
    if e["operation"] == "Delete":
        consistent = consistent and key in t["deleted"]
    elif e["operation"] == "Merge":
        consistent = consistent and ("%s/%s" % (e["name"], e["deletedId"])) in t["deleted"]
    else:
        consistent = consistent and (key in t["live"] or key in t["deleted"])
ok(consistent, "webhooks agree with /sim/truth")

# realm filter, loss
before = len(rx.bodies())
st, j = sim.json("POST", "/sim/mutate?n=6&realm=%s&loss=1" % realms[1])
is_((st, j), (200, {"changes": 6}), "loss=1 still makes the changes")
time.sleep(0.2)
is_(len(rx.bodies()), before, "but sends nothing")
st, s = sim.json("GET", "/sim/stats")
is_(s["webhooks"]["lost"], 6, "lost webhooks counted")
st, j = sim.json("POST", "/sim/mutate?n=4&realm=%s&per_hook=10" % realms[1])
b = rx.bodies()[-1][1]
j = json.loads(b)
ok(len(rx.bodies()) == before + 1 and j["eventNotifications"][0]["realmId"] == realms[1]
   and len(j["eventNotifications"][0]["dataChangeEvent"]["entities"]) == 4, "realm=R, 4 changes in one webhook")

# --- CloudEvents ------------------------------------------------------------------------------
before = len(rx.bodies())
st, j = sim.json("POST", "/sim/mutate?n=8&per_hook=4&format=cloudevents")
got = rx.bodies()[before:]
is_(len(got), 2, "two CloudEvents webhooks of 4")
ok(all(h.get("intuit-signature") == sign(b, VERIFIER) for h, b in got), "CloudEvents signatures verify")
ce_ok = True
for h, b in got:
    arr = json.loads(b)
    if not isinstance(arr, list) or len(arr) != 4:
        ce_ok = False
        continue
    for ev in arr:
        if set(ev) != {"specversion", "id", "source", "type", "datacontenttype", "time", "intuitentityid",
                       "intuitaccountid", "data"}:
            ce_ok = False
        if ev["specversion"] != "1.0" or ev["intuitaccountid"] not in realms or not ev["type"].startswith("qbo."):
            ce_ok = False
        if not ev["type"].endswith((".created.v1", ".updated.v1", ".deleted.v1", ".merged.v1", ".void.v1")):
            ce_ok = False
        if ev["type"].endswith(".merged.v1") and "deletedid" not in ev["data"]:
            ce_ok = False
        if not ev["time"].endswith("Z") or len(ev["time"].split(".")[1]) != 10:
            ce_ok = False
ok(ce_ok, "CloudEvents shape (§1.2): fields, type qbo.<entity>.<verb>.v1, ns time")
is_(sim.stop(), 0, "clean exit") or diag(sim.proc.output())

# --- retries, duplication, schedule -----------------------------------------------------------
rx2 = Receiver(status_fn=lambda n: 500 if n == 0 else 200)
sim = Sim(realms=1, entities=5, args=["--webhook-url", rx2.url, "--retry-scale", "0.001", "--format", "cloudevents",
                                      "--mutate-rate", "0"])
st, j = sim.json("POST", "/sim/mutate?n=1")
ok(rx2.wait(2, 5), "a 500 is retried")
got = rx2.bodies()
ok(len(got) >= 2 and got[0][1] == got[1][1], "the retry resends the identical body (same event ids)")
st, s = sim.json("GET", "/sim/stats")
ok(s["webhooks"]["retries"] >= 1 and s["webhooks"]["delivered"] >= 1 and s["webhooks"]["failed"] >= 1,
   "retries counted")
sim.json("POST", "/sim/faults", json.dumps({"dup": 1}))
before = len(rx2.bodies())
st, j = sim.json("POST", "/sim/mutate?n=3")
rx2.wait(before + 6, 5)
got = rx2.bodies()[before:]
is_(len(got), 6, "dup=1: every webhook twice")
bodies = sorted(b for _, b in got)
ok(all(bodies[i] == bodies[i + 1] for i in range(0, 6, 2)), "duplicates are identical")

# reordering and delay
sim.json("POST", "/sim/faults", json.dumps({"dup": 0, "reorder": 1}))
before = len(rx2.bodies())
st, j = sim.json("POST", "/sim/mutate?n=4")
times = [json.loads(b)[0]["time"] for _, b in rx2.bodies()[before:]]
is_(len(times), 4, "4 webhooks")
ok(times != sorted(times), "reorder=1: webhooks arrive out of order")
sim.json("POST", "/sim/faults", json.dumps({"reorder": 0, "delay_ms": 300}))
t0 = time.time()
st, j = sim.json("POST", "/sim/mutate?n=1")
ok(time.time() - t0 >= 0.29, "delay_ms holds webhooks back (%.2f s)" % (time.time() - t0))
is_(sim.stop(), 0, "clean exit") or diag(sim.proc.output())

rx3 = Receiver()
sim = Sim(realms=2, entities=5, args=["--webhook-url", rx3.url, "--mutate-rate", "50", "--batch-window-ms", "200",
                                      "--per-hook", "100"])
ok(rx3.wait(3, 5), "scheduled mutations post webhooks on their own")
time.sleep(0.3)
got = rx3.bodies()
n = sum(len(json.loads(b)["eventNotifications"][0]["dataChangeEvent"]["entities"]) for _, b in got)
ok(n > len(got), "batch window groups changes (%d changes in %d webhooks)" % (n, len(got)))
is_(sim.stop(), 0, "clean exit") or diag(sim.proc.output())
rx.close()
rx2.close()
rx3.close()

# --- CDC cap ----------------------------------------------------------------------------------
sim = Sim(realms=1, entities=700, args=["--seed-days", "20"])
R = sorted(sim.realms())[0]
AT = sim.access(R)
since = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=25)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
st, j = sim.api("GET", R, "cdc?entities=Invoice,Bill,Customer&changedSince=" + urllib.parse.quote(since), AT)
groups = j["CDCResponse"][0]["QueryResponse"]
counts = [len(g.get(k, [])) for g, k in zip(groups, ("Invoice", "Bill", "Customer"))]
is_(sum(counts), 1000, "CDC capped at 1000 objects (%r)" % counts)
is_(counts[0], 700, "shared across entities in request order")
st, j = sim.api("GET", R, "cdc?entities=Customer&changedSince=" + urllib.parse.quote(since), AT)
is_(len(j["CDCResponse"][0]["QueryResponse"][0]["Customer"]), 700, "one entity at a time gets them all")
is_(sim.stop(), 0, "clean exit") or diag(sim.proc.output())
done_testing()
