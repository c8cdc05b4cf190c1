"""``query``: SQL (DuckDB) over a graded output folder, printed as a table, JSON or CSV."""

from __future__ import annotations

import csv
import datetime as _dt
import decimal
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import click

from ..summary import EXIT_USAGE
from ._app import main


def plain(v: Any) -> Any:
    """A DuckDB value as JSON-ready data: times as ISO 8601, decimals as floats, UUIDs and
    bytes as text; structs, maps and lists kept (recursively)."""
    if isinstance(v, (_dt.datetime, _dt.date, _dt.time)):
        return v.isoformat()
    if isinstance(v, _dt.timedelta):
        return v.total_seconds()
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).decode("utf-8", "replace")
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    return v


def cell(v: Any) -> str:
    """One CSV or table cell: scalars as text (NULL as empty), nested values as JSON."""
    v = plain(v)
    if v is None:
        return ""
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


@main.command("query")
@click.argument("out", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("sql")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of row objects.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (a header row, then the rows).")
@click.option("--max-width", type=int, default=80, show_default=True,
              help="Table: most characters shown of one cell (JSON and CSV are never cut).")
def query_cmd(out, sql, as_json, as_csv, max_width) -> None:
    """Run one SQL statement (DuckDB) over the graded results in OUT, read-only.

    \b
    Views: scores      the latest record of each session (scores.jsonl fields; metrics.X)
           score_history  every line of exports/scores.jsonl
           sft, sharegpt, dpo   the training files under exports/
           sessions    results.json session fields (meta, metrics as JSON: meta->>'seed')
    \b
    Example: streamgrade query OUT "select source_format, avg(score) from scores group by 1"

    Runs beside a grade or watch on the same folder (no lock is taken, nothing is
    written). Exit codes: 0 ok, 2 a SQL error or a view with no file (the message says
    which).
    """
    from ..query import QueryError, run_query

    if as_json and as_csv:
        raise click.UsageError("--json and --csv: choose one")
    try:
        res = run_query(out, sql)
    except QueryError as exc:
        click.echo(f"streamgrade: query: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    for note in res.notes:
        click.echo(f"streamgrade: {note}", err=True)
    if as_json:
        click.echo(json.dumps([dict(zip(res.columns, map(plain, row))) for row in res.rows], ensure_ascii=False))
        return
    if as_csv:
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(res.columns)
        w.writerows([cell(v) for v in row] for row in res.rows)
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    if not console.is_terminal:
        console.width = 200
    table = Table(show_lines=False)
    for c in res.columns:
        table.add_column(c, overflow="fold")
    for row in res.rows:
        texts = [cell(v) for v in row]
        # Text, not markup: a cell holding "[bold]" or "[/]" is shown as it is
        table.add_row(*[Text(t if len(t) <= max_width else t[: max_width - 1] + "…") for t in texts])
    console.print(table)
    click.echo(f"{len(res.rows)} row{'s' if len(res.rows) != 1 else ''}", err=True)
