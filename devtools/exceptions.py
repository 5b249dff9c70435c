"""The one exception devtools raise: a problem the developer can act on, said in one line."""

from __future__ import annotations


class DevToolsError(Exception):
    """Something the developer asked for cannot be done; the message says what to do instead."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NoInstance(DevToolsError):
    """There is no development instance to act on."""


class UnsavedWork(DevToolsError):
    """The action would lose work that was never saved as an image."""
