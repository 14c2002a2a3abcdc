#!/usr/bin/env python3
"""qbosim: OAuth, entity read, query, CDC, batch, 401/610/4000 faults, /sim/* (CONTRACT.md "Simulator").

Shapes are checked against the sourced samples in /work/shared/qbo-facts.md (§2, §3, §4, §6, §7, §9).
"""
import datetime
import json
import re
import subprocess
import urllib.parse

from harness import QBOSIM, diag, done_testing, is_, ok
from simlib import (CLIENT_ID, EXACT_CYCLE, EXACT_MONEY, EXACT_NUMBERS, EXACT_STRINGS, Sim, answer_value,
                    basic)

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

# --- exact entity bytes (issue 9) ----------------------------------------------------------------
# A company whose records all changed within the CDC window, so one CDC answer holds them all.
# Every answer that carries an entity must carry the same bytes, and those bytes hold values a
# double round trip or a re-serialisation would change. Compared as raw bytes, not parsed.
xsim = Sim(realms=1, entities=20, args=["--seed-days", "5"])
XR = sorted(xsim.realms())[0]
XAT = xsim.access(XR)
XENTS = ("Customer", "Vendor", "Invoice", "Payment", "Bill", "JournalEntry")
XIDS = list(range(1, 9)) + [EXACT_CYCLE + 1, EXACT_CYCLE + 2]
reads, same_read, parsed_all = {}, True, True
for ent in XENTS:
    for i in XIDS:
        st, body = xsim.api_raw("GET", XR, "%s/%d?minorversion=75" % (ent.lower(), i), XAT)
        reads[(ent, i)] = answer_value(body, ent) if st == 200 else None
        same_read = same_read and reads[(ent, i)] is not None and reads[(ent, i)] == xsim.entity_bytes(XR, ent, i)
        try:
            json.loads(body)
        except ValueError:
            parsed_all = False
ok(same_read, "entity read carries exactly the /sim/entity bytes")
ok(parsed_all, "every entity read is valid JSON (python json.loads)")
idlist = ",".join("'%d'" % i for i in XIDS)
answers = {}
for ent in XENTS:
    act = " AND Active IN (true,false)" if ent in ("Customer", "Vendor") else ""
    st, answers["query " + ent] = xsim.api_raw("GET", XR, q("SELECT * FROM %s WHERE Id IN (%s)%s" % (ent, idlist, act)),
                                               XAT)
batch = {"BatchItemRequest": [{"bId": ent, "Query": "select * from %s where Id in (%s)%s" % (
    ent, idlist, " and Active in (true,false)" if ent in ("Customer", "Vendor") else "")} for ent in XENTS]}
st, answers["batch"] = xsim.api_raw("POST", XR, "batch?minorversion=75", XAT, json.dumps(batch),
                                    {"Content-Type": "application/json"})
since = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=6)).strftime("%Y-%m-%dT%H:%M:%S%%2B00:00")
st, answers["cdc"] = xsim.api_raw("GET", XR, "cdc?entities=%s&changedSince=%s&minorversion=75" % (",".join(XENTS), since),
                                  XAT)
is_(st, 200, "CDC over the whole company")
for name, body in sorted(answers.items()):
    try:
        json.loads(body)
        valid = True
    except ValueError:
        valid = False
    ok(valid, "%s answer is valid JSON (python json.loads)" % name)
for (ent, i), raw in sorted(reads.items()):
    where = [n for n in ("query " + ent, "batch", "cdc") if raw is None or raw not in answers[n]]
    ok(not where, "%s %d: the read's bytes appear verbatim in its query, batch and CDC answers" % (ent, i)) or diag(
        (where, raw))
allread = b"\n".join(r for r in reads.values() if r)
for k, num in enumerate(EXACT_NUMBERS):
    for ent, key in (("Customer", b'"Balance":'), ("Vendor", b'"Balance":'), ("Invoice", b'"Amount":')):
        ok(key + num + b"," in (reads[(ent, k + 1)] or b""), "%s %d carries %s%s verbatim" % (ent, k + 1, key.decode(),
                                                                                           num.decode()))
for k, text in enumerate(EXACT_STRINGS):
    c, inv = reads[("Customer", k + 1)] or b"", reads[("Invoice", k + 1)] or b""
    ok(b'"DisplayName":"' + text + b" %d\"" % (k + 1) in c, "Customer %d carries DisplayName %r" % (k + 1, text))
    ok(b'"Description":"' + text + b'"' in inv and b'"StringValue":"' + text + b'"' in inv,
       "Invoice %d carries %r as Line Description and CustomField StringValue" % (k + 1, text))
for k, money in enumerate(EXACT_MONEY):
    ok(all(b'"TotalAmt":' + money + b"," in (reads[(ent, k + 1)] or b"") for ent in XENTS[2:]),
       "transactions %d carry TotalAmt %s (from cents)" % (k + 1, money.decode()))
ok(b'"CustomField":[{"DefinitionId":"1","Name":"Ref","Type":"StringType","StringValue":' in allread,
   "invoices carry a CustomField qbcdc does not know about")
# changes keep the entities valid and the answers in agreement; a void zeroes the amounts
st, j = xsim.json("POST", "/sim/mutate?n=400")
truth = xsim.json("GET", "/sim/truth")[1][XR]
st, body = xsim.api_raw("GET", XR, "cdc?entities=%s&changedSince=%s" % (",".join(XENTS), since), XAT)
objs = [(name, e) for g in json.loads(body)["CDCResponse"][0]["QueryResponse"] for name, arr in g.items()
        if isinstance(arr, list) for e in arr]
missing = [(n, e["Id"]) for n, e in objs if xsim.entity_bytes(XR, n, e["Id"]) not in body]
ok(objs and not missing, "after 400 changes, each of %d CDC objects is its /sim/entity bytes" % len(objs)) or diag(
    missing[:5])
voided = [e for n, e in objs if e.get("PrivateNote") == "Voided"]
ok(voided and all(e["TotalAmt"] == 0 and all(l["Amount"] == 0 for l in e.get("Line", [])) for e in voided),
   "voided invoices and payments (%d) have TotalAmt and Line Amount 0" % len(voided))
ok(b'"TotalAmt":0.00,"PrivateNote":"Voided"' in body or not voided, "a void writes 0.00")
is_(xsim.stop(), 0, "second qbosim exits cleanly")

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
