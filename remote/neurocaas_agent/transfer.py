"""Moving files between the instance and S3: folders, and files of any size (multipart above 4 GiB)."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import List

from neurocaas_agent.core import Client

NAMESPACE = "{http://s3.amazonaws.com/doc/2006-03-01/}"
SINGLE_PUT_LIMIT = 4 * 1024 ** 3  # S3 takes at most 5 GiB in one PUT
MIN_PART, MAX_PARTS = 64 * 1024 ** 2, 10000


def _find(element: ElementTree.Element, name: str) -> str:
    return element.findtext(NAMESPACE + name) or element.findtext(name) or ""


def list_keys(client: Client, bucket: str, prefix: str) -> List[str]:
    """Every key under ``prefix`` (ListObjectsV2, all pages)."""
    keys: List[str] = []
    token = ""
    while True:
        query = {"list-type": "2", "prefix": prefix}
        if token:
            query["continuation-token"] = token
        with client.request("GET", bucket, query=query) as response:
            root = ElementTree.fromstring(response.read())
        keys += [_find(item, "Key") for item in root.iter(NAMESPACE + "Contents")]
        keys += [_find(item, "Key") for item in root.iter("Contents")]
        token = _find(root, "NextContinuationToken")
        if _find(root, "IsTruncated") != "true" or not token:
            return keys


def download(client: Client, bucket: str, key: str, target: Path) -> List[Path]:
    """Fetch one object, or every object under a folder key; returns the local files."""
    if not key.endswith("/"):
        target.parent.mkdir(parents=True, exist_ok=True)
        client.download(bucket, key, str(target))
        return [target]
    files = []
    for found in list_keys(client, bucket, key):
        relative = found[len(key):]
        if not relative or relative.endswith("/"):
            continue
        local = target / relative
        local.parent.mkdir(parents=True, exist_ok=True)
        client.download(bucket, found, str(local))
        files.append(local)
    return files


def upload(client: Client, path: Path, bucket: str, key: str) -> None:
    """One file; multipart when it is too large for a single PUT."""
    size = path.stat().st_size
    if size <= SINGLE_PUT_LIMIT:
        client.upload(bucket, key, str(path))
        return
    part_size = max(MIN_PART, -(-size // MAX_PARTS))
    with client.request("POST", bucket, key, query={"uploads": ""}) as response:
        upload_id = _find(ElementTree.fromstring(response.read()), "UploadId")
    try:
        parts = []
        with path.open("rb") as source:
            number = 1
            while True:
                chunk = source.read(part_size)
                if not chunk:
                    break
                with client.request("PUT", bucket, key, body=chunk,
                                    query={"partNumber": str(number), "uploadId": upload_id}) as response:
                    parts.append(f"<Part><PartNumber>{number}</PartNumber><ETag>{response.headers['ETag']}</ETag></Part>")
                number += 1
        document = f"<CompleteMultipartUpload>{''.join(parts)}</CompleteMultipartUpload>".encode()
        client.request("POST", bucket, key, query={"uploadId": upload_id}, body=document).close()
    except BaseException:
        client.request("DELETE", bucket, key, query={"uploadId": upload_id}).close()
        raise


def upload_tree(client: Client, folder: Path, bucket: str, prefix: str) -> int:
    """Upload every file under ``folder`` to ``prefix``; returns how many."""
    count = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        upload(client, path, bucket, f"{prefix}/{path.relative_to(folder).as_posix()}")
        count += 1
    return count
