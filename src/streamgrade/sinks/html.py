"""Offline HTML reports: per-session pages and a run index, from what the pipeline wrote.

- :func:`render_session` turns a session's ``{scores,results,sft}.json`` (its folder
  ``OUT/sessions/<shard>/<folder>/``, or the same documents from the session store) into
  ``results.html`` (score, components, summary, chunks, action timeline with frame
  thumbnails when results.json lists frames) and ``sft.html`` (the conversation), in its
  folder; the link back to the index follows the folder's depth.
- :func:`render_index` writes ``OUT/index.html``: counts, a 10-bin score histogram (inline
  SVG), the judge's agreement with ground truth when ``streamgrade agreement`` has written
  ``OUT/agreement/`` (table and PNG figures), and a sortable table of sessions. It streams
  every session's scores.json (:mod:`.reader`: folders and the session store, one at a
  time, only a bounded heap of the rows' fields is kept), so it scales to 100K sessions;
  the table holds the ``max_rows`` most recently graded ones (5,000 by default) and says
  so on the page.
- :func:`update_reports` is what the pipeline calls after each commit batch: it renders the
  given sessions' pages at once (``[reports] session_pages = "live"``; by default none:
  ``streamgrade report``, :mod:`.report`) and the index at most every ``min_interval_s``
  seconds (a throttle with a trailing render: a batch inside the interval schedules one
  render at its end on a daemon timer thread, so the index never stays stale for longer
  than the interval); ``final=True`` (end of a run) renders the index now and cancels the
  pending timer.

Only the JSON files are read: nothing here depends on pipeline internals. The pages are
self-contained (no CDN, no external resource) and work from ``file://``.

Session data is untrusted (task titles, typed text, window titles, chat messages): Jinja2
autoescaping is on for every template and no session value is ever marked safe; links and
image sources are built only from our own relative paths (folder names listed on disk,
``frames/...`` paths checked and URL-quoted); class names taken from data are whitelisted;
no event handler attribute exists in any template. Each page carries a Content-Security-
Policy (``default-src 'none'``) whose script and style sources are a per-page nonce generated
at render time, so even an injected ``<script>`` would not run.
"""

from __future__ import annotations

import heapq
import json
import math
import os
import re
import secrets
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Iterator
from urllib.parse import quote

import jinja2
import msgspec

from .atomic import write_files_atomic
from .html_agreement import agreement_section
from .layout import INDEX_HTML, Layout
from .reader import SessionsReader, read_json

_SHARD_NAME = re.compile(r"[0-9a-f]{2}")

MAX_INDEX_ROWS = 5000  # sessions in the index table (the most recently graded)
MAX_ACTIONS = 5000  # actions in a results.html timeline
MAX_MESSAGES = 5000  # messages in an sft.html page
MAX_TEXT = 20000  # characters of one message / argument shown before cutting
DEFAULT_MIN_INTERVAL_S = 30.0  # index.html re-rendered at most this often by update_reports

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("streamgrade", "templates"),
    autoescape=True,  # every template, whatever its extension
    undefined=jinja2.ChainableUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


# -- small helpers (all return plain str: autoescaped by the templates) ----------------------
def _fmt_num(v: Any, digits: int = 1) -> str:
    if isinstance(v, bool) or v is None:
        return "" if v is None else str(v)
    if isinstance(v, (int, float)):
        if isinstance(v, float) and not math.isfinite(v):
            return str(v)
        return f"{v:.{digits}f}" if isinstance(v, float) else str(v)
    return str(v)


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def _fmt_ms(v: Any) -> str:
    n = _num(v)
    if n is None:
        return ""
    sign = "-" if n < 0 else ""
    n = abs(int(n))
    m, ms = divmod(n, 60000)
    return f"{sign}{m}:{ms / 1000:06.3f}"


def _text(v: Any, limit: int = MAX_TEXT) -> str:
    """Any JSON value as display text, cut at ``limit`` characters."""
    if v is None:
        return ""
    s = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, indent=2)
    return s if len(s) <= limit else s[:limit] + f"\n…[{len(s) - limit} more characters cut]"


_env.filters.update(num=_fmt_num, ms=_fmt_ms, text=_text)

_FRAME_RE = re.compile(r"^frames/[A-Za-z0-9._\-/]+$")


