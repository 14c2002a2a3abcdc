#!/usr/bin/env python3
"""test_cluster_admin.py — cluster mode (issue 13): the admin API from any node, and backfill jobs
that outlive their node.

Two qbcdc nodes on one nats-server (leases of 3 s), qbosim as Intuit. The realms are registered on
n1; their snapshot jobs run on each realm's owner. For a realm R owned by node O, the other node N:
1. forwards POST /admin/realms/R/cdc to O and relays O's answer (X-Qbcdc-Node: O; the sweep
   shows in O's realm row, not N's); a request already forwarded is never forwarded again (503
   forward_loop);
2. a cancel on the node that does not run a job stops it on the realm's owner;
3. forwards POST /admin/realms/R/backfill to O (the job id is in O's id space) and answers
   GET /admin/jobs/{id} from the shared bucket; kill -9 O in the middle of R's backfill: N's
   forward to the dead owner answers 503 at once, N
   takes R over and finishes the job from its checkpoint (qbosim counts the query calls: a
   restart from zero would make about a whole job's more), and the job shows done on both nodes
   (O restarted takes the outcome from the bucket);
4. an owner that does not answer (SIGSTOP) is answered 503 after QBCDC_FORWARD_TIMEOUT_MS.
GET /admin/realms on either node answers every realm with its owner's figures (asked of the owner,
X-Qbcdc-Forwarded-By: answered locally); with the owner stopped, after the timeout, with this
node's figures for its realms (figures_from) and the owner in nodes_unanswered.
"""
import json
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import openapi_check as oc  # noqa: E402  (first: may re-exec with /usr/bin/python3)
from harness import QBCDC, Proc, diag, done_testing, free_port, is_, ok, request, tmpdir, wait_for, wait_http  # noqa: E402
import natslib  # noqa: E402
from natslib import NATS_SERVER, NatsServer, mixed_fnv, preferred  # noqa: E402
from simlib import ADMIN, Sim, admin, register_realms, serve_env, sim_calls  # noqa: E402

if NATS_SERVER is None:
    print("1..0 # SKIP nats-server is not installed (.ci/install installs it)")
    sys.exit(0)

PARTITIONS = 8
PER_TYPE = 2500  # 8 entity types: 3 query pages each, 24 for a whole realm


def partition_of(realm):
    return natslib.partition_of(realm, PARTITIONS)


def job_space(node_id):
    """cluster.h qbc_cluster_job_id_base / QBC_JOB_ID_SPACE (n1: 415514, pinned in test_partition.c)"""
    return 1 + mixed_fnv(node_id.encode()) % ((1 << 20) - 1)


MASTER_KEY = os.path.join(tmpdir("qbcdc-cadm-key-"), "master.key")
with open(MASTER_KEY, "wb") as f:
    f.write(os.urandom(32))
os.chmod(MASTER_KEY, 0o600)

nats = NatsServer()
sim = Sim(realms=2, entities=PER_TYPE)
realms = sorted(sim.realms())


class Node:
    def __init__(self, i):
        self.id = "n%d" % i
        self.port = free_port()
        self.dir = tmpdir("qbcdc-cadm-%s-" % self.id)
        self.proc = None

    def start(self):
        env = serve_env(self.port, self.dir, sim)
        env.update({"QBCDC_NATS_URL": nats.url(), "QBCDC_NODE_ID": self.id, "QBCDC_PARTITIONS": str(PARTITIONS),
                    "QBCDC_LEASE_TTL": "3", "QBCDC_CDC_INTERVAL": "3600", "QBCDC_SNAPSHOT_ON_CONNECT": "1",
                    "QBCDC_MASTER_KEY_FILE": MASTER_KEY, "QBCDC_FORWARD_TIMEOUT_MS": "2000",
                    "QBCDC_LOG_LEVEL": os.environ.get("CADM_LOG", "info")})
        self.proc = Proc([QBCDC, "serve"], env=env)
        return wait_http(self.port)

    def call(self, method, path, body=None, headers=None):
        h = {"Authorization": "Bearer " + ADMIN, "Content-Type": "application/json"}
        h.update(headers or {})
        try:
            st, hd, b = request(self.port, method, path, body, h, timeout=10)
        except OSError:
            return None, {}, None
        # every answer, relayed or not, as docs/openapi.json says
        problems = oc.check_answer(DOC, method, path, st, hd, b)
        if problems:
            BAD.append((method, path, st, problems))
        try:
            return st, hd, json.loads(b) if b else None
        except ValueError:
            return st, hd, b

    def get(self, path, local=False):
        # local: as another node asks it (X-Qbcdc-Forwarded-By): this node's own figures only
        st, _, j = self.call("GET", path, headers={"X-Qbcdc-Forwarded-By": "test"} if local else None)
        return j if st == 200 else None

    def realm(self, r, local=False):
        return next((x for x in (self.get("/admin/realms", local) or {}).get("realms", []) if x["realm"] == r), None)


