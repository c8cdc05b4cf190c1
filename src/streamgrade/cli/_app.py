"""The ``streamgrade`` click group and what its commands share: the common options, the
config built from options, the judge check, logging setup."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from .. import __version__
from ..config import Config, api_key, load_config
from ..errors import ConfigError
from ..formats import configure_formats
from ..judges import check_judge
from ..memtrim import limit_arenas
from ..summary import EXIT_USAGE

_common = [
    click.option("-o", "--output", "output", type=click.Path(file_okay=False, path_type=Path),
                 help="Output folder.  [default: ./streamgrade-out]"),
    click.option("--judge", type=click.Choice(["auto", "heuristic", "openai", "anthropic"]),
                 help="auto: openai when an API key or base URL is set, else heuristic.  [default: auto]"),
    click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
                 help="TOML config file (see configs/streamgrade.toml)."),
    click.option("--log-format", type=click.Choice(["text", "json"]), help="Log lines on stderr.  [default: text]"),
    click.option("-v", "--verbose", is_flag=True,
                 help="Log every session, and every file no format recognised (grade logs only problems by default)."),
]


def common_options(fn):
    for opt in reversed(_common):
        fn = opt(fn)
    return fn


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="streamgrade")
def main() -> None:
    """Grade recorded demonstrations and agent trajectories into training-ready data.

    Reads Clones desktop and web recordings (with their Guacamole and video recordings),
    open-world-agents captures, OpenAI-chat trajectory dumps (tau-bench), Harbor jobs and
    ATIF files, trace rows and BALROG episodes; extracts actions and screen frames; grades
    each session with an LLM judge (any OpenAI-compatible server) or the offline heuristic
    judge; writes per-session results and HTML reports, and run-level JSONL (scores, ChatML
    SFT, ShareGPT, DPO) under the output folder.

    \b
    Exit codes: 0 all graded or ungradable; 1 sessions failed (now or earlier); 2 usage or
    configuration error, output folder in use or in need of `streamgrade repair`; 3 nothing to export;
    4 run budget spent; 5 no session found; 6 unrecognised files (--strict); 130 interrupted.
    """
    limit_arenas()  # before any worker thread: flat resident memory on long runs (memtrim.py)


def _build_config(config_file: Path | None, output: Path | None, judge: str | None, log_format: str | None,
                  extra: dict[str, dict[str, Any]] | None = None, labels: tuple[Path, ...] = ()) -> Config:
    overrides: dict[str, dict[str, Any]] = {"run": {"output": str(output) if output else None, "judge": judge,
                                                    "log_format": log_format}}
    for section, values in (extra or {}).items():
        overrides.setdefault(section, {}).update(values)
    try:
        cfg = load_config(config_file, overrides=overrides)
        if labels:
            cfg.labels.files = [*cfg.labels.files, *map(str, labels)]
        configure_formats(cfg)  # mappings and limits: a bad mapping is a configuration error now
        return cfg
    except ConfigError as exc:
        click.echo(f"streamgrade: configuration error: {exc}", err=True)
        sys.exit(EXIT_USAGE)


def _check_judge(cfg: Config) -> None:
    """Exit 2 with one line when the judge cannot work (no key or base URL, a key that
    cannot be sent), before anything is printed or started."""
    try:
        check_judge(cfg)
    except ConfigError as exc:
        click.echo(f"streamgrade: configuration error: {exc}", err=True)
        sys.exit(EXIT_USAGE)


def _setup(cfg: Config, verbose: bool, quiet_default: bool) -> None:
    from ..logs import setup_logging

    level = "DEBUG" if verbose and cfg.run.log_level.upper() == "DEBUG" else cfg.run.log_level
    if quiet_default and not verbose:
        level = "WARNING"
    setup_logging(cfg.run.log_format, level, secrets=[api_key() or ""])


def _calibration(path: Path | None) -> dict[str, dict[str, Any]]:
    """The config override of ``--calibration``."""
    return {"calibration": {"file": str(path) if path else None}}


def _check_paths(paths: tuple[Path, ...]) -> list[Path]:
    missing = [p for p in paths if not p.exists()]
    if missing:
        click.echo(f"streamgrade: no such file or folder: {', '.join(map(str, missing))}", err=True)
        sys.exit(EXIT_USAGE)
    return list(paths)


