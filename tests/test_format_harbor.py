"""Harbor trials and lone ATIF files, on the real corpus (../shared/corpus/harbor)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from streamgrade.config import load_config
from streamgrade.errors import InputError
from streamgrade.formats.harbor import AtifFile, HarborTrial, atif_steps
from streamgrade.models import Session, SessionRef

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "harbor"
if not (CORPUS / "jobs").is_dir() or not (CORPUS / "golden").is_dir():
    pytest.skip(f"Harbor corpus not present at {CORPUS}", allow_module_level=True)

GOLDEN = CORPUS / "golden"
TERMINUS = GOLDEN / "terminus_2"
LINEAR = TERMINUS / "hello-world-context-summarization-linear-history.trajectory.json"
LINEAR_CONT = TERMINUS / "hello-world-context-summarization-linear-history.trajectory.cont-1.json"
SUMMARIZATION = TERMINUS / "hello-world-context-summarization.trajectory.json"
REWARDS = {
    "pdfminer__icWVexc": 1.0,
    "bleach__kwVZBCH": 0.0,
    "line_profiler__UPWAM6C": 1.0,
    "bleach__2HEi2yq": 0.0,
    "line_profiler__hsfb47w": 1.0,
}
HSFB = CORPUS / "jobs" / "2026-04-13__06-59-50" / "pyutils__line_profiler.a646bf0f.__hsfb47w"


@pytest.fixture(scope="module")
def config():
    return load_config(env={})


def walk_refs(fmt, root: Path) -> list[SessionRef]:
    refs = []
    for d, _, _ in os.walk(root):
        refs.extend(fmt.find(Path(d), sorted(os.listdir(d))))
    return refs


@pytest.fixture(scope="module")
def trials(config) -> dict[str, Session]:
    fmt = HarborTrial()
    return {r.session_id: fmt.assemble(r, config) for r in walk_refs(fmt, CORPUS)}


@pytest.fixture(scope="module")
def atif_refs() -> list[SessionRef]:
    return walk_refs(AtifFile(), CORPUS)


def short(session_id: str) -> str:
    """"pyutils__line_profiler.a646bf0f.__hsfb47w" -> "line_profiler__hsfb47w"."""
    repo, _, suffix = session_id.partition(".")
    return f"{repo.split('__')[1]}__{session_id.rsplit('__', 1)[1]}"


def test_five_trials_with_their_rewards(trials):
    assert {short(k): s.reward for k, s in trials.items()} == REWARDS
    for s in trials.values():
        assert s.kind == "agent" and s.ref.format == "harbor"
        assert s.termination == "completed"
        assert s.model == "MiniMax-M2.7"  # the steps', not config's qwen3.5-27b
        assert s.agent == "claude-code 2.1.104"


def test_named_trial_fields(trials):
    s = trials[HSFB.name]
    assert s.ref.files == (str(HSFB / "result.json"), str(HSFB / "agent" / "trajectory.json"))
    assert s.trial == HSFB.name
    assert s.task_id == "pyutils__line_profiler.a646bf0f.func_pm_ctrl_shuffle__cp1dr0aq"
    assert s.metrics["steps"] == 27
    assert s.metrics["input_tokens"] == 312083 and s.metrics["output_tokens"] == 1727
    assert s.metrics["cache_tokens"] == 200745
    assert "cost_usd" not in s.metrics  # result.json says null
    # 1 user step, 26 agent steps, 10 tool results
    assert len(s.transcript) == 37
    assert [m.role for m in s.transcript].count("assistant") == 26 == s.turns
    assert [m.role for m in s.transcript].count("tool") == 10 == s.n_tool_calls
    assert s.transcript[0].role == "user" and s.task == s.transcript[0].content
    assert s.task.startswith("Solve the following issue.")
    first = next(m for m in s.transcript if m.tool_calls)
    call = first.tool_calls[0]
    assert call.function.name == "Glob" and call.id == "call_function_yrfniwkzozsh_1"
    assert isinstance(call.function.arguments, str) and json.loads(call.function.arguments) == {"pattern": "**/*.py"}
    result = s.transcript[s.transcript.index(first) + 1]
    assert result.role == "tool" and result.tool_call_id == call.id and result.content.startswith("kernprof.py")
    assert s.transcript[1].reasoning_content.startswith("Let me analyze this issue.")
    assert s.transcript[1].content is None  # an empty message with reasoning only
    assert s.meta["config_model"] == "MiniMax-M2.7"


def test_config_model_is_not_trusted(trials):
    s = next(s for k, s in trials.items() if short(k) == "pdfminer__icWVexc")
    assert s.meta["config_model"] == "qwen3.5-27b"
    assert s.model == "MiniMax-M2.7"


def test_verifier_output_is_not_in_transcript(trials):
    for s in trials.values():
        text = s.task + "".join((m.content or "") + (m.reasoning_content or "") for m in s.transcript)
        assert "test_patch_resolved" not in text and "ctrf" not in text


def test_lone_atif_files_in_golden(atif_refs):
    ids = sorted(r.session_id for r in atif_refs)
    # 2 openhands + 4 terminus-2; continuation and 3 subagent files are not sessions;
    # Harbor trials' agent/trajectory.json and agent/learning/trajectory.json neither
    assert ids == [
        "openhands.hello-world.trajectory",
        "openhands.hello-world.trajectory.no_function_calling",
        "terminus_2.hello-world-context-summarization-linear-history.trajectory",
        "terminus_2.hello-world-context-summarization.trajectory",
        "terminus_2.hello-world-invalid-json.trajectory",
        "terminus_2.hello-world-timeout.trajectory",
    ]
    paths = {r.path for r in atif_refs}
    assert str(LINEAR_CONT) not in paths
    assert not any("summarization-1" in p for p in paths)
    assert not any("/jobs/" in p for p in paths)


def test_continuation_is_followed(atif_refs, config):
    ref = next(r for r in atif_refs if r.path == str(LINEAR))
    assert ref.files == (str(LINEAR), str(LINEAR_CONT))
    s = AtifFile().assemble(ref, config)
    cont = json.loads(LINEAR_CONT.read_text())["steps"]
    last = cont[-1]["message"]
    assert s.transcript[-2].role == "assistant" and s.transcript[-2].content == last
    # 5 main steps + 8 continuation steps, less the copied system prompt already read
    assert s.metrics["steps"] == 12
    assert sum(1 for m in s.transcript if m.content and m.content.startswith("You are picking up work")) == 1
    assert s.meta["trajectory_files"] == [str(LINEAR), str(LINEAR_CONT)]
    assert s.reward is None and s.model == "gpt-4o" and s.agent == "terminus-2 2.0.0"


def test_observations_without_call_ids_pair_with_calls(atif_refs, config):
    ref = next(r for r in atif_refs if r.path == str(TERMINUS / "hello-world-timeout.trajectory.json"))
    s = AtifFile().assemble(ref, config)
    for i, m in enumerate(s.transcript):
        if m.tool_calls:
            assert s.transcript[i + 1].role == "tool"
            assert s.transcript[i + 1].tool_call_id == m.tool_calls[0].id


def test_openhands_tools_and_system(atif_refs, config):
    ref = next(r for r in atif_refs if r.path == str(GOLDEN / "openhands" / "hello-world.trajectory.json"))
    s = AtifFile().assemble(ref, config)
    assert s.transcript[0].role == "system"
    assert s.task == 'Create a file called hello.txt with "Hello, world!" as the content.\n'
    assert [t["function"]["name"] for t in s.tools][:2] == ["execute_bash", "think"]
    assert s.metrics["cost_usd"] == pytest.approx(0.00135)


# ----------------------------------------------------------------------- malformed input


def write(path: Path, doc) -> Path:
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def test_atif_without_steps(tmp_path, config):
    p = write(tmp_path / "x.trajectory.json", {"schema_version": "ATIF-v1.6", "session_id": "s", "agent": {"name": "a"}})
    [ref] = AtifFile().find(tmp_path, sorted(os.listdir(tmp_path)))
    with pytest.raises(InputError) as exc:
        AtifFile().assemble(ref, config)
    assert exc.value.path == str(p) and exc.value.field == "steps"


def test_continued_ref_missing(tmp_path, config):
    doc = json.loads(LINEAR.read_text())
    p = write(tmp_path / "a.trajectory.json", doc)  # its cont-1 file is not copied
    [ref] = AtifFile().find(tmp_path, sorted(os.listdir(tmp_path)))
    assert ref.files == (str(p),)
    with pytest.raises(InputError) as exc:
        AtifFile().assemble(ref, config)
    assert exc.value.path == str(p) and exc.value.field == "continued_trajectory_ref"
    assert "missing" in str(exc.value)


def test_continuation_cycle(tmp_path, config):
    doc = json.loads(LINEAR.read_text())
    doc["continued_trajectory_ref"] = "b.json"
    write(tmp_path / "a.json", doc)
    doc2 = dict(doc, continued_trajectory_ref="a.json")
    write(tmp_path / "b.json", doc2)
    # each references the other: neither is a lone session, but assembling one must stop
    assert AtifFile().find(tmp_path, sorted(os.listdir(tmp_path))) == []
    with pytest.raises(InputError) as exc:
        atif_steps(tmp_path / "a.json")
    assert exc.value.field == "continued_trajectory_ref" and "cycle" in str(exc.value)


def test_bad_step_names_field(tmp_path, config):
    doc = {"schema_version": "ATIF-v1.6", "steps": [{"step_id": 1, "source": "user", "message": "hi"}, {"step_id": 2, "message": "x"}]}
    p = write(tmp_path / "t.json", doc)
    with pytest.raises(InputError) as exc:
        atif_steps(p)
    assert exc.value.field == "steps[1].source"


def test_non_atif_json_is_not_claimed(tmp_path):
    write(tmp_path / "traces.json", [{"conversations": []}])
    write(tmp_path / "other.json", {"schema_version": "1.0"})
    assert AtifFile().find(tmp_path, sorted(os.listdir(tmp_path))) == []


def copy_trial(tmp_path: Path) -> Path:
    dst = tmp_path / HSFB.name
    (dst / "agent").mkdir(parents=True)
    shutil.copy(HSFB / "result.json", dst / "result.json")
    shutil.copy(HSFB / "agent" / "trajectory.json", dst / "agent" / "trajectory.json")
    return dst


def test_result_json_not_json(tmp_path, config):
    trial = copy_trial(tmp_path)
    write(trial / "result.json", '{\n  "verifier_result": {\n    "rewards": {"reward": 1.0,,}\n}')
    [ref] = HarborTrial().find(trial, sorted(os.listdir(trial)))
    with pytest.raises(InputError) as exc:
        HarborTrial().assemble(ref, config)
    assert exc.value.path == str(trial / "result.json") and exc.value.line == 3


def test_bad_reward_names_field(tmp_path, config):
    trial = copy_trial(tmp_path)
    result = json.loads((trial / "result.json").read_text())
    result["verifier_result"]["rewards"]["reward"] = "yes"
    write(trial / "result.json", result)
    [ref] = HarborTrial().find(trial, sorted(os.listdir(trial)))
    with pytest.raises(InputError) as exc:
        HarborTrial().assemble(ref, config)
    assert exc.value.field == "verifier_result.rewards.reward"


def test_exception_info_sets_termination(tmp_path, config):
    trial = copy_trial(tmp_path)
    result = json.loads((trial / "result.json").read_text())
    result["exception_info"] = {"exception_type": "AgentTimeoutError", "exception_message": "timed out"}
    result["verifier_result"] = None
    write(trial / "result.json", result)
    [ref] = HarborTrial().find(trial, sorted(os.listdir(trial)))
    s = HarborTrial().assemble(ref, config)
    assert s.termination == "timeout" and s.reward is None


def test_trial_find_needs_trajectory(tmp_path):
    (tmp_path / "agent").mkdir()
    write(tmp_path / "result.json", {})
    assert HarborTrial().find(tmp_path, sorted(os.listdir(tmp_path))) == []


# ------------------------------------------------------- refs stay inside the session's folder

OUTSIDE_MSG = "points outside the session's folder"
SECRET_TEXT = "SECRET-OUTSIDE-CONTENT-41c7"


def outside_doc(tmp_path: Path) -> Path:
    """An ATIF continuation outside the session's folder, whose content must never be read."""
    doc = json.loads(LINEAR_CONT.read_text())
    doc["steps"][-1]["message"] = SECRET_TEXT
    (tmp_path / "outside").mkdir(exist_ok=True)
    return write(tmp_path / "outside" / "secret.trajectory.json", doc)


