"""Augmented demonstrations (src/streamgrade/augment/): captions and state transitions per
action, structured hints per session, in results.json, the judge's evidence and the
computer-use rows.

Data: the real input log of examples/clones/20251007_131852 with a painted stand-in
recording (tests/test_frames_pipeline.make_recording: frame n painted grey level 4n, so
every step's screen changes), and the real OWA captures of the shared corpus (when here)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import anyio
import httpx
import pytest

pytest.importorskip("av")
from streamgrade.augment import run_augment  # noqa: E402
from streamgrade.augment.command import annotate_chunks  # noqa: E402
from streamgrade.augment.templates import chord, template_caption  # noqa: E402
from streamgrade.config import load_config  # noqa: E402
from streamgrade.exports.computer_use import build_computer_use  # noqa: E402
from streamgrade.judges.heuristic import HeuristicJudge  # noqa: E402
from streamgrade.judges.openai import OpenAIJudge  # noqa: E402
from streamgrade.models import Action, Chunk  # noqa: E402
from streamgrade.pipeline import Pipeline, scan_source  # noqa: E402
from test_frames_pipeline import make_recording  # noqa: E402
from conftest import session_dir, session_dirs

ROOT = Path(__file__).resolve().parents[1]
OWA = ROOT.parent / "shared" / "corpus" / "owa" / "projects" / "owa-cli" / "tests" / "data"
LLM = {"base_url": "http://judge.test/v1", "rpm": 600_000, "http_client": "httpx"}


def make_data(root: Path) -> Path:
    data = root / "data"
    shutil.copytree(ROOT / "examples" / "clones" / "20251007_131852", data / "rec1")
    make_recording(data / "rec1" / "recording.mp4")
    if OWA.is_dir():
        (data / "owa").mkdir()
        for v in ("0.4.2", "0.5.1"):
            for ext in ("mcap", "mkv"):
                shutil.copy(OWA / f"{v}.{ext}", data / "owa" / f"{v}.{ext}")
    return data


def grade(data: Path, out: Path, judge=None, **overrides) -> None:
    cfg = load_config(env={}, overrides=overrides or None)

    async def go():
        j = judge(cfg) if judge else HeuristicJudge(cfg)
        try:
            await Pipeline(cfg, out, j).run(scan_source([data], exclude=[out]))
        finally:
            if judge:
                await j.aclose()

    anyio.run(go)


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("aug")
    data = make_data(root)
    grade(data, root / "out")
    return root / "out"


def results(out: Path, sid: str) -> dict:
    return json.loads((session_dir(out, sid) / "results.json").read_text())


class Answerer:
    """An httpx handler answering caption batches (``a<i>`` keys from the schema) and
    session hints; records every body."""

    def __init__(self):
        self.bodies: list[dict] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        js = body["response_format"]["json_schema"]
        if js["name"] == "streamgrade_captions":
            content = {k: {"caption": f"clicks the thing of {k}", "transition": f"the view of {k} opened"}
                       for k in js["schema"]["properties"]}
        elif js["name"] == "streamgrade_session_hints":
            content = {"goal": "edit a file", "apps": ["Notepad"], "subgoals": ["type"], "shortcuts": ["Ctrl+S"],
                       "issues": []}
        else:  # a verdict: the protocol shape
            content = {"key_points": ["k"], "summary": "s", "failure_cause": "none", "success": True,
                       "success_probability": 0.7,
                       **{c: {"evidence_steps": [0], "reasoning": "r", "score": 70, "confidence": 0.8}
                          for c in ("outcome", "process", "efficiency")}}
        return httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "content": json.dumps(content)}}],
                                         "usage": {"prompt_tokens": 50, "completion_tokens": 10}})


def _check_every_step_action(out: Path, sid: str, source: str) -> dict:
    r = results(out, sid)
    aug = r["augment"]
    step_actions = sorted(i for st in r["steps"] for i in st["actions"])
    assert step_actions and [e["action"] for e in aug["actions"]] == step_actions
    folder = session_dir(out, sid)
    for e in aug["actions"]:
        assert e["caption"] and e["transition"] and e["caption_source"] == source
        assert (folder / e["before"]).is_file() and (folder / e["after"]).is_file()
        assert e["before"] != e["after"] and 0 <= e["changed_share"] <= 1
    return aug


def test_offline_captions_and_transitions_for_every_action_with_a_frame(graded: Path, tmp_path: Path):
    out = tmp_path / "out"
    shutil.copytree(graded, out)
    cfg = load_config(env={}, overrides={"augment": {"after_ms": 2000}})  # up to the next step's start
    run = anyio.run(lambda: run_augment(out, cfg))
    assert run.mode == "offline" and run.augmented == run.sessions and not run.failed and run.requests == 0
    aug = _check_every_step_action(out, "rec1", "template")
    by = {e["action"]: e for e in aug["actions"]}
    assert by[3]["caption"] == 'types "coucou" in Word'  # the focused window follows app_focus("Word")
    assert by[9]["caption"] == "presses Cmd+Tab (switch app) in Word"
    assert by[8]["caption"] == "scrolls down 41 ticks in Word" and by[0]["caption"] == "clicks in Flutter E-Commerce"
    # the painted video's frame n (5 fps, 55 frames) is grey level 4n: the measured change
    # follows it (JPEG noise stays under the threshold of 24 levels)
    seen = set()
    for e in aug["actions"]:
        level = [(min(int(Path(p).stem) // 200, 54) * 4) % 256 for p in (e["before"], e["after"])]  # 55 frames
        d = abs(level[0] - level[1])
        if d >= 32:
            assert e["changed_share"] > 0.9 and e["transition"].startswith("most of the screen changed")
            seen.add("changed")
        elif d <= 16:
            assert e["changed_share"] == 0 and e["transition"].startswith("no visible change")
            seen.add("same")
    assert seen == {"changed", "same"}
    assert "focus moved to Word" in by[1]["transition"]
    assert aug["hints"]["apps"] == ["Word"] and aug["hints"]["shortcuts"] == ["Cmd+Tab (switch app)"]
    if OWA.is_dir():
        owa = _check_every_step_action(out, "owa.0.4.2", "template")
        assert any("Ctrl+S (save)" in e["caption"] for e in owa["actions"])
    again = anyio.run(lambda: run_augment(out, cfg))
    assert again.cached == run.sessions and again.augmented == 0


def test_llm_captions_batched_with_images_within_the_request_cap(graded: Path, tmp_path: Path):
    out = tmp_path / "out"
    shutil.copytree(graded, out)
    cfg = load_config(env={}, overrides={"openai": LLM, "augment": {"batch_steps": 4, "max_requests": 3}})
    ans = Answerer()

    async def go():
        async with OpenAIJudge(cfg, api_key="k", transport=httpx.MockTransport(ans)) as judge:
            return await run_augment(out, cfg, judge)

    run = anyio.run(go)
    assert run.mode == "llm" and not run.failed
    clones = results(out, "rec1")["augment"]
    assert clones["requests"] == 3  # the cap: 2 caption batches of 4 steps + the hints request
    sources = [e["caption_source"] for e in clones["actions"]]
    assert sources == ["llm"] * 8 + ["template"] * 4  # 12 steps: those beyond the cap keep templates
    assert clones["actions"][0]["caption"] == "clicks the thing of a0"
    assert clones["hints"] == {"goal": "edit a file", "apps": ["Notepad"], "subgoals": ["type"],
                               "shortcuts": ["Ctrl+S"], "issues": []} and clones["hints_source"] == "llm"
    caps = [b for b in ans.bodies if b["response_format"]["json_schema"]["name"] == "streamgrade_captions"]
    for b in caps:
        keys = b["response_format"]["json_schema"]["schema"]["required"]
        images = [p for p in b["messages"][1]["content"] if p["type"] == "image_url"]
        assert b["response_format"]["json_schema"]["strict"] is True
        assert len(images) == 2 * len(keys)  # each step's before and after (one action a step here)
        assert images[0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    per_session = run.requests
    assert per_session == sum(results(out, s)["augment"]["requests"] for s in
                              [p.name for p in session_dirs(out)])
    assert all(results(out, p.name)["augment"]["requests"] <= 3 for p in session_dirs(out))
    n = len(ans.bodies)
    again = anyio.run(go)
    assert len(ans.bodies) == n and again.cached == run.sessions  # a re-run sends no request
    # the computer-use export carries the captions as thoughts
    res = build_computer_use(out, tmp_path / "cu")
    rows = [json.loads(line) for line in (tmp_path / "cu" / "computer_use.sharegpt.jsonl").read_text().splitlines()]
    row = next(r for r in rows if r["metadata"]["session_id"] == "rec1")
    gpt = [c["value"] for c in row["conversations"] if c["from"] == "gpt"]
    assert gpt[0].startswith("# Thought: clicks the thing of a0\npyautogui.")
    assert "# Thought: presses Cmd+Tab (switch app) in Word\npyautogui.hotkey('command', 'tab')" in gpt  # beyond the cap
    assert "# Thought:" in row["system"] and row["metadata"]["thoughts"] == "llm"
    assert res.rows == len(rows)


def test_grade_with_augment_enabled_feeds_the_judge(tmp_path: Path):
    data = tmp_path / "data"
    shutil.copytree(ROOT / "examples" / "clones" / "20251007_131852", data / "rec1")
    make_recording(data / "rec1" / "recording.mp4")
    ans = Answerer()
    out = tmp_path / "out"
    grade(data, out, judge=lambda cfg: OpenAIJudge(cfg, api_key="k", transport=httpx.MockTransport(ans)),
          openai=LLM, augment={"enabled": True, "batch_steps": 6, "max_requests": 8})
    r = results(out, "rec1")
    assert r["status"] == "graded" and r["augment"]["mode"] == "llm" and r["augment"]["requests"] == 3
    verdict = [b for b in ans.bodies if b["response_format"]["json_schema"]["name"] == "streamgrade_verdict"]
    assert len(verdict) == 1
    text = verdict[0]["messages"][1]["content"]
    text = text if isinstance(text, str) else " ".join(p.get("text", "") for p in text)
    assert "# clicks the thing of a3; screen: the view of a3 opened" in text  # the evidence holds the captions
    scores = json.loads((session_dir(out, "rec1") / "scores.json").read_text())
    assert scores["usage"]["requests"] == 4  # 2 caption batches + hints + the verdict


def test_templates_and_annotation():
    mac, win = "macos", "windows"
    assert template_caption(Action(kind="click", t_ms=0, x=5, y=6, button="right"), "Finder") == "right-clicks in Finder"
    assert template_caption(Action(kind="double_click", t_ms=0, x=1, y=2)) == "double-clicks"
    assert template_caption(Action(kind="hotkey", t_ms=0, keys=["Meta", "s"]), None, mac) == "presses Cmd+S (save)"
    assert template_caption(Action(kind="hotkey", t_ms=0, keys=["Ctrl", "v"]), "Notepad", win) == \
        "presses Ctrl+V (paste) in Notepad"
    assert template_caption(Action(kind="drag", t_ms=0, path=[(1, 2), (9, 9)]), "Paint") == "drags in Paint"
    assert template_caption(Action(kind="scroll", t_ms=0, x=1, y=1, dy=3, ticks=3)) == "scrolls up 3 ticks"
    assert chord(["Alt", "Tab"], win) == "Alt+Tab (switch window)"
    chunks = [Chunk(index=0, total=2, start_ms=0, end_ms=1, lines=["[0.0s] click(1, 2)", "[0.5s] app_focus(\"X\")"],
                    tokens=10),
              Chunk(index=1, total=2, start_ms=1, end_ms=2, lines=["[1.0s] type(\"a\")"], tokens=5)]
    aug = {"actions": [{"action": 0, "caption": "clicks OK", "transition": "dialog closed"},
                       {"action": 2, "caption": "types a", "transition": ""}]}
    assert annotate_chunks(chunks, aug) == 2
    assert chunks[0].lines == ["[0.0s] click(1, 2)  # clicks OK; screen: dialog closed", "[0.5s] app_focus(\"X\")"]
    assert chunks[1].lines == ["[1.0s] type(\"a\")  # types a"] and chunks[0].tokens > 10


def test_mock_provider_answers_any_schema():
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    from mock_provider import answer

    from streamgrade.augment.captions import caption_schema, parse_captions
    from streamgrade.hints.llm import HINTS_SCHEMA, parse_hints

    req = {"model": "m", "messages": [{"role": "user", "content": "x"}],
           "response_format": {"type": "json_schema", "json_schema": caption_schema([3, 7])}}
    got = parse_captions([3, 7])(answer(req)["choices"][0]["message"]["content"])
    assert set(got) == {3, 7} and got[3]["caption"].startswith("mock a3.caption")
    req["response_format"]["json_schema"] = HINTS_SCHEMA
    hints = parse_hints(answer(req)["choices"][0]["message"]["content"])
    assert hints["tools"][0]["name"].startswith("mock tools.name") and len(hints["strategy"]) == 1


def test_augment_refuses_an_output_folder_in_use(graded: Path, tmp_path: Path):
    from streamgrade.sinks.lock import OutputLock, OutputLocked

    out = tmp_path / "out"
    shutil.copytree(graded, out)
    with OutputLock(out, "watch"):
        with pytest.raises(OutputLocked):
            anyio.run(lambda: run_augment(out, load_config(env={})))
    assert "augment" not in results(out, "rec1")
