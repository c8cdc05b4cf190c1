"""HTML reports (streamgrade.sinks.html): pages built from a real pipeline run over the bundled
Clones sessions with hostile text injected everywhere a user or a website controls text."""

from __future__ import annotations

import json
import re
import shutil
import time
from html.parser import HTMLParser
from pathlib import Path

import anyio
import pytest
from markupsafe import escape

from streamgrade.config import load_config
from streamgrade.judges.heuristic import HeuristicJudge
from streamgrade.pipeline import Pipeline, scan_source
from streamgrade.sinks import html as reports
from conftest import session_dir, session_dirs

def esc(text: str) -> str:
    """``text`` as Jinja2's autoescape writes it."""
    return str(escape(text))


EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "clones"

# Each payload would leave a trace if it ran: the title "PWNED" or an element with id "pwned".
SCRIPT = "<script>document.title='PWNED'</script>"
IMG = "\"><img src=x id=pwned onerror=\"document.title='PWNED'\">"
QUOTE = "' onmouseover='document.title=\"PWNED\"' x='"
JSURL = "javascript:document.title='PWNED'"
SVG = "<svg/onload=document.title='PWNED'>"
PAYLOADS = [SCRIPT, IMG, QUOTE, JSURL, SVG]
# Raw markup that must never reach a page.
RAW_MARKERS = ["<script>document", "<img src=x", "<svg/onload", "onerror=\"document", "onmouseover='document"]

DESKTOP_TYPED = "20251007_131852"  # has axtree_interaction events (focused app names)
DESKTOP_MAC = "20250817_232256"
WEB = "6792a2a124f444f0e39ce887"


