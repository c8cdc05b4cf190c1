"""Exports as Parquet (``streamgrade export OUT --format F --parquet``), for `datasets`, the
Hugging Face Hub's dataset viewer, pandas, Polars and DuckDB at scale.

A JSONL export is converted by DuckDB (``COPY (SELECT * FROM read_json(...)) TO ... (FORMAT
parquet)``), streaming, row order kept:

- the schema is inferred from every row (``sample_size=-1``); objects become structs with
  every key seen (a row without a key has it as null), never Parquet MAPs, which `datasets`
  cannot load; a field whose type differs between rows (message ``content`` as a string in
  one row and a list of parts in another) is DuckDB ``JSON``, written as the Arrow
  ``arrow.json`` extension type, which `datasets` (5.x) reads as its ``Json`` feature and
  decodes back to the same Python value;
- ``tools`` (JSON Schema tool definitions) are kept as ``JSON``: merging every tool's
  ``parameters.properties`` into one struct would give each tool the others' parameters as
  nulls;
- zstd compression, row groups of :data:`ROW_GROUP_ROWS` rows (the Hub's viewer reads one
  row group at a time).

The file is written to a temporary name beside ``dest`` and renamed, so a reader never sees
half a file. Raises ValueError when the JSONL has no row, OSError on a write error.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

#: Rows per Parquet row group.
ROW_GROUP_ROWS = 1000
#: Top-level columns kept as DuckDB JSON (Arrow ``arrow.json``) whatever their inferred type.
JSON_COLUMNS = ("tools",)


def _lit(s: str | Path) -> str:
    return "'" + str(s).replace("'", "''") + "'"


def jsonl_to_parquet(src: str | Path, dest: str | Path, *, json_columns: tuple[str, ...] = JSON_COLUMNS,
                     row_group_rows: int = ROW_GROUP_ROWS) -> int:
    """Convert the JSONL file ``src`` to the Parquet file ``dest`` (see the module
    docstring); returns the rows written."""
    import duckdb

    from ..query import read_jsonl_sql
    from ..sinks.atomic import _umask, fsync_dir

    src, dest = Path(src), Path(dest)
    if not src.is_file() or not src.stat().st_size:
        raise ValueError(f"{src}: no row to convert")
    dest.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False})
    try:
        con.execute("SET enable_progress_bar = false")
        con.execute(f"SET temp_directory = {_lit(Path(tempfile.gettempdir()) / 'streamgrade-duckdb')}")
        schema = con.execute(f"DESCRIBE SELECT * FROM {read_jsonl_sql(src)}").fetchall()
        cols = {name: ("JSON" if name in json_columns else typ) for name, typ, *_ in schema}
        spec = ", ".join(f"{_lit(name)}: {_lit(typ)}" for name, typ in cols.items())
        source = (f"read_json({_lit(src)}, format='newline_delimited', columns={{{spec}}})")
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        os.close(fd)
        try:
            con.execute(f"COPY (SELECT * FROM {source}) TO {_lit(tmp)} "
                        f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {int(row_group_rows)})")
            rows = con.execute(f"SELECT count(*) FROM read_parquet({_lit(tmp)})").fetchone()[0]
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600: a trainer running as another user reads it
            os.replace(tmp, dest)
            fsync_dir(dest.parent)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    finally:
        con.close()
    return int(rows)


def parquet_name(jsonl_name: str) -> str:
    """``sft.chatml.jsonl`` -> ``sft.chatml.parquet``."""
    return (jsonl_name[:-len(".jsonl")] if jsonl_name.endswith(".jsonl") else jsonl_name) + ".parquet"


__all__ = ["jsonl_to_parquet", "parquet_name", "ROW_GROUP_ROWS", "JSON_COLUMNS"]