def lone_with_ref(folder: Path, ref: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return write(folder / "a.trajectory.json", dict(json.loads(LINEAR.read_text()), continued_trajectory_ref=ref))


def find_and_assemble(fmt, folder: Path, config) -> tuple[SessionRef, Exception | Session]:
    [ref] = [r for r in fmt.find(folder, sorted(os.listdir(folder))) if r.format == fmt.name]
    try:
        return ref, fmt.assemble(ref, config)
    except InputError as exc:
        return ref, exc


def test_absolute_ref_fails_the_same_whether_the_target_exists(tmp_path, config):
    secret = outside_doc(tmp_path)
    folder = tmp_path / "data"
    errors = []
    for target in (secret, tmp_path / "outside" / "missing.trajectory.json"):
        lone_with_ref(folder, str(target))  # the same file, rewritten
        ref, got = find_and_assemble(AtifFile(), folder, config)
        assert isinstance(got, InputError), got
        assert ref.files == (str(folder / "a.trajectory.json"),)  # find did not follow it
        errors.append(str(got))
    assert errors[0] == errors[1]  # byte-identical: nothing tells whether the target exists
    assert errors[0] == f"{folder / 'a.trajectory.json'}: continued_trajectory_ref: {OUTSIDE_MSG}"
    assert SECRET_TEXT not in errors[0] and "secret" not in errors[0]


@pytest.mark.parametrize("ref", ["../outside/secret.trajectory.json", "../../outside/secret.trajectory.json",
                                 "sub/../../outside/secret.trajectory.json", "trajectory./../../outside/x.json"])
def test_dotdot_ref_fails(tmp_path, config, ref):
    outside_doc(tmp_path)
    folder = tmp_path / "data"
    lone_with_ref(folder, ref)
    _, got = find_and_assemble(AtifFile(), folder, config)
    assert isinstance(got, InputError) and got.field == "continued_trajectory_ref" and OUTSIDE_MSG in str(got)


def test_symlink_escape_fails_and_is_never_read(tmp_path, config):
    secret = outside_doc(tmp_path)
    cases = {  # ref -> the link inside the folder it goes through
        "link.json": ("link.json", secret),  # a file link: not a session of its own either
        "sub/secret.trajectory.json": ("sub", secret.parent),  # a folder link
        "sub/../outside/secret.trajectory.json": ("sub", secret.parent),  # .. after a link, as the kernel does it
        "dangling.json": ("dangling.json", tmp_path / "outside" / "nothing.json"),  # leads out to nothing
    }
    errors = set()
    for n, (ref, (link, target)) in enumerate(cases.items()):
        folder = tmp_path / f"data{n}"
        folder.mkdir()
        (folder / link).symlink_to(target, target_is_directory=target.is_dir())
        lone_with_ref(folder, ref)
        ref_, got = find_and_assemble(AtifFile(), folder, config)
        assert isinstance(got, InputError) and OUTSIDE_MSG in str(got), (ref, got)
        assert ref_.files == (str(folder / "a.trajectory.json"),)
        errors.add(str(got).replace(str(folder), "DATA"))
    assert errors == {f"DATA/a.trajectory.json: continued_trajectory_ref: {OUTSIDE_MSG}"}


def test_harbor_trial_ref_outside_the_trial_fails(tmp_path, config):
    secret = outside_doc(tmp_path)
    trial = copy_trial(tmp_path / "jobs")
    traj = trial / "agent" / "trajectory.json"
    doc = json.loads(traj.read_text())
    for ref in (str(secret), "../../../outside/secret.trajectory.json"):
        write(traj, dict(doc, continued_trajectory_ref=ref))
        ref_, got = find_and_assemble(HarborTrial(), trial, config)
        assert ref_.files == (str(trial / "result.json"), str(traj))
        assert isinstance(got, InputError) and str(got) == f"{traj}: continued_trajectory_ref: {OUTSIDE_MSG}"
    # inside the trial folder (not only agent/) is inside: a missing file there is just missing
    write(traj, dict(doc, continued_trajectory_ref="../result-cont.json"))
    _, got = find_and_assemble(HarborTrial(), trial, config)
    assert isinstance(got, InputError) and "missing" in str(got) and OUTSIDE_MSG not in str(got)


def test_subagent_ref_outside_fails(tmp_path, config):
    secret = outside_doc(tmp_path)
    folder = tmp_path / "data"
    folder.mkdir()
    doc = json.loads(SUMMARIZATION.read_text())
    step = next(i for i, s in enumerate(doc["steps"]) if "subagent_trajectory_ref" in json.dumps(s))
    results = doc["steps"][step]["observation"]["results"]
    k = next(k for k, r in enumerate(results) if r.get("subagent_trajectory_ref"))
    results[k]["subagent_trajectory_ref"] = [{"trajectory_path": str(secret)}]
    write(folder / "s.trajectory.json", doc)
    _, got = find_and_assemble(AtifFile(), folder, config)
    assert isinstance(got, InputError) and OUTSIDE_MSG in str(got)
    assert got.field == f"steps[{step}].observation.results[{k}].subagent_trajectory_ref"


def test_legit_continuation_still_followed_in_a_copy(tmp_path, config):
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(LINEAR, folder / LINEAR.name)
    shutil.copy(LINEAR_CONT, folder / LINEAR_CONT.name)  # prefixed: X.trajectory.cont-1.json
    ref, s = find_and_assemble(AtifFile(), folder, config)
    assert isinstance(s, Session), s
    assert ref.files == (str(folder / LINEAR.name), str(folder / LINEAR_CONT.name))
    assert s.metrics["steps"] == 12
