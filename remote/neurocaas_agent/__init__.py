"""The NeuroCAAS remote side: what runs on each instance, a drop-in for NeuroCAAS's ``run_main.sh``.

It pulls the dataset and config, runs the analysis script with NeuroCAAS's variables exported,
reports live status to the dataset's status file, pushes results to ``process_results/`` and ends.
Standard library only, Python 3.8+, so it runs on the Python of a stock Ubuntu or Deep Learning AMI.
"""

__version__ = "0.3.0"
