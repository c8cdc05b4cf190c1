"""streamgrade: a streaming grader that turns raw agent demonstrations into graded,
training-ready data.

Public API: :func:`load_config`, :class:`Pipeline`, :func:`scan_source`, the models in
:mod:`streamgrade.models`, the formats in :data:`streamgrade.formats.FORMATS` and the judges
in :mod:`streamgrade.judges`.
"""

__version__ = "0.1.0"

from .config import Config, load_config  # noqa: E402
from .pipeline import Pipeline, RunStats, scan_source  # noqa: E402

__all__ = ["Config", "Pipeline", "RunStats", "load_config", "scan_source", "__version__"]
