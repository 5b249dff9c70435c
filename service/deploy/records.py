"""The local records later commands read: what ``init`` made, and what ``deploy`` last deployed.

``$NEUROCAAS_HOME/aws/{account}-{region}/init.json`` names the shared resources;
``.../deployed/{bucket}.json`` holds the digest of the Chalice stage last deployed with success.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from service.deploy import naming
from service.deploy.exceptions import DeployError

INIT_FILE = "init.json"


class InitRecord(BaseModel):
    """What ``neurocaas init`` made in one account and region."""

    model_config = ConfigDict(frozen=True)

    account: str
    region: str
    vpc_id: str
    job_security_group: str
    dev_security_group: str
    ssh_cidr: str | None = None
    key_name: str
    key_parameter: str


def init_path(account: str, region: str, home: Path | None = None) -> Path:
    return naming.account_dir(account, region, home) / INIT_FILE


def deployed_path(account: str, region: str, bucket: str, home: Path | None = None) -> Path:
    return naming.account_dir(account, region, home) / "deployed" / f"{bucket}.json"


def init_text(record: InitRecord) -> str:
    return record.model_dump_json(indent=2) + "\n"


def read_init(account: str, region: str, home: Path | None = None) -> InitRecord:
    """The init record of this account and region; a clear error when ``init`` has not run."""
    path = init_path(account, region, home)
    try:
        return InitRecord.model_validate_json(path.read_text())
    except FileNotFoundError:
        raise DeployError(f"NeuroCAAS is not initialised in account {account}, region {region}: "
                          f"run `neurocaas init --region {region}` first.") from None
    except (OSError, ValidationError) as error:
        raise DeployError(f"The init record {path} is unreadable ({type(error).__name__}): "
                          f"run `neurocaas init --region {region}` again to rewrite it.") from None


def deployed_text(digest: str) -> str:
    return json.dumps({"stage_digest": digest}, indent=2) + "\n"


def read_deployed(path: Path) -> str | None:
    """The digest of the stage last deployed with success, or None."""
    try:
        return str(json.loads(path.read_text())["stage_digest"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
