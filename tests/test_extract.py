"""Action extraction (streamgrade.extract.actions): the real Clones sessions at known times,
then one synthetic test per rule of the module docstring."""

from __future__ import annotations

import math
import random

import msgspec
import pytest

from streamgrade.config import ExtractConfig
from streamgrade.extract.actions import RawEvent, char_of, dedupe, downsample, extract_actions

DESKTOP_KEYS = "20251007_131852"
DESKTOP_CLICKS = "20250817_232256"


# -- helpers ------------------------------------------------------------------------------

def uc(ch: str) -> str:
    """The recorder's Rust debug string for a keydown that produced ``ch``."""
    return f'UnicodeInfo {{ name: Some("{ch}"), unicode: [{", ".join(str(ord(c)) for c in ch)}], is_dead: false }}'


def move(t: int, x: float, y: float) -> RawEvent:
    return RawEvent(t, "mousemove", {"x": x, "y": y})


def down(t: int, button: str = "Left") -> RawEvent:
    return RawEvent(t, "mousedown", {"button": button})


def up(t: int, button: str = "Left") -> RawEvent:
    return RawEvent(t, "mouseup", {"button": button})


def wheel(t: int, delta: float) -> RawEvent:
    return RawEvent(t, "mousewheel", {"delta": delta})


def kd(t: int, key: str, char: str = "") -> RawEvent:
    return RawEvent(t, "keydown", {"key": key, "actual_char": uc(char) if char else ""})


def ku(t: int, key: str) -> RawEvent:
    return RawEvent(t, "keyup", {"key": key, "actual_char": ""})


def focus(t: int, name: str | None) -> RawEvent:
    app = {"name": name, "bundle_id": None, "pid": None, "path": None} if name is not None else None
    return RawEvent(t, "axtree_interaction", {"duration": 3, "focused_app": app, "tree": {"role": "x"}})


def tap(t: int, key: str, char: str = "", hold: int = 60) -> list[RawEvent]:
    return [kd(t, key, char), ku(t + hold, key)]


def typed(t: int, text: str, step: int = 100) -> list[RawEvent]:
    """Key taps typing lowercase ``text`` (letters and spaces), ``step`` ms apart."""
    out: list[RawEvent] = []
    for i, ch in enumerate(text):
        key = "Space" if ch == " " else f"Key{ch.upper()}"
        out += tap(t + i * step, key, ch)
    return out


def click_at(t: int, x: float, y: float, button: str = "Left", hold: int = 80) -> list[RawEvent]:
    return [move(t - 10, x, y), down(t, button), up(t + hold, button)]


def run(events: list[RawEvent], **overrides):
    return extract_actions(events, ExtractConfig(**overrides))


def kinds(actions) -> list[str]:
    return [a.kind for a in actions]


# -- the real sessions ----------------------------------------------------------------------

@pytest.fixture
def keys_session(assemble, examples_dir):
    return assemble(examples_dir / DESKTOP_KEYS)


@pytest.fixture
def clicks_session(assemble, examples_dir):
    return assemble(examples_dir / DESKTOP_CLICKS)


def test_real_session_whole_timeline(keys_session):
    # Every action once: the Clones grader emitted 104 items here (each event doubled, one per wheel tick).
    got = [(a.t_ms, a.kind) for a in keys_session.actions]
    assert got == [
        (1615, "click"), (2632, "click"), (2649, "app_focus"), (3116, "type"), (4797, "key"),
        (4956, "key"), (6272, "click"), (6797, "click"), (7439, "scroll"), (8284, "hotkey"),
        (8815, "click"), (9615, "click"), (9916, "click"),
    ]


def test_real_first_click_at_press_position(keys_session):
    a = keys_session.actions[0]
    assert (a.kind, a.t_ms, a.end_ms, a.x, a.y, a.button) == ("click", 1615, 1716, 1098, 854, "left")
    # the duplicated mousedown at 1616 and mouseup at 1716 give no second click and no double_click
    assert keys_session.actions[1].t_ms == 2632 and keys_session.actions[1].kind == "click"


