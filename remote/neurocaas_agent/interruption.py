"""Noticing a Spot interruption warning on the instance, and keeping the analysis's checkpoints.

The analysis gets two variables:

- ``NEUROCAAS_INTERRUPTION_NOTICE``: a file that appears (JSON: ``action``, ``time``) once EC2 has
  warned it will reclaim the instance, about two minutes ahead;
- ``NEUROCAAS_CHECKPOINT_DIR``: a folder for work in progress. Its new and changed files are copied
  to the job's results (``process_results/checkpoints/{dataset}/``) every few seconds and when the
  analysis ends, and a relaunch of the dataset finds it filled from there before it starts. A
  relaunch starts as soon as the warning arrives, so what the analysis saves in the warning's last
  seconds may come too late for it: save checkpoints as you go, not only on the warning.

The warning comes from instance metadata (``spot/instance-action``, polled every 5 seconds as AWS
recommends) or, on the local stack, from the file ``NEUROCAAS_INTERRUPTION_SOURCE`` names.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

from neurocaas_agent import transfer
from neurocaas_agent.core import Client, _imds

POLL_SECONDS = 5.0
Notice = Optional[Dict[str, Any]]


def metadata_notice() -> Notice:
    """The instance-action EC2 announced, or None (no warning yet: 404; or no metadata service)."""
    return _parse(_imds("meta-data/spot/instance-action"))


def file_notice(path: str) -> Callable[[], Notice]:
    """A notice source reading a file someone writes to warn (the local stack's runner)."""
    def read() -> Notice:
        try:
            return _parse(Path(path).read_text())
        except OSError:
            return None
    return read


def _parse(text: Optional[str]) -> Notice:
    try:
        document = json.loads(text) if text else None
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def attempts_report(instance: Optional[str]) -> Dict[str, Any]:
    """For a relaunched dataset, its attempts as the relaunch passed them (``NEUROCAAS_ATTEMPTS``),
    this instance's last, to keep in its status reports ({} on a first attempt)."""
    try:
        attempts = json.loads(os.environ.get("NEUROCAAS_ATTEMPTS") or "[]")
    except ValueError:
        return {}
    if not isinstance(attempts, list) or not attempts or not all(isinstance(a, dict) for a in attempts):
        return {}
    return {"attempts": attempts[:-1] + [dict(attempts[-1], instance=instance)]}


class InterruptionWatch:
    """Watches for the warning while the analysis runs and keeps its checkpoint folder in S3."""

    def __init__(self, client: Client, bucket: str, prefix: str, work: Path, *,
                 notice: Optional[Callable[[], Notice]] = None, poll: Optional[float] = None,
                 on_notice: Callable[[Dict[str, Any]], None] = lambda notice: None) -> None:
        source = os.environ.get("NEUROCAAS_INTERRUPTION_SOURCE")
        self.client, self.bucket, self.prefix, self.on_notice = client, bucket, prefix.rstrip("/"), on_notice
        self.poll = poll or float(os.environ.get("NEUROCAAS_INTERRUPTION_POLL") or POLL_SECONDS)
        self.notice = notice or (file_notice(source) if source else metadata_notice)
        self.checkpoints, self.notice_file = work / "checkpoint", work / "interruption-notice.json"
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        self.warned = False
        self._synced: Dict[Path, Tuple[int, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="interruption-watch", daemon=True)

    def environment(self) -> Dict[str, str]:
        return {"NEUROCAAS_INTERRUPTION_NOTICE": str(self.notice_file),
                "NEUROCAAS_CHECKPOINT_DIR": str(self.checkpoints)}

    def restore(self) -> int:
        """Fill the checkpoint folder from an earlier attempt's; returns how many files."""
        try:
            restored = transfer.download(self.client, self.bucket, self.prefix + "/", self.checkpoints)
        except Exception as error:  # the analysis then starts from scratch
            print(f"NeuroCAAS: could not restore checkpoints: {type(error).__name__}: {error}", flush=True)
            return 0
        self._synced = {p: _signature(p) for p in restored}
        return len(restored)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> int:
        """Stop watching and save the checkpoint folder once more; returns files uploaded."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        try:
            return self.sync()
        except Exception as error:
            print(f"NeuroCAAS: could not save checkpoints: {type(error).__name__}: {error}", flush=True)
            return 0

    def check(self) -> bool:
        """Look for the warning once; on the first, write the notice file for the analysis."""
        if self.warned:
            return True
        notice = self.notice()
        if notice is None:
            return False
        self.notice_file.write_text(json.dumps(notice))
        self.warned = True
        self.on_notice(notice)
        return True

    def sync(self) -> int:
        """Upload checkpoint files that are new or changed since the last upload."""
        uploaded = 0
        for path in sorted(p for p in self.checkpoints.rglob("*") if p.is_file()):
            signature = _signature(path)
            if self._synced.get(path) == signature:
                continue
            transfer.upload(self.client, path, self.bucket,
                            f"{self.prefix}/{path.relative_to(self.checkpoints).as_posix()}")
            self._synced[path] = signature
            uploaded += 1
        return uploaded

    def _run(self) -> None:
        while not self._stop.wait(self.poll):
            try:
                self.check()
                self.sync()
            except Exception as error:  # watching must never stop the analysis
                print(f"NeuroCAAS: interruption watch: {type(error).__name__}: {error}", flush=True)


def _signature(path: Path) -> Tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns
