#!/usr/bin/env python3
"""CDC fallback, end to end: qbosim loses webhooks, `qbcdc serve` catches up through /cdc.

1. 20% of webhooks lost: after a CDC interval (2 s here) every entity equals qbosim's
   truth, deletes included, and the feed holds each version once.
2. Every webhook of 2,500 changes in one company lost, then POST /admin/realms/{realm}/cdc:
   the window holds more than the 1,000 objects one CDC answer can carry, so the sweep
   splits it (per entity, then by time); it still converges.
3. /admin/realms shows the completeness watermark; it only moves forward.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403
from simlib import ADMIN, admin, Sim, compare_to_truth, flat_truth, register_realms, serve_env, sim_calls, SIM_ENTITIES as ENTITIES


def converge(sim, truth0, data_dir, timeout):
    """waits until qbcdc's entities equal the truth; returns the last comparison"""
    deadline = time.time() + timeout
    while True:
        truth = flat_truth(sim.json("GET", "/sim/truth")[1])
        res = compare_to_truth(truth, truth0, data_dir)
        if (not res[0] and not res[1]) or time.time() > deadline:
            return res
        time.sleep(0.5)


qport = free_port()
sim = Sim(args=["--webhook-url", "http://127.0.0.1:%d/webhooks/intuit" % qport, "--retry-scale", "0.001"],
          realms=3, entities=30)
data_dir = tmpdir("qbcdc-cdc-")
env = serve_env(qport, data_dir, sim)
env.update({"QBCDC_CDC_INTERVAL": "2", "QBCDC_CDC_ENTITIES": ENTITIES})
q = Proc([QBCDC, "serve"], env=env)
ok(wait_http(qport), "qbcdc serve is up", q.output())
realms = sorted(sim.realms())
is_(register_realms(qport, sim), len(realms), "every realm registered")
truth0 = flat_truth(sim.json("GET", "/sim/truth")[1])

# ---- 1. 20% of the webhooks lost
t0 = time.time()
st, j = sim.json("POST", "/sim/mutate?n=600&per_hook=2&loss=0.2")
ok(st == 200 and j.get("changes") == 600, "qbosim made 600 changes, losing 20% of their webhooks", j)
_, stats = sim_calls(sim)
lost = stats.get("webhooks", {}).get("lost", 0)
ok(lost > 0, "some webhooks were lost (%d)" % lost)
wrong, missing, dups, feed, changed = converge(sim, truth0, data_dir, 30)
elapsed = time.time() - t0
is_(wrong[:5], [], "every stored entity equals the truth (%d changed, deletes included)" % len(changed))
is_(missing[:5], [], "every changed entity is stored")
is_(dups[:5], [], "the feed holds each version once (%d records)" % len(feed))
deletes = [k for k in changed if flat_truth(sim.json("GET", "/sim/truth")[1]).get(k) is None]
ok(len(deletes) > 0, "the changes included deletes (%d)" % len(deletes))
by_source = {}
for rec in feed:
    by_source[rec["source"]] = by_source.get(rec["source"], 0) + 1
ok(by_source.get("cdc", 0) > 0, "CDC found what the lost webhooks did not say", by_source)
diag("converged in %.1f s; feed by source: %s" % (elapsed, by_source))

# (live fetches through CDC may have found the lost changes before the first sweep ran: wait for it)
deadline = time.time() + 15
while True:
    st, j = admin(qport, "GET", "/admin/realms")
    marks = {r["realm"]: r for r in j["realms"]}
    done = all(marks[r].get("cdc_watermark") and marks[r].get("last_cdc") for r in realms)
    if done or time.time() > deadline:
        break
    time.sleep(0.25)
ok(done, "every realm shows a CDC watermark and its last poll", marks)

# ---- 2. a window of more than 1,000 changes in one realm, every webhook lost
big = realms[0]
time.sleep(2.5)  # let the periodic sweep catch up, then compare from here
truth1 = flat_truth(sim.json("GET", "/sim/truth")[1])
calls_cdc0 = sim_calls(sim)[1]["realms"][big]["requests"].get("cdc", 0)
st, j = sim.json("POST", "/sim/mutate?n=2500&realm=%s&per_hook=5&loss=1" % big)
ok(st == 200 and j.get("changes") == 2500, "2500 changes in realm %s, no webhook delivered" % big, j)
st, j = admin(qport, "POST", "/admin/realms/%s/cdc" % big)
is_(st, 202, "POST /admin/realms/{realm}/cdc answers 202")
ok(j and j.get("status") == "scheduled" and j.get("realm") == big, "and says it is scheduled", j)
t0 = time.time()
wrong, missing, dups, feed, changed = converge(sim, truth1, data_dir, 45)
is_(wrong[:5], [], "after a window of > 1,000 changes every entity equals the truth (%d changed)" % len(changed))
is_(missing[:5], [], "every changed entity is stored")
is_(dups[:5], [], "the feed holds each version once (%d records)" % len(feed))
calls_cdc = sim_calls(sim)[1]["realms"][big]["requests"].get("cdc", 0) - calls_cdc0
ok(calls_cdc >= 3, "the window was split (%d CDC calls)" % calls_cdc)
diag("converged in %.1f s with %d CDC calls" % (time.time() - t0, calls_cdc))

st, j = admin(qport, "POST", "/admin/realms/nosuchrealm/cdc")
is_(st, 404, "CDC of an unknown realm: 404")
st, j = admin(qport, "GET", "/admin/realms/%s/cdc" % big)
is_(st, 405, "GET on the CDC endpoint: 405")

# the same actions from the command line, against the running service
import subprocess  # noqa: E402
cli_env = dict(os.environ, QBCDC_LISTEN="127.0.0.1:%d" % qport, QBCDC_ADMIN_TOKEN=ADMIN)
r = subprocess.run([QBCDC, "cdc", big], capture_output=True, env=cli_env, timeout=30)
ok(r.returncode == 0 and json.loads(r.stdout).get("status") == "scheduled", "qbcdc cdc REALM schedules a sweep",
   r.stdout + r.stderr)
r = subprocess.run([QBCDC, "jobs"], capture_output=True, env=cli_env, timeout=30)
# the realms' snapshots (issue 9) are the only jobs: this test keeps them on, so CDC and webhooks are
# checked converging while the snapshots read the companies
ok(r.returncode == 0 and len(json.loads(r.stdout)["jobs"]) == 3 and
   all(j["reason"] == "snapshot" and j["status"] == "done" for j in json.loads(r.stdout)["jobs"]),
   "qbcdc jobs lists the three realms' snapshots, done", r.stdout + r.stderr)
r = subprocess.run([QBCDC, "cancel", "999"], capture_output=True, env=cli_env, timeout=30)
is_(r.returncode, 1, "qbcdc cancel of an unknown job exits 1")
r = subprocess.run([QBCDC, "cdc"], capture_output=True, env=cli_env, timeout=30)
is_(r.returncode, 2, "qbcdc cdc without a realm is a usage error")
r = subprocess.run([QBCDC, "cdc", big], capture_output=True, env=dict(cli_env, QBCDC_ADMIN_TOKEN="wrong"), timeout=30)
is_(r.returncode, 1, "a wrong admin token: exit 1")

_, s = sim_calls(sim)
missing_mv = sum(r.get("minorversion_missing", 0) for r in s.get("realms", {}).values())
is_(missing_mv, 0, "minorversion on every call")
is_(s.get("throttled", 0), 0, "no request was throttled")
is_(q.stop(), 0, "qbcdc stops cleanly")
log = q.output()
ok("older than" not in log, "no CDC request was refused as too old")
sim.stop()
done_testing()
