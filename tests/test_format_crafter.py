"""BALROG Crafter episodes, on the real corpus (../shared/corpus/crafter-balrog)."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest

from streamgrade.config import load_config
from streamgrade.errors import InputError
from streamgrade.formats.crafter import ACTIONS, INSTRUCTION_PROMPT, NO_VALID_ACTION, CrafterEpisode
from streamgrade.models import SessionRef

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "crafter-balrog"
if not (CORPUS / "submissions").is_dir():
    pytest.skip(f"Crafter corpus not present at {CORPUS}", allow_module_level=True)

SONNET = CORPUS / "submissions" / "LLM" / "20241103_Claude-3.5-Sonnet" / "crafter" / "default"
GEMINI_VLM = CORPUS / "submissions" / "VLM" / "20250425_naive_Gemini-2.5-Pro-Exp-03-25" / "crafter" / "default"
R1 = CORPUS / "submissions" / "LLM" / "20240410_robust_cot_DeepSeek-R1" / "crafter" / "default"


@pytest.fixture(scope="module")
def config():
    return load_config(env={})


@pytest.fixture(scope="module")
def refs() -> list[SessionRef]:
    fmt, out = CrafterEpisode(), []
    for d, _, _ in os.walk(CORPUS):
        out.extend(fmt.find(Path(d), sorted(os.listdir(d))))
    return out


def keep_config():
    cfg = load_config(env={})
    cfg.formats.crafter.keep_invalid_actions = True
    return cfg


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _header(path: str) -> list[str]:
    with open(path, newline="", encoding="utf-8") as fh:
        return next(csv.reader(fh))


def ref_for(refs, folder: Path, stem: str) -> SessionRef:
    return next(r for r in refs if r.path == str(folder / f"{stem}.json"))


def csv_rows(path: Path) -> int:
    with open(path, newline="", encoding="utf-8") as fh:
        return sum(1 for _ in csv.DictReader(fh))


def test_finds_all_episodes(refs):
    assert len(refs) == 160
    assert sum(os.path.exists(r.files[1]) for r in refs) == 150
    assert len({r.session_id for r in refs}) == 160  # LLM and VLM share submission names
    assert all(r.format == "balrog-crafter" and r.locator == "" for r in refs)


def test_named_episode(refs, config):
    ref = ref_for(refs, SONNET, "default_run_00")
    assert ref.session_id == "LLM.20241103_Claude-3.5-Sonnet.default_run_00"
    assert ref.files == (str(SONNET / "default_run_00.json"), str(SONNET / "default_run_00.csv"))
    s = CrafterEpisode().assemble(ref, config)
    assert s.kind == "episode" and s.has_transcript
    assert s.reward == pytest.approx(6.1)
    assert s.metrics["episode_return"] == pytest.approx(6.1)
    assert s.metrics["progression"] == pytest.approx(7 / 22)
    assert s.metrics["achievements"] == 7
    assert s.metrics["num_steps"] == 162
    assert s.metrics["input_tokens"] == 240198 and s.metrics["output_tokens"] == 975
    assert s.agent == "naive" and s.model == "claude-3-5-sonnet-20240620"
    assert s.termination == "done"
    rows = csv_rows(SONNET / "default_run_00.csv")
    # system, the observation before action 1, then (action, observation) for actions 1-161
    assert rows == 162 and len(s.transcript) == 2 * rows
    assert [m.role for m in s.transcript[:4]] == ["system", "user", "assistant", "user"]
    assert s.transcript[0].content == INSTRUCTION_PROMPT
    assert s.transcript[1].content.startswith("You see:\n- grass 1 steps to your west")
    assert s.transcript[2].content == "Move West"  # naive agent: no reasoning, just the action
    assert s.meta["first_action"] == "Noop"  # action 0: no observation recorded before it
    assert s.transcript[-2].content == "Sleep" and s.transcript[-1].role == "user"  # the final state
    assert s.task.startswith("Crafter: default. Goal: survive") and "\n" not in s.task
    assert "achievements" in s.task
    assert s.metrics["invalid_actions"] == 0 and s.meta["invalid_actions"]["unlocated"] == 3  # hidden Noop fallbacks (older CSV)


def test_vlm_episode_with_empty_actions(refs, config):
    ref = ref_for(refs, GEMINI_VLM, "default_run_09")
    assert ref.session_id == "VLM.20250425_naive_Gemini-2.5-Pro-Exp-03-25.default_run_09"
    s = CrafterEpisode().assemble(ref, config)
    assert s.reward == pytest.approx(11.1)
    assert s.metrics["progression"] == pytest.approx(12 / 22) and s.metrics["achievements"] == 12
    rows = _rows(GEMINI_VLM / "default_run_09.csv")
    bad = [i for i, r in enumerate(rows) if r["Action"] not in ACTIONS]
    assert len(rows) == 363 and len(bad) == 3 == len(json.loads((GEMINI_VLM / "default_run_09.json").read_text())["failed_candidates"])
    assert len(s.transcript) == 2 * 363 - 2 * len(bad)  # each dropped with the observation before it
    assert not any(m.content == NO_VALID_ACTION for m in s.transcript if m.role == "assistant")
    assert s.metrics["invalid_actions"] == 3 == s.metrics["dropped_invalid_actions"]
    assert s.meta["invalid_actions"] == {"empty": 2, "unparsed": 1, "kept": False, "unlocated": 0}
    kept = CrafterEpisode().assemble(ref, keep_config())
    assert len(kept.transcript) == 2 * 363
    assert sum(m.content == NO_VALID_ACTION for m in kept.transcript if m.role == "assistant") == 2
    assert kept.metrics["invalid_actions"] == 3 and kept.metrics["dropped_invalid_actions"] == 0


GROK4 = CORPUS / "submissions" / "LLM" / "20250713_naive_grok-4" / "crafter" / "default"


def agent_step(s, step: int) -> int:
    """The transcript index of the assistant turn of BALROG's Step ``step``."""
    agents = [st for st in s.steps if st.source == "agent"]
    k = next(i for i, st in enumerate(agents) if st.extra["step"] == step)
    return [i for i, m in enumerate(s.transcript) if m.role == "assistant"][k]


