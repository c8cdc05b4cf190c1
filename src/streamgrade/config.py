"""Configuration: defaults < TOML file < environment < CLI options.

Every setting is a field below with its default; configs/streamgrade.toml documents them.
Environment variables: ``STREAMGRADE_<SECTION>__<KEY>`` sets any field (for example
``STREAMGRADE_OPENAI__RPM=100``), and a few short aliases exist (see :data:`ENV_ALIASES`).
The API key is read only from the environment (``STREAMGRADE_API_KEY``, then
``OPENAI_API_KEY``), is never part of the config object, and is never logged.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal, Mapping

import msgspec

from .config_sources import CLI, Invalid, Sources, located, note_sources, validation_error
from .config_learning import AugmentConfig, HintsConfig, HINT_GROUP_FIELDS  # noqa: F401
from .config_judging import (AnthropicConfig, BatchConfig, CalibrationConfig, EnsembleMember, JudgeConfig, OpenAIConfig, Price,  # noqa: F401
                             RubricConfig)
from .config_ray import RayConfig
from .errors import ConfigError
from .exports.filters import ExportFilter


class RunConfig(msgspec.Struct, forbid_unknown_fields=True):
    """``[run]``: output folder, judge choice (auto|heuristic|openai|anthropic), log format."""

    output: str = "streamgrade-out"
    judge: Literal["auto", "heuristic", "openai", "anthropic"] = "auto"
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"


class PipelineConfig(msgspec.Struct, forbid_unknown_fields=True):
    """``[pipeline]``: actor counts, the capacity (items) of every bounded stream, and how
    long (s) a stop waits for in-flight sessions before leaving them pending; ``sink_batch``
    the most finished sessions the sink appends and commits together (group commit);
    ``file_writers`` writer tasks, each writing the sessions waiting for it (up to 8) in one
    worker thread (no fsync there: the committer flushes a batch's files with one syncfs);
    more writers take single sessions each, and the thread hand-offs cost more than the
    writes."""

    stream_capacity: int = 16
    assemble_workers: int = 2
    grade_workers: int = 16
    drain_timeout_s: float = 30.0
    sink_batch: int = 64
    file_writers: int = 2


class WatchConfig(msgspec.Struct, forbid_unknown_fields=True):
    """``[watch]``: a session is graded once none of its files changed for ``settle_s``
    seconds; ``force_polling`` makes watchfiles poll (network filesystems), every
    ``poll_delay_ms``."""

    settle_s: float = 5.0
    force_polling: bool = False
    poll_delay_ms: int = 300


class MetricsConfig(msgspec.Struct, forbid_unknown_fields=True):
    """``[metrics]``: the Prometheus endpoint of ``watch`` (``/metrics`` and ``/healthz``,
    :mod:`streamgrade.ops`): ``port`` (0 = off) and ``host`` the address it binds
    (127.0.0.1: this machine only; ``0.0.0.0`` or ``::`` for a scraper elsewhere)."""

    port: int = 0
    host: str = "127.0.0.1"


class ExtractConfig(msgspec.Struct, forbid_unknown_fields=True):
    """``[extract]``: thresholds of the action extraction rules (see extract/actions.py)."""

    click_max_px: float = 5.0
    click_max_ms: int = 500
    double_click_ms: int = 400
    typing_gap_ms: int = 1000
    scroll_gap_ms: int = 500
    dedupe_ms: int = 5
    drag_min_step_px: float = 10.0
    drag_max_points: int = 32


class ChunkingConfig(msgspec.Struct, forbid_unknown_fields=True):
    """``[chunking]``: budget per chunk in estimated tokens (chars / 4) and hard cap in
    characters; a session whose rendering fits one chunk is graded in one request.
    ``max_chunks`` caps the chunks of a session, so the LLM judge sends at most
    ``max_chunks + 1`` requests for it (default 24: 25 requests, about 50K prompt tokens
    at the default budget); a longer session is condensed (lines shortened, then the middle
    elided with a marker line, see chunking.py) and a warning names it."""

    max_tokens: int = 2000
    max_chars: int = 12000
    max_chunks: int = 24


class OpenAIChatMapping(msgspec.Struct, forbid_unknown_fields=True):
    """``[formats.openai_chat]``: where an OpenAI-chat trajectory dump keeps its fields.

    ``messages_fields``: row keys tried in order for the messages list; ``task_id``,
    ``trial``, ``reward``, ``model``, ``agent``: dotted paths into the row (``info.task_id``);
    a missing path gives None. ``reference_actions``: where the row keeps a reference action
    sequence (``[{name, kwargs|arguments}]``; tau-bench ``info.task.actions``), for
    golden-path verification only (:mod:`streamgrade.golden`; no judge sees it); "" for
    none. A new benchmark's dump needs only a new mapping here."""

    messages_fields: list[str] = msgspec.field(
        default_factory=lambda: ["traj", "messages", "conversations", "trajectory", "history"])
    task_id: str = "task_id"
    trial: str = "trial"
    reward: str = "reward"
    model: str = "model"
    agent: str = "agent"
    reference_actions: str = "info.task.actions"


class ExportsConfig(ExportFilter, forbid_unknown_fields=True):
    """``[exports]``: the quality filter applied to the training files rebuilt at the end of
    a grade run (fields as in
    :class:`~streamgrade.exports.filters.ExportFilter`; ``min_score`` is the quality
    threshold); preference pairs (:mod:`streamgrade.exports.dpo`): ``dpo_pairs`` step (the
    first assistant turn where two runs of a task diverge) or trajectory (whole
    continuations after the shared prefix), ``dpo_rank_by`` reward (ground truth first, the
    judge score without a reward or to break a tie) or score (never against the reward),
    ``dpo_min_gap`` the least score gap (points) where the score ranks a pair,
    ``dpo_group_by`` the fields that make a task (source_format, source_dir, source_file,
    task_id, task, model, agent);
    ``dpo_rebuild_s`` how often at most (s) ``watch`` rebuilds the training files when idle;
    ``reward_pass`` the reward at or above which a session passes (``stats``, and the SFT
    pass filter; unset: 1.0 for binary rewards, else the group's median); ``training`` the
    training files a grade run rebuilds at its end under OUT/exports/ (sft, sharegpt,
    openai-sft, dpo, openai-dpo); ``pass_only`` keeps only sessions that pass in SFT files
    (the reward at least the pass mark where there is one, else the score at least
    ``pass_score``); ``metadata`` adds row metadata (session id, source, task, score,
    reward, judge)."""

    dpo_min_gap: float = 10.0
    dpo_pairs: Literal["step", "trajectory"] = "step"
    dpo_rank_by: Literal["reward", "score"] = "reward"
    dpo_group_by: list[Literal["source_format", "source_dir", "source_file", "task_id", "task", "model", "agent"]] = \
        msgspec.field(default_factory=lambda: ["source_format", "task_id", "model"])
    dpo_rebuild_s: float = 60.0
    reward_pass: float | None = None
    training: list[str] = msgspec.field(default_factory=lambda: ["sft", "sharegpt", "dpo"])
    pass_only: bool = True
    pass_score: float = 50.0
    metadata: bool = True

    def filter(self) -> ExportFilter:
        return ExportFilter(**{f: getattr(self, f) for f in ExportFilter.__struct_fields__})


class MappingSpec(msgspec.Struct, forbid_unknown_fields=True):
    """``[[formats.mappings]]``: a dump described in TOML, read with no code (see
    :mod:`streamgrade.formats.mapped`). ``name`` is its ``source_format``; ``files`` globs on
    file names (any suffix); ``detect`` a field a document must have to be claimed;
    ``rows`` where the rows are ("" top level or each JSONL line, a dotted path, ``*`` for an
    object of rows keyed by id); the rest are dotted paths into a row (``task`` and
    ``reference_actions`` may join a table of the file: ``tasks[id=task_id].description``);
    ``reference_actions`` is a reference action sequence for golden-path verification only
    (:mod:`streamgrade.golden`; no judge sees it)."""

    name: str
    files: list[str] = msgspec.field(default_factory=lambda: ["*.json", "*.jsonl"])
    detect: str | None = None
    rows: str = ""
    id: str | None = None
    messages: str = "messages"
    task: str | None = None
    task_id: str | None = None
    trial: str | None = None
    reward: str | None = None
    model: str | None = None
    agent: str | None = None
    termination: str | None = None
    tools: str | None = None
    system: str | None = None
    reference_actions: str | None = None


class CrafterConfig(msgspec.Struct, forbid_unknown_fields=True):
    """``[formats.crafter]``: BALROG Crafter episodes (:mod:`streamgrade.formats.crafter`).

    ``keep_invalid_actions``: a CSV row whose Action is not one of BALROG's 17 Crafter
    actions (an empty or unparseable model output, which BALROG replaced by Noop) is dropped
    from the trajectory, with the observation the agent saw before it, when False (the
    default: training rows then only hold valid actions); when True it is kept, its step
    flagged ``extra["invalid_action"]``. Either way ``metrics["invalid_actions"]`` counts
    such rows and ``metrics["dropped_steps"]`` those left out."""

    keep_invalid_actions: bool = False


class FormatsConfig(msgspec.Struct, forbid_unknown_fields=True):
    """``[formats]``: per-format settings, and ``mappings``: dumps described in TOML."""

    openai_chat: OpenAIChatMapping = msgspec.field(default_factory=OpenAIChatMapping)
    crafter: CrafterConfig = msgspec.field(default_factory=CrafterConfig)
    mappings: list[MappingSpec] = msgspec.field(default_factory=list)


class FramesConfig(msgspec.Struct, forbid_unknown_fields=True):
    """``[frames]``: which video frames to take and send to the judge, and how.

    ``longest_side`` px of the written JPEG (never upscaled); ``quality`` JPEG quality 1-95;
    ``per_chunk`` / ``per_session`` budgets in frames; ``merge_ms`` candidates closer than
    this are merged into one frame; ``before_ms`` how long before a click the "before"
    frame is taken (the screen the user aimed at, before it reacts); ``after_ms`` how long
    after typing / a scroll / a key ends the "after" frame is taken (the screen settled);
    ``seek_gap_ms`` the decoder seeks forward instead of decoding through when the next
    wanted time is more than this (and more than one observed keyframe interval) ahead;
    ``enabled`` takes frames when a session has a recording; ``detail`` the OpenAI image
    detail sent to the judge (low: 85 tokens an image); ``max_pixels`` the largest decoded
    frame (width * height, px) a recording may have: default 4096 * 4096 = 16,777,216,
    which admits 4K (3840x2160), 5K (5120x2880) and 7680x2160 screens and costs at most
    about 24 MiB a frame in the decoder (YUV 4:2:0) and 48 MiB in RGB; a recording over it
    is not decoded and its session becomes a failed record naming the file, its size and
    this setting (an 8192x8192 H.264 file of 200 KB took 1.6 GB RSS to decode without it).
    ``steps`` also takes one "before" frame per action (or action group) for the
    computer-use export, at most ``max_steps`` a session (see
    :mod:`streamgrade.extract.steps`; JPEGs like the others, listed in results.json
    ``steps``; not sent to the judge).
    """

    longest_side: int = 1280
    quality: int = 80
    per_chunk: int = 3
    per_session: int = 60
    merge_ms: int = 500
    before_ms: int = 200
    after_ms: int = 300
    seek_gap_ms: int = 1000
    enabled: bool = True
    detail: Literal["low", "high", "auto"] = "low"
    max_pixels: int = 4096 * 4096
    steps: bool = True
    max_steps: int = 50


class ReportsConfig(msgspec.Struct, forbid_unknown_fields=True):
    """``[reports]``: the HTML reports. ``html`` writes index.html (while a run goes on, at
    most every ``index_interval_s`` seconds, and at its end). ``session_pages``: when each
    session's results.html and sft.html are built: ``"report"`` (the default) only by
    ``streamgrade report OUT``, which builds those missing or out of date (about 2 ms of CPU
    a session, kept off the grading path); ``"live"`` after each commit batch during the
    run, in a worker thread (sessions with a folder only, see ``[sinks] session_files``).
    ``end_pages_max``: with ``"report"``, a run that committed at most this many sessions
    with a folder builds their pages at its end, so that a small run's index links work
    without ``streamgrade report`` (about 2 ms of CPU a session); 0: never."""

    html: bool = True
    index_interval_s: float = 30.0
    session_pages: Literal["report", "live"] = "report"
    end_pages_max: int = 1000


class SinksConfig(msgspec.Struct, forbid_unknown_fields=True):
    """``[sinks]``: what a graded session leaves on disk. ``session_files``: which sessions
    get a folder OUT/sessions/<shard>/<folder>/ with scores.json, results.json and sft.json:
    ``"all"`` (the default), ``"failed"`` (only failed sessions; the others go to the
    session store) or ``"none"`` (every session goes to the session store: a compressed row
    in OUT/state.sqlite, about 1 KB for an agent session, instead of ~10 KB of files).
    scores.jsonl and the training files are complete whatever the setting; ``export``,
    ``stats``, ``agreement``, ``calibrate``, ``repair`` and ``report`` read both places."""

    session_files: Literal["all", "failed", "none"] = "all"


class LabelsConfig(msgspec.Struct, forbid_unknown_fields=True):
    """``[labels]``: ground truth from separate files (``--labels FILE`` adds to ``files``;
    see :mod:`streamgrade.labels` for what they may be). ``key`` joins them to sessions:
    ``auto`` (session id, then trial, then task id), ``session_id``, ``task_id`` or
    ``trial``; ``id_field`` and ``value_field`` name the columns of a generic table."""

    files: list[str] = msgspec.field(default_factory=list)
    key: str = "auto"
    id_field: str | None = None
    value_field: str | None = None


class LimitsConfig(msgspec.Struct, forbid_unknown_fields=True):
    """``[limits]``: input sizes (bytes) beyond which a session fails with the reason
    instead of exhausting memory. ``max_session_bytes``: one session's data (a file holding
    one session, one JSONL line, one row of a JSON list); ``max_file_bytes``: a file holding
    many sessions (JSON list, JSONL), which is held in memory while its rows are graded."""

    max_session_bytes: int = 64 * 1024 * 1024
    max_file_bytes: int = 512 * 1024 * 1024


class Config(msgspec.Struct, forbid_unknown_fields=True):
    """All settings. Build it with :func:`load_config`."""

    run: RunConfig = msgspec.field(default_factory=RunConfig)
    pipeline: PipelineConfig = msgspec.field(default_factory=PipelineConfig)
    watch: WatchConfig = msgspec.field(default_factory=WatchConfig)
    metrics: MetricsConfig = msgspec.field(default_factory=MetricsConfig)
    extract: ExtractConfig = msgspec.field(default_factory=ExtractConfig)
    chunking: ChunkingConfig = msgspec.field(default_factory=ChunkingConfig)
    rubric: RubricConfig = msgspec.field(default_factory=RubricConfig)
    openai: OpenAIConfig = msgspec.field(default_factory=OpenAIConfig)
    anthropic: AnthropicConfig = msgspec.field(default_factory=AnthropicConfig)
    judge: JudgeConfig = msgspec.field(default_factory=JudgeConfig)
    batch: BatchConfig = msgspec.field(default_factory=BatchConfig)
    formats: FormatsConfig = msgspec.field(default_factory=FormatsConfig)
    exports: ExportsConfig = msgspec.field(default_factory=ExportsConfig)
    frames: FramesConfig = msgspec.field(default_factory=FramesConfig)
    reports: ReportsConfig = msgspec.field(default_factory=ReportsConfig)
    sinks: SinksConfig = msgspec.field(default_factory=SinksConfig)
    limits: LimitsConfig = msgspec.field(default_factory=LimitsConfig)
    labels: LabelsConfig = msgspec.field(default_factory=LabelsConfig)
    calibration: CalibrationConfig = msgspec.field(default_factory=CalibrationConfig)
    hints: HintsConfig = msgspec.field(default_factory=HintsConfig)
    augment: AugmentConfig = msgspec.field(default_factory=AugmentConfig)
    ray: RayConfig = msgspec.field(default_factory=RayConfig)


#: Short environment variables and the field each sets.
ENV_ALIASES: dict[str, tuple[str, str]] = {
    "STREAMGRADE_BASE_URL": ("openai", "base_url"),
    "OPENAI_BASE_URL": ("openai", "base_url"),
    "STREAMGRADE_MODEL": ("openai", "model"),
    "STREAMGRADE_JUDGE": ("run", "judge"),
    "STREAMGRADE_OUTPUT": ("run", "output"),
    "STREAMGRADE_LOG_FORMAT": ("run", "log_format"),
    "STREAMGRADE_SETTLE_S": ("watch", "settle_s"),
}
API_KEY_ENV = ("STREAMGRADE_API_KEY", "OPENAI_API_KEY")


def api_key(env: Mapping[str, str] | None = None) -> str | None:
    """The judge's API key from the environment, or None. Never store or log it."""
    found = _api_key_var(env)
    return found[1] if found else None


def _api_key_var(env: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """(variable, key) of the first of :data:`API_KEY_ENV` set and not empty, or None."""
    env = os.environ if env is None else env
    for name in API_KEY_ENV:
        if env.get(name):
            return name, env[name]
    return None


def check_api_key(env: Mapping[str, str] | None = None) -> None:
    """Raise :class:`ConfigError` when the API key in use cannot be sent in an HTTP header
    as it is (RFC 9110 §5.5: a field value is visible ASCII, spaces and tabs inside; httpx
    sends ASCII only): a line break at its end, leading or trailing whitespace, a control
    character (a tab too: no key holds one) or a non-ASCII character. The message names
    the variable and the problem, never the key or any part of it. No key is no error."""
    found = _api_key_var(env)
    if found is None:
        return
    name, key = found
    if key.rstrip("\r\n") != key and key.rstrip("\r\n").strip() == key.rstrip("\r\n"):
        problem = "ends with a line break (as `echo` or a file's last line adds); remove it"
    elif key.strip() != key:
        problem = "has leading or trailing whitespace; remove it"
    elif any(ord(c) < 0x20 or ord(c) == 0x7F for c in key):
        problem = "holds a control character"
    elif not key.isascii():
        problem = "holds a non-ASCII character (an HTTP header carries ASCII only)"
    else:
        return
    raise ConfigError(f"environment variable {name}: the API key {problem} (the key is not shown)")


def _env_layer(env: Mapping[str, str], sources: Sources | None = None) -> dict[str, dict[str, Any]]:
    """The fields the environment sets, {section: {key: text}}; ``sources`` gets the
    variable that set each (section, key) (the one that wins)."""
    layer: dict[str, dict[str, Any]] = {}
    sources = {} if sources is None else sources
    sections = set(Config.__struct_fields__)
    # Aliases first so that the explicit SECTION__KEY form wins; OPENAI_BASE_URL loses to
    # STREAMGRADE_BASE_URL because dicts keep insertion order and STREAMGRADE_ comes first.
    for name, (section, key) in reversed(list(ENV_ALIASES.items())):
        if env.get(name):
            layer.setdefault(section, {})[key] = env[name]
            sources[(section, key)] = f"environment variable {name}"
    for name, value in env.items():
        if not name.startswith("STREAMGRADE_") or "__" not in name:
            continue
        section, _, key = name[len("STREAMGRADE_"):].lower().partition("__")
        if section not in sections:
            raise ConfigError(f"environment variable {name}: unknown section {section!r}")
        layer.setdefault(section, {})[key] = value
        sources[(section, key)] = f"environment variable {name}"
    return layer


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(
    path: str | Path | None = None,
    *,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Build the config from defaults, the TOML file at ``path`` (if any), the environment
    and ``overrides`` ({section: {key: value}}, from the CLI), later layers winning.

    Raises :class:`ConfigError` naming the file or variable and the field when a value is
    invalid or unknown.
    """
    env = os.environ if env is None else env
    merged: dict[str, Any] = msgspec.to_builtins(Config())
    sources: Sources = {}
    if path is not None:
        p = Path(path)
        try:
            doc = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{p}: config file not found") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{p}: invalid TOML: {exc}") from None
        note_sources(doc, str(p), sources)
        merged = _merge(merged, doc)
    merged = _merge(merged, _env_layer(env, sources))
    if overrides:
        cli = {k: {kk: vv for kk, vv in v.items() if vv is not None} for k, v in overrides.items()}
        note_sources({k: v for k, v in cli.items() if v}, CLI, sources)
        merged = _merge(merged, cli)
    try:
        cfg = msgspec.convert(merged, Config, strict=False)
    except msgspec.ValidationError as exc:
        raise validation_error(exc, sources) from None
    try:
        _check(cfg)
    except Invalid as exc:
        raise located(exc.field, exc.detail, sources) from None
    return cfg


def _check(cfg: Config) -> None:
    """The rules a type cannot say; raises :class:`~streamgrade.config_sources.Invalid`
    naming the field."""
    positive = {
        "pipeline.stream_capacity": cfg.pipeline.stream_capacity,
        "pipeline.assemble_workers": cfg.pipeline.assemble_workers,
        "pipeline.grade_workers": cfg.pipeline.grade_workers,
        "chunking.max_tokens": cfg.chunking.max_tokens,
        "chunking.max_chunks": cfg.chunking.max_chunks,
        "openai.max_concurrency": cfg.openai.max_concurrency,
        "openai.timeout_s": cfg.openai.timeout_s,
        "anthropic.max_concurrency": cfg.anthropic.max_concurrency,
        "anthropic.timeout_s": cfg.anthropic.timeout_s,
        "limits.max_session_bytes": cfg.limits.max_session_bytes,
        "limits.max_file_bytes": cfg.limits.max_file_bytes,
        "frames.max_pixels": cfg.frames.max_pixels,
        "frames.max_steps": cfg.frames.max_steps,
        "judge.samples": cfg.judge.samples,
        "judge.evidence_tokens": cfg.judge.evidence_tokens,
        "batch.max_sessions_in_flight": cfg.batch.max_sessions_in_flight,
        "batch.poll_min_s": cfg.batch.poll_min_s,
        "batch.upload_timeout_s": cfg.batch.upload_timeout_s,
        "hints.max_episodes": cfg.hints.max_episodes,
        "hints.concurrency": cfg.hints.concurrency,
        "hints.evidence_tokens": cfg.hints.evidence_tokens,
        "hints.max_items": cfg.hints.max_items,
        "augment.batch_steps": cfg.augment.batch_steps,
        "augment.max_requests": cfg.augment.max_requests,
        "ray.actors": cfg.ray.actors,
        "ray.cpus_per_actor": cfg.ray.cpus_per_actor,
        "ray.block_rows": cfg.ray.block_rows,
        "ray.blocks_per_actor": cfg.ray.blocks_per_actor,
    }
    for name, value in positive.items():
        if value <= 0:
            raise Invalid(name, f"must be > 0, got {value}")
    if cfg.chunking.max_tokens < 64:
        raise Invalid("chunking.max_tokens", f"must be >= 64, got {cfg.chunking.max_tokens}")
    if cfg.chunking.max_chars < 256:
        raise Invalid("chunking.max_chars", f"must be >= 256, got {cfg.chunking.max_chars}")
    if not 0 <= cfg.metrics.port <= 65535:
        raise Invalid("metrics.port", f"must be 0 (off) to 65535, got {cfg.metrics.port}")
    if not cfg.metrics.host.strip():
        raise Invalid("metrics.host", "must name an address, e.g. 127.0.0.1")
    for name in ("quiet_s", "max_wait_s", "max_requests", "max_bytes", "price_factor", "keep_days"):
        if getattr(cfg.batch, name) < 0:
            raise Invalid(f"batch.{name}", f"must be >= 0, got {getattr(cfg.batch, name)}")
    if cfg.batch.poll_max_s < cfg.batch.poll_min_s:
        raise Invalid("batch.poll_max_s", f"must be >= batch.poll_min_s ({cfg.batch.poll_min_s}), "
                                          f"got {cfg.batch.poll_max_s}")
    if not 0 < cfg.hints.similarity <= 1:
        raise Invalid("hints.similarity", f"must be in (0, 1], got {cfg.hints.similarity}")
    bad = [f for f in cfg.hints.group_by if f not in HINT_GROUP_FIELDS and not f.startswith("meta.")]
    if bad or not cfg.hints.group_by:
        raise Invalid("hints.group_by", f"unknown fields {bad}; choose from {', '.join(HINT_GROUP_FIELDS)} "
                                        f"or meta.<path>")
    if cfg.augment.after_ms < 0:
        raise Invalid("augment.after_ms", f"must be >= 0, got {cfg.augment.after_ms}")
    if cfg.ray.max_actors and cfg.ray.max_actors < cfg.ray.actors:
        raise Invalid("ray.max_actors", f"must be 0 (a fixed pool) or >= ray.actors ({cfg.ray.actors}), "
                                        f"got {cfg.ray.max_actors}")
    if cfg.watch.settle_s < 0:
        raise Invalid("watch.settle_s", f"must be >= 0, got {cfg.watch.settle_s}")
    names: set[str] = set()
    for m in cfg.formats.mappings:
        if not m.name.strip() or m.name in names:
            raise Invalid("formats.mappings", f"mapping name {m.name!r} is empty or repeated")
        names.add(m.name)
        if not m.files:
            raise Invalid("formats.mappings", f"mapping {m.name!r}: files must name at least one glob")
    weights = cfg.rubric.weights()
    if sum(weights.values()) <= 0 or min(weights.values()) < 0:
        bad = next((f"rubric.{k}" for k, v in weights.items() if v < 0), "rubric")
        raise Invalid(bad, "the rubric weights must be >= 0 with a positive sum")
