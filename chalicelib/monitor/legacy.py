"""Billing records NeuroCAAS itself left in ``logs/{group}/*.json`` (CONTRACT section 8).

NeuroCAAS wrote one record per instance: ``instance-id``, ``instance-type``, ``price`` (dollars per
hour), ``start`` and ``end`` (``%Y-%m-%dT%H:%M:%SZ``, null until known). A bucket migrated from
NeuroCAAS keeps each group's spending, so budgets and ``neurocaas costs`` count these records.

NeuroCAAS wrote these records before the bucket moved to this job manager, which never writes
that shape. The group's first budget check reads every record under ``logs/{group}/`` once and
keeps their total in ``logs/{group}/_neurocaas.json``; later checks read that one object, so a
check costs nothing per past instance (this project's own spending is in the group's ledger).
``neurocaas costs`` reads the records themselves.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

from chalicelib.awsclient import AWSClient, ObjectMissing, PreconditionFailed
from chalicelib.moments import parse_moment
from chalicelib.paths import ObjectRef

READ_CONCURRENCY = 16


def summary_key(group: str) -> str:
    return f"logs/{group}/_neurocaas.json"


def _moment(value: Any) -> datetime | None:
    """NeuroCAAS wrote its times as text; anything else counts as missing."""
    return parse_moment(value) if isinstance(value, str) else None


def legacy_cost(document: Any) -> float | None:
    """Dollars a NeuroCAAS billing record stands for, or None when it is not one.

    A record without both times is charged one hour, as NeuroCAAS charged it; the duration is
    whole (NeuroCAAS dropped the days of runs longer than one).
    """
    if not isinstance(document, dict) or "instance-id" not in document or "price" not in document:
        return None
    try:
        price = max(float(document["price"]), 0.0)
    except (TypeError, ValueError):
        return None
    start, end = _moment(document.get("start")), _moment(document.get("end"))
    hours = 1.0 if start is None or end is None else max((end - start).total_seconds(), 0.0) / 3600.0
    return round(price * hours, 6)


def parse_legacy(body: bytes) -> float | None:
    try:
        return legacy_cost(json.loads(body))
    except (ValueError, UnicodeDecodeError):
        return None


def is_record_key(key: str) -> bool:
    """Whether a key under ``logs/{group}/`` is an instance's record (summaries start with ``_``)."""
    return key.endswith(".json") and not key.rsplit("/", 1)[-1].startswith("_")


def neurocaas_spent(aws: AWSClient, bucket: str, group: str) -> float:
    """Dollars the group's NeuroCAAS billing records add up to: summarised on the group's first
    budget check (every record read once), then one read of the summary per check."""
    summary_ref = ObjectRef(bucket, summary_key(group))
    try:
        return float(json.loads(aws.get_object(summary_ref).body)["spent"])
    except ObjectMissing:
        pass
    except (ValueError, KeyError, TypeError):
        pass  # an unreadable summary is made again
    keys = [o.key for o in aws.list_objects(bucket, f"logs/{group}/")[0] if is_record_key(o.key)]

    def read(key: str) -> float | None:
        try:
            return parse_legacy(aws.get_object(ObjectRef(bucket, key)).body)
        except ObjectMissing:
            return None

    with ThreadPoolExecutor(max_workers=READ_CONCURRENCY) as pool:
        costs = [c for c in pool.map(read, keys) if c is not None]
    spent = round(sum(costs), 6)
    summary = {"spent": spent, "records": len(costs), "summarised": datetime.now(timezone.utc).isoformat()}
    try:
        aws.put(bucket, summary_ref.key, json.dumps(summary).encode(), "application/json", if_none_match=True)
    except PreconditionFailed:
        pass  # another check summarised the same records at the same time
    return spent
