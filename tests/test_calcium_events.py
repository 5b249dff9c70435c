"""The calcium-events example analysis: synthetic data, detection quality, outputs, configs and the script."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

IMAGE = Path(__file__).resolve().parents[1] / "blueprints" / "calcium-events" / "image"
if str(IMAGE) not in sys.path:
    sys.path.insert(0, str(IMAGE))

from calcium_events import analysis, evaluate, synthetic  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
OUTPUT_KINDS = ("rois.json", "dff.csv", "events.csv", "summary.json", "png")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return synthetic.write_dataset(tmp_path_factory.mktemp("data") / "movie.npz", seed=0)


@pytest.fixture(scope="module")
def default_run(dataset: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    outdir = tmp_path_factory.mktemp("out")
    summary = analysis.run(dataset[0], IMAGE / "params.yaml", outdir, progress=lambda _: None)
    return outdir, summary


def script_environment(data: Path, config: Path, outdir: Path) -> dict[str, str]:
    """What the remote side (neurocaas_agent.run) exports, with this interpreter's bin first on PATH (as the local runner does)."""
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "bucketname": "calcium-events", "groupdir": "lab", "dataname": data.name, "configname": config.name,
        "inputpath": f"lab/inputs/{data.name}", "configpath": f"lab/configs/{config.name}",
        "resultdir": "results/job__calcium-events_1", "processdir": "results/job__calcium-events_1/process_results",
        "localdatapath": str(data), "localconfigpath": str(config), "localoutdir": str(outdir),
    }


# ----------------------------------------------------------------------------- synthetic data


def test_generator_is_reproducible_and_has_the_requested_shape() -> None:
    movie, fs, truth = synthetic.make_dataset(seed=3, n_cells=5, n_frames=200, fs=20.0, shape=(48, 56))
    again, _, truth_again = synthetic.make_dataset(seed=3, n_cells=5, n_frames=200, fs=20.0, shape=(48, 56))
    other, _, _ = synthetic.make_dataset(seed=4, n_cells=5, n_frames=200, fs=20.0, shape=(48, 56))
    assert movie.shape == (200, 48, 56) and movie.dtype == np.float32 and fs == 20.0
    assert np.array_equal(movie, again) and truth == truth_again
    assert not np.array_equal(movie, other)
    assert len(truth["cells"]) == 5 and np.array(truth["dff"]).shape == (5, 200)
    for cell in truth["cells"]:
        assert 0 <= cell["centre"][0] < 48 and 0 <= cell["centre"][1] < 56
        assert all(0 <= t < 200 / 20.0 for t in cell["spike_times_s"])
        assert len(cell["events"]) >= 1 and cell["events"][0]["time_s"] == cell["spike_times_s"][0]
    assert sum(len(cell["events"]) for cell in truth["cells"]) == len(truth["events"])


def test_the_movie_file_holds_nothing_but_the_movie_and_its_frame_rate(dataset: tuple[Path, Path]) -> None:
    movie_file, truth_file = dataset
    assert truth_file == movie_file.with_name("movie.truth.json")
    with np.load(movie_file) as archive:
        assert sorted(archive.files) == ["fs", "movie"]
        assert archive["movie"].shape == (600, 64, 64) and float(archive["fs"]) == 15.0
    assert json.loads(truth_file.read_text())["seed"] == 0


# ----------------------------------------------------------------------------- quality


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_default_parameters_find_the_cells_and_their_events(seed: int) -> None:
    movie, fs, truth = synthetic.make_dataset(seed=seed)
    result = analysis.analyse(movie, fs)
    metrics = evaluate.evaluate(result.rois_document(), result.events, truth, result.dff)
    assert metrics["cell_recall"] >= 0.8
    assert metrics["cell_precision"] >= 0.8
    assert metrics["event_f1"] >= 0.7
    assert metrics["median_timing_error_s"] <= 2 / fs
    assert metrics["median_dff_correlation"] >= 0.7


def test_the_default_parameter_file_matches_the_defaults() -> None:
    document = yaml.safe_load((IMAGE / "params.yaml").read_text())
    assert {key: value for key, value in document.items()} == {k: v for k, v in analysis.DEFAULTS.items() if v is not None}


# ----------------------------------------------------------------------------- outputs


def test_all_output_files_are_written(default_run: tuple[Path, dict[str, Any]], dataset: tuple[Path, Path]) -> None:
    outdir, summary = default_run
    for kind in OUTPUT_KINDS:
        assert (outdir / f"movie.{kind}").is_file(), kind
    png = (outdir / "movie.png").read_bytes()
    assert png.startswith(PNG_SIGNATURE) and len(png) > 30_000

    rois = json.loads((outdir / "movie.rois.json").read_text())
    assert len(rois["cells"]) == summary["n_cells"] >= 1
    assert all(len(cell["centre"]) == 2 and cell["size_px"] >= 4 for cell in rois["cells"])

    with (outdir / "movie.events.csv").open(newline="") as source:
        events = list(csv.DictReader(source))
    assert events and set(events[0]) == {"cell", "time_s", "frame", "amplitude"}
    assert len(events) == summary["n_events"] == sum(summary["events_per_cell"])

    dff = np.loadtxt(outdir / "movie.dff.csv", delimiter=",", skiprows=1)
    assert dff.shape == (600, summary["n_cells"] + 1)
    assert summary["mean_dff"] == pytest.approx(dff[:, 1:].mean(), abs=1e-3)
    assert summary["parameters"] == {**analysis.DEFAULTS, "fs": 15.0}

    metrics = evaluate.evaluate_outputs(outdir, "movie", dataset[1])
    assert metrics["cell_recall"] >= 0.8 and metrics["event_f1"] >= 0.7


