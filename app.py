"""The NeuroCAAS job manager, deployed to AWS Lambda with Chalice (one stage per analysis).

Handlers stay thin: the work is in ``chalicelib``. Settings are read from the environment when an
event arrives; only the bucket the S3 trigger is attached to is needed at import, because Chalice
wires the notification from the decorator (``neurocaas deploy`` sets BUCKET_NAME for that).
"""

from __future__ import annotations

import os

from chalice import Chalice

from chalicelib.handlers import handle_submit_event

app = Chalice(app_name="neurocaas")


@app.on_s3_event(bucket=os.environ.get("BUCKET_NAME", "neurocaas-unconfigured"),
                 events=["s3:ObjectCreated:*"], suffix="submit.json")
def on_submit(event):  # type: ignore[no-untyped-def]
    """A submit.json was written: start its job (or record why not)."""
    handle_submit_event(event.bucket, event.key)