_, DOC = oc.load_doc()
BAD = []
nodes = [Node(1), Node(2)]
ok(all(n.start() for n in nodes), "two qbcdc nodes are up, on one nats-server")


def settled():
    v = [n.get("/admin/cluster") for n in nodes]
    if any(x is None for x in v) or v[0]["owners"] != v[1]["owners"] or None in v[0]["owners"]:
        return None
    if sorted(p for x in v for p in x["owned"]) != list(range(PARTITIONS)):
        return None
    want = [preferred(p, [n.id for n in nodes]) for p in range(PARTITIONS)]
    return v[0]["owners"] if v[0]["owners"] == want else None  # the hand-over after a join is over


owners = wait_for(settled, 20, 0.2)
ok(owners, "every partition has its preferred owner, the same in both views", owners)
is_(register_realms(nodes[0].port, sim), len(realms), "the realms registered on n1 alone")
ok(wait_for(lambda: all((nodes[1].realm(r) or {}).get("has_tokens") for r in realms), 20, 0.2),
   "n2 has them and their tokens, from the bucket")

# the snapshots the registrations made on n1 (n1's job ids) run on each realm's owner, wherever it is
def metric_of(n, name):
    for line in request(n.port, "GET", "/metrics")[2].decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def snapshots_done():
    rows = {n.id: {r["realm"]: r for r in (n.get("/admin/realms") or {}).get("realms", [])} for n in nodes}
    snaps = [rows[n.id].get(r, {}).get("snapshot") or {} for n in nodes for r in realms]
    return all(x.get("status") == "done" for x in snaps) and snaps


snaps = wait_for(snapshots_done, 30, 0.2)
ok(snaps, "every realm's snapshot is done, as both nodes see it", snaps)
ok(snaps and all(int(x["job"]) >> 32 == job_space("n1") for x in snaps), "the snapshot jobs are n1's (it registered)")
mine = {n.id: sum(1 for r in realms if owners[partition_of(r)] == n.id) for n in nodes}
calls = {n.id: metric_of(n, "qbcdc_backfill_requests_total") for n in nodes}
diag("realms owned: %s; snapshot query pages per node: %s" % (mine, calls))
ok(all((calls[i] > 0) == (mine[i] > 0) for i in calls), "each ran on its realm's owner, and only there", calls)

# ---- 0. GET /admin/realms on any node: each realm's figures are its owner's
FIGS = ("budget", "last_cdc", "pending", "last_error", "snapshot", "cdc_watermark", "api_calls_last_minute")


def figures_agree():
    own = {}  # realm -> its owner's own row, asked locally
    for n in nodes:
        for x in (n.get("/admin/realms", local=True) or {}).get("realms", []):
            if owners[partition_of(x["realm"])] == n.id:
                own[x["realm"]] = x
    merged = {n.id: {x["realm"]: x for x in (n.get("/admin/realms") or {}).get("realms", [])} for n in nodes}
    for n in nodes:
        for r in realms:
            got, want = merged[n.id].get(r), own.get(r)
            if got is None or want is None or got.get("figures_from") != want.get("figures_from") or \
               any(got.get(k) != want.get(k) for k in FIGS) or got.get("owned_here") != (owners[partition_of(r)] == n.id):
                return None
    return merged


t0 = time.time()
merged = wait_for(figures_agree, 10, 0.2)
ok(merged, "GET /admin/realms on each node: every realm's budget, calls, last CDC, pending as its owner answers them "
   "locally (figures_from: the owner) (%.2f s)" % (time.time() - t0))
