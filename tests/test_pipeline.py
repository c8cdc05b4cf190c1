"""The pipeline end to end, in process: records, per-session files, resume without duplicate
lines, exactly-once recovery after an interrupted append, failed records, backpressure."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import anyio
import msgspec
import pytest

from streamgrade.config import load_config
from streamgrade.errors import JudgeError
from streamgrade.judges.heuristic import HeuristicJudge
from streamgrade.models import Component, JudgeInfo, Usage, Verdict
from streamgrade.pipeline import Pipeline, scan_source
from streamgrade.sinks.ledger import Ledger
from conftest import session_dir

EXAMPLES = Path(__file__).parent.parent / "examples" / "clones"
DESKTOP = ("20250817_232256", "20251007_131852")
WEB = "6792a2a124f444f0e39ce887"


class FakeJudge:
    """A judge that fails for chosen sessions and counts calls."""

    def __init__(self, fail: set[str] = frozenset(), delay: float = 0.0):
        self.info = JudgeInfo(kind="fake", model="fake-1")
        self.fail = set(fail)
        self.delay = delay
        self.calls: list[str] = []
        self.active = 0
        self.max_active = 0

    async def grade(self, session, chunks):
        self.calls.append(session.ref.session_id)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await anyio.sleep(self.delay)
        finally:
            self.active -= 1
        if session.ref.session_id in self.fail:
            raise JudgeError("retries exhausted after 3 attempts: HTTP 500", attempts=3)
        comp = Component(score=80.0, confidence=0.9, reason="ok")
        return Verdict(components={"outcome": comp, "process": Component(50.0, 0.5, "meh"), "efficiency": comp},
                       summary="fine", chunk_summaries=["c"] * len(chunks), usage=Usage(10, 5, 0.001, 1))

    async def aclose(self):
        pass


def _cfg(**pipeline):
    return load_config(env={}, overrides={"pipeline": pipeline} if pipeline else None)


async def _grade(data: Path, out: Path, judge=None, cfg=None):
    cfg = cfg or _cfg()
    pipe = Pipeline(cfg, out, judge or HeuristicJudge(cfg))
    stats = await pipe.run(scan_source([data], exclude=[out]))
    return stats


def _lines(out: Path, name: str = "scores.jsonl") -> list[dict]:
    path = out / "exports" / name
    raw = path.read_bytes()
    assert raw == b"" or raw.endswith(b"\n"), "a JSONL export ends with a half line"
    return [json.loads(line) for line in raw.splitlines()]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    shutil.copytree(EXAMPLES, d)
    return d


@pytest.mark.asyncio
async def test_grades_bundled_sessions_and_writes_files(data: Path, tmp_path: Path):
    out = tmp_path / "out"
    # every session's rows: the bundled captures show little of their tasks, so the
    # heuristic scores them below the pass filter's 50
    cfg = load_config(env={}, overrides={"exports": {"pass_only": False}})
    stats = await _grade(data, out, cfg=cfg)
    assert (stats.graded, stats.failed, stats.ungradable) == (2, 0, 1)  # the web capture has no action
    lines = _lines(out)
    assert sorted(r["session_id"] for r in lines) == sorted([*DESKTOP, WEB])
    fields = {"session_id", "source_format", "source_path", "status", "score", "components", "confidence", "judge",
              "reward", "n_actions", "duration_s", "usage", "error", "graded_at"}
    for r in lines:
        assert fields <= r.keys()
        if r["session_id"] == WEB:
            continue
        assert r["status"] == "graded" and 0 <= r["score"] <= 100
        assert set(r["components"]) == {"outcome", "process", "efficiency"}
        assert r["judge"] == {"kind": "heuristic", "model": None}
        assert r["graded_at"].endswith("Z")
        folder = session_dir(out, r["session_id"])
        for name in ("scores.json", "results.json", "sft.json"):
            json.loads((folder / name).read_text())
    by_id = {r["session_id"]: r for r in lines}
    assert by_id[WEB]["reward"] == pytest.approx(0.5393)
    assert by_id["20251007_131852"]["n_actions"] == 13
    # 10 s of typing "coucou" in Word shows nothing of "Implement shopping cart": not a pass
    assert by_id["20251007_131852"]["score"] < 50
    # the web capture has no action: ungradable, no score, the reason in error
    assert (by_id[WEB]["status"], by_id[WEB]["score"], by_id[WEB]["components"]) == ("ungradable", None, {})
    assert by_id[WEB]["error"] == "ungradable: no actions were recorded"
    assert by_id["20251007_131852"]["source_path"] == str(data / "20251007_131852")
    sft = json.loads((session_dir(out, "20251007_131852") / "sft.json").read_text())
    assert sft["messages"][0]["role"] == "user"
    assert any('type("coucou")' in m["content"] for m in sft["messages"])
    # ChatML rows only for sessions with assistant turns (the web session has no actions yet)
    chatml = _lines(out, "sft.chatml.jsonl")
    assert len(chatml) == 2
    for row in chatml:
        roles = [m["role"] for m in row["messages"]]
        assert roles[0] == "system" and roles[-1] == "assistant"
        assert all(a != b for a, b in zip(roles, roles[1:])), "roles must alternate"


@pytest.mark.asyncio
async def test_rerun_adds_no_line_and_changed_session_is_regraded(data: Path, tmp_path: Path):
    out = tmp_path / "out"
    await _grade(data, out)
    stats = await _grade(data, out)
    assert (stats.found, stats.skipped, stats.graded) == (3, 3, 0)
    assert len(_lines(out)) == 3
    # Change one session's file: only that one is graded again, with a new fingerprint.
    meta = data / "20251007_131852" / "meta.json"
    meta.write_text(meta.read_text().replace("Implement shopping cart", "Implement a shopping cart"))
    stats = await _grade(data, out)
    assert (stats.skipped, stats.graded) == (2, 1)
    lines = _lines(out)
    assert len(lines) == 4
    assert lines[-1]["session_id"] == "20251007_131852"
    assert lines[-1]["fingerprint"] != [r for r in lines if r["session_id"] == "20251007_131852"][0]["fingerprint"]


@pytest.mark.asyncio
async def test_uncommitted_append_is_cut_and_session_appended_once(data: Path, tmp_path: Path):
    """Simulates kill -9 between the JSONL append and the ledger commit, and a half line."""
    out = tmp_path / "out"
    await _grade(data, out, cfg=load_config(env={}, overrides={"exports": {"pass_only": False}}))
    scores = out / "exports" / "scores.jsonl"
    good = scores.read_bytes()
    # Forge the crash: one session's ledger row goes back to pending, and its line (plus a
    # half line) sits beyond the committed length.
    victim = json.loads(good.splitlines()[-1])["session_id"]
    ledger = Ledger(out / "state.sqlite")
    committed = len(good) - len(good.splitlines()[-1]) - 1
    ledger.set_committed_bytes("scores.jsonl", committed)
    ledger.db.execute("UPDATE sessions SET status='pending' WHERE session_id=?", (victim,))
    ledger.db.execute("DELETE FROM appends WHERE session_id=? AND export='scores.jsonl'", (victim,))
    ledger.close()
    with open(scores, "ab") as f:
        f.write(b'{"session_id": "half')
    stats = await _grade(data, out, cfg=load_config(env={}, overrides={"exports": {"pass_only": False}}))
    assert stats.graded + stats.ungradable == 1  # the victim, whichever it was
    lines = _lines(out)
    ids = [r["session_id"] for r in lines]
    assert sorted(ids) == sorted([*DESKTOP, WEB]), ids  # exactly once each, no half line
    assert len(_lines(out, "sft.chatml.jsonl")) == 2  # not duplicated by the regrade


@pytest.mark.asyncio
async def test_bad_input_gives_failed_record_and_run_goes_on(data: Path, tmp_path: Path):
    out = tmp_path / "out"
    (data / "20250817_232256" / "meta.json").unlink()
    log = data / "20251007_131852" / "input_log.jsonl"
    raw = log.read_bytes()
    log.write_bytes(raw[: len(raw) - 30])  # truncated last line
    stats = await _grade(data, out, cfg=load_config(env={}, overrides={"exports": {"pass_only": False}}))
    assert (stats.graded, stats.failed, stats.ungradable) == (0, 2, 1)
    by_id = {r["session_id"]: r for r in _lines(out)}
    missing = by_id["20250817_232256"]
    assert missing["status"] == "failed" and missing["score"] is None
    assert "meta.json" in missing["error"] and "missing" in missing["error"]
    trunc = by_id["20251007_131852"]
    n_lines = raw[: len(raw) - 30].count(b"\n") + 1
    assert f"input_log.jsonl:{n_lines}:" in trunc["error"]
    assert by_id[WEB]["status"] == "ungradable"  # no action: nothing to judge, not a failure
    # a failed input is not retried until its files change, but it is still counted
    stats = await _grade(data, out, cfg=load_config(env={}, overrides={"exports": {"pass_only": False}}))
    assert (stats.skipped, stats.failed_earlier) == (1, 2) and len(_lines(out)) == 3
    assert {sid for sid, _ in stats.earlier_failures} == {"20250817_232256", "20251007_131852"}


@pytest.mark.asyncio
async def test_judge_failure_gives_failed_record_and_is_retried_next_run(data: Path, tmp_path: Path):
    out = tmp_path / "out"
    judge = FakeJudge(fail={"20251007_131852"})
    stats = await _grade(data, out, judge)
    assert (stats.graded, stats.failed) == (2, 1)
    failed = [r for r in _lines(out) if r["status"] == "failed"]
    assert failed[0]["session_id"] == "20251007_131852"
    assert "judge: retries exhausted" in failed[0]["error"]
    assert failed[0]["judge"] == {"kind": "fake", "model": "fake-1"}
    graded = [r for r in _lines(out) if r["status"] == "graded"]
    # final score computed in code from the 60/30/10 weights: (80*60 + 50*30 + 80*10) / 100
    assert graded[0]["score"] == pytest.approx(71.0)
    assert graded[0]["usage"]["prompt_tokens"] == 10
    # next run: the judge works again; only the failed session is graded, once
    judge2 = FakeJudge()
    stats = await _grade(data, out, judge2)
    assert judge2.calls == ["20251007_131852"]
    assert [r["status"] for r in _lines(out) if r["session_id"] == "20251007_131852"] == ["failed", "graded"]


@pytest.mark.asyncio
async def test_grade_workers_bound_concurrency(tmp_path: Path):
    data = tmp_path / "data"
    for i in range(12):
        shutil.copytree(EXAMPLES / "20251007_131852", data / f"s{i:02d}")
    judge = FakeJudge(delay=0.25)  # long beside assembly, so that 3 are in flight even on a loaded machine
    cfg = _cfg(grade_workers=3, stream_capacity=1)
    stats = await _grade(data, tmp_path / "out", judge, cfg)
    assert stats.graded == 12
    assert judge.max_active == 3


@pytest.mark.asyncio
async def test_stop_drains_in_flight_and_leaves_rest_pending(tmp_path: Path):
    data = tmp_path / "data"
    for i in range(30):
        shutil.copytree(EXAMPLES / "20251007_131852", data / f"s{i:02d}")
    out = tmp_path / "out"
    judge = FakeJudge(delay=0.05)
    cfg = _cfg(grade_workers=2, stream_capacity=1)
    pipe = Pipeline(cfg, out, judge)

    async def stopper():
        while pipe.stats.graded < 2:
            await anyio.sleep(0.01)
        pipe.stop()

    async with anyio.create_task_group() as tg:
        tg.start_soon(stopper)
        stats = await pipe.run(scan_source([data], exclude=[out]))
    assert 2 <= stats.graded < 30
    assert stats.in_flight == 0
    lines = _lines(out)
    assert len(lines) == stats.graded  # everything that was taken in was finished
    ledger = Ledger(out / "state.sqlite")
    counts = ledger.counts()
    ledger.close()
    assert counts.get("graded") == stats.graded and "pending" not in counts
    # the next run grades the rest, each once
    stats2 = await _grade(data, out, FakeJudge())
    assert stats2.graded == 30 - stats.graded
    assert len({r["session_id"] for r in _lines(out)}) == len(_lines(out)) == 30


def test_score_record_roundtrip_fields():
    line = b'{"session_id":"a","source_format":"f","source_path":"p","status":"failed","score":null,"components":{},' \
           b'"confidence":null,"judge":null,"reward":null,"n_actions":0,"duration_s":null,' \
           b'"usage":{"prompt_tokens":0,"completion_tokens":0,"cost_usd":0.0},"error":"p:3: bad","graded_at":"x"}'
    from streamgrade.models import ScoreRecord

    rec = msgspec.json.decode(line, type=ScoreRecord)
    assert rec.status == "failed" and rec.error == "p:3: bad"
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(line.replace(b'"failed"', b'"weird"'), type=ScoreRecord)


@pytest.mark.asyncio
async def test_openai_retries_exhausted_give_failed_record(data: Path, tmp_path: Path):
    """The real openai judge through the pipeline, the server always answering 500."""
    import httpx
    import respx

    from streamgrade.judges.openai import OpenAIJudge

    out = tmp_path / "out"
    cfg = load_config(env={}, overrides={"openai": {"base_url": "http://judge.test/v1", "max_retries": 2,
                                                    "backoff_base_s": 0.001, "backoff_max_s": 0.001, "http_client": "httpx"}})
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post("http://judge.test/v1/chat/completions").mock(
            return_value=httpx.Response(500, json={"error": {"message": "boom"}}))
        judge = OpenAIJudge(cfg, api_key="sk-test")
        stats = await _grade(data, out, judge, cfg)
        await judge.aclose()
    assert (stats.graded, stats.failed) == (0, 3)
    assert route.call_count == 3 * 3  # 3 sessions x (1 attempt + 2 retries)
    recs = _lines(out)
    assert all(r["status"] == "failed" and "judge:" in r["error"] and "3 attempts" in r["error"] for r in recs)
    assert all(r["judge"]["kind"] == "openai" for r in recs)


@pytest.mark.asyncio
async def test_same_session_id_in_two_places_gets_two_ids_stable_across_runs(tmp_path: Path):
    data = tmp_path / "data"
    for parent in ("a", "b"):
        shutil.copytree(EXAMPLES / "20251007_131852", data / parent / "rec")
    out = tmp_path / "out"
    stats = await _grade(data, out)
    assert stats.graded == 2
    ids = sorted(r["session_id"] for r in _lines(out))
    assert ids[0] == "rec" and ids[1].startswith("rec-") and len(ids[1]) == len("rec-") + 8
    by_id = {r["session_id"]: r["source_path"] for r in _lines(out)}
    assert by_id["rec"].endswith("/a/rec") and by_id[ids[1]].endswith("/b/rec")
    stats = await _grade(data, out)  # the same ids again: nothing new
    assert (stats.skipped, stats.graded) == (2, 0) and len(_lines(out)) == 2


@pytest.mark.asyncio
async def test_failed_judge_record_keeps_what_it_spent(data: Path, tmp_path: Path):
    """Answers that violate the schema were paid for: the failed record says so."""
    import httpx
    import respx

    from streamgrade.judges.openai import OpenAIJudge

    cfg = load_config(env={}, overrides={"openai": {"base_url": "http://judge.test/v1", "max_retries": 1,
                                                    "backoff_base_s": 0.001, "rpm": 600_000, "http_client": "httpx"}})
    bad = httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "content": '{"summary": 1}'}}],
                                    "usage": {"prompt_tokens": 1000, "completion_tokens": 10}})
    with respx.mock:
        respx.post("http://judge.test/v1/chat/completions").mock(return_value=bad)
        judge = OpenAIJudge(cfg, api_key="k")
        out = tmp_path / "out"
        stats = await _grade(data, out, judge, cfg)
        await judge.aclose()
    assert stats.failed == 3 and stats.requests == 6
    for r in _lines(out):
        assert r["status"] == "failed"
        assert r["usage"]["requests"] == 2 and r["usage"]["prompt_tokens"] == 2000 and r["usage"]["cost_usd"] > 0
