"""The local stack's console: one readable line per job-manager event, never raw JSON."""

from __future__ import annotations

import logging

from aws_lambda_powertools import Logger

from service.local.events import readable_job_manager_logs


def test_job_manager_records_become_one_readable_line_each() -> None:
    said: list[str] = []
    logger = logging.getLogger("neurocaas")
    before = (list(logger.handlers), logger.level, logger.propagate)
    readable_job_manager_logs(said.append)
    try:
        job_manager = Logger(service="neurocaas")
        job_manager.info("job started", extra={"job": "2026-11-25T10-00-00", "instances": ["i-1", "i-2"]})
        job_manager.info("submit handled", extra={"key": "grp/submissions/submit.json", "outcome": "started"})
        job_manager.warning("submission refused", extra={"key": "grp/submissions/x.json", "reason": "bad"})
    finally:
        logger.handlers[:], logger.level, logger.propagate = before[0], before[1], before[2]
    assert said == ["job started · job=2026-11-25T10-00-00 instances=['i-1', 'i-2']",
                    "[red]warning[/red] submission refused · key=grp/submissions/x.json reason=bad"]
