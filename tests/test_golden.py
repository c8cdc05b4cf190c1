"""Golden-path verification (streamgrade/golden.py): the evaluator on handmade cases, the
readers keeping the reference actions (tau-bench corpus row, tau2 fixtures) out of what
judges, session files and exports show, and the ``golden`` field of the records."""

from __future__ import annotations

import json
import os
from pathlib import Path

import msgspec
import pytest
import respx

from conftest import schema_answerer
from streamgrade.chunking import chunk_session
from streamgrade.config import load_config
from streamgrade.formats import FORMATS
from streamgrade.formats._tau2_run import clear_cache
from streamgrade.formats.openai_chat import OpenAIChat
from streamgrade.golden import FIELDS, compare, evaluate, normalise, reference_actions
from streamgrade.judges.heuristic import HeuristicJudge
from streamgrade.judges.signals import features as agent_signals
from streamgrade.judges.openai import OpenAIJudge
from streamgrade.models import Session, SessionRef, Step, StepToolCall
from streamgrade.sources.scan import ScanReport, scan
from conftest import session_dir
from streamgrade.sinks.report import build_reports

TAU_FILE = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "tau-bench" / "gpt-4o-airline.json"
if not TAU_FILE.is_file():
    TAU_FILE = Path("/work/shared/corpus/tau-bench/gpt-4o-airline.json")
TAU2 = Path(__file__).resolve().parent / "data" / "tau2"
CFG = load_config(env={})
MARK = "GOLDEN-REFERENCE-SECRET-7731"


def ref(*actions) -> list[dict]:
    return reference_actions([{"name": n, "arguments": a, **extra} for n, a, *rest in actions
                              for extra in [rest[0] if rest else {}]])


def calls(*items) -> list[dict]:
    return [{"name": n, "arguments": a, "requestor": r[0] if r else "assistant"} for n, a, *r in items]


# --- the evaluator on handmade cases -------------------------------------------------------------


def test_exact_in_order_and_any_order_differ():
    reference = ref(("get_user", {"id": "u1"}), ("cancel", {"rid": "R1"}))
    exact = compare(reference, calls(("get_user", {"id": "u1"}), ("cancel", {"rid": "R1"})))
    assert (exact["exact"], exact["in_order"], exact["any_order"]) == (True, True, True)
    extra = compare(reference, calls(("get_user", {"id": "u1"}), ("search", {}), ("cancel", {"rid": "R1"})))
    assert (extra["exact"], extra["in_order"], extra["any_order"]) == (False, True, True)
    swapped = compare(reference, calls(("cancel", {"rid": "R1"}), ("get_user", {"id": "u1"})))
    assert (swapped["exact"], swapped["in_order"], swapped["any_order"]) == (False, False, True)
    missing = compare(reference, calls(("get_user", {"id": "u1"}), ("get_user", {"id": "u1"})))
    assert (missing["exact"], missing["in_order"], missing["any_order"]) == (False, False, False)
    # any-order counts a multiset: one call cannot stand for two reference actions
    twice = compare(ref(("get", {}), ("get", {})), calls(("get", {})))
    assert (twice["any_order"], twice["recall"], twice["precision"]) == (False, 0.5, 1.0)
    assert list(exact) == list(FIELDS)


def test_argument_normalisation():
    assert normalise(" New  York ") == normalise("new york")
    assert normalise("250") == normalise(250) == normalise(250.0)
    assert normalise('{"a": [1, "X"]}') == normalise({"a": [1.0, "x"]})
    assert normalise(True) != normalise(1)  # booleans are not numbers
    reference = ref(("book", {"user_id": "Mia_Li", "amount": 250, "flights": [{"date": "2024-05-20"}], "insurance": "no"}))
    run = calls(("book", {"user_id": " mia_li ", "amount": "250.0", "flights": '[{"date": "2024-05-20"}]', "insurance": "yes"}))
    g = compare(reference, run)
    assert g["arg_agreement"] == 0.75 and g["n_matched"] == 0 and g["precision"] == 0.0
    run[0]["arguments"]["insurance"] = "NO"
    g = compare(reference, run)
    assert (g["arg_agreement"], g["precision"], g["recall"]) == (1.0, 1.0, 1.0)


