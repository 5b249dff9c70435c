"""Estimated cost of example jobs on-demand and on Spot, from the bundled price table.

The figures are the job manager's own estimates (``pricing.estimate``, the function the planner
puts in the certificate and holds to the budget): every instance for its whole lifetime. Run:
``python -m benchmarks.spot_bench``.
"""

from __future__ import annotations

import json
from pathlib import Path

from chalicelib import pricing
from chalicelib.blueprint import load_blueprint

ROOT = Path(__file__).resolve().parent.parent


def example_jobs() -> list[tuple[str, str, int, float]]:
    """(job, instance type, datasets, minutes each): the demo's job on each bundled blueprint,
    and two of the long GPU jobs issue 15 is about."""
    jobs = []
    for folder in sorted((ROOT / "blueprints").iterdir()):
        if (folder / "stack_config_template.json").exists():
            settings = load_blueprint(folder).settings
            jobs.append((f"{folder.name} (demo: 3 datasets)", settings.instance_type, 3, settings.default_duration))
    jobs.append(("pose estimation: 20 videos x 4 h", "g4dn.xlarge", 20, 240))
    jobs.append(("spike sorting: 50 sessions x 6 h", "p3.2xlarge", 50, 360))
    return jobs


def main() -> None:
    document = json.loads((ROOT / "chalicelib" / "pricing" / "prices.json").read_text())
    print(f"Price table as of {document['as_of']} ({document['region']})\n")
    print("| job | instance type | on-demand | Spot | saving |")
    print("| --- | --- | ---: | ---: | ---: |")
    for name, instance_type, datasets, minutes in example_jobs():
        on_demand = pricing.estimate(instance_type, datasets, minutes)
        spot = pricing.estimate(instance_type, datasets, minutes, spot=True)
        saving = 1 - spot / on_demand if on_demand else 0.0
        print(f"| {name} | {instance_type} | ${on_demand:.4f} | ${spot:.4f} | {saving:.0%} |")


if __name__ == "__main__":
    main()
