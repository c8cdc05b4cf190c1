"""The mapping layer (formats/mapping.py): field paths, rows, content parts, every tool-call
shape, messages of three APIs to canonical steps, and the OpenAI chat view."""

from __future__ import annotations

import json

import pytest

from streamgrade.errors import InputError
from streamgrade.formats.mapping import (agent_session, chat_view, get, messages_to_steps, rows_at, text_of,
                                         tool_call)
from streamgrade.models import SessionRef


def fail(field, message):
    return InputError("dump.json", message, field=field or None)


REF = SessionRef(session_id="s", format="x", path="dump.json", files=("dump.json",))


def test_get_paths_indices_and_joins():
    doc = {"tasks": [{"id": "t1", "description": "book"}, {"id": 7, "description": "cancel"}],
           "simulations": [{"task_id": "t1", "messages": [{"content": "hi"}]}, {"task_id": "7"}]}
    sim0, sim1 = doc["simulations"]
    assert get(sim0, "messages.0.content") == "hi" and get(sim0, "messages.-1.content") == "hi"
    assert get(sim0, "tasks[id=task_id].description", root=doc) == "book"
    assert get(sim1, "tasks[id=task_id].description", root=doc) == "cancel"  # "7" joins 7
    assert get(sim0, "nope.deeper") is None and get(sim0, "messages.5") is None


def test_rows_at_lists_keyed_objects_and_nested_keys():
    assert rows_at([1, 2]) == [(None, 1), (None, 2)]
    assert rows_at({"a": 1}) == [(None, {"a": 1})]
    assert rows_at({"q1": {"x": 1}, "q2": {"x": 2}}, "*") == [("q1", {"x": 1}), ("q2", {"x": 2})]
    assert rows_at({"simulations": [{"id": 1}]}, "simulations") == [(None, {"id": 1})]
    assert rows_at({"results": {"a": {"y": 1}}}, "results.*") == [("a", {"y": 1})]
    assert rows_at({"x": 1}, "simulations") == []


@pytest.mark.parametrize("call, args", [
    ({"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}, '{"a": 1}'),  # OpenAI
    ({"id": "c1", "name": "f", "arguments": {"a": 1}}, {"a": 1}),  # flat, tau2-bench
    ({"id": "c1", "name": "f", "arguments": '{"a": 1}'}, '{"a": 1}'),  # flat, string arguments kept verbatim
    ({"type": "tool_use", "id": "c1", "name": "f", "input": {"a": 1}}, {"a": 1}),  # Anthropic
    ({"type": "function_call", "call_id": "c1", "name": "f", "arguments": '{"a": 1}'}, '{"a": 1}'),  # Responses
    ({"tool_call_id": "c1", "function_name": "f", "arguments": {"a": 1}}, {"a": 1}),  # ATIF
    ({"id": "c1", "name": "f", "arguments": "ls -la"}, "ls -la"),  # a command, kept as text
])
def test_tool_call_shapes(call, args):
    c = tool_call(call, fail, "m.tool_calls[0]", "call_0_0")
    assert (c.id, c.name, c.arguments) == ("c1", "f", args)


def test_tool_call_without_name_names_the_field():
    with pytest.raises(InputError, match=r"m.tool_calls\[0\].function.name: missing tool name"):
        tool_call({"id": "c", "function": {"arguments": "{}"}}, fail, "m.tool_calls[0]", "x")


def test_content_parts():
    parts = [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "data:"}},
             {"type": "thinking", "thinking": "hmm"}, {"type": "tool_use", "id": "x", "name": "f", "input": {}}, "b"]
    assert text_of(parts, fail, "c") == "a\n[image]\nb"
    with pytest.raises(InputError, match=r"c\[0\]: expected a content part"):
        text_of([5], fail, "c")


