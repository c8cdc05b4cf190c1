"""``streamgrade query OUT "SQL"``: SQL (DuckDB) over an output folder, without writing to it.

Views (each reads OUT's files when a query uses it; nothing is copied or cached):

- ``scores``: the latest record of every session (graded, failed or ungradable), the
  scores.jsonl fields: ``session_id, source_format, source_path, status, score, components,
  confidence, judge, reward, n_actions, duration_s, usage, error, graded_at, fingerprint,
  task_id, trial, agent, model, turns, tool_calls, termination, metrics, golden, p_success,
  ...``. Read from ``OUT/exports/scores.jsonl``, the last version of each session by
  ``graded_at``; ``metrics`` is a struct of every metric name found (``metrics.progression``).
- ``score_history``: every line of scores.jsonl (every graded or failed version).
- ``sft``, ``sharegpt``, ``dpo``: the training files under ``OUT/exports/`` (ChatML
  ``messages``/``tools``/``metadata``, ShareGPT ``conversations``, DPO
  ``prompt``/``chosen``/``rejected``), one row per line.
- ``sessions``: the session fields of each session's results.json
  (``OUT/sessions/<shard>/<folder>/results.json``, the flat ``OUT/sessions/<folder>/`` of
  older outputs, and the session store's rows, written for the query to a temporary JSONL
  file outside OUT that is removed when the connection is closed with :func:`close`):
  ``session_id, source_format, source_path, kind, task_id, trial, agent, model,
  termination, task, reward, duration_s, app, score, status, error, summary, folder``, and as
  DuckDB ``JSON`` (``meta->>'seed'``): ``metrics, meta, objectives, components``.

Column types are inferred from the whole file (DuckDB ``read_json``, ``sample_size=-1``);
objects whose keys differ between rows are structs of every key (absent keys are NULL); a
field whose type differs between rows is ``JSON``.

Read-only: the database is in memory, OUT's files are opened for reading only, the
writer's lock (``OUT/.streamgrade.lock``) is never taken, so a query runs beside a
``grade`` or ``watch`` on the same folder. The files a grade rewrites are replaced
atomically (a query sees the old or the new file); a line of scores.jsonl being appended at
that moment is incomplete and left out (the one line DuckDB's ``ignore_errors`` lets through,
as a row of NULLs that the view drops: a complete line is never malformed, see
:mod:`streamgrade.sinks.jsonl`), and a warning says so.
The views expose only what OUT's files hold. The SQL is the user's own: DuckDB may read
other files the user can read; installing extensions from the network is turned off.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .exports.training import FILE_NAMES
from .sinks.layout import SCORES_JSONL, SESSIONS, Layout

#: view name -> the file under OUT/exports/ it reads.
EXPORT_VIEWS = {"sft": FILE_NAMES["sft"], "sharegpt": FILE_NAMES["sharegpt"], "dpo": FILE_NAMES["dpo"]}
VIEWS = ("scores", "score_history", *EXPORT_VIEWS, "sessions")


class QueryError(Exception):
    """The SQL failed (DuckDB's message), or a view it uses has no file under OUT."""


def _lit(s: str | Path) -> str:
    """A SQL string literal."""
    return "'" + str(s).replace("'", "''") + "'"


def read_jsonl_sql(path: Path, *, ignore_errors: bool = False) -> str:
    """The ``read_json`` call of one JSONL file: the schema inferred from every row, objects
    as structs (never MAP, which `datasets` cannot load), conflicting types as JSON."""
    return (f"read_json({_lit(path)}, format='newline_delimited', sample_size=-1, map_inference_threshold=-1"
            + (", ignore_errors=true" if ignore_errors else "") + ")")


_SESSION_TEXT = ("session_id", "format", "path", "kind", "task_id", "trial", "agent", "model", "termination", "task",
                 "app")


_SESSION_COLUMNS = "{'session': 'JSON', 'score': 'DOUBLE', 'status': 'VARCHAR', 'error': 'VARCHAR', 'verdict': 'JSON'"


def _sessions_sql(globs: list[Path], stored: Path | None = None) -> str:
    """The ``sessions`` view over the results.json files matched by ``globs`` and, with
    ``stored``, a JSONL file of the session store's results.json objects, each with its
    ``folder`` name (:func:`_write_stored`)."""
    cols = ", ".join(f"session->>'{k}' AS {'source_format' if k == 'format' else 'source_path' if k == 'path' else k}"
                     for k in _SESSION_TEXT)
    select = (f"SELECT {cols}, TRY_CAST(session->>'reward' AS DOUBLE) AS reward, "
              "TRY_CAST(session->>'duration_s' AS DOUBLE) AS duration_s, "
              "session->'metrics' AS metrics, session->'meta' AS meta, session->'objectives' AS objectives, "
              "score, status, error, verdict->>'summary' AS summary, verdict->'components' AS components, ")
    parts = []
    if globs:
        files = "[" + ", ".join(_lit(g) for g in globs) + "]"
        parts.append(select + "regexp_extract(filename, '([^/\\\\]+)[/\\\\]results\\.json$', 1) AS folder "
                     f"FROM read_json({files}, format='auto', filename=true, columns={_SESSION_COLUMNS}}})")
    if stored is not None:
        parts.append(select + "folder FROM read_json("
                     f"{_lit(stored)}, format='newline_delimited', columns={_SESSION_COLUMNS}, 'folder': 'VARCHAR'}})")
    return " UNION ALL ".join(parts)


def _session_globs(sessions: Path) -> list[Path]:
    """The globs of the results.json files under OUT/sessions that match something:
    sharded folders, and the flat folders of an older output."""
    return [g for g in (sessions / "*" / "*" / "results.json", sessions / "*" / "results.json")
            if next(iter(sessions.glob(str(g.relative_to(sessions)))), None) is not None]


def _write_stored(out: Path) -> Path | None:
    """The session store's sessions as a temporary JSONL file (outside OUT) of their
    results.json objects with ``folder``, or None when the store has none."""
    import json as _json

    from .sinks.reader import SessionsReader

    with SessionsReader(out) as reader:
        if reader.store is None or reader.store.empty:
            return None
        fd, name = tempfile.mkstemp(prefix="streamgrade-sessions-", suffix=".jsonl")
        n = 0
        with open(fd, "w", encoding="utf-8") as f:
            for folder, rec, stored in reader.entries():
                if not stored:
                    continue
                found = reader.files(rec["session_id"], None, True, sft=False)
                if found is None:
                    continue
                f.write(_json.dumps({**found[0], "folder": folder.name}, ensure_ascii=False) + "\n")
                n += 1
    if not n:
        Path(name).unlink(missing_ok=True)
        return None
    return Path(name)


@dataclass
class Views:
    """The views defined over one OUT, and the notes to show the user (e.g. a half-written
    last line of scores.jsonl)."""

    out: Path
    defined: dict[str, Path] = field(default_factory=dict)  # view -> the file(s) it reads
    missing: dict[str, Path] = field(default_factory=dict)  # view -> the file that does not exist
    notes: list[str] = field(default_factory=list)
    temp: list[Path] = field(default_factory=list)  # files made for the views (removed by close)


def connect(out: str | Path, *, stored_sessions: bool = True) -> tuple[Any, Views]:
    """An in-memory DuckDB connection with the views of OUT (see the module docstring) and
    what was defined; ``stored_sessions=False`` leaves the session store's rows out of the
    ``sessions`` view (for SQL that does not use it: writing them out decodes every row).
    Close it with :func:`close`. Views whose file does not exist are not defined (see
    :func:`explain_missing`). Raises QueryError when OUT has neither scores.jsonl nor a
    session folder."""
    import duckdb

    out = Path(out)
    layout = Layout(out)
    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False})
    con.execute("SET enable_progress_bar = false")
    con.execute(f"SET temp_directory = {_lit(Path(tempfile.gettempdir()) / 'streamgrade-duckdb')}")
    views = Views(out)
    scores = layout.export(SCORES_JSONL)
    if scores.is_file() and scores.stat().st_size:
        src = read_jsonl_sql(scores, ignore_errors=True)
        # ignore_errors turns the malformed line into a row of NULLs: every record has a session_id
        con.execute(f"CREATE VIEW score_history AS SELECT * FROM {src} WHERE session_id IS NOT NULL")
        con.execute("CREATE VIEW scores AS SELECT * FROM score_history "
                    "QUALIFY row_number() OVER (PARTITION BY session_id ORDER BY graded_at DESC) = 1")
        views.defined.update(scores=scores, score_history=scores)
        if not _ends_with_newline(scores):
            views.notes.append(f"{scores}: the last line is being written (a grade run is appending); it is left out")
    else:
        views.missing.update(scores=scores, score_history=scores)
    for name, file in EXPORT_VIEWS.items():
        path = layout.export(file)
        if path.is_file() and path.stat().st_size:
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM {read_jsonl_sql(path)}")
            views.defined[name] = path
        else:
            views.missing[name] = path
    sessions = out / SESSIONS
    globs = _session_globs(sessions) if sessions.is_dir() else []
    stored = _write_stored(out) if stored_sessions else None
    if stored is not None:
        views.temp.append(stored)
    if globs or stored is not None:
        con.execute(f"CREATE VIEW sessions AS {_sessions_sql(globs, stored)}")
        views.defined["sessions"] = sessions
    else:
        views.missing["sessions"] = sessions
    if not views.defined:
        close(con, views)
        raise QueryError(f"{out}: no exports/{SCORES_JSONL} and no session folder: is it a streamgrade output folder?")
    return con, views


