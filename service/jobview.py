"""What a job's datasets look like to a person, shared by the terminal table and the web page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from chalicelib.records import DatasetRecord, JobRecord
from service.statusfile import DatasetStatus

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


def dataset_views(record: JobRecord, statuses: dict[str, DatasetStatus]) -> list[DatasetView]:
    """One row per dataset: its status file's word (read by :mod:`service.statusfile`), else job.json's."""
    rows = []
    now = datetime.now(timezone.utc)
    for label, dataset in record.datasets.items():
        status = statuses.get(label, DatasetStatus())
        last = status.reason or status.command or (status.output[-1] if status.output else "")
        elapsed = None
        if status.job_start is not None:
            elapsed = max(((status.job_finish or now) - status.job_start).total_seconds(), 0.0)
        rows.append(DatasetView(
            label=label, state=status.status or dataset.state.value, instance=_instance(dataset),
            elapsed_seconds=elapsed, last_output=last[-200:], cpu=status.cpu, memory=status.memory,
        ))
    return rows


def _instance(dataset: DatasetRecord) -> str:
    """The dataset's current instance, with its attempt number once it has been relaunched."""
    instance = dataset.instance_id or ""
    return f"{instance} (attempt {len(dataset.attempts)})" if len(dataset.attempts) > 1 else instance
