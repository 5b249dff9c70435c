"""Live status from the instance: its dataset's status file, the only object it writes
(the job's record and certificate are derived from status files by the reconciler).

Writes are throttled (at most one round per interval, and only when something changed), the
final one is never skipped, and a failure to write is logged and never stops the analysis.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from chalicelib.records import DatasetState
from chalicelib.records import status_document as empty_status
STD_LINES = 20


def usage() -> tuple[str, str]:
    """(cpu, memory) in use on this machine, as short readable strings."""
    try:
        cpu = f"{100 * os.getloadavg()[0] / (os.cpu_count() or 1):.0f}%"
    except OSError:
        cpu = "unknown"
    try:
        info = dict(line.split(":", 1) for line in open("/proc/meminfo").read().splitlines() if ":" in line)
        total = int(info["MemTotal"].split()[0]) / 1e6
        used = total - int(info["MemAvailable"].split()[0]) / 1e6
        memory = f"{used:.1f} GB of {total:.1f} GB ({100 * used / total:.0f}%)"
    except (OSError, KeyError, ValueError):
        memory = "unknown"
    return cpu, memory


class StatusReporter:
    """Reports one dataset's progress to its job folder."""

    def __init__(self, s3: Any, *, bucket: str, job_prefix: str, label: str, dataname: str, input_key: str,
                 instance: str, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.s3, self.bucket, self.prefix = s3, bucket, job_prefix
        self.label, self.dataname, self.input_key, self.instance = label, dataname, input_key, instance
        self.interval, self.clock = interval, clock
        self.std: deque[str] = deque(maxlen=STD_LINES)
        self.state = DatasetState.IN_PROGRESS
        self.last_command = "starting"
        self.reason = ""
        self.job_start = datetime.now(timezone.utc)
        self.job_finish: datetime | None = None
        self.dirty = False
        self.last_flush = float("-inf")
        self.writes = 0
        self.failures = 0
        self._lock = threading.Lock()

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
            self.flush(job_update=False)

    def started(self) -> None:
        self.flush(job_update=True)

    def finished(self, state: DatasetState, reason: str) -> None:
        with self._lock:
            self.state, self.reason, self.job_finish = state, reason, datetime.now(timezone.utc)
            last_output = next((line.strip() for line in reversed(self.std) if line.strip()), "")
            self.last_command = last_output or self.last_command
        self.flush(job_update=True)

    # --- writing ------------------------------------------------------------------------------
    def flush(self, job_update: bool) -> None:
        with self._lock:
            self.dirty, self.last_flush = False, self.clock()
            status = self._status()
        self._safely(self._write_status, status)

    def _status(self) -> dict[str, Any]:
        document = empty_status(status=self.state, reason=self.reason, input_key=self.input_key,
                                instance=self.instance, command=self.last_command, job_start=self.job_start,
                                job_finish=self.job_finish)
        cpu, memory = usage()
        document.update(cpu_usage=cpu, memory_usage=memory, std={str(i): s for i, s in enumerate(self.std)})
        return document

    def _safely(self, write: Callable[..., None], *args: Any) -> None:
        try:
            write(*args)
            self.writes += 1
        except Exception as error:  # reporting must never kill the analysis
            self.failures += 1
            print(f"NeuroCAAS: could not report status ({type(error).__name__}: {error})", file=sys.stderr)

    def _write_status(self, document: dict[str, Any]) -> None:
        key = f"{self.prefix}/logs/DATASET_NAME:{self.label}_STATUS.txt"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=json.dumps(document, indent=2).encode(),
                           ContentType="application/json")
