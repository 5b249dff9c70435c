"""Put the remote scripts on an image: ``{home}/neurocaas_remote/run_main.sh`` and its helpers."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

IMAGE_FILES = Path(__file__).parent / "image"


def install(home: Path, python: str | None = None) -> Path:
    """Install into ``home`` (the image's /home/ubuntu); ``python`` is the interpreter that has
    this package (default: the one running now)."""
    target = home / "neurocaas_remote"
    shutil.copytree(IMAGE_FILES, target, dirs_exist_ok=True)
    (target / "python").write_text((python or sys.executable) + "\n")
    for script in target.rglob("*.sh"):
        script.chmod(0o755)
    return target
