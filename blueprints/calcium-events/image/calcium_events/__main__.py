"""``python -m calcium_events INPUT CONFIG OUTDIR``: run the analysis on one dataset."""

from __future__ import annotations

import argparse
import sys
import traceback

from calcium_events.analysis import AnalysisError, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m calcium_events",
        description="Find cells in a calcium imaging movie (.npz with 'movie' (T, H, W) and 'fs'), "
                    "extract their ΔF/F and detect events.")
    parser.add_argument("input", help="the movie: a .npz file, or a folder holding one")
    parser.add_argument("config", help="the parameter file (.json, .yaml or .yml)")
    parser.add_argument("outdir", help="the folder to write results to")
    parser.add_argument("--name", help="the name of the output files (default: the input's name without .npz)")
    args = parser.parse_args(argv)

    def progress(message: str) -> None:
        print(message, flush=True)

    try:
        run(args.input, args.config, args.outdir, name=args.name, progress=progress)
    except AnalysisError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 2
    except Exception:
        traceback.print_exc()
        print("error: the analysis failed unexpectedly (see the traceback above)", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
