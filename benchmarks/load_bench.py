"""Load on the local stack: many submissions from several clients at once.

Every submission must be accepted exactly once: one job record, one instance per dataset, none
lost, none duplicated. Reports the time from the first upload to the last job running and to the
last job finished.

Run: python benchmarks/load_bench.py [--clients 5] [--per-client 10]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

from benchmarks.local_stack_bench import BUCKET, make_blueprint  # noqa: E402
from chalicelib.blueprint import load_blueprint  # noqa: E402
from service.local.stack import LocalStack, LocalStackOptions  # noqa: E402


def client_thread(stack: LocalStack, client: int, count: int, barrier: threading.Barrier) -> None:
    s3 = stack.client("s3")
    barrier.wait()
    for i in range(count):
        job = f"c{client}-{i}"
        s3.put_object(Bucket=BUCKET, Key=f"bench/inputs/{job}.bin", Body=b"x")
        s3.put_object(Bucket=BUCKET, Key=f"bench/configs/{job}.json", Body=b"{}")
        submit = {"dataname": [f"bench/inputs/{job}.bin"], "configname": f"bench/configs/{job}.json", "timestamp": job}
        s3.put_object(Bucket=BUCKET, Key=f"bench/submissions/{job}_submit.json", Body=json.dumps(submit).encode())


def states(stack: LocalStack) -> dict[str, str]:
    s3 = stack.client("s3")
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="bench/results/"):
        for item in page.get("Contents", ()):
            if item["Key"].endswith("/logs/job.json"):
                record = json.loads(s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read())
                found[record["job_id"]] = record["state"]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=5)
    parser.add_argument("--per-client", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    total = args.clients * args.per_client
    with tempfile.TemporaryDirectory() as tmp:
        blueprint = load_blueprint(make_blueprint(Path(tmp) / "bp", "true"))
        with LocalStack(LocalStackOptions(state_dir=Path(tmp) / "state", log=lambda _: None)) as stack:
            stack.deploy(blueprint)
            barrier = threading.Barrier(args.clients + 1)
            threads = [threading.Thread(target=client_thread, args=(stack, c, args.per_client, barrier))
                       for c in range(args.clients)]
            for thread in threads:
                thread.start()
            barrier.wait()
            started = time.perf_counter()
            all_running = all_done = None
            while time.perf_counter() - started < args.timeout:
                current = states(stack)
                if all_running is None and len(current) == total and all(s != "QUEUED" for s in current.values()):
                    all_running = time.perf_counter() - started
                if len(current) == total and all(s in ("SUCCEEDED", "FAILED") for s in current.values()):
                    all_done = time.perf_counter() - started
                    break
                time.sleep(0.2)
            for thread in threads:
                thread.join()
            ec2 = stack.client("ec2")
            pages = ec2.get_paginator("describe_instances").paginate()
            per_job = Counter(t["Value"] for p in pages for r in p["Reservations"] for i in r["Instances"]
                              for t in i.get("Tags", ()) if t["Key"] == "job")
    outcome = Counter(current.values())
    print(f"{total} submissions from {args.clients} clients at once:")
    print(f"  jobs recorded: {len(current)}  ({dict(outcome)})")
    print(f"  instances: {sum(per_job.values())} for {len(per_job)} jobs; "
          f"duplicated jobs: {sum(1 for n in per_job.values() if n != 1)}; lost: {total - len(per_job)}")
    print(f"  last job running after {all_running:.1f} s; last job finished after {all_done:.1f} s"
          if all_running and all_done else "  did not finish in time")


if __name__ == "__main__":
    main()
