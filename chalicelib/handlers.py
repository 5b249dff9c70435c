"""Entry points called by ``app.py``: build the job manager from the environment, per event."""

from __future__ import annotations

import os
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


def handle_submit_event(bucket: str, key: str) -> Result | None:
    """Chalice has already URL-decoded ``key`` (S3 event keys arrive encoded)."""
    try:
        settings = AnalysisSettings.from_environ(os.environ)
    except SettingsError as error:
        logger.error("the analysis is not configured", extra={"reason": error.message})
        raise
    manager = JobManager(settings, _aws(settings.region), logger=logger)
    result = manager.handle_submit(bucket, key)
    logger.info("submit handled", extra={"bucket": bucket, "key": key, "outcome": result.outcome.value,
                                          "detail": result.message})
    return result
