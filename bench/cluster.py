#!/usr/bin/env python3
"""bench/cluster.py — cluster mode (issue 13) against one node, in one run.

1. Webhook acks per second (bench/loadgen, closed loop, BENCH_CONNS connections per node,
   BENCH_DURATION s after a warm-up, distinct signed bodies), side by side:
   - one node, LMDB only (the default: acked after the journal's fdatasync);
   - one node in cluster mode on one nats-server (acked after the journal and the inbox
     stream's PubAck, replicas 1);
   - three nodes on a three-server NATS cluster (replicas 3), one loadgen per node at once,
     each with its own realm; the figure is their sum.
   BENCH_ROUNDS rounds each (the median is reported).
2. The feed published to JetStream: a node whose store holds BENCH_FEED feed records (made by
   qbosim changes) is restarted with QBCDC_NATS_URL; records per second until the stream holds
   them all.
3. Takeover: in the three-node cluster, the node owning most partitions is killed -9
   BENCH_KILLS times (brought back between); seconds until the others own every partition.

Everything runs on this machine's 2 cores: the three nodes, the three nats-servers and the load
generators share them, so the three-node figure shows the cost of the replicated path, not a
scale-out (that needs machines). Prints figures only; it does not pass or fail.
"""
import json
import os
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
os.environ.setdefault("QBCDC_BUILD", "build")
from harness import BUILD, QBCDC, Proc, free_port, request, tmpdir, wait_http  # noqa: E402
from natslib import NatsCluster, NatsServer  # noqa: E402
from simlib import ADMIN, Sim, register_realms, serve_env  # noqa: E402

DURATION = os.environ.get("BENCH_DURATION", "8")
WARMUP = os.environ.get("BENCH_WARMUP", "2")
CONNS = os.environ.get("BENCH_CONNS", "16")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
FEED = int(os.environ.get("BENCH_FEED", "3000"))
KILLS = int(os.environ.get("BENCH_KILLS", "3"))
LOADGEN = os.path.join(BUILD, "bench", "loadgen")
TOKEN = "bench-verifier-token"


def start_node(env_extra):
    port = free_port()
    d = tmpdir("qbcdc-bench-cluster-")
    env = {"QBCDC_LISTEN": "127.0.0.1:%d" % port, "QBCDC_DATA_DIR": d, "QBCDC_SIM": "off",
           "QBCDC_WEBHOOK_VERIFIER_TOKENS": TOKEN, "QBCDC_ADMIN_TOKEN": ADMIN, "QBCDC_LOG_LEVEL": "warn",
           "QBCDC_MONTHLY_CALL_BUDGET": "0"}
    env.update(env_extra)
    p = Proc([QBCDC, "serve"], env=env)
    if not wait_http(port):
        sys.exit("qbcdc did not start: " + p.output()[-500:])
    return p, port, d


