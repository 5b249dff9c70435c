"""Calcium imaging: find cells, extract ΔF/F traces, detect events. numpy/scipy only (matplotlib for the figure).

Steps:

1. **Summary image.** Each pixel's trace is high-pass filtered (minus a Gaussian running mean over
   ``highpass_s``), which removes bleaching, drift and slow neuropil changes; the *local correlation
   image* is each pixel's mean temporal correlation with its 8 neighbours. Pixels of an active cell
   correlate with each other, pure noise does not.
2. **Cells.** The correlation image is smoothed slightly; local maxima at least ``cell_diameter_px``
   apart that stand ``cell_threshold_sd`` robust SDs (MAD) above the image's median are cell centres
   (at most ``max_cells``, strongest first). Each ROI is the connected set of pixels around its peak,
   within one cell diameter, whose correlation is at least ``roi_fraction`` of the peak's; a pixel
   claimed twice goes to the nearer centre.
3. **Traces.** A ROI's fluorescence is the mean of its pixels, minus ``neuropil_coefficient`` times
   the mean of a surrounding annulus (other ROIs excluded).
4. **ΔF/F.** ``(F - F0) / F0`` with ``F0`` a running ``baseline_percentile`` percentile over
   ``baseline_window_s`` (then smoothed over the same window).
5. **Events.** The derivative of ΔF/F, smoothed with a Gaussian of ``event_smoothing_s``; its noise
   level is a robust SD (1.4826 x MAD); events are its peaks above ``event_threshold_sd`` SDs, at least
   ``min_event_separation_s`` apart. An event's time is its steepest rise (to a fraction of a frame); its amplitude is the ΔF/F
   rise from just before the event to the maximum within ``amplitude_window_s`` (or the next event).

Parameters come from a JSON or YAML file; missing keys take :data:`DEFAULTS`, unknown keys (such as
the job manager's ``__duration__`` or ``jobnb``) are ignored.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage, signal

from calcium_events.params import DEFAULTS, AnalysisError, load_params, resolve_params  # noqa: F401 (re-exported)


MIN_ROI_PIXELS = 4




def dataset_name(path: str | Path) -> str:
    """The name outputs are called after: the input file's name without ``.npz``."""
    name = Path(path).name
    return name[:-4] if name.lower().endswith(".npz") and len(name) > 4 else name


def load_movie(path: str | Path, fs: float | None = None) -> tuple[np.ndarray, float]:
    """A (T, H, W) float32 movie and its frame rate from a ``.npz`` (keys ``movie``, ``fs``).

    A folder dataset must hold exactly one ``.npz`` file. ``fs`` is used if the file has none.
    """
    path = Path(path)
    if path.is_dir():
        candidates = sorted(path.rglob("*.npz"))
        if len(candidates) != 1:
            raise AnalysisError(f"the dataset folder {path.name} must hold exactly one .npz movie, "
                                f"found {len(candidates)}")
        path = candidates[0]
    if not path.is_file():
        raise AnalysisError(f"the dataset {path} does not exist")
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception:
        raise AnalysisError(f"{path.name} is not a .npz movie (a numpy archive with a (T, H, W) array "
                            f"'movie' and a frame rate 'fs')") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise AnalysisError(f"{path.name} is a single .npy array, not a .npz movie with 'movie' and 'fs'")
    with archive:
        if "movie" not in archive.files:
            raise AnalysisError(f"{path.name} has no array 'movie' (it holds: {', '.join(archive.files) or 'nothing'})")
        try:
            movie = np.asarray(archive["movie"], dtype=np.float32)
        except (TypeError, ValueError):
            raise AnalysisError(f"the 'movie' in {path.name} is not numeric") from None
        if "fs" in archive.files:
            try:
                fs = float(archive["fs"])
            except (TypeError, ValueError):
                raise AnalysisError(f"the frame rate 'fs' in {path.name} is not a number") from None
    if movie.ndim != 3:
        raise AnalysisError(f"the movie must be 3-D (frames, height, width), but its shape is {movie.shape}")
    if movie.shape[0] < 20 or min(movie.shape[1:]) < 8:
        raise AnalysisError(f"the movie is too small to analyse: shape {movie.shape} "
                            "(need at least 20 frames of 8x8 pixels)")
    if fs is None:
        raise AnalysisError(f"{path.name} has no frame rate 'fs'; add it to the file or set fs in the parameters")
    if not (math.isfinite(fs) and fs > 0):
        raise AnalysisError(f"the frame rate must be a positive number, not {fs}")
    if not np.isfinite(movie).all():
        raise AnalysisError("the movie contains NaN or infinite values")
    return movie, fs


