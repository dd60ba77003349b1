#!/usr/bin/python3
"""A small OpenAI-compatible embeddings server for the knowledge tests (a real HTTP server at the
boundary this machine cannot reach: a hosted embedding API).

    /usr/bin/python3 fake_embeddings.py   # prints the port it listens on, then serves

POST /v1/embeddings with model "fake-embed": one 8-dimensional vector per input, deterministic
(words counted into 8 buckets by a stable hash, unit length), in OpenAI's response shape, with
the data in reverse order (their `index` says where each belongs). Another model: 404.
POST /control {"fail_next": N, "status": S}: the next N embedding requests answer S (429 with
Retry-After: 0, or a 5xx).
GET /requests: every embedding request received, as [{"inputs": [...], "status": S}].
"""
import json
import re
import signal
import sys
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RECEIVED = []
FAILURES = {"left": 0, "status": 500}


def vector(text):
    buckets = [0.0] * 8
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        buckets[zlib.crc32(word.encode()) % 8] += 1.0
    norm = sum(x * x for x in buckets) ** 0.5
    return [x / norm for x in buckets] if norm else buckets


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/requests":
            self.answer(200, RECEIVED)
        else:
            self.answer(404, {"error": {"message": "not found"}})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        if self.path == "/control":
            FAILURES["left"] = int(body.get("fail_next", 0))
            FAILURES["status"] = int(body.get("status", 500))
            self.answer(200, {})
            return
        if self.path != "/v1/embeddings":
            self.answer(404, {"error": {"message": "not found"}})
            return
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else inputs
        if FAILURES["left"] > 0:
            FAILURES["left"] -= 1
            status = FAILURES["status"]
            RECEIVED.append({"inputs": inputs, "status": status})
            self.answer(status, {"error": {"message": "try again"}}, [("Retry-After", "0")] if status == 429 else [])
            return
        if body.get("model") != "fake-embed":
            RECEIVED.append({"inputs": inputs, "status": 404})
            self.answer(404, {"error": {"message": "model not found", "type": "invalid_request_error", "code": "model_not_found"}})
            return
        RECEIVED.append({"inputs": inputs, "status": 200})
        data = [{"object": "embedding", "index": i, "embedding": vector(text)} for i, text in enumerate(inputs)]
        self.answer(200, {"object": "list", "data": list(reversed(data)), "model": "fake-embed",
                          "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}})


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
