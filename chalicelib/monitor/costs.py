"""Cost records (CONTRACT section 1): ``logs/active/{id}.json`` while an instance runs, then
``logs/{group}/{id}.json`` (the group's billing history) once it has stopped."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from chalicelib import pricing
from chalicelib.awsclient import AWSClient
from chalicelib.jobstate.conditional import rewrite
from chalicelib.records import JobRecord


def active_key(instance_id: str) -> str:
    return f"logs/active/{instance_id}.json"


def history_key(group: str, instance_id: str) -> str:
    return f"logs/{group}/{instance_id}.json"


def ledger_key(group: str) -> str:
    """The group's running total of its billing history (no instance id starts with '_')."""
    return f"logs/{group}/_spent.json"


LEDGER_RECENT_ENDS = 200  # job ends the ledger remembers, so that adding one twice is noticed


def end_id(record: JobRecord, prefix: str) -> str:
    """One end of one job: its folder, and how many times it was retried before this end."""
    return f"{prefix}#{record.retries}"


def add_to_ledger(aws: AWSClient, bucket: str, group: str, dollars: float, ended: str = "") -> bool:
    """Add a job's actual cost to the group's total once the job has ended, so a budget check reads
    one object, not the whole history. Once per ``ended`` (see :func:`end_id`): the writer of
    end.txt adds it, and the reaper adds it again only if that writer died first. Returns whether
    this call added it."""
    def change(body: bytes | None) -> bytes | None:
        ledger: dict[str, Any] = json.loads(body) if body else {"spent": 0.0, "records": 0}
        recent: list[str] = list(ledger.get("ends", []))
        if ended and ended in recent:
            return None
        ledger["spent"] = round(float(ledger["spent"]) + dollars, 6)
        ledger["records"] = int(ledger["records"]) + 1
        if ended:
            ledger["ends"] = (recent + [ended])[-LEDGER_RECENT_ENDS:]
        return json.dumps(ledger).encode()

    return rewrite(aws, bucket, ledger_key(group), change, "application/json")


def spent_by(s3_object: bytes | None) -> float:
    """Dollars spent according to a ledger's body (0 without one)."""
    return float(json.loads(s3_object)["spent"]) if s3_object else 0.0


class Period(BaseModel):
    start: datetime
    end: datetime

    @property
    def hours(self) -> float:
        # Whole durations, however many days they span (NeuroCAAS dropped the days).
        return max((self.end - self.start).total_seconds(), 0.0) / 3600.0


class CostRecord(BaseModel):
    """What one instance costs: its price and the periods it ran."""

    instance_id: str
    group: str
    analysis: str
    job: str
    instance_type: str
    hourly_price: float
    price_known: bool
    start: datetime
    end: datetime | None = None
    periods: list[Period] = Field(default_factory=list)
    cost: float = 0.0
    capacity: str = "on-demand"
    on_demand_price: float | None = None  # what the same hours would have cost on-demand (Spot records)

    @classmethod
    def opened(cls, *, instance_id: str, group: str, analysis: str, job: str, instance_type: str,
               start: datetime, hourly: float | None = None, spot: bool = False) -> "CostRecord":
        """A running instance's record, at the price it was launched at (else the table's)."""
        table = pricing.hourly_price(instance_type, spot)
        on_demand = pricing.hourly_price(instance_type).hourly if spot else None
        return cls(instance_id=instance_id, group=group, analysis=analysis, job=job, instance_type=instance_type,
                   hourly_price=table.hourly if hourly is None else hourly, price_known=table.known, start=start,
                   capacity="spot" if spot else "on-demand", on_demand_price=on_demand)

    @property
    def saving(self) -> float:
        """Dollars saved against on-demand (0 for on-demand records)."""
        if self.on_demand_price is None:
            return 0.0
        hours = sum(p.hours for p in self.periods)
        return round(max(hours * self.on_demand_price - self.cost, 0.0), 6)

    def closed(self, end: datetime) -> "CostRecord":
        """This record with its running period ended at ``end`` and its cost updated."""
        period = Period(start=self.start, end=max(end, self.start))
        periods = [*self.periods, period]
        cost = round(sum(p.hours for p in periods) * self.hourly_price, 6)
        return self.model_copy(update={"end": period.end, "periods": periods, "cost": cost})

    def to_bytes(self) -> bytes:
        return self.model_dump_json(indent=2).encode()
