"""The embedded local stack: a moto server on loopback, the job manager and a local instance runner."""
