"""Frames: pick the moments of a recording worth showing a judge, and extract them as JPEGs.

Clones desktop sessions carry ``recording.mp4`` whose first frame is at session time 0 ms
(the first input event). Times here are integer **milliseconds from the session start**;
sizes are **pixels** (px) of the decoded video; file sizes are **bytes**.

Three steps:

1. :func:`plan_frames` turns actions (:class:`streamgrade.models.Action`) into the
   timestamps that matter (before a click, after typing / a scroll / a hotkey ends, ...),
   merged when closer than ``merge_ms`` and cut to the budgets per chunk and per session.
2. :func:`extract_frames` opens the video once with PyAV (FFmpeg's libraries, bundled in
   the ``av`` wheels; no ``ffmpeg`` subprocess), demuxes and decodes it in one forward
   pass, seeking forward (``container.seek`` to the keyframe at or before the next wanted
   time) only when that time is far ahead, takes for each wanted time the last frame
   presented at or before it (``frame.pts * stream.time_base``), downscales it with Pillow
   (longest side, aspect ratio kept, never upscaled), encodes JPEG and writes
   ``out_dir/<t_ms>.jpg`` atomically. Files that already exist are reused (cache).
3. :func:`image_data_url` (``data:image/jpeg;base64,...`` for OpenAI-style image inputs) and
   :func:`blank_or_unchanged` (a cheap signal for the heuristic judge: blank screens and
   nearly identical consecutive frames from a 16x16 grayscale thumbnail).

Defaults (:class:`FramesConfig`): longest side 1280 px, JPEG quality 80, 3 frames per chunk,
60 per session, frames closer than 500 ms merged, at most 4096 x 4096 = 16,777,216 px a
decoded frame (``max_pixels``).

Size limit: a decoded frame costs ``width * height * 1.5`` bytes (YUV 4:2:0) in each of the
decoder's buffers and 3 bytes a pixel once converted to RGB, whatever the file's size: an
8192x8192 H.264 file of 200 KB took 1.6 GB RSS to grade (scripts/bench_frame_bomb.py).
:func:`extract_frames` therefore checks the stream's declared size (the codec context after
open, filled from the container / codec headers) before reading a packet, and every decoded
frame's size too (a container may declare a small size and carry larger frames, or the size
may change mid-stream); over ``max_pixels`` it raises :class:`FrameTooLarge` at once. The
decoders, those that probe the file in ``av.open`` included, also get FFmpeg's own
``max_pixels`` codec option (with some slack, see :func:`_decoder_limit`), so FFmpeg refuses
to allocate a larger picture at all. With the default limit that run peaks at 84 MB.

Sources: PyAV documentation, "Containers" (``av.open``, ``InputContainer.demux``,
``InputContainer.seek(offset, backward=True, any_frame=False, stream=...)``: offset in the
stream's ``time_base`` units, lands on the keyframe at or before it), "Streams"
(``time_base``, ``start_time``, ``thread_type = "AUTO"``), "Video" (``VideoFrame.pts``,
``VideoFrame.to_image``); Pillow documentation (``Image.resize``, ``reducing_gap``,
``Image.draft`` for fast reduced JPEG decoding, JPEG ``quality``); FFmpeg's codec options
(``max_pixels``: "Maximum number of pixels per image", checked when a frame buffer is
allocated, ``av_image_check_size2``).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Any

import msgspec

from ..config import FramesConfig  # noqa: F401 - re-exported
from ..errors import InputError
from ..models import Action, Chunk
from ..sinks.atomic import atomic_writer

# ---------------------------------------------------------------------------------------
# configuration and records




class Frame(msgspec.Struct, omit_defaults=True):
    """One extracted frame: ``t_ms`` the wanted session time (ms), ``path`` the file name
    relative to the output folder (``"<t_ms>.jpg"``), ``width``/``height`` of the JPEG (px),
    ``bytes`` its size on disk; ``source_ms`` the presentation time (ms, from the first
    frame) of the video frame taken, None when the file came from the cache; ``cached``
    True when the file existed already and was not re-extracted."""

    t_ms: int
    path: str
    width: int
    height: int
    bytes: int
    source_ms: int | None = None
    cached: bool = False


class FrameError(InputError):
    """The video cannot be read: missing, not a media file, no video stream, a codec the
    bundled FFmpeg cannot decode, or corrupt data. ``str()`` starts with the file's path."""


