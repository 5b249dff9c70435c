"""Every refusal of CONTRACT section 2: a clear reason in the certificate, no instance started.

Each test submits one bad submit.json (or a good one against a bad config, budget or cap) and
checks the outcome, the certificate's message, where the certificate was written, and that no
instance is running.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib.blueprint import AnalysisSettings
from chalicelib.jobmanager import Outcome, Result
from chalicelib.paths import refusal_job_name
from tests.conftest import BUCKET, COMMAND, GROUP, Analysis, Clock, submit_doc

JOB = "2026-11-25T10-00-00"
SUBMIT_KEY = f"{GROUP}/submissions/submit.json"
A = f"{GROUP}/inputs/a.tif"
B = f"{GROUP}/inputs/b.tif"
CONFIG = f"{GROUP}/configs/params.yaml"
REFUSAL_FOLDER = f"{GROUP}/results/{refusal_job_name(BUCKET, SUBMIT_KEY)}"


@pytest.fixture(scope="module")
def shared_analysis() -> Iterator[Analysis]:
    """conftest's ``analysis`` (same settings), made once for the module: listing moto's public
    images and making boto3 clients costs about a second per test, and these tests are many."""
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")
        ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        yield Analysis(AnalysisSettings(
            bucket_name=BUCKET, ami=ami, instance_type="t2.micro",
            allowed_instance_types=("t2.micro", "m5.xlarge"), command=COMMAND,
            bypass_buckets=("shared-results",), maxcost=300, deploy_limit=100,
        ))


@pytest.fixture
def analysis(shared_analysis: Analysis) -> Iterator[Analysis]:
    """The shared analysis with a fresh clock; its account is emptied after each test."""
    made = shared_analysis
    made.clock = Clock()
    yield made
    live = [i["InstanceId"] for i in made.instances(("pending", "running", "stopping", "stopped"))]
    if live:
        made.ec2.terminate_instances(InstanceIds=live)
    for bucket in made.s3.list_buckets()["Buckets"]:
        for key in made.keys(bucket=bucket["Name"]):
            made.s3.delete_object(Bucket=bucket["Name"], Key=key)
        if bucket["Name"] != BUCKET:
            made.s3.delete_bucket(Bucket=bucket["Name"])
    names = [p["Name"] for p in made.ssm.describe_parameters().get("Parameters", ())]
    if names:
        made.ssm.delete_parameters(Names=names)


def refusal_certificate(analysis: Analysis, submit_key: str = SUBMIT_KEY) -> str:
    """The certificate of a submission without a usable job id, named after its submit key."""
    return analysis.get(f"{GROUP}/results/{refusal_job_name(BUCKET, submit_key)}/logs/certificate.txt")


def assert_refused(analysis: Analysis, result: Result, certificate: str, *fragments: str) -> None:
    assert result.outcome is Outcome.REFUSED, result
    assert analysis.instances() == []
    assert "Traceback" not in certificate
    assert "INTERNAL ERROR." in certificate
    for fragment in fragments:
        assert fragment in certificate, f"{fragment!r} not in certificate:\n{certificate}"
        assert fragment in result.message


def assert_refused_job(analysis: Analysis, result: Result, *fragments: str, job_id: str = JOB) -> None:
    """Refused under the job's own folder, with job.json saying FAILED and refused."""
    assert_refused(analysis, result, analysis.certificate(job_id), *fragments)
    record = analysis.record(job_id)
    assert record["state"] == "FAILED" and record["refused"] is True
    assert record["reason"] == result.message
    assert record["instance_ids"] == []


# --- the submit file itself ------------------------------------------------------------------

@pytest.mark.parametrize("body, fragment", [
    (b"not json at all", "is not valid JSON (line 1, column 1"),
    (b'{"dataname": "x", ', "is not valid JSON (line 1"),
    (b"", "is not valid JSON"),
    (b"\xff\xfe{}", "is not UTF-8 text"),
])
def test_a_submit_file_that_is_not_json_is_refused_under_a_folder_named_after_its_key(
        analysis, body, fragment) -> None:
    result = analysis.submit(body)

    assert result.location.prefix == REFUSAL_FOLDER
    assert_refused(analysis, result, refusal_certificate(analysis), fragment, "submit again")
    assert analysis.keys(f"{GROUP}/results/") == [f"{REFUSAL_FOLDER}/logs/certificate.txt"]


@pytest.mark.parametrize("document, kind", [
    ([submit_doc(A)], "an array"),
    ("just a string", "a string"),
    (5, "a number"),
    (True, "a boolean"),
    (None, "null"),
])
def test_a_submit_file_that_is_json_but_not_an_object_is_refused(analysis, document, kind) -> None:
    result = analysis.submit(json.dumps(document))

    certificate = refusal_certificate(analysis)
    assert_refused(analysis, result, certificate,
                   "must be a JSON object with dataname, configname and timestamp", f"holds {kind} instead")
    assert "NoneType" not in certificate and "holds a list" not in certificate
    assert analysis.keys(f"{GROUP}/results/") == [f"{REFUSAL_FOLDER}/logs/certificate.txt"]


