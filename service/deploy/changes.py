"""A deployment plan as values: typed changes, each a list of steps, printable before anything runs.

As in Chalice's deployer, planning is pure and an executor applies the steps in order. A step
is an AWS API call (whose output a later call may use through a :class:`Ref`), a local file
written or removed, a ``chalice`` command, or emptying a bucket.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any


class Action(str, Enum):
    CREATE = "+"
    UPDATE = "~"
    DELETE = "-"
    RUN = ">"


@dataclass(frozen=True)
class Ref:
    """The output a previous call saved under ``name`` (an id AWS chooses, key material)."""

    name: str


@dataclass(frozen=True)
class Call:
    """One boto3 call: ``client(service).operation(**params)``; ``save`` keeps outputs by name."""

    service: str
    operation: str
    params: dict[str, Any] = field(default_factory=dict)
    save: dict[str, str] = field(default_factory=dict)  # name -> top-level response key, "a.b" for nested

    def describe(self) -> str:
        shown = ", ".join(f"{k}={_short(v)}" for k, v in self.params.items())
        return f"{self.service}.{self.operation}({shown})"


@dataclass(frozen=True)
class WriteFile:
    """Write ``content`` to ``path`` (None: remove the file)."""

    path: Path
    content: str | None

    def describe(self) -> str:
        return f"{'write' if self.content is not None else 'remove'} {self.path}"


@dataclass(frozen=True)
class Chalice:
    """Run ``chalice ARGS`` in ``project`` with BUCKET_NAME, the region and the Lambda runtime set."""

    args: tuple[str, ...]
    project: Path
    bucket: str
    region: str
    runtime: str = ""

    def describe(self) -> str:
        runtime = f" for {self.runtime}" if self.runtime else ""
        return f"BUCKET_NAME={self.bucket} chalice {' '.join(self.args)}{runtime} (in {self.project})"


@dataclass(frozen=True)
class EmptyBucket:
    """Delete every object (and object version) in a bucket."""

    bucket: str

    def describe(self) -> str:
        return f"delete every object in s3://{self.bucket}"


Step = Call | WriteFile | Chalice | EmptyBucket


@dataclass(frozen=True)
class Change:
    """One thing the plan changes, in words, with the steps that make it."""

    action: Action
    target: str
    detail: str = ""
    steps: tuple[Step, ...] = ()

    def describe(self) -> str:
        verb = {Action.CREATE: "create", Action.UPDATE: "update", Action.DELETE: "delete", Action.RUN: "run"}
        text = f"{self.action.value} {verb[self.action]:<6} {self.target}"
        return f"{text}: {self.detail}" if self.detail else text


@dataclass(frozen=True)
class Plan:
    """Everything a command will change, in order, and notes the user should read."""

    title: str
    changes: tuple[Change, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.changes

    def describe(self, verbose: bool = False) -> str:
        lines = [self.title]
        for change in self.changes:
            lines.append(f"  {change.describe()}")
            if verbose:
                lines.extend(f"      {step.describe()}" for step in change.steps)
        if self.empty:
            lines.append("  nothing to change")
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)


def _short(value: Any) -> str:
    if isinstance(value, Ref):
        return f"<{value.name}>"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