def _frame_src(path: Any) -> str | None:
    """A frame path from results.json as an ``<img src>``: only relative paths under
    ``frames/`` with plain characters and no ``..`` (anything else is dropped), URL-quoted."""
    if not isinstance(path, str) or not _FRAME_RE.match(path):
        return None
    if any(part in ("", ".", "..") for part in path.split("/")):
        return None
    return quote(path, safe="/")


_STATUS_CLASSES = {"graded", "failed", "ungradable"}


def _status_class(status: Any) -> str:
    return f"st-{status}" if status in _STATUS_CLASSES else "st-other"


def _nonce() -> str:
    return secrets.token_urlsafe(18)


def _render(name: str, **ctx: Any) -> bytes:
    nonce = _nonce()
    return _env.get_template(name).render(nonce=nonce, **ctx).encode("utf-8")


def _render_action(a: dict) -> str:
    """An action as the same Python call the SFT messages use (``click(640, 320)``)."""
    try:
        from ..models import Action
        from ..sft import render_action

        return render_action(msgspec.convert(a, Action))
    except Exception:  # an unknown shape: show its fields plainly
        return ", ".join(f"{k}={v!r}" for k, v in a.items() if k not in ("frames",))


def _attach_frames(actions: list[dict], frames: Any) -> list[list[str]]:
    """Frame image sources per action: an action's own ``frames`` list, else the run-level
    ``frames`` (``[{"t_ms", "path", "action"?}]``) given to the action named by ``action``
    (its index) or to the last action that starts at or before the frame."""
    out: list[list[str]] = [[] for _ in actions]
    for i, a in enumerate(actions):
        for fr in a.get("frames") or [] if isinstance(a.get("frames"), list) else []:
            src = _frame_src(fr.get("path") if isinstance(fr, dict) else fr)
            if src:
                out[i].append(src)
    if isinstance(frames, list) and actions:
        import bisect

        starts = [_num(a.get("t_ms")) or 0.0 for a in actions]
        for fr in frames:
            if not isinstance(fr, dict):
                continue
            src = _frame_src(fr.get("path"))
            if not src:
                continue
            idx = fr.get("action")
            if not (isinstance(idx, int) and not isinstance(idx, bool) and 0 <= idx < len(actions)):
                t = _num(fr.get("t_ms"))
                if t is None:
                    continue
                idx = max(0, bisect.bisect_right(starts, t) - 1)
            if not out[idx]:
                out[idx].append(src)
    return out


# -- session pages -----------------------------------------------------------------------------
def _message_view(m: Any) -> dict:
    """One sft.json message as plain display fields (OpenAI chat or Clones shape)."""
    if not isinstance(m, dict):
        return {"role": "?", "role_class": "other", "parts": [_text(m)], "calls": [], "meta": ""}
    role = m.get("role")
    role_s = role if isinstance(role, str) else _text(role)
    parts: list[str] = []
    content = m.get("content")
    if isinstance(content, list):  # content parts
        for p in content:
            if isinstance(p, dict) and p.get("type") == "text":
                parts.append(_text(p.get("text")))
            elif isinstance(p, dict):
                parts.append(f"[{_text(p.get('type') or 'part', 100)} part not shown]")
            else:
                parts.append(_text(p))
    elif content is not None:
        parts.append(_text(content))
    calls = []
    for tc in m.get("tool_calls") or [] if isinstance(m.get("tool_calls"), list) else []:
        fn = tc.get("function") if isinstance(tc, dict) else None
        fn = fn if isinstance(fn, dict) else {}
        args = fn.get("arguments")
        if isinstance(args, str):
            try:
                args = json.dumps(json.loads(args), ensure_ascii=False, indent=2)
            except ValueError:
                pass
        calls.append({"name": _text(fn.get("name"), 500), "id": _text(tc.get("id"), 200) if isinstance(tc, dict) else "",
                      "arguments": _text(args)})
    meta = []
    if m.get("name"):
        meta.append(f"name {_text(m.get('name'), 200)}")
    if m.get("tool_call_id"):
        meta.append(f"call {_text(m.get('tool_call_id'), 200)}")
    ts = m.get("timestamp")
    return {
        "role": role_s,
        "role_class": role_s if role_s in ("system", "user", "assistant", "tool") else "other",
        "parts": parts,
        "calls": calls,
        "meta": " · ".join(meta),
        "time": _fmt_ms(ts) if _num(ts) is not None else "",
        "reasoning": _text(m.get("reasoning_content")) if m.get("reasoning_content") else "",
    }


