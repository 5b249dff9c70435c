"""The NeuroCAAS job manager: everything the Lambda handlers do, kept out of ``app.py``."""
