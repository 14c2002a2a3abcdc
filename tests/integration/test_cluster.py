#!/usr/bin/env python3
"""test_cluster.py — cluster mode (issue 13, part 2): three qbcdc nodes on a three-server NATS
JetStream cluster (replicas 3) split the realms' partitions through leases; any node takes
webhooks, acked once they are in the replicated inbox stream; only a partition's owner reads
its inbox and calls QBO for its realms.

qbosim spreads its webhooks over the three nodes round-robin (a retry goes to the next one, as
through a load balancer). Every node holds every realm's tokens; no periodic CDC and no
snapshot, so a change reaches its owner's store through the inbox (or, for a realm taken over,
the CDC sweep a new owner makes). A realm is right only in its owner's store; a node that
called QBO for a realm it did not own shows in its meter. qbosim limits each realm to 2
requests in flight, as each node does. Then: kill -9 a node in the middle of a burst (its
partitions are taken over; the time is measured), bring it back, kill -9 a nats-server, stop a
node gracefully (handed over at once), and a node configured with another partition count
takes no part.
"""
import threading
import json
import os
import re
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import openapi_check as oc  # noqa: E402  (first: may re-exec with /usr/bin/python3)
from harness import QBCDC, Proc, diag, done_testing, free_port, is_, ok, request, tmpdir, wait_for, wait_http  # noqa: E402
from natslib import NATS_SERVER, NatsCluster, partition_of  # noqa: E402
from natslib import Client as NatsClient  # noqa: E402
from receiverlib import Receiver  # noqa: E402
from simlib import ADMIN, FEED_TOKEN, Sim, admin, flat_truth, qbcdc_lines, register_realms, serve_env  # noqa: E402

FEED_AUTH = {"Authorization": "Bearer " + FEED_TOKEN}

if NATS_SERVER is None:
    print("1..0 # SKIP nats-server is not installed (.ci/install installs it)")
    sys.exit(0)

PARTITIONS = 16

is_([partition_of("9130350000000001", 32), partition_of("123146096291789", 32)], [30, 13],
    "the test's partition function is the C one (pinned in test_partition.c)")

class Node:
    def __init__(self, i, extra=None):
        self.id = "q%d" % i
        self.port = free_port()
        self.dir = tmpdir("qbcdc-cluster-%s-" % self.id)
        self.extra = extra or {}
        self.proc = None

    def start(self):
        env = serve_env(self.port, self.dir, sim)
        env.update({"QBCDC_NATS_URL": nats.url(), "QBCDC_NATS_REPLICAS": "3", "QBCDC_NODE_ID": self.id,
                    "QBCDC_PARTITIONS": str(PARTITIONS), "QBCDC_CDC_INTERVAL": "3600", "QBCDC_MAX_INFLIGHT": "2",
                    "QBCDC_SNAPSHOT_ON_CONNECT": "0", "QBCDC_MASTER_KEY_FILE": MASTER_KEY,
                    "QBCDC_RATE_LIMIT": "300", "QBCDC_LOG_LEVEL": "info", "QBCDC_DELIVERY_ALLOW_PRIVATE": "1"})
        env.update(self.extra)
        self.proc = Proc([QBCDC, "serve"], env=env)
        return wait_http(self.port)

    def admin(self, path, local=False):
        # local: as another node asks (X-Qbcdc-Forwarded-By): GET /admin/realms with this node's own figures only
        h = {"Authorization": "Bearer " + ADMIN}
        if local:
            h["X-Qbcdc-Forwarded-By"] = "test"
        try:
            st, _, b = request(self.port, "GET", path, headers=h, timeout=5)
            return json.loads(b) if st == 200 else None
        except (OSError, ValueError):
            return None

    def cluster(self):
        return self.admin("/admin/cluster")


# one master key for every node: tokens travel between them sealed with it
MASTER_KEY = os.path.join(tmpdir("qbcdc-cluster-key-"), "master.key")
with open(MASTER_KEY, "wb") as f:
    f.write(os.urandom(32))
os.chmod(MASTER_KEY, 0o600)

