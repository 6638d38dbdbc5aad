"""The article's figures as PNG files: forecast vs truth, losses per epoch, run overlays.

Headless and free of global state: every figure is a :class:`matplotlib.figure.Figure`
rendered by the Agg canvas, never through ``pyplot``. Each ``*_figure`` function
builds and returns the figure (for tests and reuse); each ``plot_*`` function writes
it to ``path`` atomically (a temporary file in the same directory, then
``os.replace``), so no half-written image ever exists at ``path``.
"""

from __future__ import annotations

import io
import math
import os
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib import ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .errors import InputError, check_bool, check_choice
from .runs import CHECKPOINT_FILE, CONFIG_FILE, atomic_write, command_path, read_history, run_name

METRICS = ("val_loss", "train_loss", "both")
_LABELS = {"train_loss": "train", "val_loss": "validation"}
TITLE_CHARS, LEGEND_CHARS = 80, 36  # longer lines are wrapped (they ran off the figure)
MAX_RUNS = 100  # overlaid in one figure: more would be a legend of hundreds of lines
LEGEND_LINES = 50  # lines of a legend column (0.2 inch each): more make another column
# Forecast panels drawn (the first ones): 2.4 inches each, and the layout's time grows
# faster than their count (300 panels took 6 minutes and 79,000 pixels of height).
MAX_PANELS = 20


