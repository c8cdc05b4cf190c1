"""The mapping layer (formats/mapping.py): field paths, rows, content parts, every tool-call
shape, messages of three APIs to canonical steps, and the OpenAI chat view."""

from __future__ import annotations

import json

import pytest

from streamgrade.errors import InputError
from streamgrade.formats.mapping import (agent_session, attach, chat_view, feedback, get, messages_to_steps,
                                         rows_at, text_of, tool_call)
from streamgrade.models import Observation, SessionRef, Step, StepToolCall


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


def test_feedback_answers_the_latest_turn_or_is_its_unlinked_feedback():
    steps = [Step(source="user", message="task")]
    assert not feedback(steps, Observation(content="early")) and len(steps) == 1  # no agent step yet
    steps.append(Step(source="agent", message="run it", tool_calls=[StepToolCall(id="c1", name="bash")]))
    assert feedback(steps, Observation(content="<returncode>0</returncode>"))
    assert steps[-1].observations[0].source_call_id == "c1"
    steps.append(Step(source="agent", message="no action block"))  # a format error follows
    assert feedback(steps, Observation(content="Please always provide EXACTLY ONE action"))
    assert steps[-1].observations[0].source_call_id is None and len(steps[1].observations) == 1
    view = chat_view(steps)
    assert [m.role for m in view] == ["user", "assistant", "tool", "assistant", "user"]
    assert view[-1].content.startswith("Please always")


def test_user_tool_calls_of_dual_control_runs():
    """A user step may carry its own tool calls (the simulated user acting on its device):
    their results attach to it, not to the agent's pending calls, and the chat view shows
    calls and results as user text (chat messages have no user tool calls)."""
    steps = [Step(source="agent", tool_calls=[StepToolCall(id="a1", name="lookup")]),
             Step(source="user", message="ok, checking", tool_calls=[StepToolCall(id="", name="check_status_bar"),
                                                                     StepToolCall(id="u2", name="toggle", arguments={"on": False})])]
    attach(steps, Observation(content="Airplane mode", source_call_id=None), source="user")
    attach(steps, Observation(content="Error: stuck", source_call_id="u2", is_error=True), source="user")
    attach(steps, Observation(content="found", source_call_id="a1"))
    assert [o.content for o in steps[1].observations] == ["Airplane mode", "Error: stuck"]
    assert steps[1].observations[0].source_call_id == "" and steps[0].observations[0].content == "found"
    view = chat_view(steps)
    assert [(m.role, m.content) for m in view[2:]] == [
        ("user", 'ok, checking\n[calls check_status_bar({})]\n[calls toggle({"on": false})]'),
        ("user", "[check_status_bar result] Airplane mode"),
        ("user", "[toggle error] Error: stuck")]
    assert view[0].tool_calls[0].function.name == "lookup" and (view[1].role, view[1].tool_call_id) == ("tool", "a1")
    attach(steps, Observation(content="stray"), source="user")  # every user call answered: feedback
    assert steps[-1].source == "environment" and steps[-1].message == "stray"


def test_inspect_ai_messages_tool_calls_errors_reasoning_and_server_tools():
    """Inspect AI's ChatMessage shapes (inspect_ai/model/_chat_message.py, _util/content.py,
    tool/_tool_call.py): the function as a string, tool results named by ``function`` with
    an ``error`` object, reasoning parts (redacted ones read through their summary), the
    model of an assistant message, server-side tool use carrying its result, data parts."""
    msgs = [
        {"role": "user", "content": [{"type": "text", "text": "list files"}, {"type": "image", "image": "data:..."}]},
        {"role": "assistant", "model": "gpt-4o", "content": [
            {"type": "reasoning", "reasoning": "think first", "signature": "sig"},
            {"type": "reasoning", "reasoning": "opaque==", "redacted": True, "summary": "short summary"},
            {"type": "data", "data": {"x": 1}},
            {"type": "text", "text": "running ls"}],
         "tool_calls": [{"id": "c1", "function": "bash", "arguments": {"cmd": "ls"}, "type": "function"},
                        {"id": "c2", "function": "bash", "arguments": {"cmd": "cat x"}, "parse_error": None}]},
        {"role": "tool", "tool_call_id": "c1", "function": "bash", "content": "a\nb"},
        {"role": "tool", "tool_call_id": "c2", "function": "bash", "content": "",
         "error": {"type": "file_not_found", "message": "x: no such file"}},
        {"role": "assistant", "content": [
            {"type": "tool_use", "tool_type": "web_search", "id": "ws1", "name": "web_search",
             "arguments": "{\"query\": \"q\"}", "result": "3 hits", "error": None},
            {"type": "text", "text": "done"}]},
    ]
    steps = messages_to_steps(msgs, fail)
    assert [s.source for s in steps] == ["user", "agent", "agent"]
    assert steps[0].message == "list files\n[image]"
    agent = steps[1]
    assert agent.model == "gpt-4o" and agent.message == "running ls"
    assert agent.reasoning == "think first\nshort summary"
    assert [(c.id, c.name, c.arguments) for c in agent.tool_calls] == [("c1", "bash", {"cmd": "ls"}),
                                                                        ("c2", "bash", {"cmd": "cat x"})]
    assert [(o.source_call_id, o.content, o.is_error) for o in agent.observations] == [
        ("c1", "a\nb", None), ("c2", "Error: x: no such file", True)]
    server = steps[2]
    assert server.message == "done" and server.model is None
    assert [(c.id, c.name, c.arguments) for c in server.tool_calls] == [("ws1", "web_search", "{\"query\": \"q\"}")]
    assert [(o.source_call_id, o.content) for o in server.observations] == [("ws1", "3 hits")]
    view = chat_view(steps)
    assert [m.role for m in view] == ["user", "assistant", "tool", "tool", "assistant", "tool"]
    assert view[3].tool_call_id == "c2" and view[3].content == "Error: x: no such file"