class FrameTooLarge(InputError):
    """The video's frames are larger than ``[frames] max_pixels``: refused, not decoded.

    Not a :class:`FrameError` (a video that cannot be read, graded without frames): the
    session fails with this error until the limit is raised. ``width`` / ``height`` (px) of
    the offending frame, ``max_pixels`` the limit (px a frame), ``declared`` the (width,
    height) the container declared when it differs from the decoded frame, else None.
    ``str()`` starts with the file's path and names the size and the setting."""

    def __init__(self, path: str, width: int, height: int, max_pixels: int,
                 declared: tuple[int, int] | None = None):
        self.width, self.height, self.max_pixels, self.declared = width, height, max_pixels, declared
        what = f"video frames are {width}x{height} px"
        if declared is not None:
            what = f"video decodes to {width}x{height} px frames (its container declares {declared[0]}x{declared[1]})"
        super().__init__(path, f"{what} = {width * height:,} px a frame, over the limit of {max_pixels:,} "
                               f"(frames.max_pixels); raise [frames] max_pixels to grade this session")


DEFAULT_MAX_PIXELS = 4096 * 4096  # keep equal to FramesConfig.max_pixels


def _check_size(video: Path, width: int, height: int, max_pixels: int,
                declared: tuple[int, int] | None = None) -> None:
    """Raise :class:`FrameTooLarge` when ``width * height`` (px) is over ``max_pixels``."""
    if width * height > max_pixels:
        if declared is not None and (declared == (width, height) or 0 in declared):
            declared = None  # no size declared, or the same: nothing to add
        raise FrameTooLarge(str(video), width, height, max_pixels, declared)


# ---------------------------------------------------------------------------------------
# planning

# priority (lower first) of each candidate kind; "start" is every action's start
_CLICKS = ("click", "double_click", "press_hold")
_P_BEFORE_CLICK = 0
_P_AFTER_TYPE = 0
_P_AFTER_KEY = 1  # hotkey / key / app_focus: the screen after the shortcut or switch
_P_AFTER_SCROLL = 1
_P_DRAG = 1
_P_AFTER_CLICK = 2
_P_START = 3
_P_MOVE = 4


def _candidates(a: Action, before_ms: int, after_ms: int) -> list[tuple[int, int]]:
    """(priority, t_ms) candidates of one action."""
    end = a.end_ms if a.end_ms is not None else a.t_ms
    k = a.kind
    if k in _CLICKS:
        return [(_P_BEFORE_CLICK, max(0, a.t_ms - before_ms)), (_P_AFTER_CLICK, end + after_ms)]
    if k == "type":
        return [(_P_AFTER_TYPE, end + after_ms), (_P_START, a.t_ms)]
    if k == "scroll":
        return [(_P_AFTER_SCROLL, end + after_ms), (_P_START, a.t_ms)]
    if k == "drag":
        return [(_P_DRAG, max(0, a.t_ms - before_ms)), (_P_DRAG, end + after_ms)]
    if k in ("hotkey", "key", "app_focus"):
        return [(_P_AFTER_KEY, end + after_ms)]
    if k in ("move", "mousemove", "hover"):
        return [(_P_MOVE, a.t_ms)]
    return [(_P_START, a.t_ms)]