def check_output_file(
    path: str | os.PathLike[str], force: bool = False, suffix: str | None = None
) -> Path:
    """``path`` as a Path, once it is known that a file can be written there.

    InputError when ``path`` is a directory (``""`` is ``.``), its name does not end
    in ``suffix`` (any case; the format written, e.g. ``".png"``: a PNG named ``.jpg``
    misleads every program that opens it), its directory does not exist, or, unless
    ``force``, something already exists at ``path``.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"cannot write {path}: it is a directory")
    if suffix is not None and path.suffix.lower() != suffix:
        raise InputError(f"cannot write {path}: the name must be NAME{suffix} (the format written)")
    if not path.parent.is_dir():
        existing = next((p for p in path.parents if p.exists()), None)
        if existing is not None and not existing.is_dir():
            raise InputError(f"cannot write {path}: {existing} is not a directory")
        raise InputError(f"cannot write {path}: directory {path.parent} does not exist")
    if not force and os.path.lexists(path):
        raise InputError(
            f"{path} already exists; use --force to overwrite it (force=True from Python)"
        )
    return path


def png_bytes(fig: Figure, dpi: int = 110) -> bytes:
    """``fig`` rendered as PNG data (render first, then write: a failure writes nothing)."""
    FigureCanvasAgg(fig)
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=dpi)
    return png.getvalue()


def save_png(fig: Figure, path: str | os.PathLike[str], dpi: int = 110) -> Path:
    """Render ``fig`` to the PNG file ``path`` atomically; return the path.

    The name must end in ``.png`` and the directory must exist. Only ``path`` itself
    is written (replaced if present; see :func:`check_output_file` to refuse that).
    """
    path = check_output_file(path, force=True, suffix=".png")
    atomic_write(path, png_bytes(fig, dpi))
    return path


def _check_text(name: str, value: object) -> str:
    """``value`` once it is a string (a title, a label); :class:`InputError` naming
    ``name`` otherwise (matplotlib failed on a number with an AttributeError)."""
    if not isinstance(value, str):
        raise InputError(f"{name} must be a string, got {repr(value)[:60]}")
    return value


def _panels(values: Any, name: str) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.shape[1] == 0:
        raise InputError(
            f"{name} must have shape (n,) or (panels, n) with n >= 1, got {np.shape(values)}"
        )
    return a


def forecast_figure(
    t: np.ndarray,
    truth: np.ndarray,
    prediction: np.ndarray,
    start_window: tuple[int, int] | Sequence[tuple[int, int]],
    title: str,
    ylabels: Sequence[str] | None = None,
) -> Figure:
    """Forecast vs truth, one subplot per panel (a start, or a feature).

    Args:
        t: time steps ``(n,)`` shared by every panel, or ``(P, n)``.
        truth: true values ``(n,)`` or ``(P, n)``; NaN where unknown (past the series end).
        prediction: predictions, same shape; NaN where there is none (the start window).
        start_window: ``(first, stop)`` in units of ``t``, the true input points
            ``first .. stop - 1``, shaded; one tuple for all panels or one per panel.
        title: the figure's title.
        ylabels: each panel's y label (e.g. a CSV column's name), default "value".

    Truth is a dotted red line with dots, the prediction a solid black line. Only
    the first :data:`MAX_PANELS` panels are drawn; the title then says so.
    """
    truth_p, pred_p = _panels(truth, "truth"), _panels(prediction, "prediction")
    if truth_p.shape != pred_p.shape:
        raise InputError(
            f"truth and prediction must have the same shape, got {np.shape(truth)} "
            f"and {np.shape(prediction)}"
        )
    n_panels, n = truth_p.shape
    t_p = _panels(t, "t")
    if t_p.shape[1] != n or t_p.shape[0] not in (1, n_panels):
        raise InputError(f"t must have shape ({n},) or {truth_p.shape}, got {np.shape(t)}")
    t_p = np.broadcast_to(t_p, truth_p.shape)
    windows = (
        [tuple(start_window)] * n_panels
        if np.ndim(start_window) == 1
        else [tuple(w) for w in start_window]
    )
    if len(windows) != n_panels or any(len(w) != 2 for w in windows):
        raise InputError(
            f"start_window must be one (first, stop) pair or {n_panels}, got {start_window!r}"
        )

    ylabels = ["value"] * n_panels if ylabels is None else list(ylabels)
    if len(ylabels) != n_panels:
        raise InputError(f"ylabels must name the {n_panels} panels, got {len(ylabels)} labels")
    for k, ylabel in enumerate(ylabels):
        if ylabel is not None:  # None: "value"
            _check_text(f"ylabels[{k}]", ylabel)
    title = _check_text("title", title)

    shown = min(n_panels, MAX_PANELS)
    if shown < n_panels:
        title += f" (the first {shown} of {n_panels} panels)"
    fig = Figure(figsize=(10, 1.0 + 2.4 * shown), layout="constrained")
    axes = fig.subplots(shown, 1, squeeze=False)[:, 0]
    panels = zip(axes, t_p, truth_p, pred_p, windows, ylabels, strict=False)  # shown of them
    for ax, ti, yi, pi, (first, stop), ylabel in panels:
        ax.axvspan(first - 0.5, stop - 0.5, color="0.85", zorder=0, label="start window")
        # Truth on top, so a matching prediction does not hide it.
        ax.plot(ti, pi, "-", color="black", linewidth=1.3, label="prediction", zorder=2)
        known = np.isfinite(pi)
        alone = known & ~np.r_[False, known[:-1]] & ~np.r_[known[1:], False]
        ax.plot(ti[alone], pi[alone], "o", color="black", markersize=3, zorder=2)  # no line
        ax.plot(
            ti,
            yi,
            ":",
            color="red",
            marker=".",
            markersize=5,
            linewidth=1.4,
            label="truth",
            zorder=3,
        )
        ax.set_xlim(ti[0] - 0.5, ti[-1] + 0.5)
        ax.set_ylabel(_shown(_wrapped(ylabel, LEGEND_CHARS)) if ylabel else "value")
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("t (time step)")
    handles, labels = axes[0].get_legend_handles_labels()
    order = [labels.index(name) for name in ("truth", "prediction", "start window")]
    axes[0].legend(
        [handles[i] for i in order],
        [labels[i] for i in order],
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
        frameon=False,
    )
    fig.suptitle(_shown(_wrapped(title, TITLE_CHARS)))
    return fig


def plot_forecast(
    path: str | os.PathLike[str],
    t: np.ndarray,
    truth: np.ndarray,
    prediction: np.ndarray,
    start_window: tuple[int, int] | Sequence[tuple[int, int]],
    title: str,
    ylabels: Sequence[str] | None = None,
) -> Path:
    """Write :func:`forecast_figure` to the PNG ``path`` (atomically); return the path."""
    return save_png(forecast_figure(t, truth, prediction, start_window, title, ylabels), path)


def _column(history: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    """``history[i][key]`` as floats, NaN where missing or None."""
    values = [row.get(key) for row in history]
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def _epochs(history: Sequence[Mapping[str, Any]], name: str) -> np.ndarray:
    if len(history) == 0:
        raise InputError(f"{name} is empty: no epochs to plot")
    epochs = _column(history, "epoch")
    return np.arange(1, len(history) + 1) if np.isnan(epochs).any() else epochs


class _PlainLogFormatter(ticker.LogFormatter):
    """Matplotlib's choice of which log ticks to label, written as plain numbers."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        return f"{x:g}" if super().__call__(x, pos) else ""


