"""How jobs look in the terminal: tables that keep ids and states whole at any width, and a job
followed live until it ends."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from chalicelib.certificate import attempt_lines
from chalicelib.records import JobRecord, JobState
from service.client import FINAL_JOB_STATES, JobRef, NeuroCAASClient, UserError
from service.jobview import dataset_views
from service.statusfile import DatasetStatus

STYLES = {
    "INITIALIZING": "yellow", "IN PROGRESS": "cyan", "SUCCESS": "green", "FAILED": "red",
    "CANCELLED": "magenta", "TIMED OUT": "red", "QUEUED": "yellow", "RUNNING": "cyan", "SUCCEEDED": "green",
}
LAST_OUTPUT = 120


@dataclass(frozen=True)
class Column:
    """A table column. ``whole`` columns (ids, states) are never cut or wrapped; ``drop`` gives the
    order in which optional columns go when the terminal is too narrow (lowest first; 0 = keep)."""

    name: str
    whole: bool = False
    drop: int = 0
    right: bool = False


def fitted_table(columns: Sequence[Column], rows: Sequence[Sequence[str | Text]], width: int,
                 title: str | None = None) -> Table:
    """A table that fits ``width``: optional columns are dropped before a whole value would be cut."""
    def cell_width(cell: str | Text) -> int:
        return max((len(line) for line in str(cell).splitlines()), default=0)

    widths = [max([len(c.name), *(cell_width(row[i]) for row in rows)]) for i, c in enumerate(columns)]
    kept = list(range(len(columns)))

    def needed() -> int:  # whole columns at full width, others at least 10 characters; 3 per border
        return sum(widths[i] if columns[i].whole else min(widths[i], 10) for i in kept) + 3 * len(kept) + 1

    for index in sorted((i for i, c in enumerate(columns) if c.drop), key=lambda i: columns[i].drop):
        if needed() <= width:
            break
        kept.remove(index)
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    for i in kept:
        column = columns[i]
        table.add_column(column.name, justify="right" if column.right else "left", no_wrap=column.whole,
                         min_width=widths[i] if column.whole else None, overflow="fold")
    for row in rows:
        table.add_row(*(row[i] for i in kept))
    return table


def state_text(state: str) -> Text:
    return Text(state, style=STYLES.get(state, ""))


def job_table(ref: JobRef, record: JobRecord | None, statuses: dict[str, DatasetStatus], width: int = 80) -> Group:
    if record is None:
        return Group(Text(f"Job {ref.job_id}: waiting for the job manager to pick it up…", style="yellow"))
    state = record.state.value
    cost = f" · estimated ${record.estimated_cost:.2f}" if record.estimated_cost is not None else ""
    header = Text.assemble(
        (f"Job {record.job_id}", "bold"), f" · {record.analysis} · group {record.group} · ",
        (state, STYLES.get(state, "")), cost,
    )
    views = dataset_views(record, statuses)
    rows = [[v.label, state_text(v.state), v.instance, v.elapsed, v.last_output[-LAST_OUTPUT:]] for v in views]
    done = sum(v.finished for v in views)
    columns = [Column("dataset", whole=True), Column("status", whole=True), Column("instance", whole=True, drop=1),
               Column("time", drop=2, right=True), Column("last output")]
    parts: list[Any] = [header]
    if record.datasets:
        parts += [Text(f"{done}/{len(record.datasets)} datasets finished"), fitted_table(columns, rows, width)]
    attempts = attempt_lines(record)
    if attempts:
        parts.append(Text("\n".join(["Capacity and attempts:", *attempts])))
    if record.reason:
        parts.append(Text(record.reason, style="red" if record.state is JobState.FAILED else ""))
    return Group(*parts)


def follow(client: NeuroCAASClient, ref: JobRef, console: Console, timeout: float | None = None,
           interval: float = 1.0, sleep: Callable[[float], None] = time.sleep) -> JobRecord:
    """Show the job live until it ends; returns its final record."""
    deadline = time.monotonic() + timeout if timeout else None
    with Live(console=console, refresh_per_second=4, transient=False) as live:
        while True:
            record = client.record(ref)
            statuses = client.statuses(ref, record) if record else {}
            live.update(job_table(ref, record, statuses, console.width))
            if record is not None and record.state in FINAL_JOB_STATES:
                return record
            if deadline is not None and time.monotonic() > deadline:
                raise UserError(f"Job {ref.job_id} has not ended after {timeout:.0f}s; follow it with "
                                f"`neurocaas status {ref.job_id}`.")
            sleep(interval)
