#!/usr/bin/env python3
"""test_cluster_meter.py — cluster mode (issue 13): what a node taking a realm over, or replacing
a node whose disk was lost, needs beyond tokens: the monthly budget meter, CDC watermarks and
dead letters, shared through JetStream key-value buckets.

One nats-server, two qbcdc nodes (q1, q2) and qbosim, whose webhooks go to both nodes. The
realms are registered on q1; q2 gets them through the bucket. A budget of BUDGET metered calls
for the whole app and an hour-long budget period (the test runs inside one):
- dead letters: fetches fail (qbosim's error_rate 1) until a notice of a realm q1 owns is given
  up; q2 lists it (with its node and realm), a retry posted to q2 is redriven by q1, the owner,
  and the change reaches q1's store; the list is empty on both nodes afterwards;
- the meter: changes in realms of both nodes, far more than the budget; the metered calls qbosim
  counted stay within the budget (each node metering alone would spend it twice), and
  /admin/budget on either node shows the cluster's use and each node's;
- a lost disk: q2 killed -9, its data directory wiped, started again: it takes its count back
  from the bucket (and so spends nothing more), and its realms' CDC watermarks from the bucket,
  where their owners had put them as they advanced; q2's dead letter outlived its disk, and a
  retry asked on q1 makes it pending in q2's new store;
- NATS stopped: /admin/budget says the meter is out of reach and keeps the last counts known.
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import openapi_check as oc  # noqa: E402  (first: may re-exec with /usr/bin/python3)
from harness import QBCDC, Proc, diag, done_testing, free_port, is_, ok, request, tmpdir, wait_for, wait_http  # noqa
from natslib import NATS_SERVER, NatsServer  # noqa: E402
from natslib import Client as NatsClient  # noqa: E402
from simlib import ADMIN, FEED_TOKEN, Sim, qbcdc_lines, serve_env  # noqa: E402

if NATS_SERVER is None:
    print("1..0 # SKIP nats-server is not installed (.ci/install installs it)")
    sys.exit(0)

BUDGET = 16
PERIOD = 3600
if time.time() % PERIOD > PERIOD - 30:  # the test (13 s) must run inside one budget period
    time.sleep(PERIOD - time.time() % PERIOD + 1)

MASTER_KEY = os.path.join(tmpdir("qbcdc-meter-key-"), "master.key")
with open(MASTER_KEY, "wb") as f:
    f.write(os.urandom(32))
os.chmod(MASTER_KEY, 0o600)


class Node:
    def __init__(self, i):
        self.id = "q%d" % i
        self.port = free_port()
        self.dir = tmpdir("qbcdc-meter-%s-" % self.id)
        self.proc = None

    def start(self):
        env = serve_env(self.port, self.dir, sim)
        env.update({"QBCDC_NATS_URL": nats.url(), "QBCDC_NODE_ID": self.id, "QBCDC_PARTITIONS": "8",
                    "QBCDC_LEASE_TTL": "3", "QBCDC_CDC_INTERVAL": "3600", "QBCDC_SNAPSHOT_ON_CONNECT": "0",
                    "QBCDC_MASTER_KEY_FILE": MASTER_KEY, "QBCDC_COALESCE_MS": "1", "QBCDC_MAX_ATTEMPTS": "2",
                    "QBCDC_BACKOFF_BASE_MS": "50", "QBCDC_BACKOFF_MAX_MS": "100",
                    "QBCDC_MONTHLY_CALL_BUDGET": str(BUDGET), "QBCDC_BUDGET_PERIOD": str(PERIOD),
                    "QBCDC_LOG_LEVEL": "info"})
        self.proc = Proc([QBCDC, "serve"], env=env)
        return wait_http(self.port)

    def get(self, path, token=ADMIN):
        try:
            st, _, b = request(self.port, "GET", path, headers={"Authorization": "Bearer " + token}, timeout=5)
            return json.loads(b) if st == 200 else None
        except (OSError, ValueError):
            return None

    def check(self, method, path):
        """[] when the answer is what docs/openapi.json says"""
        st, h, b = request(self.port, method, path, b"" if method == "POST" else None,
                           {"Authorization": "Bearer " + ADMIN}, timeout=5)
        return oc.check_answer(doc, method, path, st, h, b)

    def post(self, path):
        st, _, b = request(self.port, "POST", path, b"", {"Authorization": "Bearer " + ADMIN}, timeout=5)
        return st, json.loads(b or b"{}")

    def realms(self):
        return {r["realm"]: r for r in (self.get("/admin/realms") or {}).get("realms", [])}


def kv_get(bucket, key):
    """a key's value in a JetStream key-value bucket (None: absent)"""
    c = NatsClient(nats.port)
    m = c.request("$JS.API.STREAM.MSG.GET.KV_" + bucket, {"last_by_subj": "$KV.%s.%s" % (bucket, key)}).get("message")
    c.close()
    return json.loads(base64.b64decode(m["data"])) if m and m.get("data") else None


