"""The NeuroCAAS job manager, deployed to AWS Lambda with Chalice (one stage per analysis).

Handlers stay thin: the work is in ``chalicelib``. Settings are read from the environment when an
event arrives; only the bucket the S3 trigger is attached to is needed at import, because Chalice
wires the notification from the decorator (``neurocaas deploy`` sets BUCKET_NAME for that).
"""

from __future__ import annotations

import os

from chalice import Chalice, Rate

from chalicelib import handlers

app = Chalice(app_name="neurocaas")
BUCKET = os.environ.get("BUCKET_NAME", "neurocaas-unconfigured")
EC2_STATE_CHANGE = {"source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"]}
SPOT_INTERRUPTION = {"source": ["aws.ec2"], "detail-type": ["EC2 Spot Instance Interruption Warning"]}


@app.on_s3_event(bucket=BUCKET, events=["s3:ObjectCreated:*"], suffix="submit.json")
def on_submit(event):  # type: ignore[no-untyped-def]
    """A submit.json was written: start its job (or record why not)."""
    handlers.handle_submit_event(event.bucket, event.key)


@app.on_s3_event(bucket=BUCKET, events=["s3:ObjectCreated:*"], suffix="cancel.json")
def on_cancel(event):  # type: ignore[no-untyped-def]
    """A cancel.json naming a job was written: stop it."""
    handlers.handle_cancel_event(event.bucket, event.key)


@app.on_s3_event(bucket=BUCKET, events=["s3:ObjectCreated:*"], suffix="retry.json")
def on_retry(event):  # type: ignore[no-untyped-def]
    """A retry.json naming an ended job was written: run chosen datasets again."""
    handlers.handle_retry_event(event.bucket, event.key)


@app.on_cw_event(EC2_STATE_CHANGE)
def on_instance_state(event):  # type: ignore[no-untyped-def]
    """An instance changed state (one rule per analysis; the handler keeps only its own by tag)."""
    handlers.handle_instance_state(event.detail["instance-id"], event.detail["state"], event.time)


@app.on_cw_event(SPOT_INTERRUPTION)
def on_spot_interruption(event):  # type: ignore[no-untyped-def]
    """EC2 will reclaim a Spot instance in two minutes: relaunch its dataset now."""
    handlers.handle_spot_interruption(event.detail["instance-id"], event.time)


@app.schedule(Rate(5, unit=Rate.MINUTES))
def reaper(event):  # type: ignore[no-untyped-def]
    """Resume, finish and reconcile open jobs; end overdue instances; replay failed events."""
    handlers.handle_reaper()
