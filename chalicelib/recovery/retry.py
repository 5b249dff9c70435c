"""Retrying chosen datasets of an ended job, into the same job folder.

A retry file ``{group}/submissions/{anything}retry.json`` has the form of a cancel file,
``{"timestamp": "JOB ID"}``, optionally with ``"datasets": ["a.tif", ...]`` (or ``"dataset"``) and
``"failed": true``. Without datasets it retries every dataset that did not succeed. The retry is
held to the group's budget and the analysis's concurrency like a submission; a refused retry gets
a ``RETRY REFUSED`` line in the job's certificate (or, without a job, in a refusal folder's).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from chalicelib import pricing
from chalicelib.awsclient import AWSClient, ObjectMissing
from chalicelib.blueprint import AnalysisSettings
from chalicelib.certificate import format_time
from chalicelib.exceptions import NeuroCAASError, SubmissionRefused
from chalicelib.facts import gather_budget
from chalicelib.jobstate.conditional import rewrite
from chalicelib.jobstate.markers import open_key
from chalicelib.jobstate.reconcile import ENDED_JOB, Reconciler
from chalicelib.monitor.costs import add_to_ledger, end_id
from chalicelib.monitor.statechange import end_hook
from chalicelib.paths import ObjectRef, group_of, job_name, refusal_job_name
from chalicelib.planner import check_budget
from chalicelib.recovery.relaunch import Relauncher, read_record
from chalicelib.records import DatasetState, JobRecord, JobState
from chalicelib.submission import JOB_ID

RETRY_FORM = '{"timestamp": "JOB ID", "datasets": ["NAME", ...], "failed": true}'


class CannotRetry(SubmissionRefused):
    """The retry is refused: the message says why and what to do."""


def chosen_datasets(record: JobRecord, names: list[str], failed_only: bool) -> list[str]:
    """The labels to run again: the named ones (only those not succeeded with ``failed_only``),
    else every dataset that did not succeed."""
    unknown = [n for n in names if n not in record.datasets]
    if unknown:
        raise CannotRetry(f"Job {record.job_id} has no dataset {', '.join(map(repr, unknown))} "
                          f"(datasets: {', '.join(record.datasets)}).")
    chosen = names or list(record.datasets)
    if failed_only or not names:
        chosen = [n for n in chosen if record.datasets[n].state is not DatasetState.SUCCESS]
    if not chosen:
        raise CannotRetry(f"Every chosen dataset of job {record.job_id} succeeded; name one with --dataset "
                          "(without --failed) to run it again.")
    return chosen


def retry_job(aws: AWSClient, settings: AnalysisSettings, bucket: str, prefix: str, *, names: list[str],
              failed_only: bool, by: str, clock: Callable[[], datetime], logger: Any = None) -> list[str]:
    """Relaunch chosen datasets of the ended job at ``prefix``; returns the labels relaunched.
    Raises :class:`CannotRetry` (or a budget refusal) with the reason."""
    record = read_record(aws, bucket, prefix)
    if record is None:
        raise CannotRetry(f"There is no job at s3://{bucket}/{prefix}/ to retry.")
    if record.state not in ENDED_JOB:
        raise CannotRetry(f"Job {record.job_id} is {record.state.value}: retry it once it has ended.")
    if record.refused or not record.datasets or record.relaunch is None:
        raise CannotRetry(f"Job {record.job_id} never ran its datasets (it was refused or started before retries "
                          "existed): correct the submission and submit it again.")
    chosen = chosen_datasets(record, names, failed_only)
    instance_type = record.instance_type or settings.instance_type
    minutes = record.lifetime_minutes or settings.default_duration
    budget = gather_budget(aws, settings, record.group, instance_type)
    check_budget(settings, record.group, instance_type, budget,
                 pricing.estimate(instance_type, len(chosen), minutes, spot=settings.spot == "only"), len(chosen))
    now = clock()
    number = record.retries + 1
    _reopen(aws, bucket, prefix, record, number, now)
    folder = f"s3://{bucket}/{prefix}"
    relauncher = Relauncher(settings, aws, clock, logger)
    why = f"retry {number} requested by {by}"
    relaunched = [label for label in chosen
                  if relauncher.relaunch(folder, label, record.datasets[label].instance_id or "", why, retry=True)]
    _note(aws, bucket, prefix, f"RETRY {number} ({format_time(now)}, by {by}): "
          + (f"{len(relaunched)} dataset(s) started again: {', '.join(relaunched)}." if relaunched
             else "AWS started no instance; the job ends as it was."))
    Reconciler(aws, clock, end_hook(aws, logger, settings.postprocess)).reconcile(folder, refresh=True)
    return relaunched


def _reopen(aws: AWSClient, bucket: str, prefix: str, record: JobRecord, number: int, now: datetime) -> None:
    """The job runs again: its end so far (end.txt, ending.json, a cancel) kept under ``logs/ends/``,
    its cost so far counted as billed (the next end adds only the rest to the ledger), its state RUNNING."""
    # An end whose open marker is still there may owe the ledger its cost (its writer died before
    # adding it, and the reaper had not settled it yet): added here, the ledger counting each end
    # once, so a live writer adding it too changes nothing.
    marker = ObjectRef(record.analysis, open_key(record.group, prefix.rsplit("/", 1)[-1]))
    if record.actual_cost is not None and record.instance_ids and aws.exists(marker):
        add_to_ledger(aws, record.analysis, record.group, round(max(record.actual_cost - record.billed_cost, 0.0), 4),
                      end_id(record, prefix))
    for source, kept in ((f"{prefix}/process_results/end.txt", f"end-{number}.txt"),
                         (f"{prefix}/logs/cancel.json", f"cancel-{number}.json"),
                         (f"{prefix}/logs/ending.json", f"ending-{number}.json")):
        try:
            aws.put(bucket, f"{prefix}/logs/ends/{kept}", aws.get_object(ObjectRef(bucket, source)).body)
            aws.delete(bucket, source)
        except ObjectMissing:
            pass

    def change(body: bytes | None) -> bytes | None:
        if body is None:
            return None
        current = JobRecord.model_validate_json(body)
        if current.state not in ENDED_JOB or current.retries != record.retries:
            return None
        current.billed_cost = max(current.actual_cost or 0.0, current.billed_cost)
        current.state, current.reason, current.finished, current.actual_cost = JobState.RUNNING, "", None, None
        current.retries, current.updated = number, now
        return current.to_bytes()

    if not rewrite(aws, bucket, f"{prefix}/logs/job.json", change, "application/json"):
        raise CannotRetry(f"Job {record.job_id} is being retried already; follow it with `neurocaas status`.")


def _note(aws: AWSClient, bucket: str, prefix: str, line: str, drop_cost: bool = True) -> None:
    """Append a line to the certificate (dropping the ACTUAL COST line of the end it reopens)."""
    def change(body: bytes | None) -> bytes | None:
        lines = (body or b"").decode().rstrip("\n").split("\n") if body else []
        if drop_cost:
            lines = [x for x in lines if not x.startswith("ACTUAL COST:")]
        return ("\n".join([*lines, line]) + "\n").encode()

    rewrite(aws, bucket, f"{prefix}/logs/certificate.txt", change)


def _document(body: bytes, key: str) -> tuple[dict[str, Any], str]:
    """A retry file's JSON object and the job id it names; :class:`CannotRetry` when it names none."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise CannotRetry(f"{key} is not JSON; it must look like {RETRY_FORM}.") from None
    if not isinstance(document, dict):
        raise CannotRetry(f"{key} must be a JSON object like {RETRY_FORM}.")
    job_id = str(document.get("timestamp", ""))
    if not JOB_ID.match(job_id):
        raise CannotRetry(f"{key} does not name a job: it needs {{\"timestamp\": \"JOB ID\"}}.")
    return document, job_id


