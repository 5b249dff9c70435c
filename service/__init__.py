"""What runs outside Lambda: the ``neurocaas`` command, the local stack and deployment."""
