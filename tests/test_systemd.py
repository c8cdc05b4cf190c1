"""systemd integration of ``streamgrade watch``: the sd_notify client against a fake
NOTIFY_SOCKET (path and abstract), watchdog_interval parsing, the supervision actor with a
fake clock, the daemon end to end as a subprocess, and the shipped unit file."""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from streamgrade.config import PipelineConfig, load_config
from streamgrade.daemon import MIN_STUCK_AFTER_S, Supervisor, status_line, stuck_after_for, supervise
from streamgrade.sdnotify import Notifier, watchdog_interval

ROOT = Path(__file__).parent.parent
UNIT = ROOT / "configs" / "streamgrade.service"
EXAMPLES = ROOT / "examples" / "clones"
SHIPPED_EXEC = ("ExecStart=/opt/streamgrade/.venv/bin/streamgrade watch /srv/agent-data -o /var/lib/streamgrade "
                "--log-format json --metrics-port 9468")
CLEAN_ENV = {k: v for k, v in os.environ.items()
             if not k.startswith(("STREAMGRADE_", "OPENAI_", "NOTIFY_SOCKET", "WATCHDOG_"))}


# -- fake NOTIFY_SOCKET -------------------------------------------------------------------
class FakeSystemd:
    """A bound AF_UNIX datagram socket standing in for systemd's notification socket."""

    def __init__(self, address: str, bind_to: str | bytes):
        self.address = address  # the NOTIFY_SOCKET value
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(bind_to)

    def recv(self, timeout: float = 1.0) -> bytes | None:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(4096)
        except (socket.timeout, BlockingIOError):
            return None

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def fake_systemd(tmp_path: Path):
    # sun_path holds 108 bytes: use a short folder when pytest's tmp_path is long.
    folder = tmp_path if len(str(tmp_path)) < 80 else Path(tempfile.mkdtemp(prefix="sg-"))
    path = str(folder / "notify")
    fake = FakeSystemd(path, path)
    yield fake
    fake.close()
    if folder != tmp_path:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def fake_systemd_abstract():
    name = f"streamgrade-test-{uuid.uuid4().hex}"
    fake = FakeSystemd("@" + name, b"\0" + name.encode())
    yield fake
    fake.close()


# -- the notifier ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["path", "abstract"])
def test_notifier_sends_exact_datagrams(kind, fake_systemd, fake_systemd_abstract):
    fake = fake_systemd if kind == "path" else fake_systemd_abstract
    n = Notifier(env={"NOTIFY_SOCKET": fake.address})
    assert n.enabled
    assert n.ready()
    assert fake.recv() == b"READY=1"
    assert n.status("graded 12, failed 1, in flight 3, skipped 40")
    assert fake.recv() == b"STATUS=graded 12, failed 1, in flight 3, skipped 40"
    assert n.watchdog()
    assert fake.recv() == b"WATCHDOG=1"
    assert n.stopping()
    assert fake.recv() == b"STOPPING=1"
    assert n.notify(READY=True, STATUS="two\nlines")
    assert fake.recv() == b"READY=1\nSTATUS=two lines"  # one datagram, one assignment a line
    n.close()


def test_notifier_is_noop_without_notify_socket():
    n = Notifier(env={})
    assert not n.enabled
    assert not n.ready() and not n.watchdog() and not n.stopping() and not n.status("x")
    assert not Notifier(env={"NOTIFY_SOCKET": ""}).enabled


def test_notifier_rejects_bad_field_name():
    with pytest.raises(ValueError):
        Notifier(env={}).notify(ready=1)


def test_notifier_never_raises_and_warns_once(tmp_path: Path, caplog):
    n = Notifier(env={"NOTIFY_SOCKET": str(tmp_path / "gone")})
    with caplog.at_level(logging.DEBUG, logger="streamgrade.sdnotify"):
        assert not n.ready()
        assert not n.watchdog()
        assert not n.status("x")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "gone" in warnings[0].getMessage()