def _loss_axes(ax: Any, ylabel: str) -> None:
    """A log y axis for losses that span a factor of 10 or more, said in the label; a
    linear one for a narrower span (a log axis labels too few values there: 2.05 to
    4.05 got only 3 and 4), for a loss that is zero or negative (a log axis would
    silently drop it), or where none is finite."""
    ys = np.concatenate([np.asarray(line.get_ydata(), dtype=np.float64) for line in ax.get_lines()])
    ys = ys[np.isfinite(ys)]
    if ys.size and np.all(ys > 0) and ys.max() >= 10 * ys.min():
        ax.set_yscale("log")
        ylabel += ", log scale"
        # Plain numbers (0.4, 3, 0.01), not 4x10^-1; minor ticks labelled on short ranges.
        ax.yaxis.set_major_formatter(_PlainLogFormatter())
        minor = _PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5))
        ax.yaxis.set_minor_formatter(minor)
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    epochs = np.unique(np.concatenate([np.asarray(line.get_xdata()) for line in ax.get_lines()]))
    if epochs.size == 1:  # the locator falls back to 0.96, 0.98, ... on a lone epoch
        ax.set_xticks(epochs)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="both")


def _marker(epochs: Sequence[int], key: str) -> str | None:
    """The marker of the ``key`` curve over ``epochs``: for a lone epoch (a line of one
    point is invisible) a cross for train and a dot for validation, which the legend
    tells apart; none otherwise."""
    return ("x" if key == "train_loss" else "o") if len(epochs) == 1 else None


def _wrapped(text: str, width: int) -> str:
    """``text`` in lines of at most ``width`` characters (a long run name or path is
    cut too): a figure's text does not grow its figure, so a long line ran off it."""
    return "\n".join(textwrap.wrap(text, width, break_on_hyphens=False)) or text


def _shown(text: str) -> str:
    """Text as given (a run's name, a label, a series id), never read as math: matplotlib
    takes what lies between two ``$`` for a formula ("lr$x_1$" showed as "lrx₁", and
    "a $\\frac{$ b" raised an error). A byte of a path that is not UTF-8 (Python holds
    it as a lone surrogate, which matplotlib refuses) is shown escaped, ``\\xff``."""
    try:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate no path decoding makes: shown as \udxxx
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text.replace("$", r"\$")


def losses_figure(history: Sequence[Mapping[str, Any]], title: str) -> Figure:
    """Train and validation loss per epoch, log y axis where they span 10x or more.

    ``history``: one dict per epoch with ``train_loss`` and ``val_loss`` (mean squared
    error) and optionally ``epoch`` (1-based; default: the row number).
    """
    title = _check_text("title", title)
    epochs = _epochs(history, "history")
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.subplots()
    for key, color in (("train_loss", "tab:blue"), ("val_loss", "tab:orange")):
        y = _column(history, key)
        ax.plot(epochs, y, "-", marker=_marker(epochs, key), color=color, label=_LABELS[key])
    _loss_axes(ax, "loss (MSE)")
    ax.legend()
    ax.set_title(_shown(_wrapped(title, TITLE_CHARS)))
    return fig


