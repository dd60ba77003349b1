#!/usr/bin/python3
"""gRPC health check: grpc.health.v1.Health/Check against HOST:PORT, like grpc_health_probe.

    scripts/health_check.py 127.0.0.1:50052                 # the server as a whole (service "")
    scripts/health_check.py 127.0.0.1:50052 platform.persona.v1.PersonaService
    scripts/health_check.py --wait 30 127.0.0.1:50052       # retry until SERVING or 30 s passed

Prints the status (SERVING, NOT_SERVING, UNKNOWN, SERVICE_UNKNOWN) on stdout; errors go to stderr.
Exit status: 0 SERVING; 1 the server answered, but not SERVING (including NOT_FOUND for an unknown
service name); 2 usage; 3 no answer (nothing listens, timeout, TLS failure, health not implemented).

Runs on Debian's python3-grpcio (/usr/bin/python3), which has no grpc_tools and no generated
health stubs: the two tiny messages are encoded by hand,
    HealthCheckRequest  { string service = 1; }
    HealthCheckResponse { ServingStatus status = 1; }   // enum: varint
and sent through a generic multi-callable with raw-bytes (de)serializers.
"""
import argparse
import os
import sys
import time

# grpcio's C core otherwise prints its own connection errors to stderr; ours are clearer.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

try:
    import grpc
except ImportError:  # pragma: no cover - depends on the machine
    sys.stderr.write("health_check: python module grpc missing: install python3-grpcio "
                     "(scripts/install-deps.sh) and run with /usr/bin/python3\n")
    sys.exit(3)

METHOD = "/grpc.health.v1.Health/Check"
STATUS_NAMES = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}
EXIT_SERVING, EXIT_NOT_SERVING, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


# ------------------------------------------------------------------ protobuf wire format, by hand

def _varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(buf, pos):
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 64:
            raise ValueError("varint too long")


def encode_request(service):
    """HealthCheckRequest{service}: field 1, wire type 2 (length-delimited); empty → no bytes."""
    data = service.encode("utf-8")
    return b"\x0a" + _varint(len(data)) + data if data else b""


def decode_response(buf):
    """HealthCheckResponse → status number (0 when absent: proto3 default), unknown fields skipped."""
    status, pos = 0, 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise ValueError("field number 0")
        if wire == 0:
            value, pos = _read_varint(buf, pos)
            if field == 1:
                status = value & 0xFFFFFFFF  # enum is int32
        elif wire == 1:
            pos += 8
        elif wire == 2:
            length, pos = _read_varint(buf, pos)
            pos += length
        elif wire == 5:
            pos += 4
        else:
            raise ValueError("unsupported wire type %d" % wire)
        if pos > len(buf):
            raise ValueError("truncated field")
    return status


# ------------------------------------------------------------------ the call

def _channel(args):
    options = [
        ("grpc.enable_http_proxy", 0),  # never route a health probe through $http_proxy
        ("grpc.enable_retries", 0),
    ]
    if args.authority:
        options.append(("grpc.default_authority", args.authority))
    if not args.tls:
        return grpc.insecure_channel(args.target, options=options)
    root = None
    if args.ca:
        with open(args.ca, "rb") as f:
            root = f.read()
    if args.authority:
        options.append(("grpc.ssl_target_name_override", args.authority))
    return grpc.secure_channel(args.target, grpc.ssl_channel_credentials(root_certificates=root),
                               options=options)


def check_once(args):
    """Returns (exit code, message)."""
    with _channel(args) as channel:
        call = channel.unary_unary(METHOD, request_serializer=lambda b: b,
                                   response_deserializer=lambda b: b)
        try:
            raw = call(encode_request(args.service), timeout=args.timeout)
        except grpc.RpcError as error:
            code = error.code()
            detail = error.details() or ""
            if code == grpc.StatusCode.NOT_FOUND:
                return EXIT_NOT_SERVING, "SERVICE_UNKNOWN (NOT_FOUND: %s)" % detail
            name = code.name if code is not None else "UNKNOWN"
            return EXIT_UNREACHABLE, "%s: %s" % (name, detail)
    try:
        status = decode_response(raw)
    except ValueError as error:
        return EXIT_UNREACHABLE, "malformed HealthCheckResponse (%s): %s" % (error, raw.hex())
    name = STATUS_NAMES.get(status, "status %d" % status)
    return (EXIT_SERVING if status == 1 else EXIT_NOT_SERVING), name


def main():
    parser = argparse.ArgumentParser(
        description="gRPC health check (grpc.health.v1.Health/Check).",
        epilog="exit: 0 SERVING, 1 answered but not SERVING, 2 usage, 3 no answer")
    parser.add_argument("target", metavar="HOST:PORT")
    parser.add_argument("service", metavar="SERVICE", nargs="?", default="",
                        help='service name to check (default "": the server as a whole)')
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="deadline of each Check call in seconds (default 5)")
    parser.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                        help="retry until SERVING or SECONDS have passed (default: one call)")
    parser.add_argument("--tls", action="store_true", help="use TLS (default: h2c)")
    parser.add_argument("--ca", metavar="FILE", help="PEM roots for --tls (default: system roots)")
    parser.add_argument("--authority", help=":authority / TLS server name to use")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing, exit status only")
    args = parser.parse_args()

    host, sep, port = args.target.rpartition(":")
    if not sep or not host or not port.isdigit():
        parser.error("target must be HOST:PORT, got %r" % args.target)
    if args.ca and not args.tls:
        parser.error("--ca needs --tls")
    if args.timeout <= 0:
        parser.error("--timeout must be positive")

    deadline = time.monotonic() + max(args.wait, 0.0)
    while True:
        try:
            code, message = check_once(args)
        except OSError as error:  # e.g. unreadable --ca file
            code, message = EXIT_USAGE, str(error)
        if code in (EXIT_SERVING, EXIT_USAGE) or time.monotonic() + 0.5 > deadline:
            break
        time.sleep(0.5)

    if not args.quiet:
        if code == EXIT_SERVING:
            print(message, flush=True)
        elif code == EXIT_NOT_SERVING:
            print(message, flush=True)
            sys.stderr.write("health_check: %s%s is not serving\n"
                             % (args.target, " " + args.service if args.service else ""))
        else:
            sys.stderr.write("health_check: %s: %s\n" % (args.target, message))
    return code


if __name__ == "__main__":
    sys.exit(main())
