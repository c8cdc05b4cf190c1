"""The command line: ``streamgrade grade``, ``watch``, ``export``, ``stats``, ``agreement``, ``calibrate``,
``query``, ``compare``, ``hints``, ``augment``, ``repair`` and ``report`` (thin: it parses options, builds
the config, and runs the pipeline).

Exit codes (see :mod:`streamgrade.summary`): 0 every session found is graded or ungradable, 1 some
sessions failed (now, or earlier and unchanged since), 2 usage or configuration error or an
output folder in use or in need of repair, 3 nothing to export (``export``), 4 the run budget
was spent, 5 no session found, 6 files not recognised with ``--strict``, 130 interrupted.
"""

from __future__ import annotations

from . import comparing, evaluation, exporting, grading, learning, querying  # noqa: F401  (each registers its commands on main)
from ._app import main

__all__ = ["main"]