def test_named_step_sees_the_state_before_it(refs, config):
    """Claude-3.5-Sonnet LLM run_00, step 40 "Place Table" (reward 1: the table is new). In
    BALROG's CSV row 40's Observation already shows the table (the state after the action);
    the agent decided on row 39's, which has no table. The user turn before the action must
    be row 39's, and the one after it row 40's."""
    rows = _rows(SONNET / "default_run_00.csv")
    assert rows[40]["Action"] == "Place Table" and float(rows[40]["Reward"]) == 1.0
    assert "table" not in rows[39]["Observation"] and "- table 1 steps to your east" in rows[40]["Observation"]
    s = CrafterEpisode().assemble(ref_for(refs, SONNET, "default_run_00"), config)
    i = agent_step(s, 40)
    assert s.transcript[i].content == "Place Table"
    assert s.transcript[i - 1].role == "user" and s.transcript[i - 1].content == rows[39]["Observation"]
    assert s.transcript[i + 1].role == "user" and s.transcript[i + 1].content == rows[40]["Observation"]
    # step 146 "Do" kills a zombie (reward 1): the agent faced it before acting, not after
    i = agent_step(s, 146)
    assert s.transcript[i].content == "Do" and float(rows[146]["Reward"]) == 1.0
    assert s.transcript[i - 1].content.endswith("You face zombie at your front.")
    assert s.transcript[i + 1].content.endswith("You face grass at your front.")
    # step 3 (a move west): its user turn is row 2's observation
    i = agent_step(s, 3)
    assert s.transcript[i - 1].content == rows[2]["Observation"] and s.transcript[i].content == rows[3]["Action"]


def test_named_step_newer_csv(refs, config):
    """grok-4 run_00 (newer CSV: Action before Observation), step 7 "Move North": row 6
    shows a tree 1 step north while the agent faces grass; after moving it faces the tree."""
    rows = _rows(GROK4 / "default_run_00.csv")
    assert rows[7]["Action"] == "Move North"
    s = CrafterEpisode().assemble(ref_for(refs, GROK4, "default_run_00"), config)
    i = agent_step(s, 7)
    assert s.transcript[i].content == "Move North"
    before, after = s.transcript[i - 1].content, s.transcript[i + 1].content
    assert "- tree 1 steps to your north" in before and before.endswith("You face grass at your front.")
    assert after.endswith("You face tree at your front.")


