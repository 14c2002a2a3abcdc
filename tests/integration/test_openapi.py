#!/usr/bin/env python3
"""docs/openapi.json against the real service, so the document cannot drift.

The document itself: valid JSON, OpenAPI 3.1, every $ref resolves, every example
validates against its schema, every route and endpoint the server's sources name is
documented, and GET /openapi.json serves exactly the repository file. Then real
answers of qbcdc serve (fed by qbosim): for every endpoint the test can exercise,
the status must be documented for that operation and the body must validate
against the document's schema for it. Assertions named "[issue 9]" check shapes
that issue 9 adds (feed_id, 409, the entity listing, snapshot fields).
"""
import os
import socket
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import openapi_check as oc  # noqa: E402  (first: may re-exec with /usr/bin/python3)
from harness import *  # noqa: E402,F401,F403
from simlib import ADMIN, SIM_ENTITIES, Sim, register_realms, serve_env, wait_drained  # noqa: E402

FEED = "test-feed-token"
FEED_AUTH = {"Authorization": "Bearer " + FEED}
ADMIN_AUTH = {"Authorization": "Bearer " + ADMIN, "Content-Type": "application/json"}

raw, doc = oc.load_doc()

# ---- the document itself ----
ok(isinstance(doc, dict), "docs/openapi.json is valid JSON")
ok(str(doc.get("openapi", "")).startswith("3.1"), "openapi is 3.1.x", doc.get("openapi"))
bad = []
for where, ref in oc.all_refs(doc):
    try:
        oc.pointer(doc, ref)
    except (KeyError, IndexError, ValueError):
        bad.append("%s -> %s" % (where, ref))
ok(not bad, "every $ref resolves (%d refs)" % len(oc.all_refs(doc)), "\n".join(bad))
for name, s in doc["components"]["schemas"].items():
    try:
        oc.jsonschema.Draft202012Validator.check_schema(s)
        good = True
    except oc.jsonschema.SchemaError as e:
        good = e
    if good is not True:
        ok(False, "schema %s is a valid JSON Schema" % name, good)
ok("feedBearer" in doc["components"]["securitySchemes"] and "adminBearer" in doc["components"]["securitySchemes"],
   "bearer security schemes for /v1 and /admin")
for p, item in doc["paths"].items():
    for m, op in item.items():
        want = "feedBearer" if p.startswith("/v1/") else "adminBearer" if p.startswith("/admin/") else None
        if want and [want] != [k for s in op.get("security", []) for k in s]:
            ok(False, "%s %s uses %s" % (m.upper(), p, want))
desc = doc["info"]["description"] + doc["components"]["schemas"]["Change"]["description"]
for words in ["strictly increasing", "total order", "at-least-once", "older cursor", "(realm, entity, id, version)"]:
    ok(words.lower() in desc.lower(), "the delivery semantics mention %r" % words)

# every example validates against its schema
change = oc.component(doc, "Change")
exs = doc["components"]["schemas"]["Change"]["examples"]
is_(sorted({e["op"] for e in exs}), sorted(["create", "update", "delete", "merge", "void", "emailed", "snapshot"]),
    "the Change schema has an example for every op")
errs = [m for e in exs for m in oc.schema_errors(doc, change, e)]
ok(not errs, "the Change examples validate", "\n".join(errs))
n_ex, errs = 0, []
for p, item in doc["paths"].items():
    for m, op in item.items():
        for st, r in op["responses"].items():
            for ct, media in oc.deref(doc, r).get("content", {}).items():
                for name, e in media.get("examples", {}).items():
                    n_ex += 1
                    errs += ["%s %s %s %s: %s" % (m, p, st, name, x) for x in oc.schema_errors(doc, media["schema"], e["value"])]
ok(n_ex >= 7 and not errs, "the %d response examples validate" % n_ex, "\n".join(errs))
ops = doc["paths"]["/v1/changes"]["get"]["responses"]["200"]["content"]["application/json"]["examples"]
is_(sorted(ops), sorted(["create", "update", "delete", "merge", "void", "emailed", "snapshot"]),
    "GET /v1/changes has an example per op")

