"""Recovering datasets: relaunching one whose instance was interrupted or lost (``relaunch``),
and retrying chosen datasets of an ended job (``retry``)."""
