"""Live status from the instance: the dataset's status file, and nothing else (docs/JOBSTATE.md).

Writes are throttled (at most one per interval, and only when something changed); the final one
is never skipped: it is retried with backoff and, if it still cannot be made, said on stderr (the
boot log), and the boot script's finalizer writes the final state from the exit code.

One writer at a time: the first write is conditional on what the file holds (and made only if no
later attempt of the dataset has replaced this instance), every later one on the reporter's own last
write (If-Match). When someone else has written in between (a relaunch of the dataset after a Spot
interruption warning, or the job manager ending it) the reporter stops: the file is theirs now.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import deque
from typing import Any, Callable, Deque, Dict, Optional

from neurocaas_agent.core import (
    FINAL,
    STATUS_FILE,
    Client,
    S3Error,
    instance_id,
    status_document,
    superseded,
    utcnow,
)

STD_LINES = 20
IN_PROGRESS = "IN PROGRESS"
FINAL_ROUNDS = 3


def usage() -> "tuple[str, str]":
    """(cpu, memory) in use on this machine, as short readable strings."""
    try:
        cpu = f"{100 * os.getloadavg()[0] / (os.cpu_count() or 1):.0f}%"
    except OSError:
        cpu = "unknown"
    try:
        with open("/proc/meminfo") as source:
            info = dict(line.split(":", 1) for line in source.read().splitlines() if ":" in line)
        total = int(info["MemTotal"].split()[0]) / 1e6
        used = total - int(info["MemAvailable"].split()[0]) / 1e6
        memory = f"{used:.1f} GB of {total:.1f} GB ({100 * used / total:.0f}%)"
    except (OSError, KeyError, ValueError):
        memory = "unknown"
    return cpu, memory


class StatusReporter:
    """Reports one dataset's progress to its status file."""

    def __init__(self, client: Client, *, bucket: str, key: str, input_key: str, interval: float,
                 clock: Callable[[], float] = time.monotonic, pause: Callable[[float], None] = time.sleep) -> None:
        self.client, self.bucket, self.key, self.input_key = client, bucket, key, input_key
        self.interval, self.clock, self.pause = interval, clock, pause
        self.std: Deque[str] = deque(maxlen=STD_LINES)
        self.state = IN_PROGRESS
        self.last_command = "starting"
        self.reason = ""
        self.job_start = utcnow()
        self.job_finish: Optional[str] = None
        self.dirty = False
        self.last_flush = float("-inf")
        self.writes = 0
        self.failures = 0
        self.kept: Dict[str, Any] = {}  # keys of the status file to carry over (a relaunch's attempts)
        self.etag: Optional[str] = None  # of this reporter's last write
        self.replaced = False  # someone else has written the file since: it is no longer ours
        self._lock = threading.Lock()

    @staticmethod
    def key_for(job_prefix: str, label: str) -> str:
        return f"{job_prefix}/logs/{STATUS_FILE.format(label)}"

    # --- what the runner tells us -------------------------------------------------------------
    def output(self, line: str) -> None:
        with self._lock:
            text = line.rstrip("\n")
            self.std.append(text)
            if text.strip():
                self.last_command = text.strip()
            self.dirty = True

    def step(self, what: str) -> None:
        with self._lock:
            self.last_command, self.dirty = what, True

    def tick(self) -> None:
        """Flush if something changed and the interval has passed (called periodically)."""
        if self.dirty and self.clock() - self.last_flush >= self.interval:
            self.flush()

    def started(self) -> None:
        self.flush()

    def finished(self, state: str, reason: str) -> bool:
        """Write the final state; True once it is in S3."""
        assert state in FINAL, state
        with self._lock:
            self.state, self.reason, self.job_finish = state, reason, utcnow()
            last_output = next((line.strip() for line in reversed(self.std) if line.strip()), "")
            self.last_command = last_output or self.last_command
        for round_number in range(FINAL_ROUNDS):
            if self.flush():
                return True
            if self.replaced:
                return False
            self.pause(10.0 * (round_number + 1))
        print(f"NeuroCAAS: the final state {state} could not be written to s3://{self.bucket}/{self.key}; "
              "the boot script will report the exit code instead.", file=sys.stderr)
        return False

    # --- writing ------------------------------------------------------------------------------
    def flush(self) -> bool:
        """Write the status file as it stands now; False when it was not written."""
        if self.replaced:
            return False
        with self._lock:
            self.dirty, self.last_flush = False, self.clock()
            document = status_document(self.state, self.reason, self.input_key, self.last_command, list(self.std),
                                       self.job_start, self.job_finish)
        cpu, memory = usage()
        document.update(cpu_usage=cpu, memory_usage=memory, **self.kept)
        body = json.dumps(document, indent=2).encode()
        try:
            return self._write(body)
        except S3Error as error:  # reporting must never kill the analysis
            self.failures += 1
            print(f"NeuroCAAS: could not report status ({error})", file=sys.stderr)
            return False

    def _write(self, body: bytes) -> bool:
        condition = self._condition() if self.etag is None else {"If-Match": self.etag}
        if condition is None:
            return False
        try:
            self.etag = self.client.put(self.bucket, self.key, body,
                                        headers=dict(condition, **{"Content-Type": "application/json"})) or None
        except S3Error as error:
            if error.code == "PreconditionFailed" and self.etag is not None:
                if self._landed(body):
                    return True
                return self._stop("the status file was written by someone else")
            if error.code == "NoSuchKey":
                self.etag = None  # the file went: the next write looks again
            raise  # a first write that lost a race, or a conflicting write in flight: tried again later
        self.writes += 1
        return True

    def _landed(self, body: bytes) -> bool:
        """After a 412: whether the file holds ``body`` after all. A write S3 made whose answer was
        lost is sent again by the client's retries, with the ETag it has just replaced."""
        try:
            current, etag = self.client.get(self.bucket, self.key)
        except S3Error:
            return False
        if current != body:
            return False
        self.etag = etag or None
        self.writes += 1
        return True

    def _condition(self) -> Optional[Dict[str, str]]:
        """The first write's condition, from what the file holds; None when a later attempt owns it."""
        try:
            body, etag = self.client.get(self.bucket, self.key)
        except S3Error as error:
            if error.code not in ("NoSuchKey", "AccessDenied"):  # without s3:ListBucket, absent reads as denied
                raise
            return {"If-None-Match": "*"}
        try:
            current = json.loads(body.decode("utf-8", "replace"))
        except ValueError:
            current = None
        if superseded(current, instance_id()):
            self._stop("a later attempt of this dataset has replaced this instance")
            return None
        return {"If-Match": etag} if etag else {}

    def _stop(self, why: str) -> bool:
        self.replaced = True
        print(f"NeuroCAAS: no longer reporting to s3://{self.bucket}/{self.key}: {why}.", file=sys.stderr)
        return False
