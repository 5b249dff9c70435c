"""What the CLI shows of a dataset's status file, whatever wrote it: this project's remote side,
NeuroCAAS's scripts, neurocaas_contrib, or a person (CONTRACT section 5). The state and reason are
read by the job record's own rules (:mod:`chalicelib.jobstate.statusfile`); the times and output
lines, which only the CLI shows, here. Nothing in a status file may crash a reader."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from chalicelib.jobstate.statusfile import parse, reason_of, state_of
from chalicelib.moments import parse_moment

@dataclass(frozen=True)
class DatasetStatus:
    """What the CLI shows of one dataset."""

    status: str = ""
    instance: str = ""
    reason: str = ""
    command: str = ""
    job_start: datetime | None = None
    job_finish: datetime | None = None
    output: list[str] = field(default_factory=list)
    cpu: str = ""
    memory: str = ""

    def elapsed(self, now: datetime | None = None) -> str:
        """Seconds since the dataset started (until it finished), or "" when unknown."""
        if self.job_start is None:
            return ""
        end = self.job_finish or now or datetime.now(timezone.utc)
        return f"{max((end - self.job_start).total_seconds(), 0):.0f}s"


def _text(value: Any) -> str:
    """A reason or command as one string: lists are joined, numbers written out."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return "; ".join(_text(v) for v in value if _text(v))
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_text(v)}" for k, v in value.items())
    return str(value)


def _lines(value: Any) -> list[str]:
    """Output lines from ``std``/``stdout``/``stderr``: a dict by line number, a list, or a string."""
    if value is None:
        return []
    if isinstance(value, dict):
        def order(key: Any) -> tuple[int, str]:
            return (int(key), "") if str(key).isdigit() else (1 << 30, str(key))
        return [_text(value[k]) for k in sorted(value, key=order)]
    if isinstance(value, (list, tuple)):
        return [_text(v) for v in value]
    return str(value).splitlines()


def read_status(body: bytes | str | None) -> DatasetStatus:
    """A status file's body as a :class:`DatasetStatus`; anything unreadable is an empty one."""
    if body is None:
        return DatasetStatus()
    document = parse(body.encode() if isinstance(body, str) else body)
    output = _lines(document.get("std"))
    for key in ("stdout", "stderr"):
        output += _lines(document.get(key))
    state = state_of(document)
    return DatasetStatus(
        status=state.value if state else _text(document.get("status")).strip().upper(),
        instance=_text(document.get("instance")),
        reason=reason_of(document),
        command=_text(document.get("command")),
        job_start=parse_moment(document.get("job_start")),
        job_finish=parse_moment(document.get("job_finish")),
        output=[line for line in output if line],
        cpu=_text(document.get("cpu_usage")),
        memory=_text(document.get("memory_usage")),
    )
