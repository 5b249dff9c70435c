"""Calcium imaging example analysis for NeuroCAAS: find cells, ΔF/F traces, event detection.

``python -m calcium_events INPUT.npz CONFIG.(json|yaml) OUTDIR`` runs the analysis;
``calcium_events.synthetic`` makes test movies with ground truth, ``calcium_events.evaluate`` scores results.
"""

from calcium_events.analysis import DEFAULTS, AnalysisError, analyse, load_movie, load_params, run

__version__ = "0.1.0"
__all__ = ["DEFAULTS", "AnalysisError", "analyse", "load_movie", "load_params", "run", "__version__"]