nats = NatsCluster(3)
nodes = [Node(1), Node(2), Node(3)]
# Intuit's webhooks spread over the three nodes, as a load balancer would; retries come fast
hooks = ",".join("http://127.0.0.1:%d/webhooks/intuit" % n.port for n in nodes)
sim = Sim(args=["--concurrency-limit", "2", "--rate-limit", "300", "--webhook-url", hooks, "--retry-scale", "0.005",
                "--webhook-concurrency", "3"], realms=24, entities=12)
realms = sorted(sim.realms())
ok(all(n.start() for n in nodes), "three qbcdc nodes are up, on a three-server NATS cluster")


def views(live):
    return {n.id: n.cluster() for n in live}


def settled(live, timeout):
    """waits until every live node sees the same owner for each partition, all of them live nodes,
    each partition owned by exactly one node; returns (ok, views, seconds)"""
    t0 = time.time()
    ids = sorted(n.id for n in live)
    v = {}
    while time.time() - t0 < timeout:
        v = views(live)
        if all(x is not None for x in v.values()):
            owners = [tuple(x["owners"]) for x in v.values()]
            owned = sorted(p for x in v.values() for p in x["owned"])
            if (len(set(owners)) == 1 and all(o in ids for o in owners[0]) and owned == list(range(PARTITIONS))
                    and all(sorted(x["nodes"]) == ids for x in v.values())):
                return True, v, time.time() - t0
        time.sleep(0.2)
    return False, v, time.time() - t0


good, v, took = settled(nodes, 30)
ok(good, "every partition has one owner, the same in every node's view (%.1f s)" % took, json.dumps(v)[:600])
shares = {n: len(x["owned"]) for n, x in v.items()} if good else {}
diag("partitions per node: %s" % shares)
ok(good and all(s >= 1 for s in shares.values()), "each node owns some")
owned_sum = 0
for n in nodes:
    st, _, b = request(n.port, "GET", "/metrics")
    for line in b.decode().splitlines():
        if line.startswith("qbcdc_cluster_partitions_owned "):
            owned_sum += int(float(line.split()[1]))
is_(owned_sum, PARTITIONS, "qbcdc_cluster_partitions_owned adds up to the partitions")

# the realms' tokens registered on one node reach the others through the bucket qbcdc_realms
is_(register_realms(nodes[0].port, sim), len(realms), "every realm registered on q1 alone")


def with_tokens(n):
    return sorted(r["realm"] for r in (n.admin("/admin/realms") or {}).get("realms", []) if r.get("has_tokens"))


deadline = time.time() + 20
while time.time() < deadline and not all(with_tokens(n) == realms for n in nodes):
    time.sleep(0.2)
for n in nodes[1:]:
    is_(with_tokens(n), realms, "%s has every realm and its tokens, from the bucket" % n.id)
rs = {n.id: (n.cluster() or {}).get("realms", {}) for n in nodes}
diag("realm sync: %s" % {k: (x.get("put"), x.get("imported")) for k, x in rs.items()})
ok(rs["q1"].get("put", 0) >= len(realms) and all(rs[n.id].get("imported", 0) >= len(realms) for n in nodes[1:]),
   "q1 put them, q2 and q3 imported them")
kv = NatsClient(nats.ports[0])
raw = [kv.request("$JS.API.STREAM.MSG.GET.KV_qbcdc_realms", {"last_by_subj": "$KV.qbcdc_realms." + r})
       .get("message", {}).get("data", "") for r in realms]
kv.close()
import base64  # noqa: E402
leak = [r for r, d in zip(realms, raw) if sim.realms()[r]["refresh_token"].encode() in base64.b64decode(d or b"")]
ok(all(raw) and not leak, "the bucket holds every realm, no refresh token in clear", leak)

_, doc = oc.load_doc()
for path in ("/admin/cluster", "/admin/realms"):
    st, h, b = request(nodes[0].port, "GET", path, headers={"Authorization": "Bearer " + ADMIN})
    is_(oc.check_answer(doc, "GET", path, st, h, b), [], "GET %s answers as docs/openapi.json says" % path)
rows = (nodes[0].admin("/admin/realms") or {}).get("realms", [])
ok(rows and all(r.get("partition") == partition_of(r["realm"], PARTITIONS) and "owner" in r and "owned_here" in r
                for r in rows), "GET /admin/realms shows each realm's partition, owner and whether it is owned here")


def owner_of(realm, v):
    any_view = next(x for x in v.values() if x is not None)
    return any_view["owners"][partition_of(realm, PARTITIONS)]