def test_the_certificate_of_an_unreadable_file_is_named_after_its_own_submit_key(analysis) -> None:
    key = f"{GROUP}/submissions/my job (2).json"

    result = analysis.submit(b"{oops", key=key)

    assert result.location.prefix == f"{GROUP}/results/{refusal_job_name(BUCKET, key)}"
    assert result.location.prefix.endswith("refused-my-job--2-.json")
    assert_refused(analysis, result, refusal_certificate(analysis, key), "is not valid JSON")
    assert f"SUBMIT FILE: {key}" in refusal_certificate(analysis, key)


# --- required fields -------------------------------------------------------------------------

@pytest.mark.parametrize("field", ["dataname", "configname"])
def test_a_missing_field_is_refused_under_the_job_folder(uploaded, field) -> None:
    document = submit_doc(A)
    del document[field]

    result = uploaded.submit(document)

    assert_refused_job(uploaded, result, "The submit file is incomplete", f"`{field}` is missing")


def test_a_missing_timestamp_is_refused_under_a_folder_named_after_the_submit_key(uploaded) -> None:
    document = submit_doc(A)
    del document["timestamp"]

    result = uploaded.submit(document)

    assert result.location.prefix == REFUSAL_FOLDER
    assert_refused(uploaded, result, refusal_certificate(uploaded), "`timestamp` is missing")
    record = json.loads(uploaded.get(f"{REFUSAL_FOLDER}/logs/job.json"))
    assert record["state"] == "FAILED" and record["refused"] is True


@pytest.mark.parametrize("field, value", [
    ("dataname", 5),
    ("dataname", {"key": A}),
    ("dataname", [A, 5]),
    ("dataname", None),
    ("configname", 5),
    ("configname", [CONFIG]),
    ("instance_type", 5),
    ("resultpath", ["s3://shared-results/x"]),
])
def test_a_field_of_the_wrong_type_is_refused_under_the_job_folder(uploaded, field, value) -> None:
    result = uploaded.submit({**submit_doc(A), field: value})

    assert_refused_job(uploaded, result, "The submit file is incomplete", f"`{field}` has the wrong type")


@pytest.mark.parametrize("timestamp", [True, False, ["2026"], {"t": 1}, 1.5, None])
def test_a_timestamp_of_the_wrong_type_is_refused_under_a_folder_named_after_the_submit_key(
        uploaded, timestamp) -> None:
    result = uploaded.submit(submit_doc(A, timestamp=timestamp))

    assert result.location.prefix == REFUSAL_FOLDER
    assert_refused(uploaded, result, refusal_certificate(uploaded), "`timestamp` has the wrong type")
    record = json.loads(uploaded.get(f"{REFUSAL_FOLDER}/logs/job.json"))
    assert record["state"] == "FAILED" and record["refused"] is True


@pytest.mark.parametrize("timestamp", ["../escape", "a b", "", "x" * 129, -5])
def test_a_timestamp_that_cannot_name_a_job_is_refused(uploaded, timestamp) -> None:
    result = uploaded.submit(submit_doc(A, timestamp=timestamp))

    assert result.location.prefix == REFUSAL_FOLDER
    assert_refused(uploaded, result, refusal_certificate(uploaded), "cannot name a job")


# --- datasets and config that do not exist or may not be used ---------------------------------

def test_an_empty_dataname_list_is_refused(uploaded) -> None:
    result = uploaded.submit({**submit_doc(A), "dataname": []})

    assert_refused_job(uploaded, result, "`dataname` is empty")


@pytest.mark.parametrize("name", ["", f"{GROUP}/inputs/a\x01.tif", f"{GROUP}/inputs/a\n.tif"])
def test_an_empty_dataname_or_one_with_control_characters_is_refused(uploaded, name) -> None:
    result = uploaded.submit({**submit_doc(A), "dataname": name})

    assert_refused_job(uploaded, result, f"`dataname` {name!r} is empty or holds control characters")


@pytest.mark.parametrize("names", [
    [f"{GROUP}/inputs/missing.tif"],
    [A, f"{GROUP}/inputs/missing.tif"],
    [f"{GROUP}/inputs/no-such-folder/"],
])
def test_a_dataset_that_does_not_exist_is_refused(uploaded, names) -> None:
    result = uploaded.submit(submit_doc(*names))

    assert_refused_job(uploaded, result, "Dataset(s) not found:", names[-1])
    if len(names) > 1:
        assert f"not found: {A}" not in result.message


def test_a_config_that_does_not_exist_is_refused(uploaded) -> None:
    result = uploaded.submit(submit_doc(A, config=f"{GROUP}/configs/missing.yaml"))

    assert_refused_job(uploaded, result, "Parameter file not found:", f"{GROUP}/configs/missing.yaml")


