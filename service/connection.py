"""Where the ``neurocaas`` command sends its requests: the local stack by default, or AWS.

``neurocaas local up`` writes ``connection.json`` into its state directory (the endpoint, the
credentials a plain S3 client needs, the analyses it serves); other commands read it. With
``--aws`` (or NEUROCAAS_TARGET=aws) they use the usual AWS profile and region settings instead.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse


def default_state_dir() -> Path:
    """The local stack's state directory: $NEUROCAAS_HOME/local, by default ~/.neurocaas/local."""
    return Path(os.environ.get("NEUROCAAS_HOME") or Path.home() / ".neurocaas") / "local"


CONNECTION_FILE = "connection.json"


class NotConnected(Exception):
    """No local stack is running and AWS was not asked for."""


@dataclass(frozen=True)
class Connection:
    """How to reach S3 and EC2, and which analyses are known there."""

    endpoint: str | None
    credentials: dict[str, str]
    region: str | None
    analyses: tuple[str, ...] = ()

    def client(self, service: str, config: Any = None) -> Any:
        """A boto3 client; ``config`` (a botocore Config) adds to the standard retries (e.g. a longer
        read timeout). boto3 is imported here so that commands which need no AWS start fast."""
        import boto3
        from botocore.config import Config

        retries = Config(retries={"mode": "standard", "max_attempts": 5})
        keys = {}
        if self.credentials:
            keys = {"aws_access_key_id": self.credentials["AWS_ACCESS_KEY_ID"],
                    "aws_secret_access_key": self.credentials["AWS_SECRET_ACCESS_KEY"]}
        return boto3.client(service, endpoint_url=self.endpoint, region_name=self.region,
                            config=retries.merge(config) if config else retries, **keys)

    @property
    def where(self) -> str:
        return f"the local stack at {self.endpoint}" if self.endpoint else "AWS"


def write_connection(state_dir: Path, endpoint: str, credentials: dict[str, str], region: str,
                     analyses: list[str]) -> Path:
    path = state_dir / CONNECTION_FILE
    path.write_text(json.dumps({"endpoint": endpoint, "credentials": credentials, "region": region,
                                "analyses": analyses, "pid": os.getpid()}, indent=2))
    return path


def remove_connection(state_dir: Path) -> None:
    (state_dir / CONNECTION_FILE).unlink(missing_ok=True)


def listening(endpoint: str) -> bool:
    parsed = urlparse(endpoint)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 80), timeout=1):
            return True
    except OSError:
        return False


def _aws() -> Connection:
    """The user's AWS account, once its region and credentials are known to be configured."""
    import boto3

    session = boto3.Session()
    if not session.region_name:
        raise NotConnected("No AWS region is configured: run `aws configure` or `export AWS_DEFAULT_REGION=...` "
                           "(or leave out --aws to use the local stack).")
    if session.get_credentials() is None:
        raise NotConnected("No AWS credentials were found: run `aws configure` or set AWS_PROFILE "
                           "(or leave out --aws to use the local stack).")
    return Connection(endpoint=None, credentials={}, region=session.region_name)


def connect(aws: bool = False, state_dir: Path | None = None) -> Connection:
    """The local stack if one is running (default), else AWS when asked; otherwise NotConnected."""
    if aws or os.environ.get("NEUROCAAS_TARGET") == "aws":
        return _aws()
    path = (state_dir or default_state_dir()) / CONNECTION_FILE
    if not path.exists():
        raise NotConnected(
            "No local stack is running. Start one with `neurocaas local up` (or use --aws for your AWS account)."
        )
    try:
        document = json.loads(path.read_text())
        document["endpoint"], document["credentials"], document["region"]
    except (OSError, ValueError, KeyError, TypeError):
        raise NotConnected(f"{path} is not a connection file of `neurocaas local up`; delete it and start the "
                           "local stack again.") from None
    if not listening(document["endpoint"]):
        raise NotConnected(
            f"The local stack at {document['endpoint']} is not answering. Start it with `neurocaas local up`."
        )
    return Connection(endpoint=document["endpoint"], credentials=document["credentials"],
                      region=document["region"], analyses=tuple(document.get("analyses", ())))
