"""Signed S3 requests and the dataset status file, with nothing but Python's standard library.

Every part of the remote side stands on this one file, and the boot script carries a copy of it
(``chalicelib/agent_core.py``, kept identical by a test) so that it can fetch the remote side and
report a dataset's end even on an image that holds nothing of NeuroCAAS. Runs on Python 3.8+.

As a script: ``python3 core.py get BUCKET KEY FILE``, ``put BUCKET KEY FILE`` and
``finalize BUCKET STATUS_KEY CODE LOG INPUT [REASON]``.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import os
import random
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ElementTree
from typing import IO, Any, Dict, Optional, Tuple, Union

IMDS = "http://169.254.169.254/latest"
UNSIGNED = "UNSIGNED-PAYLOAD"
ATTEMPTS = 6
RETRIED_STATUSES = (500, 502, 503, 504)
# The dataset status file (CONTRACT section 5); chalicelib's names, kept equal by a test.
STATUS_FILE = "DATASET_NAME:{}_STATUS.txt"
SUCCESS, FAILED = "SUCCESS", "FAILED"
FINAL = ("SUCCESS", "FAILED", "CANCELLED", "TIMED OUT")
# Final states as other remote scripts spell them (chalicelib/jobstate/statusfile.py reads them alike).
FINAL_SPELLINGS = FINAL + ("SUCCEEDED", "COMPLETED", "FAILURE", "ERROR", "CANCELED", "TIMEDOUT", "TIMEOUT")
TAIL_LINES = 20
Body = Union[bytes, IO[bytes]]


class S3Error(Exception):
    """A request S3 refused (``status`` > 0) or could not be sent (``status`` == 0)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.status, self.code = status, code


def _imds(path: str) -> Optional[str]:
    """A value from instance metadata (IMDSv2), or None off EC2 or when it is disabled."""
    if os.environ.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true":
        return None
    try:
        token = urllib.request.urlopen(urllib.request.Request(
            IMDS + "/api/token", method="PUT", headers={"X-aws-ec2-metadata-token-ttl-seconds": "300"}),
            timeout=2).read().decode()
        request = urllib.request.Request(IMDS + "/" + path, headers={"X-aws-ec2-metadata-token": token})
        return urllib.request.urlopen(request, timeout=2).read().decode()
    except OSError:
        return None


_instance: Dict[str, Optional[str]] = {}


def instance_id() -> Optional[str]:
    """This instance's id: the local runner's, else from instance metadata (asked once)."""
    if "id" not in _instance:
        _instance["id"] = os.environ.get("NEUROCAAS_INSTANCE_ID") or _imds("meta-data/instance-id")
    return _instance["id"]


def region() -> str:
    return (os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            or _imds("meta-data/placement/region") or "us-east-1")


class Credentials:
    """The environment's keys, else the instance role's (refreshed before they expire)."""

    def __init__(self) -> None:
        self._role: Optional[Tuple[str, str, Optional[str], float]] = None

    def get(self) -> Tuple[str, str, Optional[str]]:
        if os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY"):
            return (os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"],
                    os.environ.get("AWS_SESSION_TOKEN"))
        if self._role is None or self._role[3] - time.time() < 300:
            role = (_imds("meta-data/iam/security-credentials/") or "").strip().split("\n")[0]
            document = _imds("meta-data/iam/security-credentials/" + role) if role else None
            if not document:
                raise S3Error(0, "NoCredentials", "no AWS credentials: no AWS_ACCESS_KEY_ID and no instance "
                                                  "role (does the instance have an instance profile?)")
            found = json.loads(document)
            expires = datetime.datetime.strptime(found["Expiration"], "%Y-%m-%dT%H:%M:%SZ")
            self._role = (found["AccessKeyId"], found["SecretAccessKey"], found.get("Token"),
                          expires.replace(tzinfo=datetime.timezone.utc).timestamp())
        return self._role[0], self._role[1], self._role[2]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def quote(text: str, safe: str = "~") -> str:
    return urllib.parse.quote(text, safe=safe)