def test_real_typing_is_not_doubled(keys_session):
    types = [a for a in keys_session.actions if a.kind == "type"]
    assert len(types) == 1
    assert (types[0].text, types[0].t_ms, types[0].end_ms) == ("coucou", 3116, 3606)


def test_real_return_pressed_twice(keys_session):
    keys = [(a.t_ms, a.keys) for a in keys_session.actions if a.kind == "key"]
    assert keys == [(4797, ["Return"]), (4956, ["Return"])]


def test_real_meta_tab_hotkey(keys_session):
    hot = [a for a in keys_session.actions if a.kind == "hotkey"]
    assert [(a.t_ms, a.keys) for a in hot] == [(8284, ["Meta", "Tab"])]
    # MetaLeft pressed alone (8236, again at 8348) is not an action of its own
    assert not any(a.keys and "MetaLeft" in a.keys for a in keys_session.actions)


def test_real_app_focus_only_on_change(keys_session):
    # "Word" is reported at 2649, 4827, 6279 and 8818 (with focused_app null between): one action
    focus_actions = [(a.t_ms, a.text) for a in keys_session.actions if a.kind == "app_focus"]
    assert focus_actions == [(2649, "Word")]


def test_real_scroll_burst_coalesced(keys_session):
    scrolls = [a for a in keys_session.actions if a.kind == "scroll"]
    assert len(scrolls) == 1
    s = scrolls[0]
    assert (s.t_ms, s.end_ms, s.ticks, s.dy, s.x, s.y) == (7439, 7774, 41, -1441.0, 1132, -153)


def test_real_clicks_session(clicks_session):
    acts = clicks_session.actions
    assert kinds(acts).count("click") == 30
    assert kinds(acts).count("scroll") == 4
    assert len(acts) == 34
    first = acts[0]
    assert (first.kind, first.t_ms, first.x, first.y, first.button) == ("click", 1983, 1281, -38, "left")
    bursts = [(a.t_ms, a.ticks, a.dy) for a in acts if a.kind == "scroll"]
    assert bursts == [(8537, 43, -269.0), (15253, 25, -271.0), (29802, 16, 230.0), (30567, 18, -214.0)]
    times = [a.t_ms for a in acts]
    assert times == sorted(times)
    assert 0 <= times[0] and times[-1] <= clicks_session.duration_s * 1000


# -- rule 1: duplicates ---------------------------------------------------------------------

def test_duplicate_within_window_dropped_but_8ms_apart_kept():
    once = run([move(0, 10, 10), wheel(100, -3), wheel(103, -3)])
    assert [(a.ticks, a.dy) for a in once] == [(1, -3.0)]
    twice = run([move(0, 10, 10), wheel(100, -3), wheel(108, -3)])
    assert [(a.ticks, a.dy) for a in twice] == [(2, -6.0)]


def test_dedupe_drops_only_equal_kind_and_data():
    evs = [kd(0, "KeyA", "a"), kd(2, "KeyA", "a"), kd(3, "KeyB", "b"), ku(4, "KeyA"), kd(10, "KeyA", "a")]
    out = dedupe(evs, 5)
    assert [(e.t_ms, e.kind, e.data["key"]) for e in out] == [
        (0, "keydown", "KeyA"), (3, "keydown", "KeyB"), (4, "keyup", "KeyA"), (10, "keydown", "KeyA"),
    ]


def test_duplicated_press_and_release_is_one_click_not_a_double_click():
    evs = [move(0, 50, 60), down(100), down(101), up(180), up(181)]
    acts = run(evs)
    assert [(a.kind, a.t_ms, a.x, a.y) for a in acts] == [("click", 100, 50, 60)]


def test_duplicated_keys_type_each_character_once():
    evs = []
    for e in typed(0, "hi"):
        evs += [e, RawEvent(e.t_ms + 1, e.kind, dict(e.data))]
    assert [(a.kind, a.text) for a in run(evs)] == [("type", "hi")]


# -- rule 2: key repeat ---------------------------------------------------------------------

