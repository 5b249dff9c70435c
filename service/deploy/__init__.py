"""Deploying analyses to an AWS account: ``neurocaas init``, ``deploy``, ``destroy`` and ``users``.

- :mod:`~service.deploy.policies`: the IAM policy documents (pure);
- :mod:`~service.deploy.awsstate`: reading what exists (Get/List/Head/Describe only);
- :mod:`~service.deploy.init`, :mod:`~service.deploy.plan`, :mod:`~service.deploy.users`: pure planners
  that compare desired and current state into a printable :class:`~service.deploy.changes.Plan`;
- :mod:`~service.deploy.rulebook`: every planned request checked against :mod:`chalicelib.awslimits`;
- :mod:`~service.deploy.executor`: applies a plan (``chalice`` through an injectable runner, which
  :mod:`~service.deploy.runtime` points at a runtime Lambda supports);
- :mod:`~service.deploy.commands`: the commands end to end.
"""
