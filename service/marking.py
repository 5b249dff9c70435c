"""Ending a dataset from outside its instance: timed out, or lost when the stack stopped."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from chalicelib.records import DatasetState, JobRecord
from remote.paths import split_location
from remote.reporter import FINAL, StatusReporter


def mark_dataset(s3: Any, jobfolder: str, instance_id: str, state: DatasetState, reason: str) -> bool:
    """Give the dataset run by ``instance_id`` a final state, unless it already has one."""
    bucket, prefix = split_location("", jobfolder)
    try:
        record = JobRecord.model_validate_json(s3.get_object(Bucket=bucket, Key=f"{prefix}/logs/job.json")["Body"].read())
    except Exception:
        return False
    for label, dataset in record.datasets.items():
        if dataset.instance_id != instance_id:
            continue
        if dataset.state in FINAL:
            return False
        status: dict[str, Any] = {}
        try:
            status = json.loads(s3.get_object(Bucket=bucket, Key=dataset.status_key)["Body"].read())
        except Exception:
            pass
        if status.get("status") in {s.value for s in FINAL}:
            return False
        name = dataset.input if dataset.member is None else f"{dataset.input} [member {dataset.member}]"
        reporter = StatusReporter(s3, bucket=bucket, job_prefix=prefix, label=label, dataname=name,
                                  input_key=dataset.input, instance=instance_id, interval=0)
        reporter.std.extend(str(v) for v in (status.get("std") or {}).values())
        reporter.last_command = status.get("command") or reason
        if status.get("job_start"):
            reporter.job_start = datetime.fromisoformat(status["job_start"])
        reporter.finished(state, reason)
        return True
    return False
