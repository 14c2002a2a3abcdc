#!/usr/bin/env python3
"""Backfill jobs, end to end against qbosim.

1. POST /admin/realms/{realm}/backfill pages through the query API (1,000 a page) and
   brings in every entity of the realm; GET /admin/jobs/{id} reports the progress.
2. kill -9 in the middle of a job; after a restart the job resumes from its checkpoint
   and finishes; the feed holds every version once.
3. DELETE /admin/jobs/{id} cancels a running job (POST /admin/jobs/{id}/cancel too).
   Rows deleted under a running job's pages make it skip none of the rows that stay.
4. A realm whose CDC watermark is older than the lookback (shortened to 4 s here with
   QBCDC_CDC_LOOKBACK; QBO's is 30 days) gets a backfill automatically.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403
from simlib import ADMIN, admin, Sim, compare_to_truth, flat_truth, qbcdc_lines, register_realms, serve_env, sim_calls, wait_job, SIM_ENTITIES as ENTITIES

PER_TYPE = 12500  # 8 entity types: 100,000 entities, the size issue 5 names


sim = Sim(realms=2, entities=PER_TYPE)
realms = sorted(sim.realms())
data_dir = tmpdir("qbcdc-bf-")
qport = free_port()
env = serve_env(qport, data_dir, sim)
# operator backfills of 100,000 entities are timed and counted here: no snapshot pulling the same
# companies first (a snapshot is the same machinery: test_snapshot.py)
env.update({"QBCDC_CDC_INTERVAL": "300", "QBCDC_CDC_ENTITIES": ENTITIES, "QBCDC_SNAPSHOT_ON_CONNECT": "0"})
q = Proc([QBCDC, "serve"], env=env)
ok(wait_http(qport), "qbcdc serve is up", q.output())
is_(register_realms(qport, sim), len(realms), "realms registered")
truth = flat_truth(sim.json("GET", "/sim/truth")[1])
total_live = len([k for k in truth if k[0] == realms[0] and truth[k] is not None])

# ---- bad requests
st, j = admin(qport, "POST", "/admin/realms/%s/backfill" % realms[0], '{"entities":["In voice"]}')
is_(st, 400, "a bad entity name: 400")
st, j = admin(qport, "POST", "/admin/realms/%s/backfill" % realms[0], '{"since":"yesterday"}')
is_(st, 400, "a bad since: 400")
st, j = admin(qport, "POST", "/admin/realms/nosuch/backfill", "{}")
is_(st, 404, "an unknown realm: 404")
st, j = admin(qport, "GET", "/admin/jobs/999")
is_(st, 404, "an unknown job: 404")

# ---- 1 + 2. a whole realm, killed in the middle, resumed
sim.json("POST", "/sim/faults", json.dumps({"latency_ms": 150}))  # pages take a while: room to kill mid-job
t0 = time.time()
st, j = admin(qport, "POST", "/admin/realms/%s/backfill" % realms[0], "")
is_(st, 202, "POST /admin/realms/{realm}/backfill answers 202")
job = j.get("job") if isinstance(j, dict) else None
ok(isinstance(job, str) and job.isdigit(), "with a job id", j)
mid = wait_job(qport, job, ("running",), 20)
deadline = time.time() + 20
while time.time() < deadline and (mid or {}).get("entities_done", 0) < 3:
    time.sleep(0.1)
    mid = admin(qport, "GET", "/admin/jobs/%s" % job)[1]
ok(mid and mid.get("status") == "running" and mid.get("entities_done", 0) >= 3, "running, several entities done", mid)
ok(mid.get("current_entity") in ENTITIES.split(",") and mid.get("records_seen", 0) > 0 and mid.get("started_at"),
   "progress: current entity, records seen, start time", mid)
q.kill9()
diag("killed qbcdc at %s/%s entities, %s records" % (mid.get("entities_done"), mid.get("entities_total"),
                                                   mid.get("records_seen")))
q = Proc([QBCDC, "serve"], env=env)
ok(wait_http(qport), "qbcdc restarts", q.output())
done = wait_job(qport, job, ("done", "failed", "cancelled"), 60)
is_((done or {}).get("status"), "done", "the job resumed and finished")
elapsed = time.time() - t0
ok(done.get("entities_done") == 8 and done.get("entities_total") == 8 and done.get("finished_at"),
   "all 8 entities done", done)
ok(done.get("records_seen", 0) >= total_live, "records seen >= the realm's %d entities" % total_live, done)
wrong, missing, dups, feed, changed = compare_to_truth(truth, {}, data_dir)
mine = [k for k in changed if k[0] == realms[0]]
is_(wrong[:5], [], "every stored entity equals the truth")
is_([k for k in missing if k[0] == realms[0]][:5], [], "every entity of the realm is stored (%d)" % len(mine))
is_(dups[:5], [], "no duplicate versions in the feed after kill -9 (%d records)" % len(feed))
ok(len(feed) >= total_live and all(r["source"] == "backfill" for r in feed),
   "their source is backfill (%d records)" % len(feed))
is_(done.get("versions_new"), len(feed), "versions_new counts exactly the feed records")
st, stats = sim_calls(sim)
diag("backfill of %d entities: %.1f s including the restart, %d API calls, %d throttled"
     % (len(mine), elapsed, st, stats.get("throttled", 0)))
is_(stats.get("throttled", 0), 0, "within the rate limit (no 429)")

st, j = admin(qport, "POST", "/admin/jobs/%s/cancel" % job)
ok(st == 200 and j.get("status") == "done", "cancelling a finished job leaves it done", j)

# ---- 3. cancel
st, j = admin(qport, "POST", "/admin/realms/%s/backfill" % realms[1],
              json.dumps({"entities": ["Invoice", "Customer"], "since": "2000-01-01T00:00:00Z"}))
is_(st, 202, "a second backfill, with entities and since")
job2 = j["job"]
ok(int(job2) > int(job), "job ids increase")
wait_job(qport, job2, ("running",), 20)
st, j = admin(qport, "DELETE", "/admin/jobs/%s" % job2)
ok(st == 200 and j.get("status") == "cancelled", "DELETE /admin/jobs/{id} cancels it", j)
time.sleep(1.0)
a = admin(qport, "GET", "/admin/jobs/%s" % job2)[1]
time.sleep(1.0)
b = admin(qport, "GET", "/admin/jobs/%s" % job2)[1]
ok(a["status"] == "cancelled" and a["records_seen"] == b["records_seen"] and a.get("finished_at"),
   "it stays cancelled and reads no more", b)
st, j = admin(qport, "GET", "/admin/jobs")
ok(st == 200 and [x["job"] for x in j["jobs"]] == [job, job2], "GET /admin/jobs lists both", j)
# ---- 3b. rows deleted under the pages: none of the rows that stayed is skipped
before = flat_truth(sim.json("GET", "/sim/truth")[1])
st, j = admin(qport, "POST", "/admin/realms/%s/backfill" % realms[1], json.dumps({"entities": ["Invoice"]}))
is_(st, 202, "a backfill of one entity")
job3 = j["job"]
deadline = time.time() + 30
mid = {}
while time.time() < deadline and mid.get("start_position", 0) < 4000 and mid.get("status") != "done":
    time.sleep(0.05)
    mid = admin(qport, "GET", "/admin/jobs/%s" % job3)[1]
ok(mid.get("status") == "running", "running, at position %s" % mid.get("start_position"), mid)
# thousands of changes, their webhooks lost: ~18% of the Invoice ones delete a row, many before the position
st, _ = sim.json("POST", "/sim/mutate?n=6000&realm=%s&loss=1" % realms[1])
after = flat_truth(sim.json("GET", "/sim/truth")[1])
done3 = wait_job(qport, job3, ("done", "failed"), 60)
is_(done3.get("status"), "done", "it finished")
stayed = {k: v for k, v in before.items()
          if k[0] == realms[1] and k[1] == "Invoice" and v is not None and after.get(k) == v}
deleted = [k for k, v in after.items() if k[0] == realms[1] and k[1] == "Invoice" and v is None and before.get(k)]
ents = {(e["realm"], e["entity"], e["id"]): e.get("version") for e in
        qbcdc_lines("entities", "--data-dir", data_dir, "--realm", realms[1])}
skipped = [k for k, v in stayed.items() if ents.get(k) != v]
diag("%d Invoices deleted while the job ran; %d rereads; %d unchanged rows checked"
     % (len(deleted), done3.get("rereads", -1), len(stayed)))
ok(len(deleted) > 20, "rows were deleted during the job (%d)" % len(deleted))
# without a reread the rows never moved under a page it had yet to read, and the check below proves nothing
ok(done3.get("rereads", 0) >= 1, "rows moved under its pages and it read them again (%s rereads)"
   % done3.get("rereads"), done3)
is_(skipped[:5], [], "every row that stayed unchanged was read (%d skipped)" % len(skipped))

sim.json("POST", "/sim/faults", json.dumps({"latency_ms": 0}))
is_(q.stop(), 0, "qbcdc stops cleanly")

# ---- 4. idle longer than CDC's lookback: a backfill starts by itself
env2 = dict(env)
env2.update({"QBCDC_CDC_INTERVAL": "1", "QBCDC_CDC_LOOKBACK": "4"})
q = Proc([QBCDC, "serve"], env=env2)
ok(wait_http(qport), "qbcdc restarts with a 4 s lookback")
auto = None
deadline = time.time() + 20
while time.time() < deadline and auto is None:
    st, j = admin(qport, "GET", "/admin/jobs")
    auto = next((x for x in j["jobs"] if x["reason"] == "cdc_too_old"), None)
    time.sleep(0.3)
ok(auto is not None, "a realm idle longer than the lookback got a backfill job by itself", j)
if auto:
    done = wait_job(qport, auto["job"], ("done", "failed"), 40)
    is_(done.get("status"), "done", "and it finished")
    ok(done.get("since") is not None, "it reads from the old watermark on (since %s)" % done.get("since"))
deadline = time.time() + 40
while time.time() < deadline:
    st, j = admin(qport, "GET", "/admin/jobs")
    if all(x["status"] != "running" and x["status"] != "queued" for x in j["jobs"]):
        break
    time.sleep(0.3)
autos = [x for x in j["jobs"] if x["reason"] == "cdc_too_old"]
ok(len(autos) == len(realms) and all(x["status"] == "done" for x in autos),
   "every realm idle past the lookback was backfilled (%d jobs)" % len(autos), j)
st, j = admin(qport, "GET", "/admin/realms")
ok(len(j["realms"]) == len(realms) and all(r.get("cdc_watermark") for r in j["realms"]),
   "CDC goes on from a fresh watermark", j)
ok(len(j["realms"]) == len(realms) and all(r.get("complete_until") and r.get("catchup_job") is None
                                           for r in j["realms"]),
   "once the backfills are done, the feed is complete until the watermark again", j)
st, _, m = request(qport, "GET", "/metrics")
ok(b"qbcdc_backfill_requests_total" in m and b"qbcdc_cdc_sweeps_total" in m, "CDC and backfill counters in /metrics")
is_(q.stop(), 0, "qbcdc stops cleanly")
sim.stop()
done_testing()
