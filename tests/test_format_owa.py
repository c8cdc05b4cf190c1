"""open-world-agents (OWA) captures (.mcap + .mkv), on the real corpus
(../shared/corpus/owa) and on small synthetic MCAP files.

The facts asserted on the corpus were read by hand from the derived dumps
(../shared/corpus/owa/derived/<v>.events.jsonl, one line per mcap message): times are
``(log_time_ns - first log_time_ns) // 1e6``.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("mcap", reason="the owa format needs the mcap package (pip install mcap)")

from mcap.writer import CompressionType, Writer  # noqa: E402

from streamgrade.config import load_config  # noqa: E402
from streamgrade.errors import InputError  # noqa: E402
from streamgrade.formats.owa import OWACapture, key_name, us_char  # noqa: E402
from streamgrade.models import Session  # noqa: E402

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
OWA = CORPUS / "owa"
DATA = OWA / "projects" / "owa-cli" / "tests" / "data"
DERIVED = OWA / "derived"
needs_corpus = pytest.mark.skipif(not DATA.is_dir(), reason=f"OWA corpus not present at {DATA}")

FMT = OWACapture()


@pytest.fixture(scope="module")
def config():
    return load_config(env={})


def assemble(path: Path, config) -> Session:
    (ref,) = [r for r in FMT.find(path.parent, sorted(os.listdir(path.parent))) if r.path == str(path)]
    return FMT.assemble(ref, config)


def kinds(session: Session, kind: str):
    return [a for a in session.actions if a.kind == kind]


@pytest.fixture(scope="module")
def sessions(config) -> dict[str, Session]:
    if not DATA.is_dir():
        pytest.skip(f"OWA corpus not present at {DATA}")
    return {v: assemble(DATA / f"{v}.mcap", config) for v in ("0.3.2", "0.4.2", "0.5.1")}


# --------------------------------------------------------------------------- find


@needs_corpus
def test_find_claims_mcap_files_with_their_video():
    refs = FMT.find(DATA, sorted(os.listdir(DATA)))
    assert [r.session_id for r in refs] == ["owa-cli.0.3.2", "owa-cli.0.4.2", "owa-cli.0.5.1"]
    for r in refs:
        assert r.format == "owa"
        assert r.path.endswith(".mcap")
        assert r.files == (r.path, r.path[: -len(".mcap")] + ".mkv")
    # the other folders of the corpus: generic folder names are skipped in the id
    docs = OWA / "docs" / "data" / "examples"
    assert [r.session_id for r in FMT.find(docs, sorted(os.listdir(docs)))] == ["docs.example"]
    gh = OWA / "gh-pages_recorder"
    assert [r.session_id for r in FMT.find(gh, sorted(os.listdir(gh)))] == ["gh-pages_recorder.example"]
    # a video or jsonl alone is not a session
    assert FMT.find(DATA, ["0.4.2.mkv", "x.jsonl"]) == []


# --------------------------------------------------------------------------- corpus facts


@needs_corpus
@pytest.mark.parametrize("version", ["0.3.2", "0.4.2", "0.5.1"])
def test_each_capture_assembles(sessions, version):
    s = sessions[version]
    assert s.kind == "demonstration" and s.reward is None
    assert s.task.startswith("Desktop capture: ")
    assert s.meta["has_video"] and s.meta["video"].endswith(f"{version}.mkv")
    assert s.actions and s.actions == sorted(s.actions, key=lambda a: a.t_ms)
    # every message is counted under its topic, as in the derived dump
    dump = [json.loads(line) for line in (DERIVED / f"{version}.events.jsonl").read_text().splitlines()]
    assert s.meta["topics"] == dict(Counter(o["topic"] for o in dump))
    assert s.meta["n_frames"] == sum(1 for o in dump if o["topic"] == "screen")
    assert s.meta["start_ns"] == dump[0]["log_time_ns"]
    # all three captures type "test text" in Notepad
    assert [a.text for a in kinds(s, "type")] == ["test text"]


@needs_corpus
def test_0_4_2_notepad(sessions):
    s = sessions["0.4.2"]
    assert s.task == "Desktop capture: test.txt - 메모장"
    assert s.duration_s == 3.781
    (typed,) = kinds(s, "type")
    assert (typed.text, typed.t_ms, typed.end_ms) == ("test text", 468, 1460)  # T at 468 ms ... last T at 1460 ms
    clicks = kinds(s, "click")
    assert [(c.x, c.y, c.button, c.t_ms, c.end_ms) for c in clicks] == [
        (751, 636, "left", 1912, 1982),
        (1987, 1294, "left", 2921, 2994),
    ]
    assert [(a.t_ms, a.keys) for a in kinds(s, "hotkey")] == [(2164, ["Ctrl", "s"]), (3781, ["Ctrl", "c"])]  # vk 162 + 83 / 67
    # the title gains Notepad's "*" (unsaved) marker at 997 ms: not a focus change
    assert [(a.t_ms, a.text) for a in kinds(s, "app_focus")] == [
        (0, "test.txt - 메모장"),
        (2997, "test_mcap_migrate_cli.py - open-world-agents - Visual Studio Code"),
    ]
    assert s.meta["video_offset_ns"] == 20_000_000  # first screen message: pts 20000000
    assert s.meta["first_frame_ms"] == 181
    assert s.meta["n_frames"] == 33
    assert s.meta["frame_shape"] == [906, 578]
    assert s.meta["window_rect"] == [360, 307, 1278, 891]
    assert s.meta["recorder"] == "mcap-owa-support 0.4.2; mcap 1.3.0"


@needs_corpus
def test_0_3_2_older_schema_names(sessions):
    s = sessions["0.3.2"]  # owa.env.desktop.msg.* and owa.env.gst.msg.ScreenEmitted {path, pts}
    assert s.task == "Desktop capture: pyproject.toml - open-world-agents - Visual Studio Code"
    assert [(a.t_ms, a.text) for a in kinds(s, "app_focus")] == [
        (0, "pyproject.toml - open-world-agents - Visual Studio Code"),
        (2000, "test.txt - 메모장"),
    ]
    assert [(c.x, c.y, c.t_ms) for c in kinds(s, "click")] == [(872, 579, 1862), (876, 541, 4022), (1824, 1149, 5293)]
    assert [(a.t_ms, a.keys) for a in kinds(s, "hotkey")] == [(4697, ["Ctrl", "s"]), (5537, ["Ctrl", "c"])]
    assert s.meta["video_offset_ns"] == 10_000_000
    assert s.meta["video_uri"] == "0.3.2.mkv"
    assert s.meta["n_frames"] == 49


@needs_corpus
def test_0_5_1_media_ref(sessions):
    s = sessions["0.5.1"]  # screen: {media_ref: {uri, pts_ns}}
    assert s.meta["video_offset_ns"] == 0 and s.meta["video_uri"] == "0.5.1.mkv"
    assert s.meta["frame_shape"] == [1025, 1017]
    assert [(c.x, c.y, c.t_ms, c.end_ms) for c in kinds(s, "click")] == [(734, 1106, 2600, 2693)]
    assert [a.text for a in kinds(s, "app_focus")] == ["*test.txt - 메모장", "README.md - ocap - Visual Studio Code"]


@needs_corpus
def test_truncated_corpus_mcap_names_the_file(tmp_path, config):
    data = (DATA / "0.4.2.mcap").read_bytes()
    for cut in (len(data) // 3, len(data) - 20, 12):
        p = tmp_path / "0.4.2.mcap"
        p.write_bytes(data[:cut])
        with pytest.raises(InputError) as ei:
            assemble(p, config)
        assert ei.value.path == str(p) and str(ei.value).startswith(str(p))
        assert "MCAP" in ei.value.message and "byte offset" in ei.value.message


@needs_corpus
def test_corrupted_chunk_names_the_file(tmp_path, config):
    data = bytearray((DATA / "0.5.1.mcap").read_bytes())
    data[3000] ^= 0xFF  # inside the zstd chunk (bytes 62-5987): CRC or decompression failure
    p = tmp_path / "c.mcap"
    p.write_bytes(bytes(data))
    with pytest.raises(InputError) as ei:
        assemble(p, config)
    assert str(ei.value).startswith(str(p)) and "corrupted MCAP file" in ei.value.message


# --------------------------------------------------------------------------- synthetic


def write_mcap(path: Path, messages: list[tuple[str, int, object]], *, schema_prefix: str = "desktop/") -> Path:
    """An OWA-like mcap: ``(topic, ms, data)`` messages (data dumped as JSON unless bytes)."""
    schemas = {"mouse": "MouseEvent", "keyboard": "KeyboardEvent", "window": "WindowInfo", "screen": "ScreenCaptured"}
    buf = io.BytesIO()
    w = Writer(buf, compression=CompressionType.ZSTD)
    w.start(profile="owa", library="test")
    channels = {}
    for topic, name in schemas.items():
        sid = w.register_schema(name=schema_prefix + name, encoding="jsonschema", data=b"{}")
        channels[topic] = w.register_channel(topic=topic, message_encoding="json", schema_id=sid)
    base = 1_700_000_000_000_000_000
    for seq, (topic, ms, data) in enumerate(messages):
        raw = data if isinstance(data, bytes) else json.dumps(data).encode()
        w.add_message(channels[topic], log_time=base + ms * 1_000_000, data=raw, publish_time=base + ms * 1_000_000, sequence=seq)
    w.finish()
    path.write_bytes(buf.getvalue())
    return path


def key(ms: int, vk: int, press: bool = True):
    return ("keyboard", ms, {"event_type": "press" if press else "release", "vk": vk})


def test_vk_names_and_us_chars():
    assert [key_name(v) for v in (0x10, 0xA0, 0x11, 0xA2, 0x12, 0xA4, 0x5B)] == [
        "ShiftLeft", "ShiftLeft", "ControlLeft", "ControlLeft", "AltLeft", "AltLeft", "MetaLeft"]
    assert [key_name(v) for v in (0x41, 0x5A, 0x30, 0x39, 0x0D, 0x08, 0x20, 0x09, 0x25, 0x28, 0xBE)] == [
        "KeyA", "KeyZ", "Digit0", "Digit9", "Return", "Backspace", "Space", "Tab", "LeftArrow", "DownArrow", "Dot"]
    assert key_name(0xFF) == "Unknown(255)"
    assert (us_char(0x41, False), us_char(0x41, True), us_char(0x31, True), us_char(0xBA, True)) == ("a", "A", "!", ":")
    assert us_char(0x0D, False) == ""


def test_shift_typing_scroll_and_hotkeys(tmp_path, config):
    msgs = [
        ("window", 0, {"title": "Editor", "rect": [0, 0, 100, 100], "hWnd": 1}),
        ("screen", 5, {"utc_ns": 1, "shape": [100, 100], "media_ref": {"uri": "s.mkv", "pts_ns": 7}}),
        key(10, 0xA0), key(20, 0x48), key(30, 0x48, False), key(40, 0xA0, False),  # H
        key(50, 0x49), key(60, 0x49, False),  # i
        key(70, 0x10), key(80, 0x31), key(90, 0x31, False), key(95, 0x10, False),  # !
        key(100, 0x08), key(110, 0x08, False),  # Backspace deletes "!"
        ("mouse", 2000, {"event_type": "move", "x": 10, "y": 20}),
        ("mouse", 2100, {"event_type": "scroll", "x": 10, "y": 20, "dx": 0, "dy": -1}),
        ("mouse", 2200, {"event_type": "scroll", "x": 10, "y": 20, "dx": 0, "dy": -2}),
        key(3000, 0xA2), key(3010, 0x5A), key(3020, 0x5A, False), key(3030, 0xA2, False),  # Ctrl+Z
        key(3100, 0x0D), key(3110, 0x0D, False),  # Return
        ("mouse", 3200, {"event_type": "click", "x": 50, "y": 60, "button": "right", "pressed": True}),
        ("mouse", 3250, {"event_type": "click", "x": 50, "y": 60, "button": "right", "pressed": False}),
        ("window", 3300, {"title": "*Editor", "rect": [0, 0, 100, 100], "hWnd": 1}),  # unsaved marker only
        ("window", 3400, {"title": "Other", "rect": [0, 0, 100, 100], "hWnd": 2}),
    ]
    s = assemble(write_mcap(tmp_path / "syn.mcap", msgs), config)
    assert [a.text for a in kinds(s, "type")] == ["Hi"]
    (scroll,) = kinds(s, "scroll")
    assert (scroll.x, scroll.y, scroll.dy, scroll.ticks, scroll.t_ms) == (10, 20, -3.0, 2, 2100)  # negative dy = down
    assert [a.keys for a in kinds(s, "hotkey")] == [["Ctrl", "z"]]
    assert [a.keys for a in kinds(s, "key")] == [["Return"]]
    assert [(c.x, c.y, c.button) for c in kinds(s, "click")] == [(50, 60, "right")]
    assert [a.text for a in kinds(s, "app_focus")] == ["Editor", "Other"]
    assert s.task == "Desktop capture: Editor"
    assert s.meta["video_offset_ns"] == 7 and s.meta["has_video"] is False and s.meta["video"] is None


def test_older_schema_names_read_alike(tmp_path, config):
    msgs = [("window", 0, {"title": "W", "rect": [0, 0, 1, 1], "hWnd": 1}),
            ("screen", 1, {"path": "x.mkv", "pts": 5, "utc_ns": 1}),
            key(10, 0x41), key(20, 0x41, False)]
    for prefix in ("owa.env.desktop.msg.", "owa_env_desktop.msg."):
        s = assemble(write_mcap(tmp_path / "old.mcap", msgs, schema_prefix=prefix), config)
        assert [a.text for a in kinds(s, "type")] == ["a"]
        assert s.meta["video_offset_ns"] == 5


def test_bad_json_message_names_topic_and_index(tmp_path, config):
    msgs = [("window", 0, {"title": "W", "rect": [0, 0, 1, 1], "hWnd": 1}),
            ("mouse", 5, {"event_type": "move", "x": 1, "y": 2}),
            ("mouse", 10, b'{"event_type": "move", "x": 1,')]
    p = write_mcap(tmp_path / "bad.mcap", msgs)
    with pytest.raises(InputError) as ei:
        assemble(p, config)
    assert ei.value.path == str(p)
    assert ei.value.field == "message[2] (mouse)" and "invalid JSON" in ei.value.message


def test_wrong_field_type_names_the_message(tmp_path, config):
    p = write_mcap(tmp_path / "t.mcap", [key(0, 0x41), ("keyboard", 5, {"event_type": "press", "vk": "A"})])
    with pytest.raises(InputError) as ei:
        assemble(p, config)
    assert ei.value.field == "message[1] (keyboard)" and "vk" in ei.value.message


def test_truncated_synthetic_mcap(tmp_path, config):
    msgs = [key(i * 10, 0x41 + i % 26, i % 2 == 0) for i in range(200)]
    data = write_mcap(tmp_path / "full.mcap", msgs).read_bytes()
    p = tmp_path / "cut.mcap"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as ei:
        assemble(p, config)
    assert str(ei.value).startswith(str(p)) and "truncated" in ei.value.message and "byte offset" in ei.value.message


@pytest.mark.parametrize("content", [b"", b"not an mcap file at all\n", b"\x89MCAP0\r\n"])
def test_not_mcap_or_empty(tmp_path, config, content):
    p = tmp_path / "x.mcap"
    p.write_bytes(content)
    with pytest.raises(InputError) as ei:
        assemble(p, config)
    assert ei.value.path == str(p)


def test_no_messages(tmp_path, config):
    p = write_mcap(tmp_path / "e.mcap", [])
    with pytest.raises(InputError, match="no messages"):
        assemble(p, config)


@needs_corpus
def test_copied_capture_without_video(tmp_path, config):
    shutil.copy(DATA / "0.5.1.mcap", tmp_path / "0.5.1.mcap")
    s = assemble(tmp_path / "0.5.1.mcap", config)
    assert s.meta["has_video"] is False and s.meta["video"] is None
    assert [a.text for a in kinds(s, "type")] == ["test text"]