sweeps = {r: [((merged or {}).get(n.id, {}).get(r) or {}).get("budget", {}).get("sweeps") for n in nodes]
          for r in realms}
diag("budget.sweeps per realm, as n1 and n2 answer: %s; owners %s" %
     (sweeps, {r: owners[partition_of(r)] for r in realms}))
ok(merged and all(x.get("figures_from") == owners[partition_of(x["realm"])] and "nodes_unanswered" not in
                  (nodes[0].get("/admin/realms", local=True) or {}) for x in merged[nodes[0].id].values()),
   "every row says whose figures it carries; a node asked locally does not fan out")
ok(all(len({json.dumps((merged or {}).get(n.id, {}).get(r, {}).get("budget"), sort_keys=True) for n in nodes}) == 1
       for r in realms), "both nodes answer the same budget for every realm")

R = realms[0]
owner = next(n for n in nodes if n.id == owners[partition_of(R)])
other = next(n for n in nodes if n is not owner)
diag("realm %s: owner %s, asking %s" % (R, owner.id, other.id))

# ---- 1. a CDC request and a backfill sent to the node that does not own the realm
st, hd, j = other.call("POST", "/admin/realms/%s/cdc" % R)
is_(st, 202, "POST .../cdc on the other node: 202")
is_(hd.get("x-qbcdc-node"), owner.id, "the answer is the owner's (X-Qbcdc-Node)")
ok(wait_for(lambda: (owner.realm(R) or {}).get("cdc_request_status") == "done", 15, 0.2),
   "the owner swept the realm", owner.realm(R))
is_((other.realm(R, local=True) or {}).get("cdc_requested"), None, "the other node recorded no request of its own")
is_((other.realm(R) or {}).get("cdc_request_status"), "done", "its GET /admin/realms shows the owner's figures")

st, hd, j = other.call("POST", "/admin/realms/%s/cdc" % R, headers={"X-Qbcdc-Forwarded-By": owner.id})
ok(st == 503 and (j or {}).get("error") == "forward_loop" and hd.get("retry-after"),
   "a request already forwarded to a node that does not own the realm: 503 forward_loop, never sent on", (st, j))
st, hd, j = owner.call("POST", "/admin/realms/%s/cdc" % R, headers={"X-Qbcdc-Forwarded-By": other.id})
is_((st, hd.get("x-qbcdc-node")), (202, None), "a forwarded request reaching the owner is answered there")

st, _, j = other.call("POST", "/admin/realms/%s/backfill" % R, '{"entities":["Nope"]}')
is_(st, 400, "a bad backfill, forwarded: the owner's 400")
sim.json("POST", "/sim/faults", json.dumps({"latency_ms": 150}))  # pages take a while: room to kill mid-job

# ---- 2. a cancel on the node that does not run the job stops it on the owner
R2 = realms[1]
own2 = next(n for n in nodes if n.id == owners[partition_of(R2)])
oth2 = next(n for n in nodes if n is not own2)
st, _, j2 = oth2.call("POST", "/admin/realms/%s/backfill" % R2, "")
job2 = (j2 or {}).get("job", "0")
ok(wait_for(lambda: (own2.get("/admin/jobs/%s" % job2) or {}).get("status") == "running", 10, 0.1) and
   wait_for(lambda: oth2.get("/admin/jobs/%s" % job2), 5, 0.1), "a second job runs on its realm's owner")
st, _, c = oth2.call("DELETE", "/admin/jobs/%s" % job2)
is_((st, (c or {}).get("status")), (200, "cancelled"), "cancelled on the node that does not run it")
ok(wait_for(lambda: (own2.get("/admin/jobs/%s" % job2) or {}).get("status") == "cancelled", 10, 0.1),
   "the owner has it cancelled", own2.get("/admin/jobs/%s" % job2))
time.sleep(0.5)
q2 = sim_calls(sim)[1]["realms"][R2]["requests"]["query"]
time.sleep(1.0)
is_(sim_calls(sim)[1]["realms"][R2]["requests"]["query"], q2, "and makes no more query calls for it")