def test_notifier_unsupported_address_disables_with_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="streamgrade.sdnotify"):
        n = Notifier(env={"NOTIFY_SOCKET": "relative/notify"})
    assert not n.enabled and not n.ready()
    assert "unsupported NOTIFY_SOCKET" in caplog.text


# -- watchdog_interval ------------------------------------------------------------------------
@pytest.mark.parametrize("env, expected", [
    ({}, None),
    ({"WATCHDOG_USEC": "400000"}, 0.2),
    ({"WATCHDOG_USEC": "60000000"}, 30.0),
    ({"WATCHDOG_USEC": "400000", "WATCHDOG_PID": "SELF"}, 0.2),
    ({"WATCHDOG_USEC": "400000", "WATCHDOG_PID": "OTHER"}, None),
    ({"WATCHDOG_USEC": "400000", "WATCHDOG_PID": "x"}, None),
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "-5"}, None),
    ({"WATCHDOG_USEC": "soon"}, None),
    ({"WATCHDOG_PID": "SELF"}, None),
])
def test_watchdog_interval(env, expected):
    env = {k: str(os.getpid()) if v == "SELF" else str(os.getpid() + 1) if v == "OTHER" else v
           for k, v in env.items()}
    got = watchdog_interval(env)
    assert got == (None if expected is None else pytest.approx(expected))


# -- the supervision actor --------------------------------------------------------------------
@dataclass
class FakeStats:
    found: int = 0
    skipped: int = 0
    graded: int = 0
    failed: int = 0
    in_flight: int = 0

    @property
    def done(self) -> int:
        return self.graded + self.failed


class Recorder:
    def __init__(self):
        self.sent: list[str] = []

    def watchdog(self) -> bool:
        self.sent.append("WATCHDOG=1")
        return True

    def status(self, text: str) -> bool:
        self.sent.append(f"STATUS={text}")
        return True

    def pings(self) -> int:
        return self.sent.count("WATCHDOG=1")

    def take(self) -> list[str]:
        out, self.sent = self.sent, []
        return out


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_supervisor_pings_while_progressing():
    st, rec, clock = FakeStats(found=5, in_flight=3), Recorder(), Clock()
    sup = Supervisor(st, rec, stuck_after=30, clock=clock)
    for _ in range(20):  # 200 s, far past stuck_after, but a session completes every tick
        assert sup.check()
        clock.now += 10
        st.graded += 1
    assert rec.pings() == 20


def test_supervisor_pings_while_new_sessions_arrive():
    st, rec, clock = FakeStats(in_flight=2), Recorder(), Clock()
    sup = Supervisor(st, rec, stuck_after=30, clock=clock)
    for _ in range(10):
        assert sup.check()
        clock.now += 10
        st.found += 1
    assert rec.pings() == 10


def test_supervisor_pings_while_idle():
    st, rec, clock = FakeStats(found=40, skipped=40), Recorder(), Clock()
    sup = Supervisor(st, rec, stuck_after=30, clock=clock)
    for _ in range(50):  # 500 s with nothing to do: healthy
        assert sup.check()
        clock.now += 10
    assert rec.pings() == 50
    # the status went out once (it did not change)
    assert [m for m in rec.sent if m.startswith("STATUS=")] == ["STATUS=graded 0, failed 0, in flight 0, skipped 40"]


def test_supervisor_stops_pinging_when_stuck_and_resumes(caplog):
    st, rec, clock = FakeStats(found=3, graded=1, in_flight=2), Recorder(), Clock()
    sup = Supervisor(st, rec, stuck_after=30, clock=clock)
    healthy = []
    for _ in range(6):  # t = 0, 10, ..., 50 with nothing completing
        healthy.append(sup.check())
        clock.now += 10
    assert healthy == [True, True, True, False, False, False]
    assert rec.pings() == 3
    stuck_status = [m for m in rec.sent if "stuck" in m]
    assert stuck_status and stuck_status[0].startswith("STATUS=graded 1, failed 0, in flight 2, skipped 0; stuck:")
    assert "stopping watchdog pings" in caplog.text
    rec.take()
    st.graded += 1
    st.in_flight -= 1
    assert sup.check()
    assert rec.take() == ["WATCHDOG=1", "STATUS=graded 2, failed 0, in flight 1, skipped 0"]