def loadgen(ports):
    """runs one loadgen per port at once; returns (total req/s, [p99 us], non-200s)"""
    procs = []
    for i, port in enumerate(ports):
        procs.append(subprocess.Popen([LOADGEN, "--target", "127.0.0.1:%d" % port, "--token", TOKEN, "--unique",
                                       "-c", CONNS, "-d", DURATION, "-w", WARMUP,
                                       "--realm", str(9130350000000000 + 7919 * (i + 1))],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    rps, p99, bad = 0.0, [], 0
    for p in procs:
        out, _ = p.communicate(timeout=int(DURATION) + int(WARMUP) + 60)
        m = re.search(r"^RESULT (.*)$", out, re.M)
        if not m:
            sys.exit("loadgen: " + out[-500:])
        kv = dict(x.split("=", 1) for x in m.group(1).split())
        rps += float(kv["rps"])
        p99.append(float(kv["p99_us"]))
        bad += int(kv["non200"]) + int(kv["errors"]) + int(kv["timeouts"])
    return rps, p99, bad


def cluster_env(url, node_id, replicas):
    return {"QBCDC_NATS_URL": url, "QBCDC_NODE_ID": node_id, "QBCDC_NATS_REPLICAS": str(replicas),
            "QBCDC_PARTITIONS": "16"}


def owned_all(ports, n_parts=16):
    owners = []
    for port in ports:
        try:
            st, _, b = request(port, "GET", "/admin/cluster", headers={"Authorization": "Bearer " + ADMIN}, timeout=3)
            c = json.loads(b)
        except (OSError, ValueError):
            return False
        owners.append(c.get("owners"))
    return all(o == owners[0] for o in owners) and owners[0] is not None and None not in owners[0] and \
        len(owners[0]) == n_parts


def wait_owned(ports, timeout=60):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if owned_all(ports):
            return time.time() - t0
        time.sleep(0.1)
    return None


results = {"one node, LMDB": [], "one node, cluster (1 nats, R1)": [], "three nodes (3 nats, R3)": []}
p99s = {k: [] for k in results}
bads = {k: 0 for k in results}

# 1. acks per second
single = start_node({})
nats1 = NatsServer()
c1 = start_node(cluster_env(nats1.url(), "solo", 1))
wait_owned([c1[1]])
nats3 = NatsCluster(3)
trio = [start_node(cluster_env(nats3.url(), "n%d" % i, 3)) for i in range(3)]
wait_owned([t[1] for t in trio])
for r in range(ROUNDS):
    for name, ports in (("one node, LMDB", [single[1]]), ("one node, cluster (1 nats, R1)", [c1[1]]),
                        ("three nodes (3 nats, R3)", [t[1] for t in trio])):
        rps, p99, bad = loadgen(ports)
        results[name].append(rps)
        p99s[name].append(max(p99))
        bads[name] += bad
        print("round %d  %-32s %9.0f acks/s  p99 %7.0f us  non-200/errors %d" % (r + 1, name, rps, max(p99), bad),
              flush=True)
single[0].stop()
c1[0].stop()
nats1.stop()

print()
print("%-34s %12s %12s %10s" % ("webhook acks", "median /s", "p99 us", "failed"))
base = statistics.median(results["one node, LMDB"])
for name in results:
    med = statistics.median(results[name])
    print("%-34s %12.0f %12.0f %10d   (%.2f x one node)" % (name, med, statistics.median(p99s[name]), bads[name],
                                                            med / base if base else 0))

# 3. takeover (before 2: it reuses the three-node cluster)
takes = []
for k in range(KILLS):
    views = []
    for t in trio:
        st, _, b = request(t[1], "GET", "/admin/cluster", headers={"Authorization": "Bearer " + ADMIN})
        views.append(json.loads(b))
    victim = max(range(3), key=lambda i: len(views[i]["owned"]))
    n_parts = len(views[victim]["owned"])
    trio[victim][0].kill9()
    t0 = time.time()
    rest = [t[1] for i, t in enumerate(trio) if i != victim]
    while time.time() - t0 < 60:
        vs = []
        for port in rest:
            st, _, b = request(port, "GET", "/admin/cluster", headers={"Authorization": "Bearer " + ADMIN})
            vs.append(json.loads(b))
        if all(len(v["nodes"]) == 2 for v in vs) and sum(len(v["owned"]) for v in vs) == 16:
            break
        time.sleep(0.1)
    took = time.time() - t0
    takes.append(took)
    print("kill -9 of a node owning %d partitions: taken over in %.1f s" % (n_parts, took), flush=True)
    # back, same id and store
    old = trio[victim]
    newp = Proc([QBCDC, "serve"], env={"QBCDC_LISTEN": "127.0.0.1:%d" % old[1], "QBCDC_DATA_DIR": old[2],
                                       "QBCDC_SIM": "off", "QBCDC_WEBHOOK_VERIFIER_TOKENS": TOKEN,
                                       "QBCDC_ADMIN_TOKEN": ADMIN, "QBCDC_LOG_LEVEL": "warn",
                                       **cluster_env(nats3.url(), "n%d" % victim, 3)})
    trio[victim] = (newp, old[1], old[2])
    wait_http(old[1])
    wait_owned([t[1] for t in trio])
print("takeover: median %.1f s, max %.1f s over %d kills (QBCDC_LEASE_TTL 10 s)" % (statistics.median(takes),
                                                                                  max(takes), len(takes)))
for t in trio:
    t[0].stop()
nats3.stop()

# 2. the feed published to JetStream
sim = Sim(args=["--latency-ms", "0"], realms=4, entities=200)
port = free_port()
d = tmpdir("qbcdc-bench-feed-")
env = serve_env(port, d, sim)
env.update({"QBCDC_SNAPSHOT_ON_CONNECT": "1", "QBCDC_CDC_INTERVAL": "3600", "QBCDC_LOG_LEVEL": "warn"})
q = Proc([QBCDC, "serve"], env=env)
wait_http(port)
register_realms(port, sim)
sim.json("POST", "/sim/mutate?n=%d&loss=1" % FEED)
admin_h = {"Authorization": "Bearer " + ADMIN}
for r in sorted(sim.realms()):
    request(port, "POST", "/admin/realms/%s/cdc" % r, "{}", dict(admin_h, **{"Content-Type": "application/json"}))
deadline = time.time() + 300
head = 0
while time.time() < deadline:  # settled: the feed stopped growing for 3 s
    r = subprocess.run([QBCDC, "stats", "--data-dir", d], capture_output=True, text=True, timeout=30)
    h = json.loads(r.stdout).get("last_feed_seq", 0) if r.returncode == 0 else 0
    if h == head and h > 0:
        break
    head = h
    time.sleep(3)
q.stop()
natsf = NatsServer()
env["QBCDC_NATS_URL"] = natsf.url()
t0 = time.time()
q = Proc([QBCDC, "serve"], env=env)
wait_http(port)
cursor = 0
while time.time() - t0 < 300:
    st, _, b = request(port, "GET", "/admin/jetstream", headers=admin_h)
    j = json.loads(b)
    cursor = j.get("cursor", 0)
    if j.get("head") and cursor >= j["head"]:
        head = j["head"]
        break
    time.sleep(0.05)
took = time.time() - t0
print()
print("feed to JetStream: %d records published in %.2f s from start = %.0f records/s (one at a time, each after "
      "its PubAck)" % (head, took, head / took if took else 0))
q.stop()
natsf.stop()
sim.stop()
