"""Billing records NeuroCAAS itself left in ``logs/{group}/*.json`` (CONTRACT section 8).

NeuroCAAS wrote one record per instance: ``instance-id``, ``instance-type``, ``price`` (dollars per
hour), ``start`` and ``end`` (``%Y-%m-%dT%H:%M:%SZ``, null until known). A bucket migrated from
NeuroCAAS keeps each group's spending, so budgets and ``neurocaas costs`` count these records.

The budget check reads every record once: ``logs/{group}/_neurocaas.json`` remembers which keys
it has classified (NeuroCAAS's with their cost, this project's as null), so later checks list the
folder and read only records added since. None is skipped, none counted twice.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

from chalicelib.awsclient import AWSClient, ObjectMissing, PreconditionFailed
from chalicelib.paths import ObjectRef

READ_CONCURRENCY = 16


def summary_key(group: str) -> str:
    return f"logs/{group}/_neurocaas.json"


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


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
    """Dollars the group's NeuroCAAS billing records add up to."""
    keys = [k for k in aws.list_keys(bucket, f"logs/{group}/") if is_record_key(k)]
    summary_ref = ObjectRef(bucket, summary_key(group))
    try:
        stored = aws.get_object(summary_ref)
        etag: str | None = stored.etag
        classified: dict[str, float | None] = json.loads(stored.body).get("classified", {})
    except (ObjectMissing, ValueError, AttributeError):
        etag, classified = None, {}
    present = set(keys)
    new = [k for k in keys if k not in classified]
    if new:
        def read(key: str) -> float | None:
            try:
                return parse_legacy(aws.get_object(ObjectRef(bucket, key)).body)
            except ObjectMissing:
                return None

        with ThreadPoolExecutor(max_workers=READ_CONCURRENCY) as pool:
            classified.update(zip(new, pool.map(read, new)))
        kept = {k: v for k, v in classified.items() if k in present}
        body = json.dumps({"classified": kept}, separators=(",", ":")).encode()
        try:
            aws.put(bucket, summary_ref.key, body, "application/json", if_none_match=etag is None, if_match=etag)
        except PreconditionFailed:
            pass  # another check summarised at the same time; the next one reads its summary
    return round(sum(v for k, v in classified.items() if v is not None and k in present), 6)