def test_the_evaluation_command_prints_the_metrics(default_run: tuple[Path, dict[str, Any]],
                                                   dataset: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert evaluate.main([str(default_run[0]), str(dataset[1])]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n_true_cells"] == 8 and 0.7 <= metrics["event_f1"] <= 1


# ----------------------------------------------------------------------------- parameters


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml"])
def test_json_and_yaml_parameters_are_read_and_unknown_keys_ignored(tmp_path: Path, suffix: str) -> None:
    document = {"event_threshold_sd": 5.0, "max_cells": 3, "__duration__": 30, "jobnb": 2, "colour": "blue"}
    config = tmp_path / f"params{suffix}"
    config.write_text(json.dumps(document) if suffix == ".json" else yaml.safe_dump(document))
    params, ignored = analysis.load_params(config)
    assert params == {**analysis.DEFAULTS, "event_threshold_sd": 5.0, "max_cells": 3}
    assert ignored == ["__duration__", "colour", "jobnb"]


def test_an_empty_parameter_file_means_the_defaults(tmp_path: Path) -> None:
    config = tmp_path / "empty.yaml"
    config.write_text("# nothing to change\n")
    assert analysis.load_params(config) == (analysis.DEFAULTS, [])


def test_a_json_config_changes_the_analysis(dataset: tuple[Path, Path], tmp_path: Path,
                                            default_run: tuple[Path, dict[str, Any]]) -> None:
    config = tmp_path / "params.json"
    config.write_text(json.dumps({"max_cells": 3, "event_threshold_sd": 6, "__duration__": 30, "jobnb": 1, "x": 1}))
    lines: list[str] = []
    summary = analysis.run(dataset[0], config, tmp_path / "out", progress=lines.append)
    assert summary["n_cells"] == 3
    assert summary["parameters"]["event_threshold_sd"] == 6
    assert summary["ignored_parameters"] == ["__duration__", "jobnb", "x"]
    assert "ignoring unknown parameters: x" in lines  # the job manager's own keys pass silently
    default_counts = default_run[1]["events_per_cell"][:3]
    assert sum(summary["events_per_cell"]) <= sum(default_counts)


@pytest.mark.parametrize("document, message", [
    ({"event_threshold_sd": "high"}, "event_threshold_sd must be a number"),
    ({"baseline_window_s": -1}, "baseline_window_s must be > 0"),
    ({"baseline_percentile": 150}, "baseline_percentile must be within 0..100"),
    ({"max_cells": 2.5}, "max_cells must be a whole number"),
    (["a", "list"], "must hold a mapping"),
])
def test_bad_parameters_are_explained(document: Any, message: str) -> None:
    with pytest.raises(analysis.AnalysisError, match=message):
        analysis.resolve_params(document)


# ----------------------------------------------------------------------------- the analysis script


def test_the_analysis_script_runs_with_neurocaas_variables(dataset: tuple[Path, Path], tmp_path: Path) -> None:
    data = tmp_path / "inputs" / "movie.npz"
    data.parent.mkdir()
    data.write_bytes(dataset[0].read_bytes())  # the truth file is not next to it, as on an instance
    config = tmp_path / "configs" / "config.yaml"
    config.parent.mkdir()
    config.write_text("baseline_window_s: 20\njobnb: 0\n")
    outdir = tmp_path / "results"
    outdir.mkdir()
    done = subprocess.run(["bash", str(IMAGE / "analysis.sh")], cwd=tmp_path, capture_output=True, text=True,
                          env=script_environment(data, config, outdir), timeout=60)
    assert done.returncode == 0, done.stderr
    assert "found 8 cells" in done.stdout and "done:" in done.stdout
    assert sorted(path.name for path in outdir.iterdir()) == sorted(f"movie.{kind}" for kind in OUTPUT_KINDS)
    summary = json.loads((outdir / "movie.summary.json").read_text())
    assert summary["parameters"]["baseline_window_s"] == 20


@pytest.mark.parametrize("content, message", [
    (b"frame,value\n1,2\n", "notes.npz is not a .npz movie"),
    (None, "has no array 'movie'"),
])
def test_the_analysis_script_fails_clearly_on_a_non_movie(tmp_path: Path, content: bytes | None, message: str) -> None:
    data = tmp_path / "notes.npz"
    if content is None:
        np.savez(data, frames=np.zeros(3))
    else:
        data.write_bytes(content)
    config = tmp_path / "config.json"
    config.write_text("{}")
    outdir = tmp_path / "results"
    done = subprocess.run(["bash", str(IMAGE / "analysis.sh")], cwd=tmp_path, capture_output=True, text=True,
                          env=script_environment(data, config, outdir), timeout=60)
    assert done.returncode != 0
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not any(outdir.glob("notes.*"))
