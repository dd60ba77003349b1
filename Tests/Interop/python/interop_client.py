#!/usr/bin/python3
"""grpcio interop client: runs one interop test case (doc/interop-test-descriptions.md).

    /usr/bin/python3 interop_client.py --server_host H --server_port P --test_case NAME \
        [--use_tls --ca_file CA.pem --server_host_override NAME]

Exit status 0 means the case passed; otherwise the reason is printed on stderr. Run it with
Debian's /usr/bin/python3 (python3-grpcio 1.51). Beyond the standard cases, `echo` exercises all
four platform.echo.v1.EchoService methods.

Limitation: grpcio does not expose a received message's compressed flag, so
server_compressed_unary only checks that both calls succeed with the right payload; the Go client
checks the flag itself.
"""
import argparse
import queue
import sys

import grpc

from _protos import echo_pb2, test_pb2

INITIAL = ("x-grpc-test-echo-initial", "test_initial_metadata_value")
TRAILING = ("x-grpc-test-echo-trailing-bin", b"\xab\xab\xab")
SPECIAL_MESSAGE = "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"
REQUEST_SIZES = (27182, 8, 1828, 45904)
RESPONSE_SIZES = (31415, 9, 2653, 58979)
TIMEOUT = 30  # seconds: no case should ever hang the matrix


