"""The job's state, derived from facts that each have one writer (docs/JOBSTATE.md).

``markers``: open-job markers (analysis bucket) and instance end markers (job folder);
``statusfile``: reading status files in any shape, finishing one from outside;
``reconcile``: deriving job.json, the certificate's dataset block and end.txt from those.
"""