def test_key_auto_repeat_dropped_until_keyup():
    evs = [kd(0, "KeyA", "a"), kd(40, "KeyA", "a"), kd(80, "KeyA", "a"), ku(120, "KeyA"), kd(200, "KeyA", "a"), ku(260, "KeyA")]
    assert [(a.kind, a.text) for a in run(evs)] == [("type", "aa")]


def test_held_return_is_one_key_action():
    evs = [kd(0, "Return"), kd(300, "Return"), kd(340, "Return"), ku(400, "Return")]
    assert [(a.kind, a.keys) for a in run(evs)] == [("key", ["Return"])]


# -- rule 3: clicks, drags, holds -----------------------------------------------------------

def test_click_small_move_is_click_at_press_position():
    evs = [move(0, 100.4, 200.6), down(50), move(60, 103.0, 202.0), up(120)]
    acts = run(evs)
    assert len(acts) == 1
    a = acts[0]
    assert (a.kind, a.t_ms, a.end_ms, a.x, a.y, a.button) == ("click", 50, 120, 100, 201, "left")
    assert a.path is None


def test_drag_path_downsampled_with_ends_kept():
    evs = [move(0, 0, 0), down(10)] + [move(20 + i * 5, i * 3.0, i * 1.0) for i in range(1, 201)] + [up(1100)]
    acts = run(evs)
    assert kinds(acts) == ["drag"]
    d = acts[0]
    assert (d.t_ms, d.end_ms, d.x, d.y, d.button) == (10, 1100, 0, 0, "left")
    cfg = ExtractConfig()
    assert 2 <= len(d.path) <= cfg.drag_max_points
    assert d.path[0] == (0, 0)
    assert d.path[-1] == (600, 200)
    xs = [p[0] for p in d.path]
    assert xs == sorted(xs)  # in path order
    # thinned: interior points are at least drag_min_step_px apart
    for p, q in zip(d.path[:-2], d.path[1:-1]):
        assert math.dist(p, q) >= cfg.drag_min_step_px


def test_drag_respects_drag_max_points_override():
    evs = [move(0, 0, 0), down(10)] + [move(20 + i, i * 20.0, 0) for i in range(1, 51)] + [up(200)]
    d = run(evs, drag_max_points=5)[0]
    assert d.kind == "drag"
    assert len(d.path) == 5
    assert d.path[0] == (0, 0) and d.path[-1] == (1000, 0)


def test_short_fast_drag_is_a_drag_not_a_click():
    d = run([move(0, 0, 0), down(10), move(20, 40, 0), up(40)])
    assert kinds(d) == ["drag"]
    assert d[0].path[0] == (0, 0) and d[0].path[-1] == (40, 0)


def test_drag_path_has_no_repeated_end_point():
    d = run([move(0, 0, 0), down(10), move(20, 40, 0), up(40)])[0]
    assert d.path == [(0, 0), (40, 0)]


def test_press_hold_without_moving():
    acts = run([move(0, 30, 40), down(100), move(500, 31, 41), up(1000)])
    assert [(a.kind, a.t_ms, a.end_ms, a.x, a.y) for a in acts] == [("press_hold", 100, 1000, 30, 40)]


@pytest.mark.parametrize("raw, name", [("Right", "right"), ("Middle", "middle")])
def test_right_and_middle_clicks(raw, name):
    acts = run(click_at(100, 10, 20, raw) + click_at(250, 10, 20, raw))
    # two fast clicks of a non-left button stay two clicks (double_click is left only)
    assert [(a.kind, a.button, a.t_ms) for a in acts] == [("click", name, 100), ("click", name, 250)]


def test_double_click():
    acts = run(click_at(100, 10, 20) + click_at(250, 11, 21))
    assert [(a.kind, a.t_ms, a.end_ms, a.x, a.y) for a in acts] == [("double_click", 100, 330, 10, 20)]


def test_two_clicks_too_slow_or_too_far_are_two_clicks():
    slow = run(click_at(100, 10, 20) + click_at(700, 10, 20))
    assert kinds(slow) == ["click", "click"]
    far = run(click_at(100, 10, 20) + click_at(250, 40, 20))
    assert kinds(far) == ["click", "click"]


