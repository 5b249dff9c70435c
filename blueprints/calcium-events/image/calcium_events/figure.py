"""The results figure: the correlation image with numbered ROI outlines, and stacked ΔF/F traces with events."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import patheffects  # noqa: E402

if TYPE_CHECKING:
    from calcium_events.analysis import Result

MAX_TRACES = 30


def cell_colours(n: int) -> list[tuple[float, float, float, float]]:
    """Distinct colours: tab10 for up to 10 cells, then an evenly spaced hue wheel."""
    if n <= 10:
        return [plt.get_cmap("tab10")(i) for i in range(n)]
    return [plt.get_cmap("hsv")(i / n * 0.9) for i in range(n)]


def draw(result: "Result", name: str, path: str | Path) -> Path:
    n = result.n_cells
    shown = min(n, MAX_TRACES)
    colours = cell_colours(n)
    # Manual layout (inches): the image at the top left, its colourbar beside it, the traces on the right.
    width, height = 14.0, max(5.8, min(14.0, 1.6 + 0.5 * shown))
    fig = plt.figure(figsize=(width, height))
    side = min(5.0, height - 1.6)
    left = fig.add_axes((0.65 / width, (height - 0.85 - side) / height, side / width, side / height))
    right = fig.add_axes((7.45 / width, 0.7 / height, (width - 7.75) / width, (height - 1.55) / height))
    duration = result.shape[0] / result.fs
    fig.suptitle(f"{name}: {n} cell{'s' if n != 1 else ''}, {len(result.events)} events "
                 f"in {duration:.0f} s at {result.fs:g} Hz", fontsize=14, fontweight="bold",
                 y=1 - 0.12 / height, va="top")

    # Left: correlation image with outlines.
    image = result.correlation_image
    low, high = np.percentile(image, [1, 99.7])
    shown_image = left.imshow(image, cmap="gray", vmin=low, vmax=high, interpolation="nearest")
    outline = [patheffects.withStroke(linewidth=2.5, foreground="black")]
    for k in range(n):
        left.contour(result.masks[k].astype(float), levels=[0.5], colors=[colours[k]], linewidths=1.6)
        row, col = result.centres[k]
        radius = np.sqrt(result.masks[k].sum() / np.pi)
        left.text(col + radius * 0.8 + 0.5, row - radius * 0.8 - 0.5, str(k + 1), color=colours[k], fontsize=10,
                  fontweight="bold", ha="left", va="bottom", path_effects=outline)
    left.set_title("Local correlation image and ROIs")
    left.set_xlabel("x (pixels)")
    left.set_ylabel("y (pixels)")
    left.apply_aspect()  # the box now hugs the image: put the colourbar right beside it
    box = left.get_position()
    bar_axes = fig.add_axes((box.x1 + 0.15 / width, box.y0, 0.15 / width, box.height))
    colourbar = fig.colorbar(shown_image, cax=bar_axes)
    colourbar.set_label("mean correlation with neighbours")

    # Right: stacked ΔF/F traces.
    times = result.times
    if shown == 0:
        right.text(0.5, 0.5, "no cells found", ha="center", va="center", fontsize=14, color="0.4",
                   transform=right.transAxes)
        right.set_xlim(0, duration)
        right.set_yticks([])
    else:
        spread = np.percentile(result.dff[:shown], 99.5, axis=1) - np.percentile(result.dff[:shown], 0.5, axis=1)
        spacing = float(max(0.3, np.median(spread) * 1.1))
        counts = [sum(1 for event in result.events if event["cell"] == k + 1) for k in range(shown)]
        top = 0.0
        for k in range(shown):
            offset = (shown - 1 - k) * spacing
            trace = result.dff[k]
            right.axhline(offset, color="0.88", linewidth=0.6, zorder=0)
            right.plot(times, trace + offset, color=colours[k], linewidth=0.9)
            frames = [event["frame"] for event in result.events if event["cell"] == k + 1]
            if frames:
                marks = np.array([trace[f:f + max(2, int(result.fs))].max() for f in frames]) + offset + 0.08 * spacing
                right.scatter(times[frames], marks, marker="v", s=26, color=colours[k], edgecolors="black",
                              linewidths=0.5, zorder=3)
                top = max(top, float(marks.max()))
            top = max(top, float(trace.max() + offset))
        right.set_yticks([(shown - 1 - k) * spacing for k in range(shown)])
        right.set_yticklabels([f"cell {k + 1}\n{counts[k]} event{'s' if counts[k] != 1 else ''}" for k in range(shown)],
                              fontsize=9)
        for label, colour in zip(right.get_yticklabels(), colours):
            label.set_color(colour)
            label.set_fontweight("bold")
        right.set_xlim(0, duration * 1.07)
        right.set_xticks([t for t in right.get_xticks() if 0 <= t <= duration])
        right.set_ylim(-0.6 * spacing, top + 0.2 * spacing)
        # A ΔF/F scale bar in the blank strip right of the traces, level with the top trace.
        bar = round_nice(spacing * 0.6)
        x = duration * 1.025
        bar_top = (shown - 1) * spacing + bar
        right.plot([x, x], [bar_top - bar, bar_top], color="black", linewidth=2.5, solid_capstyle="butt")
        right.text(x + duration * 0.008, bar_top - bar / 2, f"{bar:g}\nΔF/F", va="center", ha="left", fontsize=9)
    title = "ΔF/F traces, ▼ detected events"
    if shown < n:
        title += f" (first {shown} of {n} cells)"
    right.set_title(title)
    right.set_xlabel("time (s)")
    for side in ("top", "right"):
        right.spines[side].set_visible(False)

    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def round_nice(value: float) -> float:
    """1, 2 or 5 times a power of ten, at most ``value``."""
    if value <= 0:
        return 1.0
    power = 10 ** np.floor(np.log10(value))
    for step in (5, 2, 1):
        if step * power <= value:
            return float(step * power)
    return float(power)