# ----------------------------------------------------------------------------- analysis


@dataclass
class Result:
    """Everything the analysis found."""

    fs: float
    shape: tuple[int, int, int]
    mean_image: np.ndarray
    correlation_image: np.ndarray
    threshold: float
    centres: np.ndarray                 # (K, 2) [row, col] intensity-weighted ROI centres
    peaks: np.ndarray                   # (K, 2) correlation peaks
    peak_values: np.ndarray             # (K,)
    masks: np.ndarray                   # (K, H, W) bool
    raw: np.ndarray                     # (K, T) ROI mean fluorescence
    neuropil: np.ndarray                # (K, T)
    dff: np.ndarray                     # (K, T)
    noise_sd: np.ndarray                # (K,) per-frame ΔF/F noise SD (from second differences)
    events: list[dict[str, Any]] = field(default_factory=list)   # cell (1-based), frame, time_s, amplitude
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def n_cells(self) -> int:
        return len(self.centres)

    @property
    def times(self) -> np.ndarray:
        return np.arange(self.shape[0]) / self.fs

    def rois_document(self, name: str = "") -> dict[str, Any]:
        """The content of ``{name}.rois.json``: each cell's centre, size and pixels."""
        cells = []
        for k in range(self.n_cells):
            rows, cols = np.nonzero(self.masks[k])
            size = int(len(rows))
            cells.append({
                "cell": k + 1,
                "centre": [round(float(c), 2) for c in self.centres[k]],
                "peak": [int(p) for p in self.peaks[k]],
                "size_px": size,
                "radius_px": round(math.sqrt(size / math.pi), 2),
                "peak_correlation": round(float(self.peak_values[k]), 4),
                "pixels": [[int(r), int(c)] for r, c in zip(rows, cols)],
            })
        return {"dataname": name, "shape": list(self.shape[1:]), "centre_convention": "[row, col] in pixels, 0-based",
                "detection_threshold": round(self.threshold, 4), "cells": cells}


def robust_sd(values: np.ndarray, axis: int | None = None) -> np.ndarray:
    """1.4826 x the median absolute deviation: the SD of Gaussian noise, insensitive to sparse outliers."""
    median = np.median(values, axis=axis, keepdims=True)
    return 1.4826 * np.median(np.abs(values - median), axis=axis)


def correlation_image(movie: np.ndarray, fs: float, highpass_s: float) -> np.ndarray:
    """Each pixel's mean correlation with its 8 neighbours, after a temporal high-pass."""
    highpassed = movie - ndimage.gaussian_filter1d(movie, sigma=highpass_s * fs, axis=0, mode="nearest")
    highpassed -= highpassed.mean(axis=0)
    sd = highpassed.std(axis=0)
    z = highpassed / np.where(sd > 0, sd, np.inf)
    n_frames, height, width = z.shape
    total = np.zeros((height, width))
    count = np.zeros((height, width))
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy == 0 and dx == 0:
                continue
            ys, yd = (slice(0, height - dy), slice(dy, height)) if dy >= 0 else (slice(-dy, height), slice(0, height + dy))
            xs, xd = (slice(0, width - dx), slice(dx, width)) if dx >= 0 else (slice(-dx, width), slice(0, width + dx))
            total[ys, xs] += np.einsum("tij,tij->ij", z[:, ys, xs], z[:, yd, xd]) / n_frames
            count[ys, xs] += 1
    return total / count


