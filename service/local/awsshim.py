"""A small ``aws s3 cp|ls`` for local instances, so NeuroCAAS scripts that call the AWS CLI run
unchanged on the local stack (the runner puts it on PATH as ``aws``; it honours AWS_ENDPOINT_URL)."""

from __future__ import annotations

import sys
from pathlib import Path

import boto3

USAGE = "usage: aws s3 cp SRC DST [--recursive] [--quiet] | aws s3 ls s3://BUCKET/PREFIX"


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


def copy(s3, source: str, target: str, recursive: bool) -> int:  # type: ignore[no-untyped-def]
    if source.startswith("s3://") and not target.startswith("s3://"):
        bucket, key = _split(source)
        if not recursive:
            destination = Path(target)
            if target.endswith("/") or destination.is_dir():
                destination = destination / Path(key).name
            destination.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, key, str(destination))
            return 1
        count = 0
        prefix = key.rstrip("/") + "/" if key else ""
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", ()):
                if item["Key"].endswith("/"):
                    continue
                local = Path(target) / item["Key"][len(prefix):]
                local.parent.mkdir(parents=True, exist_ok=True)
                s3.download_file(bucket, item["Key"], str(local))
                count += 1
        return count
    if target.startswith("s3://") and not source.startswith("s3://"):
        bucket, key = _split(target)
        path = Path(source)
        if not recursive:
            if key.endswith("/") or not key:
                key = key + path.name
            s3.upload_file(str(path), bucket, key)
            return 1
        files = [p for p in path.rglob("*") if p.is_file()]
        for file in files:
            s3.upload_file(str(file), bucket, f"{key.rstrip('/')}/{file.relative_to(path).as_posix()}".lstrip("/"))
        return len(files)
    raise SystemExit("aws (local): copy between S3 locations is not supported here")


def main(argv: list[str]) -> int:
    flags = {a for a in argv if a.startswith("--")}
    words = [a for a in argv if not a.startswith("--")]
    s3 = boto3.client("s3")
    if words[:2] == ["s3", "cp"] and len(words) == 4:
        count = copy(s3, words[2], words[3], "--recursive" in flags)
        if "--quiet" not in flags:
            print(f"copied {count} file(s) {words[2]} -> {words[3]}")
        return 0
    if words[:2] == ["s3", "ls"] and len(words) == 3:
        bucket, prefix = _split(words[2])
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", ()):
                print(f"{item['LastModified']:%Y-%m-%d %H:%M:%S} {item['Size']:>10} {item['Key']}")
        return 0
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
