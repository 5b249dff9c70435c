"""Writing a new AMI into a blueprint, documented by two git commits (before and after), as NeuroCAAS did."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chalicelib.blueprint import load_blueprint
from chalicelib.exceptions import BlueprintError
from devtools.exceptions import DevToolsError


@dataclass(frozen=True)
class BlueprintUpdate:
    """The two commits of an update and what changed."""

    before: str
    after: str
    old_ami: str
    new_ami: str


def git(repository: Path, *arguments: str) -> str:
    """Run git in ``repository``; a failure is one line with git's own reason."""
    try:
        done = subprocess.run(["git", "-C", str(repository), *arguments], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise DevToolsError("git is not installed; install it to record blueprint updates.") from None
    if done.returncode != 0:
        reason = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise DevToolsError(f"git {arguments[0]} failed in {repository}: {reason[-1] if reason else 'no reason given'}.")
    return done.stdout.strip()


def repository_of(path: Path) -> Path:
    try:
        return Path(git(path.parent, "rev-parse", "--show-toplevel"))
    except DevToolsError:
        raise DevToolsError(f"The blueprint {path.parent} is not in a git repository; run `git init` there (or move "
                            "it into one) so its updates are recorded.") from None


def edited(text: str, old_ami: str, new_ami: str, others: dict[str, str]) -> str:
    """The blueprint text with the new AMI (and other top-level keys), keeping its layout when it can."""
    pattern = re.compile(r'("AMI"\s*:\s*)"' + re.escape(old_ami) + '"')
    document = json.loads(text)
    if len(pattern.findall(text)) == 1 and not others:
        return pattern.sub(lambda m: f'{m.group(1)}"{new_ami}"', text)
    document["Lambda"]["LambdaConfig"]["AMI"] = new_ami
    document.update(others)
    indent = re.search(r'\n( +)"', text)
    return json.dumps(document, indent=len(indent.group(1)) if indent else 2, ensure_ascii=False) + "\n"


def update_blueprint(path: Path, new_ami: str, message: str, others: dict[str, str] | None = None,
                     write_back: Callable[[], list[Path]] | None = None) -> BlueprintUpdate:
    """Commit the blueprint (and its folder) as it is, write ``new_ami`` into ``Lambda.LambdaConfig.AMI`` and
    what ``write_back`` writes (the image's files), commit again."""
    repository = repository_of(path)
    text = path.read_text()
    old_ami = str(json.loads(text)["Lambda"]["LambdaConfig"].get("AMI", ""))
    if old_ami == new_ami and not others:
        raise DevToolsError(f"The blueprint already uses {new_ami}; nothing to update.")
    folder = str(path.parent.resolve().relative_to(repository.resolve()))
    git(repository, "add", "-A", "--", folder)
    git(repository, "commit", "--allow-empty", "-q", "-m",
        f"{path.parent.name}: blueprint before updating the AMI to {new_ami}\n\n{message}", "--", folder)
    before = git(repository, "rev-parse", "HEAD")
    written = write_back() if write_back else []
    path.write_text(edited(text, old_ami, new_ami, others or {}))
    try:
        load_blueprint(path)
    except BlueprintError as error:
        path.write_text(text)
        raise DevToolsError(f"The updated blueprint would not be valid ({error.message}); it was left as it was.") from error
    outside = [p for p in written if not p.resolve().is_relative_to(path.parent.resolve())]
    paths = [folder, *(str(p.resolve().relative_to(repository.resolve())) for p in outside)]
    git(repository, "add", "-A", "--", *paths)
    git(repository, "commit", "-q", "-m", f"{path.parent.name}: AMI {old_ami} -> {new_ami}\n\n{message}", "--", *paths)
    return BlueprintUpdate(before=before, after=git(repository, "rev-parse", "HEAD"), old_ami=old_ami, new_ami=new_ami)
