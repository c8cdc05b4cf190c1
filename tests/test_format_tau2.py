"""tau2-bench results files (formats/tau2.py) on handmade files written from the source's models
(tests/data/tau2: sierra-research/tau2-bench src/tau2/data_model/{simulation,tasks,message}.py,
as Results.save writes them) and a generated larger one. No tau2 sample is in the shared corpus.

tests/data/tau2 holds: airline_gpt-4.1.json (three runs: passed, not evaluated, tool errors),
telecom_dual_control.json (the simulated user calls tools; a 261-character task id),
retail_solo.json (solo mode: no user, the task is the ticket) and voice_run/ (the dir format:
results.json beside simulations/<id>.json, a full-duplex run stored as ticks). Every hidden
string (evaluation criteria, reward checks, the user's instructions and persona, the task's
description, review) contains "SECRET".
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec
import pytest
import respx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import schema_answerer
from streamgrade.chunking import chunk_session
from streamgrade.config import load_config
from streamgrade.errors import InputError
from streamgrade.formats import FORMATS
from streamgrade.formats._tau2_run import clear_cache
from streamgrade.formats.tau2 import Tau2Results
from streamgrade.judges.openai import OpenAIJudge
from streamgrade.models import Session
from streamgrade.sinks.layout import MAX_NAME_BYTES, session_folder
from streamgrade.sources.scan import ScanReport, scan

DATA = Path(__file__).resolve().parent / "data" / "tau2"
AIRLINE = DATA / "airline_gpt-4.1.json"
TELECOM = DATA / "telecom_dual_control.json"
SOLO = DATA / "retail_solo.json"
VOICE = DATA / "voice_run"
LONG = json.loads(TELECOM.read_text())["tasks"][0]["id"]
TELECOM_ID = "telecom_dual_control.task" + LONG.strip("[]").replace("]", "_").replace("|", "_").replace("[", "_").replace(":", "_")
IDS = {"airline_gpt-4.1.task0.trial0", "airline_gpt-4.1.task0.trial1", "airline_gpt-4.1.task1.trial0",
       "retail_solo.task5.trial0", f"{TELECOM_ID}.trial0", f"{TELECOM_ID}.trial1", "voice_run.task3.trial0"}
CFG = load_config(env={})


def sessions_in(root: Path) -> tuple[dict[str, Session], ScanReport]:
    clear_cache()
    report = ScanReport(keep=20)
    refs = list(scan([root], report=report))
    assert all(r.format == "tau2" for r in refs), refs
    return {r.session_id: FORMATS[r.format].assemble(r, CFG) for r in refs}, report


@pytest.fixture(scope="module")
def data() -> dict[str, Session]:
    found, report = sessions_in(DATA)
    assert report.unrecognised == 0, report.examples  # voice_run/results.json is owned, not a session
    return found


def test_one_session_per_simulation_with_locators_and_fingerprints(data):
    assert set(data) == IDS
    s = data["airline_gpt-4.1.task0.trial0"]
    assert s.ref.locator == "id:7c1f0b3e-5d2a-4f0e-9a51-0c2d5e8b1a01" and s.ref.files == (str(AIRLINE),)
    assert len({x.ref.fingerprint for x in data.values()}) == len(IDS)
    voice = data["voice_run.task3.trial0"]
    assert voice.ref.files == (str(next((VOICE / "simulations").iterdir())), str(VOICE / "results.json"))


def test_airline_run_policy_first_then_greeting(data):
    s = data["airline_gpt-4.1.task0.trial0"]
    assert s.task == "Hi, I need to cancel my reservation EHGLP3. My user id is emma_kim_9957."
    assert [x.source for x in s.steps] == ["system", "agent", "user", "agent", "agent", "agent", "user"]
    assert s.steps[0].message.startswith("# Airline Agent Policy") and s.steps[1].message == "Hi! How can I help you today?"
    assert [m.role for m in s.transcript] == ["system", "assistant", "user", "assistant", "tool", "assistant", "tool",
                                              "assistant", "user"]
    assert (s.reward, s.termination, s.task_id, s.trial, s.duration_s) == (1.0, "user_stop", "0", "0", 38.52)
    assert (s.model, s.agent, s.turns, s.n_tool_calls) == ("gpt-4.1-2025-04-14", "llm_agent", 4, 2)
    assert s.steps[3].observations[0].source_call_id == "call_Xa1" and s.steps[3].observations[0].is_error is False
    assert s.steps[5].reasoning.startswith("Basic economy") and s.steps[3].metrics["prompt_tokens"] == 2100
    assert s.metrics == {"cost_usd": 0.0218, "user_cost": 0.0007, "input_tokens": 6600.0, "output_tokens": 114.0,
                         "tool_errors": 0.0, "user_tool_calls": 0.0, "messages": 8.0}
    assert s.meta["domain"] == "airline" and s.meta["simulation_id"].startswith("7c1f0b3e")


def test_run_not_evaluated_has_no_reward(data):
    s = data["airline_gpt-4.1.task0.trial1"]
    assert (s.reward, s.termination, s.trial) == (None, "max_steps", "1")


def test_tool_errors_are_flagged(data):
    s = data["airline_gpt-4.1.task1.trial0"]
    obs = [o for x in s.steps for o in x.observations]
    assert [o.is_error for o in obs] == [True, True, True] and obs[0].content == "Error: Reservation ZZ9XQ1 not found"
    assert (s.reward, s.termination, s.metrics["tool_errors"]) == (0.0, "too_many_errors", 3.0)


def test_telecom_user_makes_tool_calls(data):
    s = data[f"{TELECOM_ID}.trial0"]
    user_acts = [x for x in s.steps if x.source == "user" and x.tool_calls]
    assert [c.name for x in user_acts for c in x.tool_calls] == ["check_status_bar", "toggle_airplane_mode",
                                                                "run_speed_test", "toggle_data"]
    assert [(o.source_call_id, o.is_error) for x in user_acts for o in x.observations] == [
        ("call_U1", False), ("call_U2", False), ("call_U3", True), ("call_U4", False)]
    agent_calls = [c.name for x in s.steps if x.source == "agent" for c in x.tool_calls]
    assert agent_calls == ["get_customer_by_phone"] and s.n_tool_calls == 1  # the agent's own calls only
    texts = [m.content for m in s.transcript if m.role == "user"]
    assert "[calls toggle_airplane_mode({})]" in texts and "[run_speed_test error] Error: no mobile data connection" in texts
    assert s.metrics["user_tool_calls"] == 4.0 and s.metrics["tool_errors"] == 1.0
    assert [t["function"]["name"] for t in s.tools] == ["get_customer_by_phone", "refuel_data"]
    assert s.tools[0]["function"]["parameters"]["required"] == ["phone_number"]
    assert (s.model, s.reward, data[f"{TELECOM_ID}.trial1"].reward) == ("claude-3-7-sonnet-20250219", 1.0, 0.0)


def test_long_task_id_gets_a_short_unique_folder(data):
    assert 255 <= len(LONG) <= 270
    s0, s1 = data[f"{TELECOM_ID}.trial0"], data[f"{TELECOM_ID}.trial1"]
    assert s0.task_id == LONG  # the record keeps the task id as it is
    folders = {session_folder(s0.ref.session_id), session_folder(s1.ref.session_id)}
    assert len(folders) == 2 and all(len(f.encode()) <= MAX_NAME_BYTES for f in folders)


def test_solo_run_takes_the_ticket_as_task(data):
    s = data["retail_solo.task5.trial0"]
    assert s.task.startswith("Ticket #4821: Yusuf Rossi") and s.meta["task_from_ticket"] is True
    assert [x.source for x in s.steps] == ["system"] + ["agent"] * 5
    assert all(m.role != "user" for m in s.transcript)
    assert (s.agent, s.model, s.termination, s.reward, s.n_tool_calls) == ("llm_agent_solo", "o4-mini-2025-04-16",
                                                                           "agent_stop", 1.0, 4)
    assert "user_cost" not in s.metrics  # the dummy user costs nothing: null in the file


def test_dir_format_full_duplex_ticks(data):
    s = data["voice_run.task3.trial0"]
    assert [(m.role, m.content) for m in s.transcript if m.role in ("user", "assistant") and m.content] == [
        ("assistant", "Hi! How can I help you today?"), ("user", "Hi, I'd like to know the status of order W55."),
        ("assistant", "Your order W55 has been processed and will ship soon."), ("user", "Great, thank you! ###STOP###")]
    assert s.steps[3].tool_calls[0].name == "get_order_details" and s.steps[3].observations[0].source_call_id == "call_V1"
    assert (s.model, s.reward, s.meta["from_ticks"], s.meta["mode"]) == ("gpt-realtime", 1.0, True, "full_duplex")


def test_nothing_hidden_reaches_session_fields(data):
    for s in data.values():
        shown = msgspec.json.encode([s.task, s.steps, s.transcript, s.meta, s.tools]).decode()
        assert "SECRET" not in shown, s.ref.session_id


@pytest.mark.asyncio
async def test_judge_prompt_has_policy_but_no_ground_truth(data):
    cfg = load_config(env={}, overrides={"openai": {"base_url": "http://judge.test/v1", "http_client": "httpx"}})
    verdict = {"summary": "s", **{k: {"score": 50, "confidence": 0.5, "reason": "r"} for k in ("outcome", "process", "efficiency")}}
    for sid in sorted(IDS):
        session, bodies = data[sid], []
        with respx.mock:
            respx.post("http://judge.test/v1/chat/completions").mock(
                side_effect=schema_answerer(bodies, verdict, {"summary": "so far", "progress": [], "problems": []}))
            judge = OpenAIJudge(cfg, api_key="k")
            await judge.grade(session, chunk_session(session, cfg.chunking))
            await judge.aclose()
        text = "\n".join(m["content"] for b in bodies for m in b["messages"])
        assert "Agent Policy" in text or "agent policy" in text, sid  # the policy the agent had to follow
        assert "SECRET" not in text and "reward" not in text.lower(), sid
        assert session.task in text


def results_doc(n_tasks: int, n_trials: int, turns: int = 12) -> dict:
    """A generated results file of n_tasks x n_trials retail runs of ``turns`` exchanges each."""
    tasks = [{"id": str(t), "description": {"purpose": f"SECRET purpose {t}", "relevant_policies": None, "notes": None},
              "user_scenario": {"persona": None, "instructions": f"SECRET instructions {t}"}, "ticket": None, "initial_state": None,
              "evaluation_criteria": {"actions": [], "communicate_info": [f"SECRET {t}"], "nl_assertions": None,
                                      "env_assertions": None, "reward_basis": ["DB"]}} for t in range(n_tasks)]
    sims = []
    for t in range(n_tasks):
        for k in range(n_trials):
            msgs = [{"role": "assistant", "content": "Hi! How can I help you today?", "turn_idx": 0}]
            for j in range(turns):
                msgs.append({"role": "user", "content": f"Order #W{t}{j} please, item {k}.", "tool_calls": None})
                cid = f"call_{t}_{k}_{j}"
                msgs.append({"role": "assistant", "content": None, "tool_calls": [
                    {"id": cid, "name": "get_order_details", "arguments": {"order_id": f"#W{t}{j}"}, "requestor": "assistant"}],
                    "usage": {"prompt_tokens": 1000 + j, "completion_tokens": 20}, "cost": 0.001})
                msgs.append({"id": cid, "role": "tool", "content": json.dumps({"order_id": f"#W{t}{j}", "status": "pending"}),
                             "requestor": "assistant", "error": j % 5 == 4})
                msgs.append({"role": "assistant", "content": f"Order #W{t}{j} is pending.", "tool_calls": None})
            sims.append({"id": f"sim-{t}-{k}", "task_id": str(t), "trial": k, "duration": 10.0 + k,
                         "termination_reason": "user_stop", "agent_cost": 0.01 * turns, "user_cost": 0.001,
                         "reward_info": {"reward": float((t + k) % 2), "db_check": None}, "messages": msgs})
    info = {"git_commit": "abc", "num_trials": n_trials, "max_steps": 200, "max_errors": 10,
            "user_info": {"implementation": "user_simulator", "llm": "gpt-4.1"},
            "agent_info": {"implementation": "llm_agent", "llm": "gpt-4.1-mini"},
            "environment_info": {"domain_name": "retail", "policy": "# Retail agent policy\nBe helpful."}}
    return {"timestamp": "2025-07-01T00:00:00", "info": info, "tasks": tasks, "simulations": sims}


def test_generated_large_file_and_checkpoint_growth(tmp_path):
    doc = results_doc(30, 4)
    path = tmp_path / "retail_run.json"
    path.write_text(json.dumps(doc, indent=2))
    t0 = time.perf_counter()
    found, report = sessions_in(tmp_path)
    assert time.perf_counter() - t0 < 5 and report.unrecognised == 0
    assert len(found) == 120 and "retail_run.task29.trial3" in found
    s = found["retail_run.task7.trial2"]
    assert (s.reward, s.turns, s.n_tool_calls, s.metrics["tool_errors"], s.metrics["input_tokens"]) == (
        1.0, 25, 12, 2.0, sum(1000 + j for j in range(12)))  # the greeting and 2 per exchange
    before = {r.session_id: r.fingerprint for r in scan([tmp_path])}
    doc["simulations"].append(copy.deepcopy(doc["simulations"][0]) | {"id": "sim-extra", "trial": 4})
    doc["simulations"][5]["messages"][1]["content"] = "changed"
    path.write_text(json.dumps(doc))  # tau2 rewrites the file at each checkpoint, here not indented
    clear_cache()
    after = {r.session_id: r.fingerprint for r in scan([tmp_path])}
    changed = {k for k in after if before.get(k) != after[k]}
    assert changed == {"retail_run.task0.trial4", "retail_run.task1.trial1"}


def test_repeated_and_missing_ids_stay_unique(tmp_path):
    doc = results_doc(1, 1, turns=1)
    sim = doc["simulations"][0]
    doc["simulations"] = [sim, copy.deepcopy(sim) | {"id": "again"}, {k: v for k, v in sim.items() if k not in ("task_id", "id")},
                          copy.deepcopy(sim) | {"id": "again"}]
    (tmp_path / "r.json").write_text(json.dumps(doc))
    clear_cache()
    refs = list(scan([tmp_path]))
    assert [(r.session_id, r.locator) for r in refs] == [
        ("r.task0.trial0", "id:sim-0-0"), ("r.task0.trial0.simagain", "index:1"), ("r.sim2", "index:2"),
        ("r.task0.trial0.simagain.3", "index:3")]
    s = Tau2Results().assemble(refs[2], CFG)
    assert s.task_id is None and s.task.startswith("Order #W00")


def test_no_user_and_no_ticket_is_an_error(tmp_path):
    doc = json.loads(SOLO.read_text())
    doc["tasks"][0]["ticket"] = None
    (tmp_path / "solo.json").write_text(json.dumps(doc))
    clear_cache()
    ref = next(iter(scan([tmp_path])))
    with pytest.raises(InputError, match=r"simulations\[0\].messages: no task: no user message, and the task has no ticket"):
        Tau2Results().assemble(ref, CFG)


def test_not_tau2_files_are_left_to_others(tmp_path):
    (tmp_path / "tasks_only.json").write_text(json.dumps({"info": {"x": 1}, "tasks": [{"id": "1"}]}))
    (tmp_path / "list.json").write_text(json.dumps([{"simulations": [], "tasks": []}]))
    (tmp_path / "empty_run.json").write_text(json.dumps({"info": {"git_commit": "a"}, "tasks": [{"id": "1"}], "simulations": []}))
    clear_cache()
    report = ScanReport(keep=10)
    assert list(scan([tmp_path], report=report)) == []
    reasons = dict(report.examples)
    assert set(reasons) == {str(tmp_path / "tasks_only.json"), str(tmp_path / "list.json")}  # the empty run is owned
    assert "tau2: not an object with tasks and simulations lists" in reasons[str(tmp_path / "tasks_only.json")]


def test_broken_results_file_is_one_failing_session(tmp_path):
    data = AIRLINE.read_bytes()
    (tmp_path / "crashed.json").write_bytes(data[: len(data) // 2])
    clear_cache()
    refs = list(scan([tmp_path]))
    assert [(r.session_id, r.format) for r in refs] == [("crashed", "tau2")]
    with pytest.raises(InputError) as exc:
        Tau2Results().assemble(refs[0], CFG)
    assert exc.value.path == str(tmp_path / "crashed.json") and exc.value.line is not None


def test_oversized_simulation_fails_alone_and_oversized_file_fails_whole(tmp_path):
    from streamgrade.inputs import DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_SESSION_BYTES, configure_limits

    doc = results_doc(2, 1, turns=2)
    doc["simulations"][1]["messages"][1]["content"] = "z" * 50_000
    (tmp_path / "big.json").write_text(json.dumps(doc, indent=2))
    try:
        configure_limits(max_session_bytes=20_000, max_file_bytes=DEFAULT_MAX_FILE_BYTES)
        clear_cache()
        refs = {r.session_id: r for r in scan([tmp_path])}
        assert Tau2Results().assemble(refs["big.task0.trial0"], CFG).reward == 0.0
        with pytest.raises(InputError, match=r"simulations\[1\] is [\d,]+ bytes, over the limit of 20,000"):
            Tau2Results().assemble(refs["big.task1.trial0"], CFG)
        configure_limits(max_session_bytes=20_000, max_file_bytes=40_000)
        clear_cache()
        refs = list(scan([tmp_path]))
        assert [r.session_id for r in refs] == ["big"]  # starts like a tau2 file: one failing session
        with pytest.raises(InputError, match="over the limit of 40,000"):
            Tau2Results().assemble(refs[0], CFG)
    finally:
        configure_limits(max_session_bytes=DEFAULT_MAX_SESSION_BYTES, max_file_bytes=DEFAULT_MAX_FILE_BYTES)
        clear_cache()


def test_dir_run_with_a_broken_results_json_fails_each_simulation(tmp_path):
    shutil.copytree(VOICE, tmp_path / "run")
    meta = tmp_path / "run" / "results.json"
    meta.write_bytes(meta.read_bytes()[:1500])  # a crash while tau2 rewrote it
    clear_cache()
    refs = list(scan([tmp_path]))
    assert sorted(r.session_id for r in refs) == ["results", "run.simb81c2a55-3f4e-4d6a-9e10-aa0011223344"]
    for ref in refs:
        with pytest.raises(InputError) as exc:
            Tau2Results().assemble(ref, CFG)
        assert exc.value.path == str(meta) and exc.value.line is not None


def _edit(doc: dict, where: str, value) -> dict:
    obj = doc
    keys = [int(k) if k.isdigit() else k for k in where.split(".")]
    for k in keys[:-1]:
        obj = obj[k]
    if value is KeyError:
        del obj[keys[-1]]
    else:
        obj[keys[-1]] = value
    return doc


@pytest.mark.parametrize("where, value, field", [
    ("simulations.0.messages", KeyError, "simulations[0].messages"),
    ("simulations.0.messages", {"a": 1}, "simulations[0].messages"),
    ("simulations.0.messages.3", "text", "simulations[0].messages[3]"),
    ("simulations.0.messages.2.role", 5, "simulations[0].messages[2].role"),
    ("simulations.0.messages.2.role", "narrator", "simulations[0].messages[2].role"),
    ("simulations.0.messages.2.tool_calls.0.name", None, "simulations[0].messages[2].tool_calls[0].name"),
    ("simulations.0.messages.2.tool_calls", "x", "simulations[0].messages[2].tool_calls"),
    ("simulations.0.messages.1.content", 7, "simulations[0].messages[1].content"),
    ("simulations.0.reward_info", "yes", "simulations[0].reward_info"),
    ("simulations.0.reward_info.reward", "high", "simulations[0].reward_info.reward"),
    ("simulations.0.termination_reason", 3, "simulations[0].termination_reason"),
    ("simulations.0", [1, 2], "simulations[0]"),
])
def test_malformed_simulation_names_the_field(tmp_path, where, value, field):
    doc = _edit(json.loads(AIRLINE.read_text()), where, value)
    (tmp_path / "a.json").write_text(json.dumps(doc, indent=2))
    clear_cache()
    ref = next(r for r in scan([tmp_path]) if r.session_id == "a.task0.trial0" or r.locator == "index:0")
    with pytest.raises(InputError) as exc:
        Tau2Results().assemble(ref, CFG)
    assert exc.value.path == str(tmp_path / "a.json") and exc.value.field == field, str(exc.value)


def test_multi_tool_message_and_missing_ids(tmp_path):
    doc = results_doc(1, 1, turns=0)
    doc["simulations"][0]["messages"] += [
        {"role": "user", "content": "check both orders"},
        {"role": "assistant", "tool_calls": [{"name": "get_order_details", "arguments": {"order_id": "#1"}},
                                             {"name": "get_order_details", "arguments": {"order_id": "#2"}}]},
        {"role": "tool", "tool_messages": [{"id": "", "role": "tool", "content": "one"}, {"role": "tool", "content": "two"}]}]
    (tmp_path / "m.json").write_text(json.dumps(doc))
    clear_cache()
    s = Tau2Results().assemble(next(iter(scan([tmp_path]))), CFG)
    step = s.steps[-1]
    assert [c.id for c in step.tool_calls] == ["call_2_0", "call_2_1"]  # messages[2] has no call ids
    assert [(o.content, o.source_call_id) for o in step.observations] == [("one", "call_2_0"), ("two", "call_2_1")]


# --------------------------------------------------------------------------- fuzz

FUZZ = settings(max_examples=int(os.environ.get("STREAMGRADE_FUZZ_EXAMPLES", "12")) * 2, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
WRONG = st.sampled_from([None, True, 0, -1, 1.5, "", "x", [], [1, "a"], {}, {"a": None}, {"role": "tool"}])
TARGETS = [AIRLINE, TELECOM, VOICE / "results.json", next((VOICE / "simulations").iterdir())]


def _paths(obj, prefix=()):
    out = []
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else []
    for k, v in items:
        out.append((*prefix, k))
        out.extend(_paths(v, (*prefix, k)))
    return out


@pytest.mark.parametrize("target", TARGETS, ids=[p.name[:20] for p in TARGETS])
@FUZZ
@given(data=st.data())
def test_fuzz_mutations_give_input_errors_naming_the_file(target, data):
    """Truncations, byte flips and field mutations of a tau2 file: every session found
    assembles, or fails with an InputError naming the mutated file (and a line for a JSON
    syntax error); scan never raises."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "d"
        shutil.copytree(DATA, root)
        bad = root / target.relative_to(DATA)
        raw = bad.read_bytes()
        kind = data.draw(st.sampled_from(["truncate", "flip", "field", "field", "field"]))
        if kind == "truncate":
            raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
        elif kind == "flip":
            i = data.draw(st.integers(0, len(raw) - 1))
            raw = raw[:i] + bytes([raw[i] ^ data.draw(st.integers(1, 255))]) + raw[i + 1:]
        else:
            doc = json.loads(raw)
            paths = _paths(doc)
            p = paths[data.draw(st.integers(0, len(paths) - 1))]
            value = data.draw(WRONG)
            parent = doc
            for k in p[:-1]:
                parent = parent[k]
            if data.draw(st.booleans()):
                del parent[p[-1]]
            else:
                parent[p[-1]] = value
            raw = json.dumps(doc).encode()
        bad.write_bytes(raw)
        clear_cache()
        for ref in scan([root]):
            if ref.format != "tau2":
                continue
            try:
                FORMATS["tau2"].assemble(ref, CFG)
            except InputError as exc:
                assert exc.path in ref.files and str(exc).startswith(exc.path), str(exc)
                try:
                    json.loads(Path(exc.path).read_bytes())
                except ValueError:
                    assert exc.line is not None or "empty" in exc.message, str(exc)


