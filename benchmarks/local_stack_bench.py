"""Local stack benchmark: its own overhead, and the remote side's S3 traffic.

1. Submit-to-SUCCESS time for an analysis that does nothing, for 1 and 8 datasets: what the stack
   itself costs (S3 notification -> SQS -> handler -> launch -> instance boot -> remote reports).
2. S3 requests the remote side makes per minute of analysis, for an analysis that prints a line
   every second for --analysis-seconds, with the default status interval (30 s).

Run: python benchmarks/local_stack_bench.py [--repeats 3] [--analysis-seconds 60]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

from chalicelib.blueprint import load_blueprint  # noqa: E402
from service.local.stack import LocalStack, LocalStackOptions  # noqa: E402

BUCKET = "bench-analysis"
COMMAND = 'cd /home/ubuntu; neurocaas_remote/run_main.sh "{}" "{}" "{}" "{}" analysis.sh; . neurocaas_remote/ncap_utils/workflow.sh; cleanup'


def make_blueprint(root: Path, analysis: str) -> Path:
    (root / "image").mkdir(parents=True)
    (root / "image" / "analysis.sh").write_text("#!/bin/bash\n" + analysis + "\n")
    (root / "stack_config_template.json").write_text(json.dumps({
        "PipelineName": BUCKET, "REGION": "us-east-1", "LocalImage": "image",
        "Lambda": {"LambdaConfig": {"AMI": "ami-0b0b0b0b0b0b0b0b0", "INSTANCE_TYPE": "t2.micro", "COMMAND": COMMAND,
                                    "DEPLOY_LIMIT": 100, "MAXCOST": 1000}},
        "UXData": {"Affiliates": [{"AffiliateName": "bench"}]},
    }))
    return root


def run_job(stack: LocalStack, job_id: str, datasets: int, timeout: float = 300) -> float:
    s3 = stack.client("s3")
    keys = [f"bench/inputs/{job_id}-{i}.bin" for i in range(datasets)]
    for key in keys:
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"x")
    s3.put_object(Bucket=BUCKET, Key=f"bench/configs/{job_id}.json", Body=b"{}")
    submit = {"dataname": keys, "configname": f"bench/configs/{job_id}.json", "timestamp": job_id}
    started = time.perf_counter()
    s3.put_object(Bucket=BUCKET, Key=f"bench/submissions/{job_id}_submit.json", Body=json.dumps(submit).encode())
    record_key = f"bench/results/job__{BUCKET}_{job_id}/logs/job.json"
    while time.perf_counter() - started < timeout:
        try:
            state = json.loads(s3.get_object(Bucket=BUCKET, Key=record_key)["Body"].read())["state"]
        except s3.exceptions.NoSuchKey:
            state = "QUEUED"
        if state in ("SUCCEEDED", "FAILED"):
            if state != "SUCCEEDED":
                raise RuntimeError(f"job {job_id} ended {state}")
            return time.perf_counter() - started
        time.sleep(0.05)
    raise TimeoutError(job_id)


def overhead(repeats: int) -> dict[int, list[float]]:
    figures: dict[int, list[float]] = {1: [], 8: []}
    with tempfile.TemporaryDirectory() as tmp:
        blueprint = load_blueprint(make_blueprint(Path(tmp) / "bp", "true"))
        with LocalStack(LocalStackOptions(state_dir=Path(tmp) / "state", log=lambda _: None)) as stack:
            stack.deploy(blueprint)
            run_job(stack, "warmup", 1)
            for n in figures:
                for r in range(repeats):
                    figures[n].append(run_job(stack, f"n{n}-r{r}", n))
    return figures


def remote_requests(seconds: int) -> tuple[int, float]:
    analysis = f'for i in $(seq {seconds}); do echo "step $i"; sleep 1; done'
    with tempfile.TemporaryDirectory() as tmp:
        blueprint = load_blueprint(make_blueprint(Path(tmp) / "bp", analysis))
        options = LocalStackOptions(state_dir=Path(tmp) / "state", status_interval=30.0, log=lambda _: None)
        with LocalStack(options) as stack:
            stack.deploy(blueprint)
            run_job(stack, "long", 1, timeout=seconds + 120)
            console = next((Path(tmp) / "state" / "instances").glob("*/logs/*.log")).read_text()
    found = re.search(r"NeuroCAAS remote: (\d+) S3 requests in ([\d.]+)s", console)
    if found is None:
        raise RuntimeError("the remote did not report its request count:\n" + console[-2000:])
    return int(found.group(1)), float(found.group(2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--analysis-seconds", type=int, default=60)
    args = parser.parse_args()
    print("Submit to SUCCESS, analysis that does nothing (seconds):")
    for n, times in overhead(args.repeats).items():
        print(f"  {n} dataset(s): median {statistics.median(times):.2f}  (runs: {', '.join(f'{t:.2f}' for t in times)})")
    count, elapsed = remote_requests(args.analysis_seconds)
    print(f"Remote side, {args.analysis_seconds} s analysis with the default 30 s status interval: "
          f"{count} S3 requests in {elapsed:.0f} s = {60 * count / elapsed:.1f} per minute")


if __name__ == "__main__":
    main()
