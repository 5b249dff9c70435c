"""Keeping the local stack's S3 contents across restarts, in a state directory.

Objects are stored content-addressed (``blobs/{sha256}``) with a manifest of bucket -> key ->
blob, so any key (however long, whatever it holds) survives, and a snapshot only writes what
changed. The manifest is replaced atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

MANIFEST = "s3-manifest.json"


class S3Snapshot:
    """Save and restore every bucket and object of an S3 endpoint."""

    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir
        self.blobs = state_dir / "blobs"
        self.blobs.mkdir(parents=True, exist_ok=True)

    def save(self, s3: Any) -> int:
        """Snapshot every object; returns how many objects the snapshot holds."""
        manifest: dict[str, dict[str, str]] = {}
        for bucket in s3.list_buckets().get("Buckets", ()):
            name = bucket["Name"]
            manifest[name] = {}
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
                for item in page.get("Contents", ()):
                    body = s3.get_object(Bucket=name, Key=item["Key"])["Body"].read()
                    digest = hashlib.sha256(body).hexdigest()
                    blob = self.blobs / digest
                    if not blob.exists():
                        temporary = blob.with_suffix(".tmp")
                        temporary.write_bytes(body)
                        os.replace(temporary, blob)
                    manifest[name][item["Key"]] = digest
        path = self.root / MANIFEST
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(manifest))
        os.replace(temporary, path)
        self._collect(manifest)
        return sum(len(keys) for keys in manifest.values())

    def restore(self, s3: Any, region: str) -> int:
        """Recreate every saved bucket and object; returns how many objects."""
        path = self.root / MANIFEST
        if not path.exists():
            return 0
        manifest: dict[str, dict[str, str]] = json.loads(path.read_text())
        count = 0
        for bucket, keys in manifest.items():
            _create_bucket(s3, bucket, region)
            for key, digest in keys.items():
                s3.put_object(Bucket=bucket, Key=key, Body=(self.blobs / digest).read_bytes())
                count += 1
        return count

    def _collect(self, manifest: dict[str, dict[str, str]]) -> None:
        live = {digest for keys in manifest.values() for digest in keys.values()}
        for blob in self.blobs.iterdir():
            if blob.name not in live:
                blob.unlink(missing_ok=True)


def _create_bucket(s3: Any, bucket: str, region: str) -> None:
    try:
        if region == "us-east-1":
            s3.create_bucket(Bucket=bucket)
        else:
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
