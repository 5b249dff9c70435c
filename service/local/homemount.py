"""The image at ``/home/ubuntu``, as an EC2 instance sees it, for the scripts the image holds.

NeuroCAAS images hard-code absolute paths (``/home/ubuntu/anaconda3/bin``, ``source
/home/ubuntu/.dlamirc``). Where the platform allows it, each local instance runs in a private
mount namespace (``unshare``; a user namespace too when not root) in which its home folder is
mounted at ``/home/ubuntu``; nothing changes outside the instance. Where it does not, the runner
falls back to rewriting ``/home/ubuntu`` in the boot script only, and says so once in the log.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

HOME_ON_IMAGE = "/home/ubuntu"
# Runs inside the new namespace: $1 the instance's home, $2 an empty staging folder outside /home.
# Without /home/ubuntu, /home becomes a tmpfs holding /home/ubuntu and, bound back, every entry it
# had (an instance folder may itself live under /home).
MOUNT_SCRIPT = r"""
set -e
home="$1"; stage="$2"; shift 2
mount --make-rprivate /
if [ ! -d /home/ubuntu ]; then
  mkdir -p /home
  mount --rbind /home "$stage"
  mount -t tmpfs -o mode=755 neurocaas-home /home
  for entry in "$stage"/* "$stage"/.[!.]*; do
    [ -e "$entry" ] || continue
    name=${entry##*/}
    if [ -d "$entry" ]; then mkdir "/home/$name"; else : > "/home/$name"; fi
    mount --rbind "$entry" "/home/$name"
  done
  mkdir -p /home/ubuntu
fi
mount --bind "$home" /home/ubuntu
cd /home/ubuntu
exec "$@"
"""


class HomeMount:
    """How this machine shows an instance's home at /home/ubuntu (or why it cannot)."""

    def __init__(self, prefix: list[str] | None, reason: str = "") -> None:
        self.prefix, self.reason = prefix, reason

    @property
    def private(self) -> bool:
        return self.prefix is not None

    @classmethod
    def probe(cls, log: Callable[[str], None] = print) -> "HomeMount":
        """Try a private mount namespace once; log the fallback when there is none."""
        unshare = shutil.which("unshare")
        if unshare is None or not Path("/proc/self/ns/mnt").exists():
            mount = cls(None, "unshare is not available on this platform")
        else:
            user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
            mount = cls([unshare, *user, "--mount", "--", "sh", "-c", MOUNT_SCRIPT, "neurocaas-home"])
            with tempfile.TemporaryDirectory() as home:
                command = mount.command(Path(home), ["sh", "-c", f'test "$(pwd)" = {HOME_ON_IMAGE}'])
                try:
                    done = subprocess.run(command[0], capture_output=True, text=True, timeout=10)
                    failed = done.returncode != 0
                    detail = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
                except (OSError, subprocess.TimeoutExpired) as error:
                    failed, detail = True, str(error)
                finally:
                    command[1]()
            if failed:
                mount = cls(None, f"a private mount namespace is not allowed here ({detail})")
        if not mount.private:
            log(f"local instances: {mount.reason}; {HOME_ON_IMAGE} is mapped in boot scripts only, so an "
                f"image's own scripts that use absolute {HOME_ON_IMAGE} paths will not find them")
        return mount

    def command(self, home: Path, argv: list[str]) -> tuple[list[str], Callable[[], None]]:
        """The command that runs ``argv`` with ``home`` at /home/ubuntu, and a cleanup for afterwards."""
        if self.prefix is None:
            return argv, lambda: None
        stage = Path(tempfile.mkdtemp(prefix="neurocaas-home-"))
        return [*self.prefix, str(home), str(stage), *argv], lambda: _remove_empty(stage)

    def seen_home(self, home: Path) -> Path:
        """The home's path as the instance's processes see it."""
        return Path(HOME_ON_IMAGE) if self.private else home

    def user_data(self, text: str, home: Path) -> str:
        """The boot script to run: as written when the image is at /home/ubuntu, else rewritten."""
        return text if self.private else text.replace(HOME_ON_IMAGE, str(home))


def _remove_empty(stage: Path) -> None:
    try:
        stage.rmdir()  # only a mount point inside the (gone) namespace: empty outside it
    except OSError:
        pass
