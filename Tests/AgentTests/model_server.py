#!/usr/bin/python3
"""A fake model and search server for the agent tests. Prints the port it listens on, then serves
on 127.0.0.1.

POST .../chat/completions speaks the OpenAI chat-completions API, streamed as server-sent events
over a chunked body when the request says "stream": true (with tool calls and, when
stream_options.include_usage is set, a usage event), else as one chat.completion JSON. Each request
is recorded. The answer comes from the scripted queue if it is not empty, else from the default:
  - any "tool" message: content "Model answer. " + "[<tool_call_id>] <content[:120]>" for each
    tool message, joined with " ";
  - else tools offered: a call of the first tool with {"query": <last user message>} (or
    "question", or {"code": "print(6 * 7)"}, or {}, by what its parameters' properties hold);
  - else content "Hello from the model.".
Scripted entries (POST /_script with a JSON list; each is used once, in order):
  {"status": 429, "retry_after": N}   429 with Retry-After: N and an OpenAI rate-limit error body
  {"status": 500}                     that status (any >= 400) with an OpenAI server error body
  {"malformed": true}                 a stream with one content chunk, then broken JSON, then [DONE]
  {"drop": true}                      a stream of "Partial ", "answer", then the socket is closed
                                      without the chunk terminator and without [DONE]
  {"content": "text"}                 an answer with that text
  {"tool_calls": [{"name": n, "arguments": {...}}, ...]}   an answer calling those tools
  Any entry may also hold "delay": seconds, slept before answering.
POST /_reset clears the queues and the records. GET /_requests returns {"chat": [...], "search":
[...]}: for chat {"path", "headers" (lowercase keys), "body" (parsed JSON)}, for search {"query",
"headers"}.

GET /search?q=...&format=json speaks the SearxNG JSON API: three fake results for q (400 if q is
missing or empty), or the next entry of the search queue (POST /_search_script with a JSON list of
{"status": N}), answered with that status. Anything else is 404."""
import argparse
import json
import re
import secrets
import signal
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

parser = argparse.ArgumentParser()
args = parser.parse_args()
lock = threading.Lock()
records = {"chat": [], "search": []}
script = []
search_script = []