def test_release_without_press_and_press_without_position_give_nothing():
    assert run([up(10)]) == []
    assert run([down(10), up(50)]) == []  # no mousemove yet: no position to click at


# -- rule 4: typing -------------------------------------------------------------------------

def test_typing_grouped_until_one_second_gap():
    evs = typed(0, "ab") + typed(100 + 900, "cd") + typed(1100 + 1500, "ef")
    acts = run(evs)
    assert [(a.kind, a.text, a.t_ms, a.end_ms) for a in acts] == [
        ("type", "abcd", 0, 1100), ("type", "ef", 2600, 2700),
    ]


def test_typing_ends_at_another_action():
    evs = typed(0, "ab") + click_at(300, 5, 5) + typed(500, "c")
    assert [(a.kind, a.text) for a in run(evs)] == [("type", "ab"), ("click", None), ("type", "c")]


def test_space_is_typed_text():
    assert [a.text for a in run(typed(0, "a b"))] == ["a b"]


def test_backspace_within_typing_deletes_last_character():
    evs = typed(0, "abc") + tap(400, "Backspace") + typed(500, "d")
    acts = run(evs)
    assert [(a.kind, a.text) for a in acts] == [("type", "abd")]


def test_backspace_alone_is_a_key():
    acts = run(tap(0, "Backspace"))
    assert [(a.kind, a.keys) for a in acts] == [("key", ["Backspace"])]


def test_shift_gives_uppercase_via_key_name_fallback():
    # actual_char is empty, so the character comes from the rdev key name and Shift
    evs = [kd(0, "ShiftLeft"), kd(50, "KeyH"), ku(90, "KeyH"), ku(120, "ShiftLeft"), kd(200, "KeyI"), ku(260, "KeyI")]
    acts = run(evs)
    assert [(a.kind, a.text, a.t_ms) for a in acts] == [("type", "Hi", 50)]


def test_shift_with_actual_char_uses_recorded_character():
    evs = [kd(0, "ShiftRight"), kd(50, "Digit1", "!"), ku(90, "Digit1"), ku(100, "ShiftRight")]
    assert [(a.kind, a.text) for a in run(evs)] == [("type", "!")]


# -- rule 5: keys and hotkeys ---------------------------------------------------------------

@pytest.mark.parametrize("mod, name", [("ControlLeft", "Ctrl"), ("ControlRight", "Ctrl"), ("MetaLeft", "Meta"), ("MetaRight", "Meta")])
def test_hotkey_with_ctrl_or_meta(mod, name):
    evs = [kd(0, mod), kd(80, "KeyC", "c"), ku(120, "KeyC"), ku(150, mod)]
    acts = run(evs)
    assert [(a.kind, a.keys, a.t_ms) for a in acts] == [("hotkey", [name, "c"], 80)]


def test_hotkey_modifier_order_and_typing_flush():
    evs = typed(0, "ab") + [kd(300, "MetaLeft"), kd(310, "ShiftLeft"), kd(320, "ControlLeft"), kd(400, "KeyZ"),
                            ku(450, "KeyZ"), ku(460, "ShiftLeft"), ku(470, "ControlLeft"), ku(480, "MetaLeft")]
    acts = run(evs)
    assert [(a.kind, a.text, a.keys) for a in acts] == [("type", "ab", None), ("hotkey", None, ["Ctrl", "Shift", "Meta", "z"])]


def test_alt_chord_is_hotkey():
    acts = run([kd(0, "Alt"), kd(50, "Tab"), ku(80, "Tab"), ku(90, "Alt")])
    assert [(a.kind, a.keys) for a in acts] == [("hotkey", ["Alt", "Tab"])]


def test_modifiers_alone_produce_nothing():
    evs = []
    for i, mod in enumerate(["ShiftLeft", "ControlLeft", "MetaLeft", "Alt", "MetaRight"]):
        evs += tap(i * 200, mod)
    evs += [kd(2000, "ShiftLeft"), kd(2010, "MetaLeft"), ku(2100, "MetaLeft"), ku(2110, "ShiftLeft")]
    assert run(evs) == []