def plan_frames(
    actions: Sequence[Action],
    *,
    chunks: Sequence[Chunk] | None = None,
    per_chunk: int = 3,
    per_session: int = 60,
    merge_ms: int = 500,
    before_ms: int = 200,
    after_ms: int = 300,
    duration_ms: int | None = None,
    owners: dict[int, int] | None = None,
) -> list[int]:
    """The session times (ms, sorted, unique) at which to take a frame.

    Candidates per action (priority, lower first):

    - click / double_click / press_hold: ``before_ms`` before its start (0) — what the user
      aimed at — and ``after_ms`` after its end (2);
    - type: ``after_ms`` after the typing group ends (0), its start (3);
    - scroll: ``after_ms`` after it ends (1), its start (3);
    - drag: before its start and after its end (1);
    - hotkey / key / app_focus: ``after_ms`` after it (1);
    - move-like kinds: their start (4); any other kind: its start (3).

    Each candidate belongs to the chunk of its action: chunk *i* holds the actions from its
    ``start_ms`` up to the next chunk's ``start_ms`` (as cut by
    :func:`streamgrade.chunking.chunk_session`); without ``chunks`` the whole session is one
    chunk of unlimited size (only ``per_session`` applies). Selection goes in rounds so
    every chunk gets its best frame before any gets its second: in each round every chunk
    offers its best remaining candidate that is at least ``merge_ms`` from every frame
    already taken (closer ones are merged into the taken frame), the offers are taken best
    priority first until ``per_session`` is reached; a chunk stops at ``per_chunk``.
    Times are clamped to ``[0, duration_ms]`` when the duration is known. ``owners``, when
    given, is filled with the chunk index each taken time was counted against.
    """
    if per_session <= 0 or not actions:
        return []
    starts = [c.start_ms for c in chunks] if chunks else [0]
    limit_chunk = per_chunk if chunks else per_session
    if limit_chunk <= 0:
        return []
    per: list[list[tuple[int, int]]] = [[] for _ in starts]
    for a in actions:
        ci = _chunk_of(starts, a.t_ms)
        for prio, t in _candidates(a, before_ms, after_ms):
            if duration_ms is not None:
                t = min(t, duration_ms)
            per[ci].append((prio, max(0, int(t))))
    for c in per:
        c.sort()
    taken: list[int] = []
    counts = [0] * len(per)
    pos = [0] * len(per)
    while len(taken) < per_session:
        offers: list[tuple[int, int, int]] = []
        for ci, cands in enumerate(per):
            if counts[ci] >= limit_chunk:
                continue
            while pos[ci] < len(cands) and _near(taken, cands[pos[ci]][1], merge_ms):
                pos[ci] += 1
            if pos[ci] < len(cands):
                prio, t = cands[pos[ci]]
                offers.append((prio, t, ci))
        if not offers:
            break
        offers.sort()
        for prio, t, ci in offers:
            if len(taken) >= per_session:
                break
            pos[ci] += 1
            if _near(taken, t, merge_ms):  # an earlier offer of this round is close
                continue
            _insert(taken, t)
            counts[ci] += 1
            if owners is not None:
                owners[t] = ci
    return taken


def _chunk_of(starts: list[int], t: int) -> int:
    """Index of the last chunk starting at or before ``t`` (0 when before all)."""
    import bisect

    return max(0, bisect.bisect_right(starts, t) - 1)


def _near(sorted_ts: list[int], t: int, gap: int) -> bool:
    import bisect

    i = bisect.bisect_left(sorted_ts, t)
    return (i < len(sorted_ts) and sorted_ts[i] - t < gap) or (i > 0 and t - sorted_ts[i - 1] < gap)


def _insert(sorted_ts: list[int], t: int) -> None:
    import bisect

    bisect.insort(sorted_ts, t)


# ---------------------------------------------------------------------------------------
# extraction


def frame_name(t_ms: int) -> str:
    """The file name of the frame at ``t_ms``: ``"<t_ms>.jpg"``."""
    return f"{int(t_ms)}.jpg"