def test_compare_args_restricts_the_keys():
    reference = ref(("search", {"origin": "JFK", "date": "2024-05-20"}, {"compare_args": ["origin"]}))
    g = compare(reference, calls(("search", {"origin": "jfk", "date": "2024-06-01"})))
    assert (g["arg_agreement"], g["recall"]) == (1.0, 1.0)
    g = compare(ref(("search", {"origin": "JFK"}, {"compare_args": []})), calls(("search", {"origin": "LAX"})))
    assert g["recall"] == 1.0  # no key compared: the name is enough (tau2's compare_with_tool_call)


def test_precision_recall_with_an_optimal_one_to_one_matching():
    # a greedy pass in reference order gives the first action the only call the second can take
    reference = ref(("get", {"id": 1}, {"compare_args": []}), ("get", {"id": 1}))
    g = compare(reference, calls(("get", {"id": 1}), ("get", {"id": 2}), ("think", {})))
    assert (g["n_matched"], g["recall"], g["precision"]) == (2, 1.0, round(2 / 3, 6))
    # argument agreement pairs same-name calls to maximise agreement, not first-come
    g = compare(ref(("set", {"a": 1, "b": 2})), calls(("set", {"a": 9, "b": 9}), ("set", {"a": 1, "b": 9})))
    assert g["arg_agreement"] == 0.5


def test_empty_reference_and_no_calls():
    g = compare(ref(), calls(("get", {})))
    assert (g["exact"], g["in_order"], g["any_order"], g["recall"], g["precision"]) == (False, True, True, None, 0.0)
    g = compare(ref(), [])
    assert (g["exact"], g["recall"], g["precision"], g["arg_agreement"]) == (True, None, None, None)
    g = compare(ref(("cancel", {"rid": "R"})), [])
    assert (g["exact"], g["in_order"], g["recall"], g["precision"], g["arg_agreement"]) == (False, False, 0.0, None, None)


def test_malformed_references_are_not_scored():
    assert reference_actions(None) is None and reference_actions({"name": "x"}) is None
    assert reference_actions([{"kwargs": {}}]) is None  # no name
    assert reference_actions([{"name": "x", "kwargs": "a=1"}]) is None
    assert reference_actions([{"name": "x", "compare_args": "a"}]) is None
    assert reference_actions([{"name": "x", "kwargs": None}]) == [
        {"name": "x", "arguments": {}, "requestor": "assistant", "compare_args": None}]


def _session(steps: list[Step], reference) -> Session:
    return Session(ref=SessionRef("s", "t", "/x", ("/x",)), task="t", kind="agent", steps=steps,
                   reference_actions=reference_actions(reference))


def test_user_calls_count_only_for_user_requestor_references():
    steps = [Step(source="user", message="hi", tool_calls=[StepToolCall(id="u", name="toggle", arguments={})]),
             Step(source="agent", tool_calls=[StepToolCall(id="a", name="lookup", arguments='{"p": "1"}')])]
    g = evaluate(_session(steps, [{"name": "lookup", "arguments": {"p": 1}}]))
    assert (g["n_calls"], g["exact"], g["recall"]) == (1, True, 1.0)  # the user's call is not the agent's
    g = evaluate(_session(steps, [{"name": "toggle", "arguments": {}, "requestor": "user"}]))
    assert (g["n_calls"], g["in_order"], g["recall"], g["precision"]) == (2, True, 1.0, 0.5)
    g = evaluate(_session(steps, [{"name": "toggle", "arguments": {}}]))  # the agent never toggled
    assert (g["any_order"], g["recall"]) == (False, 0.0)
    assert evaluate(_session(steps, None)) is None


# --- readers -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tau_rows() -> list[dict]:
    if not TAU_FILE.is_file():
        pytest.skip(f"shared corpus not found: {TAU_FILE}")
    return json.loads(TAU_FILE.read_text(encoding="utf-8"))


def _tau_session(folder: Path) -> list[Session]:
    fmt = OpenAIChat()
    return [fmt.assemble(r, CFG) for r in fmt.find(folder, sorted(os.listdir(folder)))]


