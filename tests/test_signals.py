"""The structural features of the offline judge (judges/signals.py) and its weights file."""

from __future__ import annotations

import json

from streamgrade.judges.heuristic import WEIGHTS_PATH, probability
from streamgrade.judges.signals import EXCLUDED, FEATURES, SIGNS, exit_codes, features
from streamgrade.models import ChatMessage, Session, SessionRef, ToolCall, ToolFunction

REF = SessionRef(session_id="s", format="openai-chat", path="s.json", files=("s.json",))


def _run(results: list[str], kind: str = "agent", termination: str | None = None) -> Session:
    tr = [ChatMessage(role="user", content="Do it.")]
    for i, out in enumerate(results):
        tr.append(ChatMessage(role="assistant", tool_calls=[ToolCall(id=f"c{i}", function=ToolFunction("bash", f'{{"n": {i}}}'))]))
        tr.append(ChatMessage(role="tool", tool_call_id=f"c{i}", content=out))
    tr.append(ChatMessage(role="assistant", content="Done."))
    return Session(ref=REF, task="Do it.", kind=kind, transcript=tr, termination=termination)


def test_exit_codes_only_from_the_harness_places():
    assert exit_codes("<returncode>2</returncode>\n<output>exit code 0</output>") == [2]
    assert exit_codes("make: ok\n[Command finished with exit code 1]\n") == [1]
    assert exit_codes("echo 'exit code 0' printed in the middle\nmore output") == []


def test_error_results_repeats_and_end_of_run():
    ok = features(_run(["<returncode>0</returncode>\nfine", "all good"]))
    bad = features(_run(["Traceback (most recent call last):\n  boom", "Traceback (most recent call last):\n  boom",
                         "<returncode>1</returncode>\nfailed"], termination="max_steps"))
    assert ok["tool_error_share"] == 0 and bad["tool_error_share"] == 1
    assert bad["repeat_error"] == 1 and bad["last_result_error"] == 1 and bad["final_exit_nonzero"] == 1
    assert bad["stopped_bad"] == 1 and ok["stopped_bad"] == 0
    assert ok["ends_with_answer"] == 1 and ok["final_empty"] == 0
    assert all(0 <= v <= 1 for v in bad.values()) and set(bad) == set(FEATURES)


def test_length_is_survival_for_episodes_and_cost_for_agents():
    short, long = _run(["x"]), _run(["x"] * 40)
    assert features(long)["length_credit"] < features(short)["length_credit"]
    ep_short, ep_long = _run(["x"], kind="episode"), _run(["x"] * 40, kind="episode")
    assert features(ep_long)["length_credit"] > features(ep_short)["length_credit"]


def test_weights_file_matches_features_and_signs():
    doc = json.loads(WEIGHTS_PATH.read_text())
    assert doc["features"] == list(FEATURES)
    for f, w in doc["weights"].items():
        assert w * SIGNS[f] >= 0, f  # every weight keeps its expected direction
        assert not (f in EXCLUDED and w), f
    p_ok, _ = probability(features(_run(["fine"])))
    p_bad, _ = probability(features(_run(["Error: no such file"] * 6)))
    assert 0 < p_bad < p_ok < 1
