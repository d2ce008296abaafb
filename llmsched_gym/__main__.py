"""``python -m llmsched_gym`` runs the ``llmsched`` command."""

from __future__ import annotations

import sys

from llmsched_gym.cli import main

sys.exit(main())
