"""The lifetime of a local development instance: it stops itself when its lifetime runs out.

``python -m devtools.backends.watchdog INSTANCE_DIR INSTANCE_ID MINUTE_SECONDS`` runs in the
background (the stack's endpoint and credentials in its environment). It reads the instance's
``Timeout`` and ``neurocaas-dev-since`` tags each round, so ``extend_lifetime`` takes effect at
once, and when ``since + Timeout`` has passed it stops the instance and ends its running commands,
as the instance's own shutdown would on AWS. It exits when the instance stops or ends, or when the
stack goes away.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import boto3
from botocore.config import Config

from devtools.backends.ec2 import LIVE, DevEC2, view
from devtools.backends.localrun import stop_all
from devtools.exceptions import DevToolsError

PID_FILE = "watchdog.pid"
MAX_FAILURES = 20


def poll_seconds(minute_seconds: float) -> float:
    return max(0.2, min(5.0, minute_seconds / 10))


def spawn(instance_dir: Path, instance_id: str, minute_seconds: float, environment: dict[str, str]) -> int:
    """Start the watchdog of an instance, replacing one already watching it."""
    end(instance_dir)
    with (instance_dir / "watchdog.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "devtools.backends.watchdog", str(instance_dir), instance_id, str(minute_seconds)],
            env={**os.environ, **environment}, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    (instance_dir / PID_FILE).write_text(str(process.pid))
    return process.pid


def end(instance_dir: Path) -> None:
    """Stop the instance's watchdog, if one is running (only ever a process this module started)."""
    try:
        pid = int((instance_dir / PID_FILE).read_text())
        if b"devtools.backends.watchdog" in Path(f"/proc/{pid}/cmdline").read_bytes():
            os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        pass


def watch(instance_dir: Path, instance_id: str, minute_seconds: float) -> int:
    ec2 = DevEC2(boto3.client("ec2", config=Config(retries={"mode": "standard", "max_attempts": 3})))
    failures = 0
    while True:
        time.sleep(poll_seconds(minute_seconds))
        try:
            item = ec2.item(instance_id)
        except DevToolsError:
            failures += 1
            if failures >= MAX_FAILURES:
                return 1  # the stack has gone away
            continue
        failures = 0
        if item is None or item["State"]["Name"] not in LIVE:
            return 0
        instance = view(item)
        if instance.since is None or instance.timeout_minutes is None:
            continue
        elapsed = (datetime.now(timezone.utc) - instance.since).total_seconds() / minute_seconds
        if elapsed >= instance.timeout_minutes:
            print(f"{instance_id}: lifetime of {instance.timeout_minutes:g} minutes ran out; stopping", flush=True)
            ec2.stop(instance_id)
            stop_all(instance_dir)
            return 0


if __name__ == "__main__":
    sys.exit(watch(Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])))
