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
DEAD_LETTER_VARIABLE = "NEUROCAAS_DEAD_LETTER_QUEUE"
LOG_RETENTION_DAYS = 90  # one of CloudWatch Logs' periods (awslimits.RETENTION_DAYS)
CODE_FOLDERS = ("chalicelib",)


@dataclass(frozen=True)
class LocalState:
    """The project's Chalice files as they are now."""

    project: Path
    config: dict[str, Any]
    policies: dict[str, str | None]  # policy file name (in .chalice/) -> its text, None when absent
    deployed_digest: str | None
    chalice_deployed: bool
    code_digest: str

    @property
    def config_path(self) -> Path:
        return self.project / CHALICE_CONFIG

    def policy_path(self, name: str) -> Path:
        return self.config_path.parent / name


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
    files = {name: path.parent / name for name in (naming.policy_file(stage), naming.reaper_policy_file(stage))}
    return LocalState(
        project=project, config=config,
        policies={name: file.read_text() if file.is_file() else None for name, file in files.items()},
        deployed_digest=read_deployed(deployed_record),
        chalice_deployed=(path.parent / "deployed" / f"{stage}.json").is_file(),
        code_digest=code_digest(project),
    )


def deployable(blueprint: Blueprint, job_security_group: str) -> Blueprint:
    """The blueprint as deployed: its instances get the analysis's own instance profile and the job
    security group ``init`` made, and carry no SSH key."""
    settings = blueprint.settings.model_copy(update={
        "iam_role": naming.instance_profile(blueprint.name), "security_groups": (job_security_group,), "key_name": ""})
    return blueprint.model_copy(update={"settings": settings})


def stage_block(blueprint: Blueprint, dead_letter_queue_url: str, on_submit_concurrency: int | None) -> dict[str, Any]:
    """The analysis's stage (``blueprint`` as :func:`deployable` made it): hand-written policies (the
    reaper's adds reading the dead-letter queue), log retention, and on_submit's reserved concurrency."""
    stage = naming.stage_name(blueprint.name)
    block = stage_config(blueprint)
    block["environment_variables"] = {**block["environment_variables"], DEAD_LETTER_VARIABLE: dead_letter_queue_url}
    functions: dict[str, Any] = {"reaper": {"iam_policy_file": naming.reaper_policy_file(stage)}}
    if on_submit_concurrency:
        functions["on_submit"] = {"reserved_concurrency": on_submit_concurrency}
    return {**block, "autogen_policy": False, "iam_policy_file": naming.policy_file(stage),
            "log_retention_in_days": LOG_RETENTION_DAYS, "lambda_functions": functions}


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


def stage_digest(config: dict[str, Any], stage: str, policies: list[str], code: str, runtime: str) -> str:
    """What a deployed stage is made of: its settings, the app-wide settings, its policies, the code
    and the Lambda runtime."""
    shared = {k: v for k, v in config.items() if k != "stages"}
    text = json.dumps([shared, config.get("stages", {}).get(stage), policies, code, runtime], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()
