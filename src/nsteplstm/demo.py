"""The article end to end: 1, 2 and 3 layers, dropout 0.3/0.4/0.5, forecasts, plots, a report.

Everything lands in one directory: a run directory per model, the comparison
plots, and ``report.html`` — one self-contained page (images embedded) with the
results table, every plot and the configuration.
"""

from __future__ import annotations

import base64
import html
import json
import signal
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import runs
from .config import MAX_EPOCHS, Config
from .device import reset_peak_memory
from .errors import InputError, check_bool, check_int
from .forecast import forecast_run
from .plots import plot_losses, plot_overlay
from .train import Interrupted, train

LAYERS = (1, 2, 3)
# With the 2-layer run's 0.3, the article's dropout comparison. Two layers, since
# dropout acts on the input of every layer but the first: one layer has none.
DROPOUT_LAYERS = 2
DROPOUTS = (0.4, 0.5)
# What the demo writes besides the run directories, and into each of them.
DEMO_FILES = ("report.html", "layers.png", "dropout.png")
LOSS_PLOT = "losses.png"


def run_demo(
    out: str | Path,
    *,
    epochs: int = 60,
    force: bool = False,
    quiet: bool = False,
    base: Config | Mapping[str, Any] | None = None,
    echo: Callable[[str], None] = print,
) -> Path:
    """Train, forecast and plot the article's experiment into ``out``; return ``report.html``.

    ``base`` is the configuration every model starts from (default: the article's; a
    Config, or a mapping of the settings that differ from it, as :func:`train` takes),
    its ``epochs`` replaced by ``epochs``; ``n_layers`` and ``dropout`` vary per model:
    1, 2 and 3 layers at ``base.dropout``, and 2 layers at each of :data:`DROPOUTS`
    besides. ``echo`` gets the progress lines and the final table. With ``force``, an
    earlier demo in ``out`` is replaced (its runs, plots and report; other files stay).
    Stopped (:class:`Interrupted`), it says how to start again: the ``nsteplstm demo``
    command where that runs the same demo (a base of the article's settings), else
    this call with ``force=True``.
    """
    force, quiet = check_bool("force", force), check_bool("quiet", quiet)
    base = _base_config(base, epochs)
    dropouts = sorted({base.dropout, *DROPOUTS})  # compared at DROPOUT_LAYERS
    extra = [p for p in dropouts if p != base.dropout]
    models = [(f"layers-{n}", replace(base, n_layers=n)) for n in LAYERS]
    models += [(f"dropout-{p}", replace(base, n_layers=DROPOUT_LAYERS, dropout=p)) for p in extra]
    out, stale = _check_outputs(out, [name for name, _ in models], force)
    again = _start_again(out, base, quiet)
    with runs.new_directory(out, "demo directory"):
        for path in stale:
            path.unlink(missing_ok=True)
        rows, histories, doing = [], {}, "starting"
        try:
            for name, config in models:
                doing = f"training {name}"
                echo(f"{doing} ({config.epochs} epoch{'s' * (config.epochs != 1)})...")
                reset_peak_memory()  # each run's metrics.json: its own peak, not the demo's
                result = train(config, out / name, force=force, quiet=quiet)
                doing = f"forecasting {name}"
                forecasts = {m: forecast_run(out / name, mode=m) for m in ("window", "stream")}
                doing = f"plotting {name}"
                plot_losses(out / name / LOSS_PLOT, result.history, f"{name}: loss per epoch")
                histories[name] = result.history
                rows.append(_row(name, config, result.metrics, forecasts))
            doing = "plotting the comparisons"
            _plot_comparisons(out, histories, base.dropout, dropouts)
            doing = "writing the report"
            echo(_markdown_table(rows))
            report = out / "report.html"
            runs.atomic_write(report, _report_html(out, rows, base, dropouts))
        except (Interrupted, KeyboardInterrupt) as e:  # Ctrl-C outside train(): no handler
            raise _stopped(e, doing, [row["run"] for row in rows], again) from None
    return report


