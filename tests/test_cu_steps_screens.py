"""The pieces of the computer-use export: step planning (extract/steps.py), the recorded
screen's layout per recorder (extract/screens.py) and actions as pyautogui calls
(exports/cu_actions.py)."""

from __future__ import annotations

import pytest

from streamgrade.exports.cu_actions import Offscreen, key_name, platform_of, render
from streamgrade.extract.screens import LayoutError, resolve_layout
from streamgrade.extract.steps import plan_steps
from streamgrade.models import Action

# ------------------------------------------------------------------ steps


def test_one_step_per_input_action_with_the_screen_before_it():
    acts = [Action("click", 1000, end_ms=1080, x=5, y=5), Action("type", 1500, end_ms=2500, text="hi"),
            Action("app_focus", 2600, text="Safari"), Action("hotkey", 3000, keys=["Meta", "c"]),
            Action("scroll", 4000, end_ms=4300, x=1, y=1, dy=-3, ticks=3), Action("click", 4350, end_ms=4400, x=1, y=1)]
    steps = plan_steps(acts, before_ms=200)
    assert [s.actions for s in steps] == [(0,), (1,), (3,), (4,), (5,)]  # app_focus is no step
    # 200 ms before; not before the previous step ended; never after the step starts
    assert [s.t_ms for s in steps] == [800, 1300, 2800, 3800, 4300]
    assert all(s.t_ms <= acts[s.actions[0]].t_ms for s in steps)


def test_more_actions_than_max_steps_are_grouped_at_the_shortest_pauses():
    starts = [0, 100, 200, 5000, 5100, 9000, 9050, 9100, 20000, 20100]
    acts = [Action("click", t, end_ms=t + 50, x=1, y=1) for t in starts]
    steps = plan_steps(acts, max_steps=4, before_ms=200)
    assert [s.actions for s in steps] == [(0, 1, 2), (3, 4), (5, 6, 7), (8, 9)]
    assert [s.t_ms for s in steps] == [0, 4800, 8800, 19800]
    assert plan_steps(acts, max_steps=0) == [] and plan_steps([Action("app_focus", 0, text="x")]) == []


# ------------------------------------------------------------------ screens


def test_clones_macos_primary_display_in_points_and_the_monitor_above_is_off_screen():
    lay = resolve_layout("clones-desktop", {"platform": "macos", "monitor": {"width": 2880, "height": 1800}},
                         {"width": 2880, "height": 1800})
    assert (lay.width, lay.height, lay.units) == (1440, 900, "pt") and lay.approximate
    assert lay.locate(2075, -448) is None and lay.locate(1132, -153) is None
    assert lay.locate(1098.4, 854.6) == (1098, 855) and lay.locate(1440, 899.5) == (1439, 899)
    assert lay.locate(2075, -448, clamp=False) == (2075, -448)
    exact = resolve_layout("clones-desktop", {"platform": "macos",
                                              "monitor": {"width": 3456, "height": 2234, "scale_factor": 2}}, None)
    assert (exact.width, exact.height) == (1728, 1117) and not exact.approximate
    win = resolve_layout("clones-desktop", {"platform": "windows", "monitor": {"width": 1920, "height": 1080}}, None)
    assert (win.width, win.units, win.approximate) == (1920, "px", False)


def test_owa_window_capture_follows_the_window_and_a_monitor_capture_needs_display_config():
    meta = {"source_shape": [906, 578], "window_rects": [
        [0, 201010, 1280, 0, 2560, 1392],         # VS Code: no match
        [1000, 1052976, 360, 307, 1278, 891],     # Notepad: 918x584 = 906x578 + borders
        [5000, 1052976, 460, 307, 1378, 891]]}    # moved 100 px right
    lay = resolve_layout("owa", meta, {"width": 906, "height": 578})
    assert lay.origin_at(0) == (366, 307) and lay.origin_at(6000) == (466, 307) and lay.approximate
    assert lay.locate(751, 636, 2000) == (385, 329) and lay.locate(751, 636, 6000) == (285, 329)
    assert lay.locate(1987, 1294, 2000) is None
    mon = resolve_layout("owa", {"source_shape": [1920, 1080], "display_config": {"resolution": "1920x1080"}}, None)
    assert mon.origins == [(0, 0.0, 0.0)] and not mon.approximate and "primary monitor" in mon.source
    guess = resolve_layout("owa", {"source_shape": [1920, 1080]}, None)
    assert guess.approximate and "assumed" in guess.source


def test_ducktrack_web_and_errors():
    duck = resolve_layout("ducktrack", {"system": "Darwin", "monitor": {"width": 1512, "height": 982}},
                          {"width": 302, "height": 196})
    assert (duck.units, duck.width, duck.approximate) == ("pt", 1512, False)
    assert resolve_layout("ducktrack", {"system": "Windows", "monitor": {"width": 1920, "height": 1080}}, None).units == "px"
    web = resolve_layout("clones-web", {"display": {"width": 1024, "height": 768}, "display_resized": True}, None)
    assert (web.width, web.height, web.approximate) == (1024, 768, True)
    squashed = resolve_layout("clones-web", {"display": {"width": 1024, "height": 768}}, {"width": 320, "height": 200})
    assert squashed.approximate and "aspect ratio" in squashed.notes[0]
    with pytest.raises(LayoutError, match="no screen layout rule"):
        resolve_layout("tau-bench", {}, None)
    with pytest.raises(LayoutError, match="no screen size"):
        resolve_layout("ducktrack", {"monitor": {"width": None, "height": None}}, None)