def close(con: Any, views: Views) -> None:
    """Close a connection of :func:`connect` and remove the files made for its views."""
    con.close()
    for path in views.temp:
        path.unlink(missing_ok=True)


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, 2)
        return f.read(1) == b"\n"


def explain_missing(message: str, views: Views) -> str:
    """DuckDB's "table does not exist" error, with why when it names one of our views."""
    for name, path in views.missing.items():
        if f"name {name} does not exist" in message:
            return (f"view {name!r} has no data: {path} does not exist or is empty (the grade run wrote no "
                    f"such rows). Views of this folder: {', '.join(views.defined) or 'none'}")
    if "does not exist" in message and "Table" in message:
        return f"{message.strip()}\nViews of this folder: {', '.join(views.defined)}"
    return message.strip()


@dataclass
class Result:
    """Column names and rows (tuples of Python values) of a query, plus notes."""

    columns: list[str]
    rows: list[tuple]
    notes: list[str] = field(default_factory=list)


def one_statement(sql: str) -> str:
    """``sql`` when it holds exactly one statement; QueryError otherwise."""
    import duckdb

    try:
        stmts = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(str(exc).strip()) from None
    if len(stmts) != 1:
        raise QueryError(f"give one SQL statement ({len(stmts)} found)")
    return sql


