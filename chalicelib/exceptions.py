"""One exception hierarchy for the job manager.

Every message is written for the person who reads it in a job certificate: it says what was
wrong and what to do about it, and never carries a Python traceback.
"""

from __future__ import annotations

from enum import Enum


class Step(str, Enum):
    """The four setup steps a certificate reports, in order."""

    INITIALIZATION = "STEP 1/4 (Initialization)"
    VALIDATION = "STEP 2/4 (Validation)"
    ENVIRONMENT = "STEP 3/4 (Environment Setup)"
    PROCESSING = "STEP 4/4 (Initialize Processing)"


class NeuroCAASError(Exception):
    """Base of every error the job manager reports to a user.

    ``label`` is the certificate's word for the kind of failure: ``AWS ERROR`` when the cloud
    refused or failed, ``SUBMISSION ERROR`` when what was submitted is refused (the user can fix
    it), ``INTERNAL ERROR`` for a problem of the analysis's deployment or of the job manager.
    """

    label = "INTERNAL ERROR"
    step = Step.INITIALIZATION

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def certificate_line(self) -> str:
        return f"{self.label}. {self.message}"


class BlueprintError(NeuroCAASError):
    """The blueprint (stack_config_template.json) is missing, unreadable or invalid."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []

    def __str__(self) -> str:
        if not self.problems:
            return self.message
        return self.message + "\n" + "\n".join(f"  - {p}" for p in self.problems)


class SettingsError(NeuroCAASError):
    """The handler's environment does not describe a usable analysis (a deployment problem)."""


class SubmissionRefused(NeuroCAASError):
    """The submission is invalid; nothing is started. The message names what to fix."""

    label = "SUBMISSION ERROR"
    step = Step.VALIDATION


class SubmitFileUnreadable(SubmissionRefused):
    """The submit file is not JSON, not an object, or cannot be fetched."""

    step = Step.INITIALIZATION


class JobExists(SubmissionRefused):
    """A different submission already uses this job id."""

    step = Step.INITIALIZATION


class BudgetExceeded(SubmissionRefused):
    """Starting the job would exceed the group's budget or the analysis's concurrency cap."""

    step = Step.ENVIRONMENT


class AWSFailure(NeuroCAASError):
    """AWS refused or failed a request after botocore's retries."""

    label = "AWS ERROR"
    step = Step.PROCESSING

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class UnexpectedFailure(NeuroCAASError):
    """A defect in the job manager: the user sees this, the traceback goes to the log."""

    step = Step.PROCESSING

    def __init__(self, step: Step, started_anything: bool) -> None:
        cleanup = " Every instance it had started was stopped." if started_anything else " Nothing was started."
        super().__init__(
            "The job manager failed unexpectedly." + cleanup
            + " Submit again with a new timestamp; if it fails again, contact the analysis developer."
        )
        self.step = step