def plot_losses(
    path: str | os.PathLike[str], history: Sequence[Mapping[str, Any]], title: str
) -> Path:
    """Write :func:`losses_figure` to the PNG ``path`` (atomically); return the path."""
    return save_png(losses_figure(history, title), path)


def _distinct_colors(n: int) -> list[Any]:
    """``n`` colors, each run its own: tab10 or tab20, else ``n`` steps along turbo."""
    if n <= 20:
        return list(matplotlib.colormaps["tab10" if n <= 10 else "tab20"].colors[:n])
    return [matplotlib.colormaps["turbo"](x) for x in np.linspace(0.0, 1.0, n)]


def overlay_figure(
    runs: Mapping[str, Sequence[Mapping[str, Any]]], title: str, metric: str = "val_loss"
) -> Figure:
    """Several runs' loss curves overlaid, one color per run, log y axis where they
    span 10x or more.

    ``runs`` maps a label (e.g. ``"dropout 0.3"``) to that run's history (as in
    :func:`losses_figure`). ``metric``: ``"val_loss"``, ``"train_loss"`` or ``"both"``
    (train dashed, validation solid, same color per run). A run with an empty history
    (one imported from Chainer has no epochs) draws no curve; its legend entry says
    "(no epochs)", so that it is not silently missing. InputError when no run has one.
    """
    check_choice("metric", metric, METRICS)
    title = _check_text("title", title)
    if len(runs) == 0:
        raise InputError("runs is empty: nothing to overlay")
    if len(runs) > MAX_RUNS:
        raise InputError(
            f"{len(runs)} runs are more than one figure can tell apart (at most {MAX_RUNS}): "
            "plot them in groups"
        )
    keys = ("train_loss", "val_loss") if metric == "both" else (metric,)
    styles = {"train_loss": "--", "val_loss": "-"}
    for label in runs:
        _check_text("each run's label", label)
    _check_some_epochs(runs)
    names = {}
    for label, history in runs.items():
        if len(history) == 0:
            names[label, None] = _legend_name(f"{label} (no epochs)")
            continue
        for key in keys:
            name = f"{label} ({_LABELS[key]})" if metric == "both" else label
            names[label, key] = _legend_name(name)
    # The legend beside the axes needs about 0.2 inch a line, and 2.7 inches a column:
    # a taller figure for many runs, and a wider one past LEGEND_LINES.
    lines = sum(name.count("\n") + 1 for name in names.values())
    columns = math.ceil(lines / LEGEND_LINES)
    height = max(4.5, 0.8 + 0.2 * math.ceil(lines / columns))
    fig = Figure(figsize=(8.5 + 2.7 * (columns - 1), height), layout="constrained")
    ax = fig.subplots()
    colors = _distinct_colors(len(runs))
    for i, (label, history) in enumerate(runs.items()):
        if len(history) == 0:  # a legend entry only, no marker or line
            ax.plot([], [], linestyle="none", color=colors[i], label=names[label, None])
            continue
        epochs = _epochs(history, f"the history of run {label!r}")
        for key in keys:
            mark = _marker(epochs, key)
            ax.plot(
                epochs,
                _column(history, key),
                styles[key],
                marker=mark,
                color=colors[i],
                label=names[label, key],
            )
    what = "loss" if metric == "both" else f"{_LABELS[metric]} loss"
    _loss_axes(ax, f"{what} (MSE)")
    ax.legend(
        loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize="small", ncols=columns
    )
    ax.set_title(_shown(_wrapped(title, TITLE_CHARS)))
    return fig


def _legend_name(name: str) -> str:
    """A legend entry's text: wrapped, shown as given (see :func:`_shown`)."""
    name = _shown(_wrapped(name, LEGEND_CHARS))
    if name.startswith("_"):  # matplotlib leaves such labels out of the legend
        name = "\u200b" + name  # a zero-width space: shown as given
    return name


