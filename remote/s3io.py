"""S3 from the instance: transfers with progress-free multipart defaults, and safe rewrites."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

RETRIES = Config(retries={"mode": "standard", "max_attempts": 8}, connect_timeout=5, read_timeout=60)
TRANSFER = TransferConfig(multipart_threshold=64 * 1024 * 1024, max_concurrency=8)
REWRITE_ATTEMPTS = 12


class RequestCounter:
    """Counts the S3 requests this instance sends (reported at the end, for cost and benchmarks)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, **kwargs: Any) -> None:
        self.count += 1


def client(counter: RequestCounter | None = None) -> Any:
    """An S3 client; honours AWS_ENDPOINT_URL (the local stack sets it)."""
    s3 = boto3.client("s3", config=RETRIES)
    if counter is not None:
        s3.meta.events.register("before-send.s3", counter)
    return s3


def download(s3: Any, bucket: str, key: str, target: Path) -> list[Path]:
    """Fetch one object, or every object under a folder key; returns the local files."""
    if not key.endswith("/"):
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, key, str(target), Config=TRANSFER)
        return [target]
    files = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
        for item in page.get("Contents", ()):
            relative = item["Key"][len(key):]
            if not relative or relative.endswith("/"):
                continue
            local = target / relative
            local.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, item["Key"], str(local), Config=TRANSFER)
            files.append(local)
    return files


def upload_tree(s3: Any, folder: Path, bucket: str, prefix: str) -> int:
    """Upload every file under ``folder`` to ``prefix``; returns how many."""
    count = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        s3.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder).as_posix()}", Config=TRANSFER)
        count += 1
    return count


def rewrite(s3: Any, bucket: str, key: str, change: Callable[[bytes | None], bytes | None]) -> bool:
    """Read-modify-write an object that other instances may rewrite at the same time.

    ``change`` gets the current body (None if absent) and returns the new one (None: leave it).
    A lost race (412) is retried with the fresh body, so no instance's update is lost.
    """
    for attempt in range(REWRITE_ATTEMPTS):
        try:
            current = s3.get_object(Bucket=bucket, Key=key)
            body, condition = current["Body"].read(), {"IfMatch": current["ETag"]}
        except ClientError as error:
            if error.response["Error"]["Code"] not in ("NoSuchKey", "404"):
                raise
            body, condition = None, {"IfNoneMatch": "*"}
        updated = change(body)
        if updated is None:
            return False
        try:
            s3.put_object(Bucket=bucket, Key=key, Body=updated, **condition)
            return True
        except ClientError as error:
            if error.response["Error"]["Code"] not in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise
            time.sleep(random.uniform(0.05, 0.2) * (attempt + 1))
    return False
