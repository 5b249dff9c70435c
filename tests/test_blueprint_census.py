"""Every NeuroCAAS blueprint shape either loads or is refused naming the keys to fix (issue 16).

The real blueprints in tests/fixtures/neurocaas_blueprints plus shapes written for these tests
(tests/fixtures/neurocaas_shapes); the figure for NeuroCAAS's whole repository is in the README.
"""

from __future__ import annotations

import pytest

from service.blueprint_census import census, main
from tests.conftest import FIXTURES, NEUROCAAS_BLUEPRINTS

SHAPES = FIXTURES / "neurocaas_shapes"
# Folder -> the keys its refusal names (empty: it loads).
EXPECTED: dict[str, set[str]] = {
    "cianalysispermastack": set(),
    "dlc2_web_stack": set(),
    "ensemble_dgp_web_stack": set(),
    "widefield_dev_stack": {"PipelineName", "REGION", "Lambda.LambdaConfig.INSTANCE_TYPE",
                            "Lambda.LambdaConfig.MAXCOST", "UXData.Affiliates.1.AffiliateName"},
    "three_placeholders": set(),  # NeuroCAAS filled COMMAND with str.format: fewer than four is valid
    "no_placeholders": set(),
    "hash_comment": set(),
    "contrib_cli": set(),
    "eight_placeholders": {"Lambda.LambdaConfig.COMMAND"},
    "custom_protocol": {"Lambda.Handler"},
    "unfilled_template": {"PipelineName", "Lambda.LambdaConfig.AMI", "Lambda.LambdaConfig.INSTANCE_TYPE"},
}


@pytest.fixture(scope="module")
def verdicts() -> dict[str, set[str]]:
    return {v.path.parent.name: set(v.keys) for v in census([NEUROCAAS_BLUEPRINTS, SHAPES])}


@pytest.mark.parametrize("folder", sorted(EXPECTED))
def test_a_blueprint_loads_or_is_refused_naming_the_keys_to_fix(verdicts: dict[str, set[str]], folder: str) -> None:
    assert verdicts[folder] == EXPECTED[folder]


def test_the_census_covers_every_fixture(verdicts: dict[str, set[str]]) -> None:
    assert set(verdicts) == set(EXPECTED)


def test_the_script_prints_the_figure(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(NEUROCAAS_BLUEPRINTS), str(SHAPES)]) == 0

    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1] == "7 of 11 load; 4 refused, 4 of them naming the keys to fix"
    assert "refused" in out and "Lambda.Handler: names a custom NeuroCAAS protocol" in out
