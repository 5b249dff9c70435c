"""Checking and starting a submission from the page: the parameter file is checked before anything
is uploaded, and submit.json is written last (through the CLI's client layer)."""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.exceptions import SubmissionRefused
from chalicelib.parameters import Parameters, parse_parameters
from chalicelib.planner import estimated_cost, lifetime_minutes
from service.client import JobRef, NeuroCAASClient, UserError
from service.web.catalog import Analysis
from service.web.uploads import file_key

MAX_PARAMETER_BYTES = 1024 * 1024


class ParameterProblem(UserError):
    """The parameter file is wrong; shown next to its field."""


@dataclass(frozen=True)
class Estimate:
    instance_type: str
    minutes: int
    dollars: float


def check_parameters(analysis: Analysis, name: str, text: str) -> Parameters:
    """The one parameter check the page makes: the job manager's own rule, against the parameters the
    analysis declares."""
    if len(text.encode()) > MAX_PARAMETER_BYTES:
        raise ParameterProblem("The parameter file is larger than 1 MiB; parameter files hold settings, not data.")
    try:
        return parse_parameters(name, text.encode(), analysis.parameters_schema)
    except SubmissionRefused as error:
        raise ParameterProblem(error.message) from None


def choose_instance_type(analysis: Analysis, wanted: str | None) -> str | None:
    if not wanted:
        return analysis.instance_types[0] if analysis.instance_types else None
    if analysis.instance_types and wanted not in analysis.instance_types:
        raise UserError(f"{analysis.name} runs on {', '.join(analysis.instance_types)}, not {wanted}.")
    return wanted


def estimate(analysis: Analysis, instance_type: str | None, datasets: int, parameters: Parameters) -> Estimate | None:
    if analysis.settings is None or instance_type is None:
        return None
    minutes = lifetime_minutes(analysis.settings, parameters)
    return Estimate(instance_type, minutes, estimated_cost(analysis.settings, instance_type, max(datasets, 1), parameters))


def submit(client: NeuroCAASClient, analysis: Analysis, group: str, datasets: list[str], config_name: str,
           config_text: str, instance_type: str | None) -> JobRef:
    """Check again, upload the parameter file, then write submit.json (the datasets are already uploaded)."""
    if not datasets:
        raise UserError("Add at least one dataset.")
    check_parameters(analysis, config_name, config_text)
    chosen = choose_instance_type(analysis, instance_type)
    keys = [file_key(group, "inputs", name) for name in datasets]
    missing = [name for name, key in zip(datasets, keys, strict=True) if not client.exists(analysis.name, key)]
    if missing:
        raise UserError(f"Not uploaded yet: {', '.join(missing)}. Add the file(s) again.")
    config_key = file_key(group, "configs", config_name)
    client.s3.put_object(Bucket=analysis.name, Key=config_key, Body=config_text.encode())
    return client.start_job(analysis.name, group, keys, config_key,
                            instance_type=chosen if len(analysis.instance_types) > 1 else None)