def target_size(width: int, height: int, longest_side: int) -> tuple[int, int]:
    """(width, height) in px scaled so the longer side is at most ``longest_side``, aspect
    ratio kept (rounded, at least 1 px); never upscaled."""
    longest = max(width, height)
    if longest_side <= 0 or longest <= longest_side:
        return width, height
    scale = longest_side / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def _decoder_limit(max_pixels: int) -> int:
    """FFmpeg's own ``max_pixels`` codec option for a streamgrade limit (px): 25 % more,
    because FFmpeg checks the buffer it allocates (width rounded up to the SIMD stride,
    coded height such as 1088 for 1080) where streamgrade checks the picture's size."""
    return max_pixels + max_pixels // 4


def _open(video: Path, max_pixels: int | None = None) -> Any:
    """``av.open`` with errors naming the file. With ``max_pixels`` the decoders opened to
    probe the streams (``avformat_find_stream_info`` decodes a first frame of an H.264
    stream) get FFmpeg's ``max_pixels`` option, so probing a huge frame fails cheaply
    instead of allocating it (in formats that list their streams in the header: mp4, mkv)."""
    import av

    if not video.exists():
        raise FrameError(str(video), "no such video file")
    if not video.is_file():
        raise FrameError(str(video), "not a file")
    options = {"max_pixels": str(_decoder_limit(max_pixels))} if max_pixels else None
    try:
        return av.open(str(video), mode="r", options=options)
    except av.error.FFmpegError as e:  # InvalidDataError, PermissionError-like, ...
        raise FrameError(str(video), f"cannot open as a video: {e}") from e
    except OSError as e:
        raise FrameError(str(video), f"cannot open: {e}") from e


def _video_stream(container: Any, video: Path) -> Any:
    import av

    if not container.streams.video:
        raise FrameError(str(video), "no video stream")
    stream = container.streams.video[0]
    name = getattr(stream.codec_context, "name", None) if stream.codec_context is not None else None
    if stream.codec_context is None or not name:
        tag = getattr(stream, "codec_tag", "") or "unknown"
        raise FrameError(str(video), f"the bundled FFmpeg (PyAV {av.__version__}) has no decoder for this video's codec ({tag})")
    try:
        av.Codec(name, "r")
    except Exception as e:
        raise FrameError(str(video), f"the bundled FFmpeg (PyAV {av.__version__}) cannot decode codec {name!r}") from e
    stream.thread_type = "AUTO"  # frame + slice threads in the decoder
    return stream


def _to_rgb(frame: Any) -> Any:
    """The frame as an RGB Pillow image (libswscale conversion). ``to_ndarray`` +
    ``Image.fromarray`` gives the same pixels as ``VideoFrame.to_image`` in about half the
    time (1.5 vs 3.1 ms for 1280x720 here); without numpy, ``to_image``."""
    from PIL import Image

    try:
        arr = frame.to_ndarray(format="rgb24")
    except ImportError:
        return frame.to_image()
    return Image.fromarray(arr) if arr.ndim == 3 else frame.to_image()


def _write_jpeg(img: Any, dest: Path, longest_side: int, quality: int) -> tuple[int, int, int]:
    """Downscale, encode and atomically write one RGB image; (width, height, bytes)."""
    from PIL import Image

    size = target_size(img.width, img.height, longest_side)
    if size != (img.width, img.height):
        img = img.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    with atomic_writer(dest, fsync=False, kind="frames") as f:  # a cache: regenerable, so no fsync
        img.save(f, format="JPEG", quality=quality)
    return size[0], size[1], dest.stat().st_size


def _cached(dest: Path, t: int) -> Frame | None:
    from PIL import Image

    try:
        with Image.open(dest) as im:
            w, h = im.size
        return Frame(t_ms=t, path=dest.name, width=w, height=h, bytes=dest.stat().st_size, cached=True)
    except (OSError, ValueError):
        return None  # unreadable: extract again


