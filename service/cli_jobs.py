"""``neurocaas submit | status | jobs | logs | results | cancel | costs``.

Only typer and rich are imported here; the S3 client (boto3) is imported when a command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from service.failures import fail

if TYPE_CHECKING:
    from rich.progress import Progress

    from service.client import JobRef, NeuroCAASClient

console = Console()

AWS = typer.Option(False, "--aws", help="Use your AWS account (profile and region as usual) instead of the local stack.")
ANALYSIS = typer.Option(None, "--analysis", "-a", help="The analysis the job belongs to (searched when omitted).")
GROUP = typer.Option(None, "--group", "-g", help="Your group (searched when omitted).")
JOB = typer.Argument(..., help="The job id (as `neurocaas jobs` lists it).")
ANALYSIS_ARGUMENT = typer.Argument(..., help="The analysis (its bucket name).")
INTERRUPTED = 130  # the shell's code for a command stopped with Ctrl-C


def client_for(aws: bool) -> NeuroCAASClient:
    from service.client import NeuroCAASClient
    from service.connection import NotConnected, connect

    try:
        return NeuroCAASClient(connect(aws=aws))
    except NotConnected as error:
        fail(str(error))


def find(client: NeuroCAASClient, job: str, analysis: str | None, group: str | None) -> JobRef:
    from service.client import UserError

    try:
        return client.find(job, analysis, group)
    except UserError as error:
        fail(str(error))


def transfer_progress() -> Progress:
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    console=console, transient=True)


def progress_factory(progress: Progress):  # type: ignore[no-untyped-def]
    def start(name: str, size: int):  # type: ignore[no-untyped-def]
        task = progress.add_task(name, total=size)
        return lambda sent: progress.advance(task, sent)
    return start


def follow_until_end(client: NeuroCAASClient, ref: JobRef, exit_by_state: bool = True) -> None:
    """Follow the job; Ctrl-C stops following, not the job. With ``exit_by_state``, exit 0 only for SUCCEEDED."""
    from service.client import UserError
    from service.views import follow

    try:
        record = follow(client, ref, console)
    except KeyboardInterrupt:
        console.print(f"\nStopped following. Job {ref.job_id} keeps running: follow it with "
                      f"`neurocaas status {ref.job_id}`, stop it with `neurocaas cancel {ref.job_id}`.",
                      highlight=False)
        raise typer.Exit(INTERRUPTED) from None
    except UserError as error:
        fail(str(error))
    raise typer.Exit(0 if record.state.value == "SUCCEEDED" or not exit_by_state else 1)


def money(dollars: float) -> str:
    """Dollars as the certificate shows them (a $0.0009 job is not $0.00)."""
    from chalicelib.planner import money as shown

    return shown(dollars)


def register(app: typer.Typer) -> None:
    @app.command()
    def submit(
        analysis: str = ANALYSIS_ARGUMENT,
        data: list[str] = typer.Argument(..., help="Local files or folders to upload, or keys already uploaded."),
        group: str = typer.Option(..., "--group", "-g", help="Your group."),
        config: str = typer.Option(..., "--config", "-c", help="Parameter file (.json/.yaml), local or uploaded."),
        instance_type: str = typer.Option(None, "--instance-type", help="An instance type the analysis offers."),
        job_id: str = typer.Option(None, "--job-id", help="Job id (default: the current time); must be new."),
        wait: bool = typer.Option(False, "--wait", help="Follow the job until it ends (exit 0 only if it succeeds)."),
        detach: bool = typer.Option(False, "--detach", help="Return once submit.json is written, without waiting "
                                    "for the job manager to accept or refuse the job."),
        aws: bool = AWS,
    ) -> None:
        """Check, upload data and a parameter file, start a job, and wait until it is accepted or refused."""
        from service.client import UserError

        client = client_for(aws)
        try:
            with transfer_progress() as progress:
                ref = client.submit(analysis, group, data, config, instance_type=instance_type, job_id=job_id,
                                    progress=progress_factory(progress))
        except UserError as error:
            fail(str(error))
        except KeyboardInterrupt:
            fail("Interrupted while uploading: no job was submitted (uploaded files stay in your inputs folder).")
        console.print(f"Submitted job [bold]{ref.job_id}[/bold] to {analysis} for group {group}.", highlight=False)
        if detach:
            return
        try:
            record = client.verdict(ref)
        except KeyboardInterrupt:
            console.print(f"\nStopped waiting. Job {ref.job_id} was submitted: check it with "
                          f"`neurocaas status {ref.job_id}`.", highlight=False)
            raise typer.Exit(INTERRUPTED) from None
        if record is None:
            fail(f"The job manager has not answered within a minute; the job may still start. Check it with "
                 f"`neurocaas status {ref.job_id}` (and `neurocaas logs {ref.job_id}`).")
        if not record.instance_ids and record.state.value != "RUNNING":
            what = "was refused" if record.refused else "failed to start"
            fail(f"Job {ref.job_id} {what}: {record.reason or 'no reason given'} "
                 f"(the certificate: `neurocaas logs {ref.job_id}`).")
        cost = f", estimated {money(record.estimated_cost)}" if record.estimated_cost is not None else ""
        console.print(f"Accepted: {len(record.datasets)} dataset(s) on {record.instance_type}{cost}.", highlight=False)
        if wait or record.state.value != "RUNNING":
            follow_until_end(client, ref)
        console.print(f"Follow it with `neurocaas status {ref.job_id}`.", highlight=False)

    @app.command()
    def status(job: str = JOB, analysis: str = ANALYSIS, group: str = GROUP,
               once: bool = typer.Option(False, "--once", help="Print the table once instead of following."),
               aws: bool = AWS) -> None:
        """Show a job's datasets, live until the job ends (Ctrl-C stops following, not the job)."""
        from service.views import job_table

        client = client_for(aws)
        ref = find(client, job, analysis, group)
        if not once:
            follow_until_end(client, ref, exit_by_state=False)
        record = client.record(ref)
        console.print(job_table(ref, record, client.statuses(ref, record) if record else {}, console.width))

    @app.command()
    def jobs(analysis: str = ANALYSIS_ARGUMENT, group: str = typer.Option(..., "--group", "-g", help="Your group."),
             aws: bool = AWS) -> None:
        """List a group's jobs, newest first (refusals included)."""
        from service.client import UserError
        from service.views import Column, fitted_table, state_text

        client = client_for(aws)
        try:
            records = client.jobs(analysis, group)
        except UserError as error:
            fail(str(error))
        if not records:
            console.print(f"No jobs yet for {group} in {analysis}.", highlight=False)
            return
        columns = [Column("job", whole=True), Column("state", whole=True), Column("datasets", right=True, drop=3),
                   Column("instance type", drop=1), Column("submitted", drop=2),
                   Column("estimated cost", right=True, drop=4)]
        rows: list[list[Any]] = [
            [r.job_id, state_text(r.state.value), str(len(r.datasets)), r.instance_type or "",
             r.created.strftime("%Y-%m-%d %H:%M"), money(r.estimated_cost) if r.estimated_cost is not None else ""]
            for r in records]
        console.print(fitted_table(columns, rows, console.width, title=f"{analysis} · {group}"))

    @app.command()
    def logs(job: str = JOB, dataset: str = typer.Option(None, "--dataset", "-d",
             help="Show this dataset's output too."), analysis: str = ANALYSIS, group: str = GROUP,
             aws: bool = AWS) -> None:
        """Print the job's certificate, and a dataset's output."""
        client = client_for(aws)
        ref = find(client, job, analysis, group)
        console.print(client.certificate(ref) or "(no certificate yet)", markup=False, highlight=False)
        if not dataset:
            return
        record = client.record(ref)
        if record is None or dataset not in record.datasets:
            names = ", ".join(record.datasets) if record and record.datasets else "none yet"
            fail(f"No dataset {dataset!r} in job {job} (datasets: {names}).")
        output = client.dataset_output(ref, record, dataset)
        console.rule(dataset)
        console.print(output or "(no output yet)", markup=False, highlight=False)

    @app.command()
    def results(job: str = JOB, output: Path = typer.Option(None, "--output", "-o",
                help="Folder to download into (default: ./JOB)."), analysis: str = ANALYSIS, group: str = GROUP,
                aws: bool = AWS) -> None:
        """Download the job's process_results/."""
        client = client_for(aws)
        ref = find(client, job, analysis, group)
        target = output or Path(ref.job_id)
        with transfer_progress() as progress:
            files = client.download_results(ref, target, progress=progress_factory(progress))
        if not files:
            fail(f"Job {job} has no results yet; `neurocaas status {job}` shows how far it is.")
        console.print(f"Downloaded {len(files)} file(s) to {target}/", highlight=False)

    @app.command()
    def costs(analysis: str = ANALYSIS_ARGUMENT, group: str = typer.Option(None, "--group", "-g",
              help="Only this group (default: every group you may see)."),
              jobs_too: bool = typer.Option(True, "--jobs/--no-jobs", help="Show each job's cost."),
              aws: bool = AWS) -> None:
        """Spend per group and per job: stopped instances, and running ones so far."""
        from service.client import UserError
        from service.costs import spend_by_group
        from service.views import Column, fitted_table

        client = client_for(aws)
        try:
            client.check_analysis(analysis)
        except UserError as error:
            fail(str(error))
        spend = spend_by_group(client.s3, analysis, group)
        if not spend:
            console.print(f"No costs recorded yet for {analysis}.", highlight=False)
            return
        rows = []
        for name, item in sorted(spend.items()):
            jobs_shown = sorted(item.jobs.items()) if jobs_too else []
            for index, (job_id, job) in enumerate(jobs_shown):
                rows.append([name if index == 0 else "", job_id, str(job.instances), money(job.spent),
                             money(job.running), money(job.saved)])
            if len(jobs_shown) != 1:
                rows.append([name if not jobs_shown else "", "total", str(item.instances), money(item.spent),
                             money(item.running), money(item.saved)])
        columns = [Column("group", whole=True), Column("job", whole=True), Column("instances", right=True, drop=1),
                   Column("spent", whole=True, right=True), Column("running now", whole=True, right=True),
                   Column("Spot saved", right=True, drop=2)]
        console.print(fitted_table(columns, rows, console.width, title=f"Costs of {analysis}"))

    @app.command()
    def cancel(job: str = JOB, analysis: str = ANALYSIS, group: str = GROUP, aws: bool = AWS) -> None:
        """Stop a job: writes your group's cancel file, which the job manager acts on."""
        from service.client import UserError

        client = client_for(aws)
        ref = find(client, job, analysis, group)
        try:
            record = client.cancel(ref)
        except UserError as error:
            fail(str(error))
        if record is None:
            fail(f"Asked the job manager to cancel job {job} (s3://{ref.bucket}/{client.cancel_key(ref)}), but it "
                 f"has not confirmed yet; check with `neurocaas status {job} --once`.")
        if record.state.value != "CANCELLED":
            console.print(f"Job {job} ended {record.state.value} before the cancel took effect.", highlight=False)
            return
        console.print(f"Cancelled job {job}: {len(record.instance_ids)} instance(s) stopped.", highlight=False)
