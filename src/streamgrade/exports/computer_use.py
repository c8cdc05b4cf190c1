"""Computer-use SFT with screenshots: one row per recorded session (Clones desktop and web,
OWA, DuckTrack), interleaving each step's observation (the screen before the step) with
the step's actions, written in two shapes beside the images they reference.

Sources of the shapes:

- OpenAI vision fine-tuning (developers.openai.com/api/docs/guides/vision-fine-tuning,
  "Data format"): chat ``messages`` whose user content holds ``{"type": "image_url",
  "image_url": {"url"}}`` parts; "Images can be provided either as HTTP URLs or data URLs
  containing Base64-encoded images"; images only in user messages, JPEG/PNG/WEBP, at most
  10 MB each and 64 an example (limits as listed in Microsoft's Azure OpenAI vision
  fine-tuning guide). OpenAI cannot read local paths, so ``inline_images=True`` writes
  ``data:image/jpeg;base64,...`` URLs for an upload. **The default is relative paths**
  (``images/<session>/<t>.jpg``): the same image files serve both files, a row stays a few
  KB instead of several MB (base64 adds a third), and local trainers that take the OpenAI
  chat shape (TRL, LLaMA-Factory's openai format) read paths.
- LLaMA-Factory multimodal ShareGPT (hiyouga/LLaMA-Factory ``data/README.md``, "Multimodal
  Image Dataset", and ``data/mllm_demo.json``): ``{"conversations": [{"from": "human" |
  "gpt", "value"}], "system", "images": [paths]}``, one ``<image>`` tag per image, in
  order, human turns at even positions. Image paths are resolved against the dataset
  folder, so a ``dataset_info.json`` naming the file is written beside it (``llamafactory-cli
  train ... dataset_dir=DEST dataset=streamgrade_computer_use``).
- The action space and coordinates: see :mod:`streamgrade.exports.cu_actions` (OpenCUA's
  AgentNet, UI-TARS); the observations: :mod:`streamgrade.extract.steps` (OpenCUA's
  State-Action Matching); the screen: :mod:`streamgrade.extract.screens`.

A row: system (the action space and the screen's size and units), then per step a user
turn (the screenshot before the step; the first also holds the task and objectives, and
Clones web quests/hints join the turn they preceded) and an assistant turn (the step's
pyautogui calls, one a line; an augmented session's turn starts with a ``# Thought:`` comment
line holding its actions' captions, :mod:`streamgrade.augment`). ``metadata`` (unless
``metadata=False``): ``session_id``,
``source_format``, ``task_id``, ``score``, ``reward``, ``judge``, ``screen`` (the layout,
plus ``image_width``/``image_height`` px), ``actions`` (the structured actions of each step,
with ``caption`` and ``transition`` when augmented), ``dropped`` (actions left out and why:
outside the recorded screen, nothing to do) and ``thoughts`` (the augment mode the thoughts
come from: llm, offline, or None). With
``inline_images`` the OpenAI file is meant for an upload and keeps OpenAI's keys only (no
``metadata``; the ShareGPT file, same rows in the same order, keeps it).

Files under ``dest_dir`` (default OUT/exports/computer_use/): ``computer_use.openai.jsonl``,
``computer_use.sharegpt.jsonl``, ``dataset_info.json`` and ``images/<session folder>/``
(hard links to the session's frames when they are readable by all, else copies; each
opened with Pillow before a row names it). Sessions of other formats are not considered;
a recording session left out is listed in ``rejected`` with the reason (no recording, no
step frames, filtered, no screen size, no action on the recorded screen, ...).
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from ..config import FramesConfig
from ..extract.screens import LayoutError, ScreenLayout, resolve_layout
from ..sinks.atomic import atomic_writer
from ..sinks.layout import Layout
from .build import NothingToExport
from .cu_actions import ACTION_SPACE, Offscreen, platform_of, render
from .store import Sessions

CU_FORMATS = ("clones-desktop", "clones-web", "owa", "ducktrack")
OPENAI_FILE, SHAREGPT_FILE, DATASET_INFO, IMAGES = (
    "computer_use.openai.jsonl", "computer_use.sharegpt.jsonl", "dataset_info.json", "images")
DATASET_NAME = "streamgrade_computer_use"
MAX_OPENAI_IMAGES = 64


@dataclass
class ComputerUseResult:
    """``rows`` written (ShareGPT; ``openai_rows`` in the OpenAI file, fewer when a row has
    more than 64 images: such a row is also listed in ``rejected``, "left out of ... only"),
    ``rejected`` (session id, reason) for recording sessions left out (and rows left out
    of the ShareGPT file only, whose text holds a literal ``<image>``), ``images`` files
    referenced, ``considered`` recording sessions seen,
    ``other_formats`` sessions of other formats (not considered), ``dropped_actions``
    actions left out of kept rows, ``files`` the paths written."""

    rows: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    images: int = 0
    considered: int = 0
    other_formats: int = 0
    dropped_actions: int = 0
    openai_rows: int = 0
    files: dict[str, Path] = field(default_factory=dict)


class _Skip(Exception):
    """A session left out; the message is the reason."""


def _file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def system_prompt(layout: ScreenLayout, platform: str | None, image: tuple[int, int], thoughts: bool = False) -> str:
    """The row's system message: the task of the model, the screen's size and units and
    the action space (``image`` is the screenshots' size, px); ``thoughts``: the answers
    start with a ``# Thought:`` comment line (the step's captions, :mod:`streamgrade.augment`)."""
    where = f" on {'macOS' if platform == 'macos' else platform.capitalize()}" if platform else ""
    units = "points" if layout.units == "pt" else "pixels"
    return (f"You are a computer-use agent{where}. Each user turn shows a screenshot of the screen before your "
            f"next step; answer with that step as pyautogui code, one call a line"
            + (", after a first comment line \"# Thought: ...\" saying what the step does" if thoughts else "")
            + ". The screen is "
            f"{round(layout.width)}x{round(layout.height)} {units} (the screenshot is {image[0]}x{image[1]} px): "
            f"coordinates are in screen {units}, x to the right and y down from (0, 0) at the top-left. "
            f"Calls: {ACTION_SPACE}.")


def _reason_no_steps(results: dict[str, Any]) -> str:
    video = results.get("video")
    meta = (results.get("session") or {}).get("meta") or {}
    if "video" not in results and meta.get("has_video"):
        return ("no step frames: graded before computer-use steps existed (results.json has no video); "
                "grade it again into a new output folder")
    if not video or not video.get("path"):
        return "no screen recording: nothing to show before each action"
    if not Path(video["path"]).exists():
        return f"no step frames and the recording {video['path']} is gone ([frames] steps off or frames failed)"
    return "no step frames"


def _export_steps(results: dict[str, Any], images: Path, frames: FramesConfig) -> list[dict[str, Any]]:
    """Step frames taken now from the recording (for a session graded with ``[frames]
    steps`` off), written straight into ``images``."""
    from ..extract.frames import FrameError, extract_frames
    from ..extract.steps import plan_steps
    from ..models import Action

    video = results["video"]
    acts = msgspec.convert(results.get("actions") or [], list[Action])
    plans = plan_steps(acts, max_steps=frames.max_steps, before_ms=frames.before_ms)
    off = float(video.get("offset_ms") or 0)
    times = {p.t_ms: max(0, round(p.t_ms + off)) for p in plans}
    try:
        got = {f.t_ms: f for f in extract_frames(video["path"], sorted(set(times.values())), images,
                                                 longest_side=frames.longest_side, quality=frames.quality,
                                                 max_pixels=frames.max_pixels)}
    except (FrameError, ValueError) as exc:
        raise _Skip(f"no step frames: {exc}") from None
    return [{"t_ms": p.t_ms, "path": got[times[p.t_ms]].path, "width": got[times[p.t_ms]].width,
             "height": got[times[p.t_ms]].height, "actions": list(p.actions), "here": True} for p in plans]


def _place(src: Path, dst: Path, mode: int) -> None:
    """``src`` at ``dst``: a hard link when ``src`` already has ``mode``'s read bits, else a
    copy with ``mode``."""
    if dst.exists():
        dst.unlink()
    if (src.stat().st_mode & 0o444) >= (mode & 0o444):
        try:
            os.link(src, dst)
            return
        except OSError:
            pass
    shutil.copyfile(src, dst)
    os.chmod(dst, mode)


def _check_image(p: Path) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(p) as im:
            size = im.size
            im.verify()
        return size
    except (OSError, ValueError) as exc:
        raise _Skip(f"image {p.name} does not open: {exc}") from None


def session_rows(folder: Path, rec: dict[str, Any], images_root: Path, *, metadata: bool, inline: bool,
                 keep_offscreen: bool, frames: FramesConfig, mode: int,
                 files: tuple[dict[str, Any], dict[str, Any] | None] | None = None) -> tuple[dict, dict, int, int]:
    """The (OpenAI row, ShareGPT row, images, dropped actions) of one graded recording
    session in ``folder`` (its frames; its results.json and sft.json too, unless ``files``
    gives them: a session of the session store); its images placed under
    ``images_root/<folder name>/``. Raises :class:`_Skip` with the reason when it cannot be
    a row."""
    if files is not None:
        results, sft = files[0], files[1] or {}
    else:
        try:
            results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
            sft = json.loads((folder / "sft.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise _Skip(f"results unreadable: {exc}") from None
    session, fmt = results.get("session") or {}, rec.get("source_format")
    meta = session.get("meta") or {}
    steps = results.get("steps") or []
    if not steps and (not (results.get("video") or {}).get("path") or not Path(results["video"]["path"]).exists()):
        raise _Skip(_reason_no_steps(results))
    try:
        layout = resolve_layout(str(fmt), meta, results.get("video"))
    except LayoutError as exc:
        raise _Skip(str(exc)) from None
    dest = images_root / folder.name
    dest.mkdir(parents=True, exist_ok=True)
    if not steps:
        steps = _export_steps(results, dest, frames)
    actions, platform = results.get("actions") or [], platform_of(str(fmt), meta)
    hints = [(int(m.get("timestamp") or 0), m["content"]) for m in (sft.get("messages") or [])[1:]
             if m.get("role") == "user" and isinstance(m.get("content"), str)]
    turns: list[tuple[dict, str, list, str]] = []
    dropped: list[dict[str, Any]] = []
    notes = _augment_notes(results)
    for st in steps:
        codes, structs, thought = [], [], []
        for i in st.get("actions") or []:
            try:
                code, sa = render(actions[i], layout, platform, keep_offscreen=keep_offscreen)
            except (Offscreen, ValueError, IndexError, TypeError) as exc:
                dropped.append({"action": i, "reason": str(exc)})
                continue
            codes.append(code)
            if i in notes:
                sa = {**sa, "caption": notes[i]["caption"], "transition": notes[i].get("transition") or ""}
                thought.append(notes[i]["caption"])
            structs.append(sa)
        if codes:
            head = ("# Thought: " + "; then ".join(thought).replace("\n", " ") + "\n") if thought else ""
            turns.append((st, head + "\n".join(codes), structs, ""))
    if not turns:
        raise _Skip(f"no action on the recorded screen ({len(dropped)} dropped"
                    + (f", e.g. {dropped[0]['reason']})" if dropped else ")"))
    # context shown before a step's observation joins that step's user turn
    for k, (st, code, structs, _) in enumerate(turns):
        now = [h for t, h in hints if (k == 0 or t > turns[k - 1][0]["t_ms"]) and t <= st["t_ms"]]
        turns[k] = (st, code, structs, "\n".join(now))
    paths: list[str] = []
    sizes: list[tuple[int, int]] = []
    for st, *_ in turns:
        name = Path(st["path"]).name
        target = dest / name
        if not st.get("here"):
            src = folder / st["path"]
            if not src.is_file():
                raise _Skip(f"frame {st['path']} is missing")
            _place(src, target, mode)
        elif (target.stat().st_mode & 0o777) != mode:
            os.chmod(target, mode)
        sizes.append(_check_image(target))
        paths.append(f"{IMAGES}/{folder.name}/{name}")
    image_size = sizes[0]  # all frames of a recording share the size
    system = system_prompt(layout, platform, image_size, thoughts=bool(notes))
    task = str(session.get("task") or "").strip()
    objectives = [] if fmt == "clones-web" else [o for o in session.get("objectives") or [] if isinstance(o, str)]
    first = f"Task: {task}" + ("\n\nObjectives:\n" + "\n".join(f"- {o}" for o in objectives) if objectives else "")
    oa: list[dict[str, Any]] = [{"role": "system", "content": system}]
    conv: list[dict[str, str]] = []
    for k, ((st, code, _, note), path) in enumerate(zip(turns, paths)):
        text = "\n\n".join(x for x in ((first if k == 0 else ""), note) if x)
        url = _data_url(images_root.parent / path) if inline else path
        parts: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": url}}]
        if text:
            parts.append({"type": "text", "text": text})
        oa += [{"role": "user", "content": parts}, {"role": "assistant", "content": code}]
        conv += [{"from": "human", "value": "<image>" + (("\n" + text) if text else "")}, {"from": "gpt", "value": code}]
    openai_row: dict[str, Any] = {"messages": oa}
    share_row: dict[str, Any] = {"conversations": conv, "system": system, "images": paths}
    if metadata:
        md = {"session_id": rec.get("session_id"), "source_format": fmt,
              "task_id": rec.get("task_id") or meta.get("task_id"), "score": rec.get("score"),
              "reward": rec.get("reward"), "judge": rec.get("judge"),
              "screen": {**layout.to_dict(), "image_width": image_size[0], "image_height": image_size[1]},
              "actions": [structs for _, _, structs, _ in turns], "dropped": dropped,
              "thoughts": (results.get("augment") or {}).get("mode") if notes else None}
        share_row["metadata"] = md
        if not inline:  # an upload-ready file (data URLs) keeps OpenAI's keys only
            openai_row["metadata"] = md
    return openai_row, share_row, len(paths), len(dropped)


def _augment_notes(results: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """Action index -> its augment entry (``caption``, ``transition``) from results.json
    ``augment`` (:mod:`streamgrade.augment`), {} when the session was not augmented."""
    aug = results.get("augment")
    if not isinstance(aug, dict):
        return {}
    return {e["action"]: e for e in aug.get("actions") or []
            if isinstance(e, dict) and isinstance(e.get("action"), int) and isinstance(e.get("caption"), str)
            and e["caption"].strip()}


def _data_url(path: Path) -> str:
    from ..extract.frames import image_data_url

    return image_data_url(path)


def build_computer_use(out: str | Path, dest_dir: str | Path | None = None, flt: Any = None, *,
                       metadata: bool = True, inline_images: bool = False, keep_offscreen: bool = False,
                       frames: FramesConfig | None = None) -> ComputerUseResult:
    """Write the computer-use export of the graded sessions under ``out`` (see the module
    docstring) to ``dest_dir`` (default OUT/exports/computer_use/). ``flt`` (an
    :class:`~streamgrade.exports.filters.ExportFilter`, or anything with
    ``reject_reason(record)``) filters on scores.jsonl fields; ``inline_images`` writes data
    URLs into the OpenAI file (for an upload); ``keep_offscreen`` keeps actions outside the
    recorded screen (flagged ``offscreen`` in their structured action) instead of dropping
    them; ``frames`` the frame settings for sessions whose step frames are taken now.
    Files are written atomically with mode 0666 minus the umask. Raises
    :class:`~streamgrade.exports.build.NothingToExport` (``.result`` holds the
    :class:`ComputerUseResult`) when no row is made; then no file is written."""
    out = Path(out)
    dest = Path(dest_dir) if dest_dir else Layout(out).export("computer_use")
    images_root = dest / IMAGES
    mode, fc = _file_mode(), frames or FramesConfig()
    res = ComputerUseResult()
    keep: set[str] = set()  # image paths the rows reference
    files = {"openai": dest / OPENAI_FILE, "sharegpt": dest / SHAREGPT_FILE, "dataset_info": dest / DATASET_INFO}
    try:
        with Sessions(out) as sessions, atomic_writer(files["openai"]) as fo, atomic_writer(files["sharegpt"]) as fs:
            for folder, rec, stored in sessions.entries():  # streamed: folders, then the session store
                row = _one(folder, rec, images_root, res, flt, metadata=metadata, inline=inline_images,
                           keep_offscreen=keep_offscreen, frames=fc, mode=mode,
                           load=(lambda sid=str(rec.get("session_id")): _stored_files(sessions, sid)) if stored else None)
                if row is None:
                    continue
                oa, sg = row
                keep.update(sg["images"])
                sid = str(rec.get("session_id"))
                if _placeholders(sg) != len(sg["images"]):
                    res.rejected.append((sid, f"left out of {SHAREGPT_FILE} only: its text holds a literal "
                                              f"<image>, <video> or <audio>, which LLaMA-Factory takes for a placeholder"))
                else:
                    fs.write(json.dumps(sg, ensure_ascii=False).encode() + b"\n")
                    res.rows += 1
                if len(sg["images"]) > MAX_OPENAI_IMAGES:
                    res.rejected.append((sid, f"left out of {OPENAI_FILE} only: "
                                              f"{len(sg['images'])} images, OpenAI takes {MAX_OPENAI_IMAGES} an example"))
                else:
                    fo.write(json.dumps(oa, ensure_ascii=False).encode() + b"\n")
                    res.openai_rows += 1
            if not res.rows and not res.openai_rows:
                raise _Empty
    except _Empty:
        common = Counter(r.split(":")[0] for _, r in res.rejected).most_common(3)
        exc = NothingToExport(f"nothing to export as computer-use: {res.considered} recording sessions considered, "
                              f"none made a row" + (f"; most common reasons: {', '.join(f'{k} ({n})' for k, n in common)}"
                                                    if common else ""))
        exc.result = res  # type: ignore[attr-defined]
        raise exc from None
    _prune(images_root, keep)
    info = {DATASET_NAME: {"file_name": SHAREGPT_FILE, "formatting": "sharegpt",
                           "columns": {"messages": "conversations", "system": "system", "images": "images"}}}
    with atomic_writer(files["dataset_info"]) as f:
        f.write(json.dumps(info, indent=2).encode() + b"\n")
    for p in files.values():
        os.chmod(p, mode)
    res.files = files
    return res


class _Empty(Exception):
    pass


def _placeholders(sg: dict[str, Any]) -> int:
    """The placeholders LLaMA-Factory 0.9.5 counts in a ShareGPT row (``data/mm_plugin.py``
    ``_validate_messages``: ``<image>``, ``<video>``, ``<audio>`` in every turn), -1 when the
    system text holds one (it is prepended to the first turn by some templates)."""
    tags = ("<image>", "<video>", "<audio>")
    if any(t in sg.get("system", "") for t in tags):
        return -1
    return sum(c["value"].count(t) for c in sg["conversations"] for t in tags)


def _stored_files(sessions: Sessions, sid: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """results.json and sft.json of a stored session; raises _Skip when it has none."""
    found = sessions.files(sid, None, True)
    if found is None:
        raise _Skip("results unreadable: no results.json in the session store")
    return found


def _one(folder: Path, rec: dict[str, Any], images_root: Path, res: ComputerUseResult, flt: Any,
         load: Any = None, **kw: Any) -> tuple[dict, dict] | None:
    """The rows of one session folder, or None (counted in ``res``: another format, or
    rejected with the reason)."""
    sid = str(rec.get("session_id"))
    if rec.get("source_format") not in CU_FORMATS:
        res.other_formats += 1
        return None
    res.considered += 1
    try:
        if rec.get("status") != "graded":
            raise _Skip(f"not graded: {rec.get('error') or rec.get('status')}")
        reason = flt.reject_reason(rec) if flt is not None else None
        if reason:
            raise _Skip(reason)
        oa, sg, n_img, n_drop = session_rows(folder, rec, images_root, files=load() if load else None, **kw)
    except (_Skip, OSError) as exc:
        what = str(exc) if isinstance(exc, _Skip) else f"cannot place its images: {exc}"
        res.rejected.append((sid, what))  # its images, if any, go at the end (_prune)
        return None
    except (KeyError, TypeError, ValueError, AttributeError, msgspec.MsgspecError) as exc:
        res.rejected.append((sid, f"{folder / 'results.json'}: unexpected content ({type(exc).__name__}: {exc})"))
        return None
    res.images += n_img
    res.dropped_actions += n_drop
    return oa, sg


def _prune(images_root: Path, keep: set[str]) -> None:
    """Remove image folders and files under ``images_root`` that no row references (left
    by an earlier export or a rejected session)."""
    if not images_root.is_dir():
        return
    folders = {p.split("/")[1] for p in keep}
    for d in images_root.iterdir():
        if d.is_dir() and d.name not in folders:
            shutil.rmtree(d, ignore_errors=True)
        elif d.is_dir():
            for f in d.iterdir():
                if f"{IMAGES}/{d.name}/{f.name}" not in keep:
                    f.unlink(missing_ok=True)


__all__ = ["build_computer_use", "ComputerUseResult", "session_rows", "system_prompt", "CU_FORMATS",
           "OPENAI_FILE", "SHAREGPT_FILE", "DATASET_INFO", "DATASET_NAME"]
