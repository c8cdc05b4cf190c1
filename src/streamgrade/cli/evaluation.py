"""``agreement`` and ``calibrate``: how well the judge tracks the ground truth, and
P(success) fitted on the user's labelled runs."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import click

from ..errors import ConfigError
from ..sinks.jsonl import ExportMismatch
from ..sinks.lock import OutputLocked
from ..summary import EXIT_NOTHING, EXIT_USAGE, judge_line
from ._app import _build_config, _check_judge, _setup, main


@main.command("agreement")
@click.argument("out", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--labels", "labels", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Ground truth to join to OUT's sessions (repeatable; as grade --labels).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
@click.option("--judge", "judge", help="Grade OUT's labelled sessions again with this judge (heuristic, openai, "
                                       "anthropic, "
                                       "...) and report its agreement instead of OUT's scores.")
@click.option("-o", "--output", "dest", type=click.Path(file_okay=False, path_type=Path),
              help="--judge: the folder to grade into.  [default: OUT/agreement/judge-KIND]")
@click.option("--root", type=click.Path(file_okay=False), help="Datasets are the folders right under this one.  "
                                                               "[default: the common root of OUT's sources]")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="TOML config file ([exports] pass_score and reward_pass, [labels], [openai]).")
def agreement_cmd(out, labels, as_json, judge, dest, root, config_file) -> None:
    """Agreement of OUT's judge scores with ground-truth rewards, by dataset and format:
    AUROC [bootstrap 95% CI], ECE, Brier, Cohen's kappa, precision and recall at the pass
    score. Writes OUT/agreement/ (agreement.json, roc.png, reliability.png), shown on
    OUT/index.html. Exit codes: 0 ok, 2 usage or configuration error, 3 no session with
    ground truth."""
    import json as _json

    from .. import agreement_report as ar
    from ..labels import Labels

    if dest is not None and not judge:
        raise click.UsageError("-o/--output is the folder --judge grades into; give --judge KIND")
    cfg = _build_config(config_file, None, judge, None, labels=labels)
    lc = cfg.labels
    try:
        if judge:
            found = Labels.load(lc.files, key=lc.key, id_field=lc.id_field, value_field=lc.value_field) \
                if lc.files else None
            root = root or ar.source_root(out)
            dest = dest or out / "agreement" / f"judge-{judge}"
            cfg.run.output = str(dest)
            _check_judge(cfg)
            _setup(cfg, False, quiet_default=True)
            sources = ar.sources_to_regrade(out, found)
            click.echo(f"streamgrade: grading {len(sources)} sources of labelled sessions into {dest}; "
                       f"{judge_line(cfg)}", err=True)
            run = anyio.run(ar.regrade, cfg, sources, dest)
            click.echo(f"streamgrade: {run.graded} graded, {run.failed} failed, {run.skipped} unchanged", err=True)
            out = dest
        res = ar.run(out, label_files=lc.files, key=lc.key, id_field=lc.id_field, value_field=lc.value_field,
                     reward_pass=cfg.exports.reward_pass, pass_score=cfg.exports.pass_score, root=root)
    except ar.NoGroundTruth as exc:
        click.echo(f"streamgrade: {exc}", err=True)
        sys.exit(EXIT_NOTHING)
    except (ConfigError, OutputLocked, ExportMismatch) as exc:
        click.echo(f"streamgrade: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except OSError as exc:
        click.echo(f"streamgrade: cannot write the agreement of {out}: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    if as_json:
        click.echo(_json.dumps(res))
    else:
        ar.print_table(res)
@main.command("calibrate")
@click.argument("out", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", "dest", type=click.Path(dir_okay=False, path_type=Path),
              help="Model file to write.  [default: OUT/calibration.json]")
@click.option("--method", type=click.Choice(["logistic", "isotonic"]), default="logistic", show_default=True,
              help="logistic: the judge's components and trajectory features; isotonic: the score alone.")
@click.option("--folds", type=click.IntRange(min=2), default=5, show_default=True,
              help="Cross-validation folds (fewer when a class is smaller).")
@click.option("--labels", "labels", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Ground truth to join to OUT's sessions (repeatable; see grade --help).")
@click.option("--evaluate", "evaluate_only", is_flag=True,
              help="Fit nothing: AUROC/ECE/Brier of the p_success OUT's records already carry, against their rewards.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="TOML config file ([labels], [exports] reward_pass).")
def calibrate_cmd(out, dest, method, folds, labels, evaluate_only, as_json, config_file) -> None:
    """Fit P(success) on OUT's graded sessions that carry a reward, and write the model.

    A session succeeds when its reward reaches its format's pass mark (1.0 for binary
    rewards, else the median). Prints AUROC, ECE and Brier of score/100 and of the
    cross-validated p_success, per source format and overall. Apply the model with
    `grade --calibration FILE`. Exit 0 written, 2 usage error, 3 too few labelled sessions
    (at least 10, with 3 successes and 3 failures).
    """
    from ..calibration.command import calibrate_out
    from ..labels import Labels

    cfg = _build_config(config_file, None, None, None, labels=labels)
    lc = cfg.labels
    try:
        table = Labels.load(lc.files, key=lc.key, id_field=lc.id_field, value_field=lc.value_field) if lc.files else None
    except ConfigError as exc:
        click.echo(f"streamgrade: configuration error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    sys.exit(calibrate_out(out, dest=dest, method=method, folds=folds, labels=table, reward_pass=cfg.exports.reward_pass,
                           evaluate_only=evaluate_only, as_json=as_json, echo=click.echo))