def test_tau_bench_reader_keeps_the_reference_from_a_corpus_row(tau_rows, tmp_path):
    row = tau_rows[0]
    (tmp_path / "tau.json").write_text(json.dumps([row]))
    (s,) = _tau_session(tmp_path)
    want = [{"name": a["name"], "arguments": a["kwargs"], "requestor": "assistant", "compare_args": None}
            for a in row["info"]["task"]["actions"]]
    assert s.reference_actions == want and want[0]["name"] == "book_reservation"
    assert "reference_actions" not in s.meta and "actions" not in json.dumps(s.meta)
    g = evaluate(s)
    # the run booked twice, the first time with nonfree_baggages 1 where the reference has 0
    assert (g["n_reference"], g["n_calls"], g["any_order"], g["recall"]) == (1, 8, True, 0.0)
    assert g["arg_agreement"] == pytest.approx(10 / 11, abs=1e-6)


def test_tau2_reader_keeps_evaluation_criteria_actions():
    clear_cache()
    refs = list(scan([TAU2], report=ScanReport(keep=5)))
    found = {r.session_id: FORMATS[r.format].assemble(r, CFG) for r in refs}
    s = found["airline_gpt-4.1.task0.trial0"]
    assert s.reference_actions == [{"name": "get_reservation_details", "arguments": {"reservation_id": "REFERENCE-ACTION-SECRET"},
                                    "requestor": "assistant", "compare_args": None}]
    g = evaluate(s)
    assert (g["n_reference"], g["any_order"], g["recall"]) == (1, True, 0.0)  # called, on another reservation
    assert evaluate(found["airline_gpt-4.1.task1.trial0"])["n_reference"] == 0  # actions: [] is a reference
    telecom = next(v for k, v in found.items() if k.startswith("telecom") and k.endswith("trial0"))
    g = evaluate(telecom)  # the reference's requestor is the user: the user's own calls count
    assert telecom.reference_actions[0]["requestor"] == "user"
    assert (g["any_order"], g["recall"], g["n_calls"]) == (True, 1.0, 5)
    for v in found.values():  # the reference never reaches what a judge or a file shows
        assert "SECRET" not in msgspec.json.encode([v.task, v.steps, v.transcript, v.meta, v.tools]).decode()


# --- the judges never see it ---------------------------------------------------------------------


def _marked(row: dict) -> dict:
    row = json.loads(json.dumps(row))
    row["info"]["task"]["actions"] = [{"name": "cancel_reservation", "kwargs": {"reservation_id": MARK}}]
    return row


@pytest.mark.asyncio
async def test_llm_judge_request_has_no_reference(tau_rows, tmp_path):
    (tmp_path / "tau.json").write_text(json.dumps([_marked(tau_rows[3])]))
    (s,) = _tau_session(tmp_path)
    assert s.reference_actions[0]["arguments"]["reservation_id"] == MARK
    cfg = load_config(env={}, overrides={"openai": {"base_url": "http://judge.test/v1", "http_client": "httpx"}})
    verdict = {"summary": "s", **{k: {"score": 50, "confidence": 0.5, "reason": "r"} for k in ("outcome", "process", "efficiency")}}
    bodies: list = []
    with respx.mock:
        respx.post("http://judge.test/v1/chat/completions").mock(
            side_effect=schema_answerer(bodies, verdict, {"summary": "so far", "progress": [], "problems": []}))
        judge = OpenAIJudge(cfg, api_key="k")
        await judge.grade(s, chunk_session(s, cfg.chunking))
        await judge.aclose()
    sent = json.dumps(bodies)
    assert bodies and s.task[:40] in sent  # the judge got the session ...
    assert MARK not in sent and "reference_actions" not in sent  # ... but not the reference


@pytest.mark.asyncio
async def test_heuristic_judge_does_not_depend_on_the_reference(tau_rows, tmp_path):
    (tmp_path / "tau.json").write_text(json.dumps([_marked(tau_rows[3])]))
    (s,) = _tau_session(tmp_path)
    inputs = json.dumps(agent_signals(s))
    chunks = chunk_session(s, CFG.chunking)
    assert MARK not in inputs and all(MARK not in line for c in chunks for line in c.lines)
    with_ref = await HeuristicJudge(CFG).grade(s, chunks)
    without = await HeuristicJudge(CFG).grade(msgspec.structs.replace(s, reference_actions=None), chunks)
    assert msgspec.json.encode(with_ref) == msgspec.json.encode(without)


