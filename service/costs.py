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
class Spend:
    """Dollars spent (stopped instances) and running now (estimated so far), what Spot capacity saved
    against on-demand, and the jobs behind them."""

    spent: float = 0.0
    running: float = 0.0
    saved: float = 0.0
    instances: int = 0
    jobs: dict[str, float] = field(default_factory=lambda: defaultdict(float))


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
        spend = groups[record.group]
        spend.spent += record.cost
        spend.saved += record.saving
        spend.instances += 1
        spend.jobs[record.job] += record.cost
    for group_name, job, dollars in history.legacy:
        spend = groups[group_name]
        spend.spent += dollars
        spend.instances += 1
        spend.jobs[job] += dollars
    for record in _read(s3, bucket, "logs/active/").records:
        if group and record.group != group:
            continue
        closed = record.closed(now)
        so_far = closed.cost
        spend = groups[record.group]
        spend.running += so_far
        spend.saved += closed.saving
        spend.instances += 1
        spend.jobs[record.job] += so_far
    return dict(groups)