# every route and every endpoint the sources name is documented
routes, eps = oc.source_endpoints()
ok(len(routes) >= 8 and len(eps) >= 15, "found %d routes and %d endpoints in the sources" % (len(routes), len(eps)))
documented = {(m.upper(), oc.norm(p)) for p, item in doc["paths"].items() for m in item if m in oc.METHODS}
dpaths = {oc.norm(p) for p in doc["paths"]}
missing = sorted(r for r in routes if r not in dpaths and not any(p.startswith(r + "/") for p in dpaths))
ok(not missing, "every registered route is documented", missing)
missing = sorted("%s %s" % e for e in eps if (e[0], oc.norm(e[1])) not in documented)
ok(not missing, "every endpoint the server's sources name is documented", "\n".join(missing))

# ---- a running qbcdc fed by qbosim ----
qport = free_port()
sim = Sim(args=["--webhook-url", "http://127.0.0.1:%d/webhooks/intuit" % qport], realms=2, entities=20)
data_dir = tmpdir("qbcdc-openapi-")
env = serve_env(qport, data_dir, sim)
env.update({"QBCDC_OAUTH_AUTHORIZE_URL": "http://127.0.0.1:%d/connect/oauth2" % sim.port,
            "QBCDC_OAUTH_REDIRECT_URI": "http://127.0.0.1:%d/oauth/callback" % qport,
            "QBCDC_OAUTH_REVOKE_URL": "http://127.0.0.1:%d/oauth2/v1/tokens/revoke" % sim.port})
q = Proc([QBCDC, "serve"], env=env)
ok(wait_http(qport), "qbcdc serve is up")

seen = set()  # (METHOD, template, status) validated
# answers whose documented schema requires fields issue 9 adds (feed_id; realms' snapshot; jobs' skipped)
ISSUE9 = {"/v1/changes", "/admin/realms", "/admin/jobs", "/admin/jobs/{id}", "/admin/jobs/{id}/cancel",
          "/v1/realms/{realm}/entities/{entity}"}


def check(method, path, body=None, headers=None, name=None, want=None, timeout=20):
    """one request, validated against the document; returns (status, headers, parsed JSON or raw)"""
    st, h, b = request(qport, method, path, body, headers, timeout=timeout)
    probs = oc.check_answer(doc, method, path, st, h, b)
    if want is not None and st != want:
        probs.insert(0, "status %d, want %d" % (st, want))
    t = oc.template_of(doc, path)
    tag = "[issue 9] " if t in ISSUE9 and not (name or "").startswith("[issue 9]") else ""
    ok(not probs, "%s%s %s -> %d matches the document%s" % (tag, method, t, st, " (%s)" % name if name else ""),
       "\n".join(probs + [b[:400].decode(errors="replace")]))
    seen.add((method, t, st))
    try:
        return st, h, json.loads(b) if b else None
    except ValueError:
        return st, h, b


# /openapi.json: no auth, the repository's bytes
st, h, b = request(qport, "GET", "/openapi.json")
ok(st == 200 and h.get("content-type", "").startswith("application/json"), "GET /openapi.json: 200 application/json")
ok(b == raw, "GET /openapi.json serves exactly docs/openapi.json (%d bytes, got %d)" % (len(raw), len(b)))
check("GET", "/openapi.json", want=200)
check("GET", "/healthz", want=200)
check("GET", "/metrics", want=200)

# the document lists no endpoint the server does not have (a 404 naming a missing endpoint)
for p, item in doc["paths"].items():
    for m in item:
        if m not in oc.METHODS:
            continue
        path = p.replace("{realm}", "424242").replace("{entity}", "Customer").replace("{id}", "999999")
        hd = dict(FEED_AUTH if p.startswith("/v1/") else ADMIN_AUTH)
        c = http.client.HTTPConnection("127.0.0.1", qport, timeout=10)
        c.request(m.upper(), path, body=b"" if m in ("put", "post") else None, headers=hd)
        r = c.getresponse()
        body = r.read() if r.getheader("content-type", "").startswith("application/json") else b""
        c.close()
        routed = not (r.status == 404 and b"endpoint" in body)
        tag = "[issue 9] " if p == "/v1/realms/{realm}/entities/{entity}" else ""
        ok(routed, "%sthe server routes %s %s" % (tag, m.upper(), p), body)