def png(width: int = 160, height: int = 100) -> bytes:
    """A small valid PNG (a gradient): a stand-in frame thumbnail."""
    import struct
    import zlib

    rows = b"".join(b"\x00" + bytes(v for x in range(width) for v in (x * 255 // width, y * 255 // height, 160))
                    for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def _inject(data: Path) -> None:
    """Put the payloads into the quest (title, objectives, app, content), the focused-app names
    of axtree_interaction events, the web session's quest and hint messages, and an agent
    trajectory (user text, tool call name and arguments, tool result)."""
    for sid in (DESKTOP_TYPED, DESKTOP_MAC):
        meta_path = data / sid / "meta.json"
        meta = json.loads(meta_path.read_text())
        meta["title"] = f"Title {SCRIPT}"
        q = meta["quest"]
        q["title"] = f"Quest {SCRIPT} {IMG}"
        q["app"] = f"App {IMG}"
        q["objectives"] = [f"Objective {p}" for p in PAYLOADS]
        q["content"] = f"Content {QUOTE} {JSURL}"
        meta_path.write_text(json.dumps(meta))
    log = data / DESKTOP_TYPED / "input_log.jsonl"
    lines = []
    for line in log.read_text().splitlines():
        if '"axtree_interaction"' in line:
            ev = json.loads(line)
            if isinstance(ev["data"].get("focused_app"), dict):
                ev["data"]["focused_app"]["name"] = f"Word {IMG}"
            line = json.dumps(ev)
        lines.append(line)
    log.write_text("\n".join(lines) + "\n")

    web = data / "web" / f"{WEB}.events.json"
    doc = json.loads(web.read_text())
    n = 0
    for ev in doc["events"]:
        if ev.get("type") in ("quest", "hint"):
            ev["message"] = f"{ev['message']} {PAYLOADS[n % len(PAYLOADS)]}"
            n += 1
    web.write_text(json.dumps(doc))

    agents = data / "agents"
    agents.mkdir()
    traj = [
        {"role": "system", "content": f"You are an agent. {QUOTE}"},
        {"role": "user", "content": f"Book a flight {SCRIPT} {IMG}"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": f"search{SVG}", "arguments": json.dumps({"q": SCRIPT, "url": JSURL})}}]},
        {"role": "tool", "tool_call_id": "call_1", "name": "search", "content": f"result {IMG} {SVG}"},
        {"role": "assistant", "content": f"Done {SCRIPT}"},
    ]
    (agents / "tau.json").write_text(json.dumps([{"task_id": 7, "trial": 0, "reward": 1.0, "traj": traj}]))


def build_reports(tmp_path: Path) -> Path:
    """Run the real pipeline over the bundled sessions with payloads injected, add frames to
    one session's results.json (valid ones and hostile paths), render every page; returns OUT."""
    data, out = tmp_path / "data", tmp_path / "out"
    shutil.copytree(EXAMPLES, data)
    for p in data.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    _inject(data)
    cfg = load_config(env={})
    stats = anyio.run(Pipeline(cfg, out, HeuristicJudge(cfg)).run, scan_source([data], exclude=[out]))
    assert stats.graded + stats.ungradable >= 4, stats  # a web capture with no action is ungradable

    folder = session_dir(out, DESKTOP_TYPED)
    res = json.loads((folder / "results.json").read_text())
    (folder / "frames").mkdir()
    (folder / "frames" / "000001.png").write_bytes(png())
    res["actions"][0]["frames"] = [{"t_ms": res["actions"][0]["t_ms"], "path": "frames/000001.png"}]
    res["frames"] = [
        {"t_ms": res["actions"][1]["t_ms"], "path": "frames/000001.png"},
        {"t_ms": res["actions"][2]["t_ms"], "path": JSURL},
        {"t_ms": res["actions"][3]["t_ms"], "path": "../../../etc/passwd"},
        {"t_ms": res["actions"][4]["t_ms"], "path": f"frames/{IMG}.png"},
    ]
    (folder / "results.json").write_text(json.dumps(res))

    ids = [json.loads((p / "scores.json").read_text())["session_id"] for p in session_dirs(out)]
    reports.update_reports(out, ids, final=True)
    return out


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_reports(tmp_path_factory.mktemp("html"))


class Tags(HTMLParser):
    """Every start tag with its attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag


def _tags(text: str) -> list[tuple[str, dict[str, str | None]]]:
    p = Tags()
    p.feed(text)
    return p.tags


def _pages(out: Path) -> list[Path]:
    return [out / "index.html"] + sorted((out / "sessions").glob("*/*/*.html"))


def assert_inert(text: str, *, scripts: int) -> None:
    """No payload markup, no event handler attribute, no link or source outside our own
    relative paths, only our own (nonce'd) scripts, and a CSP with a nonce."""
    for marker in RAW_MARKERS:
        assert marker not in text, marker
    tags = _tags(text)
    csp = [a for t, a in tags if t == "meta" and (a.get("http-equiv") or "").lower() == "content-security-policy"]
    assert len(csp) == 1
    nonce = re.search(r"script-src 'nonce-([A-Za-z0-9_\-]+)'", csp[0]["content"]).group(1)
    assert "unsafe-inline" not in csp[0]["content"] and "default-src 'none'" in csp[0]["content"]
    found_scripts = [a for t, a in tags if t == "script"]
    assert len(found_scripts) == scripts
    assert all(a.get("nonce") == nonce and "src" not in a for a in found_scripts)
    assert all(a.get("nonce") == nonce for t, a in tags if t == "style")
    for tag, attrs in tags:
        assert tag not in ("iframe", "object", "embed", "base", "form", "svg") or tag == "svg" and attrs.get("id") == "histogram"
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name, value)
            assert name != "style" and (name != "x" or tag in ("rect", "text")), (tag, name)
            assert attrs.get("id") != "pwned"
            if name in ("href", "src"):
                assert value and not re.match(r"^[a-zA-Z][a-zA-Z0-9+.\-]*:", value), value  # no scheme at all
                assert not value.startswith(("/", "\\")), value


def test_pages_written_for_every_session(out: Path):
    folders = session_dirs(out)
    assert len(folders) >= 4
    for folder in folders:
        assert (folder / "results.html").is_file()
        assert (folder / "sft.html").is_file()
        assert 'href="../../../index.html"' in (folder / "results.html").read_text()  # sharded: three levels up
    index = (out / "index.html").read_text()
    for folder in folders:
        assert f'href="sessions/{folder.parent.name}/{folder.name}/results.html"' in index


def test_payloads_render_inert_and_escaped(out: Path):
    for page in _pages(out):
        assert_inert(page.read_text(), scripts=1 if page.name == "index.html" else 0)

    res = (session_dir(out, DESKTOP_TYPED) / "results.html").read_text()
    # The text is there, escaped: a reader sees exactly what was typed.
    assert esc(f"Quest {SCRIPT} {IMG}") in res
    assert esc(f"Objective {QUOTE}") in res
    assert esc(f"Objective {JSURL}") in res
    assert esc(f"App {IMG}") in res
    assert "app_focus(" in res and esc(IMG.replace('"', '\\"')) in res  # the focused-app payload
    sft = (session_dir(out, DESKTOP_TYPED) / "sft.html").read_text()
    assert esc(SCRIPT) in sft

    web = (session_dir(out, WEB) / "sft.html").read_text()
    for p in PAYLOADS:
        assert esc(p) in web
    assert "Hint: " in web and "Quest: " in web


def test_agent_conversation_shows_roles_tool_calls_and_results(out: Path):
    folder = next(p for p in session_dirs(out) if p.name.startswith("tau"))
    text = (folder / "sft.html").read_text()
    for role in ("system", "user", "assistant", "tool"):
        assert f'class="msg r-{role}"' in text
    assert esc(f"search{SVG}") in text  # the tool call's name, escaped
    assert esc('"q": "' + SCRIPT + '"') in text  # its arguments, pretty-printed
    assert esc(f"result {IMG} {SVG}") in text  # the tool result
    assert "call call_1" in text
    assert_inert(text, scripts=0)


def test_results_page_shows_scores_components_chunks_and_frames(out: Path):
    folder = session_dir(out, DESKTOP_TYPED)
    scores = json.loads((folder / "scores.json").read_text())
    text = (folder / "results.html").read_text()
    assert f'id="score">{scores["score"]:.1f}<' in text
    for name, c in scores["reasons"].items():
        assert f"<td>{name}</td>" in text
        assert esc(c["reason"]) in text
    assert 'id="chunks"' in text and 'id="timeline"' in text
    imgs = [a for t, a in _tags(text) if t == "img"]
    # the action's own frame and the run-level frame of action 1; hostile paths dropped
    assert [a["src"] for a in imgs] == ["frames/000001.png", "frames/000001.png"]
    assert "etc/passwd" not in text


def test_failed_session_with_only_scores_json(tmp_path: Path):
    folder = tmp_path / "sessions" / "bad"
    folder.mkdir(parents=True)
    (folder / "scores.json").write_text(json.dumps({
        "session_id": "bad", "source_format": "clones-desktop", "status": "failed", "score": None,
        "error": f"/x/input_log.jsonl:3: truncated {SCRIPT}", "graded_at": "2026-01-01T00:00:00.000Z"}))
    reports.render_session(folder)
    text = (folder / "results.html").read_text()
    assert esc(f"truncated {SCRIPT}") in text and 'class="st-failed"' in text
    assert_inert(text, scripts=0)
    assert_inert((folder / "sft.html").read_text(), scripts=0)


def test_index_counts_histogram_and_cap(tmp_path: Path):
    out = tmp_path / "out"
    for i in range(30):
        folder = out / "sessions" / f"s{i:03d}"
        folder.mkdir(parents=True)
        status = "failed" if i % 10 == 9 else "graded"
        (folder / "scores.json").write_text(json.dumps({
            "session_id": f"s{i:03d}", "source_format": "clones-web", "status": status,
            "score": None if status == "failed" else float(i * 100 / 29), "reward": None, "n_actions": i, "turns": i,
            "judge": {"kind": "heuristic", "model": None}, "graded_at": f"2026-01-01T00:00:{i:02d}.000Z"}))
    (out / "sessions" / "broken").mkdir()
    (out / "sessions" / "broken" / "scores.json").write_text("{not json")
    reports.render_index(out, max_rows=10)
    text = (out / "index.html").read_text()
    counts = dict(re.findall(r'id="n-(\w+)"[^>]*>(\d+)<', text))
    assert counts == {"total": "31", "graded": "27", "failed": "3", "unreadable": "1"}
    assert 'id="capped"' in text and "10 most recently graded of 31" in text
    rows = re.findall(r'href="sessions/([^/]+)/results.html"', text)
    assert rows == [f"s{i:03d}" for i in range(29, 19, -1)]  # newest first
    assert len(re.findall(r'<rect class="bar"', text)) == 10
    assert_inert(text, scripts=1)


def test_nonce_differs_per_render(tmp_path: Path):
    (tmp_path / "sessions").mkdir()
    reports.render_index(tmp_path)
    a = (tmp_path / "index.html").read_text()
    reports.render_index(tmp_path)
    b = (tmp_path / "index.html").read_text()
    nonce = re.compile(r"'nonce-([^']+)'")
    assert nonce.search(a).group(1) != nonce.search(b).group(1)


def test_update_reports_debounces_the_index(tmp_path: Path):
    out = tmp_path / "out"
    folder = out / "sessions" / "a"
    folder.mkdir(parents=True)
    (folder / "scores.json").write_text(json.dumps({"session_id": "a", "status": "graded", "score": 50.0}))
    up = reports.ReportUpdater(out, min_interval_s=1.0)  # roomy: a slow disk must not make it flaky
    up.update(["a"])  # leading edge: index now
    assert up.index_renders == 1 and (folder / "results.html").is_file()
    first = (out / "index.html").stat().st_mtime_ns
    for _ in range(5):
        up.update(["a"])  # inside the interval: session pages only, one trailing render scheduled
    assert up.index_renders == 1 and (out / "index.html").stat().st_mtime_ns == first
    deadline = time.monotonic() + 5
    while up.index_renders < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert up.index_renders == 2  # the trailing render came, once
    up.update([], final=True)
    assert up.index_renders == 3
    up.close()