def extract_frames(
    video_path: str | os.PathLike[str],
    times_ms: Iterable[int],
    out_dir: str | os.PathLike[str],
    *,
    longest_side: int = 1280,
    quality: int = 80,
    seek_gap_ms: int = 1000,
    workers: int = 4,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    stats: dict[str, int] | None = None,
) -> list[Frame]:
    """Extract the frames at ``times_ms`` (session ms) of ``video_path`` into ``out_dir``.

    Returns one :class:`Frame` per distinct time, sorted by time. For each time the frame
    taken is the last one whose presentation time ``(pts - start_time) * time_base`` is at
    or before it (a time before the first frame takes the first frame, one after the last
    takes the last). The file is opened once and demuxed / decoded in one forward pass;
    when the next wanted time is more than ``max(seek_gap_ms, longest keyframe interval
    seen so far)`` ahead of the last packet read, the container seeks forward to the
    keyframe at or before it instead of decoding through. (If a seek ever lands behind what
    was already read, i.e. the keyframe interval is longer than seen so far, seeking is
    switched off for the rest of the file, so at most one stretch is decoded twice;
    ``stats["backward_seeks"]`` counts it.)

    Images are downscaled with Pillow so the longest side is at most ``longest_side`` px
    (aspect ratio kept, never upscaled), encoded as JPEG at ``quality`` and written
    atomically (temporary file + ``os.replace``) as ``out_dir/<t_ms>.jpg``. Times whose file
    already exists (and opens as an image) are not extracted again; when all are cached the
    video is not opened. Each frame is converted to RGB (libswscale) on the calling thread;
    downscaling, JPEG encoding and writing run on ``workers`` threads (Pillow releases the
    GIL while resizing and encoding).

    ``max_pixels`` bounds the size of a frame (width * height, px): the stream's declared
    size is checked after opening, before any packet is read, and each decoded frame's size
    as it comes out of the decoder (so a container that declares a small size costs at most
    the decoder's buffers of its first large frame).

    ``stats``, when given, is filled with counters: ``opened`` (0/1), ``packets`` demuxed,
    ``decoded`` frames, ``seeks``, ``backward_seeks``, ``written``, ``cached``.

    Raises :class:`FrameError` (an :class:`~streamgrade.errors.InputError` whose message
    starts with the path) for a missing or unreadable file, no video stream, a codec the
    bundled FFmpeg cannot decode, or data that fails to decode; :class:`FrameTooLarge` (an
    InputError, not a FrameError) for frames over ``max_pixels``; ``ValueError`` for a
    negative time.
    """
    video = Path(video_path)
    out = Path(out_dir)
    st = stats if stats is not None else {}
    for k in ("opened", "packets", "decoded", "seeks", "backward_seeks", "written", "cached"):
        st.setdefault(k, 0)
    wanted = sorted({int(t) for t in times_ms})
    if wanted and wanted[0] < 0:
        raise ValueError(f"negative frame time {wanted[0]} ms")
    out.mkdir(parents=True, exist_ok=True)

    result: dict[int, Frame] = {}
    todo: list[int] = []
    for t in wanted:
        hit = _cached(out / frame_name(t), t) if (out / frame_name(t)).exists() else None
        if hit is not None:
            result[t] = hit
            st["cached"] += 1
        else:
            todo.append(t)
    if not todo:
        return [result[t] for t in wanted]

    import av

    container = _open(video, max_pixels)
    st["opened"] += 1
    try:
        stream = _video_stream(container, video)
        cc = stream.codec_context
        declared = (int(cc.width or 0), int(cc.height or 0))
        _check_size(video, *declared, max_pixels)  # 0x0 (not known until decoded) passes
        # FFmpeg refuses to allocate a larger frame (a stream that grows mid-way): the
        # decode error below is then reported as FrameTooLarge
        cc.options = {**cc.options, "max_pixels": str(_decoder_limit(max_pixels))}
        tb = stream.time_base
        if tb is None:
            raise FrameError(str(video), "video stream has no time base")
        tb = Fraction(tb.numerator, tb.denominator)
        origin = stream.start_time  # pts of the first frame, in time_base units

        def ms_of(pts: int) -> Fraction:
            return (pts - (origin or 0)) * tb * 1000

        pending: list[tuple[int, Future[tuple[int, int, int]], int]] = []
        pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="frames")
        try:
            i = 0  # next index in todo
            prev = None  # last decoded frame (av.VideoFrame) and its ms
            prev_ms: Fraction | None = None
            last_pkt_ms: Fraction | None = None
            last_key_ms: Fraction | None = None
            gop_ms = Fraction(0)
            can_seek = True
            seek_floor: Fraction | None = None  # packets read before the last seek reached here

            last_conv: list[Any] = [None, None]  # (frame, image) of the last conversion

            def emit(frame: Any, frame_ms: Fraction, t: int) -> None:
                # bound the images held in memory while encoders catch up
                while len(pending) >= 2 * max(1, workers):
                    _collect(pending.pop(0), result)
                # PyAV frames are converted on this thread only (their reformatter is not
                # shared across threads), once per frame even when several times take it
                if last_conv[0] is not frame:
                    last_conv[0], last_conv[1] = frame, _to_rgb(frame)
                fut = pool.submit(_write_jpeg, last_conv[1], out / frame_name(t), longest_side, quality)
                pending.append((t, fut, int(frame_ms)))

            def on_frame(frame: Any) -> None:
                nonlocal i, prev, prev_ms
                st["decoded"] += 1
                _check_size(video, frame.width, frame.height, max_pixels, declared)
                if frame.pts is None:
                    return
                fms = ms_of(frame.pts)
                while i < len(todo) and fms > todo[i]:
                    if prev is not None and prev_ms is not None and prev_ms <= todo[i]:
                        emit(prev, prev_ms, todo[i])
                    else:  # wanted time before the first frame (or before a seek's keyframe)
                        emit(frame, fms, todo[i])
                    i += 1
                prev, prev_ms = frame, fms

            eof = False
            while i < len(todo) and not eof:
                eof = True
                seek_to: int | None = None
                for packet in container.demux(stream):
                    if packet.pts is not None:
                        pms = ms_of(packet.pts)
                        st["packets"] += 1
                        if seek_floor is not None:
                            # the seek went back over read data, or did not move forward at
                            # all (a decoder still filling up after a single keyframe):
                            # decode straight through from here on
                            if pms <= seek_floor:
                                st["backward_seeks"] += 1
                                can_seek = False
                            seek_floor = None
                        if packet.is_keyframe:
                            if last_key_ms is not None and pms > last_key_ms:
                                gop_ms = max(gop_ms, pms - last_key_ms)
                            last_key_ms = pms
                        last_pkt_ms = pms if last_pkt_ms is None else max(last_pkt_ms, pms)
                    try:
                        for frame in packet.decode():
                            on_frame(frame)
                    except av.error.FFmpegError as e:
                        _check_size(video, int(cc.width or 0), int(cc.height or 0), max_pixels, declared)
                        raise FrameError(str(video), f"cannot decode video data: {e}") from e
                    if i >= len(todo):
                        eof = False
                        break
                    if (can_seek and packet.pts is not None and last_pkt_ms is not None
                            and todo[i] - last_pkt_ms > max(seek_gap_ms, gop_ms)):
                        seek_to = todo[i]
                        eof = False
                        break
                if seek_to is not None:
                    target = int(Fraction(seek_to, 1000) / tb) + (origin or 0)
                    try:
                        container.seek(target, backward=True, any_frame=False, stream=stream)
                    except av.error.FFmpegError:
                        can_seek = False  # unseekable: carry on reading from a fresh demux
                        eof = False
                        continue
                    st["seeks"] += 1
                    seek_floor = last_pkt_ms
                    last_key_ms = None
            # end of file (or all found): the remaining times take the last frame
            while i < len(todo):
                if prev is None:
                    raise FrameError(str(video), "no decodable video frames")
                emit(prev, prev_ms or Fraction(0), todo[i])
                i += 1
            while pending:
                _collect(pending.pop(0), result)
            st["written"] += sum(1 for f in result.values() if not f.cached)
        finally:
            for _, fut, _ in pending:
                fut.cancel()
            pool.shutdown(wait=True)
    finally:
        container.close()
    return [result[t] for t in wanted]


