"""Every failure of a command as one line a user can act on: never a traceback.

``SafeGroup`` is the ``neurocaas`` command group: whatever a command raises that it did not turn
into a message itself (AWS refusing, no region, no credentials, a defect) ends here as one line
and exit code 1. Set ``NEUROCAAS_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import os
import sys
from typing import Any, NoReturn

import typer
from typer.core import TyperGroup

DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError", "Forbidden",
          "403", "InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken", "ExpiredTokenException",
          "AuthFailure", "UnrecognizedClientException"}
# What commands raise on purpose (exits, usage errors, Ctrl-C) is passed on untouched: typer's and
# click's own exceptions (typer vendors click from 0.2x on; before, it raised click's).
PASSED_ON: tuple[type[BaseException], ...] = (typer.Exit, typer.Abort, typer.TyperException, KeyboardInterrupt,
                                              SystemExit)


def _passed_on(error: BaseException) -> bool:
    return isinstance(error, PASSED_ON) or type(error).__module__.split(".")[0] in ("click", "typer")


def fail(message: str) -> NoReturn:
    """Print one line on stderr and exit 1."""
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True).print(f"[red]✗[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def describe(error: BaseException) -> str:
    """What went wrong and what to do, in one line."""
    from botocore import exceptions as boto

    if isinstance(error, boto.NoRegionError):
        return ("No AWS region is configured. Set one with `aws configure` or `export AWS_DEFAULT_REGION=us-east-1` "
                "(or leave out --aws to use the local stack).")
    if isinstance(error, (boto.NoCredentialsError, boto.PartialCredentialsError)):
        return ("No AWS credentials were found. Set them up with `aws configure` (or AWS_PROFILE), "
                "or leave out --aws to use the local stack.")
    if isinstance(error, boto.ProfileNotFound):
        return f"{error}. Check AWS_PROFILE and ~/.aws/config."
    if isinstance(error, boto.EndpointConnectionError):
        return f"Cannot reach {error.kwargs.get('endpoint_url', 'AWS')}: check your network (or the local stack)."
    if isinstance(error, boto.ClientError):
        details: dict[str, Any] = error.response.get("Error", {})
        code, operation = str(details.get("Code", "")), getattr(error, "operation_name", "a request")
        if code in DENIED:
            return (f"AWS denied {operation} to your identity ({code}). Your group may not do this: ask the "
                    "analysis developer for access, or check that your profile is the one they added.")
        return f"AWS refused {operation}: {code}: {details.get('Message', '')}".rstrip(": ")
    if isinstance(error, boto.ParamValidationError):
        return (f"neurocaas made a request the AWS SDK rejects ({error}). This is a defect of neurocaas: "
                "run again with NEUROCAAS_DEBUG=1 and report what it prints.")
    if isinstance(error, boto.BotoCoreError):
        return f"AWS request failed: {error}."
    if isinstance(error, OSError) and error.strerror:
        where = f" ({error.filename})" if error.filename else ""
        return f"{error.strerror}{where}."
    return (f"Unexpected failure ({type(error).__name__}: {error}). This is a defect of neurocaas: "
            "run again with NEUROCAAS_DEBUG=1 and report what it prints.")


class SafeGroup(TyperGroup):
    """A command group that turns any exception into one line and exit code 1."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as error:
            if _passed_on(error) or os.environ.get("NEUROCAAS_DEBUG"):
                raise
            sys.stdout.flush()
            try:
                message = describe(error)
            except Exception:  # describing must never be what fails
                message = f"Unexpected failure ({type(error).__name__}). Run again with NEUROCAAS_DEBUG=1."
            fail(message)
