"""Synthetic two-photon calcium movies with known ground truth.

The model, per pixel ``x`` and frame ``t`` (in photons per pixel per frame)::

    F(x, t) = bleach(t) * [ B(x) * (1 + n(t))  +  sum_k  F0_k * A_k(x) * (1 + c_k(t)) ]
    movie   = Poisson(F) + Gaussian read noise

* ``A_k``: an elliptical Gaussian footprint (peak 1) at a known centre, random size and orientation;
* ``c_k``: the cell's true ΔF/F: its spike train (Poisson) convolved with a calcium kernel
  (fast exponential rise, exponential decay), each spike with its own amplitude;
* ``B``: a spatially smooth neuropil/background field; ``n(t)``: its slow fluctuation;
* ``bleach``: exponential photobleaching times a slow drift.

The movie file (``.npz``) holds only ``movie`` (T, H, W) float32 and ``fs`` (Hz); the ground truth
goes to a separate ``{name}.truth.json`` next to it, so an analysis cannot peek at it.

True *events* are spikes grouped into bursts: a spike closer than ``event_merge_s`` to the previous
one belongs to the same event (an event's time is its first spike's).

Command line: ``python -m calcium_events.synthetic OUT.npz [--seed N] [--cells K] [--frames T] [--fs HZ]``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

#: Knobs of the generator, with their defaults (all can be passed to :func:`make_dataset`).
GENERATOR_DEFAULTS: dict[str, Any] = {
    "cell_sigma_px": (1.8, 2.8),       # range of the footprint's Gaussian widths
    "min_cell_distance_px": 10.0,      # minimum distance between cell centres
    "cell_brightness": 30.0,           # median resting photons per frame at a footprint's peak
    "background": 25.0,                # mean neuropil/background photons per pixel per frame
    "neuropil_fluctuation": 0.05,      # relative size of the background's slow fluctuation
    "rate_hz": (0.15, 0.4),            # range of the cells' spike rates
    "min_spikes": 3,                   # every cell fires at least this often (silent cells are invisible)
    "spike_amplitude": 0.45,           # median ΔF/F of one spike (lognormal)
    "spike_amplitude_spread": 0.3,     # lognormal sigma of the spike amplitudes
    "tau_rise_s": 0.05,
    "tau_decay_s": 0.7,
    "bleach_tau_s": 300.0,             # photobleaching time constant
    "drift": 0.02,                     # relative amplitude of a slow (~1/60 Hz) drift
    "read_noise": 1.5,                 # Gaussian read noise (photons)
    "event_merge_s": 0.25,             # spikes closer than this form one event
}


def calcium_kernel(t: np.ndarray, tau_rise_s: float, tau_decay_s: float) -> np.ndarray:
    """Difference of exponentials, zero before 0, peak 1."""
    t = np.asarray(t, dtype=float)
    kernel = np.where(t >= 0, np.exp(-np.clip(t, 0, None) / tau_decay_s) - np.exp(-np.clip(t, 0, None) / tau_rise_s), 0.0)
    peak_t = tau_rise_s * tau_decay_s / (tau_decay_s - tau_rise_s) * np.log(tau_decay_s / tau_rise_s)
    peak = np.exp(-peak_t / tau_decay_s) - np.exp(-peak_t / tau_rise_s)
    return kernel / peak


def footprint(shape: tuple[int, int], centre: tuple[float, float], sigma: tuple[float, float],
              angle_deg: float) -> np.ndarray:
    """An elliptical Gaussian (peak 1) centred at ``centre`` = (row, col)."""
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    dy, dx = rows - centre[0], cols - centre[1]
    angle = np.deg2rad(angle_deg)
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    return np.exp(-0.5 * ((u / sigma[1]) ** 2 + (v / sigma[0]) ** 2))


def render_footprints(truth: dict[str, Any]) -> np.ndarray:
    """The true footprints (K, H, W) of a ground-truth record."""
    shape = tuple(truth["shape"])
    return np.array([footprint(shape, cell["centre"], cell["sigma_px"], cell["angle_deg"]) for cell in truth["cells"]])


def group_events(spike_times: np.ndarray, amplitudes: np.ndarray, merge_s: float) -> list[dict[str, float]]:
    """Spikes closer than ``merge_s`` to the previous spike join its event."""
    events: list[dict[str, float]] = []
    last = -np.inf
    for time, amplitude in zip(spike_times, amplitudes):
        if events and time - last < merge_s:
            events[-1]["amplitude"] += float(amplitude)
            events[-1]["n_spikes"] += 1
        else:
            events.append({"time_s": float(time), "amplitude": float(amplitude), "n_spikes": 1})
        last = time
    for event in events:
        event["time_s"] = round(event["time_s"], 4)
        event["amplitude"] = round(event["amplitude"], 4)
    return events


def _place_cells(rng: np.random.Generator, n_cells: int, shape: tuple[int, int], margin: float,
                 min_distance: float) -> np.ndarray:
    centres: list[np.ndarray] = []
    for _ in range(10000):
        if len(centres) == n_cells:
            break
        candidate = rng.uniform([margin, margin], [shape[0] - 1 - margin, shape[1] - 1 - margin])
        if all(np.hypot(*(candidate - other)) >= min_distance for other in centres):
            centres.append(candidate)
    if len(centres) < n_cells:
        raise ValueError(f"cannot place {n_cells} cells {min_distance} px apart in a {shape[0]}x{shape[1]} field")
    return np.array(centres)


def _smooth_noise(rng: np.random.Generator, n: int, sigma: float) -> np.ndarray:
    """Unit-SD Gaussian noise smoothed over ``sigma`` samples."""
    noise = ndimage.gaussian_filter1d(rng.standard_normal(n), sigma, mode="wrap")
    return noise / (noise.std() or 1.0)


def make_dataset(seed: int = 0, n_cells: int = 8, n_frames: int = 600, fs: float = 15.0,
                 shape: tuple[int, int] = (64, 64), **options: Any) -> tuple[np.ndarray, float, dict[str, Any]]:
    """A synthetic movie (T, H, W) float32, its frame rate and its ground truth.

    ``options`` override :data:`GENERATOR_DEFAULTS`. The same arguments give the same movie.
    """
    unknown = set(options) - set(GENERATOR_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown generator options: {sorted(unknown)}")
    p = {**GENERATOR_DEFAULTS, **options}
    rng = np.random.default_rng(seed)
    height, width = shape
    times = np.arange(n_frames) / fs
    duration = n_frames / fs

    # Cells: positions, footprints, brightness, spikes.
    margin = 2.5 * p["cell_sigma_px"][1]
    centres = _place_cells(rng, n_cells, shape, margin, p["min_cell_distance_px"])
    cells: list[dict[str, Any]] = []
    signal = np.zeros((n_frames, height, width))
    dff_true = np.zeros((n_cells, n_frames))
    resting = np.zeros((height, width))
    for k, centre in enumerate(centres):
        sigma = tuple(float(s) for s in rng.uniform(*p["cell_sigma_px"], size=2))
        angle = float(rng.uniform(0, 180))
        shape_k = footprint(shape, tuple(centre), sigma, angle)
        brightness = float(p["cell_brightness"] * rng.uniform(0.7, 1.4))
        rate = float(rng.uniform(*p["rate_hz"]))
        n_spikes = max(int(rng.poisson(rate * duration)), p["min_spikes"])
        spikes = np.sort(rng.uniform(0, duration - 0.5, size=n_spikes))
        amplitudes = p["spike_amplitude"] * rng.lognormal(0.0, p["spike_amplitude_spread"], size=n_spikes)
        trace = np.zeros(n_frames)
        for spike, amplitude in zip(spikes, amplitudes):
            trace += amplitude * calcium_kernel(times - spike, p["tau_rise_s"], p["tau_decay_s"])
        dff_true[k] = trace
        resting += brightness * shape_k
        signal += (brightness * trace)[:, None, None] * shape_k[None]
        cells.append({
            "id": k + 1,
            "centre": [round(float(centre[0]), 3), round(float(centre[1]), 3)],
            "sigma_px": [round(s, 3) for s in sigma],
            "angle_deg": round(angle, 2),
            "brightness": round(brightness, 3),
            "rate_hz": round(rate, 4),
            "spike_times_s": [round(float(s), 4) for s in spikes],
            "spike_amplitudes": [round(float(a), 4) for a in amplitudes],
            "events": group_events(spikes, amplitudes, p["event_merge_s"]),
        })

    # Background: a smooth spatial field with a slow temporal fluctuation.
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=min(shape) / 6, mode="wrap")
    field = 1.0 + 0.4 * field / (np.abs(field).max() or 1.0)
    fluctuation = 1.0 + p["neuropil_fluctuation"] * _smooth_noise(rng, n_frames, sigma=2.0 * fs)
    background = p["background"] * field[None] * fluctuation[:, None, None]

    # Bleaching and drift, multiplicative on everything.
    phase = rng.uniform(0, 2 * np.pi)
    bleach = np.exp(-times / p["bleach_tau_s"]) * (1.0 + p["drift"] * np.sin(2 * np.pi * times / 60.0 + phase))
    expected = bleach[:, None, None] * (background + resting[None] + signal)

    movie = rng.poisson(expected).astype(np.float32)
    movie += rng.normal(0.0, p["read_noise"], size=movie.shape).astype(np.float32)

    events = [{"cell": cell["id"], **event} for cell in cells for event in cell["events"]]
    events.sort(key=lambda event: (event["time_s"], event["cell"]))
    truth = {
        "seed": seed,
        "fs": fs,
        "n_frames": n_frames,
        "shape": [height, width],
        "generator": {key: list(value) if isinstance(value, tuple) else value for key, value in p.items()},
        "centre_convention": "[row, col] in pixels, 0-based",
        "cells": cells,
        "events": events,
        "dff": [[round(float(v), 4) for v in row] for row in dff_true],
    }
    return movie, float(fs), truth


def truth_path(movie_path: str | Path) -> Path:
    """Where the ground truth of ``movie_path`` lives: ``{name}.truth.json`` beside it."""
    movie_path = Path(movie_path)
    name = movie_path.name[:-4] if movie_path.name.endswith(".npz") else movie_path.name
    return movie_path.with_name(f"{name}.truth.json")


def write_dataset(path: str | Path, seed: int = 0, n_cells: int = 8, n_frames: int = 600, fs: float = 15.0,
                  shape: tuple[int, int] = (64, 64), **options: Any) -> tuple[Path, Path]:
    """Generate a dataset and write ``path`` (.npz: movie, fs) and its ``{name}.truth.json``."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    movie, fs, truth = make_dataset(seed, n_cells, n_frames, fs, shape, **options)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as sink:  # a file object, so numpy does not append another ".npz"
        np.savez_compressed(sink, movie=movie, fs=np.float64(fs))
    truth_file = truth_path(path)
    truth_file.write_text(json.dumps(truth, indent=1))
    return path, truth_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m calcium_events.synthetic", description=__doc__.split("\n\n")[0])
    parser.add_argument("output", help="the movie file to write (.npz); the truth goes to {name}.truth.json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cells", type=int, default=8)
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--fs", type=float, default=15.0, help="frame rate (Hz)")
    parser.add_argument("--size", type=int, nargs=2, default=(64, 64), metavar=("H", "W"))
    args = parser.parse_args(argv)
    movie_file, truth_file = write_dataset(args.output, args.seed, args.cells, args.frames, args.fs, tuple(args.size))
    print(f"wrote {movie_file} and {truth_file}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
