"""A weak-AWS harness: moto with AWS's weaker guarantees put back, for tests.

- :class:`LatentClient`: every request waits a random latency first (AWS: 100-300 ms per S3
  round trip; tests scale it down) and is counted by operation.
- :class:`LaggingEC2`: ``DescribeInstances`` is eventually consistent: a terminated instance is
  listed as ``shutting-down`` for ``lag`` seconds and forgotten ``forget_after`` seconds after
  its termination (about an hour on AWS).
- :class:`EventBus`: EventBridge state-change events dropped, duplicated and reordered.
- :class:`AsyncInvoker`: Lambda's asynchronous invocation: a failed (or crashed) invocation is
  retried 1 minute, then 2 minutes later, then sent to the on-failure destination.

Time is a :class:`FakeClock` the test advances; nothing here sleeps except the scaled latency.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any


class FakeClock:
    """Wall-clock time for the system under test, moved only by the test."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


class LatentClient:
    """A boto3 client whose every request (and every page of a paginated one) first waits."""

    def __init__(self, client: Any, low: float, high: float, seed: int = 0) -> None:
        self._client, self._low, self._high = client, low, high
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        # S3 decides a conditional write atomically; moto checks then writes without a lock.
        self._conditional = threading.Lock()
        self.calls: Counter[str] = Counter()

    def _wait(self, operation: str) -> None:
        with self._lock:
            self.calls[operation] += 1
            delay = self._rng.uniform(self._low, self._high)
        if delay > 0:
            time.sleep(delay)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name not in self._client.meta.method_to_api_mapping:
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            self._wait(self._client.meta.method_to_api_mapping[name])
            if "IfMatch" in kwargs or "IfNoneMatch" in kwargs:
                with self._conditional:
                    return attribute(*args, **kwargs)
            return attribute(*args, **kwargs)

        return call

    def get_paginator(self, name: str) -> Any:
        return _LatentPaginator(self, self._client.get_paginator(name), self._client.meta.method_to_api_mapping[name])


@dataclass
class _LatentPaginator:
    owner: LatentClient
    paginator: Any
    operation: str

    def paginate(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        for page in self.paginator.paginate(**kwargs):
            self.owner._wait(self.operation)
            yield page


class LaggingEC2:
    """An EC2 client whose DescribeInstances lags behind terminations and forgets old ones."""

    def __init__(self, client: Any, clock: FakeClock, lag: float = 90.0, forget_after: float = 3600.0) -> None:
        self._client, self._clock, self.lag, self.forget_after = client, clock, lag, forget_after
        self.terminated_at: dict[str, datetime] = {}
        self.describe_calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def terminate_instances(self, InstanceIds: list[str], **kwargs: Any) -> Any:  # noqa: N803 (boto3's names)
        self.note_terminated(InstanceIds)
        return self._client.terminate_instances(InstanceIds=InstanceIds, **kwargs)

    def note_terminated(self, instance_ids: list[str]) -> None:
        for instance_id in instance_ids:
            self.terminated_at.setdefault(instance_id, self._clock())

    def _seen(self, instance: dict[str, Any]) -> dict[str, Any] | None:
        ended = self.terminated_at.get(instance["InstanceId"])
        if ended is None:
            return instance
        age = (self._clock() - ended).total_seconds()
        if age >= self.forget_after:
            return None
        state = "terminated" if age >= self.lag else "shutting-down"
        return {**instance, "State": {"Name": state, "Code": 48 if state == "terminated" else 32}}

    def _describe(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        self.describe_calls += 1
        filters = kwargs.pop("Filters", [])
        states = next((f["Values"] for f in filters if f["Name"] == "instance-state-name"), None)
        others = [f for f in filters if f["Name"] != "instance-state-name"]
        for page in self._client.get_paginator("describe_instances").paginate(Filters=others, **kwargs):
            reservations = []
            for reservation in page["Reservations"]:
                seen = [s for i in reservation["Instances"] if (s := self._seen(i)) is not None
                        and (states is None or s["State"]["Name"] in states)]
                if seen:
                    reservations.append({**reservation, "Instances": seen})
            yield {**page, "Reservations": reservations}

    def describe_instances(self, **kwargs: Any) -> dict[str, Any]:
        return {"Reservations": [r for page in self._describe(**kwargs) for r in page["Reservations"]]}

    def get_paginator(self, name: str) -> Any:
        if name != "describe_instances":
            return self._client.get_paginator(name)
        owner = self

        class Paginator:
            def paginate(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
                return owner._describe(**kwargs)

        return Paginator()


@dataclass(frozen=True)
class StateEvent:
    instance_id: str
    state: str
    time: datetime


@dataclass
class EventBus:
    """EventBridge as it is: at-least-once-ish. Events are dropped with probability ``drop``,
    delivered twice with probability ``duplicate``, and in a shuffled order."""

    drop: float = 0.0
    duplicate: float = 0.0
    seed: int = 0
    pending: list[StateEvent] = field(default_factory=list)
    dropped: list[StateEvent] = field(default_factory=list)

    def emit(self, instance_id: str, state: str, at: datetime) -> None:
        self.pending.append(StateEvent(instance_id, state, at))

    def deliver(self, handler: Callable[[StateEvent], Any], workers: int = 16) -> list[Any]:
        """Deliver everything pending, concurrently (as concurrent Lambda invocations)."""
        rng = random.Random(self.seed)
        batch: list[StateEvent] = []
        for event in self.pending:
            roll = rng.random()
            if roll < self.drop:
                self.dropped.append(event)
                continue
            batch += [event, event] if roll < self.drop + self.duplicate else [event]
        rng.shuffle(batch)
        self.pending = []
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(handler, batch))


class Crash(BaseException):
    """The handler's process died (out of memory, killed): nothing below it catches this."""


@dataclass
class AsyncInvoker:
    """Lambda's asynchronous invocation of one function: retries 1 and then 2 minutes after a
    failure, then the event goes to ``on_failure`` (the on-failure destination)."""

    clock: FakeClock
    handler: Callable[[dict[str, Any]], Any]
    on_failure: Callable[[dict[str, Any]], None]
    retry_after: tuple[float, ...] = (60.0, 120.0)  # "one minute ..., two minutes" (Lambda docs)
    scheduled: list[tuple[datetime, int, dict[str, Any]]] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)

    def invoke(self, event: dict[str, Any]) -> None:
        self._attempt(event, 0)

    def _attempt(self, event: dict[str, Any], attempt: int) -> None:
        try:
            self.handler(event)
            self.outcomes.append("ok")
            return
        except (Exception, Crash) as error:
            self.outcomes.append(type(error).__name__)
        if attempt < len(self.retry_after):
            self.scheduled.append((self.clock() + timedelta(seconds=self.retry_after[attempt]), attempt + 1, event))
        else:
            self.on_failure({"requestPayload": event, "responseContext": {"functionError": "Unhandled"}})

    def run_due(self) -> None:
        """Run the retries whose time has come (the test advances the clock)."""
        due = [s for s in self.scheduled if s[0] <= self.clock()]
        self.scheduled = [s for s in self.scheduled if s[0] > self.clock()]
        for _, attempt, event in sorted(due, key=lambda s: s[0]):
            self._attempt(event, attempt)


def s3_event(bucket: str, key: str) -> dict[str, Any]:
    """An S3 ObjectCreated notification as Lambda receives it (the key URL-encoded)."""
    from urllib.parse import quote_plus

    return {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                         "s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(key, safe="/")}}}]}
