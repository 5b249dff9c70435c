"""Machine-readable records: job.json (CONTRACT section 6) and the per-dataset status files (5)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel, Field


class JobState(str, Enum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class DatasetState(str, Enum):
    INITIALIZING = "INITIALIZING"
    IN_PROGRESS = "IN PROGRESS"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED OUT"


class Capacity(str, Enum):
    SPOT = "spot"
    ON_DEMAND = "on-demand"


class Attempt(BaseModel):
    """One instance a dataset ran (or runs) on: its capacity, price, and why it was started."""

    instance_id: str
    capacity: Capacity = Capacity.ON_DEMAND
    why: str = ""
    hourly_price: float | None = None
    launched: datetime | None = None
    ended: str = ""  # why it was given up on (an interruption warning, a lost instance)


class DatasetRecord(BaseModel):
    state: DatasetState = DatasetState.INITIALIZING
    input: str
    config: str
    status_key: str
    instance_id: str | None = None  # the last attempt's instance
    member: int | None = None
    attempts: list[Attempt] = Field(default_factory=list)
    arguments: list[str] = Field(default_factory=list)  # (dataset, config) as the boot script gets them

    @property
    def earlier_instances(self) -> frozenset[str]:
        """The instances of the dataset's earlier attempts (not the current one)."""
        return frozenset(a.instance_id for a in self.attempts if a.instance_id != self.instance_id)


class Relaunch(BaseModel):
    """What starting one dataset of the job again needs beyond the analysis's settings."""

    result_argument: str
    log_uri: str
    tags: dict[str, str]
    root_volume: tuple[str, int] | None = None


class JobRecord(BaseModel):
    """logs/job.json: one object per job, read by the CLI and any page instead of the certificate."""

    job_id: str
    analysis: str
    group: str
    submit_key: str
    submit_etag: str
    state: JobState = JobState.QUEUED
    reason: str = ""
    refused: bool = False
    datasets: dict[str, DatasetRecord] = Field(default_factory=dict)
    instance_ids: list[str] = Field(default_factory=list)
    instance_type: str | None = None
    ami: str | None = None
    analysis_version: str | None = None
    lifetime_minutes: int | None = None
    estimated_cost: float | None = None
    actual_cost: float | None = None
    created: datetime
    updated: datetime
    started: datetime | None = None
    finished: datetime | None = None
    lease_expires: datetime | None = None
    relaunch: Relaunch | None = None
    spot: str = "never"  # the blueprint's SPOT when the job was launched
    retries: int = 0  # how many times datasets of the ended job were retried
    billed_cost: float = 0.0  # actual cost already added to the group's ledger by earlier ends

    def same_submission(self, submit_key: str, submit_etag: str) -> bool:
        return self.submit_key == submit_key and self.submit_etag == submit_etag

    def to_bytes(self) -> bytes:
        return self.model_dump_json(indent=2).encode()

    def attempts(self) -> dict[str, Attempt]:
        """Every attempt of every dataset, by instance id."""
        return {a.instance_id: a for d in self.datasets.values() for a in d.attempts}


def status_document(
    *, status: DatasetState, reason: str, input_key: str, instance: str | None, command: str,
    job_start: datetime | None, job_finish: datetime | None = None,
) -> dict[str, Any]:
    """The body of ``DATASET_NAME:{name}_STATUS.txt`` (CONTRACT section 5)."""
    return {
        "status": status.value,
        "reason": reason,
        "input": input_key,
        "instance": instance,
        "command": command,
        "job_start": job_start.isoformat() if job_start else None,
        "job_finish": job_finish.isoformat() if job_finish else None,
        "cpu_usage": None,
        "memory_usage": None,
        "std": {},
    }
