"""``neurocaas submit | status | jobs | logs | results | cancel``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from service.client import NeuroCAASClient, UserError
from service.connection import NotConnected, connect
from service.views import STYLES, follow, job_table

console = Console()
errors = Console(stderr=True)

AWS = typer.Option(False, "--aws", help="Use your AWS account (profile and region as usual) instead of the local stack.")
ANALYSIS = typer.Option(None, "--analysis", "-a", help="The analysis the job belongs to (searched when omitted).")
GROUP = typer.Option(None, "--group", "-g", help="Your group (searched when omitted).")


def fail(message: str) -> None:
    errors.print(f"[red]✗[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def client_for(aws: bool) -> NeuroCAASClient:
    try:
        return NeuroCAASClient(connect(aws=aws))
    except NotConnected as error:
        fail(str(error))
        raise  # unreachable


def transfer_progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    console=console, transient=True)


def progress_factory(progress: Progress):  # type: ignore[no-untyped-def]
    def start(name: str, size: int):  # type: ignore[no-untyped-def]
        task = progress.add_task(name, total=size)
        return lambda sent: progress.advance(task, sent)
    return start


def register(app: typer.Typer) -> None:
    @app.command()
    def submit(
        analysis: str = typer.Argument(..., help="The analysis (its bucket name)."),
        data: list[str] = typer.Argument(..., help="Local files or folders to upload, or keys already uploaded."),
        group: str = typer.Option(..., "--group", "-g", help="Your group."),
        config: str = typer.Option(..., "--config", "-c", help="Parameter file (.json/.yaml), local or uploaded."),
        instance_type: str = typer.Option(None, "--instance-type", help="An instance type the analysis offers."),
        job_id: str = typer.Option(None, "--job-id", help="Job id (default: the current time)."),
        wait: bool = typer.Option(False, "--wait", help="Follow the job until it ends."),
        aws: bool = AWS,
    ) -> None:
        """Upload data and a parameter file, then start a job (submit.json is written last)."""
        client = client_for(aws)
        try:
            with transfer_progress() as progress:
                ref = client.submit(analysis, group, data, config, instance_type=instance_type, job_id=job_id,
                                    progress=progress_factory(progress))
        except UserError as error:
            fail(str(error))
        console.print(f"Submitted job [bold]{ref.job_id}[/bold] to {analysis} for group {group}.", highlight=False)
        if wait:
            try:
                record = follow(client, ref, console)
            except UserError as error:
                fail(str(error))
            raise typer.Exit(0 if record.state.value == "SUCCEEDED" else 1)

    @app.command()
    def status(job: str = typer.Argument(..., help="The job id."), analysis: str = ANALYSIS, group: str = GROUP,
               once: bool = typer.Option(False, "--once", help="Print the table once instead of following."),
               aws: bool = AWS) -> None:
        """Show a job's datasets, live until the job ends."""
        client = client_for(aws)
        try:
            ref = client.find(job, analysis, group)
            if once:
                record = client.record(ref)
                console.print(job_table(ref, record, client.statuses(ref, record) if record else {}))
            else:
                follow(client, ref, console)
        except UserError as error:
            fail(str(error))

    @app.command()
    def jobs(analysis: str = typer.Argument(...), group: str = typer.Option(..., "--group", "-g"),
             aws: bool = AWS) -> None:
        """List a group's jobs, newest first."""
        client = client_for(aws)
        try:
            records = client.jobs(analysis, group)
        except UserError as error:
            fail(str(error))
        table = Table(title=f"{analysis} · {group}")
        table.add_column("job", no_wrap=True)
        for column in ("state", "datasets", "instance type", "submitted", "estimated cost"):
            table.add_column(column)
        for r in records:
            cost = f"${r.estimated_cost:.2f}" if r.estimated_cost is not None else ""
            table.add_row(r.job_id, f"[{STYLES.get(r.state.value, '')}]{r.state.value}[/]", str(len(r.datasets)),
                          r.instance_type or "", r.created.strftime("%Y-%m-%d %H:%M:%S"), cost)
        console.print(table if records else f"No jobs yet for {group} in {analysis}.")

    @app.command()
    def logs(job: str = typer.Argument(...), dataset: str = typer.Option(None, "--dataset", "-d",
             help="Show this dataset's output too."), analysis: str = ANALYSIS, group: str = GROUP,
             aws: bool = AWS) -> None:
        """Print the job's certificate, and a dataset's output."""
        client = client_for(aws)
        try:
            ref = client.find(job, analysis, group)
        except UserError as error:
            fail(str(error))
        console.print(client.certificate(ref) or "(no certificate yet)", markup=False, highlight=False)
        if dataset:
            record = client.record(ref)
            if record is None or dataset not in record.datasets:
                names = ", ".join(record.datasets) if record else "none yet"
                fail(f"No dataset {dataset!r} in job {job} (datasets: {names}).")
            output = client.instance_log(ref, dataset)
            if not output:
                status = client.statuses(ref, record).get(dataset, {})
                output = "\n".join((status.get("std") or {}).values())
            console.rule(dataset)
            console.print(output or "(no output yet)", markup=False, highlight=False)

    @app.command()
    def results(job: str = typer.Argument(...), output: Path = typer.Option(None, "--output", "-o",
                help="Folder to download into (default: ./JOB)."), analysis: str = ANALYSIS, group: str = GROUP,
                aws: bool = AWS) -> None:
        """Download the job's process_results/."""
        client = client_for(aws)
        try:
            ref = client.find(job, analysis, group)
            target = output or Path(ref.job_id)
            with transfer_progress() as progress:
                files = client.download_results(ref, target, progress=progress_factory(progress))
        except UserError as error:
            fail(str(error))
        if not files:
            fail(f"Job {job} has no results yet.")
        console.print(f"Downloaded {len(files)} file(s) to {target}/", highlight=False)

    @app.command()
    def costs(analysis: str = typer.Argument(...), group: str = typer.Option(None, "--group", "-g"),
              jobs_too: bool = typer.Option(True, "--jobs/--no-jobs", help="Show each job's cost."),
              aws: bool = AWS) -> None:
        """Spend per group (stopped instances, and running ones so far) and per job."""
        from service.costs import spend_by_group

        client = client_for(aws)
        try:
            client.check_analysis(analysis)
        except UserError as error:
            fail(str(error))
        spend = spend_by_group(client.s3, analysis, group)
        table = Table(title=f"Costs of {analysis}")
        for column in ("group", "job", "instances", "spent", "running now", "Spot saved vs on-demand"):
            table.add_column(column, justify="left" if column in ("group", "job") else "right")
        for name, item in sorted(spend.items()):
            table.add_row(name, "(all)", str(item.instances), f"${item.spent:.2f}", f"${item.running:.2f}",
                          f"${item.saved:.2f}")
            if jobs_too:
                for job_name, dollars in sorted(item.jobs.items()):
                    table.add_row("", job_name, "", f"${dollars:.4f}", "")
        console.print(table if spend else f"No costs recorded yet for {analysis}.")

    @app.command()
    def cancel(job: str = typer.Argument(...), analysis: str = ANALYSIS, group: str = GROUP, aws: bool = AWS) -> None:
        """Stop a job's instances and mark it CANCELLED."""
        client = client_for(aws)
        try:
            ref = client.find(job, analysis, group)
            stopped = client.cancel(ref)
        except UserError as error:
            fail(str(error))
        console.print(f"Cancelled job {job}: {stopped} instance(s) stopped.", highlight=False)
