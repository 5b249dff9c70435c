"""Writing a saved local image back into the blueprint's image folder, so that the repository alone
reproduces it (never a path into one developer's private state).

The image folder becomes what the saved workspace holds, minus what the local runner installs on
every instance (``neurocaas_remote/``, unless the image ships its own, and never the runner's
``neurocaas_remote/python``, which names this machine's interpreter) and Python caches.
"""

from __future__ import annotations

import filecmp
import os
import shutil
from pathlib import Path, PurePosixPath

REMOTE = "neurocaas_remote"
NEVER = {PurePosixPath(REMOTE, "python")}


def _files(root: Path, keep_remote: bool) -> set[PurePosixPath]:
    found = set()
    for folder, directories, names in os.walk(root, followlinks=False):
        directories[:] = [d for d in directories if d != "__pycache__" and not d.startswith(".git")]
        for name in names:
            relative = PurePosixPath(Path(folder, name).relative_to(root).as_posix())
            if relative.suffix == ".pyc" or relative in NEVER:
                continue
            if relative.parts[0] == REMOTE and not keep_remote:
                continue
            found.add(relative)
    return found


def write_back(saved: Path, image: Path) -> list[Path]:
    """Mirror ``saved`` (the saved workspace) into ``image``; returns the paths that changed."""
    keep_remote = (image / REMOTE).is_dir()
    wanted, existing = _files(saved, keep_remote), _files(image, keep_remote) if image.is_dir() else set()
    changed = []
    for relative in sorted(existing - wanted):
        (image / relative).unlink()
        changed.append(image / relative)
    for relative in sorted(wanted):
        source, target = saved / relative, image / relative
        if source.is_symlink():
            if target.is_symlink() and os.readlink(target) == os.readlink(source):
                continue
            target.unlink(missing_ok=True)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(os.readlink(source))
        elif target.is_file() and not target.is_symlink() and filecmp.cmp(source, target, shallow=False):
            continue
        else:
            target.unlink(missing_ok=True)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        changed.append(target)
    return changed