def test_a_dataset_missing_from_an_allowed_bucket_is_named_by_its_uri(uploaded) -> None:
    uploaded.s3.create_bucket(Bucket="shared-results")

    result = uploaded.submit(submit_doc("s3://shared-results/data/x.tif"))

    assert_refused_job(uploaded, result, "Dataset(s) not found: s3://shared-results/data/x.tif")


def test_a_config_missing_from_an_allowed_bucket_is_named_by_its_uri(uploaded) -> None:
    uploaded.s3.create_bucket(Bucket="shared-results")

    result = uploaded.submit(submit_doc(A, config="s3://shared-results/configs/p.yaml"))

    assert_refused_job(uploaded, result, "Parameter file not found: s3://shared-results/configs/p.yaml")


def test_more_than_a_thousand_datasets_are_refused(uploaded) -> None:
    names = [f"{GROUP}/inputs/d{i:04d}.tif" for i in range(1001)]

    result = uploaded.submit(submit_doc(*names))

    assert_refused_job(uploaded, result, "`dataname` lists 1001 datasets; one job may hold at most 1000")


def test_a_config_naming_a_folder_is_refused(uploaded) -> None:
    result = uploaded.submit(submit_doc(A, config=f"{GROUP}/configs/"))

    assert_refused_job(uploaded, result, "names a folder")


@pytest.mark.parametrize("field, key", [
    ("dataname", "othergroup/inputs/x.tif"),
    ("dataname", f"{GROUP}2/inputs/x.tif"),
    ("dataname", f"{GROUP}/"),
    ("dataname", f"s3://{BUCKET}/othergroup/inputs/x.tif"),
    ("configname", "othergroup/configs/params.yaml"),
])
def test_a_key_outside_the_groups_folder_is_refused(uploaded, field, key) -> None:
    uploaded.put("othergroup/inputs/x.tif")
    uploaded.put("othergroup/configs/params.yaml", "a: 1\n")
    document = submit_doc(A, **({"config": key} if field == "configname" else {}))
    if field == "dataname":
        document["dataname"] = key

    result = uploaded.submit(document)

    assert_refused_job(uploaded, result, f"`{field}` {key!r} is outside your group's folder",
                       f"may only use keys beginning {GROUP}/")


@pytest.mark.parametrize("key", [
    f"{GROUP}/../othergroup/inputs/x.tif",
    f"{GROUP}/./inputs/a.tif",
    f"{GROUP}//inputs/a.tif",
    f"/{GROUP}/inputs/a.tif",
])
def test_a_key_that_is_not_plain_is_refused(uploaded, key) -> None:
    uploaded.put("othergroup/inputs/x.tif")

    result = uploaded.submit(submit_doc(key))

    assert_refused_job(uploaded, result, f"`dataname` {key!r} is not a plain key")


@pytest.mark.parametrize("field", ["dataname", "configname"])
def test_an_s3_uri_in_a_bucket_not_allowed_is_refused(uploaded, field) -> None:
    uri = "s3://someone-elses-bucket/data/x.tif"
    document = submit_doc(A, **({"config": uri} if field == "configname" else {}))
    if field == "dataname":
        document["dataname"] = uri

    result = uploaded.submit(document)

    assert_refused_job(uploaded, result, f"`{field}` names bucket 'someone-elses-bucket'",
                       "may not use", "shared-results")


def test_two_datasets_sharing_a_basename_are_refused(uploaded) -> None:
    other = f"{GROUP}/inputs/day2/a.tif"
    uploaded.put(other)

    result = uploaded.submit(submit_doc(A, other))

    assert_refused_job(uploaded, result, f"Datasets {A!r} and {other!r} share the name 'a.tif'",
                       "status files would collide")


def test_the_same_dataset_listed_twice_is_refused(uploaded) -> None:
    result = uploaded.submit(submit_doc(A, B, A))

    assert_refused_job(uploaded, result, f"Dataset {A!r} is listed twice", "status files would collide")


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
    assert "STEP 3/4 (Environment Setup): INTERNAL ERROR." in uploaded.certificate(JOB)


def test_a_budget_in_ssm_that_is_not_a_number_is_a_configuration_error(uploaded) -> None:
    parameter = f"/neurocaas/budgets/{GROUP}/{BUCKET}"
    uploaded.ssm.put_parameter(Name=parameter, Value="lots", Type="String")

    result = uploaded.submit(submit_doc(A))

    assert_refused_job(uploaded, result, f"The budget in SSM parameter {parameter} is 'lots', not a number")


def test_budgets_under_a_dollar_are_shown_with_enough_digits(uploaded) -> None:
    uploaded.ssm.put_parameter(Name=f"/neurocaas/budgets/{GROUP}/{BUCKET}", Value="0.001", Type="String")
    result = uploaded.submit(submit_doc(A))
    assert "budget of $0.0010" in result.message and "estimated $0.0116" in result.message


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

    assert_refused_job(uploaded, result, "This analysis may run 1 instance(s) at once",
                       "0 are running and this job needs 2")


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
