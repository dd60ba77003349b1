#!/usr/bin/python3
"""A counting HTTP server for the workflow tests: the other end of `http` nodes. Prints the port it
listens on, then serves on 127.0.0.1 (or --port).

Any request to /n/<name> (any method) is counted under <name> and answered by the behaviour
scripted for <name> (POST /_script with {"<name>": {...}}; unscripted names answer 200):
  "statuses": [500, 500, 200]   the status of the 1st, 2nd, ... request (the last one repeats)
  "delay": seconds              slept before answering (the request counts as in flight meanwhile)
  "body": any JSON              the body of a 2xx answer (default {"name", "count", "received"})
  "list": N                     answer a JSON list of N integers (for iteration limits)
GET /_counts returns {"counts": {name: n}, "max_in_flight": {name: n}, "bodies": {name: [...]}}:
how many requests each name got, the most that were in flight at once, and the JSON bodies
received. POST /_reset clears everything."""
import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
state = {"script": {}, "counts": {}, "in_flight": {}, "max_in_flight": {}, "bodies": {}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return raw.decode(errors="replace")

    def handle_any(self):
        received = self.body()
        if self.path == "/_script":
            with lock:
                state["script"].update(received or {})
            return self.reply(200, {})
        if self.path == "/_reset":
            with lock:
                for key in state:
                    state[key] = {}
            return self.reply(200, {})
        if self.path == "/_counts":
            with lock:
                return self.reply(200, {k: state[k] for k in ("counts", "max_in_flight", "bodies")})
        if not self.path.startswith("/n/"):
            return self.reply(404, {"error": "unknown path"})
        name = self.path[3:].split("?")[0]
        with lock:
            count = state["counts"].get(name, 0) + 1
            state["counts"][name] = count
            state["bodies"].setdefault(name, []).append(received)
            flying = state["in_flight"].get(name, 0) + 1
            state["in_flight"][name] = flying
            state["max_in_flight"][name] = max(state["max_in_flight"].get(name, 0), flying)
            behaviour = dict(state["script"].get(name, {}))
        try:
            time.sleep(float(behaviour.get("delay", 0)))
            statuses = behaviour.get("statuses") or [200]
            status = statuses[min(count, len(statuses)) - 1]
            if status >= 300:
                return self.reply(status, {"error": "scripted %d" % status, "count": count})
            if "list" in behaviour:
                return self.reply(status, list(range(int(behaviour["list"]))))
            return self.reply(status, behaviour.get("body", {"name": name, "count": count, "received": received}))
        finally:
            with lock:
                state["in_flight"][name] -= 1

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = handle_any


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
