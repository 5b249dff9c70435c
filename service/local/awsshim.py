"""A small ``aws s3 cp|sync|ls|rm`` for local instances, so NeuroCAAS scripts that call the AWS CLI
run unchanged on the local stack (the runner puts it on PATH as ``aws``; it honours AWS_ENDPOINT_URL).

Copies go between local files and S3 in either direction and between two S3 locations (NeuroCAAS's
``run_main.sh`` copies the config into the results with ``aws s3 cp s3://... s3://...``); ``-`` is
standard input or output. ``--exclude``/``--include`` filter as the AWS CLI does (later filters win).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import boto3

USAGE = ("usage (local stand-in): aws s3 cp|sync SRC DST [--recursive] [--delete] [--exclude P] [--include P] "
         "[--quiet] | aws s3 ls s3://BUCKET[/PREFIX] | aws s3 rm s3://BUCKET/KEY [--recursive]")
# Options that take a value; every other --option is a flag (and those this stand-in ignores are harmless).
VALUED = {"--exclude", "--include", "--region", "--profile", "--endpoint-url", "--storage-class", "--acl",
          "--content-type", "--sse", "--cache-control", "--expected-size", "--output", "--page-size"}


@dataclass(frozen=True)
class Place:
    """One side of a transfer: an S3 bucket and key, or a local path (``-`` for stdin/stdout)."""

    text: str

    @property
    def remote(self) -> bool:
        return self.text.startswith("s3://")

    @property
    def bucket(self) -> str:
        return self.text[len("s3://"):].partition("/")[0]

    @property
    def key(self) -> str:
        return self.text[len("s3://"):].partition("/")[2]

    def child(self, relative: str) -> "Place":
        if self.remote:
            base = self.key.rstrip("/")
            return Place(f"s3://{self.bucket}/{base + '/' if base else ''}{relative}")
        return Place(str(Path(self.text) / relative))


@dataclass
class Options:
    words: list[str]
    flags: set[str]
    filters: list[tuple[str, str]]


def parse(argv: list[str]) -> Options:
    """The words, flags and --exclude/--include filters of a command line."""
    words: list[str] = []
    flags: set[str] = set()
    filters: list[tuple[str, str]] = []
    items = iter(argv)
    for item in items:
        name, _, inline = item.partition("=")
        if item.startswith("--") and name in VALUED:
            value = inline or next(items, "")
            if name in ("--exclude", "--include"):
                filters.append((name[2:], value))
        elif item.startswith("--"):
            flags.add(name)
        else:
            words.append(item)
    return Options(words, flags, filters)


def selected(relative: str, filters: list[tuple[str, str]]) -> bool:
    """Whether a path passes the filters: included by default, the last matching filter wins."""
    chosen = True
    for kind, pattern in filters:
        if fnmatchcase(relative, pattern):
            chosen = kind == "include"
    return chosen


def listing(s3: Any, place: Place) -> dict[str, int]:
    """Files under a folder-like place, by path relative to it, with their sizes."""
    if not place.remote:
        root = Path(place.text)
        return {p.relative_to(root).as_posix(): p.stat().st_size for p in root.rglob("*") if p.is_file()} \
            if root.is_dir() else {}
    prefix = place.key.rstrip("/") + "/" if place.key.strip("/") else ""
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=place.bucket, Prefix=prefix):
        for item in page.get("Contents", ()):
            if not item["Key"].endswith("/"):
                found[item["Key"][len(prefix):]] = int(item["Size"])
    return found


def transfer(s3: Any, source: Place, target: Place) -> None:
    """Copy one file between any two places."""
    if source.remote and target.remote:
        s3.copy({"Bucket": source.bucket, "Key": source.key}, target.bucket, target.key)
    elif source.remote and target.text == "-":
        shutil.copyfileobj(s3.get_object(Bucket=source.bucket, Key=source.key)["Body"], sys.stdout.buffer)
    elif source.remote:
        Path(target.text).parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(source.bucket, source.key, target.text)
    elif target.remote and source.text == "-":
        s3.upload_fileobj(sys.stdin.buffer, target.bucket, target.key)
    elif target.remote:
        s3.upload_file(source.text, target.bucket, target.key)
    else:
        Path(target.text).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source.text, target.text)


def single_target(source: Place, target: Place) -> Place:
    """Where one file goes: into the target when it names a folder, as the AWS CLI does."""
    name = source.key.rsplit("/", 1)[-1] if source.remote else Path(source.text).name
    if target.remote:
        return target.child(name) if not target.key or target.key.endswith("/") else target
    if target.text != "-" and (target.text.endswith("/") or Path(target.text).is_dir()):
        return Place(str(Path(target.text) / name))
    return target


def pairs(s3: Any, source: Place, target: Place, options: Options, sync: bool) -> Iterator[tuple[Place, Place]]:
    """(source, target) of each file to copy; ``sync`` skips files already there with the same size."""
    if not sync and "--recursive" not in options.flags:
        yield source, single_target(source, target)
        return
    existing = listing(s3, target) if sync else {}
    for relative, size in sorted(listing(s3, source).items()):
        if selected(relative, options.filters) and not (sync and existing.get(relative) == size):
            yield source.child(relative), target.child(relative)


def remove(s3: Any, place: Place) -> None:
    if place.remote:
        s3.delete_object(Bucket=place.bucket, Key=place.key)
    else:
        Path(place.text).unlink(missing_ok=True)


def main(argv: list[str]) -> int:
    options = parse(argv)
    words, quiet = options.words, bool(options.flags & {"--quiet", "--only-show-errors"})
    s3 = boto3.client("s3")
    if words[:2] in (["s3", "cp"], ["s3", "sync"]) and len(words) == 4:
        source, target, sync = Place(words[2]), Place(words[3]), words[1] == "sync"
        count = 0
        for one, other in pairs(s3, source, target, options, sync):
            transfer(s3, one, other)
            count += 1
            if not quiet and other.text != "-":
                print(f"{'copy' if one.remote and other.remote else 'upload' if other.remote else 'download'}: "
                      f"{one.text} to {other.text}")
        if sync and "--delete" in options.flags:
            for relative in sorted(set(listing(s3, target)) - set(listing(s3, source))):
                if selected(relative, options.filters):
                    remove(s3, target.child(relative))
        return 0
    if words[:2] == ["s3", "ls"] and len(words) == 3:
        place = Place(words[2])
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=place.bucket, Prefix=place.key):
            for item in page.get("Contents", ()):
                print(f"{item['LastModified']:%Y-%m-%d %H:%M:%S} {item['Size']:>10} {item['Key']}")
        return 0
    if words[:2] == ["s3", "rm"] and len(words) == 3:
        place = Place(words[2])
        if "--recursive" not in options.flags:
            remove(s3, place)
            return 0
        for relative in listing(s3, place):
            if selected(relative, options.filters):
                remove(s3, place.child(relative))
        return 0
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Exception as error:  # as the AWS CLI does: one line on stderr, a non-zero exit
        print(f"aws (local): {error}", file=sys.stderr)
        sys.exit(1)
