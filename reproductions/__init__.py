"""Paper reproductions: one script per paper, each writing numbers and plots to ``docs/reproductions/``.

Run ``python -m reproductions.<name> [--quick]`` with ``<name>`` one of ``sarathi``, ``slai``, ``vtc``, ``wait``,
``mcsf``. The setups, claims, results and verdicts are in ``docs/reproductions.md``.
"""
