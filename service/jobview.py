"""What a job's datasets look like to a person, shared by the terminal table and the web page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from chalicelib.records import JobRecord

FINAL_DATASET_STATES = {"SUCCESS", "FAILED", "CANCELLED", "TIMED OUT"}


@dataclass(frozen=True)
class DatasetView:
    """One dataset's row: its state from its status file (else from job.json), and what it is doing."""

    label: str
    state: str
    instance: str
    elapsed_seconds: float | None
    last_output: str
    cpu: Any
    memory: Any

    @property
    def finished(self) -> bool:
        return self.state in FINAL_DATASET_STATES

    @property
    def elapsed(self) -> str:
        return "" if self.elapsed_seconds is None else f"{self.elapsed_seconds:.0f}s"


def elapsed_seconds(status: dict[str, Any], now: datetime | None = None) -> float | None:
    """Seconds from the status file's start to its finish (or to now while it runs)."""
    start = status.get("job_start")
    if not start:
        return None
    end = status.get("job_finish")
    try:
        begun = datetime.fromisoformat(start)
        finished = datetime.fromisoformat(end) if end and end != "N/A" else (now or datetime.now(timezone.utc))
    except (TypeError, ValueError):
        return None
    return max((finished - begun).total_seconds(), 0.0)


def dataset_views(record: JobRecord, statuses: dict[str, dict[str, Any]]) -> list[DatasetView]:
    rows = []
    for label, dataset in record.datasets.items():
        status = statuses.get(label, {})
        reason = status.get("reason")
        if isinstance(reason, list):  # NeuroCAAS's scripts write a list of lines
            reason = reason[-1] if reason else ""
        last = str(reason or status.get("command") or "")
        rows.append(DatasetView(
            label=label, state=str(status.get("status") or dataset.state.value),
            instance=_instance(dataset), elapsed_seconds=elapsed_seconds(status), last_output=last[-200:],
            cpu=status.get("cpu_usage"), memory=status.get("memory_usage"),
        ))
    return rows


def _instance(dataset: Any) -> str:
    """The dataset's current instance, with its attempt number once it has been relaunched."""
    instance = dataset.instance_id or ""
    return f"{instance} (attempt {len(dataset.attempts)})" if len(dataset.attempts) > 1 else instance
