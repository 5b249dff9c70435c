"""Declared parameters (a JSON Schema in the blueprint folder): refused at step 2, before any instance,
naming the key with a "did you mean"; the same rule the CLI runs before uploading."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chalicelib.analysiscard import CARD_KEY, AnalysisCard
from chalicelib.blueprint import load_blueprint
from chalicelib.exceptions import SubmissionRefused
from chalicelib.jobmanager import Outcome
from chalicelib.parameters import parse_parameters
from tests.conftest import BUCKET, submit_doc
from tests.refusals.conftest import CONFIG, A, assert_refused_job

BLUEPRINTS = Path(__file__).parents[2] / "blueprints"
CALCIUM = load_blueprint(BLUEPRINTS / "calcium-events")
SCHEMA: dict[str, Any] = CALCIUM.parameters_schema or {}


def refusal(name: str, body: str) -> str:
    with pytest.raises(SubmissionRefused) as caught:
        parse_parameters(name, body.encode(), SCHEMA)
    return caught.value.message


def test_both_examples_declare_their_parameters() -> None:
    assert set(SCHEMA["properties"]) >= {"event_threshold_sd", "max_cells", "baseline_window_s"}
    assert all("description" in p and "default" in p for p in SCHEMA["properties"].values())
    spikes = load_blueprint(BLUEPRINTS / "ephys-spikes").parameters_schema
    assert spikes is not None and set(spikes["properties"]) == {"band_hz", "threshold_sd", "refractory_ms"}


@pytest.mark.parametrize("body, fragments", [
    ("event_treshold_sd: 10\n", ["unknown parameter `event_treshold_sd`", "did you mean `event_threshold_sd`?"]),
    ("max_cells: fifteen\n", ["`max_cells`", "'fifteen' is not of type 'integer'"]),
    ("baseline_window_s: -3\n", ["`baseline_window_s`", "-3"]),
    ("roi_fraction: 1.5\n", ["`roi_fraction`", "1.5"]),
    ("colour: blue\n", ["unknown parameter `colour`", "known: amplitude_window_s"]),
])
def test_a_bad_parameter_is_named(body: str, fragments: list[str]) -> None:
    message = refusal("params.yaml", body)
    for fragment in fragments:
        assert fragment in message, message


def test_valid_files_and_the_special_keys_pass() -> None:
    body = b"event_threshold_sd: 4\nfs: null\n__duration__: 20\nensemble_size: 2\n"
    assert parse_parameters("p.yaml", body, SCHEMA).duration_minutes == 20
    assert parse_parameters("p.json", b'{"max_cells": 3}', SCHEMA).document == {"max_cells": 3}
    assert parse_parameters("p.yaml", b"anything: goes\n", None).document == {"anything": "goes"}


@pytest.mark.parametrize("name, body, where", [
    ("p.yaml", "max_cells: 3\nfs: [1,\n", "line 3, column 1"),
    ("p.yaml", "a: 1\n  b: 2\n", "line 2, column 4"),
    ("p.json", '{\n  "max_cells": 3,\n}', "line 3, column 1"),
])
def test_syntax_errors_give_line_and_column(name: str, body: str, where: str) -> None:
    message = refusal(name, body)
    assert "does not parse at " + where in message, message


def test_the_job_manager_refuses_a_typo_before_any_instance(uploaded) -> None:
    uploaded.put(CARD_KEY, AnalysisCard.of(uploaded.settings, SCHEMA).to_bytes())
    uploaded.put(CONFIG, "event_treshold_sd: 10\n")
    try:
        result = uploaded.submit(submit_doc(A))
    finally:
        uploaded.s3.delete_object(Bucket=BUCKET, Key=CARD_KEY)
    assert_refused_job(uploaded, result, "did you mean `event_threshold_sd`?")
    assert "STEP 2/4 (Validation): SUBMISSION ERROR." in uploaded.certificate(result.record.job_id)


def test_without_a_card_the_job_manager_checks_only_the_special_keys(uploaded) -> None:
    uploaded.put(CONFIG, "event_treshold_sd: 10\n")
    assert uploaded.submit(submit_doc(A)).outcome is Outcome.STARTED
