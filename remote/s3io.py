"""S3 from the instance: transfers with progress-free multipart defaults, and safe rewrites."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

RETRIES = Config(retries={"mode": "standard", "max_attempts": 8}, connect_timeout=5, read_timeout=60)
TRANSFER = TransferConfig(multipart_threshold=64 * 1024 * 1024, max_concurrency=8)


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
