"""The analysis's Chalice stage on disk: ``.chalice/config.json``, its policy file, the code digest.

The stage's environment comes from :func:`service.stages.stage_config`; deploy adds the
hand-written IAM policy (``autogen_policy: false``, ``iam_policy_file``) and points the settings
at what ``neurocaas init`` made (the instance profile and the job security group).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib.blueprint import Blueprint
from service.deploy import naming
from service.deploy.exceptions import DeployError
from service.deploy.records import read_deployed
from service.stages import CHALICE_CONFIG, stage_config

CODE = ("app.py", "requirements.txt")
CODE_FOLDERS = ("chalicelib",)


@dataclass(frozen=True)
class LocalState:
    """The project's Chalice files as they are now."""

    project: Path
    config: dict[str, Any]
    policy_text: str | None
    deployed_digest: str | None
    chalice_deployed: bool
    code_digest: str

    @property
    def config_path(self) -> Path:
        return self.project / CHALICE_CONFIG

    def policy_path(self, stage: str) -> Path:
        return self.config_path.parent / naming.policy_file(stage)


def code_digest(project: Path) -> str:
    """A digest of what ``chalice deploy`` packages: a change means the Lambda must be redeployed."""
    files = [project / name for name in CODE if (project / name).is_file()]
    for folder in CODE_FOLDERS:
        files += sorted(p for p in (project / folder).rglob("*")
                        if p.is_file() and p.suffix in (".py", ".json") and "__pycache__" not in p.parts)
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(project).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def read_local(project: Path, stage: str, deployed_record: Path) -> LocalState:
    path = project / CHALICE_CONFIG
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise DeployError(f"No {CHALICE_CONFIG} in {project.resolve()}: run this from the NeuroCAAS project "
                          "folder or pass --project.") from None
    except ValueError as error:
        raise DeployError(f"{path} is not valid JSON ({error}): fix it and run the command again.") from None
    policy = path.parent / naming.policy_file(stage)
    return LocalState(
        project=project, config=config, policy_text=policy.read_text() if policy.is_file() else None,
        deployed_digest=read_deployed(deployed_record),
        chalice_deployed=(path.parent / "deployed" / f"{stage}.json").is_file(),
        code_digest=code_digest(project),
    )


def deployable(blueprint: Blueprint, instance_profile: str, job_security_group: str) -> Blueprint:
    """The blueprint as deployed: its instances use what ``init`` made, and carry no SSH key."""
    settings = blueprint.settings.model_copy(update={
        "iam_role": instance_profile, "security_groups": (job_security_group,), "key_name": ""})
    return blueprint.model_copy(update={"settings": settings})


def stage_block(blueprint: Blueprint) -> dict[str, Any]:
    """The analysis's stage with its hand-written policy (``blueprint`` as :func:`deployable` made it)."""
    return {**stage_config(blueprint), "autogen_policy": False, "iam_policy_file": naming.policy_file(blueprint.name)}


def config_with_stage(config: dict[str, Any], stage: str, block: dict[str, Any] | None) -> dict[str, Any]:
    """``config`` with the stage set to ``block`` (merged over what it had), or removed when None."""
    stages = dict(config.get("stages", {}))
    if block is None:
        stages.pop(stage, None)
    else:
        stages[stage] = {**stages.get(stage, {}), **block}
    return {**config, "stages": stages}


def config_text(config: dict[str, Any]) -> str:
    return json.dumps(config, indent=2) + "\n"


def policy_text(policy: dict[str, Any]) -> str:
    return json.dumps(policy, indent=2) + "\n"


def stage_digest(config: dict[str, Any], stage: str, policy: str, code: str) -> str:
    """What a deployed stage is made of: its settings, the app-wide settings, its policy and the code."""
    shared = {k: v for k, v in config.items() if k != "stages"}
    text = json.dumps([shared, config.get("stages", {}).get(stage), policy, code], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()
