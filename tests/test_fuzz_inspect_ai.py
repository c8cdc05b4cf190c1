"""Fuzzing the Inspect AI reader: random mutations of a JSON log, of a sample member inside
an ``.eval`` zip, and of the zip's bytes.

Property: ``assemble`` returns a Session or raises :class:`InputError` whose path is the log
file (and whose ``str`` starts with it), never another exception; a JSON syntax error in a
``.json`` log names its line; ``scan`` never raises on the folder, and every session it finds
(of any format) assembles under the same rule.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import traceback
import zipfile
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamgrade.config import load_config
from streamgrade.errors import InputError
from streamgrade.formats import FORMATS
from streamgrade.formats._inspect_log import clear_cache
from streamgrade.formats._rows import clear_cache as clear_rows
from streamgrade.sources.scan import scan

CFG = load_config(env={})
FUZZ = settings(max_examples=int(os.environ.get("STREAMGRADE_FUZZ_EXAMPLES", "15")), deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

EVAL = {"eval_id": "E1", "run_id": "R1", "task": "arith", "task_id": "T1", "model": "openai/gpt-x",
        "scorers": [{"name": "match"}]}
SAMPLE = {
    "id": 1, "epoch": 1, "input": [{"role": "user", "content": "attachment://q"}], "target": "4",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "attachment://q"}, {"type": "image", "image": "x"}]},
        {"role": "assistant", "content": [{"type": "reasoning", "reasoning": "sum"}, {"type": "text", "text": "<think>"}],
         "tool_calls": [{"id": "c1", "function": "bash", "arguments": {"cmd": ["echo", "attachment://q"]}}],
         "model": "gpt-x-1"},
        {"role": "tool", "tool_call_id": "c1", "function": "bash", "content": "4",
         "error": {"type": "timeout", "message": "slow"}},
        {"role": "assistant", "content": "<think>ok</think>4"}],
    "output": {"model": "gpt-x-1", "choices": [{"message": {"role": "assistant", "content": "4"}, "stop_reason": "stop"}]},
    "scores": {"match": {"value": "C"}, "f1": {"value": {"a": 0.5, "b": [1]}}},
    "model_usage": {"openai/gpt-x": {"input_tokens": 10, "output_tokens": 2}},
    "events": [{"event": "model", "tools": [{"name": "bash", "description": "run", "parameters": {}}]}],
    "attachments": {"q": "What is 2+2?"}, "limit": None, "error": None, "total_time": 1.0,
}
LOG = {"version": 2, "status": "success", "eval": EVAL, "plan": {"steps": [{"solver": "generate"}]},
       "results": {"scores": [{"name": "match", "scorer": "match"}]}, "stats": {}, "samples": [SAMPLE, {**SAMPLE, "id": 2}]}

WRONG = st.sampled_from([None, True, 0, -1, 1.5, "", "x", "attachment://nope", "C", [], [1, "a"], {}, {"a": None},
                         {"type": "text"}, [{"type": "tool_use"}]])
JSONISH = st.recursive(st.none() | st.booleans() | st.integers(-10, 10) | st.floats(allow_nan=False) | st.text(max_size=8),
                       lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3),
                       max_leaves=10)


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = []
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else []
    for k, v in items:
        out.append((*prefix, k))
        out.extend(_paths(v, (*prefix, k)))
    return out


@st.composite
def field_mutation(draw, doc: Any) -> tuple[str, Any]:
    doc = json.loads(json.dumps(doc))
    paths = _paths(doc)
    p = paths[draw(st.integers(0, len(paths) - 1))]
    parent = doc
    for k in p[:-1]:
        parent = parent[k]
    how = draw(st.sampled_from(["delete", "replace", "replace", "rename"]))
    if how == "delete":
        del parent[p[-1]]
    elif how == "rename" and isinstance(parent, dict):
        parent[f"{p[-1]}_x"] = parent.pop(p[-1])
    else:
        parent[p[-1]] = draw(WRONG | JSONISH)
    return f"{how} {p}", doc


@st.composite
def byte_mutation(draw, data: bytes) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["truncate", "flip", "0xff", "zero-run"]))
    i = draw(st.integers(0, len(data) - 1))
    if kind == "truncate":
        return f"truncate at {i}", data[:i]
    if kind == "zero-run":
        return f"zeros at {i}", data[:i] + bytes(16) + data[i + 16:]
    b = 0xFF if kind == "0xff" else data[i] ^ draw(st.integers(1, 255))
    return f"{kind} byte {i}", data[:i] + bytes([b]) + data[i + 1:]


def _zip(members: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, doc in members.items():
            z.writestr(name, doc if isinstance(doc, bytes) else json.dumps(doc, indent=1))
    return buf.getvalue()


def _eval_members(sample: Any = SAMPLE) -> dict[str, Any]:
    head = {k: v for k, v in LOG.items() if k != "samples"}
    return {"_journal/start.json": {"version": 2, "eval": EVAL}, "samples/1_epoch_1.json": sample,
            "samples/2_epoch_1.json": {**SAMPLE, "id": 2}, "header.json": head}


def _check(root: Path, bad: Path, what: str) -> None:
    """The property, on every session scan finds under ``root``."""
    clear_cache()
    clear_rows()
    try:
        refs = list(scan([root]))
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(f"{what}: scan raised {type(exc).__name__}: {exc}\n{traceback.format_exc()}") from exc
    for ref in refs:
        try:
            FORMATS[ref.format].assemble(ref, CFG)
        except InputError as exc:
            assert exc.path == str(bad), (what, str(exc))
            assert str(exc).startswith(exc.path), (what, str(exc))
            if bad.suffix == ".json" and ref.format == "inspect-ai" and _syntax_error(bad.read_bytes()):
                assert exc.line is not None, (what, str(exc))
        except Exception as exc:  # noqa: BLE001 - the property: nothing but InputError
            raise AssertionError(f"{what}: {ref.format} assemble raised {type(exc).__name__}: {exc}\n"
                                 f"{traceback.format_exc()}") from exc


def _syntax_error(data: bytes) -> bool:
    try:
        msgspec.json.decode(data)
    except Exception:  # noqa: BLE001
        try:
            json.loads(data)
        except Exception:  # noqa: BLE001
            return True
    return False


def test_seeds_assemble():
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "log.json").write_text(json.dumps(LOG, indent=1))
        (root / "log.eval").write_bytes(_zip(_eval_members()))
        clear_cache()
        refs = list(scan([root]))
        assert len(refs) == 4
        for ref in refs:
            s = FORMATS[ref.format].assemble(ref, CFG)
            assert s.reward == 1.0 and s.task == "What is 2+2?"


@FUZZ
@given(data=st.data())
def test_mutated_json_log(data):
    what, doc = data.draw(field_mutation(LOG))
    with tempfile.TemporaryDirectory() as tmp:
        bad = Path(tmp) / "log.json"
        bad.write_text(json.dumps(doc, indent=1))
        _check(Path(tmp), bad, what)


@FUZZ
@given(data=st.data())
def test_json_log_bytes(data):
    what, raw = data.draw(byte_mutation(json.dumps(LOG, indent=1).encode()))
    with tempfile.TemporaryDirectory() as tmp:
        bad = Path(tmp) / "log.json"
        bad.write_bytes(raw)
        _check(Path(tmp), bad, what)


@FUZZ
@given(data=st.data())
def test_mutated_eval_sample_member(data):
    what, sample = data.draw(field_mutation(SAMPLE))
    with tempfile.TemporaryDirectory() as tmp:
        bad = Path(tmp) / "log.eval"
        bad.write_bytes(_zip(_eval_members(sample)))
        _check(Path(tmp), bad, what)


@FUZZ
@given(data=st.data())
def test_eval_member_bytes(data):
    what, raw = data.draw(byte_mutation(json.dumps(SAMPLE).encode()))
    members = _eval_members()
    members["samples/1_epoch_1.json"] = raw
    if data.draw(st.booleans()):
        members["header.json"] = data.draw(byte_mutation(json.dumps(members["header.json"]).encode()))[1]
    with tempfile.TemporaryDirectory() as tmp:
        bad = Path(tmp) / "log.eval"
        bad.write_bytes(_zip(members))
        _check(Path(tmp), bad, what)


@FUZZ
@given(data=st.data())
def test_eval_zip_bytes(data):
    what, raw = data.draw(byte_mutation(_zip(_eval_members())))
    with tempfile.TemporaryDirectory() as tmp:
        bad = Path(tmp) / "log.eval"
        bad.write_bytes(raw)
        _check(Path(tmp), bad, what)


@pytest.mark.parametrize("content", [b"", b"PK\x05\x06" + bytes(18), b"not a zip", bytes(200)])
def test_degenerate_eval_files(tmp_path: Path, content: bytes):
    bad = tmp_path / "x.eval"
    bad.write_bytes(content)
    _check(tmp_path, bad, repr(content[:8]))


def _zstd_zip() -> bytes:
    """The seed zip with its first sample member zstd-compressed (ZIP method 93): a stored
    member holding the frame, relabelled in both headers."""
    import struct
    import zlib

    import zstandard

    raw = json.dumps(SAMPLE).encode()
    members = _eval_members()
    members["samples/1_epoch_1.json"] = zstandard.ZstdCompressor().compress(raw)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:
        for name, doc in members.items():
            z.writestr(name, doc if isinstance(doc, bytes) else json.dumps(doc))
    data = bytearray(buf.getvalue())
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("samples/1_epoch_1.json")
    cd = data.index(b"PK\x01\x02", info.header_offset + 30)
    while data[cd + 46:cd + 46 + len(info.filename)] != info.filename.encode():
        cd = data.index(b"PK\x01\x02", cd + 4)
    for off_local, off_central, fmt, value in ((8, 10, "<H", 93), (14, 16, "<I", zlib.crc32(raw)), (22, 24, "<I", len(raw))):
        struct.pack_into(fmt, data, info.header_offset + off_local, value)
        struct.pack_into(fmt, data, cd + off_central, value)
    return bytes(data)


def test_zstd_seed_assembles(tmp_path: Path):
    (tmp_path / "log.eval").write_bytes(_zstd_zip())
    clear_cache()
    refs = list(scan([tmp_path]))
    assert [FORMATS[r.format].assemble(r, CFG).reward for r in refs] == [1.0, 1.0]


@FUZZ
@given(data=st.data())
def test_zstd_zip_bytes(data):
    what, raw = data.draw(byte_mutation(_zstd_zip()))
    with tempfile.TemporaryDirectory() as tmp:
        bad = Path(tmp) / "log.eval"
        bad.write_bytes(raw)
        _check(Path(tmp), bad, what)
