"""The assemble stage's blocking work for one job (a worker thread): read the session with
its format, cut its chunks, take its video frames, and render its SFT messages.

Frames: the moments that matter (see :mod:`streamgrade.extract.frames`) are written under
``OUT/sessions/<folder>/frames/`` and attached to their chunks, each adding its image
tokens to the chunk's budget. A recording that cannot be decoded is logged and the session
goes on without frames; one over ``[frames] max_pixels`` raises FrameTooLarge (an
InputError, not a FrameError): the session becomes a failed record. With ``[frames]
steps`` the computer-use steps' "before" frames (:mod:`streamgrade.extract.steps`) are
taken in the same pass into the same folder; they go to results.json ``steps``, not to the
judge.
"""

from __future__ import annotations

import logging

from .chunking import chunk_session
from .config import Config
from .formats.base import Format
from .job import Job, newest_mtime
from .labels import Labels
from .judges.openai import IMAGE_TOKENS
from .models import Chunk, Message, Session
from .sft import to_messages, to_openai_messages
from .sinks.layout import Layout

log = logging.getLogger("streamgrade.pipeline")


def prepare(job: Job, fmt: Format, config: Config, layout: Layout, labels: Labels | None = None) -> None:
    """Fill ``job`` (session, chunks, frames, messages) from its ref; a label of ``labels``
    replaces the session's reward (``meta["reward_from"] = "labels"``). Blocking. Raises
    InputError naming the file and the line or field."""
    job.last_write = newest_mtime(job.ref.files)  # for the end-to-end latency metric
    session = job.session = fmt.assemble(job.ref, config)
    if labels is not None:
        label = labels.reward_for(job.ref.session_id, session.trial, session.task_id)
        if label is not None:
            session.reward = label
            session.meta = {**session.meta, "reward_from": "labels"}
            labels.used += 1
    job.chunks = chunk_session(session, config.chunking)
    if session.video and not session.has_transcript:
        job.video = recording_info(session, config)
        if config.frames.enabled:
            job.frames = take_frames(session, job.chunks, config, layout, steps=job.steps)
    job.messages = to_openai_messages(session) if session.has_transcript else to_messages(session)
    if job.frames:
        job.messages = with_frames(job.messages, job.frames)


def with_frames(messages: list[Message], frames: list[dict]) -> list[Message]:
    """SFT messages (the task first, then actions and context events, ``timestamp`` in ms)
    with a user image message per frame (``{t_ms, path}``) at its time. A frame taken at the
    very ms an action starts (a typing group's or a scroll's start) shows the screen before
    that action: it goes before the messages of that ms, so the action follows what was on
    screen. The task message stays first."""
    images = [Message(role="user", content={"type": "image", "data": f["path"]}, timestamp=f["t_ms"]) for f in frames]
    head, rest = messages[:1], messages[1:]
    return head + sorted(images + rest, key=lambda m: m.timestamp)  # stable: images first at a tie


def recording_info(session: Session, config: Config) -> dict:
    """``{path, offset_ms, width, height}`` of the session's recording (results.json
    ``video``): width and height (px) as its headers declare them, None when it cannot be
    read (logged; the frames step reports the same error)."""
    from .extract.frames import FrameError
    from .extract.steps import video_size

    size = None
    try:
        size = video_size(session.video, config.frames.max_pixels)
    except FrameError as exc:
        log.debug("no video size for %s: %s", session.ref.session_id, exc)
    return {"path": session.video, "offset_ms": session.video_offset_ms,
            "width": size[0] if size else None, "height": size[1] if size else None}


def take_frames(session: Session, chunks: list[Chunk], config: Config, layout: Layout,
                steps: list[dict] | None = None) -> list[dict]:
    """The session's frames (see the module docstring) as ``{t_ms, path (relative to the
    session folder), width, height}`` (ms, px); ``chunks`` gain their frames and tokens.
    With ``steps`` (a list to fill) and ``[frames] steps`` on, the computer-use steps'
    "before" frames (:func:`streamgrade.extract.steps.plan_steps`) are taken in the same
    pass and ``steps`` gets ``{t_ms, path, width, height, actions}`` per step."""
    from .extract.frames import FrameError, extract_frames, plan_frames
    from .extract.steps import plan_steps

    fc = config.frames
    owners: dict[int, int] = {}
    times = plan_frames(session.actions, chunks=chunks, per_chunk=fc.per_chunk, per_session=fc.per_session,
                        merge_ms=fc.merge_ms, before_ms=fc.before_ms, after_ms=fc.after_ms,
                        duration_ms=int((session.duration_s or 0) * 1000), owners=owners)
    plans = plan_steps(session.actions, max_steps=fc.max_steps, before_ms=fc.before_ms) \
        if steps is not None and fc.steps else []
    folder = layout.frames_dir(session.ref.session_id)
    offset = session.video_offset_ms

    def video_ms(t: int) -> int:
        return max(0, round(t + offset))

    wanted = sorted({video_ms(t) for t in times} | {video_ms(p.t_ms) for p in plans})
    try:
        frames = extract_frames(session.video, wanted, folder,
                                longest_side=fc.longest_side, quality=fc.quality, seek_gap_ms=fc.seek_gap_ms,
                                max_pixels=fc.max_pixels)
    except (FrameError, ValueError) as exc:
        log.warning("no frames for %s: %s", session.ref.session_id, exc,
                    extra={"session": session.ref.session_id, "file": session.video})
        return []
    by_time = {f.t_ms: f for f in frames}  # one frame per distinct video time
    out = []
    for t_session in times:
        f = by_time[video_ms(t_session)]
        out.append({"t_ms": t_session, "path": f"frames/{f.path}", "width": f.width, "height": f.height})
        chunk = chunks[owners.get(t_session, 0)]  # the chunk of the action it shows
        chunk.frames.append(str(folder / f.path))
        chunk.tokens += IMAGE_TOKENS.get(fc.detail, 85)
    for p in plans:
        f = by_time[video_ms(p.t_ms)]
        steps.append({"t_ms": p.t_ms, "path": f"frames/{f.path}", "width": f.width, "height": f.height,  # type: ignore[union-attr]
                      "actions": list(p.actions)})
    return out


__all__ = ["prepare", "recording_info", "take_frames", "with_frames"]
