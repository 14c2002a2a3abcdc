#!/usr/bin/env python3
"""consumer.py — a complete qbcdc feed consumer (python3, stdlib only).

    QBCDC_FEED_TOKEN=... examples/consumer.py --url http://127.0.0.1:8080 --state-dir ./consumer-state \\
        --realms 9341453050295437 --entities Customer,Invoice

It keeps a local copy of every entity it is told about (state.json: the latest version
of each (realm, entity, id), a delete as a tombstone) and its cursor (cursor.json),
following the feed's delivery rules (docs/openapi.json, "Delivery semantics"):

* Long-polls GET /v1/changes?after=<cursor>&wait=30 and applies each page, then saves
  the state, then the cursor: both files are replaced atomically (write, fsync,
  rename). A crash between the two only means the page is read again.
* Delivery is at least once, so applying is idempotent by (realm, entity, id,
  version): a version already held, or older than the one held, changes nothing.
* 409 after_beyond_head, or a feed_id other than the cursor's: the feed was replaced
  (a new or restored store) and the cursor means nothing there. 410 gone: the cursor
  is behind what the feed retention pruned. Either way: resync, by paging through
  GET /v1/realms/{realm}/entities/{entity} for every realm and entity it follows,
  then read on from the position the error named (head, pruned_through). Changes
  after it that the listing already showed are skipped by the idempotency rule.
* Network errors and 5xx: reconnect with exponential backoff (capped, jittered).

--exit-when-idle: stop after the first long-poll that brings nothing (for tests and
batch runs). Exit codes: 0 done, 1 fatal answer (401/403/400), 2 bad usage.
"""
import argparse
import decimal
import json
import os
import random
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


def log(msg):
    sys.stderr.write("consumer: %s\n" % msg)
    sys.stderr.flush()


def loads(text):
    """JSON with every non-integer number as a Decimal: QBO's amounts (2932.92, 1e-7) stay
    exact, where a float would make 73.69 into 73.689999999999998 in the next system"""
    return json.loads(text, parse_float=decimal.Decimal)


def dumps(o):
    """json.dumps that writes a Decimal as the number it is (json.dumps cannot)"""
    if isinstance(o, dict):
        return "{" + ",".join(json.dumps(str(k)) + ":" + dumps(v) for k, v in o.items()) + "}"
    if isinstance(o, list):
        return "[" + ",".join(dumps(v) for v in o) + "]"
    if isinstance(o, decimal.Decimal):
        return str(o)
    return json.dumps(o)


def save_json(path, obj):
    """replaces path atomically and durably"""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(dumps(obj))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dfd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def load_json(path, default):
    try:
        with open(path) as f:
            return loads(f.read())
    except FileNotFoundError:
        return default


class Fatal(Exception):
    pass


class Answer(Exception):
    """a non-200 answer the consumer handles (409, 410)"""

    def __init__(self, status, body):
        super().__init__("HTTP %d" % status)
        self.status, self.body = status, body


