"""Today's exports through their real consumers (issue 11, item 8).

Part 1 checks the harness in tests/consumers/ on small rows made here: each consumer
accepts a good row and names the problem of a bad one. Part 2 grades a corpus subset
with ``streamgrade grade --judge heuristic`` (tau-bench, harbor, crafter-balrog,
examples/clones, owa, swe-agent, openhands-output, inspect-ai), exports, and runs every
row through the chat templates, LLaMA-Factory's converter and OpenAI's rules.

Every check wants no problem at all (issue 11's defects are fixed); the figures (rows
checked, problems per kind per consumer, including the "limit" notes that are no error:
Llama 3.3 and gpt-oss drop assistant text that comes with a tool call by design) print
with ``-s``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from consumers import llama_factory as lf
from consumers.openai_rules import check_dpo_row, check_sft_row
from consumers.rows import LIMIT, Row, errors, read_rows, summary, tally
from consumers.templates import TEMPLATES, check_rows, render

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
SUBSET = ["tau-bench", "harbor", "crafter-balrog", "owa", "swe-agent", "openhands-output", "inspect-ai"]
REQUIRE_LF = os.environ.get("STREAMGRADE_REQUIRE_LLAMAFACTORY") == "1"

def _row(data: dict, line: int = 1, name: str = "t.jsonl") -> Row:
    return Row(Path(name), line, data)


def _call(cid: str, name: str, args: dict) -> dict:
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}


TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city.",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                           "required": ["city"]}}}]
GOOD = {"messages": [
    {"role": "system", "content": "You answer weather questions."},
    {"role": "user", "content": "Weather in Oslo?"},
    {"role": "assistant", "content": "I will look it up.", "tool_calls": [_call("c1", "get_weather", {"city": "Oslo"})]},
    {"role": "tool", "tool_call_id": "c1", "content": "rain, 7 C"},
    {"role": "assistant", "content": "Rain and 7 C in Oslo."}], "tools": TOOLS}


# ---------------------------------------------------------------- part 1: the harness


def test_template_files_match_their_provenance():
    """Each template file is byte for byte the one PROVENANCE.md records (sha256)."""
    import hashlib

    prov = (ROOT / "tests" / "data" / "chat_templates" / "PROVENANCE.md").read_text()
    for spec in TEMPLATES.values():
        digest = hashlib.sha256((ROOT / "tests" / "data" / "chat_templates" / spec.file).read_bytes()).hexdigest()
        assert digest in prov, f"{spec.file}: sha256 {digest} is not the one PROVENANCE.md records"


def test_qwen_template_renders_like_the_upstream_test():
    """The Qwen2.5 template, rendered by transformers, gives the text huggingface/swift-jinja's
    test expects for Qwen/Qwen2.5-0.5B-Instruct (Tests/Templates/ChatTemplateTests.swift)."""
    msgs = [{"role": "user", "content": "Hello, how are you?"},
            {"role": "assistant", "content": "I'm doing great. How can I help you today?"},
            {"role": "user", "content": "I'd like to show off how chat templating works!"}]
    assert render("qwen2.5", msgs) == (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nHello, how are you?<|im_end|>\n<|im_start|>assistant\nI'm doing great. How can I help "
        "you today?<|im_end|>\n<|im_start|>user\nI'd like to show off how chat templating works!<|im_end|>\n")


def test_a_good_row_renders_with_every_template():
    problems = check_rows([_row(GOOD)])
    assert not errors(problems), summary(problems)
    # the templates' own documented drops are reported as limits, not errors
    assert {(p.consumer, p.kind) for p in problems} == {("llama-3.3", "text-dropped-by-template"),
                                                        ("gpt-oss", "text-dropped-by-template")}
    assert all(p.severity == LIMIT for p in problems)
    out = render("deepseek-v3.1", GOOD["messages"], TOOLS)
    assert "get_weather<｜tool▁sep｜>" in out and "Rain and 7 C in Oslo." in out


def test_null_content_breaks_deepseek_only():
    row = json.loads(json.dumps(GOOD))
    row["messages"][2]["content"] = None
    problems = errors(check_rows([_row(row)]))
    assert [(p.consumer, p.kind) for p in problems] == [("deepseek-v3.1", "null-content-breaks-template")]
    assert problems[0].row == "row 1" and problems[0].where.startswith("t.jsonl:1 messages[2]")


def test_template_checks_name_the_session_and_catch_double_encoded_arguments():
    row = json.loads(json.dumps(GOOD))
    row["metadata"] = {"session_id": "tau/42"}
    as_is = check_rows([_row(row)], ["qwen2.5", "deepseek-v3.1"], as_is=True)
    assert [(p.consumer, p.kind, p.row) for p in errors(as_is)] == [("qwen2.5", "arguments-double-encoded", "tau/42")]


def test_parallel_calls_are_a_llama_limit_not_an_error():
    row = json.loads(json.dumps(GOOD))
    row["messages"][2]["tool_calls"].append(_call("c2", "get_weather", {"city": "Bergen"}))
    row["messages"].insert(4, {"role": "tool", "tool_call_id": "c2", "content": "sun"})
    problems = check_rows([_row(row)])
    assert not errors(problems), summary(problems)
    kinds = {(p.consumer, p.kind) for p in problems}
    assert ("llama-3.3", "parallel-calls-unsupported") in kinds and ("gpt-oss", "parallel-calls-dropped") in kinds


def test_lost_text_and_arguments_are_found(monkeypatch):
    """A template that loses a target (here: a stand-in renderer that prints no arguments and
    no final answer) yields one problem per lost text, name and argument."""
    import consumers.templates as tpl

    monkeypatch.setattr(tpl, "render", lambda name, msgs, tools=None: "I will look it up. get_weather")
    problems = tpl.check_rows([_row(GOOD)], ["qwen2.5"])
    assert sorted((p.kind, p.where.split(" ", 1)[1]) for p in problems) == [
        ("assistant-text-missing", "messages[4].content"),
        ("tool-arguments-missing", "messages[2].tool_calls[0].arguments.city"),
        ("tool-arguments-missing", "messages[2].tool_calls[0].arguments.city"),
    ]


def test_openai_rules_accept_a_good_row_and_name_each_break():
    assert check_sft_row(_row(GOOD)) == []
    bad = json.loads(json.dumps(GOOD))
    bad["messages"][3]["name"] = "get_weather"                      # a name key on a tool message
    bad["messages"].insert(4, {"role": "system", "content": "Be brief."})  # system mid-conversation
    bad["messages"].append({"role": "user", "content": "And Bergen?"})
    bad["messages"].append({"role": "assistant", "content": None,
                            "tool_calls": [_call("c1", "get_weather", {"city": "Bergen"})]})  # a reused id
    bad["tools"][0]["function"]["parameters"] = None                 # null parameters
    bad["metadata"] = {}
    kinds = sorted({p.kind for p in check_sft_row(_row(bad))})
    assert kinds == ["null-parameters", "sdk-type", "system-not-first", "tool-call-id-reused", "unknown-key"]
    no_tools = {"messages": GOOD["messages"]}
    assert [p.kind for p in check_sft_row(_row(no_tools))] == ["tools-missing"]
    assert check_sft_row(_row(bad), extra_keys=frozenset({"metadata"}))  # still wrong without the metadata key


def test_openai_dpo_rules():
    good = {"input": {"messages": GOOD["messages"][:2], "tools": TOOLS},
            "preferred_output": [GOOD["messages"][2]],
            "non_preferred_output": [{"role": "assistant", "content": "No idea."}]}
    assert check_dpo_row(_row(good)) == []
    same = {**good, "non_preferred_output": [{**GOOD["messages"][2], "tool_calls": [
        _call("c9", "get_weather", {"city": "Oslo"})]}]}
    assert [p.kind for p in check_dpo_row(_row(same))] == ["identical-outputs"]
    two = {**good, "preferred_output": [GOOD["messages"][2], GOOD["messages"][4]]}
    assert [p.kind for p in check_dpo_row(_row(two))] == ["bad-output"]


def test_dropped_assistant_text_is_counted():
    sft = _row({"messages": GOOD["messages"], "metadata": {"session_id": "s1"}})
    sg = _row({"conversations": [{"from": "human", "value": "Weather in Oslo?"},
                                 {"from": "function_call", "value": '{"name": "get_weather", "arguments": {"city": "Oslo"}}'},
                                 {"from": "observation", "value": "rain, 7 C"},
                                 {"from": "gpt", "value": "Rain and 7 C in Oslo."}],
               "system": "You answer weather questions.", "metadata": {"session_id": "s1"}})
    compared, problems = lf.dropped_assistant_text([sft], [sg])
    assert compared == 2 and [(p.kind, p.row) for p in problems] == [("assistant-text-dropped", "s1")]
    assert "beside a tool call" in problems[0].detail


@pytest.fixture(scope="module")
def lf_python() -> str:
    py = lf.python()
    if py is None:
        if REQUIRE_LF:
            pytest.fail("STREAMGRADE_REQUIRE_LLAMAFACTORY=1 but LLaMA-Factory's virtualenv is missing (.ci/run makes it)")
        pytest.skip("LLaMA-Factory's virtualenv not found (.ci/run makes .venv-llamafactory; or set "
                    "STREAMGRADE_LLAMAFACTORY_PYTHON)")
    return py


def test_llamafactory_converter_on_small_files(tmp_path: Path, lf_python: str):
    from PIL import Image

    good = {"conversations": [{"from": "human", "value": "Weather in Oslo?"},
                              {"from": "function_call", "value": '{"name": "get_weather", "arguments": {"city": "Oslo"}}'},
                              {"from": "observation", "value": "rain"}, {"from": "gpt", "value": "Rain."}],
            "system": "s", "tools": json.dumps([TOOLS[0]["function"]])}
    odd = {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "a"},
                             {"from": "human", "value": "trailing"}], "system": "", "tools": None}
    bad_call = {**good, "conversations": good["conversations"][:1] + [{"from": "function_call", "value": "get_weather(Oslo)"}]}
    path = tmp_path / "sharegpt.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (good, odd, bad_call)))
    n, problems = lf.run_converter(path, interpreter=lf_python)
    assert n == 3
    assert [(p.kind, p.where) for p in problems] == [("row-skipped", "sharegpt.jsonl:2"),
                                                     ("function-call-unparsed", "sharegpt.jsonl:3")]
    # multimodal: one image per <image> tag, paths relative to the file's folder
    (tmp_path / "images").mkdir()
    Image.new("RGB", (8, 6), "white").save(tmp_path / "images" / "a.png")
    mm = [{"conversations": [{"from": "human", "value": "<image>Click OK."}, {"from": "gpt", "value": "click(3, 4)"}],
           "system": "", "images": ["images/a.png"]},
          {"conversations": [{"from": "human", "value": "<image><image>Two?"}, {"from": "gpt", "value": "done()"}],
           "system": "", "images": ["images/a.png"]},
          {"conversations": [{"from": "human", "value": "<image>Gone"}, {"from": "gpt", "value": "wait()"}],
           "system": "", "images": ["images/missing.png"]}]
    mm_path = tmp_path / "sharegpt.mm.jsonl"
    mm_path.write_text("".join(json.dumps(r) + "\n" for r in mm))
    n, problems = lf.run_converter(mm_path, lf.DATASET_INFO_MM, interpreter=lf_python)
    assert n == 3 and [(p.kind, p.where) for p in problems] == [("image-count", "sharegpt.mm.jsonl:2"),
                                                                ("image-missing", "sharegpt.mm.jsonl:3")]


# ---------------------------------------------------------------- part 2: today's exports


def _cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMGRADE_", "OPENAI_", "ANTHROPIC_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    res = subprocess.run([sys.executable, "-m", "streamgrade", *args], capture_output=True, text=True, env=env,
                         timeout=600)
    if check:
        assert res.returncode == 0, f"streamgrade {' '.join(args)} exited {res.returncode}: {res.stderr[-2000:]}"
    return res


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    """Grade the corpus subset as a new user would, then export; the export files by format."""
    if not CORPUS.is_dir():
        pytest.skip(f"the shared corpus is not at {CORPUS}")
    out = tmp_path_factory.mktemp("consumers") / "out"
    _cli("grade", *[str(CORPUS / d) for d in SUBSET], str(ROOT / "examples" / "clones"), "-o", str(out),
         "--judge", "heuristic")
    files = {}
    # every graded session (--all), not only those that pass: the consumers see every shape;
    # DPO as whole-trajectory pairs (the default step pairs are few on this corpus)
    for fmt, extra in (("sft", ["--all"]), ("sharegpt", ["--all"]), ("openai-sft", ["--all"]),
                       ("dpo", ["--pairs", "trajectory"]), ("openai-dpo", [])):
        dest = out / "exports" / "consumers" / f"{fmt}.jsonl"
        _cli("export", str(out), "--format", fmt, *extra, "-o", str(dest))
        files[fmt] = dest
    # computer-use rows with screenshots (multimodal ShareGPT + OpenAI vision), once that
    # export exists; its folder holds the rows, the images and a dataset_info.json
    cu = out / "exports" / "computer_use"
    if _cli("export", str(out), "--format", "computer-use", "-o", str(cu), check=False).returncode == 0:
        for mm in sorted(cu.glob("*.sharegpt.jsonl")):
            files.setdefault("sharegpt-mm", mm)
        for vis in sorted(cu.glob("*.openai.jsonl")):
            files.setdefault("openai-vision", vis)
    for name, path in files.items():
        assert path.exists() and path.stat().st_size > 0, f"{name}: {path} missing or empty"
    return files


def _figures(title: str, rows: int, problems: list) -> None:
    print(f"\n{title}: {rows} rows checked; problems per kind per consumer: {json.dumps(tally(problems))}")


@pytest.fixture(scope="module")
def template_problems(exports) -> dict[str, tuple[int, list]]:
    out = {}
    for fmt in ("sft", "dpo", "openai-dpo", "openai-sft"):
        if fmt in exports:
            rows, problems = read_rows(exports[fmt], "templates")
            out[fmt] = (len(rows), problems + check_rows(rows))
            _figures(f"chat templates x {fmt}", *out[fmt])
    return out


@pytest.fixture(scope="module")
def openai_problems(exports) -> dict[str, tuple[int, list]]:
    out = {}
    checks = {"sft": lambda r: check_sft_row(r, "openai-sft (ChatML file)", frozenset({"metadata"})),
              "openai-sft": check_sft_row,
              "openai-vision": lambda r: check_sft_row(r, "openai-sft (vision)", frozenset({"metadata"})),
              "openai-dpo": lambda r: check_dpo_row(r, extra_keys=frozenset({"metadata"}))}
    for fmt, check in checks.items():
        if fmt in exports:
            rows, problems = read_rows(exports[fmt], "openai")
            out[fmt] = (len(rows), problems + [p for r in rows for p in check(r)])
            _figures(f"OpenAI rules x {fmt}", *out[fmt])
    return out


@pytest.fixture(scope="module")
def lf_problems(exports, lf_python) -> dict[str, tuple[int, list]]:
    out = {"sharegpt": lf.run_converter(exports["sharegpt"])}
    _figures("LLaMA-Factory x sharegpt", *out["sharegpt"])
    if "sharegpt-mm" in exports:
        mm = exports["sharegpt-mm"]
        info_path = mm.parent / "dataset_info.json"
        info = json.loads(info_path.read_text()) if info_path.exists() else {"mm": {**lf.DATASET_INFO_MM[
            "streamgrade_sharegpt_mm"], "file_name": mm.name}}
        entry = {k: v for k, v in info.items() if v.get("file_name") == mm.name}
        out["sharegpt-mm"] = lf.run_converter(mm, entry or info)
        _figures("LLaMA-Factory x multimodal sharegpt", *out["sharegpt-mm"])
    return out


def test_exports_are_there(exports):
    counts = {k: sum(1 for _ in v.open()) for k, v in exports.items()}
    print(f"\nexport rows: {counts}")
    assert counts["sft"] > 600 and counts["dpo"] > 100 and counts["openai-dpo"] >= 1


def test_templates_clean(template_problems):
    bad = [p for _, probs in template_problems.values() for p in errors(probs)]
    assert not bad, summary(bad)


def test_openai_sft_passes_the_rules(openai_problems):
    """The strict ``openai-sft`` export, once it exists, must pass outright (issue 11, Done when)."""
    if "openai-sft" not in openai_problems:
        pytest.fail("no openai-sft export")
    rows, problems = openai_problems["openai-sft"]
    assert rows > 0 and not errors(problems), summary(problems)


def test_openai_rules_clean(openai_problems):
    """The files meant for OpenAI pass its rules outright. (The ChatML file is TRL's: it keeps
    a system message an agent got mid-run, which OpenAI's check counts; see the test above.)"""
    bad = [p for fmt, (_, probs) in openai_problems.items() if fmt != "sft" for p in errors(probs)]
    assert not bad, summary(bad)


def test_llamafactory_clean(lf_problems):
    assert lf_problems["sharegpt"][0] > 600
    bad = [p for _, probs in lf_problems.values() for p in errors(probs)]
    assert not bad, summary(bad)


@pytest.fixture(scope="module")
def sharegpt_drops(exports) -> tuple[int, list]:
    sft, _ = read_rows(exports["sft"], "sharegpt")
    sg, _ = read_rows(exports["sharegpt"], "sharegpt")
    compared, problems = lf.dropped_assistant_text(sft, sg)
    lost = sum(int(p.detail.split()[0]) for p in problems)
    _figures(f"ShareGPT vs ChatML: {compared} assistant texts compared, {lost} characters lost", len(sg), problems)
    return compared, problems


def test_sharegpt_keeps_assistant_text_clean(sharegpt_drops):
    compared, problems = sharegpt_drops
    assert compared > 1000
    assert not problems, summary(problems)