@pytest.mark.parametrize("key", ["Return", "Tab", "Escape", "UpArrow", "F5"])
def test_non_printable_key_alone_is_key_action(key):
    acts = run(typed(0, "x") + tap(300, key))
    assert [(a.kind, a.text, a.keys) for a in acts] == [("type", "x", None), ("key", None, [key])]


# -- rule 6: scroll -------------------------------------------------------------------------

def test_scroll_ticks_coalesced_with_sum_and_count():
    evs = [move(0, 300.2, 400.7), wheel(100, -2), wheel(150, -10.5), move(160, 500, 500), wheel(400, -3)]
    acts = run(evs)
    assert len(acts) == 1
    s = acts[0]
    assert (s.kind, s.t_ms, s.end_ms, s.ticks, s.dy, s.x, s.y) == ("scroll", 100, 400, 3, -15.5, 300, 401)


def test_separate_scroll_bursts_split():
    evs = [move(0, 1, 1), wheel(100, -1), wheel(200, -1), wheel(900, 4), wheel(1000, 2)]
    acts = run(evs)
    assert [(a.t_ms, a.end_ms, a.ticks, a.dy) for a in acts] == [(100, 200, 2, -2.0), (900, 1000, 2, 6.0)]


def test_scroll_ended_by_click():
    evs = [move(0, 1, 1), wheel(100, -1)] + click_at(200, 1, 1) + [wheel(350, -1)]
    acts = run(evs)
    assert [(a.kind, a.t_ms) for a in acts] == [("scroll", 100), ("click", 200), ("scroll", 350)]


def test_zero_delta_ticks_ignored():
    assert run([move(0, 1, 1), wheel(100, 0), wheel(120, 0.0)]) == []
    # a zero tick neither counts nor bridges two bursts
    acts = run([move(0, 1, 1), wheel(100, -1), wheel(400, 0), wheel(700, 0.0), wheel(900, -1)])
    assert [(a.t_ms, a.ticks, a.dy) for a in acts] == [(100, 1, -1.0), (900, 1, -1.0)]


def test_horizontal_ticks_are_summed_and_kept_alone():
    hz = lambda t, dx, dy=0: RawEvent(t, "mousewheel", {"delta": dy, "delta_x": dx})  # noqa: E731
    acts = run([move(0, 5, 6), hz(100, 1), hz(150, 2, -1), wheel(200, -1)])
    assert [(a.t_ms, a.ticks, a.dx, a.dy, a.x, a.y) for a in acts] == [(100, 3, 3.0, -2.0, 5, 6)]
    assert [(a.dx, a.dy) for a in run([move(0, 1, 1), hz(100, -2)])] == [(-2.0, 0.0)]
    assert run([move(0, 1, 1), hz(100, 0), RawEvent(150, "mousewheel", {"delta": True})]) == []


def test_scroll_ticks_exactly_gap_apart_are_two_bursts():
    acts = run([move(0, 1, 1), wheel(100, -1), wheel(600, -1)])
    assert [(a.t_ms, a.ticks) for a in acts] == [(100, 1), (600, 1)]


# -- rule 7: app focus ----------------------------------------------------------------------

def test_app_focus_only_on_change():
    evs = [focus(0, "Word"), focus(100, "Word"), focus(200, None), focus(300, "Word"), focus(400, "Excel"),
           focus(500, "Excel"), focus(600, "Word")]
    acts = run(evs)
    assert [(a.kind, a.t_ms, a.text) for a in acts] == [
        ("app_focus", 0, "Word"), ("app_focus", 400, "Excel"), ("app_focus", 600, "Word"),
    ]


def test_app_focus_ends_typing():
    acts = run(typed(0, "ab") + [focus(300, "Finder")] + typed(400, "c"))
    assert [(a.kind, a.text) for a in acts] == [("type", "ab"), ("app_focus", "Finder"), ("type", "c")]


# -- ordering -------------------------------------------------------------------------------