def metered():
    """the calls Intuit would meter, as qbosim counts them (2xx answers, a batch by its items)"""
    st, s = sim.json("GET", "/sim/stats")
    return sum(r.get("metered", 0) for r in s.get("realms", {}).values())


_, doc = oc.load_doc()
nats = NatsServer()
q1, q2 = Node(1), Node(2)
sim = Sim(args=["--webhook-url", "http://127.0.0.1:%d/webhooks/intuit,http://127.0.0.1:%d/webhooks/intuit"
                % (q1.port, q2.port), "--retry-scale", "0.01"], realms=6, entities=3)
realms = sorted(sim.realms())
t_start = time.time()
ok(q1.start() and q2.start(), "two qbcdc nodes are up on one nats-server")
for realm, v in sim.realms().items():
    request(q1.port, "PUT", "/admin/realms/%s/tokens" % realm, json.dumps({"refresh_token": v["refresh_token"]}),
            {"Authorization": "Bearer " + ADMIN, "Content-Type": "application/json"})


def owners():
    """realm -> owning node id, once both nodes agree and every realm has a CDC watermark on its owner"""
    v1, v2 = q1.realms(), q2.realms()
    if sorted(v1) != realms or sorted(v2) != realms:
        return None
    own = {}
    for r in realms:
        if v1[r].get("owner") != v2[r].get("owner") or v1[r].get("owner") not in ("q1", "q2"):
            return None
        owner = v1 if v1[r]["owner"] == "q1" else v2
        if not owner[r].get("cdc_watermark") or not owner[r].get("owned_here"):
            return None  # its takeover sweep has not finished
        own[r] = v1[r]["owner"]
    return own


own = wait_for(owners, 20)
ok(own and set(own.values()) == {"q1", "q2"}, "the realms reached q2 through the bucket; each node owns some, swept",
   own)
own = own or {r: "q1" for r in realms}
of1 = [r for r in realms if own[r] == "q1"]
of2 = [r for r in realms if own[r] == "q2"] or of1

# ---------------------------------------------------------------- dead letters
def dead(n):
    return (n.get("/admin/dead-letters") or {}).get("dead_letters")


# fetches fail until a change in a realm of each node is given up (2 attempts)
sim.json("POST", "/sim/faults", json.dumps({"error_rate": 1.0}))
sim.json("POST", "/sim/mutate?n=1&realm=%s&per_hook=1" % of1[0])
sim.json("POST", "/sim/mutate?n=1&realm=%s&per_hook=1" % of2[0])
dl = wait_for(lambda: (lambda x: x if x and len(x) == 2 else None)(dead(q2)), 15) or []
sim.json("POST", "/sim/faults", json.dumps({"error_rate": 0}))
d1 = ([x for x in dl if x.get("node") == "q1"] or [{}])[0]
d2 = ([x for x in dl if x.get("node") == "q2"] or [{}])[0]
ok(d1.get("realm") == of1[0] and str(d1.get("id", "")).startswith("q1.") and d2.get("realm") == of2[0],
   "q2 lists the cluster's dead letters, q1's with its node, realm and cluster id", [dl, (q1.get("/admin/cluster") or {}).get("dead_letters")])
