#!/usr/bin/env python3
"""qbosim: OAuth, entity read, query, CDC, batch, 401/610/4000 faults, /sim/* (CONTRACT.md "Simulator").

Shapes are checked against the sourced samples in /work/shared/qbo-facts.md (§2, §3, §4, §6, §7, §9).
"""
import datetime
import re
import subprocess
import urllib.parse

from harness import QBOSIM, diag, done_testing, is_, ok
from simlib import CLIENT_ID, Sim, basic

PACIFIC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d-0[78]:00$")
PACIFIC_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}-0[78]:00$")


def q(s):
    return "query?query=" + urllib.parse.quote(s) + "&minorversion=75"


# --- command line ---------------------------------------------------------------------------
r = subprocess.run([QBOSIM, "--help"], capture_output=True, timeout=10)
is_(r.returncode, 0, "--help exits 0")
ok(b"--webhook-url" in r.stdout and b"/sim/mutate" in r.stdout, "--help lists flags and endpoints")
r = subprocess.run([QBOSIM, "--bogus"], capture_output=True, timeout=10)
is_(r.returncode, 2, "unknown flag exits 2")
is_(len(r.stderr.decode().strip().splitlines()), 1, "with a one-line error")
r = subprocess.run([QBOSIM, "--realms", "x"], capture_output=True, timeout=10)
is_(r.returncode, 2, "bad value exits 2")

sim = Sim(realms=2, entities=30)

# --- /sim/realms, OAuth -----------------------------------------------------------------------
realms = sim.realms()
is_(len(realms), 2, "/sim/realms lists every realm")
R = sorted(realms)[0]
R2 = sorted(realms)[1]
ok(all(isinstance(v.get("refresh_token"), str) for v in realms.values()), "each with a refresh_token")
rt0 = realms[R]["refresh_token"]

st, tok = sim.token(rt0)
is_(st, 200, "refresh_token grant")
is_(sorted(tok), sorted(["token_type", "expires_in", "refresh_token", "x_refresh_token_expires_in", "access_token"]),
    "token response fields (§7)")
is_(tok["token_type"], "bearer", "token_type")
is_(tok["expires_in"], 3600, "expires_in 3600")
ok(tok["refresh_token"] != rt0, "refresh token rotated")
AT = tok["access_token"]
st, tok2 = sim.token(rt0)
is_(st, 200, "previous refresh token still valid within grace")
st, j = sim.token("not-a-token")
is_((st, j.get("error")), (400, "invalid_grant"), "unknown refresh token: 400 invalid_grant")
st, j = sim.json("POST", "/oauth2/v1/tokens/bearer", "grant_type=refresh_token&refresh_token=" + rt0,
                 {"Authorization": "Basic d3Jvbmc6d3Jvbmc=", "Content-Type": "application/x-www-form-urlencoded"})
is_((st, j.get("error")), (401, "invalid_client"), "bad client credentials: 401 invalid_client")

# authorize → redirect with code, state, realmId → exchange
redirect = "http://127.0.0.1:1/callback"
st, h, b = sim.req("GET", "/connect/oauth2?" + urllib.parse.urlencode(
    {"client_id": CLIENT_ID, "redirect_uri": redirect, "response_type": "code",
     "scope": "com.intuit.quickbooks.accounting", "state": "st&ate 1", "realmId": R2}))
is_(st, 302, "authorize redirects")
loc = urllib.parse.urlparse(h.get("location", ""))
qs = urllib.parse.parse_qs(loc.query)
ok(h.get("location", "").startswith(redirect + "?"), "back to redirect_uri")
is_(qs.get("state"), ["st&ate 1"], "state round-trips")
is_(qs.get("realmId"), [R2], "realmId given")
code = qs.get("code", [""])[0]
body = urllib.parse.urlencode({"grant_type": "authorization_code", "code": code, "redirect_uri": redirect})
hdr = {"Authorization": basic(), "Content-Type": "application/x-www-form-urlencoded"}
st, j = sim.json("POST", "/oauth2/v1/tokens/bearer", body, hdr)
is_(st, 200, "code exchanged")
AT2 = j.get("access_token", "")
RT2 = j.get("refresh_token", "")
st, j = sim.json("POST", "/oauth2/v1/tokens/bearer", body, hdr)
is_((st, j.get("error")), (400, "invalid_grant"), "code is single-use")

