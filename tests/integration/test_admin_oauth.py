#!/usr/bin/env python3
"""PUT /admin/realms/{realm}/tokens, GET /admin/realms, and the OAuth connect flow
(GET /connect -> qbosim's consent screen -> GET /oauth/callback) against the real
binaries. Checks bearer rules (403 when no admin token is configured, 401 wrong),
input validation, one-use state, and that no token leaks into logs, answers or the
data file.
"""
import json
import os
import stat
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403

ADMIN = "admin-secret-token"
SECRET_RT = "RT-secret-refresh-9f8e7d"
SECRET_AT = "AT-secret-access-1a2b3c"


def put_tokens(port, realm, body, token=ADMIN):
    h = {"Content-Type": "application/json"}
    if token:
        h["Authorization"] = "Bearer " + token
    return request(port, "PUT", "/admin/realms/%s/tokens" % realm, json.dumps(body) if isinstance(body, dict) else body, h)


# ---- /admin is off without QBCDC_ADMIN_TOKEN ----
proc, port, data = start_qbcdc()
st, _, body = put_tokens(port, "123", {"refresh_token": "x"}, token="anything")
ok(st == 403 and json.loads(body)["error"] == "disabled", "no admin token configured: 403", body)
proc.stop()

sim_port = free_port()
proc, port, data = start_qbcdc(extra_env={"QBCDC_ADMIN_TOKEN": ADMIN, "QBCDC_SIM": "auto",
                                          "QBCDC_SIM_LISTEN": "127.0.0.1:%d" % sim_port})
ok(wait_http(sim_port, "/sim/realms"), "bundled simulator up")

st, hdrs, _ = put_tokens(port, "123", {"refresh_token": "x"}, token=None)
ok(st == 401 and "bearer" in hdrs.get("www-authenticate", "").lower(), "no bearer: 401 with WWW-Authenticate")
st, _, _ = put_tokens(port, "123", {"refresh_token": "x"}, token=ADMIN + "x")
is_(st, 401, "wrong bearer: 401")
for bad, why in [("not json", "not JSON"), ({"access_token": "a"}, "no refresh token"),
                 ({"refresh_token": ""}, "empty refresh token"), ({"refresh_token": 5}, "refresh token not a string"),
                 ({"refresh_token": "r", "expires_in": -1}, "negative expires_in"),
                 ({"refresh_token": "r" * 5000}, "refresh token too long")]:
    st, _, body = put_tokens(port, "123", bad)
    ok(st == 400 and "error" in json.loads(body), "400 for %s" % why, body)
st, _, _ = put_tokens(port, "12%2F3", {"refresh_token": "r"})
ok(st in (400, 404), "a realm id with a slash is refused")

st, _, body = put_tokens(port, "4620816365", {"refresh_token": SECRET_RT, "access_token": SECRET_AT, "expires_in": 3600})
# a realm the store never held: its snapshot starts with the registration (issue 9)
ans = json.loads(body) if st == 200 else {}
ok(st == 200 and {k: v for k, v in ans.items() if k != "snapshot_job"} == {"realm": "4620816365", "status": "active"}
   and str(ans.get("snapshot_job", "")).isdigit(), "tokens registered, a snapshot job started", body)
ok(SECRET_RT not in body.decode() and SECRET_AT not in body.decode(), "the answer does not echo tokens")
st, _, body = put_tokens(port, "4620816365", {"refresh_token": SECRET_RT + "2"})
ok(st == 200 and "snapshot_job" not in json.loads(body), "tokens replaced, no second snapshot", body)

st, _, body = request(port, "GET", "/admin/realms", headers={"Authorization": "Bearer " + ADMIN})
realms = {r["realm"]: r for r in json.loads(body)["realms"]}
# its snapshot cannot run: qbosim does not know the realm, so the refresh its first call needs is
# refused (invalid_grant) and the realm becomes disconnected, at a moment this read may precede
ok("4620816365" in realms and realms["4620816365"]["status"] in ("active", "snapshotting", "disconnected") and
   realms["4620816365"]["has_tokens"] and realms["4620816365"]["snapshot"]["job"] == ans.get("snapshot_job"),
   "GET /admin/realms lists the realm with tokens and its snapshot", realms.get("4620816365"))
