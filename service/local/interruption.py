"""Spot interruptions on the local stack: EC2's two-minute warning, played against a local instance.

The warning reaches the same Chalice handler as on AWS, the instance's metadata announces it (a
file the remote side polls), and two scaled minutes later the instance is terminated. Another
process (`neurocaas local interrupt`) asks for one by leaving a request file in the state folder.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from service.local.layout import INTERRUPTION_FILE

if TYPE_CHECKING:
    from service.local.stack import LocalStack

REQUESTS = "interruptions"  # in the state directory: one empty file per instance id to interrupt


def interrupt(stack: LocalStack, instance_id: str) -> threading.Timer:
    """Play EC2 reclaiming a Spot instance; returns the timer of the termination."""
    import app as chalice_app
    from service.local.stack import REGION

    assert stack.runner is not None, "the stack is not running"
    now = datetime.now(timezone.utc)
    reclaim = 2 * stack.options.minute_seconds
    # The warning reaches the handler first: EC2 posts the event and the metadata notice together,
    # and an analysis that stops as soon as it sees the notice must find its relaunch recorded.
    chalice_app.on_spot_interruption({
        "version": "0", "id": f"local-{instance_id}-interruption", "source": "aws.ec2",
        "detail-type": "EC2 Spot Instance Interruption Warning", "account": "123456789012",
        "time": now.isoformat(), "region": REGION, "resources": [],
        "detail": {"instance-id": instance_id, "instance-action": "terminate"}}, None)
    folder = stack.runner.root / instance_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / INTERRUPTION_FILE).write_text(json.dumps(
        {"action": "terminate", "time": (now + timedelta(seconds=reclaim)).isoformat()}))
    timer = threading.Timer(reclaim, lambda: stack.client("ec2").terminate_instances(InstanceIds=[instance_id]))
    timer.daemon = True
    timer.start()
    return timer


def request(state_dir: Path, instance_id: str) -> Path:
    """Ask the stack running from ``state_dir`` (another process) to interrupt an instance."""
    folder = state_dir / REQUESTS
    folder.mkdir(parents=True, exist_ok=True)
    requested = folder / instance_id
    requested.touch()
    return requested


def take_requests(stack: LocalStack) -> None:
    """Carry out the interruptions other processes asked for (called by the stack's reaper loop)."""
    for requested in sorted((stack.state_dir / REQUESTS).glob("i-*")):
        requested.unlink(missing_ok=True)
        try:
            interrupt(stack, requested.name)
        except Exception as error:
            stack.options.log(f"interruption of {requested.name}: {error}")
