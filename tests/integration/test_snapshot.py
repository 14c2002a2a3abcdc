#!/usr/bin/env python3
"""The initial snapshot (issue 9), end to end against qbosim, with the default entity list.

1. Registering a realm qbcdc never held starts a snapshot job by itself (reason
   "snapshot"); the realm shows `snapshotting`, then `active`; every live entity of
   qbosim's truth reaches the feed with source snapshot and op snapshot; the 16 entities
   of the default list qbosim does not simulate are skipped (job "skipped", realm
   last_error), not fatal.
2. Registering the realm's tokens again starts no second snapshot; a restart neither.
3. A CDC sweep with the default list skips the refused entities, sweeps the rest, and
   its watermark advances; the next sweep no longer asks for the refused ones.
4. QBCDC_SNAPSHOT_ON_CONNECT=0 starts none.
5. Unknown entity names: 400 from the admin API, exit 2 from `qbcdc backfill` and from
   `qbcdc serve` with QBCDC_CDC_ENTITIES naming one.
"""
import json
import os
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403
from simlib import ADMIN, admin, Sim, flat_truth, qbcdc_lines, serve_env, SIM_ENTITIES

PER_TYPE = 400  # 8 simulated types: 3,200 entities per company
DEFAULT = ("Account,Bill,BillPayment,Budget,Class,CreditMemo,Customer,Department,Deposit,Employee,Estimate,Invoice,"
           "Item,JournalEntry,Payment,PaymentMethod,Purchase,PurchaseOrder,RefundReceipt,SalesReceipt,Term,Transfer,"
           "Vendor,VendorCredit").split(",")
REFUSED = sorted(set(DEFAULT) - set(SIM_ENTITIES.split(",")))


def put_tokens(port, realm, refresh):
    return admin(port, "PUT", "/admin/realms/%s/tokens" % realm, json.dumps({"refresh_token": refresh}))


def realm_view(port, realm):
    st, j = admin(port, "GET", "/admin/realms")
    for r in (j or {}).get("realms", []) if st == 200 else []:
        if r["realm"] == realm:
            return r
    return None


def jobs_of(port, realm):
    st, j = admin(port, "GET", "/admin/jobs")
    return [x for x in (j or {}).get("jobs", []) if x["realm"] == realm] if st == 200 else []


def cdc_calls(sim, realm):
    st, s = sim.json("GET", "/sim/stats")
    return s.get("realms", {}).get(realm, {}).get("requests", {}).get("cdc", 0)


sim = Sim(realms=2, entities=PER_TYPE)
realms = sorted(sim.realms())
r0, r1 = realms
truth = flat_truth(sim.json("GET", "/sim/truth")[1])
live0 = {(k[1], k[2]): v for k, v in truth.items() if k[0] == r0 and v is not None}

data_dir = tmpdir("qbcdc-snap-")
port = free_port()
env = serve_env(port, data_dir, sim)
del env["QBCDC_CDC_ENTITIES"]  # the default list of 24: qbosim refuses 16 of them
env.update({"QBCDC_CDC_INTERVAL": "300", "QBCDC_SNAPSHOT_ON_CONNECT": "1",
            "QBCDC_OAUTH_AUTHORIZE_URL": "http://127.0.0.1:%d/connect/oauth2" % sim.port,
            "QBCDC_OAUTH_REDIRECT_URI": "http://127.0.0.1:%d/oauth/callback" % port})
q = Proc([QBCDC, "serve"], env=env)
ok(wait_http(port), "qbcdc serve is up", q.output())