# each node learns the other's dead letters through the bucket's watch: q1 too, a moment later
want_ids = sorted(x["id"] for x in dl)
same = wait_for(lambda: sorted(x["id"] for x in dead(q1) or []) == want_ids, 15)
ok(same, "and q1 lists the same", [want_ids, dead(q1)])
is_([q2.check("GET", p) for p in ("/admin/dead-letters", "/admin/cluster")], [[], []],
    "GET /admin/dead-letters and /admin/cluster answer as docs/openapi.json says")
st, j = q2.post("/admin/dead-letters/%s/retry" % d1.get("id", "x"))
is_(st, 202, "a retry of q1's dead letter is asked on q2")
ok(j.get("status") == "requested" and oc.schema_errors(doc, oc.component(doc, "RetryRequested"), j) == [],
   "answered as docs/openapi.json says", j)
ok(wait_for(lambda: [x["id"] for x in dead(q1) or []] == [d2.get("id")] and
            [x["id"] for x in dead(q2) or []] == [d2.get("id")], 15),
   "it is gone from both nodes' lists", [dead(q1), dead(q2)])
truth = sim.json("GET", "/sim/truth")[1][of1[0]]["live"]


def redriven():
    e = q1.get("/v1/realms/%s/entities/%s/%s" % (of1[0], d1.get("entity"), d1.get("entity_id")), FEED_TOKEN)
    return e is not None and e.get("version") == truth.get("%s/%s" % (d1.get("entity"), d1.get("entity_id")))


ok(wait_for(redriven, 15), "the owner, q1, redrove it: its store holds qbosim's version of the entity")

