"""Entry points called by ``app.py``: build the job manager for each event.

On Lambda the settings come from the environment and AWS from the default session. The local
stack, which runs the same Chalice handlers in its own process, installs its own source of
settings (one per analysis it serves) and of AWS clients (pointed at its loopback endpoint).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from aws_lambda_powertools import Logger

from chalicelib.awsclient import AWSClient
from chalicelib.blueprint import AnalysisSettings
from chalicelib.exceptions import SettingsError
from chalicelib.jobmanager import JobManager, Result

logger = Logger(service="neurocaas")


@lru_cache(maxsize=4)
def _aws(region: str) -> AWSClient:
    # Clients are reused across warm invocations; they carry no per-job state.
    return AWSClient.create(region=region)


def _settings_from_environment(bucket: str) -> AnalysisSettings:
    return AnalysisSettings.from_environ(os.environ)


@dataclass
class HandlerEnvironment:
    """Where a handler gets its analysis settings and AWS clients from."""

    settings_for: Callable[[str], AnalysisSettings] = _settings_from_environment
    aws_for: Callable[[str], AWSClient] = field(default=_aws)


environment = HandlerEnvironment()
_installed: list[HandlerEnvironment] = []


def configure(settings_for: Callable[[str], AnalysisSettings], aws_for: Callable[[str], AWSClient]) -> HandlerEnvironment:
    """Serve analyses from this process (the local stack); returns a token for :func:`release`."""
    token = HandlerEnvironment(settings_for, aws_for)
    _installed.append(token)
    environment.settings_for, environment.aws_for = settings_for, aws_for
    return token


def release(token: HandlerEnvironment) -> None:
    """Undo one :func:`configure`; the one installed before it (or Lambda's defaults) applies again."""
    if token in _installed:
        _installed.remove(token)
    current = _installed[-1] if _installed else HandlerEnvironment()
    environment.settings_for, environment.aws_for = current.settings_for, current.aws_for


def reset() -> None:
    _installed.clear()
    release(HandlerEnvironment())
    _aws.cache_clear()


def handle_submit_event(bucket: str, key: str) -> Result | None:
    """Chalice has already URL-decoded ``key`` (S3 event keys arrive encoded)."""
    try:
        settings = environment.settings_for(bucket)
    except SettingsError as error:
        logger.error("the analysis is not configured", extra={"reason": error.message})
        raise
    manager = JobManager(settings, environment.aws_for(settings.region), logger=logger)
    result = manager.handle_submit(bucket, key)
    logger.info("submit handled", extra={"bucket": bucket, "key": key, "outcome": result.outcome.value,
                                          "detail": result.message})
    return result
