"""``neurocaas blueprint new NAME``: a new analysis folder that validates and runs on the local stack.

The machine image id is a placeholder: ``neurocaas deploy`` refuses it until it names a real image.
"""

from __future__ import annotations

import json
from pathlib import Path

from chalicelib.blueprint.loader import BLUEPRINT_FILE
from service.deploy import naming
from service.deploy.exceptions import DeployError

PLACEHOLDER_AMI = "ami-00000000000000000"

ANALYSIS_SCRIPT = """#!/bin/bash
# The analysis script. It runs on the instance with NeuroCAAS's variables exported:
#   localdatapath    the dataset, already downloaded (a file, or a folder for a dataset key ending in /)
#   localconfigpath  the parameter file, already downloaded
#   localoutdir      whatever is written here is uploaded to the job's process_results/
# (and bucketname, inputpath, configpath, dataname, configname, groupdir, resultdir, processdir).
# Its output is the job's live status; a non-zero exit marks the dataset FAILED.
set -euo pipefail

echo "analysing ${dataname} with ${configname}"
wc -c < "$localdatapath" > "$localoutdir/${dataname}.size.txt"
echo "done"
"""

PARAMETERS = """# Parameters of the analysis: users upload a file like this one to {group}/configs/.
# __duration__ is how many minutes an instance may run (docs/CONTRACT.md lists the other special keys).
__duration__: 30
"""


def blueprint_document(name: str) -> dict[str, object]:
    return {
        "PipelineName": name,
        "REGION": "us-east-1",
        "STAGE": "websubstack",
        "LocalImage": "image",
        "Lambda": {"LambdaConfig": {
            "AMI": PLACEHOLDER_AMI,
            "INSTANCE_TYPE": "t3.medium",
            "ALLOWED_INSTANCE_TYPES": ["t3.medium", "m5.xlarge"],
            "COMMAND": 'cd /home/ubuntu && neurocaas_remote/run_main.sh "{}" "{}" "{}" "{}" analysis.sh',
            "SHUTDOWN_BEHAVIOR": "terminate",
            "DEFAULT_DURATION": 60,
            "DEPLOY_LIMIT": 20,
            "MAXCOST": 100,
        }},
        "UXData": {"Affiliates": [{"AffiliateName": "examplelab", "UserNames": [], "ContactEmail": ""}]},
    }


def create_blueprint(name: str, folder: Path) -> Path:
    """Write ``folder/name/`` from the template; refuses a bad name or an existing folder."""
    problem = naming.name_problem(name)
    if problem:
        raise DeployError(problem)
    target = folder / name
    if target.exists():
        raise DeployError(f"{target} already exists: choose another name or remove it first.")
    image = target / "image"
    image.mkdir(parents=True)
    (target / BLUEPRINT_FILE).write_text(json.dumps(blueprint_document(name), indent=4) + "\n")
    script = image / "analysis.sh"
    script.write_text(ANALYSIS_SCRIPT)
    script.chmod(0o755)
    (image / "params.yaml").write_text(PARAMETERS)
    return target
