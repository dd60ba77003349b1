"""A raw HTTP/2 client for the hostile-input suite.

A conforming HTTP/2 library refuses to send most of what this suite needs (frames on the wrong
stream, lying lengths, floods), so requests are built frame by frame here. Only HPACK comes from a
library (`hpack`), because every header block must keep the server's decoder in sync. What the
server sends back is parsed here too, without validation, so that a malformed answer is reported as
it came rather than as a parser exception.
"""

import socket
import struct
import time

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types (RFC 9113 §6).
(DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE,
 CONTINUATION) = range(10)

# Flags.
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

# Settings identifiers.
(HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE,
 MAX_HEADER_LIST_SIZE) = range(1, 7)

# Error codes (RFC 9113 §7).
ERRORS = ["NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT",
          "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR",
          "CONNECT_ERROR", "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"]
(NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, _, STREAM_CLOSED, FRAME_SIZE_ERROR,
 REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, _, ENHANCE_YOUR_CALM) = range(12)

DEFAULT_MAX_FRAME = 16384


def error_name(code):
    return ERRORS[code] if code is not None and 0 <= code < len(ERRORS) else f"error 0x{code:x}"


def frame(kind, flags, stream_id, payload=b""):
    """Serializes one frame; the length is always the payload's, lying lengths are built by hand."""
    header = struct.pack(">I", len(payload))[1:] + bytes([kind, flags])
    return header + struct.pack(">I", stream_id & 0x7FFFFFFF) + payload


def settings_frame(settings=(), ack=False):
    payload = b"".join(struct.pack(">HI", key, value) for key, value in settings)
    return frame(SETTINGS, ACK if ack else 0, 0, payload)


def window_update(stream_id, increment):
    return frame(WINDOW_UPDATE, 0, stream_id, struct.pack(">I", increment))


def rst_stream(stream_id, code=CANCEL):
    return frame(RST_STREAM, 0, stream_id, struct.pack(">I", code))


# --- gRPC and protobuf ---------------------------------------------------------------------

def grpc_message(payload, compressed=False, flag=None, declared_length=None):
    """One length-prefixed gRPC message; `flag` and `declared_length` allow lying about it."""
    flag = (1 if compressed else 0) if flag is None else flag
    length = len(payload) if declared_length is None else declared_length
    return bytes([flag]) + struct.pack(">I", length) + payload


def grpc_messages(data):
    """Splits a response body into its messages; raises ValueError on a trailing fragment."""
    messages, offset = [], 0
    while len(data) - offset >= 5:
        length = struct.unpack(">I", data[offset + 1:offset + 5])[0]
        if len(data) - offset - 5 < length:
            break
        messages.append(bytes(data[offset + 5:offset + 5 + length]))
        offset += 5 + length
    if offset != len(data):
        raise ValueError(f"{len(data) - offset} trailing bytes are not a whole gRPC message")
    return messages


def varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def pb_varint(field, value):
    return varint(field << 3) + varint(value)


def pb_bytes(field, value):
    return varint(field << 3 | 2) + varint(len(value)) + value


def pb_fields(data):
    """Decodes a protobuf message into {field: [values]} (varints and length-delimited only)."""
    fields, offset = {}, 0

    def read_varint():
        nonlocal offset
        result = shift = 0
        while True:
            byte = data[offset]
            offset += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return result

    while offset < len(data):
        key = read_varint()
        field, wire = key >> 3, key & 7
        if wire == 0:
            value = read_varint()
        elif wire == 2:
            length = read_varint()
            value = bytes(data[offset:offset + length])
            offset += length
        else:
            raise ValueError(f"unexpected wire type {wire}")
        fields.setdefault(field, []).append(value)
    return fields


def echo_request(text):
    """platform.echo.v1.EchoRequest{text}."""
    return pb_bytes(1, text.encode())


def streaming_output_request(sizes):
    """grpc.testing.StreamingOutputCallRequest with one ResponseParameters{size} per entry."""
    return b"".join(pb_bytes(2, pb_varint(1, size)) for size in sizes)


ECHO = "/platform.echo.v1.EchoService/Echo"
FULL_DUPLEX = "/grpc.testing.TestService/FullDuplexCall"
STREAMING_OUTPUT = "/grpc.testing.TestService/StreamingOutputCall"


