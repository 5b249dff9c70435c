"""Refusals of CONTRACT section 2, part 2: the parameter file, what the job may use, and job ids."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.jobmanager import Outcome
from chalicelib.paths import refusal_job_name
from tests.conftest import BUCKET, GROUP, submit_doc
from tests.refusals.conftest import (
    CONFIG,
    JOB,
    SUBMIT_KEY,
    A,
    B,
    assert_refused_job,
    refusal_certificate,
)

# --- the parameter file ----------------------------------------------------------------------

@pytest.mark.parametrize("name, body, fragment", [
    ("bad.yaml", "a: [1, 2\n", "does not parse"),
    ("bad.yml", "a: b: c\n", "does not parse"),
    ("bad.json", "{nope", "does not parse"),
    ("bad.json", "", "does not parse"),
    ("latin1.yaml", b"a: \xe9\n", "does not parse"),
    ("params.txt", "a: 1\n", "must end in .json, .yaml or .yml"),
    ("params", "a: 1\n", "must end in .json, .yaml or .yml"),
    ("list.yaml", "- 1\n- 2\n", "must hold a mapping"),
    ("list.json", "[1, 2]", "must hold a mapping"),
    ("scalar.yaml", "just text\n", "must hold a mapping"),
])
def test_a_config_that_does_not_parse_is_refused(uploaded, name, body, fragment) -> None:
    key = f"{GROUP}/configs/{name}"
    uploaded.put(key, body)

    result = uploaded.submit(submit_doc(A, config=key))

    assert_refused_job(uploaded, result, f"The parameter file {key!r}", fragment)


@pytest.mark.parametrize("line, fragment", [
    ('__duration__: "long"', "`__duration__` in the parameter file must be a positive number"),
    ("__duration__: 0", "`__duration__` in the parameter file must be a positive number"),
    ("__duration__: true", "`__duration__` in the parameter file must be a positive number"),
    ("__dataset_size__: -1", "`__dataset_size__` in the parameter file must be a positive number"),
    ("__dataset_size__: [10]", "`__dataset_size__` in the parameter file must be a positive number"),
    ("ensemble_size: 2.5", "`ensemble_size` in the parameter file must be a positive whole number"),
    ("ensemble_size: 0", "`ensemble_size` in the parameter file must be a positive whole number"),
    ('ensemble_size: "3"', "`ensemble_size` in the parameter file must be a positive whole number"),
    ("ensemble_size: 101", "at most 100 members"),
])
def test_a_special_key_of_the_wrong_type_is_refused(uploaded, line, fragment) -> None:
    uploaded.put(CONFIG, f"threshold: 2.5\n{line}\n")

    result = uploaded.submit(submit_doc(A))

    assert_refused_job(uploaded, result, fragment)


def test_an_ensemble_of_several_datasets_is_refused(uploaded) -> None:
    uploaded.put(CONFIG, "ensemble_size: 3\n")

    result = uploaded.submit(submit_doc(A, B))

    assert_refused_job(uploaded, result, "`ensemble_size` runs one dataset 3 times", "lists 2 datasets")


@pytest.mark.parametrize("line", ["__duration__: .nan", "__duration__: .inf", "__dataset_size__: .inf"])
def test_a_non_finite_special_key_is_refused_by_name(uploaded, line) -> None:
    uploaded.put(CONFIG, f"{line}\n")

    result = uploaded.submit(submit_doc(A))

    key = line.split(":")[0]
    assert_refused_job(uploaded, result, f"`{key}` in the parameter file must be a positive number")


# --- what the job may use: instance type, budget, concurrency, result bucket ------------------

def test_an_instance_type_not_allowed_is_refused(uploaded) -> None:
    result = uploaded.submit(submit_doc(A, instance_type="p3.16xlarge"))

    assert_refused_job(uploaded, result, "Instance type 'p3.16xlarge' is not offered by this analysis",
                       "Choose one of: t2.micro, m5.xlarge")


def test_a_budget_set_in_ssm_that_would_be_exceeded_is_refused(uploaded) -> None:
    parameter = f"/neurocaas/budgets/{GROUP}/{BUCKET}"
    uploaded.ssm.put_parameter(Name=parameter, Value="0.001", Type="String")

    result = uploaded.submit(submit_doc(A))

    assert_refused_job(uploaded, result, f"Group {GROUP!r} has a budget of",
                       f"SSM parameter {parameter}", "this job an estimated")
    assert "STEP 3/4 (Environment Setup): SUBMISSION ERROR." in uploaded.certificate(JOB)


def test_a_budget_in_ssm_that_is_not_a_number_is_a_configuration_error(uploaded) -> None:
    parameter = f"/neurocaas/budgets/{GROUP}/{BUCKET}"
    uploaded.ssm.put_parameter(Name=parameter, Value="lots", Type="String")

    result = uploaded.submit(submit_doc(A))

    assert_refused_job(uploaded, result, f"The budget in SSM parameter {parameter} is 'lots', not a number",
                       label="INTERNAL ERROR")


def test_budgets_under_a_dollar_are_shown_with_enough_digits(uploaded) -> None:
    uploaded.ssm.put_parameter(Name=f"/neurocaas/budgets/{GROUP}/{BUCKET}", Value="0.001", Type="String")
    result = uploaded.submit(submit_doc(A))
    assert "budget of $0.0010" in result.message and "estimated $0.0166" in result.message  # t2.micro and its IPv4


def test_a_maxcost_that_would_be_exceeded_is_refused(uploaded) -> None:
    result = uploaded.submit(submit_doc(A), maxcost=0.0001)

    assert_refused_job(uploaded, result, f"Group {GROUP!r} has a budget of", "the analysis's MAXCOST",
                       "Shorten `__duration__`")


def test_the_ssm_budget_overrides_maxcost(uploaded) -> None:
    uploaded.ssm.put_parameter(Name=f"/neurocaas/budgets/{GROUP}/{BUCKET}", Value="1000", Type="String")

    result = uploaded.submit(submit_doc(A), maxcost=0.0001)

    assert result.outcome is Outcome.STARTED
    assert len(uploaded.instances()) == 1


def test_the_concurrency_cap_is_enforced(uploaded) -> None:
    result = uploaded.submit(submit_doc(A, B), deploy_limit=1)

    assert_refused_job(uploaded, result, "This analysis runs at most 1 instance(s) at once and this job needs 2",
                       "Split it into jobs of at most 1 dataset(s)")
    assert "running jobs" not in result.message


def test_the_concurrency_cap_counts_running_instances(uploaded) -> None:
    assert uploaded.submit(submit_doc(A), deploy_limit=1).outcome is Outcome.STARTED

    result = uploaded.submit(submit_doc(B, timestamp="second"), key=f"{GROUP}/submissions/second.json",
                             deploy_limit=1)

    assert result.outcome is Outcome.REFUSED
    assert "1 are running and this job needs 1" in uploaded.certificate("second")
    assert len(uploaded.instances()) == 1


@pytest.mark.parametrize("resultpath, fragment", [
    ("s3://someone-elses-bucket/results", "`resultpath` names bucket 'someone-elses-bucket'"),
    (f"s3://{BUCKET}/othergroup/results", f"`resultpath` names bucket {BUCKET!r}"),
    ("shared-results/results", "is not of the form s3://bucket/prefix"),
])
def test_a_resultpath_to_a_bucket_not_allowed_is_refused(uploaded, resultpath, fragment) -> None:
    result = uploaded.submit(submit_doc(A, resultpath=resultpath))

    assert_refused_job(uploaded, result, fragment)
    assert uploaded.keys("othergroup/") == []


# --- job ids: reuse after a refusal, and a clash with a started job ---------------------------

@pytest.mark.parametrize("second_key", [SUBMIT_KEY, f"{GROUP}/submissions/corrected.json"])
def test_a_refused_job_id_can_be_reused_by_a_corrected_submission(uploaded, second_key) -> None:
    refused = uploaded.submit(submit_doc(f"{GROUP}/inputs/missing.tif"))
    assert refused.outcome is Outcome.REFUSED

    result = uploaded.submit(submit_doc(A), key=second_key)

    assert result.outcome is Outcome.STARTED
    assert len(uploaded.instances()) == 1
    record = uploaded.record(JOB)
    assert record["refused"] is False and record["state"] != "FAILED"
    assert record["submit_key"] == second_key
    certificate = uploaded.certificate(JOB)
    assert "not found" not in certificate and "ERROR" not in certificate


@pytest.mark.parametrize("second_key", [SUBMIT_KEY, f"{GROUP}/submissions/other.json"])
def test_a_different_submission_reusing_a_started_job_id_is_refused(uploaded, second_key) -> None:
    first = uploaded.submit(submit_doc(A))
    assert first.outcome is Outcome.STARTED
    certificate, record = uploaded.certificate(JOB), uploaded.record(JOB)
    running = uploaded.instances()

    result = uploaded.submit(submit_doc(B), key=second_key)

    assert result.outcome is Outcome.REFUSED
    assert result.location.prefix == f"{GROUP}/results/{refusal_job_name(BUCKET, second_key)}"
    refusal = refusal_certificate(uploaded, second_key)
    assert f"Job {JOB} already exists (submitted as {SUBMIT_KEY})" in refusal
    assert "Give this submission a new timestamp" in refusal and "Traceback" not in refusal
    assert uploaded.certificate(JOB) == certificate
    assert uploaded.record(JOB) == record
    assert uploaded.instances() == running


def test_an_invalid_submission_reusing_a_started_job_id_leaves_the_job_alone(uploaded) -> None:
    assert uploaded.submit(submit_doc(A)).outcome is Outcome.STARTED
    certificate, record = uploaded.certificate(JOB), uploaded.record(JOB)
    key = f"{GROUP}/submissions/other.json"

    result = uploaded.submit(submit_doc("othergroup/inputs/x.tif"), key=key)

    assert result.outcome is Outcome.REFUSED
    assert "already exists" in refusal_certificate(uploaded, key)
    assert uploaded.certificate(JOB) == certificate
    assert uploaded.record(JOB) == record
    assert len(uploaded.instances()) == 1


@pytest.mark.parametrize("job_id", ["refused-b.json", refusal_job_name(BUCKET, "g/submissions/b.json")[
    len(f"job__{BUCKET}_"):]])
def test_a_refusal_never_overwrites_a_job_whose_id_looks_like_a_refusal_folder(uploaded, job_id) -> None:
    first = uploaded.submit(submit_doc(A, timestamp=job_id), key=f"{GROUP}/submissions/a.json")
    if first.outcome is Outcome.REFUSED:  # an id that names a refusal folder cannot be used at all
        assert "cannot name a job" in first.message
        return
    assert first.outcome is Outcome.STARTED
    certificate = uploaded.certificate(job_id)

    refused = uploaded.submit(b"not json", key=f"{GROUP}/submissions/b.json")

    assert refused.outcome is Outcome.REFUSED
    assert uploaded.certificate(job_id) == certificate


def test_every_refusal_leaves_the_submission_uncharged(uploaded: Any) -> None:
    """A refusal costs nothing: the job record carries no estimate and no instances."""
    result = uploaded.submit(submit_doc(A, instance_type="p3.16xlarge"))

    record = uploaded.record(JOB)
    assert result.outcome is Outcome.REFUSED
    assert record["estimated_cost"] is None and record["instance_ids"] == []
