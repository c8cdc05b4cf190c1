"""The Clones web adapter reads the Guacamole recording beside the events file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from streamgrade.config import load_config
from streamgrade.errors import InputError
from streamgrade.formats import FORMATS
from streamgrade.sources.scan import scan
from conftest import session_dir

ROOT = Path(__file__).resolve().parents[1]
WEB_ID = "6792a2a124f444f0e39ce887"


@pytest.fixture
def web(tmp_path: Path) -> Path:
    for f in (ROOT / "examples" / "clones" / "web").iterdir():
        shutil.copy(f, tmp_path / f.name)
    shutil.copy(ROOT / "examples" / "guac" / f"{WEB_ID}.guac", tmp_path / f"{WEB_ID}.guac")
    return tmp_path


def _assemble(folder: Path):
    (ref,) = list(scan([folder]))
    assert f"{WEB_ID}.guac" in " ".join(ref.files)
    return FORMATS[ref.format].assemble(ref, load_config(env={}))


def test_web_session_gets_actions_from_its_guac(web: Path):
    s = _assemble(web)
    kinds = {a.kind for a in s.actions}
    assert {"click", "drag", "type", "scroll", "hotkey"} <= kinds
    assert any(a.kind == "type" and a.text == "Hello World!" for a in s.actions)
    assert any(a.kind == "hotkey" and a.keys == ["Ctrl", "z"] for a in s.actions)
    assert any(a.kind == "click" and a.button == "right" for a in s.actions)
    expected = json.loads((ROOT / "examples" / "guac" / f"{WEB_ID}.expected.json").read_text())
    assert len(s.actions) >= 100 and expected


def test_malformed_guac_fails_naming_file_and_byte(web: Path):
    guac = web / f"{WEB_ID}.guac"
    data = guac.read_bytes()
    guac.write_bytes(data[:5000] + b"9x.oops;" + data[5000:])
    with pytest.raises(InputError) as err:
        _assemble(web)
    assert str(guac) in str(err.value) and "byte " in str(err.value)


def test_guac_fixture_graded_with_frames_that_reach_the_judge(tmp_path: Path):
    """The Guacamole fixture and its video through the CLI against the mock provider."""
    from conftest import grade_cli_against_mock

    data = tmp_path / "web"
    data.mkdir()
    for f in (ROOT / "examples" / "clones" / "web").iterdir():
        shutil.copy(f, data / f.name)
    for name in (f"{WEB_ID}.guac", f"{WEB_ID}.guac.m4v"):
        shutil.copy(ROOT / "examples" / "guac" / name, data / name)
    out = tmp_path / "out"
    res, stats = grade_cli_against_mock(data, out)
    assert res.returncode == 0, res.stderr
    results = json.loads((session_dir(out, WEB_ID) / "results.json").read_text())
    chunks = results["chunks"]
    assert len(results["actions"]) >= 100 and len(chunks) >= 2
    assert len(results["frames"]) == 3 * len(chunks)  # the per-chunk budget, every chunk full
    # each chunk request carries its frames, and the verdict request the selected ones (the
    # last frames and those around key steps, at most [judge] max_images = 6)
    assert stats["requests_with_images"] == len(chunks) + 1
    assert len(results["frames"]) < stats["image_parts"] <= len(results["frames"]) + 6