def _collect(item: tuple[int, Future[tuple[int, int, int]], int], result: dict[int, Frame]) -> None:
    t, fut, src = item
    w, h, n = fut.result()
    result[t] = Frame(t_ms=t, path=frame_name(t), width=w, height=h, bytes=n, source_ms=src)


# ---------------------------------------------------------------------------------------
# helpers for the judges


def image_data_url(path: str | os.PathLike[str]) -> str:
    """The JPEG at ``path`` as a ``data:image/jpeg;base64,...`` URL (OpenAI image input);
    about 4/3 of the file's bytes. Raises :class:`FrameError` naming the file if unreadable."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise FrameError(str(p), f"cannot read frame: {e.strerror or e}") from e
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")


def blank_or_unchanged(
    frames: Sequence[Frame | str | os.PathLike[str]],
    base_dir: str | os.PathLike[str] | None = None,
    *,
    blank_std: float = 4.0,
    same_diff: float = 2.0,
    thumb: int = 16,
) -> dict[str, Any]:
    """A cheap visual signal for the heuristic judge.

    Each frame (a :class:`Frame`, whose ``path`` is relative to ``base_dir``, or a path) is
    reduced to a ``thumb`` x ``thumb`` grayscale thumbnail (JPEG draft mode decodes at 1/8
    scale, so this costs well under a millisecond per frame). A frame is *blank* when the
    thumbnail's standard deviation is below ``blank_std`` (0-255 levels: an all-black, all-
    white or single-colour screen); a frame is *unchanged* when the mean absolute difference
    of its thumbnail from the previous frame's is below ``same_diff`` levels.

    Returns ``{"n", "blank": [t_ms or index], "unchanged": [[prev, cur], ...],
    "blank_fraction", "unchanged_fraction", "stats": [{"t_ms", "mean", "std"}]}``; the
    fractions are over ``n`` frames and ``n - 1`` consecutive pairs (0.0 when undefined).
    """
    from PIL import Image, ImageChops, ImageStat

    base = Path(base_dir) if base_dir is not None else None
    out: dict[str, Any] = {"n": len(frames), "blank": [], "unchanged": [], "stats": []}
    prev_thumb = None
    prev_key: Any = None
    for idx, f in enumerate(frames):
        if isinstance(f, Frame):
            key: Any = f.t_ms
            p = Path(f.path) if base is None else base / f.path
        else:
            key = idx
            p = Path(f) if base is None else base / Path(f)
        try:
            with Image.open(p) as im:
                im.draft("L", (thumb * 2, thumb * 2))
                small = im.convert("L").resize((thumb, thumb), Image.Resampling.BILINEAR)
        except OSError as e:
            raise FrameError(str(p), f"cannot read frame: {e}") from e
        s = ImageStat.Stat(small)
        mean, std = s.mean[0], s.stddev[0]
        out["stats"].append({"t_ms": key, "mean": round(mean, 2), "std": round(std, 2)})
        if std < blank_std:
            out["blank"].append(key)
        if prev_thumb is not None:
            diff = ImageStat.Stat(ImageChops.difference(small, prev_thumb)).mean[0]
            if diff < same_diff:
                out["unchanged"].append([prev_key, key])
        prev_thumb, prev_key = small, key
    n = len(frames)
    out["blank_fraction"] = len(out["blank"]) / n if n else 0.0
    out["unchanged_fraction"] = len(out["unchanged"]) / (n - 1) if n > 1 else 0.0
    return out


__all__ = [
    "Frame",
    "FrameError",
    "FrameTooLarge",
    "FramesConfig",
    "blank_or_unchanged",
    "extract_frames",
    "frame_name",
    "image_data_url",
    "plan_frames",
    "target_size",
]