def _golden_text(g: dict) -> str:
    """The record's golden-path metrics in one line (autoescaped by the template)."""
    yes = lambda k: "yes" if g.get(k) is True else "no"  # noqa: E731
    figs = " · ".join(f"{label} {_fmt_num(g.get(k), 2)}" for label, k in
                      (("recall", "recall"), ("precision", "precision"), ("args", "arg_agreement")) if _num(g.get(k)) is not None)
    return (f"exact {yes('exact')} · in order {yes('in_order')} · any order {yes('any_order')}"
            + (f" · {figs}" if figs else "") + f" ({_fmt_num(g.get('n_reference'), 0)} reference, "
            f"{_fmt_num(g.get('n_calls'), 0)} calls)")


def _index_href(folder: Path) -> str:
    """The link from a session folder's pages to OUT/index.html: three levels up from a
    sharded folder (``sessions/<shard>/<folder>``), two from a flat one."""
    sharded = _SHARD_NAME.fullmatch(folder.parent.name) and folder.parent.parent.name == "sessions"
    return "../../../index.html" if sharded else "../../index.html"


def render_session(folder: Path, docs: tuple[Any, Any, Any] | None = None) -> int:
    """Write ``results.html`` and ``sft.html`` in a session folder (created if missing) from
    its JSON files (scores.json, results.json, sft.json; any may be missing: failed
    sessions have only scores.json), or from ``docs``, the same three values (a session of
    the session store). Returns the bytes written. Raises OSError when the pages cannot be
    written."""
    folder = Path(folder)
    if docs is None:
        scores = read_json(folder / "scores.json")
        results = read_json(folder / "results.json")
        sft = read_json(folder / "sft.json")
    else:
        scores, results, sft = docs
    scores = scores if isinstance(scores, dict) else {}
    results = results if isinstance(results, dict) else {}
    session = results.get("session") if isinstance(results.get("session"), dict) else {}
    sid = session.get("session_id") or scores.get("session_id") or folder.name

    verdict = results.get("verdict") if isinstance(results.get("verdict"), dict) else {}
    comps = verdict.get("components") if isinstance(verdict.get("components"), dict) else None
    if comps is None:
        comps = scores.get("reasons") if isinstance(scores.get("reasons"), dict) else {}
    weights = scores.get("weights") if isinstance(scores.get("weights"), dict) else {}
    components = [
        {"name": k, "score": (c or {}).get("score") if isinstance(c, dict) else c,
         "confidence": c.get("confidence") if isinstance(c, dict) else None,
         "reason": c.get("reason") if isinstance(c, dict) else "", "weight": weights.get(k)}
        for k, c in comps.items()
    ]
    actions_all = [a for a in results.get("actions") or [] if isinstance(a, dict)] \
        if isinstance(results.get("actions"), list) else []
    actions = actions_all[:MAX_ACTIONS]
    thumbs = _attach_frames(actions, results.get("frames"))
    timeline = [{"time": _fmt_ms(a.get("t_ms")), "kind": _text(a.get("kind"), 100), "call": _text(_render_action(a)),
                 "frames": thumbs[i]} for i, a in enumerate(actions)]
    chunks = [c for c in results.get("chunks") or [] if isinstance(c, dict)] if isinstance(results.get("chunks"), list) else []
    score = results.get("score", scores.get("score"))
    status = results.get("status") or scores.get("status")
    judge = scores.get("judge") if isinstance(scores.get("judge"), dict) else {}
    facts = [(k, session.get(k)) for k in ("format", "kind", "app", "task_id", "trial", "agent", "model", "termination")
             if session.get(k) not in (None, "")]
    facts += [(k, scores.get(k)) for k in ("reward", "n_actions", "turns", "tool_calls", "duration_s",
                                           "confidence", "graded_at") if scores.get(k) not in (None, "")]
    if judge:
        facts.append(("judge", f"{judge.get('kind') or ''} {judge.get('model') or ''}".strip()))
    if isinstance(scores.get("golden"), dict):
        facts.append(("golden path", _golden_text(scores["golden"])))
    metrics = session.get("metrics") if isinstance(session.get("metrics"), dict) else {}
    objectives = session.get("objectives") if isinstance(session.get("objectives"), list) else []

    messages_all = sft.get("messages") if isinstance(sft, dict) and isinstance(sft.get("messages"), list) else []
    messages = [_message_view(m) for m in messages_all[:MAX_MESSAGES]]
    tools = sft.get("tools") if isinstance(sft, dict) and isinstance(sft.get("tools"), list) else []
    tool_views = []
    for t in tools:
        fn = t.get("function") if isinstance(t, dict) and isinstance(t.get("function"), dict) else (t if isinstance(t, dict) else {})
        tool_views.append({"name": _text(fn.get("name"), 500), "description": _text(fn.get("description"), 2000),
                           "parameters": _text(fn.get("parameters"), 4000) if fn.get("parameters") else ""})

    common = {"sid": _text(sid, 500), "status": _text(status, 100), "status_class": _status_class(status),
              "has_sft": sft is not None, "index_href": _index_href(folder)}
    files = {
        "results.html": _render(
            "results.html.j2", **common, score=score, summary=verdict.get("summary") or scores.get("summary"),
            components=components, facts=facts, metrics=metrics, task=session.get("task"), objectives=objectives,
            source_path=session.get("path") or scores.get("source_path"), error=results.get("error") or scores.get("error"),
            chunks=chunks, timeline=timeline, n_actions=len(actions_all), actions_cut=len(actions_all) > len(actions),
            score_value=_num(score)),
        "sft.html": _render("sft.html.j2", **common, messages=messages, n_messages=len(messages_all),
                            messages_cut=len(messages_all) > len(messages), tools=tool_views),
    }
    write_files_atomic(folder, files, fsync=False, kind="pages")
    return sum(map(len, files.values()))