ok(SECRET_RT not in body.decode(), "and shows no token")

# ---- the connect flow through qbosim's consent screen ----
st, hdrs, _ = request(port, "GET", "/connect?state_hint=acme%20corp")
loc = hdrs.get("location", "")
is_(st, 302, "GET /connect redirects")
q = urllib.parse.parse_qs(urllib.parse.urlparse(loc).query)
ok(loc.startswith("http://127.0.0.1:%d/connect/oauth2?" % sim_port), "to the consent screen", loc)
ok(q.get("response_type") == ["code"] and q.get("client_id") and q.get("state") and q.get("redirect_uri"),
   "with client_id, response_type, redirect_uri and state")
is_(q.get("scope"), ["com.intuit.quickbooks.accounting"], "asking for the accounting scope")
u = urllib.parse.urlparse(loc)
st, hdrs, _ = request(sim_port, "GET", u.path + "?" + u.query)
cb = urllib.parse.urlparse(hdrs.get("location", ""))
is_(st, 302, "the consent screen redirects back")
cbq = urllib.parse.parse_qs(cb.query)
realm = cbq.get("realmId", [""])[0]
ok(cb.path == "/oauth/callback" and realm and cbq.get("code"), "with code and realmId")
st, _, body = request(port, "GET", cb.path + "?" + cb.query)
ok(st == 200 and json.loads(body) == {"realm": realm, "status": "active", "state_hint": "acme corp"},
   "the callback exchanges the code and stores the tokens", body)
st, _, body = request(port, "GET", cb.path + "?" + cb.query)
ok(st == 400 and json.loads(body)["error"] == "bad_state", "a state works once", body)
st, _, body = request(port, "GET", "/oauth/callback?code=x&realmId=1&state=forged")
is_(st, 400, "a forged state is refused")
# a state altered by one character (its hint, its expiry, its signature) is refused
st, hdrs, _ = request(port, "GET", "/connect?state_hint=x")
good = urllib.parse.parse_qs(urllib.parse.urlparse(hdrs["location"]).query)["state"][0]
for pos in (0, 30, len(good) - 1):
    bad = good[:pos] + ("0" if good[pos] != "0" else "1") + good[pos + 1:]
    st, _, body = request(port, "GET", "/oauth/callback?code=x&realmId=1&state=" + bad)
    ok(st == 400 and json.loads(body)["error"] == "bad_state", "a state altered at %d is refused" % pos, body)
# unauthenticated connects cost no memory: 5,000 of them leave /connect working (issue 11 #5: a
# table of 4,096 states filled up and refused legitimate connects for 10 minutes)
import http.client
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
codes = set()
for i in range(5000):
    c.request("GET", "/connect?state_hint=flood")
    r = c.getresponse()
    r.read()
    codes.add(r.status)
c.close()
is_(sorted(codes), [302], "5,000 connects in a row all redirect")

# a fresh state whose code the token endpoint refuses (wrong code)
st, hdrs, _ = request(port, "GET", "/connect")
state = urllib.parse.parse_qs(urllib.parse.urlparse(hdrs["location"]).query)["state"][0]
st, _, body = request(port, "GET", "/oauth/callback?code=bogus&realmId=777&state=" + state)
ok(st == 502 and json.loads(body)["error"] == "token_exchange_failed", "a refused code: 502 with the reason", body)
ok("invalid_grant" in body.decode(), "naming the OAuth error")

st, _, body = request(port, "GET", "/admin/realms", headers={"Authorization": "Bearer " + ADMIN})
ok(realm in {r["realm"] for r in json.loads(body)["realms"]}, "the connected realm is listed")
ok("777" not in {r["realm"] for r in json.loads(body)["realms"]}, "the refused one is not")

# ---- dead letters (none yet) ----
AUTH = {"Authorization": "Bearer " + ADMIN}
st, _, body = request(port, "GET", "/admin/dead-letters", headers=AUTH)
ok(st == 200 and json.loads(body) == {"dead_letters": []}, "GET /admin/dead-letters: empty list", body)
st, _, _ = request(port, "POST", "/admin/dead-letters/999/retry", headers=AUTH)
is_(st, 404, "retrying an unknown dead letter: 404")
st, _, _ = request(port, "POST", "/admin/dead-letters/abc/retry", headers=AUTH)
is_(st, 404, "a malformed id: 404")

