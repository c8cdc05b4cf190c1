"""The pipeline's actors and its group commit driven on their own: in-memory anyio streams,
a real ledger in tmp_path, and fakes passed in as collaborators (no patching)."""

from __future__ import annotations

import errno
from pathlib import Path

import anyio
import pytest

from streamgrade.admission import admit, disambiguate, where
from streamgrade.errors import BudgetExceeded
from streamgrade.job import Job
from streamgrade.models import JudgeInfo, ScoreRecord, Session, SessionRef
from streamgrade.run_stats import RunStats
from streamgrade.sinks.committer import Committer, Written
from streamgrade.sinks.jsonl import ExportSet
from streamgrade.sinks.layout import SCORES_JSONL, Layout
from streamgrade.sinks.ledger import Ledger
from streamgrade.sinks.writers import write_files
from streamgrade.stages import grade
from streamgrade.config import load_config


def ref(sid: str, path: str, fp: str, fmt: str = "clones-desktop") -> SessionRef:
    return SessionRef(session_id=sid, format=fmt, path=path, files=(path,), fingerprint=fp)


def record(r: SessionRef, status: str = "graded") -> ScoreRecord:
    return ScoreRecord(session_id=r.session_id, source_format=r.format, source_path=r.path, status=status,
                       score=70.0 if status == "graded" else None, components={}, confidence=None,
                       judge=JudgeInfo(kind="fake", model=None), reward=None, n_actions=0, duration_s=None,
                       usage={"requests": 1}, error=None, graded_at="2025-01-01T00:00:00Z", fingerprint=r.fingerprint)


def finish(ledger: Ledger, r: SessionRef, status: str, error_kind: str | None = None) -> None:
    """Leave ``r`` in the ledger as an earlier run did."""
    ledger.mark_pending(r.session_id, r.format, where(r), r.fingerprint)
    ledger.commit_results([(r.session_id, r.fingerprint, status, "bad line 3" if error_kind else None, error_kind,
                            "fake", None, [])], {})


async def run_admit(ledger: Ledger, refs: list[SessionRef], stats: RunStats, current: dict[str, str],
                    batch: int = 64) -> list[Job]:
    refs_tx, refs_rx = anyio.create_memory_object_stream[SessionRef](len(refs))
    jobs_tx, jobs_rx = anyio.create_memory_object_stream[Job](len(refs))
    for r in refs:
        refs_tx.send_nowait(r)
    refs_tx.close()
    with anyio.fail_after(5):
        await admit(refs_rx, jobs_tx, ledger=ledger, stats=stats, current=current, batch=batch)
    async with jobs_rx:
        return [job async for job in jobs_rx]


@pytest.fixture
def ledger(tmp_path: Path):
    led = Ledger(tmp_path / "state.sqlite")
    yield led
    led.close()


@pytest.mark.parametrize("batch", [1, 64])  # one query per ref, or the whole batch in one
def test_admit_skips_unchanged_and_gives_a_second_place_its_own_id(ledger: Ledger, batch: int):
    done = ref("done", "/data/a/done", "f1")
    bad = ref("bad", "/data/a/bad", "f1")
    finish(ledger, done, "graded")
    finish(ledger, bad, "failed", "input")
    twin_a, twin_b = ref("twin", "/data/a/twin", "f1"), ref("twin", "/data/b/twin", "f2")
    changed = ref("bad", "/data/a/bad", "f2")  # its input changed since it failed: graded again
    stats, current = RunStats(), {}
    jobs = anyio.run(run_admit, ledger, [done, bad, twin_a, twin_b, changed], stats, current, batch)

    second = disambiguate(twin_b)
    assert second.session_id.startswith("twin-") and len(second.session_id) == len("twin-") + 8
    assert [j.ref for j in jobs] == [twin_a, second, changed]
    assert (stats.found, stats.skipped, stats.failed_earlier, stats.in_flight) == (5, 1, 1, 3)
    assert stats.earlier_failures == [("bad", "bad line 3")]
    assert current == {"twin": "f1", second.session_id: "f2", "bad": "f2"}
    assert ledger.get(second.session_id).path == "/data/b/twin" and ledger.get(second.session_id).status == "pending"
    assert ledger.get("twin").path == "/data/a/twin"
    assert ledger.get("done").status == "graded" and ledger.get("bad").status == "pending"

    # The next run: the ledger remembers which place owns "twin"; versions in flight are dropped.
    stats2 = RunStats()
    again = anyio.run(run_admit, ledger, [twin_b, twin_a, ref("new", "/data/a/new", "f1")], stats2, dict(current), batch)
    assert [j.ref.session_id for j in again] == ["new"] and stats2.found == 1 and stats2.in_flight == 1


