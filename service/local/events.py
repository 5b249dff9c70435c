"""The local stack's console: the job manager's structured log records as one readable line each.

On Lambda the job manager logs JSON (powertools) for CloudWatch; in ``neurocaas local up`` the
same records are shown as ``message key=value ...``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "xray_trace_id"}
SERVICE_LOGGER = "neurocaas"
SHOWN_KEYS = ("job", "key", "reason", "instances", "instance", "outcome")
# Summaries of what the job manager (or the instance runner's own line) already said: one line per event.
SUMMARIES = {"submit handled", "instance state handled"}


class ReadableHandler(logging.Handler):
    """Sends each record to ``say`` as one line: the message and the fields that identify it."""

    def __init__(self, say: Callable[[str], None]) -> None:
        super().__init__(logging.INFO)
        self.say = say

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.WARNING and record.getMessage() in SUMMARIES:
            return
        fields = {k: v for k, v in vars(record).items() if k not in STANDARD and not k.startswith("_")}
        shown = " ".join(f"{k}={fields[k]}" for k in SHOWN_KEYS if fields.get(k) not in (None, ""))
        level = "" if record.levelno < logging.WARNING else f"[red]{record.levelname.lower()}[/red] "
        text = f"{level}{record.getMessage()}" + (f" · {shown}" if shown else "")
        if record.exc_info and record.exc_info[1] is not None:
            text += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
        self.say(text)


def readable_job_manager_logs(say: Callable[[str], None]) -> None:
    """Replace the job manager's JSON log output by readable lines (for ``local up``)."""
    # Both configure the "neurocaas" logger when first imported (chalice only if it has no stdout handler
    # yet, then at level ERROR): import them first so that what is set here stays.
    import app  # noqa: F401
    import chalicelib.handlers  # noqa: F401

    logger = logging.getLogger(SERVICE_LOGGER)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.addHandler(ReadableHandler(say))
    logger.setLevel(logging.INFO)
    logger.propagate = False