# ---- webhooks ----
check("POST", "/webhooks/intuit", "{}", {"Content-Type": "application/json"}, "no signature", 401)
check("POST", "/webhooks/intuit", "{}", {"intuit-signature": "AAAA"}, "wrong signature", 401)
big = b"x" * (1024 * 1024 + 1)
check("POST", "/webhooks/intuit", big, {"intuit-signature": sign(big, "test-verifier-token")}, "over 1 MiB", 413)
junk = b"not json at all"
check("POST", "/webhooks/intuit", junk, {"intuit-signature": sign(junk, "test-verifier-token")}, "quarantined", 200)

# ---- admin ----
check("GET", "/admin/realms", headers={}, name="no bearer", want=401)
for realm, v in sim.realms().items():
    check("PUT", "/admin/realms/%s/tokens" % realm, json.dumps({"refresh_token": v["refresh_token"]}), ADMIN_AUTH,
          "register", 200)
check("PUT", "/admin/realms/123/tokens", "not json", ADMIN_AUTH, "bad body", 400)
realms = sorted(sim.realms())
sim.json("POST", "/sim/mutate?n=60&per_hook=5")
ok(not wait_drained(sim, data_dir, timeout=60), "the changes are reconciled")
st, _, rl = check("GET", "/admin/realms", headers=ADMIN_AUTH, want=200)
check("GET", "/admin/budget", headers=ADMIN_AUTH, want=200)
check("POST", "/admin/realms/%s/cdc" % realms[0], headers=ADMIN_AUTH, want=202)
check("POST", "/admin/realms/424242/cdc", headers=ADMIN_AUTH, name="unknown realm", want=404)
st, _, bf = check("POST", "/admin/realms/%s/backfill" % realms[0], json.dumps({"entities": ["Customer"]}), ADMIN_AUTH,
                  want=202)
check("POST", "/admin/realms/%s/backfill" % realms[0], "[1]", ADMIN_AUTH, "bad body", 400)
check("POST", "/admin/realms/%s/backfill" % realms[0], json.dumps({"entities": ["NoSuchThing"]}), ADMIN_AUTH,
      "[issue 9] unknown entity", 400)
check("POST", "/admin/realms/424242/backfill", "{}", ADMIN_AUTH, "unknown realm", 404)
job = (bf or {}).get("job", "1")
deadline = time.time() + 20
while time.time() < deadline:
    st, _, j = check("GET", "/admin/jobs/%s" % job, headers=ADMIN_AUTH, want=200)
    if not isinstance(j, dict) or j.get("status") in ("done", "failed", "cancelled"):
        break
    time.sleep(0.5)
check("GET", "/admin/jobs", headers=ADMIN_AUTH, want=200)
check("GET", "/admin/jobs/999999", headers=ADMIN_AUTH, want=404)
st, _, bf2 = check("POST", "/admin/realms/%s/backfill" % realms[1], "", ADMIN_AUTH, "empty body", 202)
check("DELETE", "/admin/jobs/%s" % (bf2 or {}).get("job", "1"), headers=ADMIN_AUTH, want=200)
check("POST", "/admin/jobs/%s/cancel" % job, headers=ADMIN_AUTH, name="finished job", want=200)
check("DELETE", "/admin/jobs/999999", headers=ADMIN_AUTH, want=404)
check("GET", "/admin/dead-letters", headers=ADMIN_AUTH, want=200)
check("POST", "/admin/dead-letters/999999/retry", headers=ADMIN_AUTH, want=404)

# ---- the feed ----
check("GET", "/v1/changes", headers={}, name="no bearer", want=401)
check("GET", "/v1/changes?limit=0", headers=FEED_AUTH, name="bad limit", want=400)
st, _, page = check("GET", "/v1/changes?limit=1000", headers=FEED_AUTH, want=200)
changes = page.get("changes", []) if isinstance(page, dict) else []
ok(len(changes) >= 10, "the feed has changes to validate (%d)" % len(changes))
ok({c.get("op") for c in changes} >= {"create", "update"}, "among them creates and updates",
   sorted({c.get("op") for c in changes}))