def test_system_prompt_is_balrogs_instruction(refs, config):
    s = CrafterEpisode().assemble(ref_for(refs, SONNET, "default_run_00"), config)
    system = s.transcript[0]
    assert system.role == "system" and system.content == INSTRUCTION_PROMPT
    assert [st.source for st in s.steps[:2]] == ["system", "environment"]
    text = INSTRUCTION_PROMPT
    assert text.startswith("You are an agent playing Crafter. The following are the only valid actions")
    assert text.endswith("Your goal is to get as far as possible by completing all the achievements.\n\nPLAY!")
    lines = text.split("\n\n")[1].split(",\n")  # "Name: description" joined by ",\n", ending in "."
    assert [x.split(":")[0] for x in lines] == list(ACTIONS) and len(ACTIONS) == 17
    assert "\n1. Collect Wood\n" in text and "\n22. Collect Diamond\n" in text
    # the judge never sees the reward: no step carries a Reward or Done cell
    assert not any(st.metrics for st in s.steps)
    assert "reward" not in text.lower() and not any("Reward" in (m.content or "") for m in s.transcript)


def test_invalid_actions_dropped_by_default(refs, config):
    """grok-4 run_00: row 1's Action is empty (BALROG ran Noop and told the agent so in row
    1's Observation). By default step 1 is left out with the observation before it (row 0's);
    row 1's observation then comes before action 2, without the feedback about a turn not
    shown."""
    rows = _rows(GROK4 / "default_run_00.csv")
    assert rows[1]["Action"] == "" and "Defaulted to action: Noop" in rows[1]["Observation"]
    s = CrafterEpisode().assemble(ref_for(refs, GROK4, "default_run_00"), config)
    assert s.meta["first_action"] == "Move West"
    assert 1 not in [st.extra["step"] for st in s.steps if st.source == "agent"]
    i = agent_step(s, 2)
    assert s.transcript[i - 1].content == rows[1]["Observation"].split("Observation:\n", 1)[1]
    assert not any("Defaulted to action" in (m.content or "") for m in s.transcript)
    assert s.metrics["invalid_actions"] == 12 == s.metrics["dropped_invalid_actions"]
    assert len([m for m in s.transcript if m.role == "assistant"]) == len(rows) - 1 - 12


def test_invalid_actions_kept_with_a_flag(refs):
    rows = _rows(GROK4 / "default_run_00.csv")
    s = CrafterEpisode().assemble(ref_for(refs, GROK4, "default_run_00"), keep_config())
    flagged = [st for st in s.steps if st.extra.get("invalid_action")]
    assert len(flagged) == 12 and all(st.extra["executed_action"] == "Noop" for st in flagged)
    assert flagged[0].extra["step"] == 1 and flagged[0].message == NO_VALID_ACTION
    i = agent_step(s, 1)
    assert s.transcript[i - 1].content == rows[0]["Observation"]
    assert s.transcript[i + 1].content == rows[1]["Observation"]  # the feedback is kept: its turn is shown
    assert len([m for m in s.transcript if m.role == "assistant"]) == len(rows) - 1
    assert s.metrics["invalid_actions"] == 12 and s.metrics["dropped_invalid_actions"] == 0
    assert s.meta["invalid_actions"]["kept"] is True


def test_corpus_invalid_actions(refs, config):
    """Over the corpus: no assistant target is "(no valid action)" by default (there were
    335), no observation carries feedback about a dropped output, and the rows whose Action
    is no action name match BALROG's failed_candidates."""
    empty = unparsed = targets = 0
    keep = keep_config()
    for ref in refs:
        if not os.path.exists(ref.files[1]):
            continue
        s = CrafterEpisode().assemble(ref, config)
        targets += sum(m.content == NO_VALID_ACTION for m in s.transcript if m.role == "assistant")
        assert all(not st.extra.get("invalid_action") for st in s.steps)
        # BALROG's feedback about a dropped output (both wordings) is taken off the next observation
        assert not any("Defaulted to action" in (m.content or "") for m in s.transcript)
        inv = s.meta["invalid_actions"]
        empty, unparsed = empty + inv["empty"], unparsed + inv["unparsed"]
        if _header(ref.files[1])[1] == "Action":  # newer CSV: Action is the raw output
            assert inv["unlocated"] == 0  # every failed candidate is a row
        k = CrafterEpisode().assemble(ref, keep)
        assert len(k.transcript) - len(s.transcript) == 2 * s.metrics["dropped_invalid_actions"]
    assert targets == 0 and empty == 335 and unparsed > 1000


def test_judge_view(refs, config):
    """The judge sees the first observation (in an episode the first user turn is no task),
    and the offline rubric still counts the dropped invalid outputs."""
    from streamgrade.chunking import action_lines
    from streamgrade.judges.signals import features

    s = CrafterEpisode().assemble(ref_for(refs, GROK4, "default_run_00"), config)
    lines = [line for _, line in action_lines(s)]
    assert lines[0].startswith("[0]") and lines[1].startswith("[1]") and "You see:" in lines[1]
    turns = sum(m.role == "assistant" for m in s.transcript)
    assert features(s)["invalid_share"] == pytest.approx(12 / (turns + 12))
    kept = CrafterEpisode().assemble(ref_for(refs, GROK4, "default_run_00"), keep_config())
    assert features(kept)["invalid_share"] == pytest.approx(12 / turns_of(kept))


