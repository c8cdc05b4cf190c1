"""The counts of one run (:class:`RunStats`), kept by the pipeline's actors and read for
progress, the summary and the metrics. :meth:`RunStats.count` counts (and logs) one
session's finished record."""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field

from .models import ScoreRecord
from .sources.scan import ScanReport

log = logging.getLogger("streamgrade.pipeline")


@dataclass
class RunStats:
    """Counts of a run, updated by the actors; read it for progress. ``failures`` holds
    (session_id, error) of failed sessions (the first 1,000); ``failed_earlier`` counts
    sessions skipped because an earlier run failed them on their (unchanged) input, with
    the first 1,000 in ``earlier_failures``; ``stopped_early`` says the source was stopped
    before it ended (a signal or the budget); ``pending`` is the ledger's count of sessions
    left pending when the run ended; ``scan`` what the scan did not recognise;
    ``by_format`` counts sessions by (status, format), status being graded, failed,
    ungradable, skipped (unchanged since graded) or failed_earlier (for the metrics)."""

    found: int = 0
    skipped: int = 0
    graded: int = 0
    failed: int = 0
    ungradable: int = 0
    failed_earlier: int = 0
    earlier_failures: list[tuple[str, str]] = field(default_factory=list)
    stopped_early: bool = False
    drain_timed_out: bool = False
    pending: int = 0
    labelled: int = 0
    scan: ScanReport = field(default_factory=ScanReport)
    in_flight: int = 0
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # of prompt_tokens, read from the provider's prompt cache
    cost_usd: float = 0.0
    started: float = field(default_factory=time.monotonic)
    failures: list[tuple[str, str]] = field(default_factory=list)
    dpo_pairs: int | None = None  # pairs in dpo.jsonl after the last rebuild of this run
    training: dict = field(default_factory=dict)  # format -> ExportResult of the last rebuild
    budget_pending: int = 0  # sessions left pending because the run budget was spent
    by_format: Counter = field(default_factory=Counter)  # (status, format) -> sessions
    batch: dict | None = None  # batch mode: the judge's last snapshot (batches, requests), set by the CLI
    bytes_written: dict[str, int] = field(default_factory=dict)  # kind -> bytes (sinks/meter.py), "ledger" its growth

    @property
    def done(self) -> int:
        return self.graded + self.failed + self.ungradable

    @property
    def bytes_total(self) -> int:
        """Bytes this run wrote under the output folder (see :mod:`.sinks.meter`)."""
        return sum(self.bytes_written.values())

    def requests_per_s(self) -> float:
        return self.requests / max(1e-9, time.monotonic() - self.started)

    def count(self, record: ScoreRecord) -> None:
        """Count a finished session's ``record`` by its status (graded, ungradable, else
        failed: its error joins ``failures``) and format, add its ``usage`` (requests,
        tokens, USD), and log it: graded and ungradable at INFO, failed at WARNING."""
        self.by_format[record.status, record.source_format] += 1
        if record.status == "graded":
            self.graded += 1
            log.info("graded %s score=%.1f judge=%s", record.session_id, record.score or 0, record.judge.kind if record.judge else "-",
                     extra={"session": record.session_id, "file": record.source_path, "score": record.score})
        elif record.status == "ungradable":
            self.ungradable += 1
            log.info("ungradable %s: %s", record.session_id, record.error,
                     extra={"session": record.session_id, "file": record.source_path})
        else:
            self.failed += 1
            if len(self.failures) < 1000:
                self.failures.append((record.session_id, record.error or ""))
            log.warning("failed %s: %s", record.session_id, record.error,
                        extra={"session": record.session_id, "file": record.source_path})
        self.requests += int(record.usage.get("requests", 0))
        self.prompt_tokens += int(record.usage.get("prompt_tokens", 0))
        self.completion_tokens += int(record.usage.get("completion_tokens", 0))
        self.cached_tokens += int(record.usage.get("cached_tokens", 0))
        self.cost_usd += float(record.usage.get("cost_usd", 0.0))


__all__ = ["RunStats"]