# --- records, session files and exports ----------------------------------------------------------


@pytest.mark.asyncio
async def test_records_carry_golden_and_no_file_shows_the_reference(tau_rows, tmp_path):
    from streamgrade.pipeline import Pipeline, scan_source

    data = tmp_path / "data"
    data.mkdir()
    rows = [_marked(tau_rows[3]), tau_rows[0]]
    (data / "tau.json").write_text(json.dumps(rows))
    (data / "plain.json").write_text(json.dumps([{"messages": [{"role": "user", "content": "do x"},
                                                               {"role": "assistant", "content": "done"}]}]))
    out = tmp_path / "out"
    stats = await Pipeline(CFG, out, HeuristicJudge(CFG)).run(scan_source([data], exclude=[out]))
    assert stats.graded == 3
    recs = {r["session_id"]: r for r in map(json.loads, (out / "exports" / "scores.jsonl").read_text().splitlines())}
    marked = recs["tau.task3.trial0"]
    assert set(marked["golden"]) == set(FIELDS) and marked["golden"]["n_reference"] == 1
    assert marked["golden"]["recall"] == 0.0 and isinstance(marked["score"], float)
    assert recs["tau.task0.trial0"]["golden"]["any_order"] is True
    assert recs["plain.row0"]["golden"] is None  # no reference, no golden metrics
    build_reports(out)  # the pages: `streamgrade report OUT`
    page = (session_dir(out, "tau.task0.trial0") / "results.html").read_text()
    assert "golden path" in page and "any order yes" in page and "recall 0.00" in page
    assert "golden path" not in (session_dir(out, "plain.row0") / "results.html").read_text()
    for path in out.rglob("*"):  # scores, results.json, sft.json, reports, training exports
        if path.is_file():
            assert MARK.encode() not in path.read_bytes(), path


def test_a_toml_mapping_names_the_reference_and_may_join_it(tmp_path):
    from streamgrade.formats import configure_formats

    doc = {"tasks": [{"id": "t-1", "goal": "Move me", "expected": [{"name": "update", "arguments": {"day": "20"}}]}],
           "runs": [{"task_id": "t-1", "messages": [{"role": "user", "content": "Move me to May 20"},
                                                    {"role": "assistant", "content": None, "tool_calls": [
                                                        {"id": "c1", "name": "update", "arguments": {"day": 20}}]},
                                                    {"role": "tool", "tool_call_id": "c1", "content": "ok"}]}]}
    (tmp_path / "bench.json").write_text(json.dumps(doc))
    cfg = load_config(env={}, overrides={"formats": {"mappings": [
        {"name": "bench", "files": ["bench.json"], "rows": "runs", "task_id": "task_id",
         "task": "tasks[id=task_id].goal", "reference_actions": "tasks[id=task_id].expected"}]}})
    configure_formats(cfg)
    try:
        (s,) = [FORMATS[r.format].assemble(r, cfg) for r in scan([tmp_path], report=ScanReport())]
    finally:
        configure_formats(load_config(env={}))
    assert s.task == "Move me" and s.reference_actions[0]["arguments"] == {"day": "20"}
    assert evaluate(s) == {"exact": True, "in_order": True, "any_order": True, "arg_agreement": 1.0,
                           "precision": 1.0, "recall": 1.0, "n_reference": 1, "n_calls": 1, "n_matched": 1}


def test_openai_chat_reference_path_is_configurable(tau_rows, tmp_path):
    (tmp_path / "tau.json").write_text(json.dumps([tau_rows[0]]))
    cfg = load_config(env={}, overrides={"formats": {"openai_chat": {"reference_actions": ""}}})
    fmt = OpenAIChat()
    (s,) = [fmt.assemble(r, cfg) for r in fmt.find(tmp_path, ["tau.json"])]
    assert s.reference_actions is None and evaluate(s) is None


def test_a_broken_reference_gives_no_golden_rather_than_an_error(caplog):
    s = _session([Step(source="agent", tool_calls=[StepToolCall(id="a", name="x", arguments={})])], [{"name": "x"}])
    s.reference_actions = [{"name": "x"}]  # not normalised: no requestor key
    assert evaluate(s) is None and "golden-path evaluation failed" in caplog.text