def _choices(document: dict[str, Any], key: str) -> tuple[list[str], bool]:
    """(dataset names, failed only) of a retry file."""
    names = document.get("datasets", document.get("dataset", []))
    names = [names] if isinstance(names, str) else names
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise CannotRetry(f"{key}: \"datasets\" must be a list of dataset names, like {RETRY_FORM}.")
    failed = document.get("failed", False)
    if not isinstance(failed, bool):
        raise CannotRetry(f"{key}: \"failed\" must be true or false.")
    return list(dict.fromkeys(names)), failed


def retry_from_s3(aws: AWSClient, settings: AnalysisSettings, bucket: str, key: str,
                  clock: Callable[[], datetime], logger: Any = None) -> list[str]:
    """Handle a retry file; a refusal is written into the job's certificate (or a refusal folder's)
    and raised as :class:`CannotRetry`."""
    group = group_of(key)
    if group is None:
        raise CannotRetry(f"{key} is not inside a group's submissions/ folder.")
    prefix = f"{group}/results/{refusal_job_name(bucket, key)}"
    try:
        document, job_id = _document(aws.get_object(ObjectRef(bucket, key)).body, key)
        named = f"{group}/results/{job_name(bucket, job_id)}"
        if read_record(aws, bucket, named) is None:
            raise CannotRetry(f"There is no job {job_id} (s3://{bucket}/{named}/) to retry.")
        prefix = named  # from here on, refusals go to the job's own certificate
        names, failed = _choices(document, key)
        return retry_job(aws, settings, bucket, prefix, names=names, failed_only=failed, by=f"the retry file {key}",
                         clock=clock, logger=logger)
    except ObjectMissing:
        return []  # the retry file is gone: nothing to do
    except NeuroCAASError as error:
        _note(aws, bucket, prefix, f"RETRY REFUSED ({format_time(clock())}, {key}): {error.message}", drop_cost=False)
        raise CannotRetry(error.message) from None
