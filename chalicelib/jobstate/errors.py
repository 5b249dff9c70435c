"""What the job-state code raises: small, with messages a user or operator can read."""

from __future__ import annotations


class JobStateError(Exception):
    """A job's records cannot be read or updated as they are."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NoJobRecord(JobStateError):
    """The folder has no job.json, or one that is not a job record."""
