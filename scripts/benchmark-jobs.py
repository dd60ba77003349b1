#!/usr/bin/env python3
"""Durable jobs through two worker replicas (release job-probe processes) on the local PostgreSQL.

  burst:  N no-op jobs inserted at once; jobs per second until all succeeded.
  steady: jobs enqueued one at a time (INSERT + NOTIFY, each its own transaction) at a fixed
          rate; claim latency (enqueue commit to the claim's event) p50/p99.

Also the workers' CPU time per job (utime + stime from /proc).

  swift build -c release --product job-probe
  scripts/benchmark-jobs.py [--jobs 20000] [--rate 500] [--seconds 10]
"""
import argparse, os, subprocess, sys, time, uuid

ADMIN = os.environ.get("TEST_DATABASE_URL", "postgres://platform:platform@127.0.0.1:5432/postgres")

def psql(url, sql, *extra):
    return subprocess.run(["psql", url, "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", *extra, "-c", sql],
                          check=True, capture_output=True, text=True).stdout.strip()

def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def wait_all_succeeded(url, total, timeout=300):
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        done = int(psql(url, "SELECT count(*) FROM jobs WHERE state = 'succeeded'"))
        if done >= total:
            return
        time.sleep(0.05)
    sys.exit(f"only {done} of {total} jobs succeeded within {timeout} s")

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--probe", default=".build/release/job-probe")
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--rate", type=int, default=500, help="steady enqueue rate, jobs/s")
    parser.add_argument("--seconds", type=int, default=10, help="steady phase length")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    if not os.access(args.probe, os.X_OK):
        sys.exit(f"{args.probe} is missing: swift build -c release --product job-probe")
    name = "jobs_bench_" + uuid.uuid4().hex[:8]
    base = ADMIN.rsplit("/", 1)[0]
    url = f"{base}/{name}"
    psql(ADMIN, f"CREATE DATABASE {name}")
    probes = []
    try:
        for worker in ("replica-a", "replica-b"):
            p = subprocess.Popen([args.probe, "--database-url", url, "--worker", worker, "--concurrency",
                                  str(args.concurrency), "--pool-size", "8", "--lease-ms", "30000"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            if not p.stdout.readline().startswith("ready"):
                sys.exit("job-probe did not start")
            probes.append(p)

        # Burst.
        cpu0 = sum(cpu_seconds(p.pid) for p in probes)
        start = time.monotonic()
        psql(url, f"INSERT INTO jobs (type) SELECT 'noop' FROM generate_series(1, {args.jobs}); "
                  "SELECT pg_notify('platform_jobs', 'queued:noop')")
        wait_all_succeeded(url, args.jobs)
        burst_seconds = time.monotonic() - start
        burst_cpu = sum(cpu_seconds(p.pid) for p in probes) - cpu0
        per_worker = psql(url, "SELECT string_agg(worker || ' ' || n, ', ') FROM "
                               "(SELECT worker, count(*) n FROM job_events WHERE event = 'succeeded' GROUP BY worker) w")

        # Steady: one INSERT + NOTIFY transaction per job, paced by psql's \sleep... paced here.
        psql(url, "TRUNCATE jobs CASCADE")
        total = args.rate * args.seconds
        session = subprocess.Popen(["psql", url, "-X", "-q", "-v", "ON_ERROR_STOP=1"], stdin=subprocess.PIPE,
                                   stdout=subprocess.DEVNULL, text=True)
        start = time.monotonic()
        for i in range(total):
            due = start + i / args.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            session.stdin.write("BEGIN; INSERT INTO jobs (type) VALUES ('noop'); "
                                "SELECT pg_notify('platform_jobs', 'queued:noop'); COMMIT;\n")
            session.stdin.flush()
        session.stdin.close()
        session.wait()
        wait_all_succeeded(url, total)
        latency = psql(url, """
            SELECT round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ms))::numeric, 2) || ' ' ||
                   round((percentile_cont(0.99) WITHIN GROUP (ORDER BY ms))::numeric, 2) || ' ' || round(max(ms)::numeric, 2)
            FROM (SELECT extract(epoch FROM e.created_at - j.created_at) * 1000 AS ms
                  FROM job_events e JOIN jobs j ON j.id = e.job_id WHERE e.event = 'claimed') t""")
        p50, p99, worst = latency.split()
        print("| phase | jobs | seconds | jobs/s | worker CPU ms per job | claim p50 ms | claim p99 ms | claim max ms |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        print(f"| burst | {args.jobs:,} | {burst_seconds:.2f} | {args.jobs / burst_seconds:,.0f} | "
              f"{burst_cpu / args.jobs * 1000:.3f} | | | |")
        print(f"| steady {args.rate}/s | {total:,} | {args.seconds} | {args.rate} | | {p50} | {p99} | {worst} |")
        print(f"burst jobs per replica: {per_worker}")
    finally:
        for p in probes:
            p.terminate()
            p.wait()
        psql(ADMIN, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

if __name__ == "__main__":
    main()
