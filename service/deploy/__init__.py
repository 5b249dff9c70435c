"""Deploying analyses to an AWS account: ``neurocaas init``, ``deploy``, ``destroy`` and ``users``.

- :mod:`~service.deploy.policies`: the IAM policy documents (pure);
- :mod:`~service.deploy.awsstate`: reading what exists (Get/List/Head/Describe only);
- :mod:`~service.deploy.init`, :mod:`~service.deploy.plan`, :mod:`~service.deploy.users`: pure planners
  that compare desired and current state into a printable :class:`~service.deploy.changes.Plan`;
- :mod:`~service.deploy.executor`: applies a plan (``chalice`` through an injectable runner);
- :mod:`~service.deploy.commands`: the commands end to end.
"""