def entities(node):
    out = {}
    for e in qbcdc_lines("entities", "--data-dir", node.dir):
        out[(e["realm"], e["entity"], e["id"])] = None if e.get("deleted") else e.get("version")
    return out


def converge(live, changed_since, timeout):
    """waits until, for every realm, its owner's store holds the truth of every key changed since
    changed_since (a truth snapshot); returns the mismatches left"""
    deadline = time.time() + timeout
    wrong = ["not checked"]
    while time.time() < deadline:
        truth = flat_truth(sim.json("GET", "/sim/truth")[1])
        changed = {k for k, val in truth.items() if changed_since.get(k, "absent") != val}
        changed |= {k for k in changed_since if k not in truth}
        v = views(live)
        if any(x is None for x in v.values()):
            time.sleep(0.5)
            continue
        by_id = {n.id: n for n in live}
        stores = {n.id: entities(n) for n in live}
        wrong = []
        for k in changed:
            own = owner_of(k[0], v)
            got = stores[own].get(k, "absent") if own in stores else "no owner"
            if got != truth.get(k):
                wrong.append((k, own, got, truth.get(k)))
        if not wrong:
            return [], len(changed)
        time.sleep(0.5)
    return wrong, None


def fenced_ok(live):
    """realms a node spent calls on that it never owned: [(node, realm)]"""
    bad = []
    for n in live:
        for r in (n.admin("/admin/realms", local=True) or {}).get("realms", []):
            if r.get("budget", {}).get("calls_this_period", 0) > 0 and r["realm"] not in n.ever_owned:
                bad.append((n.id, r["realm"], r["budget"]["calls_this_period"]))
    return bad


def note_owned(live):
    for n in live:
        c = n.cluster()
        if c is not None:
            for r in realms:
                if partition_of(r, PARTITIONS) in c["owned"]:
                    n.ever_owned.add(r)


for n in nodes:
    n.ever_owned = set()
note_owned(nodes)

truth0 = flat_truth(sim.json("GET", "/sim/truth")[1])
st, j = sim.json("POST", "/sim/mutate?n=800&per_hook=2")
is_(st, 200, "qbosim made 800 changes over %d realms, 2 a webhook, spread over the nodes" % len(realms))
wrong, n_changed = converge(nodes, truth0, 90)
is_(wrong[:5], [], "each realm's owner stores the truth of every changed entity (%s changed)" % n_changed)
inb = {n.id: (n.cluster() or {}).get("inbox", {}) for n in nodes}
diag("inbox: %s" % {k: (x.get("published"), x.get("consumed")) for k, x in inb.items()})
ok(all(x.get("published", 0) > 0 for x in inb.values()), "every node took webhooks into the replicated inbox")
ok(sum(1 for x in inb.values() if x.get("consumed", 0) > 0) >= 2, "and owners consumed them")
deadline = time.time() + 10
while True:
    reading = {n.id: ((n.cluster() or {}).get("inbox", {}).get("partitions_read"), len((n.cluster() or {})
                                                                                         .get("owned", [])))
               for n in nodes}
    if all(a == b for a, b in reading.values()) or time.time() > deadline:
        break
    time.sleep(0.2)
ok(all(a == b for a, b in reading.values()), "each node reads the inbox of exactly the partitions it owns", reading)
note_owned(nodes)
is_(fenced_ok(nodes), [], "no node spent a call on a realm it did not own")
per_node = {n.id: sum(r["budget"]["calls_this_period"] for r in (n.admin("/admin/realms", local=True) or {})
                      .get("realms", []))
            for n in nodes}
diag("calls per node: %s" % per_node)
ok(sum(1 for c in per_node.values() if c > 0) >= 2, "the work is spread (at least two nodes called QBO)")

# kill -9 the node that owns the most partitions, in the middle of a burst of webhooks
v = views(nodes)
victim = max(nodes, key=lambda n: len(v[n.id]["owned"]))
lost_parts = list(v[victim.id]["owned"])
burst = {}
th = threading.Thread(target=lambda: burst.update(r=sim.json("POST", "/sim/mutate?n=600&per_hook=2")))
th.start()
time.sleep(0.5)
victim.proc.kill9()
t0 = time.time()
rest = [n for n in nodes if n is not victim]
good, v2, took = settled(rest, 40)
takeover = time.time() - t0
diag("takeover of %d partitions after kill -9 of %s: %.1f s (lease TTL 10 s)" % (len(lost_parts), victim.id, takeover))
ok(good, "the survivors own every partition again", json.dumps(v2)[:400])
ok(good and takeover < 15, "within 15 s of the kill (%.1f s)" % takeover)
note_owned(rest)

