"""Replaying S3 events whose asynchronous invocation failed every retry.

Lambda sends such an event to the function's on-failure destination (a record whose
``requestPayload`` is the event) or dead-letter queue (the event itself), here an SQS queue.
A replayed event goes through the same handler; a message is deleted only once handled.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote_plus

MAX_MESSAGES = 100  # per reaper pass; the rest wait for the next one


def s3_events(body: str) -> Iterator[tuple[str, str]]:
    """(bucket, key) of each S3 record in a queued message; keys arrive URL-encoded."""
    try:
        document = json.loads(body)
    except ValueError:
        return
    payload = document.get("requestPayload", document) if isinstance(document, dict) else {}
    for record in payload.get("Records", ()) if isinstance(payload, dict) else ():
        try:
            yield record["s3"]["bucket"]["name"], unquote_plus(record["s3"]["object"]["key"])
        except (KeyError, TypeError):
            continue


def replay_dead_letters(sqs: Any, queue_url: str, buckets: set[str], handle: Callable[[str, str], None],
                        logger: Any) -> int:
    """Handle the queue's events for ``buckets`` again; returns how many were handled."""
    handled = 0
    while handled < MAX_MESSAGES:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                       VisibilityTimeout=300).get("Messages", ())
        if not messages:
            break
        for message in messages:
            events = [e for e in s3_events(message.get("Body", "")) if e[0] in buckets]
            try:
                for bucket, key in events:
                    handle(bucket, key)
            except Exception:  # left on the queue: visible again after its timeout
                logger.exception("replay failed", extra={"message": message.get("MessageId")})
                continue
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            handled += len(events)
    return handled
