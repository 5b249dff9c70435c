"""The one error the deployment commands raise: a single line that says what to do."""

from __future__ import annotations


class DeployError(Exception):
    """Something stops ``init``, ``deploy``, ``destroy`` or ``users``; the message is actionable."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