def test_supervisor_idle_moment_resets_stuck_timer():
    st, rec, clock = FakeStats(found=1, in_flight=1), Recorder(), Clock()
    sup = Supervisor(st, rec, stuck_after=30, clock=clock)
    sup.check()
    clock.now += 20
    st.in_flight, st.graded = 0, 1
    sup.check()  # idle
    clock.now += 20
    st.in_flight, st.found = 1, 2  # a new session arrived
    assert sup.check()
    clock.now += 25  # 25 s since the last progress: still fine
    assert sup.check()
    clock.now += 10
    assert not sup.check()


def test_supervisor_without_watchdog_sends_only_status():
    st, rec, clock = FakeStats(), Recorder(), Clock()
    sup = Supervisor(st, rec, stuck_after=30, watchdog=False, clock=clock, stopping=lambda: True)
    sup.check()
    assert rec.sent == ["STATUS=stopping, draining: graded 0, failed 0, in flight 0, skipped 0"]


def test_supervise_loop_with_fake_sleep():
    st, rec, clock = FakeStats(in_flight=1, found=1), Recorder(), Clock()
    ticks = 0

    async def fake_sleep(seconds: float) -> None:
        nonlocal ticks
        ticks += 1
        clock.now += seconds
        if ticks == 3:
            st.graded, st.in_flight = 1, 0
        if ticks == 8:
            raise anyio.get_cancelled_exc_class()()

    async def main() -> None:
        with pytest.raises(anyio.get_cancelled_exc_class()):
            await supervise(st, rec, interval=15, stuck_after=20, clock=clock, sleep=fake_sleep)

    anyio.run(main)
    # t=0 ping, t=15 ping, t=30 stuck (no ping), t=45 progress+idle ping, then idle pings
    assert rec.pings() == 2 + 5


def test_status_line_and_stuck_after():
    assert status_line(FakeStats(graded=12, failed=1, in_flight=3, skipped=40)) == \
        "graded 12, failed 1, in flight 3, skipped 40"
    cfg = load_config(env={})
    assert stuck_after_for(cfg) >= MIN_STUCK_AFTER_S
    # longer than one judge call with all its retries
    o = cfg.openai
    assert stuck_after_for(cfg) >= (o.max_retries + 1) * o.timeout_s