def text_of(content):
    """The text of a message's content: a string, a list of content parts, or null."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    return str(content)


def default_behaviour(body):
    messages = body.get("messages") or []
    tool_messages = [m for m in messages if isinstance(m, dict) and m.get("role") == "tool"]
    if tool_messages:
        parts = ["[%s] %s" % (m.get("tool_call_id", ""), text_of(m.get("content"))[:120]) for m in tool_messages]
        return {"content": "Model answer. " + " ".join(parts)}
    tools = body.get("tools") or []
    if tools:
        function = tools[0].get("function", {}) if isinstance(tools[0], dict) else {}
        properties = (function.get("parameters") or {}).get("properties") or {}
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        question = text_of(users[-1].get("content")) if users else ""
        if "query" in properties:
            arguments = {"query": question}
        elif "question" in properties:
            arguments = {"question": question}
        elif "code" in properties:
            arguments = {"code": "print(6 * 7)"}
        else:
            arguments = {}
        return {"tool_calls": [{"name": function.get("name", ""), "arguments": arguments}]}
    return {"content": "Hello from the model."}


def slug(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "q"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_):
        pass

    # --- plumbing -------------------------------------------------------------------------------

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def headers_dict(self):
        return {k.lower(): v for k, v in self.headers.items()}

    def send_json(self, status, obj, extra_headers=()):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra_headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def send_empty(self, status):
        self.send_response(status)
        if status != 204:
            self.send_header("Content-Length", "0")
        self.end_headers()

    def start_stream(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

    def write_chunk(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def event(self, obj):
        self.write_chunk("data: " + json.dumps(obj) + "\n\n")
        time.sleep(0.02)

    def end_stream(self):
        self.write_chunk("data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # --- routes ---------------------------------------------------------------------------------

    def do_POST(self):
        raw = self.read_body()
        path = urlsplit(self.path).path
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if path.endswith("/chat/completions"):
            if not isinstance(body, dict):
                self.send_json(400, {"error": {"message": "Invalid JSON body", "type": "invalid_request_error"}})
                return
            self.chat(path, body)
        elif path == "/_script" or path == "/_search_script":
            entries = body if isinstance(body, list) else [body]
            with lock:
                (script if path == "/_script" else search_script).extend(e for e in entries if isinstance(e, dict))
            self.send_empty(204)
        elif path == "/_reset":
            with lock:
                script.clear()
                search_script.clear()
                records["chat"].clear()
                records["search"].clear()
            self.send_empty(204)
        else:
            self.send_json(404, {"error": "not found"})

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/_requests":
            with lock:
                data = json.loads(json.dumps(records))
            self.send_json(200, data)
        elif url.path == "/search":
            self.search(parse_qs(url.query).get("q", [""])[0])
        else:
            self.send_json(404, {"error": "not found"})

    def search(self, q):
        with lock:
            records["search"].append({"query": q, "headers": self.headers_dict()})
            entry = search_script.pop(0) if search_script else None
        if entry is not None:
            time.sleep(float(entry.get("delay", 0)))
            if int(entry.get("status", 200)) >= 400:
                self.send_json(int(entry["status"]), {"error": "scripted failure"})
                return
        if not q.strip():
            self.send_json(400, {"error": "missing query"})
            return
        results = [{"url": "https://example.org/%s/%d" % (slug(q), n), "title": "Result %d for %s" % (n, q),
                    "content": "Snippet %d about %s." % (n, q), "engine": "fake", "score": 1.0 / n}
                   for n in range(1, 4)]
        self.send_json(200, {"query": q, "number_of_results": 3, "results": results})

    def chat(self, path, body):
        with lock:
            records["chat"].append({"path": self.path, "headers": self.headers_dict(), "body": body})
            entry = script.pop(0) if script else None
        if entry is None:
            entry = default_behaviour(body)
        time.sleep(float(entry.get("delay", 0)))
        model = body.get("model", "test-model")
        stream = body.get("stream") is True
        status = int(entry.get("status", 200))
        if status == 429:
            self.send_json(429, {"error": {"message": "Rate limit reached", "type": "rate_limit_error"}},
                           [("Retry-After", str(entry.get("retry_after", 1)))])
            return
        if status >= 400:
            self.send_json(status, {"error": {"message": "The server had an error", "type": "server_error"}})
            return

        def chunk(delta, finish_reason=None):
            return {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": int(time.time()),
                    "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}

        if entry.get("malformed"):
            self.start_stream()
            self.event(chunk({"role": "assistant", "content": "Hello"}))
            self.write_chunk('data: {"choices": [{"delta": {"content": \n\n')
            time.sleep(0.02)
            self.end_stream()
            return
        if entry.get("drop"):
            self.start_stream()
            self.event(chunk({"role": "assistant", "content": "Partial "}))
            self.event(chunk({"content": "answer"}))
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.connection.close()
            return

        content = entry.get("content")
        calls = [{"id": "call_%d_%s" % (i, secrets.token_hex(3)), "name": c.get("name", ""),
                  "arguments": c["arguments"] if isinstance(c.get("arguments"), str) else json.dumps(c.get("arguments", {}))}
                 for i, c in enumerate(entry.get("tool_calls") or [])]
        if content is None and not calls:
            content = ""
        finish_reason = "tool_calls" if calls else "stop"
        prompt_tokens = sum(len(text_of(m.get("content"))) for m in body.get("messages") or [] if isinstance(m, dict)) // 4 + 1
        completion_tokens = (len(content or "") + sum(len(c["arguments"]) for c in calls)) // 4 + 1
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}

        if not stream:
            message = {"role": "assistant", "content": content if not calls or content else None}
            if calls:
                message["tool_calls"] = [{"id": c["id"], "type": "function",
                                          "function": {"name": c["name"], "arguments": c["arguments"]}} for c in calls]
            self.send_json(200, {"id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()),
                                 "model": model, "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
                                 "usage": usage})
            return

        self.start_stream()
        self.event(chunk({"role": "assistant", "content": ""}))
        for start in range(0, len(content or ""), 4):
            self.event(chunk({"content": content[start:start + 4]}))
        for i, c in enumerate(calls):
            self.event(chunk({"tool_calls": [{"index": i, "id": c["id"], "type": "function",
                                              "function": {"name": c["name"], "arguments": ""}}]}))
            for start in range(0, len(c["arguments"]), 5):
                self.event(chunk({"tool_calls": [{"index": i, "function": {"arguments": c["arguments"][start:start + 5]}}]}))
        self.event(chunk({}, finish_reason))
        if (body.get("stream_options") or {}).get("include_usage") is True:
            usage_chunk = chunk({})
            usage_chunk["choices"] = []
            usage_chunk["usage"] = usage
            self.event(usage_chunk)
        self.end_stream()


signal.signal(signal.SIGTERM, signal.SIG_DFL)
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
