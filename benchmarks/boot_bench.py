"""The boot script's own cost: user data size, and the time from boot to a reported final state.

    python -m benchmarks.boot_bench

Runs generated boot scripts under bash against a moto server, as a bare image would (stock PATH,
no project venv), for three images: one without the remote side (fetched from the bucket), one with
it baked in, and one whose bucket lacks it (the dataset must fail, fast).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                  AWS_EC2_METADATA_DISABLED="true")

import boto3  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

from chalicelib import agent, bootscript  # noqa: E402
from neurocaas_agent import build  # noqa: E402
from service import agentfile  # noqa: E402

BUCKET = "boot-bench"
JOB = "lab/results/job__boot-bench_1"
RUNS = 5


def user_data(rows: list[tuple[str, str, str]], command: str = "true") -> str:
    return bootscript.render(command=command, bucket=BUCKET, result_argument="results/job__boot-bench_1", rows=rows,
                             lifetime_minutes=60, job="job__boot-bench_1", log_uri=f"s3://{BUCKET}/{JOB}/internal_ec2_logs",
                             status_key=lambda label: f"{JOB}/logs/DATASET_NAME:{label}_STATUS.txt")


def rows_per_request() -> int:
    rows = [(f"lab/inputs/mouse3_session_{i:05d}.tif", "lab/configs/params.yaml", f"mouse3_session_{i:05d}.tif")
            for i in range(5000)]
    low, high = 1, len(rows)
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if len(user_data(rows[:middle]).encode()) <= bootscript.USER_DATA_LIMIT \
            else (low, middle - 1)
    return low


def boot_once(endpoint: str, s3: object, baked: bool) -> tuple[float, str]:
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder) / "home"
        home.mkdir()
        if baked:
            (home / ".neurocaas").mkdir()
            (home / agent.HOME_PATH).write_bytes(agentfile.artifact())
        shims = Path(folder) / "bin"
        shims.mkdir()
        (shims / "shutdown").write_text("#!/bin/sh\nexit 0\n")
        (shims / "shutdown").chmod(0o755)
        script = Path(folder) / "user-data.sh"
        script.write_text(user_data([("lab/inputs/a.bin", "lab/configs/c.json", "a.bin")]).replace(
            bootscript.IMAGE_HOME, str(home)))
        env = {"PATH": f"{shims}:/usr/bin:/bin", "HOME": str(home), "NEUROCAAS_LAUNCH_INDEX": "0",
               "NEUROCAAS_LOG_DIR": f"{folder}/logs", "AWS_ENDPOINT_URL": endpoint, **{
                   k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
                                              "AWS_EC2_METADATA_DISABLED")}}
        started = time.perf_counter()
        subprocess.run(["bash", str(script)], env=env, cwd=home, capture_output=True, timeout=120)
        elapsed = time.perf_counter() - started
    key = f"{JOB}/logs/DATASET_NAME:a.bin_STATUS.txt"
    state = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())["status"]  # type: ignore[attr-defined]
    s3.delete_object(Bucket=BUCKET, Key=key)  # type: ignore[attr-defined]
    return elapsed, state


def main() -> None:
    print(f"agent file: {len(build.archive())} bytes; boot script for one dataset: "
          f"{len(user_data([('lab/inputs/a.bin', 'lab/configs/c.json', 'a.bin')]).encode())} bytes; "
          f"datasets per launch request (16 KB user data): {rows_per_request()}")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{server.get_host_and_port()[1]}"
    s3 = boto3.client("s3", endpoint_url=endpoint)
    s3.create_bucket(Bucket=BUCKET)
    try:
        for name, baked, present in (("fetched from the bucket", False, True), ("baked into the image", True, True),
                                     ("missing from bucket and image", False, False)):
            if present:
                agentfile.upload(s3, BUCKET)
            else:
                s3.delete_object(Bucket=BUCKET, Key=agent.artifact_key())
            results = [boot_once(endpoint, s3, baked) for _ in range(RUNS)]
            states = {state for _, state in results}
            print(f"remote side {name}: boot to final state {statistics.median(t for t, _ in results):.2f} s "
                  f"(median of {RUNS}), state {', '.join(sorted(states))}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