# ---- 1. the snapshot starts by itself
sim.json("POST", "/sim/faults", json.dumps({"latency_ms": 150}))  # long enough to watch it run
calls0 = sum(v.get("total", 0) for v in sim.json("GET", "/sim/stats")[1].get("realms", {}).values())
t0 = time.time()
st, j = put_tokens(port, r0, sim.realms()[r0]["refresh_token"])
is_(st, 200, "PUT tokens of a new realm: 200")
job = (j or {}).get("snapshot_job")
ok(isinstance(job, str) and job.isdigit(), "the answer names the snapshot job it started", j)
v = realm_view(port, r0)
is_((v or {}).get("status"), "snapshotting", "the realm shows snapshotting at once")
snap = (v or {}).get("snapshot") or {}
ok(snap.get("job") == job and snap.get("status") in ("queued", "running"), "with its snapshot job, queued or running",
   snap)
ok((v or {}).get("complete_until") is None, "complete_until is null while the snapshot runs", v)
st, jj = admin(port, "GET", "/admin/jobs/%s" % job)
ok(st == 200 and jj.get("reason") == "snapshot", "the job's reason is snapshot", jj)
mid = wait_for(lambda: (lambda x: x if x and x["snapshot"] and x["snapshot"]["status"] == "running" and
                        x["snapshot"]["records_seen"] > 0 else None)(realm_view(port, r0)), 20)
ok(mid and mid["status"] == "snapshotting" and mid["snapshot"]["entities_total"] == 24,
   "running: still snapshotting, 24 entities to read, progress counted", (mid or {}).get("snapshot"))
done = wait_for(lambda: (lambda x: x if x and x["snapshot"] and x["snapshot"]["status"] not in ("queued", "running")
                         else None)(realm_view(port, r0)), 60)
elapsed = time.time() - t0
calls = sum(v.get("total", 0) for v in sim.json("GET", "/sim/stats")[1].get("realms", {}).values()) - calls0
is_((done or {}).get("status"), "active", "then the realm shows active")
snap = (done or {}).get("snapshot") or {}
ok(snap.get("status") == "done" and snap.get("entities_done") == 24 and snap.get("entities_total") == 24 and
   snap.get("records_seen") == len(live0), "snapshot done: 24/24 entities, %d records seen" % len(live0), snap)
ok((done or {}).get("complete_until") is None and (done or {}).get("cdc_watermark") is None,
   "complete_until stays null until a CDC sweep confirms a time", done)
st, jj = admin(port, "GET", "/admin/jobs/%s" % job)
skipped = jj.get("skipped") or []
is_(sorted(s["entity"] for s in skipped), REFUSED, "the 16 entities qbosim refuses are listed as skipped")
ok(all(s.get("error") for s in skipped), "each with QBO's fault text", skipped[:1])
ok(jj.get("error") is None and jj.get("versions_new") == len(live0), "no error; every record was new", jj)
ok("skipped" in (done.get("last_error") or "") and "Estimate" in (done.get("last_error") or ""),
   "the realm's last_error says so", done.get("last_error"))
diag("snapshot of %d entities (8 types x %d, 16 more types refused): %d API calls, %.1f s with "
     "150 ms added latency" % (len(live0), PER_TYPE, calls, elapsed))

feed = [r for r in qbcdc_lines("feed", "--data-dir", data_dir, "--limit", "1000000") if r["realm"] == r0]
got = {(r["entity"], r["id"]): r for r in feed}
is_(len(feed), len(live0), "one feed record per live entity")
is_(sorted(k for k in live0 if k not in got)[:5], [], "every live entity of qbosim's truth is in the feed")
ok(all(got[k]["version"] == live0[k] for k in live0 if k in got), "at the truth's SyncToken")
bad = [r for r in feed if r["source"] != "snapshot" or r["op"] != "snapshot"]
is_(bad[:2], [], "all with source snapshot and op snapshot")

# ---- 2. no second snapshot
sim.json("POST", "/sim/faults", json.dumps({"latency_ms": 0}))
n_jobs = len(jobs_of(port, r0))
st, j = put_tokens(port, r0, sim.realms()[r0]["refresh_token"])
ok(st == 200 and "snapshot_job" not in (j or {}), "registering the realm's tokens again: 200, no snapshot job", j)
time.sleep(0.5)
is_(len(jobs_of(port, r0)), n_jobs, "no other job for the realm")
is_(realm_view(port, r0)["status"], "active", "the realm stays active")