# -- end to end -------------------------------------------------------------------------------
def test_watch_daemon_speaks_sd_notify(tmp_path: Path, fake_systemd):
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    shutil.copytree(EXAMPLES / "20251007_131852", data / "present")  # old mtimes: graded at once
    env = {**CLEAN_ENV, "NOTIFY_SOCKET": fake_systemd.address, "WATCHDOG_USEC": "400000"}
    proc = subprocess.Popen([sys.executable, "-m", "streamgrade", "watch", str(data), "-o", str(out), "--settle", "0.3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    got: list[tuple[float, bytes]] = []
    try:
        t0 = time.monotonic()

        def seen() -> list[bytes]:
            return [m for _, m in got]

        while time.monotonic() < t0 + 15:
            msg = fake_systemd.recv(0.1)
            if msg is not None:
                got.append((time.monotonic(), msg))
            if (b"READY=1" in seen() and any(m.startswith(b"STATUS=graded 1,") for m in seen())
                    and seen().count(b"WATCHDOG=1") >= 3):
                break
        assert b"READY=1" in seen(), got
        assert seen().count(b"WATCHDOG=1") >= 3, got
        assert b"STATUS=graded 1, failed 0, in flight 0, skipped 0" in seen(), got
        # pings arrive every WATCHDOG_USEC/2 = 0.2 s (well within the 0.4 s timeout)
        times = [t for t, m in got if m == b"WATCHDOG=1"]
        assert max(b - a for a, b in zip(times, times[1:])) < 0.4

        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
        while (msg := fake_systemd.recv(0.05)) is not None:
            got.append((time.monotonic(), msg))
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    msgs = [m for _, m in got]
    assert msgs.count(b"READY=1") == 1 and msgs.count(b"STOPPING=1") == 1
    assert msgs.index(b"READY=1") < msgs.index(b"STOPPING=1")
    assert all(re.fullmatch(rb"(READY|WATCHDOG|STOPPING)=1|STATUS=[^\n]+", m) for m in msgs), msgs


def test_grade_does_not_notify(tmp_path: Path, fake_systemd):
    env = {**CLEAN_ENV, "NOTIFY_SOCKET": fake_systemd.address, "WATCHDOG_USEC": "400000"}
    res = subprocess.run([sys.executable, "-m", "streamgrade", "grade", str(EXAMPLES / "20251007_131852"),
                          "-o", str(tmp_path / "out"), "--no-progress"], capture_output=True, text=True, env=env,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    assert fake_systemd.recv(0.05) is None


# -- the unit file ----------------------------------------------------------------------------
def _directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            k, _, v = line.partition("=")
            out.setdefault(k.strip(), []).append(v.strip())
    return out


def test_unit_file_settings():
    d = _directives(UNIT.read_text())
    assert d["Type"] == ["notify"] and d["NotifyAccess"] == ["main"]
    assert d["WatchdogSec"] == ["60"] and d["Restart"] == ["on-failure"] and d["KillSignal"] == ["SIGTERM"]
    assert float(d["TimeoutStopSec"][0]) > PipelineConfig().drain_timeout_s
    assert "STREAMGRADE_LOG_FORMAT=json" in d["Environment"]
    assert d["EnvironmentFile"] == ["-/etc/streamgrade/env"]
    assert set(d["RestrictAddressFamilies"][0].split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}  # AF_UNIX: NOTIFY_SOCKET
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices", "ProtectKernelTunables",
                "ProtectKernelModules", "ProtectControlGroups", "LockPersonality", "RestrictRealtime"):
        assert d[key] == ["yes"], key
    assert d["ProtectSystem"] == ["strict"] and d["SystemCallArchitectures"] == ["native"]
    # URLs only: a man: entry makes `systemd-analyze verify` fail where the page is absent
    assert d["Documentation"] and all(v.startswith("https://") for v in d["Documentation"])
    # the watchdog must not fire while a slow judge call is legitimately in flight
    assert stuck_after_for(load_config(env={})) > float(d["WatchdogSec"][0])


def test_unit_file_verifies(tmp_path: Path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed (Debian/Ubuntu package: systemd)")
    exe = Path(sys.executable).parent / "streamgrade"
    if not exe.exists():
        pytest.skip(f"no streamgrade console script next to {sys.executable} (pip install -e . first)")
    shipped = UNIT.read_text().splitlines()
    assert SHIPPED_EXEC in shipped
    copy = [f"ExecStart={exe}{line[len('ExecStart=/opt/streamgrade/.venv/bin/streamgrade'):]}"
            if line == SHIPPED_EXEC else line for line in shipped]
    assert [i for i, (a, b) in enumerate(zip(shipped, copy)) if a != b] == [shipped.index(SHIPPED_EXEC)]
    unit = tmp_path / "streamgrade.service"
    unit.write_text("\n".join(copy) + "\n")
    # as an operator runs it on stock Debian: Documentation= holds URLs, so no man page is needed
    res = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    problems = [line for line in (res.stdout + res.stderr).splitlines() if "streamgrade.service" in line]
    assert res.returncode == 0 and not problems, res.stdout + res.stderr