class TestFailure(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise TestFailure(message)


def expect_code(fn, code, what):
    """Runs fn, which must fail with `code`; returns the RpcError."""
    try:
        fn()
    except grpc.RpcError as e:
        expect(e.code() == code, f"{what}: want {code.name}, got {e.code().name}: {e.details()!r}")
        return e
    raise TestFailure(f"{what}: want {code.name}, but the call succeeded")


def zeros(n):
    return test_pb2.Payload(body=bytes(n))


def check_payload(payload, size, what):
    expect(payload.type == test_pb2.COMPRESSABLE, f"{what}: payload type {payload.type}")
    expect(len(payload.body) == size, f"{what}: body is {len(payload.body)} bytes, want {size}")
    expect(payload.body == bytes(size), f"{what}: body is not all zeros")


def large_request(**fields):
    return test_pb2.SimpleRequest(response_size=314159, payload=zeros(271828), **fields)


class Pipe:
    """A request iterator the test feeds one message at a time (for bidi ping-pong)."""
    _CLOSED = object()

    def __init__(self):
        self._queue = queue.Queue()

    def __iter__(self):
        return self

    def __next__(self):
        item = self._queue.get()
        if item is self._CLOSED:
            raise StopIteration
        return item

    def add(self, message):
        self._queue.put(message)

    def close(self):
        self._queue.put(self._CLOSED)

    # Always closed on exit, or grpcio's request-consuming thread would block forever.
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Stubs:
    """Generic multi-callables (Debian's grpcio ships no grpc_tools, so no generated stubs)."""

    def __init__(self, channel):
        t, e = test_pb2, echo_pb2

        def mc(kind, path, req, resp):
            return getattr(channel, kind)(path, request_serializer=req.SerializeToString,
                                          response_deserializer=resp.FromString)

        svc = "/grpc.testing.TestService/"
        self.empty_call = mc("unary_unary", svc + "EmptyCall", t.Empty, t.Empty)
        self.unary_call = mc("unary_unary", svc + "UnaryCall", t.SimpleRequest, t.SimpleResponse)
        self.streaming_output = mc("unary_stream", svc + "StreamingOutputCall",
                                   t.StreamingOutputCallRequest, t.StreamingOutputCallResponse)
        self.streaming_input = mc("stream_unary", svc + "StreamingInputCall",
                                  t.StreamingInputCallRequest, t.StreamingInputCallResponse)
        self.full_duplex = mc("stream_stream", svc + "FullDuplexCall",
                              t.StreamingOutputCallRequest, t.StreamingOutputCallResponse)
        self.unimplemented_call = mc("unary_unary", svc + "UnimplementedCall", t.Empty, t.Empty)
        self.unimplemented_service = mc(
            "unary_unary", "/grpc.testing.UnimplementedService/UnimplementedCall", t.Empty, t.Empty)
        es = "/platform.echo.v1.EchoService/"
        self.echo = mc("unary_unary", es + "Echo", e.EchoRequest, e.EchoResponse)
        self.expand = mc("unary_stream", es + "Expand", e.EchoRequest, e.EchoResponse)
        self.collect = mc("stream_unary", es + "Collect", e.EchoRequest, e.EchoResponse)
        self.update = mc("stream_stream", es + "Update", e.EchoRequest, e.EchoResponse)


# --- test cases -----------------------------------------------------------------------------

def empty_unary(s):
    response = s.empty_call(test_pb2.Empty(), timeout=TIMEOUT)
    expect(isinstance(response, test_pb2.Empty), "EmptyCall: no response")


def large_unary(s):
    response = s.unary_call(large_request(), timeout=TIMEOUT)
    check_payload(response.payload, 314159, "UnaryCall")


def client_compressed_unary(s):
    probe = large_request(expect_compressed=test_pb2.BoolValue(value=True))
    expect_code(lambda: s.unary_call(probe, timeout=TIMEOUT), grpc.StatusCode.INVALID_ARGUMENT,
                "feature probe (uncompressed, expect_compressed=true)")
    response = s.unary_call(probe, timeout=TIMEOUT, compression=grpc.Compression.Gzip)
    check_payload(response.payload, 314159, "compressed UnaryCall")
    plain = large_request(expect_compressed=test_pb2.BoolValue(value=False))
    response = s.unary_call(plain, timeout=TIMEOUT)
    check_payload(response.payload, 314159, "uncompressed UnaryCall")


def server_compressed_unary(s):
    for compressed in (True, False):
        request = large_request(response_compressed=test_pb2.BoolValue(value=compressed))
        response = s.unary_call(request, timeout=TIMEOUT)
        check_payload(response.payload, 314159, f"UnaryCall(response_compressed={compressed})")


def client_streaming(s):
    requests = (test_pb2.StreamingInputCallRequest(payload=zeros(n)) for n in REQUEST_SIZES)
    response = s.streaming_input(requests, timeout=TIMEOUT)
    expect(response.aggregated_payload_size == 74922,
           f"aggregated_payload_size {response.aggregated_payload_size}, want 74922")


def server_streaming(s):
    request = test_pb2.StreamingOutputCallRequest(
        response_parameters=[test_pb2.ResponseParameters(size=n) for n in RESPONSE_SIZES])
    responses = list(s.streaming_output(request, timeout=TIMEOUT))
    expect(len(responses) == len(RESPONSE_SIZES), f"got {len(responses)} responses, want 4")
    for i, (response, size) in enumerate(zip(responses, RESPONSE_SIZES)):
        check_payload(response.payload, size, f"response {i}")


def ping_pong(s):
    with Pipe() as pipe:
        responses = s.full_duplex(pipe, timeout=TIMEOUT)
        for i, (req_size, resp_size) in enumerate(zip(REQUEST_SIZES, RESPONSE_SIZES)):
            pipe.add(test_pb2.StreamingOutputCallRequest(
                response_parameters=[test_pb2.ResponseParameters(size=resp_size)],
                payload=zeros(req_size)))
            check_payload(next(responses).payload, resp_size, f"response {i}")
        pipe.close()
        expect(next(responses, None) is None, "a response after half-close")
        expect(responses.code() == grpc.StatusCode.OK, f"status {responses.code()}")


def empty_stream(s):
    responses = list(s.full_duplex(iter(()), timeout=TIMEOUT))
    expect(responses == [], f"got {len(responses)} responses, want none")


def custom_metadata(s):
    metadata = (INITIAL, TRAILING)

    def check(what, initial, trailing):
        expect(INITIAL in initial, f"{what}: initial metadata {initial} lacks {INITIAL}")
        expect(TRAILING in trailing, f"{what}: trailing metadata {trailing} lacks {TRAILING}")

    response, call = s.unary_call.with_call(large_request(), metadata=metadata, timeout=TIMEOUT)
    check_payload(response.payload, 314159, "UnaryCall")
    check("UnaryCall", call.initial_metadata(), call.trailing_metadata())

    request = test_pb2.StreamingOutputCallRequest(
        response_parameters=[test_pb2.ResponseParameters(size=314159)], payload=zeros(271828))
    call = s.full_duplex(iter([request]), metadata=metadata, timeout=TIMEOUT)
    responses = list(call)
    expect(len(responses) == 1, f"FullDuplexCall: {len(responses)} responses, want 1")
    check_payload(responses[0].payload, 314159, "FullDuplexCall")
    check("FullDuplexCall", call.initial_metadata(), call.trailing_metadata())


def _check_status(error, message, what):
    expect(error.code() == grpc.StatusCode.UNKNOWN and error.details() == message,
           f"{what}: want UNKNOWN {message!r}, got {error.code().name} {error.details()!r}")


def status_code_and_message(s):
    message = "test status message"
    status = test_pb2.EchoStatus(code=2, message=message)
    e = expect_code(lambda: s.unary_call(test_pb2.SimpleRequest(response_status=status),
                                         timeout=TIMEOUT), grpc.StatusCode.UNKNOWN, "UnaryCall")
    _check_status(e, message, "UnaryCall")
    request = test_pb2.StreamingOutputCallRequest(response_status=status)
    e = expect_code(lambda: list(s.full_duplex(iter([request]), timeout=TIMEOUT)),
                    grpc.StatusCode.UNKNOWN, "FullDuplexCall")
    _check_status(e, message, "FullDuplexCall")


def special_status_message(s):
    status = test_pb2.EchoStatus(code=2, message=SPECIAL_MESSAGE)
    e = expect_code(lambda: s.unary_call(test_pb2.SimpleRequest(response_status=status),
                                         timeout=TIMEOUT), grpc.StatusCode.UNKNOWN, "UnaryCall")
    _check_status(e, SPECIAL_MESSAGE, "UnaryCall")


def unimplemented_method(s):
    expect_code(lambda: s.unimplemented_call(test_pb2.Empty(), timeout=TIMEOUT),
                grpc.StatusCode.UNIMPLEMENTED, "TestService/UnimplementedCall")


def unimplemented_service(s):
    expect_code(lambda: s.unimplemented_service(test_pb2.Empty(), timeout=TIMEOUT),
                grpc.StatusCode.UNIMPLEMENTED, "UnimplementedService/UnimplementedCall")


def cancel_after_begin(s):
    with Pipe() as pipe:
        future = s.streaming_input.future(pipe, timeout=TIMEOUT)
        future.cancel()
        expect(future.cancelled(), "future not cancelled")
        expect(future.code() == grpc.StatusCode.CANCELLED, f"status {future.code()}")


def cancel_after_first_response(s):
    with Pipe() as pipe:
        responses = s.full_duplex(pipe, timeout=TIMEOUT)
        pipe.add(test_pb2.StreamingOutputCallRequest(
            response_parameters=[test_pb2.ResponseParameters(size=31415)], payload=zeros(27182)))
        check_payload(next(responses).payload, 31415, "first response")
        responses.cancel()
        expect_code(lambda: next(responses), grpc.StatusCode.CANCELLED, "after cancel")


def timeout_on_sleeping_server(s):
    with Pipe() as pipe:
        responses = s.full_duplex(pipe, timeout=0.001)
        pipe.add(test_pb2.StreamingOutputCallRequest(payload=zeros(27182)))
        expect_code(lambda: next(responses), grpc.StatusCode.DEADLINE_EXCEEDED, "FullDuplexCall")


def echo(s):
    E = echo_pb2.EchoRequest
    r = s.echo(E(text="hello"), timeout=TIMEOUT)
    expect(r.text == "hello", f"Echo: {r.text!r}")
    words = [r.text for r in s.expand(E(text="a bb ccc"), timeout=TIMEOUT)]
    expect(words == ["a", "bb", "ccc"], f"Expand: {words}")
    r = s.collect(iter([E(text="x"), E(text="y"), E(text="z")]), timeout=TIMEOUT)
    expect(r.text == "x y z", f"Collect: {r.text!r}")
    with Pipe() as pipe:
        responses = s.update(pipe, timeout=TIMEOUT)
        for word in ("one", "two"):
            pipe.add(E(text=word))
            got = next(responses).text
            expect(got == word, f"Update: sent {word!r}, got {got!r}")
        pipe.close()
        expect(next(responses, None) is None, "Update: a response after half-close")


CASES = {f.__name__: f for f in (
    empty_unary, large_unary, client_compressed_unary, server_compressed_unary,
    client_streaming, server_streaming, ping_pong, empty_stream, custom_metadata,
    status_code_and_message, special_status_message, unimplemented_method,
    unimplemented_service, cancel_after_begin, cancel_after_first_response,
    timeout_on_sleeping_server, echo)}


def _bool(value):
    return str(value).lower() in ("1", "true", "yes")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server_host", default="127.0.0.1")
    parser.add_argument("--server_port", type=int, required=True)
    parser.add_argument("--test_case", required=True, choices=sorted(CASES))
    parser.add_argument("--use_tls", nargs="?", const="true", default="false")
    parser.add_argument("--ca_file")
    parser.add_argument("--server_host_override")
    args = parser.parse_args()

    target = f"{args.server_host}:{args.server_port}"
    options = []
    if _bool(args.use_tls):
        root = open(args.ca_file, "rb").read() if args.ca_file else None
        if args.server_host_override:
            # Names the certificate must match; grpcio also uses it as the :authority.
            options.append(("grpc.ssl_target_name_override", args.server_host_override))
        channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(root), options)
    else:
        if args.server_host_override:
            options.append(("grpc.default_authority", args.server_host_override))
        channel = grpc.insecure_channel(target, options)

    try:
        with channel:
            CASES[args.test_case](Stubs(channel))
    except TestFailure as e:
        sys.exit(f"FAIL {args.test_case}: {e}")
    except grpc.RpcError as e:
        sys.exit(f"FAIL {args.test_case}: unexpected RPC error {e.code().name}: {e.details()!r}")
    print(f"PASS {args.test_case}")


if __name__ == "__main__":
    main()
