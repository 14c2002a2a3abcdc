#!/usr/bin/env python3
"""Failures show where operators look (issue 11): a refused token refresh (wrong client
secret: invalid_client) and an abandoned CDC sweep set the realm's last_error, with the
time, in GET /admin/realms, and count in /metrics (calls by endpoint and status too; a
notice that cannot be fetched ages in qbcdc_pending_oldest_age_seconds; a requested sweep
that failed is no longer shown as requested); when the cause is gone, a successful
sweep or refresh clears what it reported. Before, both appeared in the log only while the
realm said `active` and `last_error: null`.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: F401,F403
from simlib import ADMIN, VERIFIER, admin, Sim, register_realms, serve_env, SIM_ENTITIES


def realm_row(port, realm):
    st, j = admin(port, "GET", "/admin/realms")
    return {r["realm"]: r for r in j["realms"]}.get(realm) if st == 200 else None


sim = Sim(realms=1, entities=5)
realm = next(iter(sim.realms()))
fast = {"QBCDC_BACKOFF_BASE_MS": "10", "QBCDC_BACKOFF_MAX_MS": "50", "QBCDC_CDC_INTERVAL": "3600",
        "QBCDC_CDC_ENTITIES": SIM_ENTITIES, "QBCDC_SNAPSHOT_ON_CONNECT": "0"}

# ---- a wrong client secret: the token endpoint answers invalid_client ----
port = free_port()
env = dict(serve_env(port, tmpdir("qbcdc-fail-"), sim), QBCDC_CLIENT_SECRET="wrong-secret", **fast)
q = Proc([QBCDC, "serve"], env=env)
ok(wait_http(port), "qbcdc serve is up", q.output())
is_(register_realms(port, sim), 1, "the realm registered")
admin(port, "POST", "/admin/realms/%s/cdc" % realm)  # work that needs an access token
r = wait_for(lambda: (realm_row(port, realm) or {}).get("last_error"), 20)
row = realm_row(port, realm)
ok(r and "token refresh refused" in r and "invalid_client" in r and "QBCDC_CLIENT_SECRET" in r,
   "GET /admin/realms: last_error says the refresh is refused and what to check", row)
ok(row and row.get("last_error_at"), "with the time it happened", row)
ok((metric(port, "qbcdc_qbo_token_refresh_failures_total") or 0) >= 1, "and /metrics counts it")
st, _, body = request(port, "GET", "/metrics")
ok('qbcdc_realms{status="active"} 1' in body.decode(), "qbcdc_realms by status")
calls = [l for l in body.decode().splitlines() if l.startswith('qbcdc_qbo_calls_total{endpoint="token",status="4')]
ok(calls, "qbcdc_qbo_calls_total counts the refused token calls by endpoint and status", calls)
# a change that cannot be fetched without a token: the oldest pending notice ages
hook = ('{"eventNotifications":[{"realmId":"%s","dataChangeEvent":{"entities":[{"name":"Customer","id":"1",'
        '"operation":"Update","lastUpdated":"2026-12-04T10:00:00.000Z"}]}}]}' % realm)
st, _, _ = request(port, "POST", "/webhooks/intuit", hook, {"intuit-signature": sign(hook, VERIFIER),
                                                            "Content-Type": "application/json"})
is_(st, 200, "a webhook for the realm is acked")
age = wait_for(lambda: (lambda a: a if a and a >= 1.0 else None)(metric(port, "qbcdc_pending_oldest_age_seconds")), 20)
ok(age is not None and 1.0 <= age < 60, "qbcdc_pending_oldest_age_seconds: its notice waits (%s s)" % age)
is_(q.stop(), 0, "qbcdc stops")

# ---- every CDC request fails: the sweep is abandoned, and says so; then it recovers ----
port = free_port()
q = Proc([QBCDC, "serve"], env=dict(serve_env(port, tmpdir("qbcdc-fail-"), sim), **fast))
ok(wait_http(port), "qbcdc serve is up (the right secret)", q.output())
is_(register_realms(port, sim), 1, "the realm registered")
# an access token first, so that the failures below are CDC's own
admin(port, "POST", "/admin/realms/%s/cdc" % realm)
ok(wait_for(lambda: (metric(port, "qbcdc_cdc_sweeps_total") or 0) >= 1, 30), "a first sweep completes")
sim.json("POST", "/sim/faults", json.dumps({"error_rate": 1}))
admin(port, "POST", "/admin/realms/%s/cdc" % realm)
r = wait_for(lambda: (realm_row(port, realm) or {}).get("last_error"), 30)
ok(r and r.startswith("CDC sweep failed"), "an abandoned sweep: last_error says CDC sweep failed", realm_row(port, realm))
ok((metric(port, "qbcdc_cdc_sweeps_failed_total") or 0) >= 1, "qbcdc_cdc_sweeps_failed_total counts it")
row = realm_row(port, realm)
ok(row and row.get("cdc_request_status") == "failed", "the requested sweep shows as failed, not pending forever", row)
st, _, body = request(port, "GET", "/metrics")
ok(any(l.startswith('qbcdc_qbo_calls_total{endpoint="cdc",status="5') for l in body.decode().splitlines()),
   "qbcdc_qbo_calls_total counts the CDC calls that failed, by status")
ok('qbcdc_qbo_calls_total{endpoint="cdc",status="200"}' in body.decode(), "and the ones that succeeded")
sim.json("POST", "/sim/faults", json.dumps({"error_rate": 0}))
sweeps = metric(port, "qbcdc_cdc_sweeps_total")
admin(port, "POST", "/admin/realms/%s/cdc" % realm)
ok(wait_for(lambda: (metric(port, "qbcdc_cdc_sweeps_total") or 0) > sweeps, 30), "the next sweep completes")
row = wait_for(lambda: (lambda x: x if x and x.get("last_error") is None else None)(realm_row(port, realm)), 10)
ok(row is not None and row.get("last_error_at") is None, "and clears the failure it reported", realm_row(port, realm))
is_((realm_row(port, realm) or {}).get("cdc_request_status"), "done", "the request it served shows as done")
age = metric(port, "qbcdc_cdc_watermark_age_seconds_max")
ok(age is not None and 0 < age < 600, "qbcdc_cdc_watermark_age_seconds_max: the feed is confirmed %s s back" % age)
st, _, body = request(port, "GET", "/metrics")
ok('qbcdc_jobs{state="queued"}' in body.decode() and 'qbcdc_jobs{state="failed"}' in body.decode(),
   "qbcdc_jobs by state")
is_(q.stop(), 0, "qbcdc stops")
sim.stop()
done_testing()
