"""Operating the ``watch`` daemon: Prometheus metrics (:mod:`.metrics`) and the HTTP
endpoint that serves them with ``/healthz`` (:mod:`.server`).

The pipeline's actors do not call Prometheus: :class:`.metrics.PipelineMetrics` reads the
counters the pipeline keeps anyway (:class:`~streamgrade.run_stats.RunStats`, the judge's
:class:`~streamgrade.judges.limits.LimiterStats`, the streams' ``statistics()``) when it is
scraped, and observes two histograms from the pipeline's ``on_commit`` and the judge's
``on_attempt`` hooks."""

from .metrics import PipelineMetrics
from .server import MetricsServer

__all__ = ["PipelineMetrics", "MetricsServer"]
