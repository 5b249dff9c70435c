"""How jobs look in the terminal: a per-dataset table, followed live until the job ends."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from chalicelib.certificate import attempt_lines
from chalicelib.records import JobRecord, JobState
from service.client import FINAL_JOB_STATES, JobRef, NeuroCAASClient, UserError
from service.jobview import dataset_views

STYLES = {
    "INITIALIZING": "yellow", "IN PROGRESS": "cyan", "SUCCESS": "green", "FAILED": "red",
    "CANCELLED": "magenta", "TIMED OUT": "red", "QUEUED": "yellow", "RUNNING": "cyan", "SUCCEEDED": "green",
}


def job_table(ref: JobRef, record: JobRecord | None, statuses: dict[str, dict[str, Any]]) -> Group:
    if record is None:
        return Group(Text(f"Job {ref.job_id}: waiting for the job manager to pick it up…", style="yellow"))
    state = record.state.value
    cost = f" · estimated ${record.estimated_cost:.2f}" if record.estimated_cost is not None else ""
    header = Text.assemble(
        (f"Job {record.job_id}", "bold"), f" · {record.analysis} · group {record.group} · ",
        (state, STYLES.get(state, "")), cost,
    )
    table = Table(expand=True)
    for column in ("dataset", "status", "instance", "time", "last output"):
        table.add_column(column, overflow="fold", ratio=3 if column == "last output" else None)
    rows = dataset_views(record, statuses)
    for row in rows:
        table.add_row(row.label, Text(row.state, style=STYLES.get(row.state, "")), row.instance, row.elapsed,
                      row.last_output[-120:])
    done = sum(row.finished for row in rows)
    parts: list[Any] = [header]
    if record.datasets:
        parts += [Text(f"{done}/{len(record.datasets)} datasets finished"), table]
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
            live.update(job_table(ref, record, statuses))
            if record is not None and record.state in FINAL_JOB_STATES:
                return record
            if deadline is not None and time.monotonic() > deadline:
                raise UserError(f"Job {ref.job_id} has not ended after {timeout:.0f}s; follow it with "
                                f"`neurocaas status {ref.job_id}`.")
            sleep(interval)