def turns_of(s) -> int:
    return sum(m.role == "assistant" for m in s.transcript)


def test_episode_without_csv(refs, config):
    ref = ref_for(refs, R1, "default_run_00")
    assert not os.path.exists(ref.files[1])
    s = CrafterEpisode().assemble(ref, config)
    assert s.transcript == [] and s.meta["has_csv"] is False
    assert s.reward == s.metrics["episode_return"]


def test_reasoning_then_action(tmp_path, config):
    write_episode(tmp_path, 'Step,Observation,Action,Reasoning,Reward,Done\n0,"You see:\n- tree, 2 steps north",Noop,,0.0,False\n'
                            '1,"You see:\n- tree, 2 steps north",Do,"Trees give wood,\nso collect.",1.0,False\n')
    [ref] = CrafterEpisode().find(tmp_path / "default", ["default_run_00.csv", "default_run_00.json"])
    s = CrafterEpisode().assemble(ref, config)
    assert s.transcript[1].content == "You see:\n- tree, 2 steps north"
    assert s.transcript[2].content == "Trees give wood,\nso collect.\nAction: Do"


# ----------------------------------------------------------------------- malformed input


def write_episode(tmp_path: Path, csv_text: str | None, doc: dict | str | None = None) -> Path:
    folder = tmp_path / "default"
    folder.mkdir(exist_ok=True)
    if doc is None:
        doc = json.loads((SONNET / "default_run_00.json").read_text())
    (folder / "default_run_00.json").write_text(doc if isinstance(doc, str) else json.dumps(doc))
    if csv_text is not None:
        (folder / "default_run_00.csv").write_text(csv_text)
    return folder


def test_bad_csv_row_names_line(tmp_path, config):
    text = 'Step,Observation,Action,Reasoning,Reward,Done\n0,"multi\nline obs",Noop,,0.0,False\n1,short row,Noop\n'
    folder = write_episode(tmp_path, text)
    [ref] = CrafterEpisode().find(folder, sorted(os.listdir(folder)))
    with pytest.raises(InputError) as exc:
        CrafterEpisode().assemble(ref, config)
    assert exc.value.path == str(folder / "default_run_00.csv") and exc.value.line == 4


def test_csv_missing_column(tmp_path, config):
    folder = write_episode(tmp_path, "Step,Observation,Reasoning\n0,obs,r\n")
    [ref] = CrafterEpisode().find(folder, sorted(os.listdir(folder)))
    with pytest.raises(InputError) as exc:
        CrafterEpisode().assemble(ref, config)
    assert exc.value.line == 1 and "Action" in str(exc.value)


def test_episode_json_missing_return(tmp_path, config):
    doc = json.loads((SONNET / "default_run_00.json").read_text())
    del doc["episode_return"]
    folder = write_episode(tmp_path, None, doc)
    [ref] = CrafterEpisode().find(folder, sorted(os.listdir(folder)))
    with pytest.raises(InputError) as exc:
        CrafterEpisode().assemble(ref, config)
    assert exc.value.field == "episode_return"


def test_episode_json_not_json(tmp_path, config):
    folder = write_episode(tmp_path, None, '{"task": "default",\n "episode_return": 1.0,,\n}')
    [ref] = CrafterEpisode().find(folder, sorted(os.listdir(folder)))
    with pytest.raises(InputError) as exc:
        CrafterEpisode().assemble(ref, config)
    assert exc.value.path == str(folder / "default_run_00.json") and exc.value.line == 2


def test_long_transcript_is_noted(tmp_path, config):
    rows = "".join(f"{i},obs {i},Noop,,0.0,False\n" for i in range(2001))
    folder = write_episode(tmp_path, "Step,Observation,Action,Reasoning,Reward,Done\n" + rows)
    [ref] = CrafterEpisode().find(folder, sorted(os.listdir(folder)))
    s = CrafterEpisode().assemble(ref, config)
    assert len(s.transcript) == 4002 and "long_transcript" in s.meta  # system + 2001 observations + 2000 actions


def test_other_json_not_claimed(tmp_path):
    shutil.copy(SONNET.parent / "crafter_summary.json", tmp_path / "crafter_summary.json")
    assert CrafterEpisode().find(tmp_path, ["crafter_summary.json"]) == []
