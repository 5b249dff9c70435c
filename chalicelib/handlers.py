"""Entry points called by ``app.py``: build the job manager for each event.

On Lambda the settings come from the environment and AWS from the default session. The local
stack, which runs the same Chalice handlers in its own process, installs its own source of
settings (one per analysis it serves) and of AWS clients (pointed at its loopback endpoint).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

import boto3

from aws_lambda_powertools import Logger

from chalicelib.awsclient import AWSClient
from chalicelib.blueprint import AnalysisSettings
from chalicelib.certificate import Certificate, format_time
from chalicelib.exceptions import NeuroCAASError, SettingsError, Step, UnexpectedFailure
from chalicelib.jobmanager import JobManager, Result, utcnow
from chalicelib.monitor.control import CannotCancel, cancel_from_s3, reap
from chalicelib.monitor.replay import replay_dead_letters
from chalicelib.monitor.statechange import OPEN_JOBS, InstanceMonitor
from chalicelib.paths import JobLocation, ObjectRef, group_of, job_name, refusal_job_name
from chalicelib.submission import decode, readable_job_id
from chalicelib.recovery.relaunch import Relauncher
from chalicelib.recovery.retry import CannotRetry, retry_from_s3

logger = Logger(service="neurocaas")


@lru_cache(maxsize=4)
def _aws(region: str) -> AWSClient:
    # Clients are reused across warm invocations; they carry no per-job state.
    return AWSClient.create(region=region)


def _settings_from_environment(bucket: str) -> AnalysisSettings:
    return AnalysisSettings.from_environ(os.environ)


def _analysis_from_environment() -> list[str]:
    return [os.environ["BUCKET_NAME"]] if os.environ.get("BUCKET_NAME") else []


@dataclass
class HandlerEnvironment:
    """Where a handler gets its analysis settings and AWS clients from."""

    settings_for: Callable[[str], AnalysisSettings] = _settings_from_environment
    aws_for: Callable[[str], AWSClient] = field(default=_aws)
    analyses: Callable[[], list[str]] = _analysis_from_environment


environment = HandlerEnvironment()
_installed: list[HandlerEnvironment] = []


def configure(settings_for: Callable[[str], AnalysisSettings], aws_for: Callable[[str], AWSClient],
              analyses: Callable[[], list[str]]) -> HandlerEnvironment:
    """Serve analyses from this process (the local stack); returns a token for :func:`release`."""
    token = HandlerEnvironment(settings_for, aws_for, analyses)
    _installed.append(token)
    _apply(token)
    return token


def _apply(source: HandlerEnvironment) -> None:
    environment.settings_for, environment.aws_for, environment.analyses = (
        source.settings_for, source.aws_for, source.analyses)


def release(token: HandlerEnvironment) -> None:
    """Undo one :func:`configure`; the one installed before it (or Lambda's defaults) applies again."""
    if token in _installed:
        _installed.remove(token)
    _apply(_installed[-1] if _installed else HandlerEnvironment())


def reset() -> None:
    _installed.clear()
    release(HandlerEnvironment())
    _aws.cache_clear()
    _sqs.cache_clear()


def handle_submit_event(bucket: str, key: str) -> Result | None:
    """Chalice has already URL-decoded ``key`` (S3 event keys arrive encoded).

    No submission vanishes silently: whatever fails here is logged and written to the submission's
    certificate before the error goes back to the caller (which retries the event).
    """
    settings: AnalysisSettings | None = None
    try:
        settings = environment.settings_for(bucket)
        manager = JobManager(settings, environment.aws_for(settings.region), logger=logger)
        result = manager.handle_submit(bucket, key)
    except Exception as error:
        if isinstance(error, SettingsError):
            logger.error("the analysis is not configured", extra={"key": key, "reason": error.message})
        else:
            logger.exception("the submission could not be handled", extra={"key": key})
        record_unhandled(bucket, key, error, settings)
        raise
    logger.info("submit handled", extra={"bucket": bucket, "key": key, "outcome": result.outcome.value,
                                          "detail": result.message})
    return result


def record_unhandled(bucket: str, key: str, error: Exception, settings: AnalysisSettings | None) -> str | None:
    """Write why a submission could not be handled to its certificate; returns the certificate's key.

    The job's own folder is used when the submit file names a job id and holds no certificate yet
    (a job that got further keeps its own); otherwise a folder named after the submit key.
    """
    group = group_of(key)
    if group is None:
        return None
    problem = error if isinstance(error, NeuroCAASError) else UnexpectedFailure(Step.INITIALIZATION, False)
    problem.step = Step.INITIALIZATION
    now = utcnow()
    certificate = Certificate(started=now, header=[
        f"REQUEST START TIME: {format_time(now)} (GMT)", f"ANALYSIS: {bucket}", f"GROUP: {group}",
        f"SUBMIT FILE: {key}"])
    certificate.fail(problem, now)
    try:
        aws = environment.aws_for(settings.region if settings else os.environ.get("AWS_REGION", "us-east-1"))
        name = refusal_job_name(bucket, key)
        try:
            job_id = readable_job_id(decode(aws.get_object(ObjectRef(bucket, key)).body))
            name = job_name(bucket, job_id) if job_id else name
        except Exception:  # an unreadable submit file: the folder named after its key
            pass
        location = JobLocation.in_group(bucket, group, name)
        aws.put(bucket, location.certificate, certificate.render().encode(), if_none_match=True)
        return location.certificate
    except Exception:  # already logged above; the certificate is a courtesy (e.g. it exists already)
        logger.warning("could not write the certificate of an unhandled submission", extra={"key": key})
        return None


def _serving() -> list[tuple[AnalysisSettings, AWSClient]]:
    served = []
    for bucket in environment.analyses():
        settings = environment.settings_for(bucket)
        served.append((settings, environment.aws_for(settings.region)))
    return served


def event_time(value: str | None) -> datetime:
    """An EventBridge event's ``time`` (ISO 8601, UTC), or now when it is missing or unreadable."""
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return utcnow()
    return moment if moment.tzinfo else utcnow()


def handle_instance_state(instance_id: str, state: str, time: str | None = None) -> list[str]:
    """An EC2 state-change event: cost records, the instance's end, the job's end (at the event's time)."""
    done = []
    at = event_time(time)
    for settings, aws in _serving():
        monitor = InstanceMonitor(aws, settings.bucket_name, utcnow, logger, settings.postprocess,
                                  relauncher=_relauncher(settings, aws))
        outcome = monitor.handle(instance_id, state, at)
        done.append(outcome)
        logger.info("instance state handled", extra={"instance": instance_id, "event_state": state,
                                                      "analysis": settings.bucket_name, "outcome": outcome})
    return done


def _relauncher(settings: AnalysisSettings, aws: AWSClient) -> Relauncher | None:
    """Who starts again a dataset whose instance was interrupted or lost (none when the
    blueprint's MAX_RELAUNCHES is 0)."""
    return Relauncher(settings, aws, utcnow, logger) if settings.max_relaunches > 0 else None


def handle_spot_interruption(instance_id: str, time: str | None = None) -> list[str]:
    """An EC2 Spot Instance Interruption Warning (two minutes before the reclaim): relaunch the
    instance's dataset now, in the same job folder, as the blueprint allows."""
    done = []
    at = event_time(time)
    for settings, aws in _serving():
        relauncher = _relauncher(settings, aws)
        outcome = relauncher.interrupted(instance_id, at, OPEN_JOBS) if relauncher else "relaunches are off"
        done.append(outcome)
        logger.info("spot interruption warning handled", extra={"instance": instance_id, "outcome": outcome,
                                                                "analysis": settings.bucket_name})
    return done


def handle_cancel_event(bucket: str, key: str) -> int | None:
    settings = environment.settings_for(bucket)
    try:
        stopped = cancel_from_s3(environment.aws_for(settings.region), bucket, key, utcnow())
    except CannotCancel as error:
        logger.info("cancel refused", extra={"key": key, "reason": error.message})
        return None
    logger.info("job cancelled", extra={"key": key, "instances": stopped})
    return stopped


def handle_retry_event(bucket: str, key: str) -> list[str] | None:
    """A retry file: relaunch chosen datasets of an ended job (a refusal goes to its certificate)."""
    settings = environment.settings_for(bucket)
    try:
        relaunched = retry_from_s3(environment.aws_for(settings.region), settings, bucket, key, utcnow, logger)
    except CannotRetry as error:
        logger.info("retry refused", extra={"key": key, "reason": error.message})
        return None
    logger.info("datasets retried", extra={"key": key, "datasets": relaunched})
    return relaunched


@lru_cache(maxsize=4)
def _sqs(region: str) -> Any:
    return boto3.client("sqs", region_name=region)


def _replay(bucket: str, key: str) -> None:
    """Handle again an S3 event whose asynchronous invocation failed every retry."""
    if key.endswith("cancel.json"):
        handle_cancel_event(bucket, key)
    elif key.endswith("retry.json"):
        handle_retry_event(bucket, key)
    else:
        handle_submit_event(bucket, key)


def handle_reaper() -> list[str]:
    """The scheduled pass: per analysis, resume, finish and reconcile jobs and end overdue
    instances; then replay the dead-letter queue named by NEUROCAAS_DEAD_LETTER_QUEUE."""
    done = []
    served = _serving()
    for settings, aws in served:
        def resume(submit_key: str, bucket: str = settings.bucket_name) -> None:
            handle_submit_event(bucket, submit_key)

        relauncher = _relauncher(settings, aws)
        report = reap(aws, settings.bucket_name, utcnow(), resume=resume, logger=logger,
                      postprocess=settings.postprocess, open_jobs=OPEN_JOBS,
                      relaunch=relauncher.lost if relauncher else None)
        done += report.overdue
        if report.overdue or report.ended or report.resumed:
            logger.info("reaper pass", extra={"analysis": settings.bucket_name, "overdue": report.overdue,
                                              "ended": report.ended, "resumed": report.resumed})
    queue = os.environ.get("NEUROCAAS_DEAD_LETTER_QUEUE")
    if queue and served:
        buckets = {settings.bucket_name for settings, _ in served}
        replayed = replay_dead_letters(_sqs(served[0][0].region), queue, buckets, _replay, logger)
        if replayed:
            logger.info("replayed failed invocations", extra={"events": replayed})
    return done
