"""Browser uploads into a group's folder, in parts, straight through to S3 multipart uploads.

The browser sends one part per request; the server holds at most one part per request in memory
and never the whole file. A dropped connection loses at most the part in flight: the browser asks
which parts S3 already has (ListParts) and sends only the rest.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from chalicelib import awslimits
from service.client import UserError

MIB = 1024 * 1024
PART_SIZE = 8 * MIB  # above S3's least part (awslimits.MULTIPART_MIN_PART)
MAX_PARTS = awslimits.MULTIPART_MAX_PARTS
MAX_PART_SIZE = awslimits.MULTIPART_MAX_PART
MAX_OBJECT_SIZE = 5 * 1024 * 1024 * MIB  # S3: an object is at most 5 TiB
MAX_KEY_BYTES = 1024           # S3: a key is at most 1,024 bytes of UTF-8
FOLDERS = ("inputs", "configs")


@dataclass(frozen=True)
class Upload:
    """Where a file goes, and how it is cut into parts."""

    key: str
    size: int
    part_size: int

    @property
    def parts(self) -> int:
        return max(1, math.ceil(self.size / self.part_size))


def part_size_for(size: int) -> int:
    """PART_SIZE, or larger (whole MiB) when the file would need more than MAX_PARTS parts."""
    if size < 0 or size > MAX_OBJECT_SIZE:
        raise UserError("A file must be at most 5 TiB to be uploaded to S3.")
    return max(PART_SIZE, math.ceil(size / MAX_PARTS / MIB) * MIB)


def file_key(group: str, folder: str, name: str) -> str:
    """``{group}/{folder}/{name}`` for a plain file name, or a sentence saying what is wrong with it."""
    if folder not in FOLDERS:
        raise UserError(f"Files go into inputs/ or configs/, not {folder}/.")
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise UserError(f"{name!r} is not a plain file name.")
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise UserError(f"The file name {name!r} holds control characters; rename the file.")
    key = f"{group}/{folder}/{name}"
    if len(key.encode()) > MAX_KEY_BYTES:
        raise UserError(f"The file name {name[:40]!r}… is too long for S3 (keys are at most {MAX_KEY_BYTES} bytes).")
    return key


def plan(group: str, folder: str, name: str, size: int) -> Upload:
    return Upload(file_key(group, folder, name), size, part_size_for(size))


def begin(s3: Any, bucket: str, upload: Upload, upload_id: str | None) -> tuple[str, list[int]]:
    """Resume ``upload_id`` (returning the parts S3 already has) or start a new multipart upload."""
    if upload_id:
        try:
            return upload_id, sorted(received(s3, bucket, upload.key, upload_id))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in ("NoSuchUpload", "404"):
                raise
    created = s3.create_multipart_upload(Bucket=bucket, Key=upload.key)
    return created["UploadId"], []


def received(s3: Any, bucket: str, key: str, upload_id: str) -> dict[int, dict[str, Any]]:
    """The parts S3 holds for this upload, by number (ListParts pages hold at most 1,000)."""
    parts: dict[int, dict[str, Any]] = {}
    marker = 0
    while True:
        page = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id, PartNumberMarker=marker)
        for part in page.get("Parts", ()):
            parts[part["PartNumber"]] = part
        if not page.get("IsTruncated"):
            return parts
        marker = int(page["NextPartNumberMarker"])


def put_part(s3: Any, bucket: str, upload: Upload, upload_id: str, number: int, body: bytes) -> str:
    if not 1 <= number <= upload.parts:
        raise UserError(f"Part {number} is outside this file's {upload.parts} parts.")
    last = number == upload.parts
    expected = upload.size - (upload.parts - 1) * upload.part_size if last else upload.part_size
    if len(body) != expected:
        raise UserError(f"Part {number} of {upload.key.rsplit('/', 1)[-1]} arrived incomplete "
                        f"({len(body)} of {expected} bytes); it will be sent again.")
    return str(s3.upload_part(Bucket=bucket, Key=upload.key, UploadId=upload_id, PartNumber=number,
                              Body=body)["ETag"])


def finish(s3: Any, bucket: str, upload: Upload, upload_id: str) -> None:
    """Complete the upload once S3 holds every part, checked against the file's size. Completing
    again (a retry after the answer was lost) succeeds if the object is there with that size."""
    try:
        parts = received(s3, bucket, upload.key, upload_id)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchUpload", "404") and _has(s3, bucket, upload):
            return
        raise
    missing = [n for n in range(1, upload.parts + 1) if n not in parts]
    if missing:
        raise UserError(f"{len(missing)} part(s) of {upload.key.rsplit('/', 1)[-1]} are missing; "
                        "drop the file again to resume.")
    total = sum(int(parts[n]["Size"]) for n in range(1, upload.parts + 1))
    if total != upload.size:
        raise UserError(f"S3 holds {total} bytes of {upload.key.rsplit('/', 1)[-1]}, not {upload.size}; "
                        "drop the file again.")
    s3.complete_multipart_upload(Bucket=bucket, Key=upload.key, UploadId=upload_id, MultipartUpload={
        "Parts": [{"PartNumber": n, "ETag": parts[n]["ETag"]} for n in range(1, upload.parts + 1)]})


def _has(s3: Any, bucket: str, upload: Upload) -> bool:
    try:
        return int(s3.head_object(Bucket=bucket, Key=upload.key)["ContentLength"]) == upload.size
    except ClientError:
        return False
