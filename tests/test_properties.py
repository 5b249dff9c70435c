"""Property-based bad input: the handler never crashes, never starts an instance for an invalid
submission, always explains itself, and never lets one group reach another group's keys."""

from __future__ import annotations

import json
import posixpath

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.exceptions import SubmissionRefused
from chalicelib.jobmanager import Outcome
from chalicelib.submission import parse_submission
from tests.conftest import BUCKET, GROUP

OTHER = "othergroup"
NASTY = ["..", ".", "", OTHER, GROUP, "inputs", "a.tif", "$(rm -rf ~)", "`id`", "; ls", "x y", "'", '"', "é", "\\"]

segment = st.sampled_from(NASTY) | st.text(min_size=0, max_size=12)
keys = st.lists(segment, min_size=1, max_size=6).map("/".join) | st.sampled_from([
    f"{OTHER}/inputs/a.tif", f"{GROUP}/../{OTHER}/inputs/a.tif", f"/{GROUP}/inputs/a.tif",
    f"s3://{BUCKET}/{OTHER}/inputs/a.tif", "s3://elsewhere/x", f"{GROUP}/inputs/./a.tif", f"{GROUP}//a.tif",
])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
documents = st.fixed_dictionaries({}, optional={
    "dataname": keys | st.lists(keys, max_size=8) | json_values,
    "configname": keys | json_values,
    "timestamp": st.text(max_size=40) | st.integers() | json_values,
    "instance_type": st.sampled_from(["t2.micro", "m5.xlarge", "p3.2xlarge", "t2.micro; reboot"]) | json_values,
    "resultpath": st.sampled_from(["s3://shared-results/x", "s3://elsewhere/y", "nope"]) | json_values,
    "extra": json_values,
})


def within(key: str, group: str) -> bool:
    normal = posixpath.normpath(key)
    return normal.startswith(f"{group}/") and ".." not in key.split("/")


@settings(max_examples=400, deadline=None)
@given(document=documents)
def test_accepted_submissions_only_name_the_groups_own_keys(analysis_settings, document) -> None:
    try:
        submission = parse_submission(document, f"{GROUP}/submissions/submit.json", analysis_settings)
    except SubmissionRefused as refusal:
        assert refusal.message and "Traceback" not in refusal.message
        return
    for ref in (*submission.datasets, submission.config):
        if ref.bucket == BUCKET:
            assert within(ref.key, GROUP), ref
        else:
            assert ref.bucket in analysis_settings.bypass_buckets
    assert submission.location.prefix.startswith(f"{GROUP}/results/job__") or submission.location.bucket != BUCKET


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=200) | documents.map(lambda d: json.dumps(d).encode()))
def test_the_handler_never_crashes_and_always_explains(uploaded, body: bytes) -> None:
    before = len(uploaded.instances())
    uploaded.put(f"{OTHER}/inputs/a.tif")

    result = uploaded.submit(body, key=f"{GROUP}/submissions/prop_submit.json")

    assert result.outcome in (Outcome.REFUSED, Outcome.STARTED, Outcome.DUPLICATE)
    if result.outcome is Outcome.REFUSED:
        assert len(uploaded.instances()) == before
        certificate = uploaded.get(f"{result.location.prefix}/logs/certificate.txt")
        assert result.message in certificate
        assert "Traceback" not in certificate
    if result.outcome is Outcome.STARTED:
        assert all(d.input.bucket != BUCKET or within(d.input.key, GROUP) for d in result.plan.datasets)


blueprint_documents = st.fixed_dictionaries({}, optional={
    "PipelineName": st.sampled_from(["good-name", "Bad Name", "", "a", "x" * 70]) | json_values,
    "REGION": st.sampled_from(["us-east-1", "mars-1"]) | json_values,
    "Lambda": st.fixed_dictionaries({}, optional={"LambdaConfig": st.fixed_dictionaries({}, optional={
        "AMI": st.sampled_from(["ami-0123456789abcdef0", "ami-x"]) | json_values,
        "INSTANCE_TYPE": st.sampled_from(["t2.micro", "", "big"]) | json_values,
        "COMMAND": st.sampled_from(['run "{}" "{}" "{}" "{}"', "run {}", ""]) | json_values,
        "MAXCOST": st.sampled_from(["300", 300, "lots", -1]) | json_values,
        "DEPLOY_LIMIT": json_values,
        "ALLOWED_INSTANCE_TYPES": st.lists(st.sampled_from(["t2.micro", "nope"])) | json_values,
    })}) | json_values,
    "UXData": st.fixed_dictionaries({}, optional={"Affiliates": st.lists(st.fixed_dictionaries(
        {"AffiliateName": st.sampled_from(["lab", "logs", "Dev Group"]) | json_values}))}) | json_values,
})


@settings(max_examples=300, deadline=None)
@given(document=blueprint_documents | json_values)
def test_any_blueprint_document_is_either_loaded_or_refused_key_by_key(document) -> None:
    from chalicelib.blueprint import Blueprint, validate_blueprint
    from chalicelib.exceptions import BlueprintError

    problems = validate_blueprint(document)
    try:
        blueprint = Blueprint.from_document(document)
    except BlueprintError as error:
        assert error.problems == problems and problems
        assert all(": " in p for p in problems)
        return
    assert not problems
    assert blueprint.settings.bucket_name == document["PipelineName"]
