"""The README's main command, end to end with fast settings."""

from __future__ import annotations

import re
from pathlib import Path

from rich.console import Console

from service.demo import run_demo


def test_the_demo_analyses_every_dataset_and_matches_the_ground_truth(tmp_path: Path) -> None:
    console = Console(record=True, width=120)

    result = run_demo(console, datasets=3, frames=300, output=tmp_path / "results", timeout=120)

    assert result.state == "SUCCEEDED"
    assert sorted(result.metrics) == ["session1", "session2", "session3"]
    for metrics in result.metrics.values():
        assert metrics["cell_recall"] >= 0.75
        assert metrics["event_f1"] >= 0.7
    for name in result.metrics:
        assert (result.results / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = console.export_text()
    assert "Results against the ground truth" in text and str(result.results) in text
    assert re.search(r"follow it in a browser while the demo runs: http://127\.0\.0\.1:\d+/\?token=", text)
