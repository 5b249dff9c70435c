"""certificate.txt: the human-readable job log of CONTRACT section 4. Pure text building."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from chalicelib.exceptions import NeuroCAASError, Step

RULE = "================"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def format_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime(TIME_FORMAT)


def dataset_line(dataname: str, status: str, moment: datetime, last_command: str, finished: bool = False) -> str:
    suffix = " (finished)" if finished else ""
    command = " ".join(last_command.split())[:300]
    return f"DATANAME: {dataname} | STATUS: {status} | TIME: {format_time(moment)}{suffix} | LAST COMMAND: {command}"


def replace_dataset_line(text: str, dataname: str, line: str) -> str:
    """The certificate with the line for ``dataname`` replaced (the remote side and monitors use this)."""
    prefix = f"DATANAME: {dataname} | "
    lines = text.split("\n")
    for i, existing in enumerate(lines):
        if existing.startswith(prefix):
            lines[i] = line
            return "\n".join(lines)
    return text


@dataclass
class Certificate:
    """A certificate being written: header, setup steps with elapsed time, dataset block."""

    started: datetime
    header: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)

    def _elapsed(self, now: datetime) -> str:
        return f"[+{(now - self.started).total_seconds():6.2f}s]"

    def step(self, step: Step, now: datetime, detail: str = "") -> None:
        self.steps.append(f"{self._elapsed(now)} {step.value}: DONE")
        if detail:
            self.steps.append(f"          {detail}")

    def note(self, text: str) -> None:
        self.steps.append(f"          {text}")

    def fail(self, error: NeuroCAASError, now: datetime) -> None:
        self.steps.append(f"{self._elapsed(now)} {error.step.value}: {error.certificate_line()}")

    def render(self) -> str:
        body = [*self.header, "", *self.steps]
        if self.datasets:
            body += [RULE, *self.datasets, RULE]
        return "\n".join(body) + "\n"
