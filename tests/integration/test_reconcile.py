#!/usr/bin/env python3
"""End to end: qbosim -> webhooks -> `qbcdc serve` (ingress, store, reconciler) -> entities and feed.

qbosim posts signed webhooks (classic, then CloudEvents; some duplicated, some reordered)
for changes across several companies whose access tokens expire every few seconds. At the
end every entity qbcdc stores equals qbosim's truth, every changed entity is there, the
feed holds each version once, no request was throttled, and the upstream calls per changed
entity are reported (from qbosim's own counters).
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403
from simlib import CLIENT_ID, CLIENT_SECRET, VERIFIER, Sim

ADMIN = "test-admin-token"


def cli(*args):
    r = subprocess.run([QBCDC] + list(args), capture_output=True, timeout=60)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def lines(*args):
    rc, out, err = cli(*args)
    if rc != 0:
        diag("qbcdc %s failed: %s" % (" ".join(args), err))
        return []
    return [json.loads(l) for l in out.splitlines() if l.strip()]


def flat_truth(t):
    """{(realm, Entity, id): SyncToken or None for deleted}"""
    out = {}
    for realm, v in t.items():
        for key, tok in v.get("live", {}).items():
            ent, _, i = key.partition("/")
            out[(realm, ent, i)] = tok
        for key in v.get("deleted", []):
            ent, _, i = key.partition("/")
            out[(realm, ent, i)] = None
    return out


def sim_calls(sim):
    st, s = sim.json("GET", "/sim/stats")
    total = sum(r.get("total", 0) for r in s.get("realms", {}).values())
    return total, s


qport = free_port()
sim = Sim(args=["--webhook-url", "http://127.0.0.1:%d/webhooks/intuit" % qport, "--access-ttl", "5",
                "--dup", "0.2", "--reorder", "0.2", "--retry-scale", "0.001"], realms=4, entities=30)
data_dir = tmpdir("qbcdc-rec-")
env = {"QBCDC_LISTEN": "127.0.0.1:%d" % qport, "QBCDC_DATA_DIR": data_dir, "QBCDC_SIM": "off",
       "QBCDC_WEBHOOK_VERIFIER_TOKENS": VERIFIER, "QBCDC_CLIENT_ID": CLIENT_ID, "QBCDC_CLIENT_SECRET": CLIENT_SECRET,
       "QBCDC_API_BASE": "http://127.0.0.1:%d" % sim.port,
       "QBCDC_OAUTH_TOKEN_URL": "http://127.0.0.1:%d/oauth2/v1/tokens/bearer" % sim.port,
       "QBCDC_ADMIN_TOKEN": ADMIN, "QBCDC_LOG_LEVEL": "warn"}
q = Proc([QBCDC, "serve"], env=env)
ok(wait_http(qport), "qbcdc serve is up", q.output())

realms = sim.realms()
n_ok = 0
for realm, v in realms.items():
    st, h, b = request(qport, "PUT", "/admin/realms/%s/tokens" % realm,
                       json.dumps({"refresh_token": v["refresh_token"]}),
                       {"Authorization": "Bearer " + ADMIN, "Content-Type": "application/json"})
    n_ok += 200 <= st < 300
is_(n_ok, len(realms), "every realm's refresh token registered")

truth0 = flat_truth(sim.json("GET", "/sim/truth")[1])
calls0, _ = sim_calls(sim)
t0 = time.time()
for fmt in ("classic", "cloudevents"):
    st, j = sim.json("POST", "/sim/mutate?n=600&per_hook=5&format=%s" % fmt)
    ok(st == 200 and j.get("changes") == 600, "qbosim made 600 changes (%s webhooks)" % fmt, j)
    time.sleep(6)  # let access tokens expire in between: refreshes happen under load

deadline = time.time() + 90
left = None
while time.time() < deadline:
    _, s = sim_calls(sim)
    left = lines("pending", "--data-dir", data_dir)
    if not left and s.get("webhooks", {}).get("pending", 0) == 0:
        break
    time.sleep(0.5)
ok(left == [], "every notice reconciled", "%d still pending" % len(left or []))
elapsed = time.time() - t0

truth = flat_truth(sim.json("GET", "/sim/truth")[1])
changed = {k for k, v in truth.items() if truth0.get(k, "absent") != v}
ents = {(e["realm"], e["entity"], e["id"]): e for e in lines("entities", "--data-dir", data_dir)}
wrong = []
for k, e in ents.items():
    want = truth.get(k, "absent")
    got = None if e.get("deleted") else e.get("version")
    if want != got:
        wrong.append((k, got, want))
is_(wrong[:5], [], "every stored entity equals qbosim's truth")
missing = [k for k in changed if k not in ents]
is_(missing[:5], [], "every changed entity is stored (%d changed)" % len(changed))

feed = lines("feed", "--data-dir", data_dir, "--limit", "1000000")
seen, dups = set(), []
for rec in feed:
    key = (rec["realm"], rec["entity"], rec["id"], rec.get("version") if rec.get("op") != "delete" else "deleted")
    if key in seen:
        dups.append(key)
    seen.add(key)
is_(dups[:5], [], "the feed holds each version once (%d records)" % len(feed))
seqs = [rec["seq"] for rec in feed]
ok(seqs == sorted(set(seqs)), "feed sequences strictly increase")

calls, stats = sim_calls(sim)
calls -= calls0
throttled = stats.get("throttled", 0)
is_(throttled, 0, "no request was throttled")
per = calls / max(1, len(changed))
diag("%d changed entities, %d upstream API calls (%.3f per changed entity), %d token requests, %.1f s"
     % (len(changed), calls, per, stats.get("oauth", {}).get("token", 0), elapsed))
ok(per <= 0.05, "bursts cost <= 0.05 upstream calls per changed entity")
missing_mv = sum(r.get("minorversion_missing", 0) for r in stats.get("realms", {}).values())
is_(missing_mv, 0, "minorversion on every call")

is_(q.stop(), 0, "qbcdc stops cleanly on SIGTERM")
log = q.output()
leaked = [t for t in [v["refresh_token"] for v in realms.values()] if t in log]
is_(leaked, [], "no refresh token in qbcdc's log")
sim.stop()
done_testing()
