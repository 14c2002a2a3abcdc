"""openapi_check.py — the OpenAPI document (docs/openapi.json) as a test oracle.

Loads the document, resolves its $refs and validates real answers against the
response schema the document gives for their operation and status, with
python3-jsonschema (Debian 12 ships 4.10; newer ones work too).

import this module first: when the running python cannot import jsonschema (a
pyenv python that does not see Debian's dist-packages), it re-executes the test
with /usr/bin/python3; when that cannot either, the test fails (never skips).
"""
import json
import os
import re
import sys

try:
    import jsonschema
except ImportError:
    if os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3") and os.path.exists("/usr/bin/python3") \
            and not os.environ.get("QBCDC_JSONSCHEMA_REEXEC"):
        os.environ["QBCDC_JSONSCHEMA_REEXEC"] = "1"
        sys.stdout.flush()
        os.execv("/usr/bin/python3", ["/usr/bin/python3", os.path.abspath(sys.argv[0])] + sys.argv[1:])
    print("1..1")
    print("not ok 1 - python3-jsonschema is not installed (apt-get install python3-jsonschema; .ci/install lists it)")
    sys.exit(1)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC_PATH = os.path.join(ROOT, "docs", "openapi.json")
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def load_doc():
    with open(DOC_PATH, "rb") as f:
        raw = f.read()
    return raw, json.loads(raw)


def pointer(doc, ref):
    """the object a local $ref ("#/a/b") names; KeyError when it names nothing."""
    if not ref.startswith("#/"):
        raise KeyError(ref)
    node = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def all_refs(node, at="#"):
    """every (where, $ref) in the document"""
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                out.append((at, v))
            else:
                out += all_refs(v, at + "/" + k)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += all_refs(v, "%s/%d" % (at, i))
    return out


def deref(doc, node):
    """follows $ref until a node without one (for responses, parameters)"""
    while isinstance(node, dict) and "$ref" in node:
        node = pointer(doc, node["$ref"])
    return node


def validator(doc, schema):
    """a Draft 2020-12 validator for schema whose "#/components/..." refs resolve in doc"""
    root = dict(schema)
    root["components"] = doc["components"]  # "#/..." resolves against this root
    return jsonschema.Draft202012Validator(root)


def schema_errors(doc, schema, instance):
    """[] or the messages of every validation error (with where they are)"""
    v = validator(doc, schema)
    return ["%s: %s" % ("/".join(str(p) for p in e.absolute_path) or "(top)", e.message)
            for e in sorted(v.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))]


def component(doc, name):
    return {"$ref": "#/components/schemas/" + name}


def template_of(doc, path):
    """the document's path template matching a concrete path (query removed), or None"""
    path = path.split("?", 1)[0]
    if path in doc["paths"]:
        return path
    for t in doc["paths"]:
        if re.match("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(t)) + "$", path):
            return t
    return None


def check_answer(doc, method, path, status, headers, body):
    """[] if (status, content type, body) is what the document says method path may answer, else the problems"""
    t = template_of(doc, path)
    if t is None:
        return ["%s is not a documented path" % path]
    op = doc["paths"][t].get(method.lower())
    if op is None:
        return ["%s %s is not a documented operation" % (method, t)]
    r = op["responses"].get(str(status)) or op["responses"].get("default")
    if r is None:
        return ["%s %s: status %d is not documented (documented: %s)" % (method, t, status, sorted(op["responses"]))]
    r = deref(doc, r)
    problems = []
    for name, h in r.get("headers", {}).items():
        h = deref(doc, h)
        got = headers.get(name.lower())
        if got is None:
            if h.get("required") or name.lower() == "qbcdc-feed-id":
                problems.append("header %s missing" % name)
            continue
        problems += ["header %s: %s" % (name, e) for e in schema_errors(doc, h.get("schema", {}), got)]
    content = r.get("content")
    if not content:
        return problems
    ctype = headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in content:
        return problems + ["content type %r is not documented (%s)" % (ctype, sorted(content))]
    if ctype == "application/json":
        try:
            inst = json.loads(body)
        except ValueError as e:
            return problems + ["body is not JSON: %s" % e]
        problems += schema_errors(doc, content[ctype].get("schema", {}), inst)
    return problems


def dechunk(raw):
    """the body of a (possibly partial) chunked HTTP/1.1 response: the complete chunks"""
    out = b""
    while True:
        i = raw.find(b"\r\n")
        if i < 0:
            return out
        try:
            n = int(raw[:i].split(b";")[0], 16)
        except ValueError:
            return out
        if n == 0 or len(raw) < i + 2 + n:
            return out
        out += raw[i + 2:i + 2 + n]
        raw = raw[i + 2 + n + 2:]


def sse_events(text):
    """Server-Sent Events in text: [(event name or None, id or None, data str)]; comments dropped"""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name, eid, data = None, None, []
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "id":
                eid = value
            elif field == "data":
                data.append(value)
        if data or name:
            events.append((name, eid, "\n".join(data)))
    return events


def source_endpoints(root=ROOT):
    """(registered route prefixes, {(METHOD, path template)}) read from the server's C sources:
    register_route(..., "<path>", ...) calls, and the endpoint lines of the files' header
    comments (" *   GET /v1/changes?..."), which every HTTP handler file carries."""
    routes, eps = set(), set()
    skip = {"tests", "sim", "bench", ".git", "docs", "examples"}
    files = []
    for d, dirs, names in os.walk(root):
        dirs[:] = [x for x in dirs if x not in skip and not x.startswith("build")]
        files += [os.path.join(d, n) for n in names if n.endswith(".c")]
    lines = []
    for fn in files:
        with open(fn, encoding="utf-8", errors="replace") as f:
            text = f.read()
        routes.update(re.findall(r'register_route\([^;]*?"(/[^"]*)"', text))
        lines += [l for l in text.splitlines() if re.match(r"^ \*\s+(GET|POST|PUT|DELETE|PATCH)\s+/", l)]
    routes.discard("/")
    for l in lines:
        for m, p in re.findall(r"\b(GET|POST|PUT|DELETE|PATCH)\s+(/[^\s,?]*)", l):
            if any(p == r or p.startswith(r.rstrip("/") + "/") for r in routes):
                eps.add((m, p.rstrip(":.;)")))
    return routes, eps


def norm(t):
    return re.sub(r"\{[^}]*\}", "{}", t)
