"""Guacamole recordings (extract/guac.py): the streaming parser, keysyms, the fixture built
from the Clones timeline (scripts/make_guac_fixture.py), and a differential test against
the reference client's own ``Guacamole.Parser`` run under Node (tests/guac_node)."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamgrade.config import ExtractConfig
from streamgrade.extract.actions import extract_actions
from streamgrade.extract.guac import (
    GuacError, Instruction, encode_instruction, events_from_guac, instruction_events,
    keysym_char, keysym_name, parse_instructions,
)

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_DIR = ROOT / "examples/guac"
SESSION = "6792a2a124f444f0e39ce887"
GUAC = FIXTURE_DIR / f"{SESSION}.guac"
EXPECTED = FIXTURE_DIR / f"{SESSION}.expected.json"
CLONES_HTML = ROOT.parent / "shared/corpus/clones/data/tests/extraction/guac_test.html"
NODE_DIR = Path(__file__).resolve().parent / "guac_node"


def parse(data, chunks=None):
    return [(i.opcode, *i.args) for i in parse_instructions(chunks if chunks is not None else [data])]


def split(data, cuts):
    cuts = sorted(set(c for c in cuts if 0 < c < len(data)))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]


# -- parser -----------------------------------------------------------------------------------

def test_handcrafted_instructions():
    data = "4.sync,3.100;5.mouse,2.10,2.20,1.5;0.;4.name,7.a,b.c;d;3.é😀x,0.;"
    assert parse(data) == [("sync", "100"), ("mouse", "10", "20", "5"), ("",),
                           ("name", "a,b.c;d"), ("é😀x", "")]
    ins = list(parse_instructions([data.encode()]))
    assert [i.offset for i in ins] == [0, 13, 35, 38, 55]
    assert ins[0] == Instruction("sync", ("100",), 0)
    # lengths count code points: é is 2 bytes, 😀 4 bytes (2 UTF-16 units), one character each
    assert encode_instruction("é😀x", "") == "3.é😀x,0.;"


def test_every_split_point_bytes_and_text():
    data = "4.sync,13.1737663137306;4.name,8.é,😀;中.文x;3.key,5.65505,1.1;"
    want = parse(data)
    raw = data.encode()
    for i in range(1, len(raw)):  # inside length prefixes, values, UTF-8 sequences
        assert parse(None, split(raw, [i])) == want, i
    for i in range(1, len(data)):
        assert parse(None, split(data, [i])) == want, i
    assert parse(None, [bytes([b]) for b in raw]) == want
    assert parse(None, [b"", raw, b""]) == want


def test_instruction_yielded_before_rest_of_stream():
    gen = parse_instructions(iter([b"4.sync,1.5;", b"5.mouse,1.1"]))
    assert next(gen) == Instruction("sync", ("5",), 0)
    with pytest.raises(GuacError) as e:
        next(gen)
    assert e.value.offset == 11


@pytest.mark.parametrize("data, offset, words", [
    (b"4.sync,3.100;x", 13, "digit"),
    (b"4.sync,3.100;\n4.sync,1.1;", 13, "digit"),          # no whitespace between instructions
    (b"4.sync,3.100", 0, "ends inside an instruction"),
    (b"4.sync,3.100;5.mou", 13, "ends inside an instruction"),
    (b"4.sync,3.1000;", 12, "expected ','"),               # value longer than declared
    (b"4.sync,2.100;", 11, "expected ','"),                # value shorter than declared
    (b"4.syn;5.mouse;", 6, "expected ','"),           # "syn;" is the opcode
    (b".sync;", 0, "empty element length"),
    (b"4.sync,-1.x;", 7, "digit"),
    (b"4.sync,12345678901.x;", 18, "longer than"),
    (b"1.\xc3\xa9x;", 4, "expected ','"),                   # é counts as one character
    (b"1.\xff;", 2, "invalid UTF-8"),
    (b"1.a;1.\xc3", 6, "inside a UTF-8 sequence"),
    (b"3.\xc3\xa9\xc3\xa9\xc3\xa9,1.\xe2\x82;", 11, "invalid UTF-8"),
])
def test_malformed_gives_offset(data, offset, words):
    with pytest.raises(GuacError) as e:
        list(parse_instructions([data]))
    assert e.value.offset == offset, str(e.value)
    assert words in e.value.message
    assert isinstance(e.value, ValueError)
    # the same error wherever the input is split
    for i in range(1, len(data)):
        with pytest.raises(GuacError) as e2:
            list(parse_instructions(split(data, [i])))
        assert (e2.value.offset, e2.value.message) == (e.value.offset, e.value.message), i


def test_malformed_event_arguments(tmp_path):
    path = tmp_path / "bad.guac"
    path.write_text("4.sync,1.0;5.mouse,1.1,1.x,1.0;")
    with pytest.raises(GuacError) as e:
        events_from_guac(path)
    assert e.value.offset == 11 and "mouse y" in e.value.message
    path.write_text("4.sync,1.0;3.key,5.65505;")
    with pytest.raises(GuacError, match="keysym and pressed"):
        events_from_guac(path)


# -- keysyms and events -----------------------------------------------------------------------

@pytest.mark.parametrize("keysym, name, char", [
    (0x61, "KeyA", "a"), (0x41, "KeyA", "A"), (0x21, "!", "!"), (0x31, "Digit1", "1"),
    (0x20, "Space", " "), (0xE9, "é", "é"), (0x010020AC, "€", "€"), (0x0101F600, "😀", "😀"),
    (0xFF0D, "Return", ""), (0xFF08, "Backspace", ""), (0xFFE1, "ShiftLeft", ""),
    (0xFFE4, "ControlRight", ""), (0xFFE9, "AltLeft", ""), (0xFFEB, "MetaLeft", ""),
    (0xFF51, "LeftArrow", ""), (0xFFBE, "F1", ""), (0xFFB5, "Num5", "5"), (0xFE52, "Keysym0xfe52", ""),
])
def test_keysyms(keysym, name, char):
    assert (keysym_name(keysym), keysym_char(keysym)) == (name, char)


def _events(text):
    return [(e.t_ms, e.kind, e.data) for e in instruction_events(parse_instructions([text]))]


def test_mouse_mask_transitions_and_time():
    text = "".join([
        encode_instruction("mouse", 5, 5, 0),                 # before the first sync: t=0
        encode_instruction("sync", 1000), encode_instruction("mouse", 10, 20, 0),
        encode_instruction("sync", 1100), encode_instruction("mouse", 10, 20, 4),   # right down
        encode_instruction("sync", 1150), encode_instruction("mouse", 10, 20, 6),   # + middle
        encode_instruction("mouse", 12, 20, 0, 1170),          # own timestamp, move, both up
        encode_instruction("mouse", 12, 20, 8, 1200), encode_instruction("mouse", 12, 20, 0, 1210),
        encode_instruction("mouse", 12, 20, 16, 1300), encode_instruction("mouse", 12, 20, 24, 1310),
    ])
    assert _events(text) == [
        (0, "mousemove", {"x": 5, "y": 5}),
        (0, "mousemove", {"x": 10, "y": 20}),
        (100, "mousedown", {"button": "Right"}),
        (150, "mousedown", {"button": "Middle"}),
        (170, "mousemove", {"x": 12, "y": 20}),
        (170, "mouseup", {"button": "Middle"}),
        (170, "mouseup", {"button": "Right"}),
        (200, "mousewheel", {"delta": 1}),
        (300, "mousewheel", {"delta": -1}),
        (310, "mousewheel", {"delta": 1}),
    ]


def test_shift_and_ctrl_keys_to_actions():
    ks = [(0xFFE1, 1), (0x48, 1), (0x48, 0), (0xFFE1, 0), (0x69, 1), (0x69, 0), (0xFFE1, 1), (0x21, 1),
          (0x21, 0), (0xFFE1, 0), (0xFF08, 1), (0xFF08, 0), (0xFFE3, 1), (0x7A, 1), (0x7A, 0), (0xFFE3, 0),
          (0xFF0D, 1), (0xFF0D, 0)]
    text = encode_instruction("sync", 0) + "".join(
        encode_instruction("sync", 100 * i) + encode_instruction("key", k, p) for i, (k, p) in enumerate(ks, 1))
    acts = extract_actions(instruction_events(parse_instructions([text])), ExtractConfig())
    assert [(a.kind, a.text, a.keys) for a in acts] == [
        ("type", "Hi", None), ("hotkey", None, ["Ctrl", "z"]), ("key", None, ["Return"])]  # Backspace ate "!"


def test_shift_typing_exact_text():
    ks = [(0xFFE1, 1), (0x48, 1), (0x48, 0), (0xFFE1, 0), (0x69, 1), (0x69, 0), (0xFFE1, 1), (0x21, 1),
          (0x21, 0), (0xFFE1, 0)]
    text = encode_instruction("sync", 0) + "".join(
        encode_instruction("key", k, p, 100 * i) for i, (k, p) in enumerate(ks, 1))
    acts = extract_actions(instruction_events(parse_instructions([text])), ExtractConfig())
    assert [(a.kind, a.text) for a in acts] == [("type", "Hi!")]


# -- the fixture built from the Clones timeline -----------------------------------------------

def _fixture_actions(text=None):
    if text is None:
        events = events_from_guac(GUAC)
    else:
        events = list(instruction_events(parse_instructions([text])))
    return extract_actions(events, ExtractConfig())


def _expected():
    return json.loads(EXPECTED.read_text("utf-8"))["events"]


def _check_against_timeline(actions):
    expected = _expected()
    assert len(actions) == len(expected)
    for exp, act in zip(expected, actions):  # both in time order
        where = f"{exp['source']} event at {exp['t_ms']} ms: {exp} vs {act}"
        assert abs(act.t_ms - exp["t_ms"]) <= 5, where
        kind = exp["kind"]
        if kind == "mouseclick":
            assert (act.kind, act.x, act.y, act.button) == ("click", exp["x"], exp["y"], exp.get("button", "left")), where
        elif kind == "mousedrag":
            pts = exp["points"]
            assert (act.kind, act.button, act.x, act.y) == ("drag", "left", pts[0][1], pts[0][2]), where
            assert abs(act.end_ms - (exp["t_ms"] + pts[-1][0])) <= 5, where
            assert act.path[0] == (pts[0][1], pts[0][2]) and act.path[-1] == (pts[-1][1], pts[-1][2]), where
            assert set(act.path) <= {(x, y) for _, x, y in pts}, where
        elif kind == "type":
            assert (act.kind, act.text) == ("type", exp["text"]), where
        elif kind == "hotkey" and exp.get("text") == "enter":  # Clones called a lone Return a hotkey
            assert (act.kind, act.keys) == ("key", ["Return"]), where
        elif kind == "hotkey":
            assert (act.kind, act.keys) == ("hotkey", exp["keys"]), where
        elif kind == "scroll":
            assert (act.kind, act.x, act.y, act.dy, act.ticks) == (
                "scroll", exp["x"], exp["y"], float(sum(exp["ticks"])), len(exp["ticks"])), where
        else:
            raise AssertionError(where)


def test_fixture_is_small():
    assert GUAC.stat().st_size < 200_000


def test_fixture_reproduces_clones_timeline():
    actions = _fixture_actions()
    _check_against_timeline(actions)
    kinds = [(a.kind, a.button, a.text, tuple(a.keys or ())) for a in actions]
    assert ("click", "right", None, ()) in kinds
    assert ("click", "middle", None, ()) in kinds
    assert ("type", None, "Hello World!", ()) in kinds
    assert ("hotkey", None, None, ("Ctrl", "z")) in kinds
    assert ("type", None, "naïve €", ()) in kinds
    assert [a.dy for a in actions if a.kind == "scroll"] == [-3.0, 2.0]
    source = [e for e in _expected() if e["source"] == "guac_test.html"]
    assert len(source) == 131


def test_fixture_times_from_sync_alone():
    """Without the optional timestamps of mouse/key, the last sync gives the same times."""
    stripped = []
    for ins in parse_instructions([GUAC.read_bytes()]):
        args = ins.args[:3] if ins.opcode == "mouse" else ins.args[:2] if ins.opcode == "key" else ins.args
        stripped.append(encode_instruction(ins.opcode, *args))
    assert _fixture_actions("".join(stripped)) == _fixture_actions()


def _fixture_script():
    spec = importlib.util.spec_from_file_location("make_guac_fixture", ROOT / "scripts/make_guac_fixture.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(not CLONES_HTML.exists(), reason=f"Clones corpus not present at {CLONES_HTML}")
def test_fixture_matches_clones_html_and_regenerates(tmp_path):
    mod = _fixture_script()
    timeline = mod.parse_timeline(CLONES_HTML.read_text("utf-8"))
    from_html = [{k: v for k, v in e.items() if k != "source"} for e in _expected() if e["source"] == "guac_test.html"]
    assert json.loads(json.dumps(timeline)) == from_html
    assert mod.main(["--html", str(CLONES_HTML), "--out", str(tmp_path)]) == 0
    assert (tmp_path / GUAC.name).read_bytes() == GUAC.read_bytes()
    assert (tmp_path / EXPECTED.name).read_bytes() == EXPECTED.read_bytes()


# -- differential test against Guacamole.Parser (guacamole-common-js under Node) ---------------

class NodeParser:
    """tests/guac_node/parse.js --serve: one request/answer JSON line per recording."""

    def __init__(self, lib: str):
        self.proc = subprocess.Popen(["node", str(NODE_DIR / "parse.js"), "--lib", lib, "--serve"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, encoding="utf-8")

    def parse(self, text: str, chunks: list[int] | None = None) -> dict:
        self.proc.stdin.write(json.dumps({"data": text, "chunks": chunks or []}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "node parse.js exited"
        ans = json.loads(line)
        ans["instructions"] = [tuple(i) for i in ans["instructions"]]
        return ans

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def _node_ready() -> str | None:
    """None when tests/guac_node is usable, else the reason to skip (or fail under
    STREAMGRADE_REQUIRE_NODE=1, as CI should set)."""
    if not shutil.which("node"):
        return "node is not installed (apt-get install nodejs npm)"
    if not (NODE_DIR / "node_modules/guacamole-common-js").is_dir() or \
            not (NODE_DIR / "node_modules/@glokon/guacamole-common-js").is_dir():
        if not shutil.which("npm"):
            return "npm is not installed and tests/guac_node/node_modules is absent"
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--prefix", str(NODE_DIR)],
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            return f"npm ci in tests/guac_node failed: {r.stderr.strip()[-300:]}"
    return None


@pytest.fixture(scope="session")
def node_ready():
    reason = _node_ready()
    if reason:
        if os.environ.get("STREAMGRADE_REQUIRE_NODE") == "1":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def node_current(node_ready):
    """Apache Guacamole 1.6.0's parser (npm @glokon/guacamole-common-js 1.6.0)."""
    p = NodeParser("current")
    yield p
    p.close()