# --------------------------------------------------------------------------- CLI


def test_cli_grades_tau2_files(tmp_path):
    """Before this reader, a tau2 results file was 'not recognised' (JSON without session
    rows); now every simulation is graded, and nothing is left unrecognised (--strict)."""
    data = tmp_path / "data"
    shutil.copytree(DATA, data)
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMGRADE_", "OPENAI_", "ANTHROPIC_"))}
    res = subprocess.run([sys.executable, "-m", "streamgrade", "grade", str(data), "-o", str(out), "--no-progress",
                          "--strict"], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "7 graded, 0 failed" in res.stderr and "not recognised" not in res.stderr
    recs = {r["session_id"]: r for r in map(json.loads, (out / "exports" / "scores.jsonl").read_text().splitlines())}
    assert set(recs) == IDS and {r["source_format"] for r in recs.values()} == {"tau2"}
    r = recs["airline_gpt-4.1.task0.trial0"]
    assert (r["reward"], r["termination"], r["task_id"], r["model"], r["metrics"]["cost_usd"]) == (
        1.0, "user_stop", "0", "gpt-4.1-2025-04-14", 0.0218)
    assert recs["airline_gpt-4.1.task0.trial1"]["reward"] is None
    res = subprocess.run([sys.executable, "-m", "streamgrade", "grade", str(data), "-o", str(out), "--no-progress"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0 and "7 unchanged" in res.stderr
