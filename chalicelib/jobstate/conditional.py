"""Read-modify-write of an object others may rewrite at the same time, with conditional writes."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from chalicelib.awsclient import AWSClient, ObjectMissing, PreconditionFailed
from chalicelib.paths import ObjectRef

REWRITE_ATTEMPTS = 12


def rewrite(aws: AWSClient, bucket: str, key: str, change: Callable[[bytes | None], bytes | None],
            content_type: str = "text/plain") -> bool:
    """``change`` gets the current body (None if absent) and returns the new one (None: leave it).
    A lost race (412) is retried on the fresh body. Returns whether this call wrote."""
    for attempt in range(REWRITE_ATTEMPTS):
        try:
            stored = aws.get_object(ObjectRef(bucket, key))
            body, etag = stored.body, stored.etag
        except ObjectMissing:
            body, etag = None, None
        updated = change(body)
        if updated is None:
            return False
        try:
            aws.put(bucket, key, updated, content_type, if_none_match=etag is None, if_match=etag)
            return True
        except PreconditionFailed:
            time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
    return False