@pytest.fixture(scope="session")
def node_legacy(node_ready):
    """Apache Guacamole 1.5.0's parser (npm guacamole-common-js 1.5.0)."""
    p = NodeParser("legacy")
    yield p
    p.close()


def test_node_cli_reads_stdin(node_ready):
    r = subprocess.run(["node", str(NODE_DIR / "parse.js")], input=GUAC.read_bytes(), capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    ans = json.loads(r.stdout)
    assert ans["error"] is None
    assert [tuple(i) for i in ans["instructions"]] == parse(GUAC.read_bytes())


@pytest.mark.parametrize("lib", ["current", "legacy"])
def test_fixture_same_as_reference(lib, request):
    node = request.getfixturevalue(f"node_{lib}")
    text = GUAC.read_text("utf-8")
    ans = node.parse(text)
    assert ans["error"] is None
    assert ans["instructions"] == parse(GUAC.read_bytes())


def test_astral_characters_legacy_parser_miscounts(node_current, node_legacy):
    """guacamole-common-js 1.5.0 counts UTF-16 units (fixed upstream by GUACAMOLE-615 in
    1.5.1+): a character outside the BMP breaks it; 1.6.0 and ours count code points."""
    text = encode_instruction("name", "😀 ok") + encode_instruction("sync", 1)
    assert parse(text) == [("name", "😀 ok"), ("sync", "1")]
    assert node_current.parse(text)["instructions"] == parse(text)
    legacy = node_legacy.parse(text)
    assert legacy["instructions"] != parse(text) or legacy["error"]


_ALPHABET = st.sampled_from(list("abcxyz019,.;:- \n\t\\\"'") + ["é", "ß", "中", "—", "✓", "\u00a0", "😀", "𝄞", "\u0000"])
_BMP_ALPHABET = st.sampled_from(list("abc019,.;- ") + ["é", "中", "✓", "\uffff"])
_OPCODES = st.sampled_from(["sync", "mouse", "key", "size", "img", "blob", "end", "name", "x"])


def _instructions(alphabet):
    value = st.text(alphabet=alphabet, max_size=12)
    return st.lists(st.tuples(st.one_of(_OPCODES, value), st.lists(value, max_size=5)), min_size=1, max_size=8)


def _wire(instrs):
    return "".join(encode_instruction(op, *args) for op, args in instrs)


_FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_FUZZ
@given(instrs=_instructions(_ALPHABET), seed=st.integers(0, 2**32 - 1))
def test_fuzz_same_as_reference(node_current, instrs, seed):
    text = _wire(instrs)
    raw = text.encode()
    rng = random.Random(seed)
    ours = parse(None, split(raw, rng.sample(range(1, max(2, len(raw))), min(len(raw) - 1, rng.randint(0, 6)))))
    assert ours == [(op, *args) for op, args in instrs]
    units = len(text.encode("utf-16-le")) // 2
    node_chunks = sorted(rng.sample(range(1, max(2, units)), min(units - 1, rng.randint(0, 4))))
    node_chunks = [b - a for a, b in zip([0, *node_chunks], node_chunks)]
    ans = node_current.parse(text, node_chunks)
    assert ans["error"] is None
    assert ans["instructions"] == ours


@_FUZZ
@given(instrs=_instructions(_BMP_ALPHABET))
def test_fuzz_bmp_same_as_legacy_reference(node_legacy, instrs):
    text = _wire(instrs)
    ans = node_legacy.parse(text)
    assert ans["error"] is None
    assert ans["instructions"] == parse(text.encode())


@_FUZZ
@given(instrs=_instructions(_ALPHABET), pos=st.integers(0, 10**6), junk=st.sampled_from(list(",.;x9- \n") + ["é", ""]))
def test_fuzz_corrupted_stricter_than_reference(node_current, instrs, pos, junk):
    """Corrupt one character. Whatever we accept, the reference parses identically; when we
    reject, what we yielded before the error is a prefix of what the reference yields, and
    the error offset lies inside the input."""
    text = _wire(instrs)
    i = pos % len(text)
    bad = text[:i] + junk + text[i + 1:]
    raw = bad.encode()
    got = []
    try:
        for ins in parse_instructions([raw]):
            got.append((ins.opcode, *ins.args))
    except GuacError as e:
        assert 0 <= e.offset <= len(raw)
        ans = node_current.parse(bad)
        assert ans["instructions"][:len(got)] == got
        return
    ans = node_current.parse(bad)
    assert ans["error"] is None and ans["instructions"] == got
