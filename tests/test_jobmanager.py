"""The happy paths: one dataset, a list, a folder, an ensemble and a storage bypass."""

from __future__ import annotations

import json

import yaml

from chalicelib import bootscript
from chalicelib.jobmanager import Outcome
from tests.conftest import GROUP, submit_doc

JOB = "2026-11-25T10-00-00"


def tags_of(instance: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in instance.get("Tags", ())}


def test_one_dataset_starts_one_tagged_self_terminating_instance(uploaded) -> None:
    result = uploaded.submit(submit_doc(f"{GROUP}/inputs/a.tif"))

    assert result.outcome is Outcome.STARTED
    [instance] = uploaded.instances()
    assert tags_of(instance) | {"Name": ""} == {
        "Name": "", "PriceTracking": "On", "Timeout": "60", "group": GROUP,
        "analysis": uploaded.settings.bucket_name, "job": f"job__{uploaded.settings.bucket_name}_{JOB}",
        "neurocaas:batch": "0",
    }
    attribute = uploaded.ec2.describe_instance_attribute(
        InstanceId=instance["InstanceId"], Attribute="instanceInitiatedShutdownBehavior")
    assert attribute["InstanceInitiatedShutdownBehavior"]["Value"] == "terminate"
    assert instance["InstanceType"] == "t2.micro"

    certificate = uploaded.certificate(JOB)
    for step in ("STEP 1/4 (Initialization): DONE", "STEP 2/4 (Validation): DONE",
                 "STEP 3/4 (Environment Setup): DONE", "STEP 4/4 (Initialize Processing): DONE"):
        assert step in certificate
    assert f"DATANAME: {GROUP}/inputs/a.tif | STATUS: INITIALIZING | TIME: " in certificate

    # No per-dataset object at submit: the status file is the instance's to write.
    assert not [k for k in uploaded.keys(uploaded.job_folder(JOB)) if k.endswith("_STATUS.txt")]
    marker = json.loads(uploaded.get(f"logs/open/{GROUP}/job__{uploaded.settings.bucket_name}_{JOB}.json"))
    assert marker["instance_ids"] == [instance["InstanceId"]] and marker["submit_key"].endswith("submit.json")
    assert marker["folder"] == f"s3://{uploaded.settings.bucket_name}/{uploaded.job_folder(JOB)}"

    record = uploaded.record(JOB)
    assert record["state"] == "RUNNING"
    assert record["instance_ids"] == [instance["InstanceId"]]
    assert record["datasets"]["a.tif"]["instance_id"] == instance["InstanceId"]
    assert record["estimated_cost"] > 0 and record["ami"] == uploaded.settings.ami


def test_a_list_launches_one_instance_per_dataset_in_one_request(uploaded) -> None:
    result = uploaded.submit(submit_doc(f"{GROUP}/inputs/a.tif", f"{GROUP}/inputs/b.tif"))

    assert len(result.plan.batches) == 1
    instances = uploaded.instances()
    assert len(instances) == 2
    record = uploaded.record(JOB)
    assert {d["instance_id"] for d in record["datasets"].values()} == {i["InstanceId"] for i in instances}


def test_a_folder_is_one_dataset_passed_as_its_prefix(uploaded) -> None:
    uploaded.put(f"{GROUP}/inputs/session1/frame0.tif")
    uploaded.put(f"{GROUP}/inputs/session1/frame1.tif")

    result = uploaded.submit(submit_doc(f"{GROUP}/inputs/session1/", timestamp=42))

    assert result.outcome is Outcome.STARTED
    [dataset] = result.plan.datasets
    assert dataset.input.key == f"{GROUP}/inputs/session1/"
    assert dataset.label == "session1"
    assert uploaded.record("42")["datasets"]["session1"]["status_key"].endswith("DATASET_NAME:session1_STATUS.txt")


def test_an_ensemble_runs_one_dataset_n_times_with_numbered_configs(uploaded) -> None:
    uploaded.put(f"{GROUP}/configs/ens.yaml", "ensemble_size: 3\nlr: 0.1\n")

    result = uploaded.submit(submit_doc(f"{GROUP}/inputs/a.tif", config=f"{GROUP}/configs/ens.yaml"))

    assert result.outcome is Outcome.STARTED
    assert len(uploaded.instances()) == 3
    members = [(d.member, d.config.key) for d in result.plan.datasets]
    assert [m for m, _ in members] == [1, 2, 3]
    for member, key in members:
        config = yaml.safe_load(uploaded.get(key))
        assert config == {"ensemble_size": 3, "lr": 0.1, "jobnb": member}
        assert key.startswith(uploaded.job_folder(JOB))
    assert set(uploaded.record(JOB)["datasets"]) == {"a.tif-member1", "a.tif-member2", "a.tif-member3"}


def test_storage_bypass_writes_the_job_folder_to_an_allowed_bucket(uploaded) -> None:
    uploaded.s3.create_bucket(Bucket="shared-results")
    uploaded.put("lab/raw/c.tif", bucket="shared-results")

    result = uploaded.submit(submit_doc(f"{GROUP}/inputs/a.tif", "s3://shared-results/lab/raw/c.tif",
                                        resultpath="s3://shared-results/lab/out"))

    assert result.outcome is Outcome.STARTED
    prefix = f"lab/out/job__{uploaded.settings.bucket_name}_{JOB}"
    assert result.location.result_argument == f"s3://shared-results/{prefix}"
    keys = uploaded.keys("lab/out/", bucket="shared-results")
    assert f"{prefix}/logs/certificate.txt" in keys and f"{prefix}/logs/job.json" in keys
    rows = bootscript.unpack_rows(result.plan.batches[0].user_data)
    assert [dataset for dataset, _ in rows] == [f"{GROUP}/inputs/a.tif", "s3://shared-results/lab/raw/c.tif"]
    assert not uploaded.keys(f"{GROUP}/results/")


def test_instance_type_override_and_bigger_root_volume(uploaded) -> None:
    uploaded.put(f"{GROUP}/configs/big.json", json.dumps({"__dataset_size__": 50, "__duration__": 30}))

    result = uploaded.submit(submit_doc(f"{GROUP}/inputs/a.tif", config=f"{GROUP}/configs/big.json",
                                        instance_type="m5.xlarge"))

    assert result.outcome is Outcome.STARTED
    [instance] = uploaded.instances()
    assert instance["InstanceType"] == "m5.xlarge"
    assert tags_of(instance)["Timeout"] == "30"
    root = result.plan.root_volume
    image = uploaded.ec2.describe_images(ImageIds=[uploaded.settings.ami])["Images"][0]
    base = next(m["Ebs"]["VolumeSize"] for m in image["BlockDeviceMappings"] if m["DeviceName"] == root.device_name)
    assert root.size_gb == base + 50


def test_the_plan_is_printable(uploaded) -> None:
    result = uploaded.submit(submit_doc(f"{GROUP}/inputs/a.tif", f"{GROUP}/inputs/b.tif"))
    text = result.plan.describe()
    assert "1 request(s) for 2 instance(s)" in text
    assert f"s3://{uploaded.settings.bucket_name}/{GROUP}/inputs/b.tif" in text
