#!/usr/bin/python3
"""A small OpenAI-compatible chat-completions server for the text-to-SQL tests.

    /usr/bin/python3 fake_chat_completions.py   # prints the port it listens on, then serves

POST /v1/chat/completions answers by the last user message:
  - "count departments": {"sql": "SELECT count(*) FROM departments", ...} as JSON content;
  - "retry": a statement the guard refuses (pg_sleep) until a message says it was rejected,
    then a valid one;
  - "fenced": SQL in a fenced code block with a trailing semicolon;
  - "broken": HTTP 500;
and a request to describe a table (SyncSchema's enhance_descriptions): one sentence naming it.
GET /requests returns every request body received, as a JSON list.
"""
import json
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RECEIVED = []


def completion(content):
    return {
        "id": "chatcmpl-test", "object": "chat.completion", "model": "test-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 12, "total_tokens": 132},
    }


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/requests":
            self.answer(200, RECEIVED)
        else:
            self.answer(404, {"error": {"message": "not found"}})

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        request = json.loads(self.rfile.read(length))
        request["authorization"] = self.headers.get("Authorization", "")
        RECEIVED.append(request)
        if self.path != "/v1/chat/completions":
            return self.answer(404, {"error": {"message": "not found"}})
        users = [m["content"] for m in request["messages"] if m["role"] == "user"]
        question = users[-1]
        if request["messages"][0]["content"].startswith("You describe database tables"):
            table = question.split()[1] if question.startswith("TABLE ") else "?"
            return self.answer(200, completion(f"Rows of {table}, described by the model."))
        rejected = any("was rejected" in text for text in users)
        if "broken" in question:
            return self.answer(500, {"error": {"message": "the model is overloaded"}})
        if "count departments" in question:
            content = json.dumps({"sql": "SELECT count(*) FROM departments", "explanation": "Counts the departments."})
        elif "retry" in question or rejected:
            sql = "SELECT count(*) FROM employees" if rejected else "SELECT pg_sleep(1)"
            content = json.dumps({"sql": sql, "explanation": "Counts employees."})
        elif "fenced" in question:
            content = "Here it is:\n```sql\nSELECT name FROM departments ORDER BY name;\n```"
        else:
            content = json.dumps({"sql": "SELECT 1", "explanation": "A constant."})
        self.answer(200, completion(content))


def main():
    # The Swift test process ignores SIGTERM (its service lifecycle handles it), and a child
    # inherits that: make it end this server again.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