# ---- 3. CDC with the default list: refused entities skipped, the watermark advances
st, m = sim.json("POST", "/sim/mutate?n=30&realm=%s&loss=1" % r0)  # every webhook lost: only CDC finds them
before = realm_view(port, r0)
c0 = cdc_calls(sim, r0)
time.sleep(1.1)  # CDC's changedSince has whole seconds at qbosim; keep the sweeps apart
st, _ = admin(port, "POST", "/admin/realms/%s/cdc" % r0)
is_(st, 202, "POST .../cdc: 202")
swept = wait_for(lambda: (lambda x: x if x and x.get("last_cdc") and x.get("last_cdc") != before.get("last_cdc")
                          else None)(realm_view(port, r0)), 30)
ok(swept is not None and swept.get("cdc_watermark"), "the sweep committed with a watermark", swept)
first_calls = cdc_calls(sim, r0) - c0
ok("CDC skips" in ((swept or {}).get("last_error") or "") and "Estimate" in ((swept or {}).get("last_error") or ""),
   "the realm's last_error names the entities CDC skips", (swept or {}).get("last_error"))
truth = flat_truth(sim.json("GET", "/sim/truth")[1])
ents = {(e["entity"], e["id"]): e for e in qbcdc_lines("entities", "--data-dir", data_dir, "--realm", r0)}
wrong = [k for k, t in truth.items() if k[0] == r0 and t is not None and ents.get((k[1], k[2]), {}).get("version") != t]
is_(wrong[:5], [], "the changes whose webhooks were lost are stored (found by the sweep)")
cdc_feed = [r for r in qbcdc_lines("feed", "--data-dir", data_dir, "--limit", "1000000")
            if r["realm"] == r0 and r["source"] == "cdc"]
ok(len(cdc_feed) > 0, "with source cdc (%d records)" % len(cdc_feed))
time.sleep(1.1)
c1 = cdc_calls(sim, r0)
st, _ = admin(port, "POST", "/admin/realms/%s/cdc" % r0)
swept2 = wait_for(lambda: (lambda x: x if x and x.get("last_cdc") != swept.get("last_cdc") else None)(
    realm_view(port, r0)), 30)
ok(swept2 is not None and swept2["cdc_watermark"] > swept["cdc_watermark"], "the next sweep advances the watermark",
   (swept2 or {}).get("cdc_watermark"))
is_(cdc_calls(sim, r0) - c1, 1, "and asks once, without the refused entities (the first sweep asked %d times)"
    % first_calls)

# ---- 1b. a company connected through the OAuth flow gets its snapshot too
st, hdrs, _ = request(port, "GET", "/connect?state_hint=second")
u = urllib.parse.urlparse(hdrs.get("location", ""))
st, hdrs, _ = sim.req("GET", u.path + "?" + u.query + "&realmId=" + r1)  # qbosim's consent screen, for r1
cb = urllib.parse.urlparse(hdrs.get("location", ""))
st, _, body = request(port, "GET", cb.path + "?" + cb.query)
ans = json.loads(body) if st == 200 else {}
ok(st == 200 and ans.get("realm") == r1 and str(ans.get("snapshot_job", "")).isdigit(),
   "the OAuth callback of a new company answers with its snapshot job", body)
live1 = len([k for k, v in flat_truth(sim.json("GET", "/sim/truth")[1]).items() if k[0] == r1 and v is not None])
done1 = wait_for(lambda: (lambda x: x if x and x["snapshot"] and x["snapshot"]["status"] == "done" else None)(
    realm_view(port, r1)), 60)
ok(done1 and done1["status"] == "active" and done1["snapshot"]["job"] == ans.get("snapshot_job") and
   done1["snapshot"]["records_seen"] == live1, "its snapshot finishes: %d records" % live1, (done1 or {}).get("snapshot"))