# --- entity read ------------------------------------------------------------------------------
st, j = sim.api("GET", R, "customer/1?minorversion=75", AT)
is_(st, 200, "GET customer/1")
is_(sorted(j), ["Customer", "time"], "wrapper {Customer, time} (§9)")
c = j["Customer"]
is_(c.get("Id"), "1", "Id is a string")
ok(isinstance(c.get("SyncToken"), str), "SyncToken is a string")
ok(PACIFIC.match(c["MetaData"]["CreateTime"]) and PACIFIC.match(c["MetaData"]["LastUpdatedTime"]),
   "MetaData times in Pacific with offset")
ok(PACIFIC_MS.match(j["time"]), "response time with ms and offset")
is_((c.get("domain"), c.get("sparse")), ("QBO", False), "domain QBO, sparse false")
st, j = sim.api("GET", R, "invoice/99999", AT)
is_(st, 400, "missing entity: 400")
is_(j["Fault"]["Error"][0]["code"], "610", "610 Object Not Found (§6)")
is_(sorted(j["Fault"]["Error"][0]), ["Detail", "Message", "code", "element"], "Fault.Error keys")
st, j = sim.api("GET", R, "invoice/1", AT2)
is_(st, 401, "token of another realm: 401")
ok("fault" in j and j["fault"]["error"][0]["code"] == "3200" and j["fault"]["type"] == "AUTHENTICATION",
   "lowercase fault shape with 3200 (§6)")
ok(isinstance(j.get("time"), int), "gateway fault time is epoch ms")
st, j = sim.api("GET", R2, "invoice/1", AT2)
is_(st, 200, "code-flow token works for its realm")

# --- query ------------------------------------------------------------------------------------
st, j = sim.api("GET", R, q("SELECT * FROM Invoice STARTPOSITION 1 MAXRESULTS 10"), AT)
is_(st, 200, "query")
qr = j["QueryResponse"]
is_(sorted(qr), sorted(["Invoice", "startPosition", "maxResults", "totalCount"]), "QueryResponse keys (§3)")
is_(len(qr["Invoice"]), 10, "page of 10")
ids = []
for start in (1, 11, 21, 31):
    st, j = sim.api("GET", R, q("SELECT * FROM Invoice STARTPOSITION %d MAXRESULTS 10" % start), AT)
    ids += [e["Id"] for e in j["QueryResponse"].get("Invoice", [])]
is_(ids, [str(i) for i in range(1, 31)], "paging returns every invoice once, in Id order")
is_(j["QueryResponse"], {}, "past the end: QueryResponse {}")
st, j = sim.api("GET", R, q("SELECT COUNT(*) FROM Invoice"), AT)
is_(j["QueryResponse"], {"totalCount": 30}, "COUNT(*) -> totalCount")
st, j = sim.api("POST", R, "query?minorversion=75", AT, "select * from Bill where Id IN ('2','4')",
                {"Content-Type": "application/text"})
is_([e["Id"] for e in j["QueryResponse"]["Bill"]], ["2", "4"], "POST query with IN")
st, j = sim.api("GET", R, q("SELECT * FROM Invoice WHERE Id IN (1, 2)"), AT)
is_(st, 400, "unquoted ids: 400")
is_(j["Fault"]["Error"][0]["code"], "4000", "4000 parse error")
ok("QueryParserError" in j["Fault"]["Error"][0]["Detail"], "QueryParserError detail")
st, j = sim.api("GET", R, q("SELECT * FROM Invoice MAXRESULTS 1500"), AT)
ok(st == 400 and "Max allowed value is 1000" in j["Fault"]["Error"][0]["Detail"], "MAXRESULTS > 1000 refused")

