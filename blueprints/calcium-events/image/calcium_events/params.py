"""The analysis's parameters: defaults, and reading them from a JSON or YAML parameter file."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml

#: Parameter defaults, with what each means. See also ``params.yaml`` in the image.
DEFAULTS: dict[str, Any] = {
    "baseline_window_s": 15.0,       # running-percentile window for the ΔF/F baseline F0 (s)
    "baseline_percentile": 10.0,     # which percentile of the trace in that window is F0
    "event_threshold_sd": 3.5,       # event threshold on the smoothed ΔF/F derivative (noise SDs)
    "min_event_separation_s": 0.3,   # minimum time between two events of one cell (s)
    "event_smoothing_s": 0.07,       # Gaussian smoothing of ΔF/F before differentiating (s)
    "amplitude_window_s": 1.0,       # window after an event's onset in which its peak is looked for (s)
    "max_cells": 50,                 # at most this many cells, strongest first
    "cell_diameter_px": 8.0,         # expected cell diameter (px): peak spacing and ROI extent
    "cell_threshold_sd": 6.0,        # a cell's correlation peak must stand this many robust SDs above the median
    "roi_fraction": 0.4,             # a ROI holds the connected pixels above this fraction of its peak
    "neuropil_coefficient": 0.7,     # F = F_roi - coefficient * F_neuropil
    "highpass_s": 2.0,               # high-pass time scale for the correlation image (s)
    "fs": None,                      # frame rate (Hz) if the movie file does not carry one
}


class AnalysisError(ValueError):
    """A problem with the inputs or parameters, explained for the user."""


# ----------------------------------------------------------------------------- inputs


def load_params(path: str | Path | None) -> tuple[dict[str, Any], list[str]]:
    """Parameters from a JSON/YAML file merged over the defaults, and the unknown keys that were ignored."""
    document: Any = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise AnalysisError(f"the parameter file {path} does not exist")
        text = path.read_text()
        try:
            document = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as error:
            kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
            raise AnalysisError(f"the parameter file {path.name} is not valid {kind}: {error}") from None
    return resolve_params(document or {})


def resolve_params(document: Any) -> tuple[dict[str, Any], list[str]]:
    """Validate a parameter mapping; returns (parameters, ignored unknown keys)."""
    if not isinstance(document, dict):
        raise AnalysisError(f"the parameter file must hold a mapping of names to values, not {type(document).__name__}")
    params = dict(DEFAULTS)
    ignored = sorted(str(key) for key in document if key not in DEFAULTS)
    for key in DEFAULTS:
        if key not in document or document[key] is None:
            continue
        value = document[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise AnalysisError(f"parameter {key} must be a number, not {value!r}")
        if not math.isfinite(value):
            raise AnalysisError(f"parameter {key} must be finite, not {value!r}")
        params[key] = value
    positive = ["baseline_window_s", "event_threshold_sd", "event_smoothing_s", "amplitude_window_s",
                "cell_diameter_px", "highpass_s"]
    for key in positive:
        if params[key] <= 0:
            raise AnalysisError(f"parameter {key} must be > 0, not {params[key]}")
    for key in ("min_event_separation_s", "cell_threshold_sd", "neuropil_coefficient"):
        if params[key] < 0:
            raise AnalysisError(f"parameter {key} must be >= 0, not {params[key]}")
    if not 0 <= params["baseline_percentile"] <= 100:
        raise AnalysisError(f"parameter baseline_percentile must be within 0..100, not {params['baseline_percentile']}")
    if not 0 < params["roi_fraction"] < 1:
        raise AnalysisError(f"parameter roi_fraction must be within 0..1 (exclusive), not {params['roi_fraction']}")
    if params["fs"] is not None and params["fs"] <= 0:
        raise AnalysisError(f"parameter fs must be > 0, not {params['fs']}")
    if params["max_cells"] < 1 or int(params["max_cells"]) != params["max_cells"]:
        raise AnalysisError(f"parameter max_cells must be a whole number >= 1, not {params['max_cells']}")
    params["max_cells"] = int(params["max_cells"])
    return params, ignored
