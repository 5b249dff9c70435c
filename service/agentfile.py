"""The remote side's file (``neurocaas_agent.pyz``) for an analysis bucket.

Both the local stack's analysis deploy and ``neurocaas deploy`` put it at
``chalicelib.agent.artifact_key()``; instances whose image lacks it fetch it from there.
"""

from __future__ import annotations

import hashlib
from typing import Any

from chalicelib import agent
from neurocaas_agent import __version__, build


class AgentMismatch(RuntimeError):
    """The agent's sources are not the ones the job manager's boot script expects."""


def artifact() -> bytes:
    """The agent file, refused unless it is the one ``chalicelib/agent.py`` names."""
    body = build.archive()
    digest = hashlib.sha256(body).hexdigest()
    if __version__ != agent.VERSION or digest != agent.SHA256:
        raise AgentMismatch(
            f"The remote side in remote/ ({__version__}, SHA-256 {digest}) is not the one the job manager "
            f"expects ({agent.VERSION}, {agent.SHA256}): update chalicelib/agent.py (see its docstring).")
    return body


def upload(s3: Any, bucket: str) -> str:
    """Put the agent file into the analysis bucket (idempotent); returns its key."""
    key = agent.artifact_key()
    s3.put_object(Bucket=bucket, Key=key, Body=artifact(), ContentType="application/zip")
    return key
