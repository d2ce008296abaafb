"""Published LLM-serving schedulers, each implementing the ``Scheduler`` protocol.

Every module cites its paper and section and lists its deviations from it; the exact rules are
specified in the project's ``docs/specs/baselines.md``. Schedulers are registered by name in
:mod:`llmsched_gym.schedulers`.
"""
