"""The page's way to S3 and EC2 (the CLI's client layer), and every failure told as a sentence."""

from __future__ import annotations

import logging
import threading
from typing import Any

from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    NoCredentialsError,
)

from service.client import NeuroCAASClient, UserError
from service.connection import Connection, NotConnected, connect, listening

log = logging.getLogger("neurocaas.web")
EXPIRED = {"ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired"}
REJECTED = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "UnrecognizedClientException", "InvalidClientTokenId"}
DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "403"}


# S3 may take minutes to assemble a large multipart upload (API_CompleteMultipartUpload.html).
COMPLETE_TIMEOUT = Config(read_timeout=900)


class Backend:
    """Hands out a client for the local stack (found anew when it restarts) or AWS, or a fixed one."""

    def __init__(self, aws: bool = False, connection: Connection | None = None) -> None:
        self.aws = aws
        self.fixed = connection
        self._clients: dict[tuple[str | None, tuple[str, ...]], NeuroCAASClient] = {}
        self._lock = threading.Lock()
        self._completing: Any = None

    def client(self) -> NeuroCAASClient:
        connection = self.fixed or connect(aws=self.aws)
        if self.fixed is not None and connection.endpoint and not listening(connection.endpoint):
            raise NotConnected(f"The local stack at {connection.endpoint} is not answering. Start it with "
                               "`neurocaas local up` and reload this page.")
        cache_key = (connection.endpoint, connection.analyses)
        with self._lock:
            if cache_key not in self._clients:
                self._clients = {cache_key: NeuroCAASClient(connection)}
                self._completing = connection.client("s3", COMPLETE_TIMEOUT)
            return self._clients[cache_key]

    def completing_s3(self) -> Any:
        """An S3 client that waits long enough for CompleteMultipartUpload of a large file."""
        self.client()
        return self._completing

    @property
    def where(self) -> str:
        if self.fixed is not None:
            return self.fixed.where
        return "AWS" if self.aws else "the local stack"


def explain(error: Exception, where: str) -> tuple[int, str]:
    """An HTTP status and a sentence a scientist understands, for any failure behind a page."""
    local = where != "AWS"
    if isinstance(error, UserError):
        return 400, str(error)
    if isinstance(error, NotConnected):
        return 503, str(error)
    if isinstance(error, (EndpointConnectionError, ConnectionClosedError)):
        if local:
            return 503, (f"{where[0].upper()}{where[1:]} is not answering. Start it with `neurocaas local up` "
                         "and reload this page.")
        return 503, "AWS cannot be reached from this machine. Check the network connection and reload this page."
    if isinstance(error, NoCredentialsError):
        return 503, ("No AWS credentials were found. Set them up (`aws configure`, or AWS_PROFILE) and reload, "
                     "or run `neurocaas web` without --aws to use the local stack.")
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        if code in EXPIRED:
            return 401, "Your AWS credentials have expired. Renew them (for example `aws sso login`) and reload this page."
        if code in REJECTED:
            return 401, "AWS does not accept your credentials. Check your AWS profile and reload this page."
        if code in DENIED:
            return 403, "Your identity is not allowed to do this. Ask the analysis developer to add you to the group."
        if code in ("NoSuchBucket", "NoSuchKey", "404"):
            return 404, "This was not found: it may have been deleted, or the analysis is no longer deployed."
        message = error.response.get("Error", {}).get("Message", "")
        return 502, f"{where[0].upper()}{where[1:]} refused the request: {message or code}."
    if isinstance(error, BotoCoreError):
        return 502, f"Talking to {where} failed: {error}."
    log.exception("unexpected error behind the page")
    return 500, (f"Something unexpected went wrong ({type(error).__name__}). The details are in the terminal "
                 "running `neurocaas web`.")
