"""What a local instance is made of: its home laid out from an image, shims on PATH, its environment.

Shared by the instance runner (job instances) and devtools (development workspaces), so that a
boot script runs the same way in both.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from neurocaas_agent.install import bake

SUDO = r"""#!/bin/sh
while [ $# -gt 0 ]; do
  case "$1" in
    -u|-g|-C|-p|-r|-t|-U|-T|--user|--group|--close-from|--prompt|--role|--type|--other-user|--command-timeout)
      shift 2 ;;
    -D|--chdir) cd "$2" || exit 1; shift 2 ;;
    --chdir=*) cd "${1#--chdir=}" || exit 1; shift ;;
    --) shift; break ;;
    -*) shift ;;
    *=*) export "$1"; shift ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || exit 0
exec "$@"
"""
SHIMS = {
    # The runner enforces lifetimes itself, so a delayed shutdown is only acknowledged.
    "shutdown": '#!/bin/sh\ncase " $* " in *" now "*|*" -h now "*|*" -P now "*|*" -r now "*) '
                'touch "$NEUROCAAS_INSTANCE_DIR/poweroff"; kill -TERM 0;; esac\nexit 0\n',
    "poweroff": '#!/bin/sh\ntouch "$NEUROCAAS_INSTANCE_DIR/poweroff"\nkill -TERM 0\n',
    "halt": '#!/bin/sh\ntouch "$NEUROCAAS_INSTANCE_DIR/poweroff"\nkill -TERM 0\n',
    # The instance already runs as the image's user: options (-u ubuntu, -E, VAR=value) are honoured or dropped.
    "sudo": SUDO,
    # NeuroCAAS analysis scripts move data with the AWS CLI; a small stand-in serves them locally.
    "aws": f'#!/bin/sh\nexec "{sys.executable}" -m service.local.awsshim "$@"\n',
}
HOME_ON_IMAGE = "/home/ubuntu"


def lay_out(directory: Path, image: Path | None, *, develop: bool = False) -> Path:
    """Make ``directory/home`` hold what ``image`` holds and ``directory/bin`` the shims; returns
    the home. A job instance gets nothing more: its boot script installs the remote side from the
    analysis bucket when the image lacks it, as on EC2. A development workspace (``develop``) gets
    the remote side baked in, as ``neurocaas develop`` does before an image is saved; neither
    overwrites NeuroCAAS's own scripts in the image."""
    home = directory / "home"
    if image is not None and image.is_dir():
        shutil.copytree(image, home, symlinks=True, dirs_exist_ok=True)
    home.mkdir(parents=True, exist_ok=True)
    if develop:
        bake(home)
    bin_dir = directory / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in SHIMS.items():
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    return home


def localise(user_data: str, home: Path) -> str:
    """The boot script with the image's home replaced by the local one."""
    return user_data.replace(HOME_ON_IMAGE, str(home))


INTERRUPTION_FILE = "spot-instance-action.json"  # what the instance's metadata would announce


def boot_environment(base: dict[str, str], *, bin_dir: Path, home: Path, instance_id: str, instance_dir: Path,
                     launch_index: int, log_dir: Path, work_dir: Path) -> dict[str, str]:
    """The environment a boot script runs with on a local instance."""
    return {
        **base,
        "PATH": f"{bin_dir}:{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "NEUROCAAS_INSTANCE_ID": instance_id,
        "NEUROCAAS_INSTANCE_DIR": str(instance_dir),
        "NEUROCAAS_LAUNCH_INDEX": str(launch_index),
        "NEUROCAAS_LOG_DIR": str(log_dir),
        "NEUROCAAS_WORKDIR": str(work_dir),
        "NEUROCAAS_INTERRUPTION_SOURCE": str(instance_dir / INTERRUPTION_FILE),
    }


def last_lines(path: Path, lines: int = 3) -> str:
    """The last lines of a log, on one line, for a status reason."""
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(none)"
    return " | ".join(text[-lines:])[:500] or "(none)"
