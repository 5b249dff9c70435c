"""Updating a running job's records from anywhere: the instance, the local runner, the monitor,
a cancel. Every shared object (certificate, job.json) is rewritten with a conditional write, so
concurrent writers never lose each other's updates."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.certificate import dataset_line, replace_dataset_line
from chalicelib.records import DatasetState, JobRecord, JobState

FINAL = frozenset({DatasetState.SUCCESS, DatasetState.FAILED, DatasetState.CANCELLED, DatasetState.TIMED_OUT})
REWRITE_ATTEMPTS = 12


def split_folder(folder: str) -> tuple[str, str]:
    """(bucket, prefix) of an ``s3://bucket/prefix`` job folder."""
    bucket, _, prefix = folder.removeprefix("s3://").partition("/")
    return bucket, prefix.rstrip("/")


def rewrite(s3: Any, bucket: str, key: str, change: Callable[[bytes | None], bytes | None]) -> bool:
    """Read-modify-write an object others may rewrite at the same time.

    ``change`` gets the current body (None if absent) and returns the new one (None: leave it).
    A lost race (412) is retried with the fresh body.
    """
    for attempt in range(REWRITE_ATTEMPTS):
        try:
            current = s3.get_object(Bucket=bucket, Key=key)
            body, condition = current["Body"].read(), {"IfMatch": current["ETag"]}
        except ClientError as error:
            if error.response["Error"]["Code"] not in ("NoSuchKey", "404"):
                raise
            body, condition = None, {"IfNoneMatch": "*"}
        updated = change(body)
        if updated is None:
            return False
        try:
            s3.put_object(Bucket=bucket, Key=key, Body=updated, **condition)
            return True
        except ClientError as error:
            if error.response["Error"]["Code"] not in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise
            time.sleep(random.uniform(0.05, 0.2) * (attempt + 1))
    return False


def set_certificate_line(s3: Any, bucket: str, prefix: str, dataname: str, line: str) -> bool:
    def change(body: bytes | None) -> bytes | None:
        return None if body is None else replace_dataset_line(body.decode(), dataname, line).encode()

    return rewrite(s3, bucket, f"{prefix}/logs/certificate.txt", change)


def set_dataset_state(s3: Any, bucket: str, prefix: str, label: str, state: DatasetState,
                      finished: datetime | None = None) -> bool:
    """Record a dataset's state in job.json; the job ends when every dataset has."""
    def change(body: bytes | None) -> bytes | None:
        if body is None:
            return None
        record = JobRecord.model_validate_json(body)
        if record.state is JobState.CANCELLED or label not in record.datasets:
            return None
        record.datasets[label].state = state
        now = datetime.now(timezone.utc)
        states = [d.state for d in record.datasets.values()]
        if all(s in FINAL for s in states):
            record.state = JobState.SUCCEEDED if all(s is DatasetState.SUCCESS for s in states) else JobState.FAILED
            record.finished = finished or now
        record.updated = now
        return record.to_bytes()

    return rewrite(s3, bucket, f"{prefix}/logs/job.json", change)


def certificate_name(input_key: str, member: int | None) -> str:
    return input_key if member is None else f"{input_key} [member {member}]"


def finish_dataset(s3: Any, folder: str, instance_id: str, state: DatasetState, reason: str) -> bool:
    """Give the dataset run by ``instance_id`` a final state from outside its instance (a timeout,
    a cancel, a lost instance), unless it already has one. Returns whether it changed anything."""
    bucket, prefix = split_folder(folder)
    try:
        record = JobRecord.model_validate_json(s3.get_object(Bucket=bucket, Key=f"{prefix}/logs/job.json")["Body"].read())
    except (ClientError, ValueError):
        return False
    for label, dataset in record.datasets.items():
        if dataset.instance_id != instance_id:
            continue
        if dataset.state in FINAL:
            return False
        try:
            status = json.loads(s3.get_object(Bucket=bucket, Key=dataset.status_key)["Body"].read())
        except (ClientError, ValueError):
            status = {}
        if status.get("status") in {s.value for s in FINAL}:
            return False
        now = datetime.now(timezone.utc)
        status.update(status=state.value, reason=reason, input=dataset.input, instance=instance_id,
                      job_finish=now.isoformat())
        status.setdefault("job_start", None)
        status.setdefault("std", {})
        s3.put_object(Bucket=bucket, Key=dataset.status_key, Body=json.dumps(status, indent=2).encode(),
                      ContentType="application/json")
        line = dataset_line(certificate_name(dataset.input, dataset.member), state.value, now,
                            status.get("command") or reason, finished=True)
        set_certificate_line(s3, bucket, prefix, certificate_name(dataset.input, dataset.member), line)
        set_dataset_state(s3, bucket, prefix, label, state, now)
        return True
    return False