# ---------------------------------------------------------------- the shared meter
before = metered()
diag("metered calls before the burst: %d of %d" % (before, BUDGET))
for i in range(24):
    sim.json("POST", "/sim/mutate?n=1&realm=%s&per_hook=1" % (of1 if i % 2 else of2)[i // 2 % len(of1 if i % 2 else of2)])
    time.sleep(0.1)


def budgets_agree():
    """both nodes' /admin/budget once they show the same cluster-wide use as qbosim metered (the
    nodes hand their counts to the shared meter every 100 ms or so)"""
    b = (q1.get("/admin/budget") or {}, q2.get("/admin/budget") or {})
    used = b[0].get("used")
    return b if used is not None and used == b[1].get("used") and abs(used - metered()) <= 1 else None


b1, b2 = wait_for(budgets_agree, 15, poll=0.5) or (q1.get("/admin/budget") or {}, q2.get("/admin/budget") or {})
spent = metered()
diag("q1 /admin/budget: used %s, cluster %s" % (b1.get("used"), json.dumps(b1.get("cluster"))))
diag("qbosim: %d metered calls in all" % spent)
ok(spent <= BUDGET, "the metered calls of both nodes stay within the app's budget (%d of %d)" % (spent, BUDGET))
ok(spent >= BUDGET - 4, "and the budget was used (%d)" % spent)
nodes1 = {n["node"]: n["used"] for n in (b1.get("cluster") or {}).get("nodes", [])}
ok(b1.get("used") == b2.get("used") and abs((b1.get("used") or 0) - spent) <= 1 and sorted(nodes1) == ["q1", "q2"]
   and sum(nodes1.values()) == b1.get("used"),
   "/admin/budget on either node shows the cluster's use (%s, %s) and each node's %s" % (b1.get("used"), b2.get("used"),
                                                                                         nodes1))
q2_used = nodes1.get("q2", 0)
is_(q1.check("GET", "/admin/budget"), [], "GET /admin/budget in cluster mode answers as docs/openapi.json says")

# ---------------------------------------------------------------- a lost disk
wm_before = {r: (q1.realms() if own[r] == "q1" else q2.realms())[r]["cdc_watermark"] for r in realms}
wm_bucket = {r: (kv_get("qbcdc_realms", r) or {}).get("cdc_watermark_ns", 0) for r in realms}


def iso(ns):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + ".%03dZ" % (ns // 10**6 % 1000)


ok(all(iso(wm_bucket[r]) == wm_before[r] for r in realms),
   "each realm's CDC watermark reached the bucket as its owner's sweep moved it",
   [(r, wm_before[r], iso(wm_bucket[r])) for r in realms])
q2.proc.kill9()
shutil.rmtree(q2.dir)
os.mkdir(q2.dir, 0o700)
ok(q2.start(), "q2 starts again on an empty data directory")
b = wait_for(lambda: (lambda x: x if x and (x.get("cluster") or {}).get("meter_synced") else None)(q2.get("/admin/budget")),
             10) or {}
ok((b.get("cluster") or {}).get("node_used", -1) >= q2_used and q2_used > 0,
   "q2 took its count of the period back from the bucket (%s, it had %d)" % ((b.get("cluster") or {}).get("node_used"),
                                                                              q2_used), b.get("cluster"))
wm_after = wait_for(lambda: (lambda v: v if sorted(v) == realms and all(x.get("cdc_watermark") for x in v.values())
                             else None)(q2.realms()), 10) or {}
ok(all(wm_after.get(r, {}).get("cdc_watermark") == wm_before[r] for r in realms),
   "q2 starts each realm from the watermark its owner had reached", [(r, wm_before[r], wm_after.get(r, {}).get(
       "cdc_watermark")) for r in realms])
old = [x for x in dead(q2) or [] if x.get("id") == d2.get("id")]
ok(old and old[0].get("node") == "q2", "q2's dead letter outlived its disk: listed by q2 on its new disk", dead(q2))
r = subprocess.run([QBCDC, "retry", d2.get("id", "x")], env=dict(os.environ, QBCDC_LISTEN="127.0.0.1:%d" % q1.port,
                                                                 QBCDC_ADMIN_TOKEN=ADMIN), capture_output=True, timeout=30)
ok(r.returncode == 0 and b'"requested"' in r.stdout, "a retry of it is asked on q1 (qbcdc retry <cluster id>)",
   [r.stdout, r.stderr])


def redriven():
    """the notice pending in q2's new store (the budget spent, it waits there), or already fetched into it (the
    budget had a call left)"""
    if [p for p in qbcdc_lines("pending", "--data-dir", q2.dir) if p.get("realm") == of2[0]]:
        return "pending"
    got = [e for e in qbcdc_lines("entities", "--data-dir", q2.dir, "--realm", of2[0])
           if e.get("entity") == d2.get("entity") and e.get("id") == d2.get("entity_id")]
    return "fetched" if got else None


how = wait_for(redriven, 15)
ok(how, "q2, the realm's owner, took the notice up again in its new store (%s)" % how)
ok(wait_for(lambda: dead(q1) == [] and dead(q2) == [], 15), "and no node lists it any more", [dead(q1), dead(q2)])
time.sleep(1)  # q2 took its partitions back and would sweep them, had it forgotten its count
spent2 = metered()
ok(spent2 <= BUDGET, "and the restarted node spent nothing past the budget (%d of %d)" % (spent2, BUDGET))
# NATS away: the meter says so and governing goes on with the last counts known
q2_last = ((q2.get("/admin/budget") or {}).get("cluster") or {}).get("node_used")
wait_for(lambda: ((q1.get("/admin/budget") or {}).get("cluster") or {}).get("others_used") == q2_last, 5)
nats.stop()
down = wait_for(lambda: (lambda c: c if c and not c.get("meter_connected") else None)(
    (q1.get("/admin/budget") or {}).get("cluster")), 10) or {}
ok(down and "out of reach" in (down.get("last_error") or "") and down.get("others_used") == q2_last,
   "NATS stopped: /admin/budget says the meter is out of reach, and keeps q2's last count", down)
nats.start()
ok(wait_for(lambda: ((q1.get("/admin/budget") or {}).get("cluster") or {}).get("meter_connected"), 15),
   "NATS back: the meter reconnects")
for n in (q1, q2):
    is_(n.proc.stop(), 0, "%s stops" % n.id)
sim.stop()
nats.stop()
done_testing()