th.join(60)
is_(burst.get("r", (0,))[0], 200, "the burst's 600 changes were made (their webhooks retried on the live nodes)")
st, j = sim.json("POST", "/sim/mutate?n=400&per_hook=2")
wrong, n_changed = converge(rest, truth0, 90)
is_(wrong[:5], [], "the new owners catch up the taken-over realms: every change since the start (%s)" % n_changed)
is_(fenced_ok(rest), [], "still no call on a realm a node did not own")

# it comes back (same id, same store): partitions move back to it
ok(victim.start(), "%s restarts" % victim.id)
good, v3, took = settled(nodes, 40)
ok(good, "three owners again after it rejoins (%.1f s)" % took, json.dumps(v3)[:400])
ok(good and len(v3[victim.id]["owned"]) >= 1, "%s owns partitions again" % victim.id)
note_owned(nodes)

# a nats-server dies: the bucket has replicas 3, the leases survive the leader election
lost_before = sum((n.cluster() or {}).get("lost", 0) for n in nodes)
nats.kill9(1)
time.sleep(3)
st, j = sim.json("POST", "/sim/mutate?n=300&per_hook=2")
good, v4, took = settled(nodes, 40)
ok(good, "with one nats-server of three killed, every partition is still owned (%.1f s)" % took, json.dumps(v4)[:400])
wrong, n_changed = converge(nodes, truth0, 90)
is_(wrong[:5], [], "and changes go on being captured (%s changed since the start)" % n_changed)
deadline = time.time() + 90  # a webhook refused while NATS elected a leader waits for its retry
while True:
    wh = sim.json("GET", "/sim/stats")[1].get("webhooks", {})
    if wh.get("pending") == 0 or time.time() > deadline:
        break
    time.sleep(0.5)
diag("qbosim's webhooks: %s" % {k: wh.get(k) for k in ("posts", "retries", "delivered", "pending", "failed")})
is_(wh.get("pending"), 0, "every webhook qbosim sent was acked in the end")

# the feed stream all nodes publish to: each entity version once, never backwards, ending at the truth
feed_c = NatsClient(nats.ports[0])
deadline = time.time() + 60
while time.time() < deadline:  # every node's publisher caught up with its feed
    js_views = [n.admin("/admin/jetstream") or {} for n in nodes]
    if all(j.get("lag", 1) == 0 for j in js_views):
        break
    time.sleep(0.5)
msgs = feed_c.messages("QBCDC_FEED")
feed_c.close()
seen, dup, backwards, last = set(), [], [], {}
for _seq, _subj, _h, data in msgs:
    rec = json.loads(data)
    ent = (rec["realm"], rec["entity"], rec["id"])
    # a delete comes after every version (its own may be unknown: null)
    ver = (rec["op"] == "delete", int(rec["version"]) if rec.get("version") not in (None, "") else -1)
    if ent + ver in seen:
        dup.append(ent + ver)
    seen.add(ent + ver)
    if ent in last and ver < last[ent]:
        backwards.append((ent, last[ent], ver))
    last[ent] = max(ver, last.get(ent, ver))
truth_now = flat_truth(sim.json("GET", "/sim/truth")[1])
changed_keys = {k for k, v in truth_now.items() if truth0.get(k, "absent") != v} | \
    {k for k in truth0 if k not in truth_now}
stale = [(k, last.get(k), truth_now.get(k)) for k in changed_keys
         if last.get(k) is None or (truth_now.get(k) is None) != last[k][0] or
         (truth_now.get(k) is not None and str(last[k][1]) != truth_now[k])]
skipped = sum(j.get("skipped", 0) for j in js_views)
not_owner = sum(j.get("not_owner", 0) for j in js_views)
diag("feed stream: %d records, %d entities; records another node had put there, skipped: %d; records of realms "
     "another node owned by then, left to it: %d" % (len(msgs), len(last), skipped, not_owner))
