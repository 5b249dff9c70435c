"""Spend per group and per job, from the cost records the monitor keeps."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from chalicelib.monitor.costs import CostRecord


@dataclass
class Spend:
    """Dollars spent (stopped instances) and running now (estimated so far), and the jobs behind them."""

    spent: float = 0.0
    running: float = 0.0
    instances: int = 0
    jobs: dict[str, float] = field(default_factory=lambda: defaultdict(float))


def _records(s3: Any, bucket: str, prefix: str, skip: str = "\0") -> list[CostRecord]:
    records = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", ()):
            if item["Key"].endswith(".json") and not item["Key"].startswith(skip):
                try:
                    records.append(CostRecord.model_validate_json(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()))
                except (ValueError, json.JSONDecodeError):
                    continue
    return records


def spend_by_group(s3: Any, bucket: str, group: str | None = None, now: datetime | None = None) -> dict[str, Spend]:
    now = now or datetime.now(timezone.utc)
    groups: dict[str, Spend] = defaultdict(Spend)
    history_prefix = f"logs/{group}/" if group else "logs/"
    for record in _records(s3, bucket, history_prefix, skip="logs/active/"):
        spend = groups[record.group]
        spend.spent += record.cost
        spend.instances += 1
        spend.jobs[record.job] += record.cost
    for record in _records(s3, bucket, "logs/active/"):
        if group and record.group != group:
            continue
        so_far = record.closed(now).cost
        spend = groups[record.group]
        spend.running += so_far
        spend.instances += 1
        spend.jobs[record.job] += so_far
    return dict(groups)
