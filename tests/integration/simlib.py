"""simlib.py — helpers shared by the qbosim integration tests (test_sim_*.py).

Starts build/qbosim on a free loopback port, gets tokens through its OAuth
endpoint, and runs a tiny webhook receiver in a thread.
"""
import base64
import http.server
import json
import subprocess
import threading
import time
import urllib.parse

from harness import QBCDC, QBOSIM, Proc, diag, free_port, is_, ok, request, tmpdir, wait_http

CLIENT_ID = "test-client"
CLIENT_SECRET = "test-secret"
VERIFIER = "test-verifier-token"


def basic():
    return "Basic " + base64.b64encode(("%s:%s" % (CLIENT_ID, CLIENT_SECRET)).encode()).decode()


class Sim:
    def __init__(self, args=None, realms=2, entities=30):
        self.port = free_port()
        argv = [QBOSIM, "--listen", "127.0.0.1:%d" % self.port, "--realms", str(realms), "--seed", "1",
                "--entities", str(entities), "--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET,
                "--verifier-token", VERIFIER] + (args or [])
        self.proc = Proc(argv)
        if not wait_http(self.port, "/sim/health"):
            diag("qbosim did not come up; its log:\n" + self.proc.output())

    def req(self, method, path, body=None, headers=None, timeout=10.0):
        return request(self.port, method, path, body=body, headers=headers, timeout=timeout)

    def json(self, method, path, body=None, headers=None):
        st, h, b = self.req(method, path, body, headers)
        try:
            return st, json.loads(b) if b else None
        except ValueError:
            return st, b

    def realms(self):
        return self.json("GET", "/sim/realms")[1]

    def token(self, refresh_token):
        body = urllib.parse.urlencode({"grant_type": "refresh_token", "refresh_token": refresh_token})
        return self.json("POST", "/oauth2/v1/tokens/bearer", body,
                         {"Authorization": basic(), "Content-Type": "application/x-www-form-urlencoded",
                          "Accept": "application/json"})

    def access(self, realm):
        """a fresh access token for realm."""
        st, j = self.token(self.realms()[realm]["refresh_token"])
        return j["access_token"]

    def api(self, method, realm, path, at, body=None, headers=None):
        h = {"Authorization": "Bearer " + at, "Accept": "application/json"}
        h.update(headers or {})
        return self.json(method, "/v3/company/%s/%s" % (realm, path), body, h)

    def api_raw(self, method, realm, path, at, body=None, headers=None):
        """(status, raw body bytes) of a /v3/company/{realm}/{path} call: for byte comparisons"""
        h = {"Authorization": "Bearer " + at, "Accept": "application/json"}
        h.update(headers or {})
        st, _, b = self.req(method, "/v3/company/%s/%s" % (realm, path), body, h)
        return st, b

    def entity_bytes(self, realm, entity, id):
        """the exact bytes qbosim splices into every answer that carries this entity (its
        read, queries, CDC, batch): GET /sim/entity, no token, not metered. None if never created."""
        st, _, b = self.req("GET", "/sim/entity?" + urllib.parse.urlencode({"realm": realm, "entity": entity,
                                                                             "id": str(id)}))
        return b if st == 200 else None

    def stop(self):
        return self.proc.stop()


def answer_value(body, key):
    """the raw bytes of the value under key in a qbosim answer {"<key>":<value>,"time":"..."}
    (an entity read gives the entity's bytes as QBO sent them); None if body has another shape."""
    head = b'{"%s":' % key.encode()
    cut = body.rfind(b',"time":')
    if not body.startswith(head) or cut < len(head):
        return None
    return body[len(head):cut]


# qbosim's exact-value cases (sim/README.md, "Exact values"): the entity with Id i carries
# case (i - 1) % EXACT_CYCLE; these are their bytes on the wire.
EXACT_CYCLE = 16
EXACT_NUMBERS = [b"2932.92", b"73.69", b"0.1", b"1e-7", b"12345678901234567890", b"-0.0", b"1E+2",
                 b"0.30000000000000004"]
EXACT_STRINGS = [rb"Caf\u00e9", "Caf\u00e9".encode(), rb"Parts \/ Labour", "Smile \U0001F600".encode(),
                 rb"Smile \ud83d\ude00", rb'The \"Best\" Co', rb"C:\\Books\\2026", rb"Line one\nLine two"]
# transactions (Invoice, Payment, Bill, JournalEntry) with these cases carry this TotalAmt (from cents)
EXACT_MONEY = [b"2932.92", b"73.69", b"0.10"]


