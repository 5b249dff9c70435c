"""Compare an analysis's results with the ground truth of a synthetic dataset.

Cells: detected ROI centres are matched one-to-one to true cell centres (Hungarian assignment on the
centre distance, pairs farther than ``max_distance_px`` are not matches). Events: within each matched
cell, detected event times are matched one-to-one to true events within ``tolerance_s``. Events of
unmatched detected cells are false positives; events of missed true cells are misses.

Command line: ``python -m calcium_events.evaluate OUTDIR TRUTH.json [--name NAME]`` prints the metrics as JSON.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

MAX_DISTANCE_PX = 4.0
TOLERANCE_S = 0.25


def _load_json(value: Any) -> Any:
    if isinstance(value, (str, Path)):
        return json.loads(Path(value).read_text())
    return value


def load_events(value: Any) -> list[dict[str, Any]]:
    """Events as a list of {cell, time_s, ...} from an events.csv path or a list of mappings."""
    if isinstance(value, (str, Path)):
        with Path(value).open(newline="") as source:
            return [{"cell": int(row["cell"]), "time_s": float(row["time_s"]),
                     "amplitude": float(row["amplitude"])} for row in csv.DictReader(source)]
    return [dict(event) for event in value]


def load_dff(value: Any) -> np.ndarray | None:
    """(K, T) traces from a dff.csv path or an array."""
    if value is None:
        return None
    if isinstance(value, (str, Path)):
        data = np.loadtxt(value, delimiter=",", skiprows=1, ndmin=2)
        return data[:, 1:].T
    return np.asarray(value)


def _match(cost: np.ndarray, limit: float) -> list[tuple[int, int, float]]:
    """One-to-one pairs (i, j, cost) with cost <= limit, minimising the total cost."""
    if cost.size == 0:
        return []
    big = limit * 1e3 + 1e6
    rows, cols = linear_sum_assignment(np.where(cost <= limit, cost, big))
    return [(int(i), int(j), float(cost[i, j])) for i, j in zip(rows, cols) if cost[i, j] <= limit]


def _ratio(a: int, b: int) -> float:
    return a / b if b else float("nan")


def evaluate(rois: Any, events: Any, truth: Any, dff: Any = None, *, max_distance_px: float = MAX_DISTANCE_PX,
             tolerance_s: float = TOLERANCE_S) -> dict[str, Any]:
    """Metrics of detected cells and events against the truth.

    ``rois``: a rois.json path or its content; ``events``: an events.csv path or a list of
    {cell (1-based), time_s}; ``truth``: a truth.json path or its content; ``dff``: optionally a
    dff.csv path or a (K, T) array, to correlate the matched cells' ΔF/F with the true ΔF/F.
    """
    rois, truth = _load_json(rois), _load_json(truth)
    events = load_events(events)
    detected = np.array([cell["centre"] for cell in rois["cells"]], dtype=float).reshape(-1, 2)
    true = np.array([cell["centre"] for cell in truth["cells"]], dtype=float).reshape(-1, 2)
    distance = np.linalg.norm(detected[:, None] - true[None], axis=2) if len(detected) and len(true) \
        else np.zeros((len(detected), len(true)))
    pairs = _match(distance, max_distance_px)

    by_cell: dict[int, list[float]] = {}
    for event in events:
        by_cell.setdefault(int(event["cell"]), []).append(float(event["time_s"]))
    detected_ids = [int(cell["cell"]) for cell in rois["cells"]]
    true_events = [[event["time_s"] for event in cell["events"]] for cell in truth["cells"]]

    hits, errors = 0, []
    matched_detected = matched_true = 0
    per_cell = []
    for i, j, d in pairs:
        found = np.array(sorted(by_cell.get(detected_ids[i], [])))
        wanted = np.array(true_events[j])
        cost = np.abs(found[:, None] - wanted[None]) if len(found) and len(wanted) else np.zeros((len(found), len(wanted)))
        event_pairs = _match(cost, tolerance_s)
        hits += len(event_pairs)
        errors.extend(float(found[a] - wanted[b]) for a, b, _ in event_pairs)
        matched_detected += len(found)
        matched_true += len(wanted)
        per_cell.append({"detected_cell": detected_ids[i], "true_cell": truth["cells"][j]["id"],
                         "distance_px": round(d, 3), "detected_events": len(found), "true_events": len(wanted),
                         "matched_events": len(event_pairs)})

    n_detected_events = sum(len(times) for times in by_cell.values())
    n_true_events = sum(len(times) for times in true_events)
    precision, recall = _ratio(hits, n_detected_events), _ratio(hits, n_true_events)
    f1 = 2 * hits / (n_detected_events + n_true_events) if n_detected_events + n_true_events else float("nan")
    m_precision, m_recall = _ratio(hits, matched_detected), _ratio(hits, matched_true)
    metrics: dict[str, Any] = {
        "n_true_cells": len(true),
        "n_detected_cells": len(detected),
        "n_matched_cells": len(pairs),
        "cell_recall": _ratio(len(pairs), len(true)),
        "cell_precision": _ratio(len(pairs), len(detected)),
        "median_centre_error_px": float(np.median([d for _, _, d in pairs])) if pairs else float("nan"),
        "n_true_events": n_true_events,
        "n_detected_events": n_detected_events,
        "n_matched_events": hits,
        "event_precision": precision,
        "event_recall": recall,
        "event_f1": f1,
        "event_f1_matched_cells": (2 * hits / (matched_detected + matched_true)
                                   if matched_detected + matched_true else float("nan")),
        "event_precision_matched_cells": m_precision,
        "event_recall_matched_cells": m_recall,
        "median_timing_error_s": float(np.median(np.abs(errors))) if errors else float("nan"),
        "median_timing_bias_s": float(np.median(errors)) if errors else float("nan"),
        "max_distance_px": max_distance_px,
        "tolerance_s": tolerance_s,
        "cells": per_cell,
    }
    traces = load_dff(dff) if pairs and "dff" in truth else None
    if traces is not None:
        true_dff = np.asarray(truth["dff"])
        correlations = [float(np.corrcoef(traces[i], true_dff[j])[0, 1]) for i, j, _ in pairs]
        metrics["median_dff_correlation"] = float(np.median(correlations))
        for entry, r in zip(per_cell, correlations):
            entry["dff_correlation"] = round(r, 4)
    return metrics


def evaluate_outputs(outdir: str | Path, name: str, truth: Any, **options: Any) -> dict[str, Any]:
    """:func:`evaluate` on the files the analysis wrote to ``outdir`` for dataset ``name``."""
    outdir = Path(outdir)
    dff = outdir / f"{name}.dff.csv"
    return evaluate(outdir / f"{name}.rois.json", outdir / f"{name}.events.csv", truth,
                    dff if dff.is_file() else None, **options)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m calcium_events.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", help="the folder the analysis wrote its results to")
    parser.add_argument("truth", help="the dataset's {name}.truth.json")
    parser.add_argument("--name", help="the dataset name of the result files (default: from the truth file's name)")
    parser.add_argument("--max-distance", type=float, default=MAX_DISTANCE_PX, help="cell match distance (px)")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE_S, help="event match tolerance (s)")
    args = parser.parse_args(argv)
    name = args.name or Path(args.truth).name.removesuffix(".json").removesuffix(".truth")
    metrics = evaluate_outputs(args.outdir, name, args.truth, max_distance_px=args.max_distance,
                               tolerance_s=args.tolerance)
    print(json.dumps(metrics, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