is_(dup[:5], [], "the feed stream holds each entity version (and each delete) once, whichever node fetched it")
is_(backwards[:5], [], "and no entity goes backwards in it")
is_(stale[:5], [], "its last record of every changed entity is qbosim's truth (%d changed)" % len(changed_keys))

# /v1/changes on every node serves the cluster-wide feed: each node's copy of the stream, the
# stream's sequences as seq, the records' bytes as published (only "seq" told anew)
expected = [(seq, re.sub(rb'^\{"seq":\d+', b'{"seq":%d' % seq, data)) for seq, _subj, _h, data in msgs]
want_id = {}


def raw_changes(body):
    """the records of a /v1/changes answer as the bytes sent, with "next" and "feed_id\""""
    text = body.decode()
    doc = json.loads(text)
    i, out, dec = text.index("[") + 1, [], json.JSONDecoder()
    while text[i] != "]":
        rec, j = dec.raw_decode(text, i)
        out.append((rec["seq"], text[i:j].encode()))
        i = j + (text[j] == ",")
    return out, doc["next"], doc["feed_id"]


def node_feed(n, after=0):
    """(feed id, [(seq, bytes)]) of n's /v1/changes, paged from after"""
    got, fid = [], None
    while True:
        st, h, b = request(n.port, "GET", "/v1/changes?after=%d&limit=1000" % after, headers=FEED_AUTH)
        if st != 200:
            return ("status %d" % st, got)
        page, after, fid = raw_changes(b)
        if h.get("qbcdc-feed-id") != fid:
            return ("header %s" % h.get("qbcdc-feed-id"), got)
        got += page
        if not page:
            return fid, got


last_seq = msgs[-1][0] if msgs else 0
copied = wait_for(lambda: all((n.cluster() or {}).get("feed", {}).get("mirrored", 0) >= last_seq for n in nodes), 30)
ok(copied, "every node's copy of the cluster feed reached the stream's last sequence %d" % last_seq,
   json.dumps([(n.cluster() or {}).get("feed") for n in nodes]))
feeds = {n.id: node_feed(n) for n in nodes}
ids = {f[0] for f in feeds.values()}
ok(len(ids) == 1 and all(len(x or "") == 32 for x in ids), "one feed id on every node: the stream's", ids)
for n in nodes:
    got = feeds[n.id][1]
    is_([s for s, _ in got], [s for s, _ in expected], "%s's /v1/changes: the stream's records, its sequences" % n.id)
    bad = [(a, b) for a, b in zip(got, expected) if a != b]
    ok(len(got) == len(expected) and not bad, "%s serves them byte for byte as the stream holds them (%d records)"
       % (n.id, len(got)), bad[:2])


def node_entities(n):
    """{(realm, entity, id): version, None when deleted} of every entity type changed, as n's
    /v1/realms/{realm}/entities/{Entity} listings page through them, with the answers' bytes"""
    out, raw = {}, []
    for realm, ent in sorted({(k[0], k[1]) for k in changed_keys}):
        after = ""
        while True:
            st, _h, b = request(n.port, "GET", "/v1/realms/%s/entities/%s?limit=1000%s"
                                % (realm, ent, "&after_id=" + after if after else ""), headers=FEED_AUTH)
            if st != 200:
                return {"status": st}, raw
            raw.append(b)
            doc = json.loads(b)
            for e in doc["entities"]:
                out[(realm, ent, e["id"])] = None if e.get("deleted") else e.get("version")
            after = doc.get("next_after_id")
            if not after:
                break
    return out, raw


ents = {n.id: node_entities(n) for n in nodes}
for n in nodes:
    got = ents[n.id][0]
    wrong = [(k, got.get(k, "absent"), truth_now.get(k)) for k in sorted(changed_keys) if got.get(k, "absent") !=
             truth_now.get(k)]
    is_(wrong[:5], [], "%s's entity reads hold every realm's truth of the %d changed entities, whichever node "
        "fetched them" % (n.id, len(changed_keys)))
ok(len({b"".join(r) for _e, r in ents.values()}) == 1, "and every node answers them byte for byte alike")
own_local = {n.id: ((n.cluster() or {}).get("feed") or {}).get("records", 0) for n in nodes}
diag("records each node copied from the stream since it started: %s" % own_local)

