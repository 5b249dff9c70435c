"""``neurocaas retry JOB [--failed] [--dataset NAME]``: run datasets of an ended job again.

The command writes a retry file (``{group}/submissions/..._retry.json``, the form of a cancel
file) and waits for the job manager's answer: the job running again, or the certificate's
``RETRY REFUSED`` line for that file.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timezone

import typer

from service.client import JobRef, NeuroCAASClient, UserError
from service.cli_jobs import ANALYSIS, AWS, GROUP, client_for, console, fail

ANSWER_SECONDS = 60.0


def request_retry(client: NeuroCAASClient, ref: JobRef, names: list[str], failed: bool) -> str:
    """Write the retry file for ``ref``; returns its key."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    key = f"{ref.group}/submissions/{ref.job_id}-{stamp}_retry.json"
    body: dict[str, object] = {"timestamp": ref.job_id, "failed": failed}
    if names:
        body["datasets"] = names
    client.s3.put_object(Bucket=ref.bucket, Key=key, Body=json.dumps(body).encode(), ContentType="application/json")
    return key


def await_answer(client: NeuroCAASClient, ref: JobRef, key: str, retries_before: int,
                 timeout: float = ANSWER_SECONDS, sleep: Callable[[float], None] = time.sleep) -> str:
    """The job manager's answer to the retry file: what it started, or :class:`UserError` with why not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        refused = next((line for line in client.certificate(ref).splitlines()
                        if line.startswith("RETRY REFUSED") and key in line), None)
        if refused:
            raise UserError(refused.split(f"{key}): ", 1)[-1])
        record = client.record(ref)
        if record is not None and record.retries > retries_before:
            started = next((line for line in client.certificate(ref).splitlines()
                            if line.startswith(f"RETRY {record.retries} ")), "")
            return started.split("): ", 1)[-1] or f"retry {record.retries} started"
        sleep(0.5)
    raise UserError(f"The job manager has not answered {key} after {timeout:.0f}s; follow the job with "
                    f"`neurocaas status {ref.job_id}`.")


def register(app: typer.Typer) -> None:
    @app.command()
    def retry(job: str = typer.Argument(..., help="The job id."),
              failed: bool = typer.Option(False, "--failed",
                                          help="Only datasets that did not succeed (the default without --dataset)."),
              dataset: list[str] = typer.Option(None, "--dataset", "-d", help="A dataset to run again (repeatable)."),
              analysis: str = ANALYSIS, group: str = GROUP, aws: bool = AWS) -> None:
        """Run datasets of an ended job again, into the same job folder."""
        client = client_for(aws)
        try:
            ref = client.find(job, analysis, group)
            record = client.record(ref)
            if record is None:
                raise UserError(f"Job {job} has no record yet; wait for it to start.")
            key = request_retry(client, ref, list(dataset or []), failed)
            answer = await_answer(client, ref, key, record.retries)
        except UserError as error:
            fail(str(error))
            return
        console.print(f"Retrying job {job}: {answer} Follow it with `neurocaas status {job}`.", highlight=False)
