"""Instance prices from a bundled, dated table (on-demand and typical Spot), for estimates and budgets.

Every job instance gets a public IPv4 address (default subnets assign one), which AWS charges
by the hour since February 2024: https://aws.amazon.com/vpc/pricing/ ("Public IPv4 Address").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any


PUBLIC_IPV4_HOURLY = 0.005  # USD per public IPv4 address per hour, every region


@dataclass(frozen=True)
class Price:
    """An instance's hourly price with its public IPv4 address, and whether it came from the table or
    is the table's worst case."""

    hourly: float
    known: bool


@lru_cache(maxsize=1)
def _document() -> dict[str, Any]:
    return dict(json.loads(Path(__file__).with_name("prices.json").read_text()))


@lru_cache(maxsize=2)
def _table(name: str) -> dict[str, float]:
    return {kind: float(price) for kind, price in _document()[name].items()}


def hourly_price(instance_type: str, spot: bool = False) -> Price:
    """The hourly price of ``instance_type`` (its typical Spot price with ``spot``). An unlisted
    type is charged the on-demand table's highest price so that a budget is never under-counted;
    a type without a Spot figure is charged its on-demand price."""
    on_demand = _table("prices")
    if spot and instance_type in _table("spot"):
        return Price(_table("spot")[instance_type] + PUBLIC_IPV4_HOURLY, True)
    if instance_type in on_demand:
        return Price(on_demand[instance_type] + PUBLIC_IPV4_HOURLY, True)
    return Price(max(on_demand.values()) + PUBLIC_IPV4_HOURLY, False)


def estimate(instance_type: str, instances: int, minutes: float, spot: bool = False) -> float:
    """Dollars for ``instances`` of ``instance_type`` running ``minutes`` each."""
    return round(hourly_price(instance_type, spot).hourly * instances * minutes / 60.0, 4)
