"""Spot or on-demand: which capacity a launch asks for, which refusals fall back, what it costs.

One rule for the first launch and every relaunch: ``SPOT: never`` launches on-demand, ``only``
on Spot, ``prefer`` on Spot and, when AWS refuses Spot capacity, on-demand in the same step.
"""

from __future__ import annotations

from chalicelib import pricing
from chalicelib.awsclient import AWSClient
from chalicelib.records import Capacity

# RunInstances errors that mean "no Spot capacity for this request now"; any other error is not
# a capacity problem and on-demand would fail the same way.
SPOT_REFUSED = frozenset({"InsufficientInstanceCapacity", "MaxSpotInstanceCountExceeded", "SpotMaxPriceTooLow"})
MARKETS = {
    "never": (Capacity.ON_DEMAND,),
    "prefer": (Capacity.SPOT, Capacity.ON_DEMAND),
    "only": (Capacity.SPOT,),
}


def markets(spot: str) -> tuple[Capacity, ...]:
    """The capacities to try, in order, for the blueprint's ``SPOT`` setting."""
    return MARKETS.get(spot, MARKETS["never"])


def hourly_price(aws: AWSClient, instance_type: str, capacity: Capacity) -> float:
    """What an instance launched now costs per hour (with its public IPv4 address): the Spot price
    history where it answers, else the bundled table."""
    if capacity is Capacity.SPOT:
        current = aws.spot_price(instance_type)
        if current is not None and current > 0:
            return round(current + pricing.PUBLIC_IPV4_HOURLY, 6)
    return pricing.hourly_price(instance_type, capacity is Capacity.SPOT).hourly


def reason(capacity: Capacity, spot: str, refused: str = "") -> str:
    """Why a dataset got this capacity, as the certificate says it."""
    if capacity is Capacity.SPOT:
        return f"Spot (SPOT: {spot})"
    if refused:
        return f"on-demand: AWS refused Spot capacity ({refused})"
    return f"on-demand (SPOT: {spot})"
