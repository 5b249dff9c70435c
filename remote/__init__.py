"""What runs on each instance: a drop-in for NeuroCAAS's ``run_main.sh``.

It pulls the dataset and config, runs the analysis script with NeuroCAAS's variables exported,
reports live status to S3 (throttled), pushes results to ``process_results/`` and ends.
"""