# a long-poll on one node is woken by a change fetched by another, whose realm it does not own
v = views(nodes)
a_node = nodes[0]
foreign = [r for r in realms if owner_of(r, v) != a_node.id]
r_b = foreign[0]
head_doc = json.loads(request(a_node.port, "GET", "/v1/changes?after=%d&limit=1" % last_seq, headers=FEED_AUTH)[2])
head = head_doc.get("next", head_doc.get("head", 0))  # (a 409 only if the node serves something else)
# a push subscription made on q1 now: it follows the cluster feed too
rcv = Receiver()
st, subscription = admin(a_node.port, "POST", "/admin/subscriptions", json.dumps({"url": rcv.url(), "start_after": head}))
is_(st, 201, "a push subscription on %s, from the head %d" % (a_node.id, head))
poll = {}


def long_poll():
    t = time.time()
    st, _, b = request(a_node.port, "GET", "/v1/changes?after=%d&realm=%s&wait=25" % (head, r_b), headers=FEED_AUTH,
                       timeout=40)
    poll.update(st=st, body=json.loads(b) if st == 200 else b, took=time.time() - t)


th = threading.Thread(target=long_poll)
th.start()
time.sleep(0.5)
sim.json("POST", "/sim/mutate?n=1&realm=%s" % r_b)
th.join(40)
chg = (poll.get("body") or {}).get("changes", []) if poll.get("st") == 200 else []
ok(chg and all(c["realm"] == r_b for c in chg) and poll["took"] < 20,
   "a long-poll on %s is answered by a change of %s, owned by %s (%.1f s)" % (a_node.id, r_b, owner_of(r_b, v),
                                                                              poll.get("took", -1)), poll)

# an SSE stream on one node delivers a change another node fetched
c_node = nodes[2]
r_c = next(r for r in realms if owner_of(r, v) != c_node.id and r != r_b)
s = socket.create_connection(("127.0.0.1", c_node.port), timeout=20)
s.sendall(("GET /v1/changes/stream?after=%d&realm=%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
           % (head, r_c, FEED_TOKEN)).encode())
time.sleep(0.5)
t_sse = time.time()
sim.json("POST", "/sim/mutate?n=1&realm=%s" % r_c)
buf, events = b"", []
while not events and time.time() - t_sse < 20:
    try:
        chunk = s.recv(65536)
    except socket.timeout:
        break
    if not chunk:
        break
    buf += chunk
    events = [json.loads(l[6:]) for l in buf.split(b"\n")[:-1] if l.startswith(b'data: {"seq"')]
s.close()
ok(events and events[0]["realm"] == r_c and events[0]["seq"] > head,
   "an SSE stream on %s delivers a change of %s, owned by %s (%.1f s)" % (c_node.id, r_c, owner_of(r_c, v),
                                                                         time.time() - t_sse), buf[-400:])


def pushed():
    return [c for r in rcv.snapshot() for c in json.loads(r["body"]).get("data", {}).get("changes", [])]


wait_for(lambda: {c["seq"] for c in pushed()} >= {c["seq"] for c in chg}, 15)
got_push = {c["seq"]: c["realm"] for c in pushed()}
ok(chg and all(got_push.get(c["seq"]) == r_b for c in chg),
   "the subscription on %s pushed the change of %s (owned by %s) under the stream's seq" % (a_node.id, r_b,
                                                                                           owner_of(r_b, v)), got_push)
# the subscription lives on q1 (its id is in q1's id space): the other nodes send its requests there
sub_id = subscription.get("id", "0")
ok(int(sub_id) >= 1 << 32, "its id %s is in %s's id space" % (sub_id, a_node.id))
st, h, b = request(c_node.port, "GET", "/admin/subscriptions/%s" % sub_id, headers={"Authorization": "Bearer " + ADMIN})
ok(st == 200 and json.loads(b).get("id") == sub_id and h.get("x-qbcdc-node") == a_node.id,
   "GET of it on %s is answered by %s" % (c_node.id, a_node.id), (st, h.get("x-qbcdc-node"), b[:200]))
st, h, b = request(c_node.port, "PATCH", "/admin/subscriptions/%s" % sub_id, json.dumps({"paused": True}),
                   headers={"Authorization": "Bearer " + ADMIN, "Content-Type": "application/json"})
