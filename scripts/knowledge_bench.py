#!/usr/bin/python3
"""The knowledge benchmark's client (scripts/benchmark-knowledge.sh runs it).

    JWT_PRIVATE_KEY=… knowledge_bench.py --port P recall [--corpus F] [--queries F] [--chunk-size N]
    JWT_PRIVATE_KEY=… knowledge_bench.py --port P scale --chunks N [--seconds S] [--concurrency C] [--warmup W]

recall: ingests the retrieval corpus (../shared/testdata/retrieval: Debian manual pages) into a
fresh knowledge base through CreateDocument, waits until every document is indexed (ingestion
throughput in chunks per second), then asks every query in each mode (KEYWORD, VECTOR, HYBRID
with RRF, HYBRID weighted) with top_k 10 and distinct_documents, and prints R@1/5/10, MRR@10 and
nDCG@10 (one relevant document per query, as the corpus defines them).

scale: a knowledge base of at least N chunks (the corpus chunked small, then synthetic filler made
of its sentences reshuffled), then per mode W passes over the queries not measured (default 1: the
service's postings in memory), then S seconds of C concurrent callers. Prints p50/p95 of
the Search latency without the query's embedding time (Search reports it), and that time apart.
"""
import argparse
import concurrent.futures
import gzip
import json
import math
import os
import random
import statistics
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "Tests", "Hostile"))
sys.path.insert(0, os.path.join(HERE, "..", "Tests", "Interop", "persona"))
from persona_client import channel_for, mint_token, signing_key  # noqa: E402
from platform_protos import load  # noqa: E402

kb_pb2, = load("platform/knowledge/v1/knowledge.proto")
DATA = os.path.join(HERE, "..", "..", "shared", "testdata", "retrieval")
SERVICE = "/platform.knowledge.v1.KnowledgeService/"
MODES = [
    ("KEYWORD", kb_pb2.SEARCH_MODE_KEYWORD, kb_pb2.FUSION_METHOD_UNSPECIFIED),
    ("VECTOR", kb_pb2.SEARCH_MODE_VECTOR, kb_pb2.FUSION_METHOD_UNSPECIFIED),
    ("HYBRID rrf", kb_pb2.SEARCH_MODE_HYBRID, kb_pb2.FUSION_METHOD_RRF),
    ("HYBRID weighted", kb_pb2.SEARCH_MODE_HYBRID, kb_pb2.FUSION_METHOD_WEIGHTED),
]


class Client:
    def __init__(self, port):
        channel = channel_for("127.0.0.1", port)
        key = signing_key()
        # One owner for every run, so that --reuse finds the knowledge base of an earlier run.
        owner = str(uuid.uuid5(uuid.NAMESPACE_URL, "knowledge-bench"))
        self.metadata = [("authorization", "Bearer " + mint_token(key, owner, roles=("developer",), ttl=86400))]

        def unary(name, response):
            return channel.unary_unary(SERVICE + name, request_serializer=lambda m: m.SerializeToString(),
                                       response_deserializer=response.FromString)
        self.create_base = unary("CreateKnowledgeBase", kb_pb2.KnowledgeBase)
        self.create_document = unary("CreateDocument", kb_pb2.Document)
        self.list_documents = unary("ListDocuments", kb_pb2.ListDocumentsResponse)
        self.get_base = unary("GetKnowledgeBase", kb_pb2.KnowledgeBase)
        self.list_bases = unary("ListKnowledgeBases", kb_pb2.ListKnowledgeBasesResponse)
        self.search_call = unary("Search", kb_pb2.SearchResponse)

    def search(self, request):
        return self.search_call(request, metadata=self.metadata, timeout=120)


