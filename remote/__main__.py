"""``python -m remote run BUCKET DATASET RESULTPATH CONFIG [SCRIPT]`` and ``python -m remote install DIR``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from remote.install import install
from remote.main import run

USAGE = (
    "usage: python -m remote run BUCKET DATASET RESULTPATH CONFIG [SCRIPT]\n"
    "       python -m remote install HOME_DIR"
)


def main(argv: list[str]) -> int:
    if len(argv) >= 5 and argv[0] == "run" and len(argv) <= 6:
        root = Path(os.environ.get("neurocaasrootdir") or Path.cwd())
        script = argv[5] if len(argv) == 6 else None
        return run(argv[1], argv[2], argv[3], argv[4], script, root)
    if len(argv) == 2 and argv[0] == "install":
        target = install(Path(argv[1]))
        print(f"installed the NeuroCAAS remote scripts in {target}")
        return 0
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