def signature_headers(method: str, host: str, path: str, query: Dict[str, str], headers: Dict[str, str],
                      payload_hash: str, credentials: Tuple[str, str, Optional[str]], region_name: str,
                      now: datetime.datetime) -> Dict[str, str]:
    """``headers`` plus the Signature Version 4 ones for S3 (``path`` already URI-encoded)."""
    access_key, secret_key, token = credentials
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    signed = {k.lower(): " ".join(str(v).split()) for k, v in headers.items()}
    signed.update({"host": host, "x-amz-date": stamp, "x-amz-content-sha256": payload_hash})
    if token:
        signed["x-amz-security-token"] = token
    names = sorted(signed)
    canonical = "\n".join([
        method, path, "&".join(f"{quote(k)}={quote(v)}" for k, v in sorted(query.items())),
        "".join(f"{name}:{signed[name]}\n" for name in names), ";".join(names), payload_hash])
    scope = f"{stamp[:8]}/{region_name}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(("AWS4" + secret_key).encode(), stamp[:8]), region_name), "s3"), "aws4_request")
    signed["authorization"] = (f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={';'.join(names)}, "
                               f"Signature={hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()}")
    return signed


class Client:
    """The few S3 requests the remote side makes; honours AWS_ENDPOINT_URL(_S3) like the SDKs."""

    def __init__(self) -> None:
        self.credentials = Credentials()
        self.endpoint = (os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "").rstrip("/")
        self.region = region()
        self.regions: Dict[str, str] = {}
        self.requests = 0
        self.opener = urllib.request.build_opener(_NoRedirects)

    def _where(self, bucket: str, key: str) -> Tuple[str, str, str]:
        """(base URL, host, encoded path) in path style for an endpoint or a dotted name, else virtual-hosted."""
        region_name = self.regions.get(bucket, self.region)
        if self.endpoint:
            base, path = self.endpoint, "/" + bucket + "/" + key
        elif "." in bucket:
            base, path = f"https://s3.{region_name}.amazonaws.com", "/" + bucket + "/" + key
        else:
            base, path = f"https://{bucket}.s3.{region_name}.amazonaws.com", "/" + key
        return base, urllib.parse.urlsplit(base).netloc, quote(path, safe="/~")

    def request(self, method: str, bucket: str, key: str = "", *, query: Optional[Dict[str, str]] = None,
                body: Body = b"", headers: Optional[Dict[str, str]] = None, length: Optional[int] = None) -> Any:
        """Send one request, retried on throttling and server errors; returns the open response."""
        query, headers = dict(query or {}), dict(headers or {})
        if isinstance(body, bytes):
            payload_hash, length = hashlib.sha256(body).hexdigest(), len(body)
        else:
            payload_hash, start = UNSIGNED, body.tell()
        for attempt in range(ATTEMPTS):
            base, host, path = self._where(bucket, key)
            sent = dict(headers)
            if method in ("PUT", "POST"):
                sent["content-length"] = str(length)
                # else urllib sends a form content type, which some servers then parse away
                sent.setdefault("content-type", sent.pop("Content-Type", "application/octet-stream"))
            signed = signature_headers(method, host, path, query, sent, payload_hash, self.credentials.get(),
                                       self.regions.get(bucket, self.region), datetime.datetime.now(datetime.timezone.utc))
            url = base + path + ("?" + "&".join(f"{quote(k)}={quote(v)}" for k, v in sorted(query.items())) if query else "")
            if not isinstance(body, bytes):
                body.seek(start)
            data = body if method in ("PUT", "POST") else None
            self.requests += 1
            try:
                return self.opener.open(urllib.request.Request(url, data=data, method=method, headers=signed), timeout=60)
            except urllib.error.HTTPError as error:
                failure = _error(error)
                moved = error.headers.get("x-amz-bucket-region")
                if moved and moved != self.regions.get(bucket, self.region) and not self.endpoint:
                    self.regions[bucket] = moved
                    continue
                if error.code not in RETRIED_STATUSES and failure.code not in ("SlowDown", "RequestTimeout"):
                    raise failure from None
            except OSError as error:
                failure = S3Error(0, type(error).__name__, str(error))
            if attempt == ATTEMPTS - 1:
                raise failure
            time.sleep(min(20.0, 0.5 * 2 ** attempt) * random.uniform(0.5, 1.0))
        raise S3Error(0, "Redirected", f"bucket {bucket} kept moving between regions")

    def get(self, bucket: str, key: str) -> Tuple[bytes, str]:
        """An object's body and ETag."""
        with self.request("GET", bucket, key) as response:
            return response.read(), response.headers.get("ETag", "")

    def download(self, bucket: str, key: str, target: str) -> None:
        with self.request("GET", bucket, key) as response, open(target, "wb") as sink:
            shutil.copyfileobj(response, sink, 1 << 20)

    def put(self, bucket: str, key: str, body: Body, *, length: Optional[int] = None,
            headers: Optional[Dict[str, str]] = None) -> str:
        """Write an object; returns its new ETag (for a later If-Match)."""
        with self.request("PUT", bucket, key, body=body, length=length, headers=headers) as response:
            return response.headers.get("ETag", "")

    def upload(self, bucket: str, key: str, path: str) -> None:
        with open(path, "rb") as source:
            self.put(bucket, key, source, length=os.fstat(source.fileno()).st_size)


