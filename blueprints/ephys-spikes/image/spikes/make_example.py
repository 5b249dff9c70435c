"""Make an example recording with known spikes: python make_example.py OUT.npz [seed]."""

from __future__ import annotations

import json
import sys

import numpy as np


def make(seed: int = 0, channels: int = 4, seconds: float = 5.0, fs: float = 20000.0) -> tuple[np.ndarray, dict]:
    rng = np.random.default_rng(seed)
    samples = int(seconds * fs)
    traces = rng.normal(0, 10.0, (channels, samples))
    t = np.arange(int(0.002 * fs)) / fs
    waveform = -80.0 * np.exp(-((t - 0.0005) / 0.00025) ** 2) + 30.0 * np.exp(-((t - 0.0012) / 0.0004) ** 2)
    truth = {}
    for channel in range(channels):
        times = np.sort(rng.uniform(0.01, seconds - 0.01, rng.integers(20, 60)))
        times = times[np.insert(np.diff(times) > 0.003, 0, True)]
        for time in times:
            start = int(time * fs)
            traces[channel, start:start + waveform.size] += waveform
        truth[channel] = [round(float(x + 0.0005), 5) for x in times]
    return traces.astype(np.float32), truth


if __name__ == "__main__":
    traces, truth = make(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    np.savez(sys.argv[1], traces=traces, fs=20000.0)
    with open(sys.argv[1] + ".truth.json", "w") as sink:
        json.dump(truth, sink)