# ---- 3. R's backfill, created by its owner, read from either node; kill -9 the owner in the middle of R, created by its owner, read from either node
q_start = sim_calls(sim)[1]["realms"][R]["requests"]["query"]
st, hd, j = other.call("POST", "/admin/realms/%s/backfill" % R, "")
is_(st, 202, "POST .../backfill on the other node: 202")
is_(hd.get("x-qbcdc-node"), owner.id, "created by the owner")
job = (j or {}).get("job", "0")
ok(job.isdigit() and int(job) >> 32 == job_space(owner.id), "its id is in the owner's id space", job)

ok(wait_for(lambda: any(x["job"] == job for x in (other.get("/admin/jobs") or {}).get("jobs", [])), 10, 0.1),
   "in GET /admin/jobs on the other node (from the bucket)")
st, hd, j = other.call("GET", "/admin/jobs/%s" % job)
is_((st, hd.get("x-qbcdc-node"), (j or {}).get("realm")), (200, None, R), "and GET /admin/jobs/{id}, from its own store")
# a job the other node does not hold (not imported yet, or none): asked of the node whose id space holds it
st, hd, j = other.call("GET", "/admin/jobs/%d" % ((job_space(owner.id) << 32) + 999999))
is_((st, hd.get("x-qbcdc-node")), (404, owner.id), "a job id unknown here goes to the node of its space")
st, hd, j = other.call("GET", "/admin/jobs/%d" % ((job_space(other.id) << 32) + 999999))
is_((st, hd.get("x-qbcdc-node")), (404, None), "one of this node's own space is answered here")
mid = wait_for(lambda: (lambda x: x if x and x.get("entities_done", 0) >= 3 else None)(owner.get("/admin/jobs/%s" % job)),
               20, 0.05)
ok(mid and mid["status"] == "running", "the job runs on the owner, 3 entities done", mid)
owner.proc.kill9()
q_kill = sim_calls(sim)[1]["realms"][R]["requests"]["query"] - q_start
t0 = time.time()
st, hd, j = other.call("POST", "/admin/realms/%s/cdc" % R)
took = time.time() - t0
ok(st == 503 and (j or {}).get("error") in ("owner_unreachable", "owner_unknown") and hd.get("retry-after")
   and took < 15.0, "forwarded to the dead owner: 503 with the reason, within the timeout (%.2f s)" % took, (st, j))
diag("503: %s" % (j or {}).get("message"))
seen = other.get("/admin/jobs/%s" % job) or {}
diag("killed %s after %d query calls; %s holds the checkpoint at %s entities, %s records" %
     (owner.id, q_kill, other.id, seen.get("entities_done"), seen.get("records_seen")))
# the bucket is a page or two behind the owner's store (a put every 200 ms at most)
ok(seen.get("status") == "running" and seen.get("entities_done", 0) >= 2,
   "the other node holds the job's checkpoint from the bucket", seen)
seen_pages = seen.get("entities_done", 0) * 3 + (seen.get("start_position", 1) - 1) // 1000

t0 = time.time()
done = wait_for(lambda: (lambda x: x if x and x.get("status") in ("done", "failed", "cancelled") else None)(
    other.get("/admin/jobs/%s" % job)), 40, 0.2)
is_((done or {}).get("status"), "done", "the other node took the realm over and finished the job (%.1f s)"
    % (time.time() - t0))
ok((done or {}).get("entities_done") == 8, "all 8 entities", done)
q_total = sim_calls(sim)[1]["realms"][R]["requests"]["query"] - q_start
diag("query calls for the job: %d before the kill, %d in all (a whole job: 24)" % (q_kill, q_total))
ok(q_total - q_kill <= 24 - seen_pages + 1,
   "resumed from the checkpoint, not from zero: %d query calls after the kill for the %d pages left after it "
   "(from zero: 24)" % (q_total - q_kill, 24 - seen_pages))
ok((done or {}).get("records_seen", 0) >= 8 * PER_TYPE, "records seen cover the realm", done)
st, _, j = other.call("POST", "/admin/realms/%s/cdc" % R)
is_(st, 202, "the realm's requests are answered by its new owner")

ok(owner.start(), "the killed node restarts")
ok(wait_for(lambda: (owner.get("/admin/jobs/%s" % job) or {}).get("status") == "done", 15, 0.2),
   "and shows the job done too, from the bucket", owner.get("/admin/jobs/%s" % job))