# ------------------------------------------------------------------ actions

MAC = resolve_layout("clones-desktop", {"platform": "macos", "monitor": {"width": 2880, "height": 1800}}, None)


def a(kind: str, **kw) -> dict:
    return {"kind": kind, "t_ms": 100, **kw}


def test_pointer_actions_as_pyautogui_calls_in_screen_points():
    assert render(a("click", x=10, y=20, button="left"), MAC, "macos")[0] == "pyautogui.click(x=10, y=20)"
    assert render(a("click", x=10, y=20, button="right"), MAC, "macos")[0] == "pyautogui.rightClick(x=10, y=20)"
    assert render(a("click", x=10, y=20, button="middle"), MAC, "macos")[0] == "pyautogui.middleClick(x=10, y=20)"
    assert render(a("double_click", x=720, y=450, button="left"), MAC, "macos")[0] == "pyautogui.doubleClick(x=720, y=450)"
    code, sa = render(a("press_hold", x=1, y=2, end_ms=1000, button="left"), MAC, "macos")
    assert code == "pyautogui.mouseDown(x=1, y=2, button='left')\npyautogui.mouseUp(button='left')" and sa["duration_ms"] == 900
    code, sa = render(a("click", x=720, y=450, button="left"), MAC, "macos")
    assert (sa["x_rel"], sa["y_rel"]) == (0.5, 0.5)
    with pytest.raises(Offscreen, match=r"click at \(2075, -448\) is outside"):
        render(a("click", x=2075, y=-448, button="left"), MAC, "macos")
    code, sa = render(a("click", x=2075, y=-448, button="left"), MAC, "macos", keep_offscreen=True)
    assert code == "pyautogui.click(x=2075, y=-448)" and sa["offscreen"]


def test_drags_straight_and_curved():
    straight = a("drag", x=10, y=10, button="left", path=[[10, 10], [50, 12], [100, 10]])
    assert render(straight, MAC, "macos")[0] == "pyautogui.moveTo(x=10, y=10)\npyautogui.dragTo(x=100, y=10, button='left')"
    stroke = a("drag", x=10, y=10, button="left", path=[[10, 10], [50, 80], [100, 10]])
    code, sa = render(stroke, MAC, "macos")
    assert code.splitlines() == ["pyautogui.moveTo(x=10, y=10)", "pyautogui.mouseDown(button='left')",
                                 "pyautogui.moveTo(x=50, y=80)", "pyautogui.moveTo(x=100, y=10)",
                                 "pyautogui.mouseUp(button='left')"]
    assert sa["path"] == [[10, 10], [50, 80], [100, 10]]
    with pytest.raises(Offscreen):  # a drag that leaves the screen
        render(a("drag", x=10, y=10, button="left", path=[[10, 10], [2000, -40]]), MAC, "macos")


def test_scrolls_in_notches_or_ticks():
    owa = resolve_layout("owa", {"source_shape": [800, 600]}, None)
    assert render(a("scroll", x=5, y=5, dy=-3.0, ticks=3), owa, "windows")[0] == "pyautogui.scroll(-3, x=5, y=5)"
    # Clones macOS: pixel-like deltas, so the tick count with the delta's sign
    assert render(a("scroll", x=5, y=5, dy=-1441.0, ticks=41), MAC, "macos")[0] == "pyautogui.scroll(-41, x=5, y=5)"
    assert render(a("scroll", x=5, y=5, dy=0, dx=1.0, ticks=1), owa, "windows")[0] == "pyautogui.hscroll(1, x=5, y=5)"
    assert render(a("scroll", dy=2.0, ticks=2), owa, "windows")[0] == "pyautogui.scroll(2)"  # no pointer position yet
    with pytest.raises(ValueError, match="0 clicks"):
        render(a("scroll", x=5, y=5, dy=0.2, ticks=1), owa, "windows")


def test_keyboard_actions_with_pyautogui_key_names():
    assert render(a("type", text="it's\n"), MAC, "macos")[0] == "pyautogui.write(\"it's\\n\")"
    assert render(a("key", keys=["Return"]), MAC, "macos")[0] == "pyautogui.press('enter')"
    assert render(a("key", keys=["Shift", "Tab"]), MAC, "macos")[0] == "pyautogui.hotkey('shift', 'tab')"
    assert render(a("hotkey", keys=["Meta", "c"]), MAC, "macos")[0] == "pyautogui.hotkey('command', 'c')"
    assert render(a("hotkey", keys=["Meta", "c"]), MAC, "windows")[0] == "pyautogui.hotkey('win', 'c')"
    assert [key_name(k, None) for k in ("UpArrow", "Escape", "F5", "Kp7", " ", "KeyA")] == [
        "up", "esc", "f5", "num7", "space", "keya"]
    assert platform_of("ducktrack", {"system": "Darwin"}) == "macos" and platform_of("owa", {}) == "windows"
    with pytest.raises(ValueError):
        render(a("app_focus", text="Safari"), MAC, "macos")
