"""Spend per group and per job, from the cost records the monitor keeps and those NeuroCAAS left."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from chalicelib.monitor.costs import CostRecord
from chalicelib.monitor.legacy import is_record_key, parse_legacy


@dataclass
class JobSpend:
    """One job's dollars: its stopped instances, its running ones so far, and what Spot saved."""

    spent: float = 0.0
    running: float = 0.0
    saved: float = 0.0
    instances: int = 0


@dataclass
class Spend:
    """A group's dollars spent (stopped instances) and running now (estimated so far), what Spot
    capacity saved against on-demand, by job id."""

    spent: float = 0.0
    running: float = 0.0
    saved: float = 0.0
    instances: int = 0
    jobs: dict[str, JobSpend] = field(default_factory=lambda: defaultdict(JobSpend))

    def add(self, job: str, dollars: float, running: bool = False, saved: float = 0.0) -> None:
        item = self.jobs[job]
        self.saved += saved
        item.saved += saved
        if running:
            self.running += dollars
            item.running += dollars
        else:
            self.spent += dollars
            item.spent += dollars
        self.instances += 1
        item.instances += 1


def job_id_of(folder_name: str, analysis: str) -> str:
    """``job__{analysis}_{id}`` -> ``id`` (other names are shown as they are)."""
    return folder_name.removeprefix(f"job__{analysis}_") or folder_name


LEGACY_JOB = "(NeuroCAAS, no job recorded)"


@dataclass
class _History:
    records: list[CostRecord] = field(default_factory=list)
    legacy: list[tuple[str, str, float]] = field(default_factory=list)  # group, job, dollars


def _read(s3: Any, bucket: str, prefix: str, skip: str = "\0") -> _History:
    """This project's cost records under ``prefix``, and NeuroCAAS's own billing records (section 8)."""
    found = _History()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", ()):
            key = item["Key"]
            if not is_record_key(key) or key.startswith(skip):
                continue
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            try:
                found.records.append(CostRecord.model_validate_json(body))
                continue
            except ValueError:
                pass
            dollars = parse_legacy(body)
            if dollars is not None:
                jobpath = str(json.loads(body).get("jobpath") or "").rstrip("/")
                found.legacy.append((key.split("/")[1], jobpath.rsplit("/", 1)[-1] or LEGACY_JOB, dollars))
    return found


def spend_by_group(s3: Any, bucket: str, group: str | None = None, now: datetime | None = None) -> dict[str, Spend]:
    now = now or datetime.now(timezone.utc)
    groups: dict[str, Spend] = defaultdict(Spend)
    history_prefix = f"logs/{group}/" if group else "logs/"
    history = _read(s3, bucket, history_prefix, skip="logs/active/")
    for record in history.records:
        groups[record.group].add(job_id_of(record.job, bucket), record.cost, saved=record.saving)
    for group_name, job, dollars in history.legacy:
        groups[group_name].add(job_id_of(job, bucket), dollars)
    for record in _read(s3, bucket, "logs/active/").records:
        if group and record.group != group:
            continue
        closed = record.closed(now)
        groups[record.group].add(job_id_of(record.job, bucket), closed.cost, running=True, saved=closed.saving)
    return dict(groups)
