#!/usr/bin/env python3
"""A test's OTLP/HTTP receiver (JSON encoding), our own code: no collector is
packaged for Debian.

    otlp_receiver.py PORT OUT [--fail N]

Takes POST /v1/traces with Content-Type application/json, checks each
ExportTraceServiceRequest against OTLP's JSON field names and types (a
field under another name, an id of the wrong length, a number where OTLP
says string, and the request is answered 400), then appends one line per
span to OUT: the span's fields as sent, plus "service" (its resource's
service.name) and "attrs" (its attributes as a flat dict). --fail N: the
first N requests are answered 503 (the exporter must try again). Each
request's outcome is also appended to OUT.log ("200 3 spans", "503").
HTTP/1.1 keep-alive, one thread per connection.
"""
import http.server
import json
import re
import socketserver
import sys

HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")
SPAN_FIELDS = {"traceId", "spanId", "parentSpanId", "traceState", "name", "kind",
               "startTimeUnixNano", "endTimeUnixNano", "attributes", "droppedAttributesCount",
               "events", "droppedEventsCount", "links", "droppedLinksCount", "status", "flags"}


def int64(x, strict):
    """int64 in OTLP/JSON: a decimal string. protobuf's JSON mapping accepts
    a number too (OpenTelemetry's JS SDK sends one), but meshim's spans
    (strict) must use the string form."""
    if not strict and isinstance(x, int) and not isinstance(x, bool):
        return x
    assert isinstance(x, str) and re.match(r"^-?[0-9]+$", x), x
    return int(x)


def value(v, strict=True):
    """An AnyValue: exactly one of OTLP's value fields."""
    assert isinstance(v, dict) and len(v) == 1, v
    (k, x), = v.items()
    if k == "stringValue":
        assert isinstance(x, str), v
        return x
    if k == "intValue":
        return int64(x, strict)
    if k == "boolValue":
        assert isinstance(x, bool), v
        return x
    if k == "doubleValue":
        assert isinstance(x, (int, float)), v
        return x
    raise AssertionError("unknown AnyValue field %s" % k)


def attributes(lst, strict=True):
    assert isinstance(lst, list), lst
    out = {}
    for kv in lst:
        assert set(kv) == {"key", "value"}, kv
        assert isinstance(kv["key"], str) and kv["key"] not in out, kv
        out[kv["key"]] = value(kv["value"], strict)
    return out


def check(doc):
    spans = []
    assert set(doc) == {"resourceSpans"}, doc.keys()
    for rs in doc["resourceSpans"]:
        assert set(rs) <= {"resource", "scopeSpans", "schemaUrl"}, rs.keys()
        res = attributes(rs["resource"]["attributes"], False)
        strict = res.get("telemetry.sdk.name") == "meshim"
        if strict:
            attributes(rs["resource"]["attributes"])
        assert isinstance(res.get("service.name"), str) and res["service.name"], res
        for ss in rs["scopeSpans"]:
            assert set(ss) <= {"scope", "spans", "schemaUrl"}, ss.keys()
            assert isinstance(ss["scope"]["name"], str)
            for s in ss["spans"]:
                assert set(s) <= SPAN_FIELDS, set(s) - SPAN_FIELDS
                assert HEX32.match(s["traceId"]) and s["traceId"] != "0" * 32, s
                assert HEX16.match(s["spanId"]) and s["spanId"] != "0" * 16, s
                if "parentSpanId" in s:
                    assert HEX16.match(s["parentSpanId"]), s
                assert isinstance(s["name"], str) and s["name"], s
                assert s["kind"] in (1, 2, 3, 4, 5), s
                assert int64(s["startTimeUnixNano"], strict) <= int64(s["endTimeUnixNano"], strict), s
                st = s.get("status", {})
                assert set(st) <= {"code", "message"} and st.get("code", 0) in (0, 1, 2), st
                line = dict(s)
                line["service"] = res["service.name"]
                line["resource"] = res
                line["attrs"] = attributes(s.get("attributes", []), strict)
                spans.append(line)
    return spans


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen = 0

    def answer(self, code, text):
        body = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        with open(OUT + ".log", "a") as f:
            f.write("%d %s\n" % (code, text if code != 200 else ""))

    def body(self):
        """Content-Length (the mesh) or chunked (OpenTelemetry's JS SDK)."""
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers["Content-Length"]))
        data = b""
        while True:
            size = int(self.rfile.readline().split(b";")[0], 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return data
            data += self.rfile.read(size)
            self.rfile.readline()

    def do_POST(self):
        body = self.body()
        Handler.seen += 1
        if Handler.seen <= FAIL:
            self.answer(503, "try again")
            return
        if self.path != "/v1/traces" or self.headers.get("Content-Type") != "application/json":
            self.answer(404, "not /v1/traces with application/json")
            return
        try:
            spans = check(json.loads(body))
        except (AssertionError, KeyError, ValueError, TypeError) as e:
            self.answer(400, "bad OTLP/JSON: %r" % (e,))
            return
        with open(OUT, "a") as f:
            for s in spans:
                f.write(json.dumps(s) + "\n")
        self.answer(200, "{}")

    def log_message(self, *a):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


if __name__ == "__main__":
    PORT, OUT = int(sys.argv[1]), sys.argv[2]
    FAIL = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[3] == "--fail" else 0
    Server(("127.0.0.1", PORT), Handler).serve_forever()