# -- index ---------------------------------------------------------------------------------------
def _iter_scores(out: Path) -> Iterator[tuple[str, dict]]:
    """(folder path relative to ``out``, scores.json dict) for each session, one at a time:
    its folder, or the session store (:mod:`.reader`); a folder whose scores.json is
    broken is counted as unreadable."""
    broken: list[Path] = []
    with SessionsReader(out) as reader:
        for folder, rec, _ in reader.entries(on_broken=broken.append):
            yield os.path.relpath(folder, out), rec
            while broken:
                yield os.path.relpath(broken.pop(), out), {}
    for folder in broken:
        yield os.path.relpath(folder, out), {}


_ROW_FIELDS = ("judge", "turns", "n_actions", "status", "session_id", "source_format", "score", "reward", "graded_at")


def _row(name: str, s: dict) -> dict:
    judge = s.get("judge") if isinstance(s.get("judge"), dict) else {}
    turns = s.get("turns")
    n = s.get("n_actions")
    status = s.get("status")
    return {
        "href": "/".join(quote(p, safe="") for p in name.split(os.sep)) + "/results.html",  # our own folder names only
        "sid": _text(s.get("session_id") or name, 300),
        "format": _text(s.get("source_format"), 100),
        "status": _text(status, 50) if status is not None else "unreadable",
        "status_class": _status_class(status),
        "score": _num(s.get("score")),
        "reward": _num(s.get("reward")),
        "n_actions": _num(n),
        "turns": _num(turns),
        "judge": _text(" ".join(str(x) for x in (judge.get("kind"), judge.get("model")) if x), 200),
        "graded_at": _text(s.get("graded_at"), 64) if isinstance(s.get("graded_at"), str) else "",
    }