class Consumer:
    def __init__(self, url, token, state_dir, realms, entities):
        self.url, self.token = url.rstrip("/"), token
        self.realms, self.entities = list(realms), list(entities)
        os.makedirs(state_dir, exist_ok=True)
        self.state_path = os.path.join(state_dir, "state.json")
        self.cursor_path = os.path.join(state_dir, "cursor.json")
        self.state = load_json(self.state_path, {})  # "realm/Entity/id" -> {"version", "deleted", "data"}
        self.cursor = load_json(self.cursor_path, {"after": 0, "feed_id": None})
        self.applied = self.skipped = self.resyncs = 0

    # ---- HTTP ----
    def get(self, path, params, timeout):
        q = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        req = urllib.request.Request("%s%s?%s" % (self.url, path, q), headers={"Authorization": "Bearer " + self.token})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return loads(r.read())
        except urllib.error.HTTPError as e:
            body = e.read()
            try:
                body = json.loads(body)
            except ValueError:
                body = {"error": "http_%d" % e.code, "message": body.decode(errors="replace")}
            if e.code in (409, 410):
                raise Answer(e.code, body)
            if e.code in (400, 401, 403, 404):
                raise Fatal("%s: %d %s" % (path, e.code, body))
            raise  # 5xx: the caller backs off and retries

    # ---- applying, idempotently by (realm, entity, id, version) ----
    @staticmethod
    def newer(version, held):
        """is version newer than the held record's? (SyncTokens compare as numbers)"""
        if held is None:
            return True
        if held.get("version") is None or version is None:
            return version != held.get("version")
        return int(version) > int(held["version"])

    def apply(self, realm, entity, eid, version, deleted, data):
        key = "%s/%s/%s" % (realm, entity, eid)
        held = self.state.get(key)
        if held is not None and held.get("deleted"):
            self.skipped += 1  # QBO deletes are final
            return
        if deleted:
            self.state[key] = {"version": version, "deleted": True}
        elif self.newer(version, held):
            self.state[key] = {"version": version, "deleted": False, "data": data}
        else:
            self.skipped += 1  # seen before (at-least-once delivery) or older than what a resync gave
            return
        self.applied += 1

    def apply_change(self, c):
        self.apply(c["realm"], c["entity"], c["id"], c.get("version"), c["op"] == "delete", c.get("data"))

    def commit(self, after, feed_id):
        """state first, then the cursor: a crash in between replays, never skips"""
        save_json(self.state_path, self.state)
        self.cursor = {"after": after, "feed_id": feed_id}
        save_json(self.cursor_path, self.cursor)

    # ---- resync through the entity listing ----
    def resync(self, resume_at, feed_id, replaced):
        realms = set(self.realms) | {k.split("/", 1)[0] for k in self.state}
        log("resync (%s) of %d realm(s) x %d entities, then on from %d" %
            ("feed replaced" if replaced else "behind the retention", len(realms), len(self.entities), resume_at))
        fresh = {}
        for realm in sorted(realms):
            for entity in self.entities:
                after_id = None
                while True:
                    page = self.get("/v1/realms/%s/entities/%s" % (urllib.parse.quote(realm), entity),
                                    {"after_id": after_id, "limit": 1000}, timeout=60)
                    for e in page["entities"]:
                        fresh["%s/%s/%s" % (realm, entity, e["id"])] = e
                    after_id = page.get("next_after_id")
                    if not after_id:
                        break
        if replaced:
            self.state = {}  # the new feed's store is the truth: forget what the old one said
        for key, e in fresh.items():
            realm, entity, eid = key.split("/", 2)
            if self.state.get(key, {}).get("deleted") and not e["deleted"]:
                continue
            if replaced or self.newer(e.get("version"), self.state.get(key)) or e["deleted"]:
                self.state[key] = ({"version": e.get("version"), "deleted": True} if e["deleted"] else
                                   {"version": e.get("version"), "deleted": False, "data": e.get("data")})
        self.resyncs += 1
        self.commit(resume_at, feed_id)

    # ---- the loop ----
    def run(self, wait, exit_when_idle):
        backoff = 1.0
        while True:
            try:
                page = self.get("/v1/changes", {"after": self.cursor["after"], "limit": 1000, "wait": wait},
                                timeout=wait + 30)
            except Answer as a:
                b = a.body
                if a.status == 409:
                    self.resync(b.get("head", 0), b.get("feed_id"), replaced=True)
                else:
                    self.resync(b["pruned_through"], b.get("feed_id", self.cursor.get("feed_id")), replaced=False)
                continue
            except (urllib.error.URLError, OSError, ValueError) as e:
                delay = min(backoff, 60.0) * random.uniform(0.5, 1.0)
                log("%s; reconnecting in %.1f s" % (e, delay))
                time.sleep(delay)
                backoff = min(backoff * 2, 60.0)
                continue
            backoff = 1.0
            feed_id = page.get("feed_id")
            if self.cursor.get("feed_id") and feed_id and feed_id != self.cursor["feed_id"]:
                # another feed answers for this URL: nothing we hold can be trusted to line up with it
                self.resync(0, feed_id, replaced=True)
                continue
            for c in page["changes"]:
                self.apply_change(c)
            if page["changes"] or page["next"] != self.cursor["after"] or feed_id != self.cursor.get("feed_id"):
                self.commit(page["next"], feed_id or self.cursor.get("feed_id"))
            if not page["changes"] and exit_when_idle:
                return 0


def main():
    ap = argparse.ArgumentParser(description="a durable, idempotent qbcdc feed consumer")
    ap.add_argument("--url", default=os.environ.get("QBCDC_URL", "http://127.0.0.1:8080"))
    ap.add_argument("--state-dir", default="./consumer-state")
    ap.add_argument("--realms", default="", help="comma-separated realms to resync (besides those already held)")
    ap.add_argument("--entities", default="Customer,Vendor,Item,Account,Invoice,Payment,Bill,JournalEntry",
                    help="comma-separated entity names to resync")
    ap.add_argument("--wait", type=int, default=30, help="long-poll seconds")
    ap.add_argument("--exit-when-idle", action="store_true")
    a = ap.parse_args()
    token = os.environ.get("QBCDC_FEED_TOKEN")
    if not token:
        sys.stderr.write("consumer: set QBCDC_FEED_TOKEN\n")
        return 2
    c = Consumer(a.url, token, a.state_dir, [r for r in a.realms.split(",") if r],
                 [e for e in a.entities.split(",") if e])
    try:
        rc = c.run(a.wait, a.exit_when_idle)
    except Fatal as e:
        log(str(e))
        return 1
    except KeyboardInterrupt:
        rc = 0
    log("applied %d, skipped %d (already held), resyncs %d, cursor %s" % (c.applied, c.skipped, c.resyncs, c.cursor))
    return rc


if __name__ == "__main__":
    sys.exit(main())
