"""One dataset of a development job on a local workspace, supervised in the background.

``python -m devtools.backends.localrun RUN_DIR`` runs ``RUN_DIR/user-data.sh`` as its own process
group (the shims end only that group when the command powers off), enforces the job's lifetime,
and writes ``result.json``; a dataset that never reported a result is marked FAILED or TIMED OUT.
It outlives the Python session that started it, like a command on a real instance.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.jobstate.statusfile import FINAL
from chalicelib.records import DatasetState
from devtools.state import RunRecord

SPEC, RESULT, PID, STOPPED, POWEROFF = "run.json", "result.json", "pid", "stopped", "poweroff"
SUPERVISOR = "supervisor.pid"
COMMAND_LOG, CONSOLE_LOG = "logs", "console.log"
FINAL_VALUES = {s.value for s in FINAL}
from service.local.layout import last_lines


def write_spec(run_dir: Path, spec: dict[str, Any]) -> None:
    (run_dir / SPEC).write_text(json.dumps(spec, indent=1))


def state(run_dir: Path) -> str:
    """``Pending``, ``InProgress``, or how it ended (``Success``, ``Failed``, ``TimedOut``, ``Cancelled``)."""
    result = run_dir / RESULT
    if result.exists():
        return str(json.loads(result.read_text()).get("state", "Failed"))
    if not _alive(run_dir, SUPERVISOR, b"devtools.backends.localrun"):
        return "Failed"  # the supervisor died without a result
    return "InProgress" if (run_dir / PID).exists() else "Pending"


def output(run_dir: Path) -> dict[str, str]:
    """The command's own log (its stdout and stderr), and the boot script's console."""
    logs = sorted((run_dir / COMMAND_LOG).glob("*.log")) if (run_dir / COMMAND_LOG).is_dir() else []
    console = run_dir / CONSOLE_LOG
    return {"stdout": "".join(p.read_text(errors="replace") for p in logs),
            "stderr": console.read_text(errors="replace") if console.exists() else ""}


def _alive(run_dir: Path, pid_file: str = PID, marker: bytes = b"user-data.sh") -> bool:
    """Whether the process named in ``pid_file`` still runs, and is still this run's process."""
    try:
        pid = int((run_dir / pid_file).read_text())
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False
    return marker in command and str(run_dir).encode() in command


def stop_all(instance_dir: Path) -> int:
    """End every run still going on a workspace (the instance stopped); returns how many."""
    stopped = 0
    for run_dir in sorted((instance_dir / "runs").glob("*")) if (instance_dir / "runs").is_dir() else []:
        if (run_dir / RESULT).exists() or not _alive(run_dir):
            continue
        (run_dir / STOPPED).touch()
        try:
            os.killpg(int((run_dir / PID).read_text()), signal.SIGKILL)
            stopped += 1
        except (ProcessLookupError, ValueError, OSError):
            pass
    return stopped


def _outcome(run_dir: Path, spec: dict[str, Any]) -> tuple[str, str]:
    """(command state, what happened) once the boot script has ended or been stopped."""
    with (run_dir / CONSOLE_LOG).open("wb") as console:
        process = subprocess.Popen(["bash", str(run_dir / "user-data.sh")], cwd=spec["cwd"], env=spec["environment"],
                                   stdout=console, stderr=subprocess.STDOUT, start_new_session=True)
        (run_dir / PID).write_text(str(process.pid))
        try:
            code = process.wait(timeout=spec["timeout_seconds"])
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
            return "TimedOut", "timed out"
    if (run_dir / STOPPED).exists():
        return "Cancelled", "the development instance stopped"
    if (run_dir / POWEROFF).exists():
        return "Success", "the command powered off"
    return ("Success" if code == 0 else "Failed"), f"exited with code {code}"


def supervise(run_dir: Path) -> int:
    """Run the boot script to its end; make sure its dataset has a final state; write result.json."""
    from devtools.jobs import (
        finish_run,  # the job manager's records are only needed at the end
    )

    spec = json.loads((run_dir / SPEC).read_text())
    command, outcome = _outcome(run_dir, spec)
    s3 = boto3.client("s3")  # the workspace's environment points it at the stack
    status = _status(s3, spec)
    if status == DatasetState.SUCCESS.value:
        command = "Success"
    elif status in FINAL_VALUES:
        command = command if command in ("TimedOut", "Cancelled") else "Failed"
    else:
        minutes = spec["timeout_seconds"] / spec["minute_seconds"]
        timed_out = command == "TimedOut"
        reason = (f"The analysis ran past its lifetime of {minutes:g} minutes and was stopped. Set a longer "
                  "__duration__ in the parameter file if it needs more time." if timed_out else
                  f"The run on the development instance ended ({outcome}) without reporting a result. "
                  f"Last output: {last_lines(run_dir / CONSOLE_LOG)}")
        run = RunRecord(label=spec["label"], status_key=spec["status_key"], handle={})
        finish_run(s3, spec["bucket"], spec["prefix"], run, spec["instance_id"],
                   DatasetState.TIMED_OUT if timed_out else DatasetState.FAILED, reason)
        command = command if command in ("TimedOut", "Cancelled") else "Failed"
    (run_dir / RESULT).write_text(json.dumps({"state": command, "outcome": outcome}))
    return 0


def _status(s3: Any, spec: dict[str, Any]) -> str:
    try:
        body = s3.get_object(Bucket=spec["bucket"], Key=spec["status_key"])["Body"].read()
        return str(json.loads(body).get("status", ""))
    except (ClientError, BotoCoreError, ValueError, AttributeError):
        return ""




if __name__ == "__main__":
    sys.exit(supervise(Path(sys.argv[1])))