def run_query(out: str | Path, sql: str) -> Result:
    """Run one SQL statement over OUT's views. Raises QueryError with DuckDB's message."""
    import duckdb

    one_statement(sql)
    con, views = connect(out, stored_sessions=re.search(r"\bsessions\b", sql, re.IGNORECASE) is not None)
    try:
        cur = con.execute(sql)
        columns = [d[0] for d in cur.description] if cur.description else []
        rows = cur.fetchall() if cur.description else []
    except duckdb.Error as exc:
        raise QueryError(explain_missing(str(exc), views)) from None
    finally:
        close(con, views)
    return Result(columns, rows, views.notes)


def matching_sessions(out: str | Path, predicate: str) -> tuple[set[str], list[str]]:
    """(session ids of the ``scores`` view rows where ``predicate`` holds, notes): the SQL
    predicate of ``export --where`` (``score >= 80 and metrics.progression > 0.3``). Raises
    QueryError when the predicate is not one expression or fails."""
    import duckdb

    sql = f"SELECT session_id FROM scores WHERE ({predicate})"
    try:
        stmts = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(f"--where {predicate!r}: {str(exc).strip()}") from None
    if len(stmts) != 1:
        raise QueryError(f"--where {predicate!r}: give one SQL expression (a WHERE clause's condition)")
    con, views = connect(out, stored_sessions=False)  # the predicate reads the scores view
    try:
        ids = {r[0] for r in con.execute(sql).fetchall()}
    except duckdb.Error as exc:
        raise QueryError(f"--where {predicate!r}: {explain_missing(str(exc), views)}") from None
    finally:
        close(con, views)
    return ids, views.notes


__all__ = ["VIEWS", "EXPORT_VIEWS", "QueryError", "Views", "Result", "connect", "close", "run_query", "matching_sessions",
           "read_jsonl_sql", "explain_missing", "one_statement"]
