"""``python3 neurocaas_agent.pyz COMMAND ...`` (or ``python3 -m neurocaas_agent``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List

from neurocaas_agent import __version__, build
from neurocaas_agent.install import bake, install_scripts
from neurocaas_agent.run import run

USAGE = """usage: neurocaas_agent run BUCKET DATASET RESULTPATH CONFIG [SCRIPT]   run one dataset
       neurocaas_agent install-scripts HOME   add neurocaas_remote/ unless the image has its own
       neurocaas_agent bake HOME              put the agent and scripts into an image's home
       neurocaas_agent build FILE             write the agent file (prints its SHA-256)
       neurocaas_agent version"""


def main(argv: List[str]) -> int:
    if argv and argv[0] == "run" and 5 <= len(argv) <= 6:
        root = Path(os.environ.get("neurocaasrootdir") or Path.cwd())
        return run(argv[1], argv[2], argv[3], argv[4], argv[5] if len(argv) == 6 else None, root)
    if argv[:1] == ["install-scripts"] and len(argv) == 2:
        added = install_scripts(Path(argv[1]))
        print("added neurocaas_remote/" if added else "kept the image's own NeuroCAAS scripts", file=sys.stderr)
        return 0
    if argv[:1] == ["bake"] and len(argv) == 2:
        print(f"installed the NeuroCAAS remote side {__version__} at {bake(Path(argv[1]))}")
        return 0
    if argv[:1] == ["build"] and len(argv) == 2:
        body = build.archive()
        Path(argv[1]).write_bytes(body)
        print(build.sha256())
        return 0
    if argv == ["version"]:
        print(__version__)
        return 0
    print(USAGE, file=sys.stderr)
    return 2


def main_entry() -> None:
    """The ``neurocaas-agent`` console script."""
    sys.exit(main(sys.argv[1:]))
