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


def dataset_names(text: str) -> list[str]:
    """The datanames of the certificate's dataset block, in order."""
    return [line[len("DATANAME: "):].split(" | ", 1)[0] for line in _block(text.split("\n"))[2]]


def _block(lines: list[str]) -> tuple[int, int, list[str]]:
    """(first, end, lines) of the dataset block between the two rules; (-1, -1, []) without one."""
    rules = [i for i, line in enumerate(lines) if line == RULE]
    if len(rules) < 2:
        return -1, -1, []
    first, end = rules[0] + 1, rules[1]
    return first, end, [line for line in lines[first:end] if line.startswith("DATANAME: ")]


def replace_dataset_block(text: str, block: list[str]) -> str:
    """The certificate with its dataset block replaced by ``block`` (unchanged without a block)."""
    lines = text.split("\n")
    first, end, _ = _block(lines)
    if first < 0:
        return text
    return "\n".join([*lines[:first], *block, *lines[end:]])


def actual_cost_line(cost: float) -> str:
    return f"ACTUAL COST: ${cost:.4f} (every instance of the job has stopped)"


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
