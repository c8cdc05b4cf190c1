"""State transitions measured offline: what changed on screen between the frame before a
step and the frame after it.

Both JPEGs are read with Pillow, converted to grey and reduced to :data:`GRID` px wide
(the same size); a cell counts as changed when its grey levels differ by more than
:data:`THRESHOLD` (0-255; JPEG noise stays under it). ``changed_share`` is the share of
changed cells (0-1, 4 decimals), ``box`` the bounding box of the changed cells in the
frame's own pixels ``[x0, y0, x1, y1]`` (None when nothing changed). The sentence
(:func:`describe`) grades the share: none (0), a small region (under 5%), part of the
screen (under 40%), most of it (a new view), and adds a change of focused window.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

GRID = 160
THRESHOLD = 24


def pixel_change(before: str | Path, after: str | Path) -> dict[str, Any]:
    """``{changed_share, box}`` between two frames (see the module docstring). Raises
    OSError (unreadable or not an image: PIL's UnidentifiedImageError is an OSError)."""
    from PIL import Image, ImageChops

    with Image.open(before) as a, Image.open(after) as b:
        w, h = a.size
        gw = min(GRID, w)
        gh = max(1, round(h * gw / w))
        ga = a.convert("L").resize((gw, gh))
        gb = b.convert("L").resize((gw, gh))
    diff = ImageChops.difference(ga, gb).point(lambda v: 255 if v > THRESHOLD else 0)
    changed = diff.histogram()[255]
    bbox = diff.getbbox()
    box = None
    if bbox:
        sx, sy = w / gw, h / gh
        box = [round(bbox[0] * sx), round(bbox[1] * sy), round(bbox[2] * sx), round(bbox[3] * sy)]
    return {"changed_share": round(changed / (gw * gh), 4), "box": box}


def describe(change: dict[str, Any] | None, focus_before: str | None = None, focus_after: str | None = None) -> str:
    """One sentence for a transition (see the module docstring); "" when nothing is known."""
    parts = []
    if change is not None:
        share = change.get("changed_share") or 0
        box = change.get("box")
        if share == 0:
            parts.append("no visible change")
        elif share < 0.05:
            parts.append(f"a small region changed ({share:.1%} of the screen, around {box[0]},{box[1]}-{box[2]},{box[3]} px)")
        elif share < 0.4:
            parts.append(f"part of the screen changed ({share:.0%}, {box[0]},{box[1]}-{box[2]},{box[3]} px)")
        else:
            parts.append(f"most of the screen changed ({share:.0%}): a new view")
    if focus_after and focus_after != focus_before:
        parts.append(f"focus moved to {focus_after}")
    return "; ".join(parts)


__all__ = ["pixel_change", "describe", "GRID", "THRESHOLD"]