def request_headers(path, method="POST", content_type="application/grpc", te="trailers", extra=()):
    """A gRPC request head; passing None for a field leaves the header out."""
    headers = [(":method", method), (":scheme", "http"), (":path", path),
               (":authority", "127.0.0.1")]
    if content_type is not None:
        headers.append(("content-type", content_type))
    if te is not None:
        headers.append(("te", te))
    return headers + list(extra)


# --- the connection ------------------------------------------------------------------------

class Closed(Exception):
    """The server closed (or reset) the connection."""


class Stream:
    def __init__(self, stream_id, send_window):
        self.id = stream_id
        self.headers = None  # the first HEADERS block, as [(name, value)]
        self.trailers = None  # a second HEADERS block
        self.trailers_only = False  # the first HEADERS block carried END_STREAM
        self.data = bytearray()
        self.ended = False  # the server sent END_STREAM
        self.reset = None  # RST_STREAM error code
        self.send_window = send_window

    def header(self, name, block=None):
        for key, value in (block if block is not None else self.headers) or []:
            if key == name:
                return value
        return None

    @property
    def http_status(self):
        return self.header(":status")

    @property
    def grpc_status(self):
        """grpc-status from the trailers or, for a trailers-only response, from the headers."""
        if self.trailers is not None:
            value = self.header("grpc-status", self.trailers)
        elif self.trailers_only:
            value = self.header("grpc-status")
        else:
            value = None
        return int(value) if value is not None and value.isdigit() else value

    @property
    def finished(self):
        return self.ended or self.reset is not None

    def describe(self):
        """A short account of what the server answered, for failure messages."""
        parts = []
        if self.headers is not None:
            shown = {k: (v[:60] + "…" if len(v) > 60 else v) for k, v in self.headers}
            parts.append(f"headers={shown}{' (END_STREAM)' if self.trailers_only else ''}")
        if self.data:
            parts.append(f"data={len(self.data)}B")
        if self.trailers is not None:
            parts.append(f"trailers={dict(self.trailers)}")
        if self.reset is not None:
            parts.append(f"RST_STREAM {error_name(self.reset)}")
        return ", ".join(parts) or "nothing"