st2, j2 = admin(a_node.port, "GET", "/admin/subscriptions/%s" % sub_id)
ok(st == 200 and st2 == 200 and j2.get("state") == "paused",
   "a PATCH pausing it on %s pauses it on %s" % (c_node.id, a_node.id), (st, b[:200], j2.get("state")))
st, lst = admin(c_node.port, "GET", "/admin/subscriptions")
mine = [x for x in (lst or {}).get("subscriptions", []) if x.get("id") == sub_id]
ok(st == 200 and len(mine) == 1 and mine[0].get("node") == a_node.id and lst.get("nodes_unanswered") == [],
   "GET /admin/subscriptions on %s lists it, on %s" % (c_node.id, a_node.id), lst)
rcv.close()
lost_after = sum((n.cluster() or {}).get("lost", 0) for n in nodes)
diag("leases lost while the nats-server was down: %d" % (lost_after - lost_before))
is_(fenced_ok(nodes), [], "no call on a realm a node did not own, through all of it")
throttled = {r: s.get("throttled", 0) for r, s in sim.json("GET", "/sim/stats")[1].get("realms", {}).items()}
is_([r for r, t in throttled.items() if t], [], "qbosim answered no 429: never two nodes on one realm at once")

# a graceful stop hands its partitions over at once (not after a TTL)
leaver = nodes[1]
had = len((leaver.cluster() or {}).get("owned", []))
t0 = time.time()
is_(leaver.proc.stop(), 0, "%s stops gracefully" % leaver.id)
stay = [n for n in nodes if n is not leaver]
good, v5, took = settled(stay, 30)
handover = time.time() - t0
diag("graceful hand-over of %d partitions: %.1f s from SIGTERM to the others owning them" % (had, handover))
ok(good, "its partitions are owned by the others")
ok("handed %d of %d partitions over" % (had, had) in leaver.proc.output(),
   "it handed every one over as it stopped (deleted its leases; none left to lapse)")

# the feed stream loses its older half (a purge; limits would do the same): a node that copies it
# from scratch (the one below, whose partition count keeps it out of the rest) answers a reader
# behind what is gone 410, and serves the rest as the other nodes do
feed_c = NatsClient(nats.ports[0])
cut = last_seq // 2
purged = feed_c.request("$JS.API.STREAM.PURGE.QBCDC_FEED", {"seq": cut})
feed_c.close()
ok(purged.get("success"), "the feed stream purged below %d" % cut, purged)

# a node configured with another partition count takes no part
odd = Node(4, {"QBCDC_PARTITIONS": "8"})
ok(odd.start(), "a node with QBCDC_PARTITIONS=8 starts")
stay_head = max(s for s, _ in node_feed(stay[0], last_seq)[1] or [(last_seq, b"")])
wait_for(lambda: ((odd.cluster() or {}).get("feed") or {}).get("mirrored", 0) >= stay_head, 30)
st, _, b = request(odd.port, "GET", "/v1/changes?after=0", headers=FEED_AUTH)
ok(st == 410 and json.loads(b).get("pruned_through") == cut - 1,
   "a fresh copy of the purged stream: after=0 gets 410 gone, pruned_through %d" % (cut - 1), b[:300])
mine, theirs = node_feed(odd, cut - 1), node_feed(stay[0], cut - 1)
ok(mine[1] and mine[1][0][0] == cut and mine == theirs,
   "from there it serves what %s serves, byte for byte, from sequence %d (%d records)" % (stay[0].id, cut,
                                                                                       len(mine[1])))
deadline = time.time() + 20
c = None
while time.time() < deadline:
    c = odd.cluster()
    if c and c.get("last_error"):
        break
    time.sleep(0.2)
ok(c and "16 partitions" in (c.get("last_error") or ""), "it says the cluster has 16 partitions", json.dumps(c))
ok(c and c["owned"] == [], "and owns none")
good, v6, took = settled(stay, 10)
ok(good, "the others are undisturbed")
is_(odd.proc.stop(), 0, "it stops cleanly")

# configuration mistakes are refused before anything starts
r = subprocess.run([QBCDC, "serve"], env=dict(os.environ, QBCDC_NODE_ID="q9", QBCDC_DATA_DIR=tmpdir(), QBCDC_SIM="off"),
                   capture_output=True, text=True, timeout=30)