class Receiver:
    """collects webhook POSTs: list of (headers dict lowercased, raw body bytes).

    status_fn(n) gives the status for the n-th request (0-based); default 200.
    """

    def __init__(self, status_fn=None):
        self.got = []
        self.lock = threading.Lock()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with outer.lock:
                    idx = len(outer.got)
                    outer.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                st = status_fn(idx) if status_fn else 200
                self.send_response(st)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        self.url = "http://127.0.0.1:%d/hooks" % self.port
        self.t = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.t.start()

    def wait(self, n, timeout=10.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if len(self.got) >= n:
                    return True
            time.sleep(0.02)
        return False

    def bodies(self):
        with self.lock:
            return list(self.got)

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


# ---- qbcdc against qbosim: shared by the reconciliation tests ----

ADMIN = "test-admin-token"


def qbcdc_lines(*args):
    """runs `qbcdc <args>` (a read-only store view) and returns its JSON lines."""
    r = subprocess.run([QBCDC] + list(args), capture_output=True, timeout=60)
    if r.returncode != 0:
        diag("qbcdc %s failed: %s" % (" ".join(args), r.stderr.decode()))
        return []
    return [json.loads(l) for l in r.stdout.decode().splitlines() if l.strip()]


def flat_truth(t):
    """/sim/truth as {(realm, Entity, id): SyncToken, or None when deleted}"""
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
    """(API calls counted by qbosim over all realms, the whole /sim/stats answer)"""
    st, s = sim.json("GET", "/sim/stats")
    total = sum(r.get("total", 0) for r in s.get("realms", {}).values())
    return total, s


# the entity types qbosim holds (it refuses CDC and queries for others)
SIM_ENTITIES = "Customer,Vendor,Item,Account,Invoice,Payment,Bill,JournalEntry"


FEED_TOKEN = "test-feed-token"


def feed_changes(port):
    """the whole feed of the qbcdc on port, as /v1/changes serves it: {seq: change object}"""
    out, after = {}, 0
    while True:
        st, _, b = request(port, "GET", "/v1/changes?limit=1000&after=%d" % after,
                           headers={"Authorization": "Bearer " + FEED_TOKEN})
        page = json.loads(b)
        for c in page["changes"]:
            out[c["seq"]] = c
        if not page["changes"]:
            return out
        after = page["next"]


def serve_env(port, data_dir, sim):
    """the environment for `qbcdc serve` on port, using sim as Intuit."""
    return {"QBCDC_LISTEN": "127.0.0.1:%d" % port, "QBCDC_DATA_DIR": data_dir, "QBCDC_SIM": "off",
            "QBCDC_WEBHOOK_VERIFIER_TOKENS": VERIFIER, "QBCDC_CLIENT_ID": CLIENT_ID,
            "QBCDC_CLIENT_SECRET": CLIENT_SECRET, "QBCDC_API_BASE": "http://127.0.0.1:%d" % sim.port,
            "QBCDC_OAUTH_TOKEN_URL": "http://127.0.0.1:%d/oauth2/v1/tokens/bearer" % sim.port,
            "QBCDC_ADMIN_TOKEN": ADMIN, "QBCDC_FEED_TOKEN": FEED_TOKEN, "QBCDC_LOG_LEVEL": "warn",
            "QBCDC_CDC_ENTITIES": SIM_ENTITIES,
            # ungoverned: second-long CDC intervals would be stretched to fit a month's budget
            # (test_allowance.py governs)
            "QBCDC_MONTHLY_CALL_BUDGET": "0"}


def serve_with_sim(sim, port, prefix, extra_env=None):
    """`qbcdc serve` on port with sim as Intuit and every simulated realm registered:
    (Proc, data_dir, sorted realm ids)"""
    data_dir = tmpdir(prefix)
    env = serve_env(port, data_dir, sim)
    env.update(extra_env or {})
    q = Proc([QBCDC, "serve"], env=env)
    ok(wait_http(port), "qbcdc serve is up", q.output())
    realms = sorted(sim.realms())
    is_(register_realms(port, sim), len(realms), "every realm registered")
    return q, data_dir, realms


def register_realms(port, sim):
    """PUTs every simulated company's refresh token to qbcdc; returns how many were accepted."""
    n = 0
    for realm, v in sim.realms().items():
        st, _, _ = request(port, "PUT", "/admin/realms/%s/tokens" % realm, json.dumps({"refresh_token": v["refresh_token"]}),
                           {"Authorization": "Bearer " + ADMIN, "Content-Type": "application/json"})
        n += 200 <= st < 300
    return n


def compare_to_truth(truth, truth0, data_dir):
    """([(key, got, want)] mismatches, [changed keys missing], [duplicate feed versions], feed records)"""
    changed = {k for k, v in truth.items() if truth0.get(k, "absent") != v}
    ents = {(e["realm"], e["entity"], e["id"]): e for e in qbcdc_lines("entities", "--data-dir", data_dir)}
    wrong = []
    for k, e in ents.items():
        want = truth.get(k, "absent")
        got = None if e.get("deleted") else e.get("version")
        if want != got:
            wrong.append((k, got, want))
    missing = [k for k in changed if k not in ents]
    feed = qbcdc_lines("feed", "--data-dir", data_dir, "--limit", "1000000")
    seen, dups = set(), []
    for rec in feed:
        key = (rec["realm"], rec["entity"], rec["id"], rec.get("version") if rec.get("op") != "delete" else "deleted")
        if key in seen:
            dups.append(key)
        seen.add(key)
    return wrong, missing, dups, feed, changed


def wait_drained(sim, data_dir, timeout=90, poll=0.5):
    """waits until qbosim has no webhook left to deliver and qbcdc no notice pending
    (checked every poll seconds); returns [] when drained, else the notices still pending."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        _, s = sim_calls(sim)
        if s.get("webhooks", {}).get("pending", 0) == 0 and not qbcdc_lines("pending", "--data-dir", data_dir,
                                                                              "--limit", "1"):
            return []
        time.sleep(poll)
    return qbcdc_lines("pending", "--data-dir", data_dir) or [None]


def admin(port, method, path, body=None):
    """one call to qbcdc's admin API with the tests' admin token: (status, parsed JSON or raw body)"""
    st, _, b = request(port, method, path, body,
                       {"Authorization": "Bearer " + ADMIN, "Content-Type": "application/json"})
    try:
        return st, json.loads(b) if b else None
    except ValueError:
        return st, b


def wait_job(port, job, want=("done", "failed"), timeout=60):
    """polls GET /admin/jobs/{job} until its status is one of want (or timeout s); returns the
    last job object read"""
    deadline = time.time() + timeout
    j = None
    while time.time() < deadline:
        st, j = admin(port, "GET", "/admin/jobs/%s" % job)
        if st == 200 and j.get("status") in want:
            return j
        time.sleep(0.2)
    return j
