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
from streamgrade.formats.crafter import CrafterEpisode
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
    assert rows == 162 and len(s.transcript) == 2 * rows
    assert [m.role for m in s.transcript[:4]] == ["user", "assistant", "user", "assistant"]
    assert s.transcript[0].content.startswith("You see:\n- grass 1 steps to your west")
    assert s.transcript[1].content == "Noop"  # naive agent: no reasoning, just the action
    assert s.transcript[-1].content == "Sleep"
    assert s.task.startswith("Crafter: default. Goal: survive") and "\n" not in s.task
    assert "achievements" in s.task


def test_vlm_episode_with_empty_actions(refs, config):
    ref = ref_for(refs, GEMINI_VLM, "default_run_09")
    assert ref.session_id == "VLM.20250425_naive_Gemini-2.5-Pro-Exp-03-25.default_run_09"
    s = CrafterEpisode().assemble(ref, config)
    assert s.reward == pytest.approx(11.1)
    assert s.metrics["progression"] == pytest.approx(12 / 22) and s.metrics["achievements"] == 12
    assert len(s.transcript) == 2 * 363
    assert any(m.content == "(no valid action)" for m in s.transcript if m.role == "assistant")


def test_episode_without_csv(refs, config):
    ref = ref_for(refs, R1, "default_run_00")
    assert not os.path.exists(ref.files[1])
    s = CrafterEpisode().assemble(ref, config)
    assert s.transcript == [] and s.meta["has_csv"] is False
    assert s.reward == s.metrics["episode_return"]


def test_reasoning_then_action(tmp_path, config):
    write_episode(tmp_path, 'Step,Observation,Action,Reasoning,Reward,Done\n0,"You see:\n- tree, 2 steps north",Do,"Trees give wood,\nso collect.",1.0,False\n')
    [ref] = CrafterEpisode().find(tmp_path / "default", ["default_run_00.csv", "default_run_00.json"])
    s = CrafterEpisode().assemble(ref, config)
    assert s.transcript[0].content == "You see:\n- tree, 2 steps north"
    assert s.transcript[1].content == "Trees give wood,\nso collect.\nAction: Do"


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
    assert len(s.transcript) == 4002 and "long_transcript" in s.meta


def test_other_json_not_claimed(tmp_path):
    shutil.copy(SONNET.parent / "crafter_summary.json", tmp_path / "crafter_summary.json")
    assert CrafterEpisode().find(tmp_path, ["crafter_summary.json"]) == []