def test_tool_result_error_keeps_its_output_and_legacy_tool_error():
    steps = messages_to_steps([
        {"role": "assistant", "tool_calls": [{"id": "a", "function": "bash", "arguments": {}},
                                             {"id": "b", "function": "bash", "arguments": {}}]},
        {"role": "tool", "tool_call_id": "a", "content": "partial output",
         "error": {"type": "output_limit", "message": "limit exceeded"}},
        {"role": "tool", "tool_call_id": "b", "content": "", "tool_error": "timed out"},
    ], fail)
    assert [(o.content, o.is_error) for o in steps[0].observations] == [
        ("partial output\nError: limit exceeded", True), ("Error: timed out", True)]


def test_responses_item_ids_link_by_call_id_and_odd_types_are_not_crashes():
    # a Responses function_call has its own item id ("fc_...") and the call_id its output names
    call = tool_call({"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f", "arguments": "{}"},
                     fail, "item", "d")
    assert call.id == "call_1"
    # a part whose type is not a string is a part without a type, not a crash
    assert text_of([{"type": ["x"], "text": "hi"}, {"type": {}}], fail, "c") == "hi\n[part]"
    from streamgrade.formats.mapping import reasoning_of
    assert reasoning_of([{"type": ["thinking"], "thinking": "no"}]) is None


def test_responses_items_to_steps():
    from streamgrade.formats.responses import ResponsesSteps
    b = ResponsesSteps()
    items = [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "be brief"}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "fix it"}]},
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "look first"}], "encrypted_content": "x"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Looking."}]},
        {"type": "function_call", "name": "shell", "namespace": "mcp", "arguments": '{"command":["ls"]}', "call_id": "c1"},
        {"type": "custom_tool_call", "name": "apply_patch", "input": "*** Begin Patch", "call_id": "c2"},
        {"type": "function_call_output", "call_id": "c1", "output": {"content": "denied", "success": False}},
        {"type": "custom_tool_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "Done"}]},
        {"type": "local_shell_call", "call_id": "c3", "status": "completed",
         "action": {"type": "exec", "command": ["pwd"]}},
        {"type": "function_call_output", "call_id": "c3", "output": "/repo"},
        {"type": "web_search_call", "status": "completed", "action": {"type": "search", "query": "q"}},
        {"type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": "done now"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Fixed."}]},
        {"type": "ghost_snapshot", "ghost_commit": {}},
    ]
    for i, it in enumerate(items):
        b.add(it, fail, f"items[{i}]")
    s = b.steps
    assert [x.source for x in s] == ["system", "user", "agent", "agent", "agent", "agent"]
    assert (s[2].reasoning, s[2].message) == ("look first", "Looking.")
    assert [(c.id, c.name, c.arguments) for c in s[2].tool_calls] == [
        ("c1", "mcp__shell", '{"command":["ls"]}'), ("c2", "apply_patch", "*** Begin Patch")]
    assert [(o.source_call_id, o.content, o.is_error) for o in s[2].observations] == [
        ("c1", "denied", True), ("c2", "Done", None)]
    assert [(c.name, c.arguments) for c in s[3].tool_calls] == [("local_shell", {"type": "exec", "command": ["pwd"]})]
    assert s[3].observations[0].content == "/repo"
    # after an output the next model item starts a new response
    assert [(c.name, c.arguments) for c in s[4].tool_calls] == [("web_search", {"type": "search", "query": "q"})]
    assert (s[5].reasoning, s[5].message) == ("done now", "Fixed.")
    with pytest.raises(InputError, match="unknown role") as exc:
        b.add({"type": "message", "role": "robot", "content": "x"}, fail, "items[9]")
    assert exc.value.field == "items[9].role"
    with pytest.raises(InputError) as exc:
        b.add({"type": "function_call", "arguments": "{}", "call_id": "z"}, fail, "items[10]")
    assert exc.value.field == "items[10].name"