def _check_some_epochs(
    runs: Mapping[str, Sequence[Mapping[str, Any]]],
    why: str = "a run imported from Chainer has none",
) -> None:
    """InputError when no history in ``runs`` (label -> history) has an epoch; ``why``
    ends the message."""
    if any(len(history) for history in runs.values()):
        return
    which = (
        f"the history of run {next(iter(runs))!r} is empty"
        if len(runs) == 1
        else f"the histories of all {len(runs)} runs are empty"
    )
    raise InputError(f"{which}: no epochs to plot ({why})")


def _history(run_dir: Path) -> list[dict[str, Any]]:
    """The run's ``history.csv`` rows (:func:`~nsteplstm.runs.read_history`); where it is
    missing or damaged, the InputError also says what to do."""
    try:
        return read_history(run_dir)
    except InputError as e:
        if not run_dir.is_dir():  # "does not exist" says it all
            raise
        if (run_dir / CHECKPOINT_FILE).exists():
            advice = (
                f"nsteplstm train --resume {command_path(run_dir)} writes it again from the "
                "run's checkpoint, or leave the run out of the plot"
            )
        elif not (run_dir / CONFIG_FILE).exists():
            advice = f"{run_dir} holds no run (no {CONFIG_FILE} either): name a run directory"
        else:
            advice = "the run has no checkpoint to write it again from: leave it out of the plot"
        raise InputError(f"{e}; {advice}") from None


def plot_overlay(
    path: str | os.PathLike[str],
    runs: Mapping[str, Sequence[Mapping[str, Any]]],
    title: str,
    metric: str = "val_loss",
) -> Path:
    """Write :func:`overlay_figure` to the PNG ``path`` (atomically); return the path."""
    return save_png(overlay_figure(runs, title, metric), path)


def plot_runs(
    run_dirs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    labels: Sequence[str] | None = None,
    metric: str = "both",
    title: str = "Loss per epoch",
    force: bool = False,
) -> Path:
    """Overlay the loss curves of trained runs (``nsteplstm plot``); return ``out``.

    Each run's ``history.csv`` is read; ``labels`` (one per run) default to the run
    directories' names, or their full paths when names repeat. A run without epochs
    (imported from Chainer) is named in the legend as "(no epochs)", without a curve
    (see :func:`overlay_figure`). ``out`` must end in
    ``.png`` (so it can never name a run's data: config, weights, history, metrics; with
    ``force`` it may replace a run's forecast figure) and, unless ``force``, not exist.
    """
    out = check_output_file(out, check_bool("force", force), suffix=".png")
    if isinstance(run_dirs, (str, bytes, os.PathLike)):  # its characters are no runs
        raise InputError(f"run_dirs must be a list of run directories, got {run_dirs!r}")
    title = _check_text("title", title)
    dirs = [Path(d) for d in run_dirs]
    seen: dict[Path, Path] = {}
    for d in dirs:
        real = Path(os.path.realpath(d))  # Path.resolve raises on a symbolic link loop
        first = seen.setdefault(real, d)
        if first is not d:  # "run a is given twice (also as a)" named one path twice
            also = "" if str(first) == str(d) else f" (also as {first})"
            raise InputError(f"run {d} is given twice{also}")
    if isinstance(labels, (str, bytes)):  # its characters are no labels
        raise InputError(f"labels must be a list of one label per run, got {labels!r}")
    if labels is None:
        names = [run_name(d) for d in dirs]
        labels = names if len(set(names)) == len(names) else [str(d) for d in dirs]
    if len(labels) != len(dirs):
        raise InputError(f"got {len(labels)} labels for {len(dirs)} runs: give one label per run")
    if len(set(labels)) != len(labels):
        raise InputError(f"labels must differ from each other, got {list(labels)}")
    runs = {label: _history(d) for label, d in zip(labels, dirs, strict=True)}
    stopped = next((d for d in dirs if (d / CHECKPOINT_FILE).exists()), None)
    if stopped is not None:  # trained, not imported: it stopped before its first epoch ended
        resume = f"nsteplstm train --resume {command_path(stopped)}"
        _check_some_epochs(runs, f"{stopped} stopped before its first epoch ended; {resume}")
    return plot_overlay(out, runs, title, metric)
