"""Putting the remote side on an image: the agent file and NeuroCAAS's script folder.

Nothing here overwrites what an image already holds: an image that ships NeuroCAAS's own
``neurocaas_remote/`` (or ``ncap_remote/``) keeps it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from neurocaas_agent import build

IMAGE_FILES = Path(__file__).parent / "image"
SCRIPTS = ("run_main.sh", "ncap_utils/workflow.sh")
SCRIPT_FOLDER = "neurocaas_remote"
NEUROCAAS_FOLDERS = (SCRIPT_FOLDER, "ncap_remote")
# Where the boot script looks for the agent, relative to the image's home (chalicelib/agent.py agrees).
AGENT_PATH = ".neurocaas/neurocaas_agent.pyz"


def install_scripts(home: Path) -> bool:
    """Add ``neurocaas_remote/run_main.sh`` and its helpers unless the image has NeuroCAAS's own;
    returns whether it added them."""
    if any((home / folder).exists() for folder in NEUROCAAS_FOLDERS):
        return False
    for name in SCRIPTS:
        target = home / SCRIPT_FOLDER / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(__loader__.get_data(str(IMAGE_FILES / name)))  # type: ignore[name-defined]  # works in a zip too
        target.chmod(0o755)
    return True


def bake(home: Path) -> Path:
    """Put this version of the agent (and the scripts, where absent) into an image's home, as the
    boot script would fetch it: what ``neurocaas develop`` does before an image is saved."""
    agent = home / AGENT_PATH
    agent.parent.mkdir(parents=True, exist_ok=True)
    body = build.current()
    if not agent.exists() or hashlib.sha256(agent.read_bytes()).digest() != hashlib.sha256(body).digest():
        temporary = agent.with_suffix(".part")
        temporary.write_bytes(body)
        temporary.replace(agent)
    install_scripts(home)
    return agent