# --- CDC --------------------------------------------------------------------------------------
now = datetime.datetime.now(datetime.timezone.utc)
since = (now - datetime.timedelta(days=31)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
st, j = sim.api("GET", R, "cdc?entities=Invoice&changedSince=" + urllib.parse.quote(since), AT)
ok(st == 400 and "older than fixed days" in j["Fault"]["Error"][0]["Detail"], "CDC past 30 days refused")
st, j = sim.json("POST", "/sim/mutate?n=40&realm=" + R)
is_((st, j), (200, {"changes": 40}), "mutate answers {changes:N}")
since = (now - datetime.timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
ents = "Customer,Vendor,Item,Account,Invoice,Payment,Bill,JournalEntry"
st, j = sim.api("GET", R, "cdc?entities=%s&changedSince=%s&minorversion=75" % (ents, urllib.parse.quote(since)), AT)
is_(st, 200, "CDC")
is_(sorted(j), ["CDCResponse", "time"], "CDCResponse + time (§2)")
groups = j["CDCResponse"][0]["QueryResponse"]
is_(len(groups), 8, "one QueryResponse element per entity")
truth = sim.json("GET", "/sim/truth")[1][R]
seen = {}
order_ok = True
for g in groups:
    for name, arr in g.items():
        if not isinstance(arr, list):
            continue
        deleted_started = False
        for e in arr:
            seen["%s/%s" % (name, e["Id"])] = e
            if e.get("status") == "Deleted":
                deleted_started = True
            elif deleted_started:
                order_ok = False
ok(order_ok, "deleted objects after active ones")
live_ok = all(truth["live"].get(k) == e["SyncToken"] for k, e in seen.items() if e.get("status") != "Deleted")
del_ok = all(k in truth["deleted"] for k, e in seen.items() if e.get("status") == "Deleted")
ok(live_ok and del_ok, "CDC agrees with /sim/truth")
ok(len(seen) > 0, "CDC saw the changes (%d objects)" % len(seen))
watermark = j["time"]
st, j = sim.json("POST", "/sim/mutate?n=5&realm=" + R)
st, j = sim.api("GET", R, "cdc?entities=%s&changedSince=%s" % (ents, urllib.parse.quote(watermark)), AT)
n = sum(len(a) for g in j["CDCResponse"][0]["QueryResponse"] for a in g.values() if isinstance(a, list))
ok(1 <= n <= 5, "response time works as the next watermark (%d objects)" % n) or diag((watermark, j))

# --- batch ------------------------------------------------------------------------------------
batch = {"BatchItemRequest": [{"bId": "bid1", "Query": "select * from Invoice maxresults 2"},
                              {"bId": "bid2", "Query": "select * from Invoice where Id IN (1)"},
                              {"bId": "bid3", "operation": "create", "Vendor": {"DisplayName": "x"}}]}
import json as _json
st, j = sim.api("POST", R, "batch?minorversion=75", AT, _json.dumps(batch), {"Content-Type": "application/json"})
is_(st, 200, "batch")
items = j.get("BatchItemResponse", [])
is_([i.get("bId") for i in items], ["bid1", "bid2", "bid3"], "BatchItemResponse correlates by bId (§4)")
is_(len(items[0]["QueryResponse"]["Invoice"]), 2, "query item answered")
ok(items[1]["Fault"]["type"] == "ValidationFault" and items[1]["Fault"]["Error"][0]["code"] == "4000",
   "bad query item gets a Fault")
ok("Fault" in items[2], "unsupported operation item gets a Fault")

# --- stats, truth -----------------------------------------------------------------------------
st, s = sim.json("GET", "/sim/stats")
rs = s["realms"][R]
ok(rs["requests"]["read"] >= 2 and rs["requests"]["query"] >= 9 and rs["requests"]["cdc"] >= 3
   and rs["requests"]["batch"] == 1, "/sim/stats counts per realm and endpoint")
ok(s["oauth"]["invalid_grant"] >= 2, "/sim/stats counts invalid_grant")
truth = sim.json("GET", "/sim/truth")[1]
ok(set(truth) == set(realms) and all(set(v) == {"live", "deleted"} for v in truth.values()), "/sim/truth shape")
ok(all(re.match(r"^[A-Za-z]+/\d+$", k) for k in truth[R]["live"]), "keys <Entity>/<id>")

# --- token faults -----------------------------------------------------------------------------
st, j = sim.json("POST", "/sim/expire-tokens")
st, j = sim.api("GET", R, "invoice/1", AT)
is_(st, 401, "expired access token: 401")
st, tok = sim.token(sim.realms()[R]["refresh_token"])
is_(st, 200, "refresh after expiry")
AT = tok["access_token"]
st, j = sim.json("POST", "/v2/oauth2/tokens/revoke", _json.dumps({"token": tok["refresh_token"]}),
                 {"Authorization": basic(), "Content-Type": "application/json"})
is_(st, 200, "revoke endpoint")
st, j = sim.token(tok["refresh_token"])
is_((st, j.get("error")), (400, "invalid_grant"), "revoked refresh token: invalid_grant")
st, j = sim.api("GET", R, "invoice/1", AT)
is_(st, 401, "revoked connection's access token: 401")
st, j = sim.json("POST", "/sim/revoke?realm=" + R2)
st, j = sim.token(RT2)
is_((st, j.get("error")), (400, "invalid_grant"), "revoke_realm kills its refresh tokens")
st, j = sim.token(sim.realms()[R2]["refresh_token"])
is_(st, 200, "/sim/realms hands out a fresh connection after a revoke")

is_(sim.stop(), 0, "SIGTERM: clean exit 0") or diag(sim.proc.output())
done_testing()