# ---- 5. unknown entities
st, j = admin(port, "POST", "/admin/realms/%s/backfill" % r0, '{"entities":["Invoice","Foo"]}')
is_(st, 400, "an unknown entity in a backfill request: 400")
ok(isinstance(j, dict) and j.get("error") == "bad_request" and
   j.get("message", "").startswith("unknown entity 'Foo' (known: ") and "Invoice" in j.get("message", ""),
   "bad_request naming it and the known ones", j)
st, j = admin(port, "POST", "/admin/realms/%s/backfill" % r0, '{"entities":["invoice"]}')
ok(st == 202, "a known name in another case is accepted (canonicalized)", j)
if st == 202:
    st, jj = admin(port, "GET", "/admin/jobs/%s" % j["job"])
    is_(jj.get("entities"), ["Invoice"], "as QBO spells it")
cli_env = dict(os.environ, QBCDC_LISTEN="127.0.0.1:%d" % port, QBCDC_ADMIN_TOKEN=ADMIN)
r = subprocess.run([QBCDC, "backfill", r0, "--entities", "Invoice,Foo"], capture_output=True, env=cli_env, timeout=30)
err = r.stderr.decode()
ok(r.returncode == 2 and err.count("\n") == 1 and "unknown entity 'Foo'" in err,
   "qbcdc backfill --entities Foo: exit 2, one line", (r.returncode, err))
bad_env = dict(env, QBCDC_LISTEN="127.0.0.1:%d" % free_port(), QBCDC_DATA_DIR=tmpdir("qbcdc-snap-bad-"),
               QBCDC_CDC_ENTITIES="Invoice,Widget")
r = subprocess.run([QBCDC, "serve"], capture_output=True, env=dict(os.environ, **bad_env), timeout=30)
err = r.stderr.decode()
ok(r.returncode == 2 and err.count("\n") == 1 and "QBCDC_CDC_ENTITIES" in err and "unknown entity 'Widget'" in err,
   "QBCDC_CDC_ENTITIES naming an unknown entity: exit 2, one line naming the variable", (r.returncode, err))

# ---- 2b. a restart starts no snapshot, and the job's record (skipped entities) survives
n_jobs = len(jobs_of(port, r0))
is_(q.stop(), 0, "qbcdc stops cleanly")
q = Proc([QBCDC, "serve"], env=env)
ok(wait_http(port), "qbcdc restarts", q.output())
time.sleep(0.5)
is_(len(jobs_of(port, r0)), n_jobs, "no new job after a restart")
st, jj = admin(port, "GET", "/admin/jobs/%s" % job)
is_(sorted(s["entity"] for s in jj.get("skipped") or []), REFUSED, "the skipped entities are kept in the job record")
q.stop()

# ---- 4. QBCDC_SNAPSHOT_ON_CONNECT=0
data2 = tmpdir("qbcdc-snap-off-")
port2 = free_port()
env2 = serve_env(port2, data2, sim)
env2["QBCDC_SNAPSHOT_ON_CONNECT"] = "0"
q2 = Proc([QBCDC, "serve"], env=env2)
ok(wait_http(port2), "qbcdc with QBCDC_SNAPSHOT_ON_CONNECT=0 is up", q2.output())
st, j = put_tokens(port2, r1, sim.realms()[r1]["refresh_token"])
ok(st == 200 and "snapshot_job" not in (j or {}), "a new realm registered: no snapshot job in the answer", j)
time.sleep(1.0)
is_(jobs_of(port2, r1), [], "and no job at all")
v = realm_view(port2, r1)
ok(v and v["status"] == "active" and v["snapshot"] is None, "the realm is active, snapshot null", v)
is_(qbcdc_lines("feed", "--data-dir", data2, "--limit", "10"), [], "the feed stays empty")
q2.stop()
done_testing()