ok(isinstance(page, dict) and "feed_id" in page, "[issue 9] /v1/changes carries feed_id", str(page)[:200])
head = page.get("next", 0) if isinstance(page, dict) else 0
check("GET", "/v1/changes?after=%d&wait=1" % head, headers=FEED_AUTH, name="long-poll times out empty", want=200)
check("GET", "/v1/changes?after=%d&realm=%s&entity=customer" % (0, realms[0]), headers=FEED_AUTH, name="filtered",
      want=200)
st, _, b409 = check("GET", "/v1/changes?after=%d" % (head + 1000000), headers=FEED_AUTH,
                    name="[issue 9] after beyond the head", want=409)

# an entity read: live (and a deleted one if the simulator deleted any)
live = next((c for c in changes if c["op"] != "delete"), None)
if live:
    check("GET", "/v1/realms/%s/entities/%s/%s" % (live["realm"], live["entity"], live["id"]), headers=FEED_AUTH,
          name="live", want=200)
dead = next((c for c in changes if c["op"] == "delete"), None)
if dead:
    check("GET", "/v1/realms/%s/entities/%s/%s" % (dead["realm"], dead["entity"], dead["id"]), headers=FEED_AUTH,
          name="deleted", want=200)
check("GET", "/v1/realms/%s/entities/Customer/nope-999" % realms[0], headers=FEED_AUTH, name="never seen", want=404)

# the entity listing (issue 9)
if live:
    st, _, lst = check("GET", "/v1/realms/%s/entities/%s?limit=5" % (live["realm"], live["entity"]), headers=FEED_AUTH,
                       name="[issue 9] listing", want=200)
    if st == 200 and isinstance(lst, dict) and lst.get("next_after_id"):
        check("GET", "/v1/realms/%s/entities/%s?limit=5&after_id=%s" % (live["realm"], live["entity"],
                                                                        urllib.parse.quote(lst["next_after_id"])),
              headers=FEED_AUTH, name="[issue 9] listing, next page", want=200)
check("GET", "/v1/realms/%s/entities/Customer?limit=0" % realms[0], headers=FEED_AUTH,
      name="[issue 9] listing, bad limit", want=400)

# ---- SSE: content type, the events against Change and FeedHello ----
s = socket.create_connection(("127.0.0.1", qport), timeout=5)
s.sendall(("GET /v1/changes/stream?after=0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n" % FEED).encode())
buf, deadline = b"", time.time() + 10


def sse_complete_events(raw):
    """the events whose blank line has arrived, in the complete chunks received so far"""
    body = raw.partition(b"\r\n\r\n")[2]
    return oc.dechunk(body).count(b"\n\n")


# until the hello and every change are complete: counting "data:" lines would stop with
# the last event's chunk still on the way, and dechunk would drop it whole
while time.time() < deadline and sse_complete_events(buf) < len(changes) + 1:
    try:
        chunk = s.recv(65536)
    except socket.timeout:
        break
    if not chunk:
        break
    buf += chunk
s.close()
head_raw, _, rest = buf.partition(b"\r\n\r\n")
hdrs = {}
for line in head_raw.split(b"\r\n")[1:]:
    k, _, v = line.decode().partition(":")
    hdrs[k.strip().lower()] = v.strip()
status = int(head_raw.split(b" ")[1]) if head_raw.startswith(b"HTTP/") else 0
text = (oc.dechunk(rest) if hdrs.get("transfer-encoding", "").lower() == "chunked" else rest).decode()
is_(status, 200, "SSE answers 200")
ok(hdrs.get("content-type", "").startswith("text/event-stream") and
   "text/event-stream" in doc["paths"]["/v1/changes/stream"]["get"]["responses"]["200"]["content"],
   "SSE is text/event-stream, as documented")