cl = other.get("/admin/cluster") or {}
diag("jobs sync on %s: %s" % (other.id, cl.get("jobs")))
ok(cl.get("jobs", {}).get("imported", 0) >= 1 and cl.get("jobs", {}).get("conflicts") == 0,
   "GET /admin/cluster shows the jobs bucket's figures", cl.get("jobs"))

# an owner that does not answer (stopped, not dead: its lease still holds): 503 after the timeout
owners = wait_for(settled, 20, 0.2)
if owners:
    owner = next(n for n in nodes if n.id == owners[partition_of(R)])
    other = next(n for n in nodes if n is not owner)
listing = {}


def get_listing():  # at the same time as the POST: both asked well before the stopped node's lease runs out
    t = time.time()
    listing["answer"] = other.call("GET", "/admin/realms")
    listing["took"] = time.time() - t


def hang_up():  # a client that goes away while the node waits for the stopped owner's rows
    try:
        request(other.port, "GET", "/admin/realms", None, {"Authorization": "Bearer " + ADMIN}, timeout=0.3)
    except OSError:
        listing["hung_up"] = True


os.kill(owner.proc.p.pid, signal.SIGSTOP)
lister = threading.Thread(target=get_listing)
lister.start()
hanger = threading.Thread(target=hang_up)
hanger.start()
t0 = time.time()
st, hd, j = other.call("POST", "/admin/realms/%s/cdc" % R)
took = time.time() - t0
lister.join()
hanger.join()
st_l, _, lst = listing.get("answer", (None, None, None))
took_l = listing.get("took", 0)
os.kill(owner.proc.p.pid, signal.SIGCONT)
lst = lst if isinstance(lst, dict) else {}
theirs = [x for x in lst.get("realms", []) if x.get("owner") == owner.id]
ok(owners and st_l == 200 and 1.5 < took_l < 15.0 and lst.get("nodes_unanswered") == [owner.id],
   "GET /admin/realms with the owner stopped: answered after the timeout (%.2f s), the owner listed in "
   "nodes_unanswered" % took_l, (st_l, lst.get("nodes_unanswered")))
ok(theirs and all(x.get("figures_from") == other.id for x in theirs) and len(lst.get("realms", [])) == len(realms),
   "every realm still listed; the stopped owner's realms carry this node's figures (figures_from: %s)" % other.id,
   [(x.get("realm"), x.get("owner"), x.get("figures_from")) for x in lst.get("realms", [])])
ok(listing.get("hung_up") and other.get("/admin/realms"), "a client that hung up meanwhile: the node goes on")
ok(owners and st == 503 and (j or {}).get("error") == "owner_unreachable" and 1.5 < took < 15.0,
   "an owner that does not answer: 503 owner_unreachable after QBCDC_FORWARD_TIMEOUT_MS (%.2f s)" % took, (st, j))
diag("503: %s" % (j or {}).get("message"))

fw = {}
for line in request(other.port, "GET", "/metrics")[2].decode().splitlines():
    if line.startswith("qbcdc_admin_forwarded_total{"):
        fw[line.split('"')[1]] = float(line.split()[-1])
diag("qbcdc_admin_forwarded_total on %s: %s" % (other.id, fw))
ok(fw.get("relayed", 0) >= 1 and fw.get("unreachable", 0) >= 1, "qbcdc_admin_forwarded_total counts them", fw)

# stopping while GET /admin/realms waits for a stopped owner: the call is answered (the local rows, or 503)
os.kill(owner.proc.p.pid, signal.SIGSTOP)
listing.clear()
lister = threading.Thread(target=get_listing)
lister.start()
time.sleep(0.3)
t0 = time.time()
rc = other.proc.stop()
took = time.time() - t0
os.kill(owner.proc.p.pid, signal.SIGCONT)
lister.join()
st_l = listing.get("answer", (None,))[0]
ok(rc == 0 and st_l in (200, 503, None) and took < 20.0,  # it must not hang: a generous ceiling, not a timing
   "%s stops cleanly (%.2f s) while its GET /admin/realms waits for a stopped owner (answered %s)" %
   (other.id, took, st_l), rc)

is_(BAD[:3], [], "every answer (relayed, 503 of the cluster, GET /admin/cluster) as docs/openapi.json says")
for n in nodes:
    is_(n.proc.stop(), 0, "%s stops cleanly" % n.id)
done_testing()
