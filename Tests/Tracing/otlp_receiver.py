#!/usr/bin/env python3
"""A real OTLP/HTTP trace receiver for the tracing test: decodes every ExportTraceServiceRequest
(protobuf, gzip or not) with the `opentelemetry-proto` package and appends one JSON line per span
to --out.

    otlp_receiver.py --out spans.jsonl --port-file port.txt

It listens on a free loopback port, writes that port to --port-file once it is listening, and
serves POST /v1/traces until killed. Each line: service, trace_id, span_id, parent_span_id (hex),
name, kind (SERVER, CLIENT, ...), attributes, status, start_ns, duration_ns. A body that does not
decode is answered 400 and logged to stderr, so a broken exporter fails the test instead of
passing it silently.
"""
import argparse
import gzip
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

MAX_BODY = 16 * 1024 * 1024


def attribute_value(value):
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind in ("array_value", "kvlist_value"):
        return str(getattr(value, kind))
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind)


def spans_of(request):
    for resource_spans in request.resource_spans:
        resource = {a.key: attribute_value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield {
                    "service": resource.get("service.name"),
                    "trace_id": span.trace_id.hex(),
                    "span_id": span.span_id.hex(),
                    "parent_span_id": span.parent_span_id.hex(),
                    "name": span.name,
                    "kind": trace_pb2.Span.SpanKind.Name(span.kind).replace("SPAN_KIND_", ""),
                    "attributes": {a.key: attribute_value(a.value) for a in span.attributes},
                    "status": trace_pb2.Status.StatusCode.Name(span.status.code).replace("STATUS_CODE_", ""),
                    "start_ns": span.start_time_unix_nano,
                    "duration_ns": span.end_time_unix_nano - span.start_time_unix_nano,
                }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--port-file", required=True)
    args = parser.parse_args()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            if self.path != "/v1/traces" or length > MAX_BODY:
                self.send_error(404 if self.path != "/v1/traces" else 413)
                return
            body = self.rfile.read(length)
            try:
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = trace_service_pb2.ExportTraceServiceRequest()
                request.ParseFromString(body)
            except Exception as error:  # noqa: BLE001 - anything undecodable is the exporter's bug
                print(f"otlp_receiver: undecodable request ({self.headers.get('Content-Type')}): {error}", file=sys.stderr)
                self.send_error(400)
                return
            with open(args.out, "a", encoding="utf-8") as out:
                for span in spans_of(request):
                    out.write(json.dumps(span) + "\n")
            reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *_):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(args.port_file + ".tmp", "w") as port_file:
        port_file.write(str(server.server_address[1]))
    import os
    os.replace(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