def _error(error: urllib.error.HTTPError) -> S3Error:
    try:
        root = ElementTree.fromstring(error.read() or b"<Error/>")
        return S3Error(error.code, root.findtext("Code") or str(error.code), root.findtext("Message") or "")
    except (OSError, ElementTree.ParseError):
        return S3Error(error.code, str(error.code), error.reason)


def is_final(status: Any) -> bool:
    """Whether a status file's ``status`` is a final state, however a remote script spelled it."""
    return " ".join(str(status or "").replace("_", " ").upper().split()) in FINAL_SPELLINGS


def utcnow() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def status_document(status: str, reason: str, input_key: str, command: str, std: list,
                    job_start: Optional[str] = None, job_finish: Optional[str] = None) -> Dict[str, Any]:
    """The body of a dataset status file (CONTRACT section 5)."""
    return {"status": status, "reason": reason, "input": input_key, "instance": instance_id(), "command": command, "job_start": job_start, "job_finish": job_finish,
            "cpu_usage": None, "memory_usage": None, "std": {str(i): line for i, line in enumerate(std)}}


def superseded(document: Any, instance: Optional[str]) -> bool:
    """Whether a status document says a later attempt of the dataset replaced ``instance``: it lists
    the dataset's attempts (a relaunch writes them) and this instance is one of them, not the last."""
    attempts = document.get("attempts") if isinstance(document, dict) else None
    if not instance or not isinstance(attempts, list) or not attempts:
        return False
    named = [a.get("instance") if isinstance(a, dict) else None for a in attempts]
    return instance in named[:-1] and named[-1] != instance


def finalize(client: Client, bucket: str, key: str, code: int, log: str, input_key: str, reason: str = "") -> bool:
    """After the command: give the dataset its final state from the exit code unless it has one or a
    relaunch has replaced this instance (an interrupted Spot instance powered off after its dataset
    was started again elsewhere). Returns whether it wrote (conditional on what it read, so a late
    report of the analysis wins)."""
    try:
        body, etag = client.get(bucket, key)
        current = json.loads(body.decode("utf-8", "replace"))
        condition = {"If-Match": etag}
    except S3Error as error:
        if error.code not in ("NoSuchKey", "AccessDenied"):  # without s3:ListBucket a missing key reads as denied
            raise
        current, condition = {}, {"If-None-Match": "*"}
    except ValueError:
        current, condition = {}, {}
    if isinstance(current, dict) and (is_final(current.get("status")) or superseded(current, instance_id())):
        return False
    try:
        with open(log, errors="replace") as source:
            tail = [line.rstrip("\n") for line in source.readlines()[-TAIL_LINES:]]
    except OSError:
        tail = []
    last = next((line.strip() for line in reversed(tail) if line.strip()), "")
    if not reason:
        reason = "" if code == 0 else f"The command exited with code {code}. Last output: {last or '(none)'}"
    started = current.get("job_start") if isinstance(current, dict) else None
    document = status_document(SUCCESS if code == 0 and not reason else FAILED, reason, input_key,
                               last or "finished", tail, started, utcnow())
    try:
        client.put(bucket, key, json.dumps(document, indent=2).encode(),
                   headers=dict(condition, **{"Content-Type": "application/json"}))
    except S3Error as error:
        if error.code not in ("PreconditionFailed", "ConditionalRequestConflict"):
            raise
        return False  # someone reported in between: theirs stands
    return True


def main(argv: list) -> int:
    try:
        if len(argv) == 4 and argv[0] == "get":
            Client().download(argv[1], argv[2], argv[3])
        elif len(argv) == 4 and argv[0] == "put":
            Client().upload(argv[1], argv[2], argv[3])
        elif len(argv) in (6, 7) and argv[0] == "finalize":
            finalize(Client(), argv[1], argv[2], int(argv[3]), argv[4], argv[5], argv[6] if len(argv) == 7 else "")
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except S3Error as error:
        print(f"NeuroCAAS: {argv[0]} s3://{argv[1]}/{argv[2]} failed: {error}", file=sys.stderr)
        return 4 if error.code == "NoSuchKey" else 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
