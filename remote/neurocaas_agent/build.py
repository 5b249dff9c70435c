"""The agent as one file: a zip application, byte-for-byte the same from the same sources.

The deploy uploads it to the analysis bucket; the boot script checks its SHA-256 against the one
the job manager expects (``chalicelib/agent.py``) before running it.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

PACKAGE = Path(__file__).parent
EPOCH = (1980, 1, 1, 0, 0, 0)
MAIN = b"import sys\nfrom neurocaas_agent.cli import main\nsys.exit(main(sys.argv[1:]))\n"
SHEBANG = b"#!/usr/bin/env python3\n"


def sources() -> "list[Path]":
    """The files the archive holds, in a fixed order."""
    return sorted(p for p in PACKAGE.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                  and p.suffix in (".py", ".sh"))


def archive() -> bytes:
    """The zip application's bytes: fixed timestamps, order and modes, no compression (so no
    dependence on the zlib at hand)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zipped:
        for path in sources():
            info = zipfile.ZipInfo(f"neurocaas_agent/{path.relative_to(PACKAGE).as_posix()}", EPOCH)
            info.external_attr = (0o755 if path.suffix == ".sh" else 0o644) << 16
            zipped.writestr(info, path.read_bytes())
        info = zipfile.ZipInfo("__main__.py", EPOCH)
        info.external_attr = 0o644 << 16
        zipped.writestr(info, MAIN)
    return SHEBANG + buffer.getvalue()


def current() -> bytes:
    """The running agent's own file when it runs as one, else the archive built from its sources."""
    archive_file = PACKAGE.parent
    if archive_file.is_file():
        return archive_file.read_bytes()
    return archive()


def sha256() -> str:
    return hashlib.sha256(archive()).hexdigest()
