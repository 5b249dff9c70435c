"""Which blueprints under some folders load, and which are refused naming the keys to fix.

    python -m service.blueprint_census FOLDER [FOLDER ...]

Every ``stack_config_template.json`` below the folders is loaded as ``neurocaas blueprint
check`` would; the figure for NeuroCAAS's whole repository is in the README.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from chalicelib.blueprint.loader import BLUEPRINT_FILE, load_blueprint
from chalicelib.exceptions import BlueprintError


@dataclass(frozen=True)
class Verdict:
    path: Path
    problems: tuple[str, ...]  # empty when the blueprint loads

    @property
    def loads(self) -> bool:
        return not self.problems

    @property
    def keys(self) -> tuple[str, ...]:
        """The keys named by the refusal, e.g. ``Lambda.LambdaConfig.COMMAND``."""
        return tuple(p.split(":", 1)[0] for p in self.problems)


def judge(path: Path) -> Verdict:
    try:
        load_blueprint(path)
    except BlueprintError as error:
        return Verdict(path, tuple(error.problems) or (f"(file): {error.message}",))
    return Verdict(path, ())


def census(folders: list[Path]) -> list[Verdict]:
    return [judge(p) for folder in folders for p in sorted(folder.rglob(BLUEPRINT_FILE))]


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    verdicts = census([Path(a) for a in argv])
    for verdict in verdicts:
        print(f"{'loads  ' if verdict.loads else 'refused'} {verdict.path.parent}")
        for problem in verdict.problems:
            print(f"          {problem}")
    loaded = sum(v.loads for v in verdicts)
    unnamed = [v for v in verdicts if not v.loads and not all(k and " " not in k for k in v.keys)]
    print(f"{loaded} of {len(verdicts)} load; {len(verdicts) - loaded} refused, "
          f"{len(verdicts) - loaded - len(unnamed)} of them naming the keys to fix")
    return 0 if not unnamed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