ok("qbcdc-feed-id" in hdrs and not oc.schema_errors(doc, oc.component(doc, "FeedId"), hdrs.get("qbcdc-feed-id")),
   "[issue 9] SSE carries the qbcdc-feed-id header", hdrs)
events = oc.sse_events(text)
first = events[0] if events else (None, None, "")
ok(first[0] == "feed" and not oc.schema_errors(doc, oc.component(doc, "FeedHello"), json.loads(first[2] or "null")),
   "[issue 9] the first SSE event is 'feed' with a FeedHello", first)
data_events = [e for e in events if e[0] is None]
errs = []
for _, eid, data in data_events:
    c = json.loads(data)
    errs += oc.schema_errors(doc, change, c)
    if eid != str(c.get("seq")):
        errs.append("id %s != seq %s" % (eid, c.get("seq")))
ok(len(data_events) >= len(changes) and not errs,
   "%d SSE change events validate against Change, id = seq" % len(data_events), "\n".join(errs[:20]))

# ---- OAuth connect ----
st, h, _ = check("GET", "/connect?state_hint=acme", want=302)
loc = urllib.parse.urlparse(h.get("location", ""))
st, sh, _ = request(sim.port, "GET", loc.path + "?" + loc.query)
cb = urllib.parse.urlparse(sh.get("location", ""))
check("GET", cb.path + "?" + cb.query, name="connected", want=200)
check("GET", cb.path + "?" + cb.query, name="state used", want=400)
st, h, _ = request(qport, "GET", "/connect")
state = urllib.parse.parse_qs(urllib.parse.urlparse(h.get("location", "")).query).get("state", [""])[0]
check("GET", "/oauth/callback?code=bogus&realmId=777&state=" + state, name="code refused", want=502)
st, h, _ = request(qport, "GET", "/connect")
state = urllib.parse.parse_qs(urllib.parse.urlparse(h.get("location", "")).query).get("state", [""])[0]
check("GET", "/oauth/callback?error=access_denied&state=" + state, name="consent refused", want=400)

# ---- disconnect (last: it revokes a realm) ----
check("DELETE", "/admin/realms/%s" % realms[1], headers=ADMIN_AUTH, want=200)
check("DELETE", "/admin/realms/424242", headers=ADMIN_AUTH, name="unknown realm", want=404)
st, _, rl = check("GET", "/admin/realms", headers=ADMIN_AUTH, name="with a disconnected realm", want=200)

# ---- 410 behind the feed retention ----
ok(q.stop() == 0, "qbcdc stops cleanly")
env.update({"QBCDC_FEED_RETENTION": "1", "QBCDC_PRUNE_INTERVAL_MS": "100"})
q = Proc([QBCDC, "serve"], env=env)
ok(wait_http(qport), "qbcdc restarts with a one-second feed retention")
sim.json("POST", "/sim/mutate?n=5&realm=%s" % realms[0])
deadline = time.time() + 20
st = 0
while time.time() < deadline:
    st, _, _ = request(qport, "GET", "/v1/changes?after=0", headers=FEED_AUTH)
    if st == 410:
        break
    time.sleep(0.2)
check("GET", "/v1/changes?after=0", headers=FEED_AUTH, name="behind the retention", want=410)

# ---- a second service with nothing configured: the 403s and 503s ----
p2, port2, _ = start_qbcdc(tokens=None)
qport_main, qport = qport, port2
check("GET", "/v1/changes", headers=FEED_AUTH, name="no feed token configured", want=403)
check("GET", "/v1/changes/stream", headers=FEED_AUTH, name="no feed token configured", want=403)
check("GET", "/admin/realms", headers=ADMIN_AUTH, name="no admin token configured", want=403)
check("POST", "/webhooks/intuit", "{}", {"intuit-signature": "x"}, "no verifier token", 503)
check("GET", "/connect", name="no OAuth client", want=503)
check("GET", "/oauth/callback", name="no state", want=400)
ok(p2.stop() == 0, "the second service stops cleanly")
qport = qport_main

diag("validated %d (operation, status) pairs" % len(seen))
ok(q.stop() == 0, "qbcdc stops cleanly")
sim.stop()
done_testing()