def _start_again(out: Path, base: Config, quiet: bool) -> str:
    """How to start the demo into ``out`` again: the ``nsteplstm demo`` command where
    its ``base`` is the command's (the article's settings but ``epochs``; the command
    has no flag for any other), else the Python call, which has the caller's base."""
    if set(base.changed()) - {"epochs"}:
        return "call run_demo again with the same arguments and force=True"
    again = ["nsteplstm", "demo", "--out", runs.command_path(out), "--epochs", str(base.epochs)]
    again += ["--quiet", "--force"] if quiet else ["--force"]
    return f"start it again with: {' '.join(again)}"


def _stopped(
    e: Interrupted | KeyboardInterrupt, doing: str, finished: list[str], again: str
) -> Interrupted:
    """The demo's own :class:`Interrupted`: its signal (a KeyboardInterrupt's is SIGINT
    unless it carries another, as the CLI's SIGTERM does), what the demo was ``doing``,
    the runs it ``finished``, and how to start it ``again`` (:func:`_start_again`)."""
    signum = getattr(e, "signum", signal.SIGINT)
    return Interrupted(
        signum,
        text=f"interrupted by {signal.Signals(signum).name} while {doing} (finished: "
        f"{', '.join(finished) or 'none'}); a demo does not resume: {again}",
    )


def _base_config(base: Config | Mapping[str, Any] | None, epochs: int) -> Config:
    """The configuration every model of the demo starts from (see :func:`run_demo`)."""
    if base is not None and not isinstance(base, (Config, Mapping)):
        raise InputError(f"demo: base must be a Config, a mapping or None, got {base!r:.60}")
    epochs = check_int("--epochs (epochs= from Python)", epochs, maximum=MAX_EPOCHS)
    settings = base.changed() if isinstance(base, Config) else dict(base or {})
    if settings.get("data") == "adding":  # first: its other settings would be named
        raise InputError("demo: data = 'adding' is sequence-to-one; the demo forecasts a series")
    return Config.from_dict({**settings, "epochs": epochs}, "of the demo")


def _check_outputs(out: str | Path, names: list[str], force: bool) -> tuple[Path, list[Path]]:
    """``out`` as a Path, once it and the run directories ``names`` in it may be used
    (with ``force``: replaced; files in ``out`` that the demo does not write stay);
    and the files of an earlier demo there, which go first: a demo stopped half way
    must not leave a report that contradicts the runs beside it."""
    out = runs.check_dir_free(out, force, "demo directory")
    for name in names:  # all checked before any is replaced
        runs.check_run_dir_free(out / name, force)
    stale = [out / f for f in DEMO_FILES] + [out / name / LOSS_PLOT for name in names]
    for path in stale:
        if path.is_dir() and not path.is_symlink():
            raise InputError(f"cannot replace {path}: it is a directory")
    return out, stale


def _plot_comparisons(
    out: Path, histories: dict[str, Any], base_dropout: float, dropouts: list[float]
) -> None:
    """``layers.png`` and ``dropout.png`` in ``out``, from each run's loss history."""
    layer_runs = {f"{n} layer{'s' * (n > 1)}": histories[f"layers-{n}"] for n in LAYERS}
    plot_overlay(out / "layers.png", layer_runs, "Loss per epoch by number of layers", "both")
    dropout_runs = {
        f"dropout {p}": histories[
            f"layers-{DROPOUT_LAYERS}" if p == base_dropout else f"dropout-{p}"
        ]
        for p in dropouts
    }
    title = f"Validation loss by dropout ({DROPOUT_LAYERS} layers)"
    plot_overlay(out / "dropout.png", dropout_runs, title)


def _row(name: str, config: Config, metrics: dict[str, Any], forecasts: dict) -> dict[str, Any]:
    window, stream = forecasts["window"], forecasts["stream"]
    return {
        "run": name,
        "layers": config.n_layers,
        "dropout": config.dropout,
        "train_loss": metrics["train_loss"],
        "val_loss": metrics["val_loss"],
        "window_rmse": window["rmse"],
        "window_accuracy": window["round_accuracy"],
        "stream_rmse": stream["rmse"],
        "stream_accuracy": stream["round_accuracy"],
        "seconds": metrics["seconds"],
        "points": window["points"],
        "in_sample": window["in_sample"],
    }


