"""Inspect AI logs (formats/inspect_ai.py): the real corpus (../shared/corpus/inspect-ai),
and handmade logs for the variants the source allows that the corpus lacks (running logs,
legacy layouts and fields, NaN, limits, errors, zip bombs, damaged and unsupported zips)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from streamgrade.config import load_config
from streamgrade.errors import InputError
from streamgrade.formats import FORMATS
from streamgrade.formats._inspect_log import clear_cache
from streamgrade.formats.inspect_ai import InspectLog, owned, score_value
from streamgrade.inputs import DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_SESSION_BYTES, configure_limits
from streamgrade.models import Session
from streamgrade.sources.scan import ScanReport, scan

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "inspect-ai"
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"Inspect AI corpus not found at {CORPUS}")
CFG = load_config(env={})
FMT = InspectLog()


def assemble_all(root: Path) -> dict[str, Session | InputError]:
    clear_cache()
    out: dict[str, Session | InputError] = {}
    for ref in scan([root]):
        assert ref.format == "inspect-ai", ref
        try:
            out[ref.session_id] = FORMATS[ref.format].assemble(ref, CFG)
        except InputError as exc:
            out[ref.session_id] = exc
    return out


# --------------------------------------------------------------------------- corpus


@pytest.fixture(scope="module")
def corpus() -> dict[str, Session | InputError]:
    if not CORPUS.is_dir():
        pytest.skip(f"Inspect AI corpus not found at {CORPUS}")
    return assemble_all(CORPUS)


@needs_corpus
def test_every_sample_is_a_session(corpus):
    assert len(corpus) == 23
    assert not [e for e in corpus.values() if isinstance(e, InputError)]
    rewards = {k: s.reward for k, s in corpus.items()}
    pop = {k.split(".")[2]: r for k, r in rewards.items() if k.startswith("popularity.mj7khqpMM4GBCfVQozKgzB.")}
    assert pop == {"1": 1.0, "2": 1.0, "3": 0.0, "4": 1.0, "5": 1.0, "6": 1.0, "7": 0.0, "8": 1.0, "9": 1.0, "10": 1.0}
    assert [rewards[f"popularity.VnKtvCqGnnegLQ7qSBFDzx.{i}.epoch1"] for i in (1, 2, 3)] == [1.0, 1.0, 0.0]
    streaming = {k: (s.trial, s.reward) for k, s in corpus.items() if ".WckPjG7ovQZLAiZF2fZpog." in k}
    assert streaming == {"popularity.WckPjG7ovQZLAiZF2fZpog.1.epoch1": ("1", 0.0),
                         "popularity.WckPjG7ovQZLAiZF2fZpog.1.epoch2": ("2", 1.0),
                         "popularity.WckPjG7ovQZLAiZF2fZpog.2.epoch1": ("1", 1.0),
                         "popularity.WckPjG7ovQZLAiZF2fZpog.2.epoch2": ("2", 1.0)}
    assert rewards["log_tool_call_error.1.epoch4"] is None  # no scores


@needs_corpus
def test_browser_json_sample(corpus):
    s = corpus["browser.ZB2vu5GNujYaBdPSReCeop.1.epoch1"]
    assert s.kind == "agent" and s.ref.format == "inspect-ai" and s.ref.locator == "0"
    assert s.task.startswith("Use the web browser tool to navigate to https://www.aisi.gov.uk/.")
    assert s.model == "openai/gpt-4o-mini" and s.meta["output_model"] == "gpt-4o-mini-2024-07-18"
    assert s.agent == "use_tools+generate" and s.task_id == "browser/1" and s.trial == "1"
    assert s.reward == 1.0 and s.meta["reward_scorer"] == "includes" and s.metrics["score_includes"] == 1.0
    assert s.termination == "stop" and s.duration_s == 18.517
    assert s.metrics["input_tokens"] == 15235 and s.metrics["output_tokens"] == 281
    assert s.metrics["cache_read_tokens"] == 9088 and s.metrics["working_time_s"] == 18.36
    calls = [c for m in s.transcript for c in m.tool_calls or []]
    assert [c.function.name for c in calls] == ["web_browser_go"] + ["web_browser_click"] * 3
    assert json.loads(calls[0].function.arguments) == {"url": "https://www.aisi.gov.uk/"}
    assert [m.role for m in s.transcript] == ["user"] + ["assistant", "tool"] * 4 + ["assistant"]
    assert s.transcript[-1].content.startswith("The AI Security Institute (AISI)")
    assert all(s.transcript[i + 1].tool_call_id == m.tool_calls[0].id for i, m in enumerate(s.transcript) if m.tool_calls)
    assert {t["function"]["name"] for t in s.tools} >= {"web_browser_go", "web_browser_click"}
    assert [st.model for st in s.steps if st.source == "agent"] == ["gpt-4o-mini-2024-07-18"] * 5


@needs_corpus
def test_eval_v3_sample_with_tools_and_attachments(corpus):
    s = corpus["inspect_test_utils_guess_number.gsM63GyMBKgA3p4sHAMAfG.0.epoch1"]
    assert s.ref.locator == "samples/0_epoch_1.json" and s.meta["log"] == "eval" and s.meta["log_version"] == 3
    assert s.task == "Guess the number" and s.model == "hardcoded/hardcoded"
    assert s.reward == 0.0 and s.meta["reward_scorer"] == "closeness_log" and s.termination == "stop"
    assert s.n_tool_calls == 5 and s.turns == 6 and s.transcript[-1].content == "done"
    tools = {t["function"]["name"]: t["function"] for t in s.tools}
    assert set(tools) == {"bash", "python"}
    # the python tool's description is an attachment://<hash> in the log, resolved here
    assert tools["python"]["description"].startswith("Use the python function to execute Python code.")
    assert "cmd" in tools["bash"]["parameters"]["properties"]


@needs_corpus
def test_tool_errors_json(corpus):
    s = corpus["log_tool_call_error.1.epoch4"]
    assert s.task == "..." and s.termination is None and s.reward is None
    assert [st.source for st in s.steps] == ["environment"] * 11  # results of calls the log does not hold
    assert s.steps[0].message == "..."  # the error message "..." is already the content
    assert s.steps[-1].message.endswith("<END_TOOL_OUTPUT>\n\nError: The tool output limit of 10 MiB was exceeded.")


@needs_corpus
def test_multi_turn_input_and_grader_chat_stay_out(corpus):
    doc = json.loads((CORPUS / "2025-05-12T20-28-26-04-00_security-guide.json").read_text())
    for i, sample in enumerate(doc["samples"], start=1):
        s = corpus[f"security_guide.f9WtbTGsrMUNXppXPbR9sq.{i}.epoch1"]
        assert s.task == sample["input"][0]["content"]  # input given as a message list
        assert [m.role for m in s.transcript] == ["system", "user", "assistant"]
        seen = json.dumps([s.task, [m.content for m in s.transcript], s.meta])
        score = sample["scores"]["model_graded_fact"]
        assert score["explanation"][:80] not in seen
        assert json.dumps(score["metadata"])[:80] not in seen and "grading" not in s.meta


@needs_corpus
def test_grade_cli_on_the_corpus(tmp_path: Path):
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMGRADE_", "OPENAI_", "ANTHROPIC_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1] / "src"), env.get("PYTHONPATH", "")])
    res = subprocess.run([sys.executable, "-m", "streamgrade", "grade", str(CORPUS), "-o", str(out), "--no-progress"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "22 graded, 0 failed, 1 ungradable" in res.stderr  # one sample never acted
    assert "1 file not recognised" in res.stderr and "PROVENANCE.md" in res.stderr
    recs = [json.loads(x) for x in (out / "exports" / "scores.jsonl").read_text().splitlines()]
    assert len(recs) == 23 and {r["source_format"] for r in recs} == {"inspect-ai"}
    assert sorted(r["reward"] for r in recs if r["reward"] is not None) == [0.0] * 5 + [1.0] * 17


# --------------------------------------------------------------------------- handmade logs

SECRETS = ("SECRET-TARGET", "SECRET-EXPLANATION", "SECRET-METADATA", "SECRET-STORE", "SECRET-EVENT")
EVAL = {"eval_id": "E1", "run_id": "R1", "task": "arith", "task_id": "T1", "created": "2025-01-01T00:00:00+00:00",
        "model": "openai/gpt-x", "dataset": {"samples": 2}, "config": {}, "scorers": [{"name": "match"}]}
PLAN = {"name": "plan", "steps": [{"solver": "generate", "params": {}}], "config": {}}


def sample(sid=1, epoch=1, **kw) -> dict:
    s = {"id": sid, "epoch": epoch, "input": "What is 2+2?", "target": "SECRET-TARGET 4",
         "messages": [{"id": "m1", "role": "user", "content": "What is 2+2?", "source": "input"},
                      {"id": "m2", "role": "assistant", "content": "4", "model": "gpt-x-1"}],
         "output": {"model": "gpt-x-1", "choices": [{"message": {"role": "assistant", "content": "4"},
                                                     "stop_reason": "stop"}]},
         "scores": {"match": {"value": "C", "answer": "4", "explanation": "SECRET-EXPLANATION"}},
         "metadata": {"solution": "SECRET-METADATA"}, "store": {"k": "SECRET-STORE"},
         "events": [{"event": "score", "target": "SECRET-EVENT"}],
         "model_usage": {"openai/gpt-x": {"input_tokens": 10, "output_tokens": 2, "total_tokens": 12}},
         "total_time": 1.5}
    s.update(kw)
    return s


def write_eval(path: Path, members: dict[str, object], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=method) as z:
        for name, doc in members.items():
            z.writestr(name, doc if isinstance(doc, bytes) else json.dumps(doc, indent=2))
    return path


def write_json(path: Path, samples: list | None, status: str = "success", text: str | None = None) -> Path:
    doc = {"version": 2, "status": status, "eval": EVAL, "plan": PLAN, "results": None, "stats": {}}
    if samples is not None:
        doc["samples"] = samples
    path.write_text(text if text is not None else json.dumps(doc, indent=2))
    return path


def no_secrets(s: Session) -> None:
    seen = json.dumps([s.task, [(m.content, m.reasoning_content) for m in s.transcript], s.meta, s.tools])
    assert not [x for x in SECRETS if x in seen], seen


@pytest.fixture
def limits():
    yield configure_limits
    configure_limits(max_session_bytes=DEFAULT_MAX_SESSION_BYTES, max_file_bytes=DEFAULT_MAX_FILE_BYTES)
    clear_cache()


def test_finished_eval_and_the_judge_never_sees_ground_truth(tmp_path: Path):
    write_eval(tmp_path / "a.eval", {"header.json": {"version": 2, "status": "success", "eval": EVAL, "plan": PLAN},
                                     "samples/1_epoch_1.json": sample(), "samples/1_epoch_2.json": sample(epoch=2),
                                     "summaries.json": [], "reductions.json": []})
    got = assemble_all(tmp_path)
    assert sorted(got) == ["arith.E1.1.epoch1", "arith.E1.1.epoch2"]
    s = got["arith.E1.1.epoch1"]
    assert (s.task, s.model, s.agent, s.task_id, s.trial, s.reward, s.termination) == (
        "What is 2+2?", "openai/gpt-x", "generate", "arith/1", "1", 1.0, "stop")
    assert s.metrics == {"score_match": 1.0, "input_tokens": 10.0, "output_tokens": 2.0, "total_tokens": 12.0}
    assert s.duration_s == 1.5
    no_secrets(s)


def test_running_eval_journal_only_is_owned_not_unrecognised(tmp_path: Path):
    write_eval(tmp_path / "run.eval", {"_journal/start.json": {"version": 2, "eval": EVAL, "plan": PLAN}})
    write_json(tmp_path / "run.json", None, status="started")
    clear_cache()
    report = ScanReport()
    assert list(scan([tmp_path], report=report)) == []
    assert report.unrecognised == 0 and owned(tmp_path, ["run.eval", "run.json"]) == {"run.eval", "run.json"}


def test_running_eval_with_samples_reads_the_journal_start(tmp_path: Path):
    write_eval(tmp_path / "run.eval", {"_journal/start.json": {"version": 2, "eval": EVAL, "plan": PLAN},
                                       "samples/7_epoch_1.json": sample(7), "_journal/summaries/1.json": []})
    (s,) = assemble_all(tmp_path).values()
    assert s.ref.session_id == "arith.E1.7.epoch1" and s.model == "openai/gpt-x" and s.reward == 1.0


def test_legacy_root_start_and_results(tmp_path: Path):
    old = dict(EVAL)
    del old["eval_id"]  # logs before eval_id: the task_id names the eval
    write_eval(tmp_path / "old.eval", {"start.json": {"version": 2, "eval": old, "plan": PLAN},
                                       "results.json": {"status": "success", "stats": {}},
                                       "samples/1_epoch_1.json": sample()})
    (s,) = assemble_all(tmp_path).values()
    assert s.ref.session_id == "arith.T1.1.epoch1" and s.model == "openai/gpt-x"


def test_legacy_json_fields(tmp_path: Path):
    """Before multiple scorers (``score``), before attachments (``transcript.content``), the
    ``tool_error`` string, the assistant ``reasoning`` field, ``<think>`` blocks, NaN."""
    legacy = sample(messages=[
        {"role": "system", "content": "attachment://sys"},
        {"role": "user", "content": "tc://q"},
        {"role": "assistant", "content": "<think>plan it</think>running", "tool_calls": [
            {"id": "c1", "function": "bash", "arguments": {"cmd": "attachment://cmd"}, "type": "function"}]},
        {"role": "tool", "tool_call_id": "c1", "function": "bash", "content": "", "tool_error": "timed out"},
        {"role": "assistant", "content": "4", "reasoning": "it is four"}])
    del legacy["scores"]
    legacy.update(score={"value": "P", "explanation": "SECRET-EXPLANATION"},
                  transcript={"events": [], "content": {"sys": "Be brief.", "q": "Add 2+2", "cmd": "echo $((2+2))"}},
                  working_time=float("nan"))
    path = write_json(tmp_path / "legacy.json", [legacy])
    path.write_text(path.read_text().replace('"results": null', '"results": {"scorer": {"name": "old_match"}, "metrics": {}}'))
    assert "NaN" in path.read_text()
    (s,) = assemble_all(tmp_path).values()
    assert s.reward == 0.5 and s.meta["reward_scorer"] == "old_match" and "working_time_s" not in s.metrics
    assert [m.role for m in s.transcript] == ["system", "user", "assistant", "tool", "assistant"]
    assert s.transcript[0].content == "Be brief." and s.transcript[1].content == "Add 2+2"
    assert s.transcript[2].content == "running" and s.transcript[2].reasoning_content == "plan it"
    assert json.loads(s.transcript[2].tool_calls[0].function.arguments) == {"cmd": "echo $((2+2))"}
    assert s.transcript[3].content == "Error: timed out" and s.steps[2].observations[0].is_error
    assert s.transcript[4].reasoning_content == "it is four"
    no_secrets(s)


@pytest.mark.parametrize("scores,reward,scorer", [
    ({"other": {"value": 0.25}, "match": {"value": "I"}}, 0.0, "match"),  # eval.scorers order wins
    ({"match": {"value": {"a": 1, "b": "C"}}, "other": {"value": True}}, 1.0, "other"),  # a dict is not a scalar
    ({"match": {"value": None}, "x": {"value": "unparseable"}}, None, None),  # unscored
    ({"match": {"value": "yes"}}, 1.0, "match"),
    ({"match": {"value": "0.75"}}, 0.75, "match"),
    ({"match": {"value": [1, 0, "C"]}}, None, None),
])
def test_which_score_is_the_reward(tmp_path: Path, scores, reward, scorer):
    write_json(tmp_path / "l.json", [sample(scores=scores)])
    (s,) = assemble_all(tmp_path).values()
    assert s.reward == reward and s.meta.get("reward_scorer") == scorer


def test_every_score_is_a_metric(tmp_path: Path):
    write_json(tmp_path / "l.json", [sample(scores={"match": {"value": {"a": 1, "b": "C", "c": "?"}},
                                                   "acc": {"value": [0.5, False]}, "n": {"value": "N"}})])
    (s,) = assemble_all(tmp_path).values()
    assert {k: v for k, v in s.metrics.items() if k.startswith("score_")} == {
        "score_match.a": 1.0, "score_match.b": 1.0, "score_acc.0": 0.5, "score_acc.1": 0.0, "score_n": 0.0}
    assert s.reward == 0.0 and s.meta["reward_scorer"] == "n"


def test_score_value_mapping():
    assert [score_value(v) for v in ("C", "I", "P", "N", "TRUE", "No", 3, 2.5, False, "nan", "x", None, [1])] == [
        1.0, 0.0, 0.5, 0.0, 1.0, 0.0, 3.0, 2.5, 0.0, None, None, None, None]


@pytest.mark.parametrize("extra,termination", [
    ({"error": {"message": "sandbox died", "traceback": "tb", "traceback_ansi": "tb"}}, "error"),
    ({"limit": {"type": "message", "limit": 30}}, "message_limit"),
    ({"limit": "token"}, "token_limit"),
    ({"output": {"model": "gpt-x-1", "choices": [{"message": {"role": "assistant", "content": "4"},
                                                  "stop_reason": "max_tokens"}]}}, "max_tokens"),
    ({"output": {}}, None),
])
def test_termination(tmp_path: Path, extra, termination):
    write_json(tmp_path / "l.json", [sample(**extra)])
    (s,) = assemble_all(tmp_path).values()
    assert s.termination == termination
    assert s.meta.get("error") == ("sandbox died" if termination == "error" else None)


def test_sample_without_messages_reads_input_and_output(tmp_path: Path):
    s0 = sample(messages=[], input=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}])
    write_json(tmp_path / "l.json", [s0])
    (s,) = assemble_all(tmp_path).values()
    assert s.task == "2+2?" and [m.role for m in s.transcript] == ["system", "user", "assistant"]
    assert s.transcript[-1].content == "4"


def test_content_parts_images_and_server_tools(tmp_path: Path):
    msgs = [{"role": "user", "content": [{"type": "text", "text": "What is shown?"},
                                         {"type": "image", "image": "attachment://img"}]},
            {"role": "assistant", "content": [
                {"type": "reasoning", "reasoning": "enc", "redacted": True, "signature": "s"},
                {"type": "tool_use", "tool_type": "web_search", "id": "w1", "name": "web_search",
                 "arguments": "{\"q\": \"cat\"}", "result": "attachment://res"},
                {"type": "text", "text": "A cat."}]}]
    write_json(tmp_path / "l.json", [sample(messages=msgs, attachments={"img": "data:image/png;base64,AAAA",
                                                                         "res": "cats are felines"})])
    (s,) = assemble_all(tmp_path).values()
    assert s.transcript[0].content == "What is shown?\n[image]" and s.task == "What is 2+2?"
    assert s.transcript[1].content == "A cat." and s.transcript[1].reasoning_content is None
    assert s.transcript[2].role == "tool" and s.transcript[2].content == "cats are felines"


def test_zip_bomb_member_is_refused_before_decompression(tmp_path: Path, limits):
    limits(max_session_bytes=100_000, max_file_bytes=DEFAULT_MAX_FILE_BYTES)
    big = sample(messages=[{"role": "user", "content": "x" * 5_000_000}])
    write_eval(tmp_path / "bomb.eval", {"header.json": {"version": 2, "eval": EVAL}, "samples/1_epoch_1.json": big})
    assert (tmp_path / "bomb.eval").stat().st_size < 50_000
    (err,) = assemble_all(tmp_path).values()
    assert isinstance(err, InputError) and err.path == str(tmp_path / "bomb.eval")
    assert err.field == "samples/1_epoch_1.json" and "[limits] max_session_bytes" in err.message
    assert "not decompressed" in err.message


def _patch_sizes(path: Path, member: str, *, size: int | None = None, method: int | None = None,
                 crc: int | None = None) -> None:
    """Rewrite a member's uncompressed size, compression method or CRC-32 in its local
    header and its central directory entry."""
    data = bytearray(path.read_bytes())
    info = zipfile.ZipFile(path).getinfo(member)
    cd = data.index(b"PK\x01\x02", info.header_offset + 30)
    while data[cd + 46:cd + 46 + len(member)] != member.encode():
        cd = data.index(b"PK\x01\x02", cd + 4)
    for value, fmt, local, central in ((size, "<I", 22, 24), (method, "<H", 8, 10), (crc, "<I", 14, 16)):
        if value is not None:
            struct.pack_into(fmt, data, info.header_offset + local, value)
            struct.pack_into(fmt, data, cd + central, value)
    path.write_bytes(bytes(data))


def write_zstd_eval(path: Path, doc: dict, *, damage: bool = False) -> Path:
    """An .eval whose sample member is zstd-compressed (ZIP method 93), as Inspect writes
    with INSPECT_USE_ZSTD: a stored member holding the zstd frame, relabelled."""
    import zlib

    import zstandard

    raw = json.dumps(doc).encode()
    packed = zstandard.ZstdCompressor().compress(raw)
    if damage:
        packed = packed[:12] + bytes(8) + packed[20:]
    write_eval(path, {"header.json": {"version": 2, "eval": EVAL}, "samples/1_epoch_1.json": packed},
               method=zipfile.ZIP_STORED)
    _patch_sizes(path, "samples/1_epoch_1.json", size=len(raw), method=93, crc=zlib.crc32(raw))
    return path


def test_zstd_members_are_read(tmp_path: Path):
    write_zstd_eval(tmp_path / "z.eval", sample())
    (s,) = assemble_all(tmp_path).values()
    assert isinstance(s, Session) and s.reward == 1.0 and s.task == "What is 2+2?"


def test_damaged_zstd_member_and_unsupported_methods_are_named(tmp_path: Path):
    (tmp_path / "z").mkdir()
    (tmp_path / "d").mkdir()
    write_zstd_eval(tmp_path / "z" / "z.eval", sample(), damage=True)
    p = write_eval(tmp_path / "d" / "d.eval", {"header.json": {"version": 2, "eval": EVAL},
                                               "samples/1_epoch_1.json": sample()})
    _patch_sizes(p, "samples/1_epoch_1.json", method=9)
    (z,) = assemble_all(tmp_path / "z").values()
    assert isinstance(z, InputError) and z.field == "samples/1_epoch_1.json" and "zstd" in z.message
    (d,) = assemble_all(tmp_path / "d").values()
    assert isinstance(d, InputError) and d.field == "samples/1_epoch_1.json" and "deflate64" in d.message


def test_member_that_lies_about_its_size_fails_its_check(tmp_path: Path):
    p = write_eval(tmp_path / "lie.eval", {"header.json": {"version": 2, "eval": EVAL},
                                           "samples/1_epoch_1.json": sample(messages=[{"role": "user", "content": "y" * 90_000}])})
    _patch_sizes(p, "samples/1_epoch_1.json", size=100)
    (err,) = assemble_all(tmp_path).values()
    assert isinstance(err, InputError) and err.field == "samples/1_epoch_1.json"
    assert "truncated or corrupt zip" in err.message


def test_stored_members_are_read(tmp_path: Path):
    write_eval(tmp_path / "s.eval", {"header.json": {"version": 2, "eval": EVAL}, "samples/1_epoch_1.json": sample()},
               method=zipfile.ZIP_STORED)
    (s,) = assemble_all(tmp_path).values()
    assert s.reward == 1.0


def test_truncated_zip_is_one_failed_session(tmp_path: Path):
    good = write_eval(tmp_path / "t.eval", {"header.json": {"version": 2, "eval": EVAL},
                                           "samples/1_epoch_1.json": sample(), "samples/2_epoch_1.json": sample(2)})
    good.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    got = assemble_all(tmp_path)
    assert list(got) == ["t"]
    assert isinstance(got["t"], InputError) and "truncated or corrupt zip" in str(got["t"])


def test_corrupt_member_names_the_member(tmp_path: Path):
    p = write_eval(tmp_path / "c.eval", {"header.json": {"version": 2, "eval": EVAL},
                                         "samples/1_epoch_1.json": sample(), "samples/2_epoch_1.json": sample(2)})
    info = zipfile.ZipFile(p).getinfo("samples/1_epoch_1.json")
    data = bytearray(p.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + 10
    data[start:start + 20] = bytes(20)
    p.write_bytes(bytes(data))
    got = assemble_all(tmp_path)
    assert isinstance(got["arith.E1.2.epoch1"], Session)
    err = got["arith.E1.1.epoch1"]
    assert isinstance(err, InputError) and err.field == "samples/1_epoch_1.json" and str(err).startswith(str(p))


def test_broken_member_json_and_broken_header(tmp_path: Path):
    write_eval(tmp_path / "j.eval", {"header.json": {"version": 2, "eval": EVAL}, "samples/1_epoch_1.json": b'{"id": 1,\n "epoch": '})
    write_eval(tmp_path / "h.eval", {"header.json": b"{oops", "samples/1_epoch_1.json": sample()})
    got = assemble_all(tmp_path)
    assert "invalid JSON at line 2" in got["arith.E1.1.epoch1"].message
    assert got["h.1.epoch1"].field == "header.json"


def test_chunked_sample_layout_is_reported(tmp_path: Path):
    write_eval(tmp_path / "k.eval", {"header.json": {"version": 3, "eval": EVAL},
                                     "samples/1_epoch_1/sample.json": {"id": 1, "epoch": 1, "message_refs": []},
                                     "samples/1_epoch_1/messages/0.json": []})
    (err,) = assemble_all(tmp_path).values()
    assert isinstance(err, InputError) and "chunked layout" in err.message


def test_broken_json_log_names_the_line_and_other_json_is_not_taken(tmp_path: Path):
    good = write_json(tmp_path / "log.json", [sample()])
    (tmp_path / "cut.json").write_text(good.read_text()[:300])
    (tmp_path / "other.json").write_text(json.dumps({"version": 1, "rows": []}))
    clear_cache()
    assert {r.session_id for r in FMT.find(tmp_path, ["cut.json", "log.json", "other.json"])} == {"cut", "arith.E1.1.epoch1"}
    got = assemble_all(tmp_path / "cut.json")
    assert got["cut"].line is not None and got["cut"].path == str(tmp_path / "cut.json")
    from streamgrade.formats.explain import explain
    assert "inspect-ai: does not start with a log's version and eval" in explain(tmp_path, "other.json", ["other.json"])


def test_bad_fields_name_the_sample_field(tmp_path: Path):
    write_json(tmp_path / "l.json", [sample(), sample(2, messages=[{"role": "assistant", "tool_calls": [{"id": "x"}]}]),
                                     sample(3, scores="C"), 7])
    got = assemble_all(tmp_path)
    assert isinstance(got["arith.E1.1.epoch1"], Session)
    assert got["arith.E1.2.epoch1"].field == "samples[1].messages[0].tool_calls[0].name"
    assert got["arith.E1.3.epoch1"].field == "samples[2].scores"
    assert got["arith.E1.sample3"].field == "samples[3]"


def test_fingerprints_follow_each_sample(tmp_path: Path):
    p = write_eval(tmp_path / "f.eval", {"header.json": {"version": 2, "eval": EVAL},
                                         "samples/1_epoch_1.json": sample(), "samples/2_epoch_1.json": sample(2)})
    clear_cache()
    before = {r.session_id: r.fingerprint for r in FMT.find(tmp_path, ["f.eval"])}
    write_eval(p, {"header.json": {"version": 2, "status": "success", "eval": EVAL},
                   "samples/1_epoch_1.json": sample(), "samples/2_epoch_1.json": sample(2, total_time=9.0)})
    os.utime(p, ns=(1, 1))
    clear_cache()
    after = {r.session_id: r.fingerprint for r in FMT.find(tmp_path, ["f.eval"])}
    assert before["arith.E1.1.epoch1"] == after["arith.E1.1.epoch1"]
    assert before["arith.E1.2.epoch1"] != after["arith.E1.2.epoch1"]