def render_index(out: Path, *, max_rows: int = MAX_INDEX_ROWS) -> None:
    """Write ``OUT/index.html``: counts, score histogram and a sortable table of the
    ``max_rows`` most recently graded sessions (by graded_at), streaming the session folders."""
    out = Path(out)
    bins = [0] * 10
    total = graded = failed = ungradable = unreadable = 0
    score_sum = 0.0
    formats: dict[str, int] = {}
    heap: list[tuple[str, int, dict]] = []  # min-heap on graded_at: keeps the newest max_rows
    for seq, (name, s) in enumerate(_iter_scores(out)):
        total += 1
        status = s.get("status")
        if status == "graded":
            graded += 1
        elif status == "failed":
            failed += 1
        elif status == "ungradable":
            ungradable += 1
        else:
            unreadable += 1
        fmt = s.get("source_format")
        if isinstance(fmt, str) and len(formats) < 100:
            formats[fmt] = formats.get(fmt, 0) + 1
        sc = _num(s.get("score"))
        if sc is not None and status == "graded":
            score_sum += sc
            bins[min(9, max(0, int(sc // 10)))] += 1
        key = s.get("graded_at") if isinstance(s.get("graded_at"), str) else ""
        if len(heap) < max_rows or (max_rows > 0 and (key, seq) > heap[0][:2]):
            # only what a row shows: 5,000 whole records would weigh ~25 MB
            item = (key, seq, {k: s.get(k) for k in _ROW_FIELDS}, name)
            if len(heap) < max_rows:
                heapq.heappush(heap, item)  # type: ignore[arg-type]
            else:
                heapq.heapreplace(heap, item)  # type: ignore[arg-type]
    newest = sorted(heap, key=lambda it: (it[0], it[1]), reverse=True)
    rows = [_row(name, s) for _, _, s, name in newest]

    # histogram geometry (numbers only; computed here)
    peak = max(bins) or 1
    w, h, pad, bw = 420, 160, 24, 36
    bars = []
    for i, c in enumerate(bins):
        bh = round((h - 2 * pad) * c / peak) if c else 0
        bars.append({"x": pad + i * (bw + 2), "y": h - pad - bh, "w": bw, "h": bh, "count": c,
                     "label": f"{i * 10}-{i * 10 + 10 if i < 9 else 100}", "lx": pad + i * (bw + 2) + bw // 2})
    data = _render(
        "index.html.j2", rows=rows, total=total, graded=graded, failed=failed, ungradable=ungradable, unreadable=unreadable,
        mean=(score_sum / graded if graded else None), formats=sorted(formats.items()),
        capped=total > len(rows), max_rows=max_rows, bars=bars, hist={"w": w, "h": h, "pad": pad},
        agreement=agreement_section(out),
        generated=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    out.mkdir(parents=True, exist_ok=True)
    write_files_atomic(out, {INDEX_HTML: data}, fsync=False, kind="index")


# -- incremental regeneration --------------------------------------------------------------------
class ReportUpdater:
    """Session pages at once, index at most every ``min_interval_s`` (leading edge, plus one
    trailing render on a daemon timer so the last batch shows up within the interval). The
    interval grows to 10x the last index render's duration when that is longer (100K
    sessions: ~5 s a render, so at most one every ~50 s)."""

    def __init__(self, out: Path, min_interval_s: float = DEFAULT_MIN_INTERVAL_S):
        self.out = Path(out)
        self.min_interval_s = min_interval_s
        self._lock = threading.Lock()  # one index render at a time
        self._state = threading.Lock()
        self._last = -math.inf
        self._timer: threading.Timer | None = None
        self._took = 0.0  # seconds the last index render took
        self.index_renders = 0

    def update(self, session_ids: Iterable[str], *, final: bool = False) -> None:
        layout = Layout(self.out)
        for sid in session_ids:
            folder = layout.find_session_dir(sid)
            if folder is not None:
                render_session(folder)
        with self._state:
            # at least min_interval_s, and 10x the last render's duration (huge runs: the index
            # never takes more than ~10% of one thread)
            wait = self._last + max(self.min_interval_s, 10 * self._took) - time.monotonic()
            if not final and wait > 0:
                if self._timer is None:  # schedule one trailing render
                    self._timer = threading.Timer(wait, self._trailing)
                    self._timer.daemon = True
                    self._timer.start()
                return
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._last = time.monotonic()
        self._render_index()

    def _trailing(self) -> None:
        with self._state:
            self._timer = None
            self._last = time.monotonic()
        try:
            self._render_index()
        except OSError:  # a disk problem must not kill the timer thread noisily; next call retries
            pass

    def _render_index(self) -> None:
        with self._lock:
            t0 = time.monotonic()
            render_index(self.out)
            self._took = time.monotonic() - t0
            self.index_renders += 1

    def close(self) -> None:
        with self._state:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None


_updaters: dict[Path, ReportUpdater] = {}
_updaters_lock = threading.Lock()


def update_reports(out: Path, session_ids: Iterable[str], *, final: bool = False,
                   min_interval_s: float = DEFAULT_MIN_INTERVAL_S) -> None:
    """Render the given sessions' pages now and ``OUT/index.html`` at most every
    ``min_interval_s`` seconds (per output folder; a skipped render is done by a timer at the
    end of the interval). ``final=True`` renders the index now (call it at the end of a run).
    Blocking: call it from a worker thread in async code."""
    key = Path(out).resolve()
    with _updaters_lock:
        up = _updaters.get(key)
        if up is None:
            up = _updaters[key] = ReportUpdater(key, min_interval_s)
        up.min_interval_s = min_interval_s
    up.update(session_ids, final=final)
    if final:
        up.close()


__all__ = ["render_session", "render_index", "update_reports", "ReportUpdater", "MAX_INDEX_ROWS"]