COLUMNS = (
    ("run", "run", "{}"),
    ("layers", "layers", "{}"),
    ("dropout", "dropout", "{}"),
    ("train_loss", "train loss (kept epoch)", "{:.4f}"),
    ("val_loss", "validation loss (kept epoch)", "{:.4f}"),
    ("window_rmse", "forecast RMSE (window)", "{:.3f}"),
    ("window_accuracy", "rounds to truth (window)", "{:.1%}"),
    ("stream_rmse", "forecast RMSE (stream)", "{:.3f}"),
    ("stream_accuracy", "rounds to truth (stream)", "{:.1%}"),
    ("seconds", "training seconds", "{:.1f}"),
)


def _cells(row: dict[str, Any]) -> list[str]:
    return ["n/a" if row[k] is None else fmt.format(row[k]) for k, _, fmt in COLUMNS]


def _markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(title for _, title, _ in COLUMNS) + " |"]
    lines.append("|" + "---|" * len(COLUMNS))
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in rows]
    return "\n".join(lines)


def _image(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(alt)}</figcaption></figure>"
    )


def _data_words(config: Config) -> str:
    """What the series is, for the report's first line."""
    if config.data == "fibonacci":
        return f"Fibonacci numbers modulo {config.value}, {config.total_size} points"
    if config.data == "sine":
        return (
            f"a sine of period {config.period} with noise {config.noise}, "
            f"{config.total_size} points"
        )
    return f"the CSV file {config.csv_path}"


def _in_sample_words(row: dict[str, Any]) -> str:
    """How many of a forecast's scored points the model was trained on, for the report."""
    if not row["in_sample"]:
        return ""
    return (
        f" ({row['in_sample']} of the {row['points']} scored points lie in the training "
        "part, as in the article: these scores are in-sample)"
    )


def _report_html(out: Path, rows: list[dict[str, Any]], base: Config, dropouts: list[float]) -> str:
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title, _ in COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in _cells(row)) + "</tr>"
        for row in rows
    )
    figures = [_image(out / "layers.png", "Loss per epoch, 1, 2 and 3 layers")]
    figures.append(
        _image(
            out / "dropout.png",
            f"Validation loss, dropout {', '.join(map(str, dropouts))}, {DROPOUT_LAYERS} layers",
        )
    )
    for row in rows:
        for mode in ("window", "stream"):
            figures.append(
                _image(
                    out / row["run"] / f"forecast-{mode}.png",
                    f"{row['run']}: closed-loop forecast, {mode} mode",
                )
            )
        figures.append(_image(out / row["run"] / LOSS_PLOT, f"{row['run']}: loss per epoch"))
    shared = {k: v for k, v in base.to_dict().items() if k not in ("n_layers", "dropout")}
    config = html.escape(json.dumps(shared, indent=2))
    in_sample = html.escape(_in_sample_words(rows[0]))  # the same data in every run
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>nsteplstm demo</title>
<style>
body {{ font-family: sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #bbb; padding: 4px 8px; }}
td {{ text-align: right; }} img {{ max-width: 100%; }} figure {{ margin: 1.5em 0; }}
</style></head><body>
<h1>nsteplstm demo: the NStepLSTM article, reproduced</h1>
<p>{html.escape(_data_words(base))}, first {base.split_rate:.0%} of each series for
training; windows of {base.sequence_size}; hidden {base.n_hidden}; Adam (lr {base.lr});
{base.epochs} epoch{"s" * (base.epochs != 1)}. Forecasts are closed loop from the first
{base.sequence_size} true points, {4 * base.sequence_size} points ahead{in_sample}.</p>
<table><tr>{head}</tr>{body}</table>
{"".join(figures)}
<h2>Configuration</h2>
<p>What every model shares. The layers and dropout of each are in the table; each run
directory's <code>config.json</code> holds its model's whole configuration.</p>
<pre>{config}</pre>
</body></html>
"""