def test_committer_leaves_sessions_pending_when_the_export_append_fails(tmp_path: Path, ledger: Ledger):
    class FullDisk:
        """An export set whose append fails as on a full disk (and rolls itself back)."""

        def __init__(self):
            self.rollbacks = 0

        def __iter__(self):
            return iter([SCORES_JSONL])

        def sizes(self) -> dict[str, int]:
            return {SCORES_JSONL: 0}

        def rollback(self, sizes: dict[str, int]) -> None:
            self.rollbacks += 1

        def append_batch(self, lines_by_item):
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "exports" / SCORES_JSONL))

    refs = [ref("s1", "/d/s1", "f1"), ref("s2", "/d/s2", "f1")]
    for r in refs:
        ledger.mark_pending(r.session_id, r.format, r.path, r.fingerprint)
    counted: list[ScoreRecord] = []
    committer = Committer(Layout(tmp_path), ledger, FullDisk(), "fake", counted.append)
    batch = [Written(Job(r), record(r), [(SCORES_JSONL, b'{"x": 1}')]) for r in refs]

    assert anyio.run(committer.commit, batch) == []
    assert [ledger.get(r.session_id).status for r in refs] == ["pending", "pending"]
    assert [c.session_id for c in counted] == ["s1", "s2"] and all(c.status == "failed" for c in counted)
    assert counted[0].error == f"{tmp_path / 'exports' / SCORES_JSONL}: cannot write output: No space left on device"
    assert ledger.committed_bytes(SCORES_JSONL) is None


def test_committer_commits_appends_once_and_fails_a_session_whose_files_failed(tmp_path: Path):
    layout = Layout(tmp_path)
    layout.exports.mkdir(parents=True)
    ledger = Ledger(layout.ledger)
    try:
        exports = ExportSet(layout, ledger)
        exports.recover()
        good, broken = ref("good", "/d/good", "f1"), ref("broken", "/d/broken", "f1")
        for r in (good, broken):
            ledger.mark_pending(r.session_id, r.format, r.path, r.fingerprint)
        counted: list[ScoreRecord] = []
        committer = Committer(layout, ledger, exports, "fake", counted.append)
        line = b'{"session_id": "good"}'  # export lines go without their newline
        written = Written(Job(good), record(good), [(SCORES_JSONL, line)])
        batch = [written, Written(Job(broken), record(broken), [], OSError(errno.EROFS, "Read-only file system"))]

        assert anyio.run(committer.commit, batch) == [written]
        assert ledger.get("good").status == "graded" and ledger.get("broken").status == "pending"
        assert [(c.session_id, c.status) for c in counted] == [("broken", "failed")]
        assert counted[0].error == f"{tmp_path}: cannot write output: Read-only file system"
        assert layout.export(SCORES_JSONL).read_bytes() == line + b"\n"
        assert ledger.committed_bytes(SCORES_JSONL) == len(line) + 1
        # The same session again (a crash before its folder was cleaned): its line is not appended twice.
        assert anyio.run(committer.commit, [Written(Job(good), record(good), [(SCORES_JSONL, line)])])
        assert layout.export(SCORES_JSONL).read_bytes() == line + b"\n"
    finally:
        ledger.close()


def test_file_writer_drops_a_superseded_version_and_writes_the_rest():
    old, new, other = ref("s", "/d/s", "f1"), ref("s", "/d/s", "f2"), ref("t", "/d/t", "f1")
    current = {"s": "f2", "t": "f1"}  # "s" changed while its first version was graded
    stats = RunStats(in_flight=3)
    calls: list[list[str]] = []

    def write(jobs: list[Job]) -> list[Written]:
        calls.append([j.ref.fingerprint for j in jobs])
        return [Written(j, record(j.ref), []) for j in jobs]

    async def main() -> list[Written]:
        done_tx, done_rx = anyio.create_memory_object_stream[Job](8)
        out_tx, out_rx = anyio.create_memory_object_stream[Written](8)
        for r in (old, new, other):
            done_tx.send_nowait(Job(r))
        done_tx.close()
        with anyio.fail_after(5):
            await write_files(done_rx, out_tx, write=write, current=current, stats=stats)
        async with out_rx:
            return [w async for w in out_rx]

    got = anyio.run(main)
    assert [w.job.ref for w in got] == [new, other]
    assert calls == [["f2", "f1"]]  # what was waiting went in one hand-off
    assert stats.in_flight == 2


def test_grader_stops_the_run_once_when_the_budget_is_spent():
    cfg = load_config(env={})

    class Judge:
        info = JudgeInfo(kind="fake", model=None)

        async def grade(self, session, chunks):
            if session.ref.session_id != "first":
                raise BudgetExceeded("run budget of $0.10 spent")
            return None

    stops: list[bool] = []
    stats = RunStats(in_flight=3)

    async def main() -> list[Job]:
        tx, rx = anyio.create_memory_object_stream[Job](8)
        done_tx, done_rx = anyio.create_memory_object_stream[Job](8)
        for sid in ("first", "second", "third"):
            r = ref(sid, f"/d/{sid}", "f1")
            tx.send_nowait(Job(r, session=Session(ref=r, task="t")))
        tx.close()
        with anyio.fail_after(5):
            await grade(rx, done_tx, judge=Judge(), config=cfg, layout=Layout("/nonexistent"), stats=stats,
                        stopping=lambda: bool(stops), stop=lambda: stops.append(True))
        async with done_rx:
            return [j async for j in done_rx]

    done = anyio.run(main)
    assert [j.ref.session_id for j in done] == ["first"] and done[0].error is None
    assert stops == [True]  # stop() once, however many sessions hit the budget
    assert (stats.in_flight, stats.budget_pending) == (1, 2)