def find_cells(image: np.ndarray, params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Cell peaks (K, 2), their values, ROI masks (K, H, W) and the detection threshold."""
    smooth = ndimage.gaussian_filter(image, sigma=1.0)
    diameter = float(params["cell_diameter_px"])
    threshold = float(np.median(smooth) + params["cell_threshold_sd"] * robust_sd(smooth.ravel()))
    size = max(3, int(round(diameter)) | 1)
    is_peak = (smooth == ndimage.maximum_filter(smooth, size=size, mode="nearest")) & (smooth > threshold)
    rows, cols = np.nonzero(is_peak)
    order = np.argsort(smooth[rows, cols])[::-1]
    peaks = np.stack([rows[order], cols[order]], axis=1) if len(order) else np.zeros((0, 2), int)
    # Plateaus can give several maxima in one cell: keep the strongest of any closer than half a diameter.
    kept: list[np.ndarray] = []
    for peak in peaks:
        if all(np.hypot(*(peak - other)) >= diameter / 2 for other in kept):
            kept.append(peak)
    peaks = np.array(kept[: params["max_cells"]], dtype=int).reshape(-1, 2)

    height, width = image.shape
    grid_r, grid_c = np.mgrid[0:height, 0:width]
    candidates = []
    for peak in peaks:
        value = smooth[peak[0], peak[1]]
        level = max(threshold * 0.5, params["roi_fraction"] * value)
        near = np.hypot(grid_r - peak[0], grid_c - peak[1]) <= diameter
        labels, _ = ndimage.label((smooth >= level) & near)
        candidates.append(labels == labels[peak[0], peak[1]])
    if not candidates:
        return peaks, np.zeros(0), np.zeros((0, height, width), bool), threshold
    masks = np.array(candidates)
    # A pixel claimed by several ROIs goes to the nearest peak.
    distance = np.hypot(grid_r[None] - peaks[:, 0, None, None], grid_c[None] - peaks[:, 1, None, None])
    distance = np.where(masks, distance, np.inf)
    owner = np.argmin(distance, axis=0)
    masks &= owner[None] == np.arange(len(peaks))[:, None, None]
    keep = masks.sum(axis=(1, 2)) >= MIN_ROI_PIXELS
    return peaks[keep], smooth[peaks[keep, 0], peaks[keep, 1]], masks[keep], threshold


def extract_traces(movie: np.ndarray, masks: np.ndarray, diameter: float) -> tuple[np.ndarray, np.ndarray]:
    """ROI mean traces and their neuropil (annulus) traces, each (K, T)."""
    n_frames = movie.shape[0]
    flat = movie.reshape(n_frames, -1)
    occupied = ndimage.binary_dilation(masks.any(axis=0), iterations=1) if len(masks) else None
    inner = max(1, int(round(diameter / 4)))
    outer = max(inner + 2, int(round(diameter)))
    raw, neuropil = [], []
    for mask in masks:
        raw.append(flat[:, mask.ravel()].mean(axis=1))
        ring = ndimage.binary_dilation(mask, iterations=outer) & ~ndimage.binary_dilation(mask, iterations=inner)
        ring &= ~occupied
        neuropil.append(flat[:, ring.ravel()].mean(axis=1) if ring.sum() >= MIN_ROI_PIXELS else np.zeros(n_frames))
    empty = np.zeros((0, n_frames))
    return (np.array(raw) if raw else empty), (np.array(neuropil) if neuropil else empty)


def delta_f_over_f(trace: np.ndarray, fs: float, window_s: float, percentile: float, floor: float) -> np.ndarray:
    """(F - F0) / F0 with F0 a running percentile (smoothed), never below ``floor``."""
    window = int(round(window_s * fs)) | 1
    window = max(3, min(window, (len(trace) // 2) * 2 - 1))
    baseline = ndimage.percentile_filter(trace, percentile, size=window, mode="nearest")
    baseline = ndimage.uniform_filter1d(baseline, size=window, mode="nearest")
    baseline = np.maximum(baseline, floor)
    return (trace - baseline) / baseline


def frame_noise(trace: np.ndarray) -> float:
    """The SD of a trace's white noise, from its second differences (1.4826 x MAD / sqrt(6)).

    Second differences cancel the slow calcium decays and drifts, and the rare spike onsets do not
    move their median, so this holds for active cells too.
    """
    if len(trace) < 3:
        return 0.0
    return float(robust_sd(np.diff(trace, n=2)) / math.sqrt(6))


def _vertex(values: np.ndarray, i: int) -> float:
    """Sub-sample offset (-0.5..0.5) of a peak at ``i``, from the parabola through its neighbours."""
    if i <= 0 or i >= len(values) - 1:
        return 0.0
    left, centre, right = values[i - 1], values[i], values[i + 1]
    curvature = left - 2 * centre + right
    return float(np.clip(0.5 * (left - right) / curvature, -0.5, 0.5)) if curvature < 0 else 0.0


def detect_events(dff: np.ndarray, fs: float, params: dict[str, Any]) -> tuple[list[dict[str, Any]], float]:
    """Events of one ΔF/F trace (frame, time_s, amplitude) and the trace's per-frame noise SD."""
    sigma = max(params["event_smoothing_s"] * fs, 0.3)
    derivative = ndimage.gaussian_filter1d(dff, sigma=sigma, order=1, mode="nearest")
    noise = frame_noise(dff)
    # The derivative filter's gain on white noise turns the per-frame noise into the derivative's.
    impulse = np.zeros(8 * int(math.ceil(sigma)) + 9)
    impulse[len(impulse) // 2] = 1.0
    gain = float(np.linalg.norm(ndimage.gaussian_filter1d(impulse, sigma=sigma, order=1, mode="constant")))
    if noise <= 0:
        return [], noise
    distance = max(1, int(round(params["min_event_separation_s"] * fs)))
    frames, _ = signal.find_peaks(derivative, height=params["event_threshold_sd"] * noise * gain, distance=distance)
    smooth = ndimage.gaussian_filter1d(dff, sigma=sigma, mode="nearest")
    window = max(2, int(round(params["amplitude_window_s"] * fs)))
    events = []
    for i, frame in enumerate(frames):
        end = min(len(dff), frame + window, frames[i + 1] + 1 if i + 1 < len(frames) else len(dff))
        before = smooth[max(0, frame - 2)]
        peak = smooth[frame:max(end, frame + 2)].max()
        events.append({"frame": int(frame), "time_s": (frame + _vertex(derivative, frame)) / fs,
                       "amplitude": float(peak - before)})
    return events, noise


def analyse(movie: np.ndarray, fs: float, params: dict[str, Any] | None = None,
            progress: Callable[[str], None] = lambda _: None) -> Result:
    """Run the whole analysis on a movie."""
    params = resolve_params(params or {})[0]
    progress(f"computing the correlation image of {movie.shape[0]} frames of {movie.shape[1]}x{movie.shape[2]} px")
    image = correlation_image(movie, fs, params["highpass_s"])
    peaks, values, masks, threshold = find_cells(image, params)
    progress(f"found {len(peaks)} cells; extracting traces")
    raw, neuropil = extract_traces(movie, masks, params["cell_diameter_px"])
    corrected = raw - params["neuropil_coefficient"] * neuropil
    n_frames = movie.shape[0]
    dff = np.zeros((len(peaks), n_frames))
    noise = np.zeros(len(peaks))
    events: list[dict[str, Any]] = []
    mean_image = movie.mean(axis=0)
    centres = np.zeros((len(peaks), 2))
    for k in range(len(peaks)):
        weights = mean_image * masks[k]
        rows, cols = np.nonzero(masks[k])
        w = weights[rows, cols] - weights[rows, cols].min() + 1e-9
        centres[k] = [np.average(rows, weights=w), np.average(cols, weights=w)]
        floor = 0.1 * float(np.median(raw[k]))
        dff[k] = delta_f_over_f(corrected[k], fs, params["baseline_window_s"], params["baseline_percentile"], floor)
        cell_events, noise[k] = detect_events(dff[k], fs, params)
        events.extend({"cell": k + 1, **event} for event in cell_events)
    progress(f"detected {len(events)} events")
    events.sort(key=lambda event: (event["time_s"], event["cell"]))
    return Result(fs=fs, shape=movie.shape, mean_image=mean_image, correlation_image=image, threshold=threshold,
                  centres=centres, peaks=peaks, peak_values=values, masks=masks, raw=raw, neuropil=neuropil,
                  dff=dff, noise_sd=noise, events=events, params=params)


# ----------------------------------------------------------------------------- outputs


def write_outputs(result: Result, outdir: str | Path, name: str, extra: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write rois.json, dff.csv, events.csv, summary.json and the figure; returns their paths."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    files = {kind: outdir / f"{name}.{kind}" for kind in ("rois.json", "dff.csv", "events.csv", "summary.json")}
    files["png"] = outdir / f"{name}.png"

    files["rois.json"].write_text(json.dumps(result.rois_document(name), indent=1))

    with files["dff.csv"].open("w", newline="") as sink:
        writer = csv.writer(sink)
        writer.writerow(["time_s"] + [f"cell_{k + 1}" for k in range(result.n_cells)])
        for t, row in zip(result.times, result.dff.T if result.n_cells else [[]] * result.shape[0]):
            writer.writerow([f"{t:.4f}"] + [f"{v:.5f}" for v in row])

    with files["events.csv"].open("w", newline="") as sink:
        writer = csv.writer(sink)
        writer.writerow(["cell", "time_s", "frame", "amplitude"])
        for event in result.events:
            writer.writerow([event["cell"], f"{event['time_s']:.4f}", event["frame"], f"{event['amplitude']:.4f}"])

    duration = result.shape[0] / result.fs
    per_cell = [sum(1 for event in result.events if event["cell"] == k + 1) for k in range(result.n_cells)]
    mean_dff = [float(row.mean()) for row in result.dff]
    summary = {
        "dataname": name,
        "n_frames": int(result.shape[0]),
        "frame_rate_hz": result.fs,
        "duration_s": round(duration, 3),
        "image_shape": list(result.shape[1:]),
        "n_cells": result.n_cells,
        "n_events": len(result.events),
        "events_per_cell": per_cell,
        "event_rate_hz": [round(n / duration, 4) for n in per_cell],
        "mean_dff": round(float(np.mean(mean_dff)), 5) if mean_dff else None,
        "mean_dff_per_cell": [round(v, 5) for v in mean_dff],
        "max_dff_per_cell": [round(float(row.max()), 4) for row in result.dff],
        "noise_sd_per_cell": [round(float(v), 5) for v in result.noise_sd],
        "mean_event_amplitude": (round(float(np.mean([e["amplitude"] for e in result.events])), 4)
                                 if result.events else None),
        "parameters": result.params,
        **(extra or {}),
        "files": {kind: path.name for kind, path in files.items()},
    }
    files["summary.json"].write_text(json.dumps(summary, indent=1))
    from calcium_events.figure import draw  # matplotlib only when writing
    draw(result, name, files["png"])
    return files


def run(input_path: str | Path, config_path: str | Path | None, outdir: str | Path,
        name: str | None = None, progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Load, analyse, write. Returns the summary."""
    started = time.perf_counter()
    params, ignored = load_params(config_path)
    if ignored:
        shown = [key for key in ignored if not (key.startswith("__") or key == "jobnb")]
        if shown:
            progress(f"ignoring unknown parameters: {', '.join(shown)}")
    name = name or dataset_name(input_path)
    progress(f"loading {Path(input_path).name}")
    movie, fs = load_movie(input_path, params["fs"])
    params["fs"] = fs
    result = analyse(movie, fs, params, progress)
    progress("writing results and figure")
    files = write_outputs(result, outdir, name, {"ignored_parameters": ignored})
    summary = json.loads(files["summary.json"].read_text())
    summary["runtime_s"] = round(time.perf_counter() - started, 3)
    files["summary.json"].write_text(json.dumps(summary, indent=1))
    progress(f"done: {result.n_cells} cells, {len(result.events)} events in {summary['runtime_s']:.1f} s")
    return summary
