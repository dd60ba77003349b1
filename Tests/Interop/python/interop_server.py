#!/usr/bin/python3
"""grpcio interop server: grpc.testing.TestService (interop spec semantics) and
platform.echo.v1.EchoService.

    /usr/bin/python3 interop_server.py --port P [--use_tls --tls_cert_file C --tls_key_file K]

Run it with Debian's /usr/bin/python3 (python3-grpcio 1.51). Supported server features
(doc/interop-test-descriptions.md): EmptyCall, UnaryCall, StreamingInputCall,
StreamingOutputCall, FullDuplexCall, HalfDuplexCall, Echo Status, Echo Metadata, interval_us and
CompressedResponse for UnaryCall (response_compressed). Not supported: CompressedRequest
(expect_compressed) — grpcio never tells a handler whether a request was compressed (it strips
grpc-encoding from the invocation metadata), so expect_compressed is ignored.
UnimplementedCall and UnimplementedService are simply not registered: grpcio answers UNIMPLEMENTED.
"""
import argparse
import signal
import sys
import threading
import time
from concurrent import futures

import grpc

from _protos import echo_pb2, test_pb2

INITIAL_KEY = "x-grpc-test-echo-initial"
TRAILING_KEY = "x-grpc-test-echo-trailing-bin"
_CODES = {code.value[0]: code for code in grpc.StatusCode}


def _echo_metadata(context):
    """Echo Metadata: the initial key goes back in the headers, the -bin key in the trailers."""
    initial, trailing = [], []
    for key, value in context.invocation_metadata():
        if key == INITIAL_KEY:
            initial.append((key, value))
        elif key == TRAILING_KEY:
            trailing.append((key, value))
    if initial:
        context.send_initial_metadata(initial)
    if trailing:
        context.set_trailing_metadata(trailing)


def _echo_status(status, context):
    """Echo Status: end the call with the requested code and message (abort raises)."""
    if status.code != 0:
        code = _CODES.get(status.code, grpc.StatusCode.UNKNOWN)
        context.abort(code, status.message)


def _payload(response_type, size, context):
    if response_type != test_pb2.COMPRESSABLE:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unsupported payload type {response_type}")
    return test_pb2.Payload(type=response_type, body=bytes(size))


def _responses(request, context):
    for params in request.response_parameters:
        if params.interval_us > 0:
            time.sleep(params.interval_us / 1e6)
        yield test_pb2.StreamingOutputCallResponse(
            payload=_payload(request.response_type, params.size, context))


class TestService:
    def EmptyCall(self, request, context):
        return test_pb2.Empty()

    def UnaryCall(self, request, context):
        _echo_metadata(context)
        _echo_status(request.response_status, context)
        if request.HasField("response_compressed"):
            if request.response_compressed.value:
                context.set_compression(grpc.Compression.Gzip)
            else:
                context.set_compression(grpc.Compression.NoCompression)
        return test_pb2.SimpleResponse(
            payload=_payload(request.response_type, request.response_size, context))

    def StreamingOutputCall(self, request, context):
        _echo_metadata(context)
        _echo_status(request.response_status, context)
        yield from _responses(request, context)

    def StreamingInputCall(self, request_iterator, context):
        _echo_metadata(context)
        total = sum(len(r.payload.body) for r in request_iterator)
        return test_pb2.StreamingInputCallResponse(aggregated_payload_size=total)

    def FullDuplexCall(self, request_iterator, context):
        _echo_metadata(context)
        for request in request_iterator:
            _echo_status(request.response_status, context)
            yield from _responses(request, context)

    def HalfDuplexCall(self, request_iterator, context):
        _echo_metadata(context)
        requests = list(request_iterator)
        for request in requests:
            _echo_status(request.response_status, context)
            yield from _responses(request, context)


class EchoService:
    def Echo(self, request, context):
        return echo_pb2.EchoResponse(text=request.text)

    def Expand(self, request, context):
        for word in request.text.split():
            yield echo_pb2.EchoResponse(text=word)

    def Collect(self, request_iterator, context):
        return echo_pb2.EchoResponse(text=" ".join(r.text for r in request_iterator))

    def Update(self, request_iterator, context):
        for request in request_iterator:
            yield echo_pb2.EchoResponse(text=request.text)


def _handler(service_name, impl, methods):
    """A generic handler for one service. methods: name -> (kind, request class, response class)."""
    factories = {
        "unary_unary": grpc.unary_unary_rpc_method_handler,
        "unary_stream": grpc.unary_stream_rpc_method_handler,
        "stream_unary": grpc.stream_unary_rpc_method_handler,
        "stream_stream": grpc.stream_stream_rpc_method_handler,
    }
    return grpc.method_handlers_generic_handler(service_name, {
        name: factories[kind](getattr(impl, name),
                              request_deserializer=req.FromString,
                              response_serializer=resp.SerializeToString)
        for name, (kind, req, resp) in methods.items()})


def build_handlers():
    t, e = test_pb2, echo_pb2
    return (
        _handler("grpc.testing.TestService", TestService(), {
            # UnimplementedCall deliberately absent: grpcio answers UNIMPLEMENTED.
            "EmptyCall": ("unary_unary", t.Empty, t.Empty),
            "UnaryCall": ("unary_unary", t.SimpleRequest, t.SimpleResponse),
            "StreamingOutputCall": ("unary_stream", t.StreamingOutputCallRequest,
                                    t.StreamingOutputCallResponse),
            "StreamingInputCall": ("stream_unary", t.StreamingInputCallRequest,
                                   t.StreamingInputCallResponse),
            "FullDuplexCall": ("stream_stream", t.StreamingOutputCallRequest,
                               t.StreamingOutputCallResponse),
            "HalfDuplexCall": ("stream_stream", t.StreamingOutputCallRequest,
                               t.StreamingOutputCallResponse),
        }),
        _handler("platform.echo.v1.EchoService", EchoService(), {
            "Echo": ("unary_unary", e.EchoRequest, e.EchoResponse),
            "Expand": ("unary_stream", e.EchoRequest, e.EchoResponse),
            "Collect": ("stream_unary", e.EchoRequest, e.EchoResponse),
            "Update": ("stream_stream", e.EchoRequest, e.EchoResponse),
        }),
    )


def _bool(value):
    return str(value).lower() in ("1", "true", "yes")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    # Accepts `--use_tls`, `--use_tls=true` and `--use_tls=false` like the other interop servers.
    parser.add_argument("--use_tls", nargs="?", const="true", default="false")
    parser.add_argument("--tls_cert_file")
    parser.add_argument("--tls_key_file")
    args = parser.parse_args()

    # Every streaming call holds a worker thread for its lifetime: keep the pool generous.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=64))
    server.add_generic_rpc_handlers(build_handlers())
    address = f"{args.host}:{args.port}"
    if _bool(args.use_tls):
        with open(args.tls_key_file, "rb") as k, open(args.tls_cert_file, "rb") as c:
            creds = grpc.ssl_server_credentials([(k.read(), c.read())])
        port = server.add_secure_port(address, creds)
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        sys.exit(f"interop_server: cannot listen on {address}")
    server.start()
    print(f"python interop server listening on {args.host}:{port} (tls={_bool(args.use_tls)})",
          flush=True)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop(grace=None)


if __name__ == "__main__":
    main()
