"""natslib.py — a nats-server for tests, and just enough of the NATS protocol to read a
JetStream stream back (no NATS client library for Python is packaged in Debian 12).

JetStream's API is request/reply over plain NATS: `$JS.API.STREAM.INFO.<stream>` and
`$JS.API.STREAM.MSG.GET.<stream>` with {"seq":N} answer JSON, the message's headers and data
in base64.
"""
import base64
import json
import os
import shutil
import socket
import time

from harness import Proc, diag, free_port, tmpdir

NATS_SERVER = shutil.which("nats-server")


class NatsServer:
    """nats-server with JetStream on a loopback port; restartable on the same port and store"""

    def __init__(self):
        self.port = free_port()
        self.store = tmpdir("qbcdc-nats-")
        self.proc = None
        self.start()

    def start(self):
        self.proc = Proc([NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", self.store])
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        diag("nats-server did not come up: " + self.proc.output())

    def url(self):
        return "nats://127.0.0.1:%d" % self.port

    def stop(self):
        return self.proc.stop()


class NatsCluster:
    """n nats-servers with JetStream, clustered over loopback routes; each restartable on its ports and store"""

    def __init__(self, n=3, name="qbcdc-test"):
        self.ports = [free_port() for _ in range(n)]
        self.routes = [free_port() for _ in range(n)]
        self.stores = [tmpdir("qbcdc-nats-") for _ in range(n)]
        self.name = name
        self.procs = [None] * n
        for i in range(n):
            self.start(i)
        for i in range(n):
            self.wait_port(self.ports[i])
        # JetStream answers once the servers have elected a meta leader
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                c = Client(self.ports[0])
                info = c.request("$JS.API.INFO", {})
                c.close()
                if info and "error" not in info:
                    break
            except OSError:
                pass
            time.sleep(0.2)

    def start(self, i):
        routes = ",".join("nats://127.0.0.1:%d" % p for p in self.routes)
        self.procs[i] = Proc([NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.ports[i]), "-js", "-sd", self.stores[i],
                              "--server_name", "n%d" % (i + 1), "--cluster_name", self.name, "--cluster",
                              "nats://127.0.0.1:%d" % self.routes[i], "--routes", routes])

    @staticmethod
    def wait_port(port):
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return True
            except OSError:
                time.sleep(0.05)
        return False

    def url(self):
        return ",".join("nats://127.0.0.1:%d" % p for p in self.ports)

    def kill9(self, i):
        return self.procs[i].kill9()

    def stop(self):
        for p in self.procs:
            if p is not None:
                p.stop()


class Client:
    """request/reply over one NATS connection"""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""
        self._line()  # INFO
        self.s.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true}\r\n'
                       b"SUB _INBOX.qbcdc 1\r\nPING\r\n")
        while self._line() != b"PONG":
            pass

    def _line(self):
        while b"\r\n" not in self.buf:
            self.buf += self.s.recv(65536)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _bytes(self, n):
        while len(self.buf) < n + 2:
            self.buf += self.s.recv(65536)
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def request(self, subject, payload):
        body = json.dumps(payload).encode()
        self.s.sendall(b"PUB %s _INBOX.qbcdc %d\r\n%s\r\n" % (subject.encode(), len(body), body))
        while True:
            line = self._line()
            if line.startswith(b"MSG "):
                return json.loads(self._bytes(int(line.split()[-1])))
            if line.startswith(b"HMSG "):
                parts = line.split()
                data = self._bytes(int(parts[-1]))
                return json.loads(data[int(parts[-2]):] or b"{}")
            if line == b"PING":
                self.s.sendall(b"PONG\r\n")

    def stream_info(self, stream):
        return self.request("$JS.API.STREAM.INFO." + stream, {})

    def messages(self, stream):
        """every message of the stream: [(stream seq, subject, headers dict, data bytes)]"""
        info = self.stream_info(stream)
        state = info.get("state", {})
        out = []
        for seq in range(state.get("first_seq", 1), state.get("last_seq", 0) + 1):
            # an answer without the message is either "no message found" (10037: deleted) or a
            # passing refusal (no responders, a leader being elected after a nats-server was
            # killed): only the first means the stream does not hold it
            for _ in range(100):
                r = self.request("$JS.API.STREAM.MSG.GET." + stream, {"seq": seq})
                m = r.get("message")
                if m or (r.get("error") or {}).get("err_code") == 10037:
                    break
                time.sleep(0.1)
            if not m:
                continue
            hdrs = {}
            for l in base64.b64decode(m.get("hdrs", "") or b"").decode().split("\r\n")[1:]:
                if ":" in l:
                    k, v = l.split(":", 1)
                    hdrs[k.strip()] = v.strip()
            out.append((m["seq"], m["subject"], hdrs, base64.b64decode(m.get("data", "") or b"")))
        return out

    def close(self):
        self.s.close()


M64 = (1 << 64) - 1


def mixed_fnv(data):
    """cluster/partition.c: FNV-1a 64 over the bytes, then splitmix64's finaliser"""
    h = 14695981039346656037
    for b in data:
        h = ((h ^ b) * 1099511628211) & M64
    h ^= h >> 30
    h = (h * 0xbf58476d1ce4e5b9) & M64
    h ^= h >> 27
    h = (h * 0x94d049bb133111eb) & M64
    return h ^ (h >> 31)


def partition_of(realm, n):
    """cluster/partition.c qbc_cluster_partition_of: the realm's partition of n"""
    return mixed_fnv(realm.encode()) % n


def preferred(p, ids):
    """cluster/partition.c qbc_cluster_preferred: the node of the highest rendezvous score for partition p"""
    return max(sorted(ids), key=lambda node: mixed_fnv(node.encode() + b"\0" + p.to_bytes(4, "big")))
