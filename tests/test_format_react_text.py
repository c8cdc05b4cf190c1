"""Plain-text ReAct transcripts (formats/react_text.py) on handmade files in the shapes
FireAct publishes (anchen1011/FireAct: trajs/*.json written by generation.py,
data/finetune/alpaca_format/*.json and gpt_format/*.jsonl), the original ReAct numbered
form and LangChain's Action/Action Input text; there is no corpus sample."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamgrade.config import load_config
from streamgrade.errors import InputError
from streamgrade.formats._rows import clear_cache
from streamgrade.formats.react_text import ReactText, parse_action
from streamgrade.models import Session
from streamgrade.sources.scan import ScanReport, scan

CFG = load_config(env={})
FMT = ReactText()
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMGRADE_", "OPENAI_", "ANTHROPIC_"))}
ALPACA_HEAD = ("Below is an instruction that describes a task. Write a response that appropriately completes "
               "the request.\n\n### Instruction:\n")
FEWSHOT = ("Solve a question answering task with interleaving Thought, Action, Observation steps. Action can be "
           "two types:\n(1) search[question], which searches a question on Google.\n(2) finish[answer], which "
           "returns the answer and finishes the task.\nHere are some examples.\n\nWho wrote Hamlet?\nThought: I "
           "know it.\nAction: finish[Shakespeare]\nObservation: Episode finished, reward = 1\n\n")

# trajs/hotpotqa_dev_..._llama_...json: generation.py --alpaca_format, traj a string
LLAMA_TRAJS = {
    "6238": {"reward": True, "em": True, "f1": 1.0, "gt": "seth macfarlane", "pred": "seth macfarlane", "prompt": "",
             "traj": ALPACA_HEAD + "Who created the show with Wendy Schaal doing the voice of Francine?\n\n### Response:\n"
             "Thought: I need to search who created the show Wendy Schaal voices Francine in.\n"
             "Action: search[Wendy Schaal voice of Francine show creator]\n"
             "Observation: Schaal voices Francine Smith on the Fox series American Dad!, created by Seth MacFarlane.\n"
             "Thought: The show was created by Seth MacFarlane.\nAction: finish[Seth MacFarlane]\n"
             "Observation: Episode finished, reward = True\n",
             "traj_by_line": ["(the traj split at newlines)"]},
    "3824": {"reward": False, "em": False, "f1": 0, "gt": "bill clinton", "pred": "william crowe", "prompt": "",
             "traj": ALPACA_HEAD + "Author David Chanoff has collaborated with a U.S. Navy admiral who served as the "
             "ambassador to the United Kingdom under which President?\n\n### Response:\n"
             "Thought: I need to find the admiral and the president he served under.\n"
             "Action: search[U.S. Navy admiral ambassador to the United Kingdom]\n"
             "Observation: President Clinton nominates William Crowe ambassador to the United Kingdom. March 22, 1994.\n"
             "Thought: The admiral is William Crowe.\nAction: finish[William Crowe]\n"
             "Observation: Episode finished, reward = False\n"},
}
# trajs/..._gpt-3.5-turbo...json: generation.py --chatgpt_format, traj a message list
CHAT_TRAJS = {
    "5388": {"reward": False, "em": False, "f1": 0, "gt": "torpedoes", "pred": "enemy ships and aircraft",
             "prompt": [{"role": "user", "content": "Who wrote Hamlet?"},
                        {"role": "assistant", "content": "Thought: I know it.\nAction: finish[Shakespeare]"},
                        {"role": "user", "content": "Observation: Episode finished, reward = True"}],
             "traj": [{"role": "user", "content": "What objects were carried into battle by the naval ships the QF "
                                                  "6-pounder Hotchkiss was introduced to defend against?"},
                      {"role": "assistant", "content": "Thought: I need to search the QF 6-pounder Hotchkiss.\n"
                                                       "Action: search[QF 6-pounder Hotchkiss introduced to defend against]"},
                      {"role": "user", "content": "Observation: It was introduced to defend against small, fast "
                                                  "torpedo boats."},
                      {"role": "assistant", "content": "Thought: Torpedo boats carried torpedoes, but I will answer ships.\n"
                                                       "Action: finish[Enemy ships and aircraft]"},
                      {"role": "user", "content": "Observation: Episode finished, reward = False"}]},
}
# trajs/ with a few-shot string prompt (default prompt, no alpaca format): the question opens the traj
FEWSHOT_TRAJS = {
    "807": {"reward": 1, "em": 1, "f1": 1.0, "gt": "game of thrones", "pred": "game of thrones", "prompt": FEWSHOT,
            "traj": "Alfie Allen played Theon Greyjoy on which show?\nThought: I need to search Alfie Allen Theon "
                    "Greyjoy.\nAction: search[Alfie Allen Theon Greyjoy show]\nObservation: Alfie Allen plays Theon "
                    "Greyjoy in HBO's Game of Thrones.\nThought: The show is Game of Thrones.\n"
                    "Action: finish[Game of Thrones]\nObservation: Episode finished, reward = 1\n"},
}
# data/finetune/alpaca_format/multitask_multimethod.json: records, some with options before the Thought
ALPACA_ROWS = [
    {"instruction": "Which magazine was started first Arthur's Magazine or First for Women?", "input": "",
     "output": "Thought: I need to search the start dates of both.\nAction: search[Arthur's Magazine start date]\n"
               "Observation: Arthur's Magazine (1844-1846) was an American literary periodical.\n"
               "Thought: Now First for Women.\nAction: search[First for Women start date]\n"
               "Observation: The magazine was started in 1989 by Bauer Media Group.\n"
               "Thought: Arthur's Magazine was started first.\nAction: finish[Arthur's Magazine]\n"
               "Observation: Episode finished, reward = True\n"},
    {"instruction": "Question: Soil contains", "input": "",
     "output": "A. the ozone layer\nB. a decaying democracy\nC. waves of salt-water\nD. chemical substances\n"
               "Thought: Soil is a mixture of organic matter and minerals: chemical substances.\n"
               "Action: finish[D]\nObservation: Episode finished, reward = 1"},
]
# data/finetune/gpt_format/hotpotqa.jsonl: {"messages": [...]} per line
GPT_ROWS = [{"messages": CHAT_TRAJS["5388"]["traj"]},
            {"messages": [{"role": "user", "content": "Who is older, Ringo Starr or Paul McCartney?"},
                          {"role": "assistant", "content": "Thought: Search both birth dates.\nAction: search[Ringo Starr born]"},
                          {"role": "user", "content": "Observation: 7 July 1940"},
                          {"role": "assistant", "content": "Thought: Ringo is older than Paul (1942).\nAction: finish[Ringo Starr]"},
                          {"role": "user", "content": "Observation: Episode finished, reward = True"}]}]
# the original ReAct prompt's numbered form, and LangChain's agent text
OTHER_ROWS = [
    {"id": "hp-1", "question": "What is the elevation range for the area that the eastern sector of the Colorado "
                               "orogeny extends into?",
     "prompt": "Solve a question answering task with interleaving Thought, Action, Observation steps.\n",
     "response": "Thought 1: I need to search Colorado orogeny.\nAction 1: Search[Colorado orogeny]\n"
                 "Observation 1: The Colorado orogeny was an episode of mountain building in Colorado.\n"
                 "Thought 2: It does not mention the eastern sector.\nAction 2: Lookup[eastern sector]\n"
                 "Observation 2: (Result 1 / 1) The eastern sector extends into the High Plains.\n"
                 "Thought 3: The High Plains rise from around 1,800 to 7,000 ft.\nAction 3: Finish[1,800 to 7,000 ft]",
     "correct": True, "model": "text-davinci-002"},
    {"id": "lc-1", "text": "Question: What is 17 times 23, plus the year Python 3 was released?\n"
                           "Thought: I need the year first.\nAction: web_search\nAction Input: Python 3 release year\n"
                           "Observation: Python 3.0 was released on December 3, 2008.\n"
                           "Thought: Now compute.\nAction: calculator(17*23 + 2008)\nObservation: 2399\n"
                           "Thought: I now know the final answer\nFinal Answer: 2399"},
    {"prompt": "Answer with search[...] and finish[...].\nQuestion: Who wrote Hamlet?\nThought: I know it.\n"
               "Action: finish[Shakespeare]\nObservation: Episode finished, reward = 1\n\nQuestion: Where is the Louvre?\n",
     "completion": "Thought: It is in Paris.\nAction: finish[Paris]\nObservation: Episode finished, reward = 0"},
]


def write(path: Path, doc, jsonl: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(json.dumps(r) for r in doc) + "\n" if jsonl else json.dumps(doc, indent=2))
    return path


def read(folder: Path) -> dict[str, Session]:
    clear_cache()
    return {r.session_id: FMT.assemble(r, CFG) for r in FMT.find(folder, sorted(os.listdir(folder)))}


def shown(s: Session) -> str:
    return json.dumps([m.content for m in s.transcript]) + json.dumps(s.meta) + s.task


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    write(d / "trajs" / "hotpotqa_dev_0_500_llama_lora_0.7_2023-09-19.json", LLAMA_TRAJS)
    write(d / "trajs" / "hotpotqa_dev_0_500_gpt-3.5-turbo_0.0_2023-09-21.json", CHAT_TRAJS)
    write(d / "trajs" / "hotpotqa_dev_0_500_gpt-4_fewshot.json", FEWSHOT_TRAJS)
    write(d / "finetune" / "multitask_multimethod.json", ALPACA_ROWS)
    write(d / "finetune" / "hotpotqa.jsonl", GPT_ROWS, jsonl=True)
    write(d / "other" / "runs.json", OTHER_ROWS)
    return d


def test_fireact_alpaca_traj_keyed_by_question(data: Path):
    got = read(data / "trajs")
    s = got["hotpotqa_dev_0_500_llama_lora_0.7_2023-09-19.6238"]
    assert s.ref.locator == "key:6238" and s.task_id == "6238" and s.meta["shape"] == "alpaca"
    assert s.task == "Who created the show with Wendy Schaal doing the voice of Francine?"
    assert [(c.name, c.arguments) for st_ in s.steps for c in st_.tool_calls] == [
        ("search", "Wendy Schaal voice of Francine show creator"), ("finish", "Seth MacFarlane")]
    assert s.steps[1].message == "I need to search who created the show Wendy Schaal voices Francine in."
    assert s.steps[1].observations[0].content.startswith("Schaal voices Francine Smith")
    assert s.steps[2].observations[0].content == "Episode finished"  # "reward = True" is cut
    assert s.reward == 1.0 and s.metrics == {"steps": 3.0, "f1": 1.0} and s.termination == "stop"
    lost = got["hotpotqa_dev_0_500_llama_lora_0.7_2023-09-19.3824"]
    assert lost.reward == 0.0 and lost.task.startswith("Author David Chanoff")
    for x in (s, lost):
        assert "reward =" not in shown(x) and "bill clinton" not in shown(x) and "seth macfarlane" not in shown(x)
        assert "Below is an instruction" not in shown(x)


def test_fireact_chat_traj_and_fewshot_prompts(data: Path):
    got = read(data / "trajs")
    c = got["hotpotqa_dev_0_500_gpt-3.5-turbo_0.0_2023-09-21.5388"]
    assert c.meta["shape"] == "messages" and c.meta["fewshot_prompt"] is True
    assert [s.source for s in c.steps] == ["system", "user", "agent", "agent"]
    assert c.steps[0].message.startswith("user: Who wrote Hamlet?") and "reward" not in c.steps[0].message
    assert c.task.startswith("What objects were carried into battle")
    assert c.steps[2].tool_calls[0].arguments == "QF 6-pounder Hotchkiss introduced to defend against"
    assert c.steps[2].observations[0].content == "It was introduced to defend against small, fast torpedo boats."
    assert c.reward == 0.0 and "torpedoes\"" not in shown(c) and c.turns == 2 and c.n_tool_calls == 2
    f = got["hotpotqa_dev_0_500_gpt-4_fewshot.807"]
    assert f.steps[0].source == "system" and f.steps[0].message.startswith("Solve a question answering task")
    assert f.task == "Alfie Allen played Theon Greyjoy on which show?"  # the text before the first Thought
    assert f.steps[1].message == f.task and f.steps[2].message == "I need to search Alfie Allen Theon Greyjoy."
    assert f.reward == 1.0 and "reward = 1" not in shown(f)


def test_alpaca_records_and_gpt_format_lines(data: Path):
    alp = read(data / "finetune")
    a0 = alp["multitask_multimethod.row0"]
    assert a0.task == "Which magazine was started first Arthur's Magazine or First for Women?"
    assert [c.name for st_ in a0.steps for c in st_.tool_calls] == ["search", "search", "finish"]
    assert a0.reward == 1.0 and a0.meta["shape"] == "alpaca"
    a1 = alp["multitask_multimethod.row1"]  # the options the model wrote open its first message
    assert a1.task == "Question: Soil contains" and a1.steps[1].message.startswith("A. the ozone layer\n")
    assert a1.steps[1].message.endswith("chemical substances.") and a1.reward == 1.0  # from the observation
    g1 = alp["hotpotqa.row1"]
    assert g1.ref.locator == "1" and g1.task == "Who is older, Ringo Starr or Paul McCartney?"
    assert g1.steps[1].observations[0].content == "7 July 1940" and g1.reward == 1.0


def test_numbered_react_and_langchain_text(data: Path):
    got = read(data / "other")
    hp = got["runs.row0"]
    assert hp.meta["numbered"] is True and hp.task_id == "hp-1" and hp.model == "text-davinci-002"
    assert hp.task.startswith("What is the elevation range")
    assert [(c.name, c.arguments) for st_ in hp.steps for c in st_.tool_calls] == [
        ("Search", "Colorado orogeny"), ("Lookup", "eastern sector"), ("Finish", "1,800 to 7,000 ft")]
    assert hp.reward == 1.0 and hp.termination == "stop"
    assert hp.steps[0].source == "system" and hp.steps[0].message.startswith("Solve a question answering task")
    assert hp.steps[-1].observations == []  # the last action has no observation in the transcript
    lc = got["runs.row1"]
    assert lc.task == "What is 17 times 23, plus the year Python 3 was released?"
    assert [(c.name, c.arguments) for st_ in lc.steps for c in st_.tool_calls] == [
        ("web_search", "Python 3 release year"), ("calculator", "17*23 + 2008")]
    assert lc.steps[-1].message == "I now know the final answer\nFinal Answer: 2399" and lc.termination == "stop"
    assert lc.reward is None
    pr = got["runs.row2"]  # no question field: the prompt's last Question is the task
    assert pr.task == "Where is the Louvre?" and [st_.source for st_ in pr.steps] == ["user", "agent"]
    assert pr.reward == 0.0 and "Shakespeare" not in shown(pr)


def test_action_shapes():
    assert (parse_action('{"action": "get_order", "action_input": {"id": 3}}', "c").arguments) == {"id": 3}
    assert parse_action('{"name": "calc", "arguments": "1+1"}', "c").name == "calc"
    assert (parse_action("go to the kitchen", "c").name, parse_action("go to the kitchen", "c").arguments) == \
        ("action", "go to the kitchen")
    assert parse_action("search[a [nested] thing]", "c").arguments == "a [nested] thing"
    assert parse_action("Finish", "c").arguments == {}


def test_detection_is_specific(tmp_path: Path):
    chat = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}] * 3
    chat.append({"messages": [{"role": "user", "content": "q"},
                              {"role": "assistant", "content": "Thought: x\nAction: search[y]"}]})
    write(tmp_path / "mostly_chat.json", chat)  # 1 ReAct row of 4: the generic reader's
    write(tmp_path / "mention.json", [{"text": "The film's tagline was\nAction: it never stops"}])
    assert FMT.find(tmp_path, sorted(os.listdir(tmp_path))) == []
    refs = list(scan([tmp_path], report=ScanReport()))
    assert {Path(r.path).name: r.format for r in refs} == {"mostly_chat.json": "openai-chat"}
    # a corrupted BALROG summary quoting "Action: Do", and a broken file with only Action lines, are not taken
    (tmp_path / "default_run_00.json").write_bytes(b'\xff"failed_candidates": ["Thought: x\\n\\nAction: Do"]}')
    (tmp_path / "acts.json").write_bytes(b'\xff[{"text": "Action: Do"')
    assert FMT.find(tmp_path, ["acts.json", "default_run_00.json"]) == []
    # looks like ReAct but is cut short: one session that fails naming the line
    (tmp_path / "broken.json").write_text('[{"traj": "Thought: a\\nAction: b[c]",\n')
    (ref,) = FMT.find(tmp_path, ["broken.json"])
    with pytest.raises(InputError, match=r"broken\.json:1: invalid JSON: Input data was truncated"):
        FMT.assemble(ref, CFG)


def test_gpt_format_is_taken_from_the_generic_reader(data: Path):
    report = ScanReport(keep=50)
    refs = list(scan([data], report=report))
    assert {r.format for r in refs} == {"react-text"} and len(refs) == 11 and report.unrecognised == 0


def test_errors_name_the_file_and_field(tmp_path: Path):
    rows = [ALPACA_ROWS[0], {"instruction": 7, "output": ALPACA_ROWS[0]["output"]}, ["not", "a", "row"]]
    path = write(tmp_path / "a.json", rows)
    refs = FMT.find(tmp_path, ["a.json"])
    assert len(refs) == 3
    with pytest.raises(InputError) as e:
        FMT.assemble(refs[1], CFG)
    assert str(e.value) == f"{path}: [1].instruction: expected a string, got int"
    with pytest.raises(InputError, match=r"\[2\]: expected a row object or a transcript string, got list"):
        FMT.assemble(refs[2], CFG)
    keyed = write(tmp_path / "k" / "t.json", {"1": LLAMA_TRAJS["6238"], "2": {"traj": 5, "prompt": ""}})
    krefs = FMT.find(keyed.parent, ["t.json"])
    assert [r.locator for r in krefs] == ["key:1", "key:2"]
    with pytest.raises(InputError, match=r"t\.json: 2: no ReAct transcript"):
        FMT.assemble(krefs[1], CFG)


# -- fuzz ---------------------------------------------------------------------------------------
LABELS = ["Thought", "Thought 2", "Action", "Action 1", "Action Input", "Observation", "Observation 3",
          "Final Answer", "Question", "### Instruction", "### Response", "### Input"]
LINE = st.tuples(st.sampled_from(LABELS), st.text(alphabet="ab[]()\"{}:,= 1\n", max_size=12)).map(lambda t: f"{t[0]}: {t[1]}")
TEXT = st.lists(LINE, min_size=1, max_size=8).map("\n".join)
VALUE = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | TEXT | \
    st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "tool", "x", 3]), "content": TEXT | st.none()}), max_size=4)


@settings(max_examples=80, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=st.dictionaries(st.sampled_from(["traj", "output", "instruction", "input", "question", "prompt", "messages",
                                               "reward", "em", "f1", "text", "response"]), VALUE, max_size=5),
       keyed=st.booleans())
def test_fuzz_rows_give_session_or_input_error(tmp_path_factory, fields, keyed):
    folder = tmp_path_factory.mktemp("fuzz")
    good = ALPACA_ROWS[0]
    path = write(folder / "t.json", {"q1": good, "q2": fields} if keyed else [good, fields])
    clear_cache()
    for ref in FMT.find(folder, ["t.json"]):
        try:
            s = FMT.assemble(ref, CFG)
        except InputError as exc:
            assert str(exc).startswith(f"{path}: ")
        else:
            assert isinstance(s, Session) and s.task and s.transcript


# -- the CLI ------------------------------------------------------------------------------------
def test_grade_react_files_with_the_cli(data: Path, tmp_path: Path):
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", "streamgrade", "grade", str(data), "-o", str(out)],
                         capture_output=True, text=True, env=CLEAN_ENV, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "11 graded, 0 failed" in res.stderr and "not recognised" not in res.stderr
    recs = {r["session_id"]: r for r in map(json.loads, (out / "exports" / "scores.jsonl").read_text().splitlines())}
    assert {r["source_format"] for r in recs.values()} == {"react-text"}
    r = recs["hotpotqa_dev_0_500_llama_lora_0.7_2023-09-19.6238"]
    assert (r["reward"], r["task_id"], r["tool_calls"], r["turns"], r["termination"]) == (1.0, "6238", 2, 2, "stop")