# ---- disconnect: revoke at Intuit (qbosim), erase here ----
st, _, body = request(sim_port, "GET", "/sim/realms")
sim_rt = json.loads(body)[realm]["refresh_token"]
st, _, body = request(port, "DELETE", "/admin/realms/" + realm, headers=AUTH)
ok(st == 200 and json.loads(body) == {"realm": realm, "status": "disconnected", "revoked": True},
   "DELETE /admin/realms/{realm}: revoked at Intuit and disconnected", body)
st, _, body = request(sim_port, "GET", "/sim/realms")
ok(json.loads(body)[realm]["refresh_token"] != sim_rt, "the simulator saw the connection revoked")
st, _, body = request(port, "GET", "/admin/realms", headers=AUTH)
r = {x["realm"]: x for x in json.loads(body)["realms"]}[realm]
ok(r["status"] == "disconnected" and not r["has_tokens"], "the realm is listed disconnected, without tokens")
st, _, body = request(port, "DELETE", "/admin/realms/4620816365", headers=AUTH)
b = json.loads(body)
# RFC 7009: revoking a token the server does not know still answers 200
ok(st == 200 and b["status"] == "disconnected", "a realm whose token Intuit does not know: disconnected", body)
st, _, _ = request(port, "DELETE", "/admin/realms/99999", headers=AUTH)
is_(st, 404, "DELETE of an unknown realm: 404")
st, _, body = put_tokens(port, realm, {"refresh_token": "new-" + SECRET_RT})
st, _, body = request(port, "GET", "/admin/realms", headers=AUTH)
r = {x["realm"]: x for x in json.loads(body)["realms"]}[realm]
# dev mode registered the simulator's companies with a snapshot each; this one may still be reading
ok(r["status"] in ("active", "snapshotting") and r["has_tokens"] and
   (r["last_error"] is None or "QBO refused" in r["last_error"]),
   "new tokens make it active again", r)

# ---- the same operations from the command line ----
import subprocess


def qcli(*args, stdin=b"", token=ADMIN):
    env = dict(os.environ, QBCDC_LISTEN="127.0.0.1:%d" % port, QBCDC_ADMIN_TOKEN=token)
    r = subprocess.run([QBCDC] + list(args), input=stdin, capture_output=True, timeout=30, env=env)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


rc, out, err = qcli("realms")
ok(rc == 0 and realm in {x["realm"] for x in json.loads(out)["realms"]}, "qbcdc realms lists the realms", err)
rc, out, err = qcli("register", "5550001", stdin=(SECRET_RT + "-cli\n").encode())
ok(rc == 0 and json.loads(out)["status"] == "active", "qbcdc register REALM takes the refresh token on stdin", out + err)
ok(SECRET_RT not in out + err, "and does not print it")
rc, out, err = qcli("register", "5550001", stdin=b"")
is_(rc, 2, "register with nothing on stdin: exit 2")
rc, out, err = qcli("disconnect", "5550001")
ok(rc == 0 and json.loads(out)["status"] == "disconnected", "qbcdc disconnect REALM", out + err)
rc, out, err = qcli("dead-letters")
ok(rc == 0 and json.loads(out) == {"dead_letters": []}, "qbcdc dead-letters", out + err)
rc, out, err = qcli("retry", "999")
is_(rc, 1, "qbcdc retry of an unknown dead letter: exit 1 (the API's 404)")
rc, out, err = qcli("realms", token="wrong")
is_(rc, 1, "a wrong admin token: exit 1")
rc, out, err = qcli("retry")
is_(rc, 2, "retry without an id: exit 2")

is_(proc.stop(), 0, "clean stop")
log = proc.output()
ok(SECRET_RT not in log and SECRET_AT not in log, "no token in the log")
ok("registered" in log, "registrations are logged")
with open(os.path.join(data, "data.mdb"), "rb") as f:
    raw = f.read()
ok(SECRET_RT.encode() not in raw and SECRET_AT.encode() not in raw, "no token in clear in data.mdb")
key = os.path.join(data, "master.key")
ok(os.path.getsize(key) == 32 and stat.S_IMODE(os.stat(key).st_mode) == 0o600, "master.key: 32 bytes, mode 0600")
done_testing()