def test_content_part_type_that_is_not_a_string():
    """A part whose ``type`` is a list or object (mutated dumps) is an unknown part, not a crash."""
    assert text_of([{"type": [], "text": "a"}, {"type": {"x": 1}}], fail, "content") == "a\n[part]"
    steps = messages_to_steps([{"role": "assistant", "content": [{"type": ["thinking"], "thinking": "t"}, "b"]}], fail)
    assert steps[0].message == "[part]\nb" and steps[0].reasoning is None


def test_openai_messages_link_results_to_their_calls():
    msgs = [{"role": "system", "content": "policy"}, {"role": "user", "content": "do it"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {"id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "b", "content": "B"},
            {"role": "tool", "tool_call_id": "a", "content": "A"},
            {"role": "assistant", "content": "done"}]
    steps = messages_to_steps(msgs, fail)
    assert [s.source for s in steps] == ["system", "user", "agent", "agent"]
    assert [(o.source_call_id, o.content) for o in steps[2].observations] == [("b", "B"), ("a", "A")]
    view = chat_view(steps)
    assert [(m.role, m.tool_call_id) for m in view] == [
        ("system", None), ("user", None), ("assistant", None), ("tool", "a"), ("tool", "b"), ("assistant", None)]


def test_anthropic_blocks_tool_use_and_tool_result():
    msgs = [{"role": "user", "content": [{"type": "text", "text": "list files"}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "ls"}, {"type": "text", "text": "ok"},
                                              {"type": "tool_use", "id": "tu1", "name": "bash", "input": {"cmd": "ls"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu1",
                                          "content": [{"type": "text", "text": "a.txt"}], "is_error": False}]}]
    steps = messages_to_steps(msgs, fail)
    assert [s.source for s in steps] == ["user", "agent"]  # the tool_result is not a user turn
    agent = steps[1]
    assert (agent.message, agent.reasoning, agent.tool_calls[0].arguments) == ("ok", "ls", {"cmd": "ls"})
    assert agent.observations[0].content == "a.txt" and agent.observations[0].source_call_id == "tu1"


def test_sharegpt_with_function_call_and_observation():
    msgs = [{"from": "human", "value": "weather?"},
            {"from": "function_call", "value": json.dumps({"name": "weather", "arguments": {"city": "Paris"}})},
            {"from": "observation", "value": "sunny"}, {"from": "gpt", "value": "It is sunny."}]
    steps = messages_to_steps(msgs, fail, "conversations")
    assert [s.source for s in steps] == ["user", "agent", "agent"]
    assert steps[1].tool_calls[0].name == "weather" and steps[1].observations[0].content == "sunny"


def test_results_without_ids_pair_by_name_then_order_and_orphans_are_feedback():
    msgs = [{"role": "user", "content": "x"},
            {"role": "assistant", "tool_calls": [{"function": {"name": "f"}}, {"function": {"name": "g"}}]},
            {"role": "tool", "name": "g", "content": "G"}, {"role": "tool", "content": "F"},
            {"role": "tool", "content": "late"}]
    steps = messages_to_steps(msgs, fail)
    calls = {c.name: c.id for c in steps[1].tool_calls}
    assert {o.content: o.source_call_id for o in steps[1].observations} == {"G": calls["g"], "F": calls["f"]}
    assert steps[-1].source == "environment" and steps[-1].message == "late"
    assert [m.role for m in chat_view(steps)][-1] == "user"


def test_errors_name_the_message_field():
    with pytest.raises(InputError, match=r"messages\[1\].role: missing role"):
        messages_to_steps([{"role": "user", "content": "a"}, {"content": "b"}], fail)
    with pytest.raises(InputError, match=r"messages\[0\].role: unknown role 'narrator'"):
        messages_to_steps([{"role": "narrator", "content": "a"}], fail)


def test_agent_session_needs_a_task_but_not_a_user_message():
    steps = messages_to_steps([{"role": "assistant", "content": "Hello, how can I help?"}], fail)
    with pytest.raises(InputError, match="no task"):
        agent_session(REF, steps)
    s = agent_session(REF, steps, task="Book a flight", task_id="t1")
    assert s.task == "Book a flight" and s.transcript[0].role == "assistant" and s.turns == 1
