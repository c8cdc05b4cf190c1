"""Training files load in Hugging Face `datasets` whatever block the first tool call falls
in: rows bringing a new field are written first (exports/frontload.py)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from streamgrade.exports.frontload import FrontLoaded, key_paths


def _rows(n: int) -> list[dict]:
    plain = {"messages": [{"role": "user", "content": "hi " * 200}, {"role": "assistant", "content": "ok"}]}
    call = {"messages": [{"role": "user", "content": "go"},
                         {"role": "assistant", "content": "", "tool_calls": [
                             {"id": "c1", "type": "function", "function": {"name": "ls", "arguments": "{}"}}]},
                         {"role": "tool", "tool_call_id": "c1", "content": "a b"}],
            "tools": [{"type": "function", "function": {"name": "ls", "parameters": {"type": "object"}}}]}
    return [plain] * n + [call, plain]


def _write(rows: list[dict], path: Path, front: bool) -> None:
    with path.open("wb") as f:
        w = FrontLoaded(f, path.parent) if front else None
        for row in rows:
            data = (json.dumps(row) + "\n").encode()
            w.write(row, data) if w else f.write(data)
        if w:
            w.finish()


def _load(path: Path, tmp_path: Path):
    datasets = pytest.importorskip("datasets")
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    # a small chunk stands in for the 10 MB block of a big file
    return datasets.load_dataset("json", data_files=str(path), split="train", chunksize=4096,
                                 cache_dir=str(tmp_path / f"hf-{path.stem}"))


def test_in_order_a_late_new_field_breaks_datasets_and_front_loading_fixes_it(tmp_path: Path):
    rows = _rows(40)
    plain, front = tmp_path / "plain.jsonl", tmp_path / "front.jsonl"
    _write(rows, plain, front=False)
    _write(rows, front, front=True)
    datasets = pytest.importorskip("datasets")
    with pytest.raises(Exception) as err:  # the reason this module exists
        _load(plain, tmp_path)
    assert isinstance(err.value, (datasets.exceptions.DatasetGenerationError, ValueError))
    ds = _load(front, tmp_path)
    assert ds.num_rows == len(rows)
    got = [json.loads(x) for x in front.read_text().splitlines()]
    # same rows; the first and the one with the call (new fields) first, the rest in order
    assert got == [rows[0], rows[-2]] + rows[1:-2] + rows[-1:]
    assert ds[1]["tools"][0]["function"]["name"] == "ls" and ds[0]["tools"] is None


def test_key_paths_ignore_nulls_and_empty_lists():
    assert key_paths({"a": None, "b": [], "c": [{"d": 1}], "e": "x"}) == {".c[].d:int", ".e:str"}


def test_front_rows_are_bounded_and_the_spool_is_removed(tmp_path: Path):
    buf = io.BytesIO()
    w = FrontLoaded(buf, tmp_path, limit=10)
    rows = [{"a": 1}, {"b": "long enough"}, {"a": 2}]
    for r in rows:
        w.write(r, (json.dumps(r) + "\n").encode())
    w.finish()
    # the second row would pass the limit: it keeps its place
    assert [json.loads(x) for x in buf.getvalue().splitlines()] == rows
    assert not list(tmp_path.iterdir())