ok(r.returncode == 2 and "QBCDC_NATS_URL" in r.stderr, "QBCDC_NODE_ID without QBCDC_NATS_URL: exit 2 naming it",
   r.stderr[-300:])
r = subprocess.run([QBCDC, "serve"], env=dict(os.environ, QBCDC_NODE_ID="q.9", QBCDC_NATS_URL=nats.url(),
                                               QBCDC_DATA_DIR=tmpdir(), QBCDC_SIM="off"),
                   capture_output=True, text=True, timeout=30)
ok(r.returncode == 2 and "QBCDC_NODE_ID" in r.stderr, "a node id with a dot: exit 2 naming QBCDC_NODE_ID", r.stderr[-300:])
live = next(n for n in nodes if n.proc.alive())
r = subprocess.run([QBCDC, "cluster"], env=dict(os.environ, QBCDC_LISTEN="127.0.0.1:%d" % live.port,
                                                 QBCDC_ADMIN_TOKEN=ADMIN), capture_output=True, text=True, timeout=30)
try:
    cj = json.loads(r.stdout)
except ValueError:
    cj = {}
ok(r.returncode == 0 and cj.get("node_id") == live.id and len(cj.get("owners", [])) == PARTITIONS,
   "qbcdc cluster prints the node's view", r.stdout[-300:] + r.stderr[-300:])
st, _, b = request(nodes[0].port, "GET", "/admin/cluster", headers={"Authorization": "Bearer wrong"})
ok(st in (401, 403), "GET /admin/cluster needs the admin token (%d)" % st)

# the feed stream deleted and made again: every copy starts over under the new stream's id, and a
# long-poll waiting on the old feed is answered with the new id (its reader resyncs)
old_id = json.loads(request(stay[0].port, "GET", "/v1/changes?limit=1", headers=FEED_AUTH)[2])["feed_id"]
old_head = json.loads(request(stay[0].port, "GET", "/v1/changes?after=%d" % last_seq, headers=FEED_AUTH)[2])["next"]
lp = {}


def lp_run():
    t = time.time()
    lp.update(r=request(stay[0].port, "GET", "/v1/changes?after=%d&wait=25" % old_head, headers=FEED_AUTH, timeout=40))
    lp["took"] = time.time() - t


th = threading.Thread(target=lp_run)
th.start()
time.sleep(0.3)
nats.start(1)  # the nats-server killed above comes back: a stream of 3 replicas needs 3 servers
nats.wait_port(nats.ports[1])
feed_c = NatsClient(nats.ports[0])
scfg = feed_c.stream_info("QBCDC_FEED")["config"]
feed_c.close()


def js_api(subject, body):
    """a JetStream API call that succeeded, or None (no answer in time, or an error: asked again)"""
    try:
        c = NatsClient(nats.ports[0])
        r = c.request(subject, body)
        c.close()
        return r if "error" not in r else None
    except OSError:
        return None


gone = wait_for(lambda: js_api("$JS.API.STREAM.DELETE.QBCDC_FEED", {}), 20, poll=0.5)
made = wait_for(lambda: js_api("$JS.API.STREAM.CREATE.QBCDC_FEED", scfg), 20, poll=0.5)
ok(gone and made, "the feed stream deleted and made again", (gone, made))


def new_ids():
    f = [((n.cluster() or {}).get("feed") or {}) for n in stay]
    ids = {x.get("feed_id") for x in f}
    return ids if len(ids) == 1 and old_id not in ids and all(x.get("resets", 0) >= 1 for x in f) else None


ok(wait_for(new_ids, 20), "every node's copy started over under one new feed id", [(n.cluster() or {}).get("feed")
                                                                                     for n in stay])
th.join(40)
lp_doc = json.loads(lp["r"][2]) if lp.get("r") and lp["r"][0] == 200 else {}
ok(lp_doc.get("changes") == [] and lp_doc.get("feed_id") not in (None, old_id) and lp.get("took", 99) < 15,
   "the long-poll waiting on the old feed is answered with the new feed id when its copy starts over (%.1f s, "
   "not its 25 s)" % lp.get("took", -1), lp.get("r"))

codes = {n.id: n.proc.stop() for n in nodes + [odd] if n.proc is not None and n.proc.alive()}
is_(set(codes.values()), {0}, "the nodes still running stop cleanly (exit 0; under ASan: no leak)")
nats.stop()
done_testing()
