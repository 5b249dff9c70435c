"""Reading and (from outside the instance) finishing a dataset's status file.

Status files come from this project's remote side, NeuroCAAS's own scripts, contrib's, or a
person: every reader here accepts their shapes (``reason`` as a list or a number, ``job_finish``
``"N/A"``, ``stdout``/``stderr`` lists) and never fails on them.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime
from typing import Any

from chalicelib.awsclient import AWSClient, ObjectMissing, PreconditionFailed
from chalicelib.jobstate.errors import NoJobRecord
from chalicelib.jobstate.markers import OpenJobs
from chalicelib.paths import ObjectRef
from chalicelib.records import DatasetState, JobRecord

FINAL = frozenset({DatasetState.SUCCESS, DatasetState.FAILED, DatasetState.CANCELLED, DatasetState.TIMED_OUT})
ALIASES = {
    "INITIALIZING": DatasetState.INITIALIZING, "INITIALISING": DatasetState.INITIALIZING,
    "IN PROGRESS": DatasetState.IN_PROGRESS, "INPROGRESS": DatasetState.IN_PROGRESS,
    "RUNNING": DatasetState.IN_PROGRESS,
    "SUCCESS": DatasetState.SUCCESS, "SUCCEEDED": DatasetState.SUCCESS, "COMPLETED": DatasetState.SUCCESS,
    "FAILED": DatasetState.FAILED, "FAILURE": DatasetState.FAILED, "ERROR": DatasetState.FAILED,
    "CANCELLED": DatasetState.CANCELLED, "CANCELED": DatasetState.CANCELLED,
    "TIMED OUT": DatasetState.TIMED_OUT, "TIMEDOUT": DatasetState.TIMED_OUT, "TIMEOUT": DatasetState.TIMED_OUT,
}
OUTSIDE_WRITE_ATTEMPTS = 4


def parse(body: bytes) -> dict[str, Any]:
    """A status file's document; anything that is not a JSON object reads as empty."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {}
    return document if isinstance(document, dict) else {}


def state_of(document: dict[str, Any]) -> DatasetState | None:
    """The dataset's state as its status file says it (None: absent or unknown)."""
    raw = " ".join(str(document.get("status") or "").replace("_", " ").upper().split())
    return ALIASES.get(raw)


def belongs(document: dict[str, Any], instance_id: str | None, earlier: Collection[str] = ()) -> bool:
    """Whether a status document is the report of ``instance_id`` (the dataset's last attempt): it is
    unless it names one of the ``earlier`` attempts' instances. Whatever else it names (nothing, a
    stand-in id, NeuroCAAS's metadata lookup, a person) is taken as the current attempt's."""
    written_by = document.get("instance")
    return instance_id is None or written_by == instance_id or written_by not in earlier


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return " ".join(_text(v) for v in value if v not in (None, ""))
    if isinstance(value, dict):
        return " ".join(_text(v) for _, v in sorted(value.items(), key=lambda kv: str(kv[0])))
    return str(value).strip()


def reason_of(document: dict[str, Any]) -> str:
    """``reason`` as one line, whether a string, a list of lines or a number."""
    return _text(document.get("reason"))


def last_line_of(document: dict[str, Any]) -> str:
    """What the dataset last did: its command, else its last output line, else its reason."""
    if document.get("command"):
        return _text(document["command"])
    for key in ("std", "stdout", "stderr"):
        lines = document.get(key)
        if isinstance(lines, dict):
            lines = [lines[k] for k in sorted(lines, key=lambda k: int(k) if str(k).isdigit() else 0)]
        if isinstance(lines, (list, tuple)):
            shown = [_text(line) for line in lines if _text(line)]
            if shown:
                return shown[-1]
    return reason_of(document)


def finish_from_outside(aws: AWSClient, bucket: str, key: str, state: DatasetState, reason: str, *,
                        input_key: str, instance: str | None, at: datetime,
                        earlier: Collection[str] = ()) -> tuple[bool, dict[str, Any]]:
    """Give a dataset a final state unless its status file already has one (a timeout, a cancel, a
    lost instance). Conditional on what was read, so an instance's own final report always wins.
    Returns whether this call wrote it, and the status document as it now stands."""
    ref = ObjectRef(bucket, key)
    for _ in range(OUTSIDE_WRITE_ATTEMPTS):
        try:
            stored = aws.get_object(ref)
            document, etag = parse(stored.body), stored.etag
        except ObjectMissing:
            document, etag = {}, None
        if state_of(document) in FINAL and belongs(document, instance, earlier):
            return False, document
        document.update(status=state.value, reason=reason, input=document.get("input") or input_key,
                        instance=instance or document.get("instance"), job_finish=at.isoformat())
        document.setdefault("job_start", None)
        document.setdefault("std", {})
        try:
            aws.put(bucket, key, json.dumps(document, indent=2).encode(), "application/json",
                    if_none_match=etag is None, if_match=etag)
            return True, document
        except PreconditionFailed:
            continue  # written meanwhile (by the instance, most likely): read it again
    return False, document


def load_record(aws: AWSClient, bucket: str, prefix: str) -> JobRecord:
    """The job's job.json; :class:`NoJobRecord` when there is none (or it is not one)."""
    try:
        return JobRecord.model_validate_json(aws.get_object(ObjectRef(bucket, f"{prefix}/logs/job.json")).body)
    except ObjectMissing:
        raise NoJobRecord(f"There is no job at s3://{bucket}/{prefix}/.") from None
    except ValueError:
        raise NoJobRecord(f"s3://{bucket}/{prefix}/logs/job.json is not a job record.") from None


def finish_instance_dataset(aws: AWSClient, analysis_bucket: str, instance_id: str, state: DatasetState,
                            reason: str, at: datetime, open_jobs: OpenJobs | None = None) -> bool:
    """Finish from outside the dataset run by ``instance_id`` (found through the analysis's
    open-job markers), unless it already reported a final state. Returns whether it wrote."""
    job = (open_jobs or OpenJobs()).holding(aws, analysis_bucket, instance_id)
    if job is None:
        return False
    bucket, prefix = job.location
    try:
        record = load_record(aws, bucket, prefix)
    except NoJobRecord:
        return False
    wrote = False
    for dataset in record.datasets.values():
        if dataset.instance_id == instance_id:
            wrote |= finish_from_outside(aws, bucket, dataset.status_key, state, reason, input_key=dataset.input,
                                         instance=instance_id, at=at, earlier=dataset.earlier_instances)[0]
    return wrote
