"""The deployed entry point: Chalice's S3 handler, its settings, and URL-encoded event keys."""

from __future__ import annotations

import json
from urllib.parse import quote_plus

import pytest
from chalice.test import Client

from chalicelib import handlers
from tests.conftest import GROUP, submit_doc


@pytest.fixture
def lambda_env(uploaded, monkeypatch):
    handlers.reset()
    for name, value in uploaded.settings.to_environ().items():
        monkeypatch.setenv(name, value)
    yield uploaded
    handlers.reset()


def invoke(app_module, bucket: str, key: str) -> None:
    with Client(app_module.app) as client:
        event = client.events.generate_s3_event(bucket=bucket, key=quote_plus(key))
        response = client.lambda_.invoke("on_submit", event)
        assert response.payload is None or "errorMessage" not in json.dumps(response.payload), response.payload


def test_an_encoded_submit_key_with_spaces_starts_its_job(lambda_env) -> None:
    import app

    lambda_env.put(f"{GROUP}/inputs/my movie+1.tif")
    key = f"{GROUP}/submissions/first try submit.json"
    lambda_env.put(key, submit_doc(f"{GROUP}/inputs/my movie+1.tif"))

    invoke(app, lambda_env.settings.bucket_name, key)

    assert len(lambda_env.instances()) == 1
    assert lambda_env.record("2026-11-25T10-00-00")["submit_key"] == key


def test_settings_are_read_when_the_event_arrives(lambda_env, monkeypatch) -> None:
    import app

    monkeypatch.setenv("INSTANCE_TYPE", "m5.xlarge")
    lambda_env.put(f"{GROUP}/submissions/submit.json", submit_doc(f"{GROUP}/inputs/a.tif"))

    invoke(app, lambda_env.settings.bucket_name, f"{GROUP}/submissions/submit.json")

    [instance] = lambda_env.instances()
    assert instance["InstanceType"] == "m5.xlarge"


def test_the_trigger_is_registered_for_submit_files_of_the_stage_bucket() -> None:
    import app

    [config] = [h for h in app.app.event_sources if h.name == "on_submit"]
    assert config.suffix == "submit.json"
    assert config.events == ["s3:ObjectCreated:*"]
