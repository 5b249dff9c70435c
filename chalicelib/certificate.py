"""certificate.txt: the human-readable job log of CONTRACT section 4. Pure text building."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from chalicelib.exceptions import NeuroCAASError, Step
from chalicelib.records import JobRecord

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


ATTEMPTS_TITLE = "CAPACITY AND ATTEMPTS:"


def attempt_lines(record: JobRecord) -> list[str]:
    """Per dataset, each instance it got: capacity and why, and why an attempt was given up.
    Nothing for a job whose datasets each ran once on-demand (the usual certificate)."""
    if record.spot == "never" and all(len(d.attempts) <= 1 for d in record.datasets.values()):
        return []
    lines = []
    for label, dataset in record.datasets.items():
        shown = []
        for number, attempt in enumerate(dataset.attempts, start=1):
            text = f"attempt {number} on {attempt.instance_id}: {attempt.why}"
            shown.append(f"{text} (ended: {attempt.ended})" if attempt.ended else text)
        if shown:
            lines.append(f"  {label}: " + "; ".join(shown))
    return lines


def replace_attempts(text: str, lines: list[str]) -> str:
    """The certificate with its attempts section (right after the dataset block) set to ``lines``."""
    rows = text.split("\n")
    if ATTEMPTS_TITLE in rows:
        start = rows.index(ATTEMPTS_TITLE)
        end = start + 1
        while end < len(rows) and rows[end].startswith("  "):
            end += 1
    else:
        _, block_end, _ = _block(rows)
        if block_end < 0:
            return text
        start = end = block_end + 1
    section = [ATTEMPTS_TITLE, *lines] if lines else []
    return "\n".join([*rows[:start], *section, *rows[end:]])


def actual_cost_line(cost: float) -> str:
    return f"ACTUAL COST: ${cost:.4f} (every instance of the job has stopped)"


@dataclass
class Certificate:
    """A certificate being written: header, setup steps with elapsed time, dataset block."""

    started: datetime
    header: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    attempts: list[str] = field(default_factory=list)

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
        if self.attempts:
            body += [ATTEMPTS_TITLE, *self.attempts]
        return "\n".join(body) + "\n"
