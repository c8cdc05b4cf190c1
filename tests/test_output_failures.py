"""The output folder fills up or turns read-only in the middle of a run.

What must hold: nothing already written is lost or corrupted (scores.jsonl keeps its bytes as
a prefix and never ends in a half line; every per-session JSON parses), the error names the
file or folder, the run ends (no hang, no traceback), the ledger leaves what could not be
written pending (or failed), and a later run into a healthy output grades the rest so that
each session has exactly one line in scores.jsonl, as graded.

We run as root, so chmod does not stop writes: a real small tmpfs is mounted (over OUT/sessions,
OUT/exports, or OUT itself) and filled, or remounted read-only. Skipped when mounting is not
permitted. Every mount is unmounted in a finally.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import anyio
import pytest

from streamgrade.config import load_config
from streamgrade.judges.heuristic import HeuristicJudge
from streamgrade.pipeline import Pipeline, scan_source

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "clones"
SESSION = EXAMPLES / "20251007_131852"
CFG = load_config(env={})


# --------------------------------------------------------------------------- tmpfs


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True)


def _can_mount() -> str | None:
    """None when a tmpfs can be mounted here, else the reason it cannot."""
    if os.geteuid() != 0:
        return "not root: cannot mount a tmpfs"
    if shutil.which("mount") is None:
        return "no mount command"
    d = tempfile.mkdtemp()
    try:
        r = _run("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", d)
        if r.returncode != 0:
            return f"mounting a tmpfs is not permitted here: {r.stderr.strip()}"
        _run("umount", d)
        return None
    finally:
        os.rmdir(d)


NO_MOUNT = _can_mount()
pytestmark = pytest.mark.skipif(NO_MOUNT is not None, reason=NO_MOUNT or "")


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    r = _run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where))
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs at {where}: {r.stderr.strip()}")
    try:
        yield where
    finally:
        _run("mount", "-o", "remount,rw", str(where))
        if _run("umount", str(where)).returncode != 0:
            _run("umount", "-l", str(where))


def fill(folder: Path) -> Path:
    """Write a ballast file in ``folder`` until its filesystem is full; returns the ballast."""
    ballast = folder / "ballast.bin"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (1 << 16, 4096, 1):  # big chunks, then the last page byte by byte
            chunk = b"\0" * size
            try:
                while True:
                    os.write(fd, chunk)
            except OSError:
                pass
    finally:
        os.close(fd)
    return ballast


def remount_ro(where: Path) -> None:
    """Remount read-only, retrying while a file is open for writing (EBUSY)."""
    for _ in range(500):
        if _run("mount", "-o", "remount,ro", str(where)).returncode == 0:
            return
        time.sleep(0.01)
    raise RuntimeError(f"could not remount {where} read-only")


# --------------------------------------------------------------------------- helpers


def make_data(root: Path, n: int) -> Path:
    """``n`` Clones desktop sessions s00..s{n-1} (copies of a bundled real session)."""
    for i in range(n):
        d = root / f"s{i:02d}"
        d.mkdir(parents=True)
        for f in SESSION.iterdir():
            shutil.copyfile(f, d / f.name)
    return root


class HookJudge(HeuristicJudge):
    """The heuristic judge, running ``hook`` once, just before its ``at``-th grade call."""

    def __init__(self, config, at: int, hook: Callable[[], None]):
        super().__init__(config)
        self.at, self.hook, self.calls = at, hook, 0

    async def grade(self, session, chunks):
        self.calls += 1
        if self.calls == self.at:
            self.hook()
        return await super().grade(session, chunks)


def run_pipeline(data: Path, out: Path, judge=None):
    cfg = CFG

    async def go():
        pipe = Pipeline(cfg, out, judge or HeuristicJudge(cfg))
        with anyio.fail_after(120):  # no hang
            return await pipe.run(scan_source([data], exclude=[out]))

    return anyio.run(go)


def jsonl(path: Path) -> list[dict]:
    raw = path.read_bytes() if path.exists() else b""
    assert raw == b"" or raw.endswith(b"\n"), f"{path} ends with a partial line"
    return [json.loads(line) for line in raw.splitlines()]


def ledger(out: Path) -> dict[str, str]:
    db = sqlite3.connect(f"file:{out / 'state.sqlite'}?mode=ro", uri=True)
    try:
        return dict(db.execute("SELECT session_id, status FROM sessions").fetchall())
    finally:
        db.close()


def snapshot(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in (out / "sessions").glob("*/*/*.json")}


def check_consistent(out: Path, before: dict[str, bytes], scores_before: bytes) -> list[dict]:
    """Nothing written before is lost or changed; no partial line; every JSON parses."""
    raw = (out / "exports" / "scores.jsonl").read_bytes()
    assert raw.startswith(scores_before), "scores.jsonl lost or changed lines written before"
    for name in ("scores.jsonl", "sft.chatml.jsonl", "sharegpt.jsonl"):
        jsonl(out / "exports" / name)
    for p in (out / "sessions").glob("*/*/*.json"):
        json.loads(p.read_bytes())
    for rel, data in before.items():
        assert (out / rel).read_bytes() == data, f"{rel} changed"
    assert not list((out / "sessions").glob("*/*/.*.tmp")), "temporary files left behind"
    return jsonl(out / "exports" / "scores.jsonl")


def check_rerun_exactly_once(data: Path, out: Path, n: int) -> None:
    stats = run_pipeline(data, out)
    assert stats.failed == 0, stats.failures
    recs = jsonl(out / "exports" / "scores.jsonl")
    ids = [r["session_id"] for r in recs if r["status"] == "graded"]
    assert sorted(ids) == sorted(f"s{i:02d}" for i in range(n)), "each session exactly once, graded"
    assert all(r["status"] == "graded" for r in recs), [r for r in recs if r["status"] != "graded"]
    assert set(ledger(out).values()) == {"graded"}


def first_run(tmp: Path, n_first: int) -> tuple[Path, Path]:
    """A healthy first run over s00..s{n_first-1}; returns (data, out)."""
    data = make_data(tmp / "data", n_first)
    out = tmp / "out"
    stats = run_pipeline(data, out)
    assert stats.graded == n_first and stats.failed == 0
    return data, out


def add_sessions(data: Path, start: int, n: int) -> None:
    for i in range(start, n):
        d = data / f"s{i:02d}"
        d.mkdir()
        for f in SESSION.iterdir():
            shutil.copyfile(f, d / f.name)


def check_after_failure(out: Path, stats, before, scores_before, folder: Path, what: str) -> None:
    recs = check_consistent(out, before, scores_before)
    assert stats.failed >= 1, "the output failure hit no session: the hook came too late"
    for sid, err in stats.failures:
        assert str(folder) in err or str(out) in err, f"{sid}: error does not name the folder/file: {err}"
        assert what in err, err
    written = {r["session_id"] for r in recs}
    states = ledger(out)
    for sid, _ in stats.failures:
        assert sid not in written, f"{sid} failed to write but has a line"
        assert states.get(sid) in ("pending", "failed"), (sid, states.get(sid))
    for r in recs:
        assert states.get(r["session_id"]) == r["status"], (r["session_id"], states.get(r["session_id"]))


# --------------------------------------------------------------------------- tests

N_FIRST, N = 2, 10


@pytest.mark.parametrize("sub", ["sessions", "exports"])
def test_output_subfolder_full_mid_run(tmp_path: Path, sub: str) -> None:
    """OUT/sessions or OUT/exports (its own small tmpfs) fills up in the middle of a run."""
    data, out = first_run(tmp_path, N_FIRST)
    keep = tmp_path / "keep"
    shutil.move(str(out / sub), keep)
    with tmpfs(out / sub, "1m") as mnt:
        for p in keep.iterdir():
            shutil.move(str(p), mnt / p.name)
        before, scores_before = snapshot(out), (out / "exports" / "scores.jsonl").read_bytes()
        add_sessions(data, N_FIRST, N)
        ballast: list[Path] = []
        judge = HookJudge(CFG, at=3, hook=lambda: ballast.append(fill(mnt)))
        stats = run_pipeline(data, out, judge)
        assert ballast, "the disk was never filled"
        check_after_failure(out, stats, before, scores_before, mnt, "No space left on device")
        ballast[0].unlink()  # free the space; the next run completes the rest
        check_rerun_exactly_once(data, out, N)


def test_sessions_folder_read_only_mid_run(tmp_path: Path) -> None:
    """OUT/sessions (its own tmpfs) is remounted read-only in the middle of a run."""
    data, out = first_run(tmp_path, N_FIRST)
    keep = tmp_path / "keep"
    shutil.move(str(out / "sessions"), keep)
    with tmpfs(out / "sessions", "4m") as mnt:
        for p in keep.iterdir():
            shutil.move(str(p), mnt / p.name)
        before, scores_before = snapshot(out), (out / "exports" / "scores.jsonl").read_bytes()
        add_sessions(data, N_FIRST, N)
        judge = HookJudge(CFG, at=3, hook=lambda: remount_ro(mnt))
        stats = run_pipeline(data, out, judge)
        check_after_failure(out, stats, before, scores_before, mnt, "Read-only file system")
        assert _run("mount", "-o", "remount,rw", str(mnt)).returncode == 0
        check_rerun_exactly_once(data, out, N)


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMGRADE_", "OPENAI_", "ANTHROPIC_"))}
    return subprocess.run([sys.executable, "-m", "streamgrade", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_cli_output_folder_full_mid_run(tmp_path: Path) -> None:
    """OUT itself is a small tmpfs that fills up while `streamgrade grade` runs."""
    data = make_data(tmp_path / "data", 30)
    out = tmp_path / "out"
    with tmpfs(out, "2m"):
        scores = out / "exports" / "scores.jsonl"
        ballast: list[Path] = []
        stop = threading.Event()

        def filler() -> None:  # fill the disk as soon as the first line is written
            while not stop.is_set():
                if scores.exists() and scores.stat().st_size > 0:
                    ballast.append(fill(out))
                    return
                time.sleep(0.002)

        t = threading.Thread(target=filler)
        t.start()
        try:
            r = _cli("grade", str(data), "-o", str(out), "--judge", "heuristic", "--no-progress")
        finally:
            stop.set()
            t.join()
        assert ballast, "the disk was never filled"
        assert "Traceback" not in r.stderr, r.stderr[-3000:]
        assert r.returncode in (1, 2), (r.returncode, r.stderr[-2000:])
        assert str(out) in r.stderr, r.stderr[-2000:]
        check_consistent(out, {}, b"")
        ballast[0].unlink()
        r = _cli("grade", str(data), "-o", str(out), "--judge", "heuristic", "--no-progress")
        assert r.returncode == 0, r.stderr[-2000:]
        recs = jsonl(scores)
        assert sorted(x["session_id"] for x in recs) == sorted(f"s{i:02d}" for i in range(30))
        assert all(x["status"] == "graded" for x in recs)


def test_cli_read_only_empty_output_exits_2(tmp_path: Path) -> None:
    """`streamgrade grade DIR -o <read-only folder>` exits 2 naming the folder."""
    data = make_data(tmp_path / "data", 1)
    out = tmp_path / "out"
    with tmpfs(out, "256k"):
        remount_ro(out)
        r = _cli("grade", str(data), "-o", str(out), "--judge", "heuristic", "--no-progress")
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert str(out) in r.stderr and "Read-only file system" in r.stderr, r.stderr


def test_cli_read_only_existing_output_exits_2(tmp_path: Path) -> None:
    data = make_data(tmp_path / "data", 1)
    out = tmp_path / "out"
    with tmpfs(out, "1m"):
        r = _cli("grade", str(data), "-o", str(out), "--judge", "heuristic", "--no-progress")
        assert r.returncode == 0, r.stderr[-2000:]
        before = (out / "exports" / "scores.jsonl").read_bytes()
        add_sessions(data, 1, 2)
        remount_ro(out)
        r = _cli("grade", str(data), "-o", str(out), "--judge", "heuristic", "--no-progress")
        assert (out / "exports" / "scores.jsonl").read_bytes() == before
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert str(out) in r.stderr, r.stderr
