"""harness.py — shared helpers for the integration tests (TAP output, processes, HTTP).

Every integration test is a python3 script that prints TAP and is run by `prove`
(see .ci/run). It starts the real binaries from the build directory named by
$QBCDC_BUILD (default: build) on loopback ports and talks HTTP to them. Every wait
is bounded; every process started is killed when the script exits.
"""
import atexit
import base64
import hashlib
import hmac
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, os.environ.get("QBCDC_BUILD", "build"))
QBCDC = os.path.join(BUILD, "qbcdc")
QBOSIM = os.path.join(BUILD, "qbosim")

_n = 0
_failed = 0
_procs = []
_tmpdirs = []


def ok(cond, name, detail=None):
    """one TAP assertion; returns cond so callers can chain."""
    global _n, _failed
    _n += 1
    print(("ok" if cond else "not ok") + " %d - %s" % (_n, name), flush=True)
    if not cond:
        _failed += 1
        if detail is not None:
            for line in str(detail).splitlines()[:20]:
                print("#   " + line, flush=True)
    return cond


def is_(got, want, name):
    return ok(got == want, name, "got %r, want %r" % (got, want))


def diag(msg):
    print("# " + str(msg), flush=True)


def done_testing():
    print("1..%d" % _n, flush=True)
    sys.exit(0 if _failed == 0 else 1)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def tmpdir(prefix="qbcdc-test-"):
    d = tempfile.mkdtemp(prefix=prefix)
    _tmpdirs.append(d)
    return d


def sign(body, token):
    """intuit-signature: base64(HMAC-SHA256(token, raw body))."""
    if isinstance(body, str):
        body = body.encode()
    return base64.b64encode(hmac.new(token.encode(), body, hashlib.sha256).digest()).decode()


class Proc:
    """a started program whose stderr goes to a log file; killed at exit."""

    def __init__(self, argv, env=None, log=None):
        self.argv = argv
        self.log_path = log or os.path.join(tmpdir("qbcdc-log-"), "stderr.log")
        self.log = open(self.log_path, "ab")
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.p = subprocess.Popen(argv, env=full_env, stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
        self.asked_to_exit = False
        _procs.append(self)

    def alive(self):
        return self.p.poll() is None

    def kill9(self):
        self.asked_to_exit = True
        if self.alive():
            self.p.send_signal(signal.SIGKILL)
        return self.p.wait(timeout=10)

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """sends sig and waits; returns the exit code (SIGKILLs after timeout, returns None then)."""
        self.asked_to_exit = True
        if self.alive():
            self.p.send_signal(sig)
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait(timeout=10)
            return None

    def output(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")


def wait_for(cond, timeout, poll=0.1):
    """calls cond every poll seconds until it returns something true (returned) or timeout
    seconds pass (then its last answer is returned): tests wait for what they mean, not a time"""
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(poll)
    return cond()


def wait_http(port, path="/healthz", timeout=10.0, host="127.0.0.1"):
    """waits until GET path answers anything; returns True if it did within timeout."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection(host, port, timeout=1)
            c.request("GET", path)
            c.getresponse().read()
            c.close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def request(port, method, path, body=None, headers=None, timeout=10.0, host="127.0.0.1"):
    """one HTTP/1.1 request on a fresh connection; returns (status, headers dict lowercased, body bytes)."""
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    if isinstance(body, str):
        body = body.encode()
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    return r.status, hdrs, data


def metric(port, name):
    """the value of an unlabelled sample `name` in qbcdc's GET /metrics, or None"""
    st, _, body = request(port, "GET", "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def start_qbcdc(data_dir=None, tokens="test-verifier-token", extra_env=None, args=None):
    """starts `qbcdc serve` on a free loopback port; returns (Proc, port, data_dir)."""
    port = free_port()
    data_dir = data_dir or tmpdir("qbcdc-data-")
    # no bundled simulator unless a test asks for one (it would take port 9090); the monthly call
    # budget ungoverned: second-long CDC intervals would otherwise be stretched to fit a month
    env = {"QBCDC_LISTEN": "127.0.0.1:%d" % port, "QBCDC_DATA_DIR": data_dir, "QBCDC_SIM": "off",
           "QBCDC_MONTHLY_CALL_BUDGET": "0"}
    if tokens is not None:
        env["QBCDC_WEBHOOK_VERIFIER_TOKENS"] = tokens
    env.update(extra_env or {})
    p = Proc([QBCDC, "serve"] + (args or []), env=env)
    if not wait_http(port):
        diag("qbcdc did not come up; its log:\n" + p.output())
    return p, port, data_dir


def _report_unasked_exits():
    """after a failed test: the exit status and the log's tail of every program that exited
    without the test asking, so a crash in CI leaves its trace in the TAP output."""
    for p in _procs:
        rc = p.p.poll()
        if rc is None or p.asked_to_exit:
            continue
        diag("%s exited by itself with status %d; the end of its log:" % (" ".join(p.argv[:2]), rc))
        try:
            for line in p.output().splitlines()[-60:]:
                diag("  " + line)
        except OSError as e:
            diag("  (log unreadable: %s)" % e)


def _cleanup():
    if _failed:
        _report_unasked_exits()
    for p in _procs:
        try:
            if p.alive():
                p.p.kill()
                p.p.wait(timeout=5)
        except Exception:
            pass
    if not os.environ.get("QBCDC_KEEP_TMP"):
        for d in _tmpdirs:
            shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup)
