"""Refusals of CONTRACT section 2, part 1: the submit file, its fields, and the keys it names.

Each test submits one bad submit.json and checks the outcome, the certificate's message, where
the certificate was written, and that no instance is running.
"""

from __future__ import annotations

import json

import pytest

from chalicelib.paths import refusal_job_name
from tests.conftest import BUCKET, GROUP, submit_doc
from tests.refusals.conftest import (
    CONFIG,
    REFUSAL_FOLDER,
    A,
    B,
    assert_refused,
    assert_refused_job,
    refusal_certificate,
)

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
    assert sorted(analysis.keys(f"{GROUP}/results/")) == [f"{REFUSAL_FOLDER}/logs/certificate.txt",
                                                          f"{REFUSAL_FOLDER}/logs/job.json"]
    listed = json.loads(analysis.get(f"{REFUSAL_FOLDER}/logs/job.json"))  # so `neurocaas jobs` lists it
    assert listed["state"] == "FAILED" and listed["refused"] and listed["reason"] == result.message
    assert listed["job_id"] == "_refused-submit.json"


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
    assert sorted(analysis.keys(f"{GROUP}/results/")) == [f"{REFUSAL_FOLDER}/logs/certificate.txt",
                                                          f"{REFUSAL_FOLDER}/logs/job.json"]
    listed = json.loads(analysis.get(f"{REFUSAL_FOLDER}/logs/job.json"))  # so `neurocaas jobs` lists it
    assert listed["state"] == "FAILED" and listed["refused"] and listed["reason"] == result.message


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