def test_out_of_order_events_are_sorted():
    evs = ([focus(0, "Word")] + typed(100, "hey") + click_at(800, 10, 10) + [wheel(1200, -1), wheel(1250, -1)]
           + [kd(1600, "MetaLeft"), kd(1650, "Tab"), ku(1700, "Tab"), ku(1750, "MetaLeft")])
    expected = run(evs)
    assert kinds(expected) == ["app_focus", "type", "click", "scroll", "hotkey"]
    shuffled = evs[:]
    random.Random(7).shuffle(shuffled)
    assert shuffled != evs
    got = run(shuffled)
    assert [msgspec.to_builtins(a) for a in got] == [msgspec.to_builtins(a) for a in expected]


def test_unknown_events_ignored():
    evs = [RawEvent(0, "ffmpeg_stderr", {"output": "frame=1"}), RawEvent(5, "axtree", {"tree": {}})] + click_at(100, 3, 4)
    assert [(a.kind, a.x, a.y) for a in run(evs)] == [("click", 3, 4)]


# -- char_of --------------------------------------------------------------------------------

@pytest.mark.parametrize("key, actual, shift, expected", [
    ("KeyC", 'UnicodeInfo { name: Some("c"), unicode: [99], is_dead: false }', False, "c"),
    ("KeyE", 'UnicodeInfo { name: Some("é"), unicode: [233], is_dead: false }', False, "é"),
    ("KeyA", 'UnicodeInfo { name: Some("A"), unicode: [65], is_dead: false }', True, "A"),
    ("Digit1", 'UnicodeInfo { name: Some("!"), unicode: [33], is_dead: false }', True, "!"),
    ("KeyE", 'UnicodeInfo { name: Some("é"), unicode: [101, 769], is_dead: false }', False, "e\u0301"),
    ("Return", 'UnicodeInfo { name: Some("\\r"), unicode: [13], is_dead: false }', False, None),
    ("Tab", 'UnicodeInfo { name: Some("\\t"), unicode: [9], is_dead: false }', False, None),
    ("KeyQ", "q", False, "q"),
    # empty or uninformative actual_char: fall back to the rdev key name
    ("KeyC", "", False, "c"),
    ("KeyC", "", True, "C"),
    ("KeyC", 'UnicodeInfo { name: None, unicode: [], is_dead: false }', False, "c"),
    ("Digit7", "", False, "7"),
    ("Digit7", "", True, None),
    ("Num5", "", False, "5"),
    ("Space", "", False, " "),
    ("Comma", "", False, ","),
    ("Return", "", False, None),
    ("ShiftLeft", "", False, None),
    ("F5", None, False, None),
])
def test_char_of(key, actual, shift, expected):
    assert char_of(key, actual, shift) == expected


def test_char_of_real_recorded_string(examples_dir):
    import json

    with open(examples_dir / DESKTOP_KEYS / "input_log.jsonl", encoding="utf-8") as f:
        downs = [json.loads(line)["data"] for line in f if '"keydown"' in line]
    chars = [char_of(d["key"], d["actual_char"], False) for d in downs if d["key"].startswith("Key")]
    assert "".join(chars[::2]) == "coucou"  # every keydown is recorded twice
    assert char_of("Return", "", False) is None


# -- downsample -----------------------------------------------------------------------------

def test_downsample_empty_and_single():
    assert downsample([], 10, 32) == []
    assert downsample([(1.4, 2.6)], 10, 32) == [(1, 3)]


def test_downsample_min_step_keeps_ends():
    pts = [(0, 0), (1, 0), (2, 0), (30, 0), (33, 0), (45, 0), (46, 0)]
    assert downsample(pts, 10, 32) == [(0, 0), (30, 0), (45, 0), (46, 0)]


def test_downsample_max_points_evenly_with_ends():
    pts = [(float(i * 20), 0.0) for i in range(101)]
    out = downsample(pts, 10, 5)
    assert out == [(0, 0), (500, 0), (1000, 0), (1500, 0), (2000, 0)]


def test_downsample_rounds_to_int_points():
    out = downsample([(0.4, 0.6), (20.5, 10.49), (40.51, 20.2)], 10, 32)
    assert out == [(0, 1), (20, 10), (41, 20)]
    assert all(isinstance(c, int) for p in out for c in p)
