"""On-demand instance prices from a bundled, dated table, for cost estimates and budgets.

Every job instance gets a public IPv4 address (default subnets assign one), which AWS charges
by the hour since February 2024: https://aws.amazon.com/vpc/pricing/ ("Public IPv4 Address").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


PUBLIC_IPV4_HOURLY = 0.005  # USD per public IPv4 address per hour, every region


@dataclass(frozen=True)
class Price:
    """An instance's hourly price with its public IPv4 address, and whether it came from the table or
    is the table's worst case."""

    hourly: float
    known: bool


@lru_cache(maxsize=1)
def _table() -> dict[str, float]:
    document = json.loads(Path(__file__).with_name("prices.json").read_text())
    return {name: float(price) for name, price in document["prices"].items()}


def hourly_price(instance_type: str) -> Price:
    """The hourly price of ``instance_type``; an unlisted type is charged the table's highest price
    so that a budget is never under-counted."""
    table = _table()
    if instance_type in table:
        return Price(table[instance_type] + PUBLIC_IPV4_HOURLY, True)
    return Price(max(table.values()) + PUBLIC_IPV4_HOURLY, False)


def estimate(instance_type: str, instances: int, minutes: float) -> float:
    """Dollars for ``instances`` of ``instance_type`` running ``minutes`` each."""
    return round(hourly_price(instance_type).hourly * instances * minutes / 60.0, 4)
