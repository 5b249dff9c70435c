"""``neurocaas demo``: the whole product on this machine in under a minute.

Starts the embedded stack, deploys the calcium-imaging example, generates synthetic movies with
known ground truth, submits them as one job, follows it, downloads the results and compares them
with the truth, then stops the stack.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from chalicelib import handlers
from chalicelib.blueprint import load_blueprint
from service.client import NeuroCAASClient, UserError
from service.connection import Connection
from service.local.stack import CREDENTIALS, REGION, LocalStack, LocalStackOptions
from service.views import follow
from service.web.server import WebServer

BLUEPRINT = Path(__file__).resolve().parents[1] / "blueprints" / "calcium-events"
GROUP = "demolab"


@dataclass
class DemoResult:
    job_id: str
    state: str
    results: Path
    metrics: dict[str, dict[str, Any]]


def _calcium_events() -> Any:
    """The example analysis's package, which lives in its image folder."""
    image = str(BLUEPRINT / "image")
    if image not in sys.path:
        sys.path.insert(0, image)
    import calcium_events.evaluate
    import calcium_events.synthetic

    return calcium_events


def run_demo(console: Console, *, datasets: int = 3, frames: int = 600, output: Path = Path("neurocaas-demo-results"),
             timeout: float = 300.0) -> DemoResult:
    handlers.logger.setLevel("WARNING")  # the handlers' structured log would interleave with the live table
    calcium = _calcium_events()
    blueprint = load_blueprint(BLUEPRINT)
    with tempfile.TemporaryDirectory(prefix="neurocaas-demo-") as scratch:
        root = Path(scratch)
        with console.status("Generating synthetic calcium-imaging movies with known ground truth…"):
            movies = [calcium.synthetic.write_dataset(root / "data" / f"session{i + 1}.npz", seed=i + 1, n_frames=frames)
                      for i in range(datasets)]
        console.print(f"[green]✓[/green] {datasets} movies ({frames} frames each) in {root / 'data'}", highlight=False)
        options = LocalStackOptions(state_dir=root / "stack", status_interval=1.0, log=lambda _: None)
        with console.status("Starting the embedded local stack…"):
            stack = LocalStack(options).start()
        page: WebServer | None = None
        try:
            stack.deploy(blueprint)
            console.print(f"[green]✓[/green] local stack at {stack.endpoint} serving [bold]{blueprint.name}[/bold]",
                          highlight=False)
            connection = Connection(stack.endpoint, CREDENTIALS, REGION, (blueprint.name,))
            client = NeuroCAASClient(connection)
            page = WebServer(connection=connection, blueprints=[BLUEPRINT]).start()
            console.print(f"[green]✓[/green] follow it in a browser while the demo runs: {page.url}",
                          highlight=False, soft_wrap=True)
            with Progress(console=console, transient=True) as progress:
                def start(name: str, size: int):  # type: ignore[no-untyped-def]
                    task = progress.add_task(f"uploading {name}", total=size)
                    return lambda sent: progress.advance(task, sent)
                ref = client.submit(blueprint.name, GROUP, [str(movie) for movie, _ in movies],
                                    str(BLUEPRINT / "image" / "params.yaml"), progress=start)
            console.print(f"[green]✓[/green] submitted job [bold]{ref.job_id}[/bold] for group {GROUP}", highlight=False)
            record = follow(client, ref, console, timeout=timeout, interval=0.5)
            target = output / ref.job_id
            with Progress(console=console, transient=True) as progress:
                def fetch(name: str, size: int):  # type: ignore[no-untyped-def]
                    task = progress.add_task(f"downloading {name}", total=size)
                    return lambda got: progress.advance(task, got)
                files = client.download_results(ref, target, progress=fetch)
        finally:
            with console.status("Stopping the local stack…"):
                if page is not None:
                    page.stop()
                stack.stop()
        console.print(f"[green]✓[/green] {len(files)} result files in [bold]{target}/[/bold]", highlight=False)
        metrics = {}
        for movie, truth in movies:
            name = movie.stem
            if (target / f"{name}.rois.json").exists():
                metrics[name] = calcium.evaluate.evaluate_outputs(target, name, truth)
    _print_summary(console, metrics, target)
    return DemoResult(ref.job_id, record.state.value, target, metrics)


def _print_summary(console: Console, metrics: dict[str, dict[str, Any]], target: Path) -> None:
    table = Table(title="Results against the ground truth")
    table.add_column("dataset")
    for column in ("cells found / true", "cell recall", "events found / true", "event F1", "timing error"):
        table.add_column(column, justify="right")
    for name, m in metrics.items():
        table.add_row(
            name, f"{m['n_detected_cells']} / {m['n_true_cells']}", f"{m['cell_recall']:.0%}",
            f"{m['n_detected_events']} / {m['n_true_events']}", f"{m['event_f1']:.2f}",
            f"{1000 * m['median_timing_error_s']:.0f} ms",
        )
    console.print(table)
    console.print("Figures: " + ", ".join(str(target / f"{name}.png") for name in metrics), highlight=False,
                  soft_wrap=True)


def demo_command(datasets: int, frames: int, output: Path) -> int:
    console = Console()
    try:
        result = run_demo(console, datasets=datasets, frames=frames, output=output)
    except UserError as error:
        console.print(f"[red]✗[/red] {error}", soft_wrap=True)
        return 1
    ok = result.state == "SUCCEEDED" and len(result.metrics) == datasets
    console.print("[green]Demo complete.[/green]" if ok else f"[red]The demo job ended {result.state}.[/red]")
    return 0 if ok else 1
