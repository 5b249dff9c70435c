"""Spike detection on extracellular traces: band-pass, robust threshold, refractory period.

Input: a .npz with ``traces`` (channels x samples, volts or microvolts) and ``fs`` (Hz).
Output: spikes.csv (channel, time_s, amplitude) and summary.json in the output folder.
Parameters (YAML or JSON): band_hz [300, 3000], threshold_sd 5, refractory_ms 1.0.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import yaml
from scipy.signal import butter, find_peaks, sosfiltfilt

DEFAULTS = {"band_hz": [300.0, 3000.0], "threshold_sd": 5.0, "refractory_ms": 1.0}


def detect(traces: np.ndarray, fs: float, band_hz: list[float], threshold_sd: float,
           refractory_ms: float) -> list[tuple[int, float, float]]:
    sos = butter(3, [band_hz[0], min(band_hz[1], 0.45 * fs)], btype="bandpass", fs=fs, output="sos")
    filtered = sosfiltfilt(sos, traces, axis=-1)
    spikes = []
    for channel, signal in enumerate(filtered):
        noise = np.median(np.abs(signal)) / 0.6745
        peaks, _ = find_peaks(-signal, height=threshold_sd * noise, distance=max(1, int(refractory_ms * fs / 1000)))
        spikes += [(channel, float(p / fs), float(signal[p])) for p in peaks]
    return spikes


def main(data: str, config: str, out: str) -> int:
    try:
        movie = np.load(data)
        traces, fs = np.atleast_2d(movie["traces"]).astype(float), float(movie["fs"])
    except Exception as error:
        print(f"{data} is not a .npz with 'traces' and 'fs': {error}", file=sys.stderr)
        return 2
    text = Path(config).read_text()
    params = {**DEFAULTS, **((json.loads(text) if config.endswith(".json") else yaml.safe_load(text)) or {})}
    spikes = detect(traces, fs, params["band_hz"], float(params["threshold_sd"]), float(params["refractory_ms"]))
    target = Path(out)
    with (target / "spikes.csv").open("w", newline="") as sink:
        writer = csv.writer(sink)
        writer.writerow(["channel", "time_s", "amplitude"])
        writer.writerows(spikes)
    per_channel = np.bincount([s[0] for s in spikes], minlength=traces.shape[0]).tolist()
    summary = {"channels": traces.shape[0], "duration_s": traces.shape[1] / fs, "spikes": len(spikes),
               "spikes_per_channel": per_channel, "parameters": {k: params[k] for k in DEFAULTS}}
    (target / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"found {len(spikes)} spikes on {traces.shape[0]} channel(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
