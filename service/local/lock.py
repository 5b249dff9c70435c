"""One local stack per state folder: an exclusive lock held while it runs, naming its holder.

Two stacks on one folder would each save their own S3 contents over the other's when they stop;
the second is refused instead, with the process that holds the folder.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

LOCK_FILE = "stack.lock"


class StackBusy(Exception):
    """The state folder or the port is taken; the message says by what and what to do."""


class StateLock:
    """An advisory lock on a state folder (released by the OS if the holder dies)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_FILE
        self.handle: IO[str] | None = None

    def acquire(self) -> None:
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise StackBusy(f"The state folder {self.path.parent} is in use by {holder}. Stop that stack, "
                            "or give this one its own folder with --state-dir.") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} (since {datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC)")
        handle.flush()
        self.handle = handle

    def release(self) -> None:
        if self.handle is not None:
            self.handle.seek(0)
            self.handle.truncate()
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None


def check_port_free(port: int) -> None:
    """Refuse a port something already listens on (port 0 picks a free one)."""
    if port == 0:
        return
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind(("127.0.0.1", port))
    except OSError as error:
        reason = "something else is listening there" if error.errno == errno.EADDRINUSE else error.strerror
        raise StackBusy(f"Cannot listen on 127.0.0.1:{port}: {reason}. Choose another with --port "
                        "(--port 0 picks a free one).") from None
    finally:
        probe.close()