def read_jsonl(path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def make_base(client, name, chunk_size, overlap):
    return client.create_base(kb_pb2.CreateKnowledgeBaseRequest(knowledge_base=kb_pb2.KnowledgeBase(
        name=name, chunking=kb_pb2.ChunkingOptions(chunk_size=chunk_size, chunk_overlap=overlap))),
        metadata=client.metadata, timeout=60)


def ingest(client, base, documents, threads=8):
    """Creates every document (title, text, doc_id in metadata) and waits until all are indexed.
    Returns {document id: doc_id}, seconds, chunks."""
    by_id = {}
    lock = threading.Lock()
    started = time.monotonic()

    def settled_count():
        return sum(client.list_documents(kb_pb2.ListDocumentsRequest(knowledge_base_id=base.id, status=status, page_size=1),
                                         metadata=client.metadata, timeout=60).total_size
                   for status in (kb_pb2.DOCUMENT_STATUS_READY, kb_pb2.DOCUMENT_STATUS_FAILED))
    already = settled_count()  # documents of earlier rounds

    def create(doc):
        request = kb_pb2.CreateDocumentRequest(knowledge_base_id=base.id, title=doc["title"], content=doc["text"],
                                               content_type="text/plain", request_id=str(uuid.uuid5(uuid.NAMESPACE_URL, base.id + doc["doc_id"])))
        request.metadata.update({"doc_id": doc["doc_id"]})
        created = client.create_document(request, metadata=client.metadata, timeout=300)
        with lock:
            by_id[created.id] = doc["doc_id"]

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(create, documents))
    last = ""
    while True:
        counts = {}
        for status in (kb_pb2.DOCUMENT_STATUS_READY, kb_pb2.DOCUMENT_STATUS_FAILED):
            counts[status] = client.list_documents(kb_pb2.ListDocumentsRequest(knowledge_base_id=base.id, status=status, page_size=1),
                                                   metadata=client.metadata, timeout=60).total_size
        line = f"  indexed {counts[kb_pb2.DOCUMENT_STATUS_READY]}/{already + len(documents)}, failed {counts[kb_pb2.DOCUMENT_STATUS_FAILED]}"
        if line != last:
            print(line, f"({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
            last = line
        if counts[kb_pb2.DOCUMENT_STATUS_READY] + counts[kb_pb2.DOCUMENT_STATUS_FAILED] >= already + len(documents):
            break
        time.sleep(2)
    seconds = time.monotonic() - started
    chunks = client.get_base(kb_pb2.GetKnowledgeBaseRequest(id=base.id), metadata=client.metadata, timeout=60).chunk_count
    return by_id, seconds, chunks


ALPHA = 0.0  # the service's default (--alpha)


def evaluate(client, base, by_id, queries, mode, fusion, threads=4):
    """R@1, R@5, R@10, MRR@10, nDCG@10 and the mean latency of `queries`."""
    def rank_of(query):
        response = client.search(kb_pb2.SearchRequest(knowledge_base_ids=[base.id], query=query["query"], mode=mode, fusion=fusion,
                                                      top_k=10, distinct_documents=True, hybrid_alpha=ALPHA))
        found = [by_id.get(result.document_id) for result in response.results]
        relevant = set(query["relevant"])
        for position, doc_id in enumerate(found, 1):
            if doc_id in relevant:
                return position
        return None

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        ranks = list(pool.map(rank_of, queries))
    n = len(ranks)
    return {
        "R@1": sum(1 for r in ranks if r and r <= 1) / n,
        "R@5": sum(1 for r in ranks if r and r <= 5) / n,
        "R@10": sum(1 for r in ranks if r and r <= 10) / n,
        "MRR@10": sum(1 / r for r in ranks if r) / n,
        "nDCG@10": sum(1 / math.log2(r + 1) for r in ranks if r) / n,
    }


def selected(args):
    """The modes --modes names (all by default)."""
    wanted = [w.strip().lower() for w in args.modes.split(",")] if args.modes else None
    return [m for m in MODES if wanted is None or m[0].lower() in wanted or m[0].split()[0].lower() in wanted]


def dump(client, base, by_id, queries, path):
    """Each query's KEYWORD and VECTOR rankings (top 100 documents, scores), as JSON lines: the
    material to study fusion without the service."""
    def rankings(query):
        out = {"query": query["query"], "relevant": query["relevant"]}
        for name, mode in (("keyword", kb_pb2.SEARCH_MODE_KEYWORD), ("vector", kb_pb2.SEARCH_MODE_VECTOR)):
            response = client.search(kb_pb2.SearchRequest(knowledge_base_ids=[base.id], query=query["query"], mode=mode, top_k=100,
                                                          distinct_documents=True))
            out[name] = [[by_id.get(r.document_id), r.keyword_score if name == "keyword" else r.vector_score] for r in response.results]
        return out
    with concurrent.futures.ThreadPoolExecutor(4) as pool, open(path, "w") as f:
        for line in pool.map(rankings, queries):
            f.write(json.dumps(line) + "\n")
    print(f"rankings written to {path}", flush=True)


def reused(client, prefix):
    """The knowledge base of an earlier run (name starting with `prefix`) and {document id: doc_id}."""
    bases = client.list_bases(kb_pb2.ListKnowledgeBasesRequest(page_size=100, query=prefix), metadata=client.metadata, timeout=60)
    if not bases.knowledge_bases:
        sys.exit(f"--reuse: no knowledge base named {prefix}… in this database")
    base = bases.knowledge_bases[0]
    by_id, token = {}, ""
    while True:
        page = client.list_documents(kb_pb2.ListDocumentsRequest(knowledge_base_id=base.id, page_size=100, page_token=token),
                                     metadata=client.metadata, timeout=60)
        by_id.update({d.id: d.metadata["doc_id"] for d in page.documents})
        token = page.next_page_token
        if not token:
            return base, by_id


def recall(args, client):
    documents = read_jsonl(args.corpus)
    queries = read_jsonl(args.queries)
    if args.limit:
        documents = documents[:args.limit]
        keep = {d["doc_id"] for d in documents}
        queries = [q for q in queries if set(q["relevant"]) & keep]
    if args.reuse:
        base, by_id = reused(client, "retrieval-")
    else:
        base = make_base(client, f"retrieval-{uuid.uuid4().hex[:8]}", args.chunk_size, args.overlap)
    print(f"corpus {len(documents)} documents, {len(queries)} queries, model {base.embedding_model}, "
          f"chunks of {base.chunking.chunk_size} tokens (overlap {base.chunking.chunk_overlap})", flush=True)
    if not args.reuse:
        by_id, seconds, chunks = ingest(client, base, documents)
        print(f"ingestion: {chunks} chunks in {seconds:.1f} s = {chunks / seconds:.1f} chunks/s", flush=True)
    if args.dump:
        dump(client, base, by_id, queries, args.dump)
    print(f"{'mode':18} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'MRR@10':>7} {'nDCG@10':>8}")
    for name, mode, fusion in selected(args):
        m = evaluate(client, base, by_id, queries, mode, fusion)
        print(f"{name:18} {m['R@1']:6.3f} {m['R@5']:6.3f} {m['R@10']:6.3f} {m['MRR@10']:7.3f} {m['nDCG@10']:8.3f}", flush=True)


def cpu_seconds():
    """CPU time used so far by this process (the client), the knowledge service
    (KNOWLEDGE_PID) and every PostgreSQL process: where a search's time goes."""
    tick = os.sysconf("SC_CLK_TCK")

    def of(pid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            return 0.0
    postgres = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == "postgres":
                    postgres += of(pid)
        except OSError:
            pass
    return {"client": of(os.getpid()), "service": of(os.environ.get("KNOWLEDGE_PID", "0")), "postgres": postgres}


def wait_quiet(limit=60.0):
    """Waits (at most `limit` seconds) until the service and PostgreSQL have stopped working on
    their own: what the warm-up left them to read in the background."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = cpu_seconds()
        time.sleep(0.5)
        after = cpu_seconds()
        if after["service"] - before["service"] + after["postgres"] - before["postgres"] < 0.03:
            return


def scale(args, client):
    documents = read_jsonl(args.corpus)
    queries = [q["query"] for q in read_jsonl(args.queries)]
    if args.reuse:
        base, _ = reused(client, "scale-")
        chunks = base.chunk_count
    else:
        base = make_base(client, f"scale-{uuid.uuid4().hex[:8]}", args.chunk_size, args.overlap)
        _, seconds, chunks = ingest(client, base, documents)
        print(f"corpus: {chunks} chunks of {args.chunk_size} tokens in {seconds:.1f} s = {chunks / seconds:.1f} chunks/s", flush=True)
    # Filler: the corpus's sentences reshuffled into new documents, until there are enough chunks.
    rng = random.Random(7)
    sentences = [s.strip() + "." for d in documents for s in d["text"].split(". ") if 20 < len(s) < 400]
    round_ = 0
    while chunks < args.chunks:
        round_ += 1
        per_doc = 40
        missing = args.chunks - chunks
        filler = [{"doc_id": f"filler-{round_}-{i}", "title": f"filler {round_}-{i}",
                   "text": " ".join(rng.choice(sentences) for _ in range(per_doc * 6))}
                  for i in range(max(1, missing // per_doc + 1))]
        _, seconds, chunks = ingest(client, base, filler)
        print(f"filler round {round_}: {chunks} chunks in all", flush=True)
    if args.psql:
        # What autovacuum does in time: statistics, and the visibility map index-only scans need.
        import subprocess
        subprocess.run(args.psql.split("\t") + ["-X", "-q", "-c", "VACUUM ANALYZE"], check=True)
    print(f"{'mode':18} {'p50 ms':>8} {'p95 ms':>8} {'embed p50':>10} {'calls/s':>8}   CPU ms a call: client service postgres"
          f"   ({args.concurrency} callers, {args.seconds:.0f} s)")
    for name, mode, fusion in selected(args):
        # Warm-up: every query --warmup times, not measured, then until the service is quiet (a
        # service in use holds the postings of the terms it is asked for in memory,
        # KNOWLEDGE_KEYWORD_CACHE_MB; a cold one ranks in PostgreSQL until it has read them).
        warm = [q for _ in range(args.warmup) for q in queries]
        with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(lambda q: client.search(kb_pb2.SearchRequest(knowledge_base_ids=[base.id], query=q, mode=mode, fusion=fusion,
                                                                       top_k=10)), warm))
        if warm:
            wait_quiet()
        latencies, embedding = [], []
        lock = threading.Lock()
        stop = time.monotonic() + args.seconds

        def loop(seed):
            local = random.Random(seed)
            while time.monotonic() < stop:
                started = time.perf_counter()
                response = client.search(kb_pb2.SearchRequest(knowledge_base_ids=[base.id], query=local.choice(queries), mode=mode,
                                                              fusion=fusion, top_k=10))
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    latencies.append(elapsed - response.embedding_time_ms)
                    embedding.append(response.embedding_time_ms)
        threads = [threading.Thread(target=loop, args=(i,)) for i in range(args.concurrency)]
        cpu = cpu_seconds()
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        used = {k: (v - cpu[k]) * 1000 / max(1, len(latencies)) for k, v in cpu_seconds().items()}
        ordered = sorted(latencies)
        p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
        print(f"{name:18} {statistics.median(ordered):8.2f} {p95:8.2f} {statistics.median(embedding):10.1f} "
              f"{len(ordered) / elapsed:8.1f}   {used['client']:6.2f} {used['service']:7.2f} {used['postgres']:8.2f}", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--corpus", default=os.path.join(DATA, "corpus.jsonl.gz"))
    parser.add_argument("--queries", default=os.path.join(DATA, "queries-dev.jsonl.gz"))
    parser.add_argument("--chunk-size", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=None, help="tokens (default: 50, or a tenth of a smaller --chunk-size)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N documents (and their queries)")
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=1, help="scale: passes over the queries before each mode is measured")
    parser.add_argument("--psql", default="", help="scale: a psql command (tab-separated words) for the benchmark's database")
    parser.add_argument("--dump", default="", help="recall: also write each query's KEYWORD and VECTOR top 100 to this file")
    parser.add_argument("--modes", default="", help="comma-separated: keyword, vector, hybrid, 'hybrid rrf', 'hybrid weighted'")
    parser.add_argument("--alpha", type=float, default=0.0, help="recall: HYBRID weighted's weight of the vector ranking (the service's default)")
    parser.add_argument("--reuse", action="store_true", help="search the knowledge base an earlier run left in this database")
    parser.add_argument("what", choices=["recall", "scale"])
    args = parser.parse_args()
    global ALPHA
    ALPHA = args.alpha
    if args.overlap is None:
        args.overlap = min(50, args.chunk_size // 10)
    client = Client(args.port)
    (recall if args.what == "recall" else scale)(args, client)


if __name__ == "__main__":
    main()