class Connection:
    """A client connection that sends whatever it is told and records what comes back.

    It answers SETTINGS and PING as a client must, and by default returns flow-control credit for
    every DATA byte it receives, so only the behaviour a case asks for differs from a normal client.
    With `ack_settings=False` it applies the server's SETTINGS but holds back the ACKs until
    `send_settings_acks()`, so a case can act before the server's settings are in force on its side.
    """

    def __init__(self, port, settings=(), handshake=True, timeout=3.0, rcvbuf=None,
                 auto_window=True, ack_settings=True):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            # Must precede connect() for the advertised TCP window to shrink.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.auto_window = auto_window
        self.inbuf = bytearray()
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.decoder.max_header_list_size = 1 << 20
        self.server_settings = {}
        self.settings_acked = False
        self.ack_settings = ack_settings
        self.unacked_settings = 0  # server SETTINGS frames received but not yet acknowledged
        self.goaway = None  # (last_stream_id, error_code, debug_data)
        self.closed = False  # the server's side ended (EOF or reset)
        self.write_failed = False
        self.close_reason = None
        self.streams = {}
        self.next_stream_id = 1
        self.send_window = 65535  # the connection window the server grants us
        self.frames_in = 0
        self.pending_block = None  # (stream_id, end_stream, fragments) until END_HEADERS
        if handshake:
            self.handshake(settings)

    # -- sending

    def send(self, data):
        if self.closed or self.write_failed:
            raise Closed(self.close_reason or "send failed")
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as error:
            # The server closed while we were still sending. What it wrote before closing (a
            # GOAWAY saying why) may still be readable, so collect it before giving up.
            self.write_failed = True
            self.drain()
            self.mark_closed(f"send failed: {error.__class__.__name__}")
            raise Closed(self.close_reason) from None

    def send_frame(self, kind, flags, stream_id, payload=b""):
        self.send(frame(kind, flags, stream_id, payload))

    def handshake(self, settings=()):
        """Preface and SETTINGS, then waits for the server's SETTINGS and its ACK of ours, so the
        settings on both sides are in force before a case starts (on the server's side only once
        we ACK them, which `ack_settings=False` defers)."""
        self.send(PREFACE + settings_frame(settings))
        if not self.wait(lambda: self.server_settings and self.settings_acked, self.timeout):
            raise AssertionError(f"handshake did not complete ({self.state()})")

    def new_stream_id(self):
        stream_id = self.next_stream_id
        self.next_stream_id += 2
        return stream_id

    def stream(self, stream_id):
        if stream_id not in self.streams:
            window = self.server_settings.get(INITIAL_WINDOW_SIZE, 65535)
            self.streams[stream_id] = Stream(stream_id, window)
        return self.streams[stream_id]

    def header_block(self, headers, huffman=True):
        return self.encoder.encode(headers, huffman=huffman)

    def send_headers(self, stream_id, headers, end_stream=False, huffman=True):
        """Sends a header block, split into CONTINUATION frames when it exceeds the server's
        maximum frame size."""
        self.stream(stream_id)
        if stream_id % 2 == 1:  # cases may pick ids by hand; later streams must still go up
            self.next_stream_id = max(self.next_stream_id, stream_id + 2)
        block = self.header_block(headers, huffman)
        limit = self.server_settings.get(MAX_FRAME_SIZE, DEFAULT_MAX_FRAME)
        chunks = [block[i:i + limit] for i in range(0, len(block), limit)] or [b""]
        out = bytearray()
        for index, chunk in enumerate(chunks):
            flags = END_HEADERS if index == len(chunks) - 1 else 0
            if index == 0:
                out += frame(HEADERS, flags | (END_STREAM if end_stream else 0), stream_id, chunk)
            else:
                out += frame(CONTINUATION, flags, stream_id, chunk)
        self.send(bytes(out))
        return stream_id

    def open(self, path, end_stream=False, **head):
        return self.send_headers(self.new_stream_id(), request_headers(path, **head), end_stream)

    def send_data(self, stream_id, data, end_stream=False, deadline=None, frame_size=None):
        """Sends DATA within the server's flow-control windows, reading (and so receiving window
        updates) while it waits. Returns False if the stream ended before everything was sent."""
        stream = self.stream(stream_id)
        deadline = deadline or time.monotonic() + self.timeout
        limit = frame_size or self.server_settings.get(MAX_FRAME_SIZE, DEFAULT_MAX_FRAME)
        view = memoryview(data)
        while True:
            if stream.finished:
                return False
            size = min(len(view), limit)
            if size > 0 and min(self.send_window, stream.send_window) <= 0:
                has_window = lambda: min(self.send_window, stream.send_window) > 0  # noqa: E731
                remaining = deadline - time.monotonic()
                if not self.wait(lambda: stream.finished or has_window(), remaining):
                    raise AssertionError(
                        f"no flow-control window to send on stream {stream_id} ({self.state()})")
                continue
            size = min(size, self.send_window, stream.send_window)
            last = size == len(view)
            flags = END_STREAM if (last and end_stream) else 0
            self.send_frame(DATA, flags, stream_id, bytes(view[:size]))
            self.send_window -= size
            stream.send_window -= size
            view = view[size:]
            self.poll()
            if last:
                return True

    def rst(self, stream_id, code=CANCEL):
        self.send(rst_stream(stream_id, code))

    def send_settings_acks(self):
        """Acknowledges the server SETTINGS held back so far (`ack_settings=False`) and from then
        on acknowledges them as they arrive."""
        self.ack_settings = True
        count, self.unacked_settings = self.unacked_settings, 0
        if count:
            self.send(settings_frame(ack=True) * count)

    # -- receiving

    def mark_closed(self, reason):
        if not self.closed:
            self.closed = True
            self.close_reason = reason

    def read_once(self, timeout):
        """Reads what is available (waiting up to `timeout`) and handles every whole frame."""
        if self.closed:
            return False
        self.sock.settimeout(max(timeout, 0.001))
        try:
            chunk = self.sock.recv(1 << 20)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError) as error:
            self.mark_closed(error.__class__.__name__)
            return False
        if not chunk:
            self.mark_closed("EOF")
            return False
        self.inbuf += chunk
        self.process()
        return True

    def drain(self, timeout=0.5):
        """Reads until the server's side ends (or `timeout`), handling every frame on the way."""
        self.wait(lambda: False, timeout)

    def poll(self, max_reads=16):
        """Handles what has already arrived, without waiting. Bounded, because a server that
        streams as fast as we read would otherwise keep this loop going."""
        for _ in range(max_reads):
            if not self.read_once(0.0):
                return

    def wait(self, predicate, timeout):
        """Reads until `predicate()` holds, the connection closes, or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if self.closed or remaining <= 0:
                return bool(predicate())
            self.read_once(min(remaining, 0.25))
        return True

    def wait_closed(self, timeout):
        """Waits for the server to end the connection: a GOAWAY that is an error, or EOF/reset."""
        error_goaway = lambda: self.goaway is not None and self.goaway[1] != NO_ERROR  # noqa: E731
        return self.wait(lambda: self.closed or error_goaway(), timeout)

    def process(self):
        while len(self.inbuf) >= 9:
            length = int.from_bytes(self.inbuf[0:3], "big")
            if len(self.inbuf) < 9 + length:
                return
            kind, flags = self.inbuf[3], self.inbuf[4]
            stream_id = int.from_bytes(self.inbuf[5:9], "big") & 0x7FFFFFFF
            payload = bytes(self.inbuf[9:9 + length])
            del self.inbuf[:9 + length]
            self.frames_in += 1
            self.handle(kind, flags, stream_id, payload)

    def handle(self, kind, flags, stream_id, payload):
        if kind == SETTINGS:
            if flags & ACK:
                self.settings_acked = True
                return
            for offset in range(0, len(payload) - len(payload) % 6, 6):
                key, value = struct.unpack(">HI", payload[offset:offset + 6])
                if key == INITIAL_WINDOW_SIZE:
                    delta = value - self.server_settings.get(INITIAL_WINDOW_SIZE, 65535)
                    for stream in self.streams.values():
                        stream.send_window += delta
                self.server_settings[key] = value
            if self.ack_settings:
                self.try_send(settings_frame(ack=True))
            else:
                self.unacked_settings += 1
        elif kind == PING:
            if not flags & ACK:
                self.try_send(frame(PING, ACK, 0, payload))
        elif kind == GOAWAY:
            last, code = struct.unpack(">II", payload[:8])
            self.goaway = (last & 0x7FFFFFFF, code, payload[8:])
        elif kind == WINDOW_UPDATE:
            increment = struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF
            if stream_id == 0:
                self.send_window += increment
            else:
                self.stream(stream_id).send_window += increment
        elif kind == RST_STREAM:
            self.stream(stream_id).reset = struct.unpack(">I", payload[:4])[0]
        elif kind == DATA:
            credit = len(payload)  # flow control counts padding too
            if flags & PADDED:
                payload = payload[1:len(payload) - payload[0]]
            stream = self.stream(stream_id)
            stream.data += payload
            if flags & END_STREAM:
                stream.ended = True
            if self.auto_window and credit:
                self.try_send(window_update(0, credit) + window_update(stream_id, credit))
        elif kind == HEADERS:
            offset = 0
            pad = 0
            if flags & PADDED:
                pad = payload[0]
                offset = 1
            if flags & PRIORITY_FLAG:
                offset += 5
            fragment = payload[offset:len(payload) - pad]
            self.pending_block = (stream_id, bool(flags & END_STREAM), [fragment])
            if flags & END_HEADERS:
                self.finish_block()
        elif kind == CONTINUATION and self.pending_block is not None:
            self.pending_block[2].append(payload)
            if flags & END_HEADERS:
                self.finish_block()

    def finish_block(self):
        stream_id, end_stream, fragments = self.pending_block
        self.pending_block = None
        headers = [(k.decode(errors="replace") if isinstance(k, bytes) else k,
                    v.decode(errors="replace") if isinstance(v, bytes) else v)
                   for k, v in self.decoder.decode(b"".join(fragments), raw=True)]
        stream = self.stream(stream_id)
        if stream.headers is None:
            stream.headers = headers
            stream.trailers_only = end_stream
        else:
            stream.trailers = headers
        if end_stream:
            stream.ended = True

    def try_send(self, data):
        """Protocol replies (ACKs, window updates): a closed connection is noted, not raised."""
        try:
            self.send(data)
        except Closed:
            pass

    # -- helpers for cases

    def state(self):
        parts = [f"{self.frames_in} frames in"]
        if self.goaway is not None:
            last, code, debug = self.goaway
            parts.append(f"GOAWAY {error_name(code)} last={last} debug={bytes(debug[:80])!r}")
        if self.closed:
            parts.append(f"closed ({self.close_reason})")
        return ", ".join(parts)

    def call(self, path, messages=(), end_stream=True, timeout=None, **head):
        """Sends a request (the head, then the given framed messages) and waits for the stream
        to finish. Returns the Stream."""
        stream_id = self.open(path, **head)
        body = b"".join(messages)
        if body or end_stream:
            self.send_data(stream_id, body, end_stream=end_stream)
        stream = self.stream(stream_id)
        self.wait(lambda: stream.finished, timeout or self.timeout)
        return stream

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()

