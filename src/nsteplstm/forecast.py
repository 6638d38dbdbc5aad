"""Closed-loop forecasting, as in the article, and its metrics.

From ``sequence_size`` true points the model predicts the next point, the
prediction is appended to the input, and so on for ``horizon`` points. Many
start points run as one batch. Two modes:

- ``window``: every step runs the model on the last ``sequence_size`` values
  from a zero state, exactly the condition it was trained in:
  O(horizon x sequence_size) LSTM steps, one fused call per forecast step.
- ``stream``: the start window is fed once, then one LSTM step per new point
  carrying the state: O(sequence_size + horizon) LSTM steps.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import math
import os
import re
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from .config import Config, absolute_data, is_csv_data
from .device import check_memory
from .errors import InputError, check_bool, check_choice, check_int, gib, is_int, plain, some
from .functional import lstm_cell
from .model import Forecaster, NStepLSTM
from .packing import PackedLayout

if TYPE_CHECKING:  # for the annotations; forecast_run imports these layers where used
    from pathlib import Path

    from .data import Scaler, Series
    from .runs import Run

MODES = ("window", "stream")

# The longest forecast, in points per start. The model runs once per point, so time
# grows with the horizon while a closed loop's use does not: the article scores 120
# points. A million points of its model (hidden 200, one start, 2-core CPU) took about
# 1 (stream mode, 1 layer) to 5 minutes (3 layers), and 11 to 40 in window mode;
# forecast_run's CSV of them is about 30 MB. Before this bound, forecast() took 10**9
# points from one start (4 GB, within the memory check) and would have run 15 hours
# (stream) to 4 weeks (window, 3 layers).
MAX_HORIZON = 10**6


def forecast(
    model: Forecaster,
    series: np.ndarray,
    starts: Sequence[int],
    sequence_size: int,
    horizon: int | None = None,
    mode: str = "window",
) -> np.ndarray:
    """Closed-loop forecasts from several start points, run as one batch.

    Args:
        model: a :class:`Forecaster` with ``n_out == n_in`` (its outputs are fed back).
        series: float array ``(T, F)`` (or ``(T,)`` for F = 1), F = the model's ``n_in``,
            in the units the model was trained on: a scaled CSV run's model takes
            ``run.scaler.transform(x)``, and ``run.scaler.inverse`` turns the forecast
            back into data units (:func:`forecast_run` does both).
        starts: first index of each start window; each in ``[0, T - sequence_size]``.
            The window ``series[s : s + sequence_size]`` is the true input; the
            forecast covers indices ``s + sequence_size ...`` and may run past T.
        sequence_size: length S of the start window (and, in ``window`` mode, of
            every input the model sees).
        horizon: number of points to predict, 1 to :data:`MAX_HORIZON`; default
            ``4 * sequence_size``, at most :data:`MAX_HORIZON`.
        mode: ``"window"`` or ``"stream"`` (see the module docstring).

    Returns:
        float32 array ``(len(starts), horizon, F)``: ``out[i, k]`` predicts
        ``series[starts[i] + sequence_size + k]``.

    The model runs in eval mode (restored afterwards) under ``torch.inference_mode()``
    on its own device. Its kernels are called directly (one LSTM step at a time in
    stream mode), so hooks on its modules and a ``module.compile()`` do not act here.
    On the CPU, fewer than :data:`ONE_THREAD_STARTS` starts run on one thread
    (``torch.set_num_threads(1)``, restored afterwards; see :func:`_few_threads`).
    Raises :class:`InputError` for arguments out of range, and for forecasts whose
    buffers and LSTM working memory would not fit in this machine's memory.
    """
    horizon = _default_horizon(sequence_size) if horizon is None else horizon
    x = _check(model, series, starts, sequence_size, horizon, mode)  # (T, F)
    _check_forecast_memory(
        _forecast_bytes(model, sequence_size, horizon, len(starts), mode), horizon, len(starts)
    )
    weight = model.head.weight
    modes = [(m, m.training) for m in model.modules()]  # a submodule may differ from model
    model.eval()
    try:
        with torch.inference_mode(), _few_threads(weight.device, len(starts)):
            data = torch.as_tensor(x).to(device=weight.device, dtype=weight.dtype)  # (T, F)
            first = torch.as_tensor([int(s) for s in starts], device=weight.device)  # (B,)
            steps = torch.arange(sequence_size, device=weight.device)  # (S,)
            rows = first[None, :] + steps[:, None]  # (S, B)
            windows = data[rows]  # (S, B, F), time-major
            run = _window if mode == "window" else _stream
            out = run(model, windows, horizon)  # (horizon, B, F)
    finally:
        for module, training in modes:
            module.training = training
    return out.transpose(0, 1).float().cpu().numpy()


# Below this many start points a CPU forecast runs on one thread. Measured at the
# article's sizes (hidden 200, 2-core machine, torch 2.13): on an idle machine two
# threads were 4% (window mode) to 11% (stream mode) faster at one start, about as
# fast up to 16 starts and 1.4x faster from 64 on; with one other busy process, two
# threads took 2 to 5 times as long as one at one start (under heavier load up to 50
# times): each of the many small kernel calls of a forecast waits for the thread that
# is not running.
ONE_THREAD_STARTS = 32


@contextlib.contextmanager
def _few_threads(device: torch.device, starts: int) -> Iterator[None]:
    """One intra-op thread inside, on the CPU for fewer than :data:`ONE_THREAD_STARTS`
    starts; torch's setting as it was afterwards."""
    threads = torch.get_num_threads()
    if device.type != "cpu" or starts >= ONE_THREAD_STARTS or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _window(model: Forecaster, windows: Tensor, horizon: int) -> Tensor:
    """Window mode: ``windows`` ``(S, B, F)`` -> predictions ``(horizon, B, F)``."""
    size, batch, features = windows.shape
    layout = PackedLayout.dense(size, batch, windows.device)
    buf = windows.new_empty(size + horizon, batch, features)  # true window, then predictions
    buf[:size] = windows
    for k in range(horizon):
        data = buf[k : k + size].reshape(size * batch, features)  # a view: buf is time-major
        # Last step of every sequence: (B, F). In one statement, so that one step's
        # LSTM output (S * B, H) is freed before the next step's is made.
        buf[size + k] = model.head(_lstm_outputs(model, data, layout)[-batch:])
    return buf[size:]


def _lstm_outputs(model: Forecaster, data: Tensor, layout: PackedLayout) -> Tensor:
    """The model's LSTM over packed ``data`` ``(N, F)`` from zero states: ``(N, H)``."""
    if isinstance(model.lstm, NStepLSTM):
        return model.lstm.forward_packed(data, layout)[0]
    return model.lstm.forward_packed(data, layout)


def _stream(model: Forecaster, windows: Tensor, horizon: int) -> Tensor:
    """Stream mode: ``windows`` ``(S, B, F)`` -> predictions ``(horizon, B, F)``."""
    size, batch, features = windows.shape
    preds = windows.new_empty(horizon, batch, features)
    lstm = model.lstm
    if isinstance(lstm, NStepLSTM):
        # One fused pass over the start windows, then one step per point with the
        # same weights (torch.lstm_cell: one fused LSTM step per layer).
        layout = PackedLayout.dense(size, batch, windows.device)
        _, hy, cy = lstm.forward_packed(windows.reshape(size * batch, features), layout)
        h, c = list(hy.unbind(0)), list(cy.unbind(0))  # per layer (B, H)
        w = lstm.weights
        preds[0] = model.head(h[-1])
        for k in range(1, horizon):
            x = preds[k - 1]  # (B, F)
            for layer in range(lstm.n_layers):
                h[layer], c[layer] = lstm_cell(x, h[layer], c[layer], *w[4 * layer : 4 * layer + 4])
                x = h[layer]
            preds[k] = model.head(x)
        return preds

    # cell="step": drive the stateful StepLSTM cells, one time step per call.
    cells = lstm.cells
    for cell in cells:
        cell.reset_state()
    try:
        for k in range(size + horizon - 1):
            x = windows[k] if k < size else preds[k - size]  # (B, F)
            for cell in cells:
                x = cell(x)
            if k >= size - 1:
                preds[k - size + 1] = model.head(x)
    finally:
        for cell in cells:
            cell.reset_state()
    return preds


def _default_horizon(sequence_size: int) -> int | None:
    """``4 * sequence_size``, at most :data:`MAX_HORIZON`; None for a ``sequence_size``
    that is no integer (named by the checks)."""
    return min(4 * sequence_size, MAX_HORIZON) if is_int(sequence_size) else None


def _check_horizon(horizon: object) -> int:
    """``horizon`` as an int; :class:`InputError` unless it is an integer in
    ``[1, MAX_HORIZON]``."""
    check_int("horizon", horizon)
    if horizon > MAX_HORIZON:
        raise InputError(
            f"horizon = {plain(horizon)} is out of range: at most {MAX_HORIZON:,} (the model "
            "runs once per point: a million points of the article's model take minutes in "
            "stream mode, up to an hour in window mode)"
        )
    return int(horizon)


def _check(
    model: Forecaster,
    series: np.ndarray,
    starts: Sequence[int],
    sequence_size: int,
    horizon: int,
    mode: str,
) -> np.ndarray:
    """Validate the arguments of :func:`forecast`; return the series as ``(T, F)`` float32."""
    if not isinstance(model, Forecaster):
        raise InputError(f"model must be a Forecaster, got {type(model).__name__}")
    check_choice("mode", mode, MODES)
    n_in, n_out = model.config["n_in"], model.config["n_out"]
    if n_out != n_in:
        raise InputError(
            f"closed-loop forecasting feeds outputs back as inputs: n_out = {n_out} "
            f"must equal n_in = {n_in}"
        )
    x = _series(series, n_in)
    _check_windows(x, starts, sequence_size, horizon)
    for s in starts:
        if not np.isfinite(x[s : s + sequence_size]).all():
            raise InputError(
                f"the start window at {s} holds NaN or infinite values (in float32, the "
                "model's type: at most 3.4e38 in magnitude)"
            )
    return x


def _series(series: np.ndarray, n_in: int | None = None, dtype: type = np.float32) -> np.ndarray:
    """``series`` ``(T, F)`` or ``(T,)`` as ``dtype`` ``(T, F)``; F must be ``n_in`` if given.
    Real numbers only: a masked array's mask, a complex part or a date would be lost."""
    if isinstance(series, torch.Tensor):
        series = series.detach().cpu()
    if isinstance(series, np.ma.MaskedArray):
        raise InputError("series must be a plain array: a masked array's mask would be lost")
    try:
        raw = np.asarray(series)
        kind = raw.dtype.kind  # O: objects, numbers or not (the cast below decides)
        with np.errstate(over="ignore"):  # past float32: inf, named by the window check
            x = raw.astype(dtype) if kind in "biufO" else None
    except (TypeError, ValueError, OverflowError) as e:  # Overflow: a Python int past 1e308
        raise InputError(f"series must be an array of numbers: {e}") from None
    if x is None:
        raise InputError(f"series must hold real numbers, got dtype {raw.dtype}")
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or (n_in is not None and x.shape[1] != n_in):
        features = "F" if n_in is None else n_in
        raise InputError(
            f"series must have shape (T, {features}) or (T,)"
            + ("" if n_in is None else f" for a model with n_in = {n_in}")
            + f", got {tuple(np.shape(series))}"
        )
    return x


def _check_windows(x: np.ndarray, starts: Sequence[int], sequence_size: int, horizon: int) -> None:
    """Raise :class:`InputError` unless ``sequence_size`` is an integer >= 1, ``horizon``
    one in ``[1, MAX_HORIZON]``, and every start's window ``x[s : s + sequence_size]``
    lies inside ``x`` ``(T, F)``."""
    length = x.shape[0]
    check_int("sequence_size", sequence_size)
    _check_horizon(horizon)
    if sequence_size > length:
        raise InputError(
            f"sequence_size = {sequence_size} is longer than the series ({length} points)"
        )
    if not isinstance(starts, (Sequence, np.ndarray)) or isinstance(starts, (str, bytes)):
        raise InputError(f"starts must be a list of integers, got {type(starts).__name__}")
    if len(starts) == 0 or (isinstance(starts, np.ndarray) and starts.ndim != 1):
        raise InputError(f"starts must be a non-empty list of integers, got {plain(starts)}")
    last = length - sequence_size
    for s in starts:
        _check_start_type(s)
        if not 0 <= s <= last:
            raise InputError(
                f"start {plain(s)} out of range: a start window of {sequence_size} points in a "
                f"series of {length} must start in [0, {last}]"
            )


# The working memory of one LSTM call over B sequences of S steps, in units of its
# output (S * B, H): measured (peak RSS, torch 2.13's oneDNN LSTM on the CPU, S = 30,
# hidden 100 to 400) at 2.25 for one layer and 3.4 (2 layers) to 3.9 (6 layers) for
# more: the output, the layer below's output, and about 1.25 besides; plus 4 states
# (B, H) per layer.
LSTM_OUTPUTS = 2.25
LSTM_OUTPUTS_STACKED = 3.25
LSTM_STATES_PER_LAYER = 4


def _forecast_bytes(
    model: Forecaster, sequence_size: int, horizon: int, starts: int, mode: str
) -> int:
    """Bytes :func:`forecast` allocates for ``starts`` forecasts (B) of ``horizon``
    points from windows of ``sequence_size`` (S) with F features, in the model's dtype:
    the start windows ``(S, B, F)``; the predictions, ``(S + horizon, B, F)`` in window
    mode (after the windows they slide over), ``(horizon, B, F)`` in stream mode; their
    float32 copy where they are not float32 on the CPU; and one LSTM call over the
    windows (:data:`LSTM_OUTPUTS`)."""
    weight = model.head.weight
    size = weight.element_size()
    features, hidden, layers = (model.config[k] for k in ("n_in", "n_hidden", "n_layers"))
    rows = sequence_size + horizon if mode == "window" else horizon
    needed = size * (sequence_size + rows) * starts * features
    if weight.dtype != torch.float32 or weight.device.type != "cpu":
        needed += 4 * horizon * starts * features  # the float32 result, a copy
    outputs = LSTM_OUTPUTS if layers == 1 else LSTM_OUTPUTS_STACKED
    lstm = outputs * sequence_size + LSTM_STATES_PER_LAYER * layers
    return needed + math.ceil(lstm * starts * hidden * size)


def _check_forecast_memory(needed: int, horizon: int, starts: int) -> None:
    """:class:`InputError` when ``needed`` bytes, for ``starts`` forecasts of ``horizon``
    points, exceed this machine's memory."""
    what = f"horizon = {horizon}: {starts} forecasts of {horizon} points take {gib(needed)}"
    check_memory(needed, what)


def forecast_truth(
    series: np.ndarray, starts: Sequence[int], sequence_size: int, horizon: int
) -> np.ndarray:
    """The true values a forecast predicts: float64 ``(len(starts), horizon, F)``.

    ``out[i, k] = series[starts[i] + sequence_size + k]``, NaN past the end of the series.
    Arguments as for :func:`forecast`.
    """
    x = _series(series, dtype=np.float64)
    _check_windows(x, starts, sequence_size, horizon)
    needed = x.itemsize * len(starts) * horizon * x.shape[1]
    _check_forecast_memory(needed, horizon, len(starts))
    return _truth(x, starts, sequence_size, horizon)


def _truth(x: np.ndarray, starts: Sequence[int], offset: int, length: int) -> np.ndarray:
    """``out[i] = x[starts[i] + offset :][:length]``, NaN past the end of ``x`` ``(T, F)``:
    ``(len(starts), length, F)`` of ``x``'s dtype."""
    out = np.full((len(starts), length, x.shape[1]), np.nan, dtype=x.dtype)
    for i, s in enumerate(starts):
        part = x[s + offset : s + offset + length]
        out[i, : len(part)] = part
    return out


def forecast_series(
    series: np.ndarray, starts: Sequence[int], sequence_size: int, pred: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start windows and forecasts on one time axis, for CSV rows and plots.

    Args:
        series: ``(T, F)`` or ``(T,)``; starts and sequence_size as given to :func:`forecast`.
        pred: its result ``(len(starts), horizon, F)``.

    Returns:
        ``(t, truth, prediction)``: ``t`` int64 ``(P, S + horizon)``, the series index
        of every point (P starts, S = sequence_size); ``truth`` float64
        ``(P, S + horizon, F)``, NaN past the series end; ``prediction`` the same
        shape, NaN over the start window.
    """
    x = _series(series, dtype=np.float64)  # (T, F): a CSV's values as read
    pred = np.asarray(pred)
    if pred.ndim != 3 or pred.shape[0] != len(starts) or pred.shape[2] != x.shape[1]:
        raise InputError(
            f"pred must have shape ({len(starts)}, horizon, {x.shape[1]}) for "
            f"{len(starts)} starts of a series with {x.shape[1]} features, got {pred.shape}"
        )
    n, horizon, features = pred.shape
    _check_windows(x, starts, sequence_size, horizon)
    points = n * (sequence_size + horizon)
    needed = x.itemsize * points * (1 + 2 * features)  # t int64, truth and prediction float64
    _check_forecast_memory(needed, horizon, n)
    t = np.asarray(starts, dtype=np.int64)[:, None] + np.arange(sequence_size + horizon)
    truth = _truth(x, starts, 0, sequence_size + horizon)  # the window, then what follows
    prediction = np.full((n, sequence_size + horizon, features), np.nan)
    prediction[:, sequence_size:] = pred
    return t, truth, prediction


def forecast_metrics(pred: np.ndarray, truth: np.ndarray, integer_valued: bool) -> dict[str, Any]:
    """Error of a forecast against the truth, over the values where the truth exists.

    Args:
        pred: predictions, any shape, e.g. ``(n_starts, horizon, F)``.
        truth: the same shape; NaN marks values with no truth (past the series end),
            as :func:`forecast_truth` gives.
        integer_valued: whether the series holds whole numbers only.

    Returns:
        ``{"points", "rmse", "mae", "round_accuracy"}``: the number of compared
        values, root mean squared and mean absolute error (in the series' units),
        and the share of predictions that round to the truth (None unless
        ``integer_valued``). Errors are None when no value has a truth.
    """
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    if p.shape != t.shape:
        raise InputError(f"pred and truth must have the same shape, got {p.shape} and {t.shape}")
    known = np.isfinite(t)
    p, t = p[known], t[known]
    points = int(t.size)
    if points == 0:
        return {"points": 0, "rmse": None, "mae": None, "round_accuracy": None}
    err = p - t
    return {
        "points": points,
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "round_accuracy": float(np.mean(np.rint(p) == t)) if integer_valued else None,
    }


def forecast_run(
    run_dir: str | os.PathLike[str],
    mode: str = "window",
    horizon: int | None = None,
    start: int = 0,
    series: str | None = None,
    force: bool = False,
    name: str | None = None,
    data: str | None = None,
) -> dict[str, Any]:
    """Forecast a trained run closed loop and record it: the ``nsteplstm forecast`` command.

    Loads the run (model on the CPU: one start point is a batch of one, where the
    CPU beats a GPU's per-step launches) and reads its series again as ``config.json``
    says, scaled with the run's own scaler (the CSV may have grown since training).
    For a CSV split by ``csv_series_id`` it takes the series with id ``series``, by
    default the first in the file. It forecasts ``horizon`` points (1 to
    :data:`MAX_HORIZON`; default ``4 * sequence_size``, at most that) from the start
    window at ``start`` (a negative start counts from the series' end:
    ``-sequence_size`` starts at the last window and forecasts past the data), and
    writes into ``run_dir``, under ``name`` (default: the mode):

    - ``forecast-<name>.csv``: ``t,truth,prediction`` (``t`` counts from the series
      start; a cell is empty where there is no truth or no prediction), in data
      units (scaling undone); for F > 1 ``truth_<column>``/``prediction_<column>``
      by the CSV's header (``truth_0``, ... without one).
    - ``forecast-<name>.png``: truth vs prediction, one panel per feature (the first
      :data:`~nsteplstm.plots.MAX_PANELS`; the CSV has them all).
    - ``metrics.json`` key ``forecast.<name>``: the returned dict.

    ``name`` (letters, digits, ``_`` and ``-``, at most 64, the first a letter or
    digit; not the other mode's name) keeps several forecasts side by side, e.g. one
    per series or start. An earlier forecast under the same name (either file, or its
    ``metrics.json`` entry) is replaced only with ``force``; without it the call is an
    InputError.

    ``data = "csv:PATH"`` reads that CSV file instead of the run's own (the run must
    have been trained on a CSV file): the same file moved, or newer data with the same
    columns, taken as ``config.json``'s CSV settings say and scaled with the run's scaler.
    Where the run recorded its header's names of the columns read (``data_header``),
    the file read, the run's own or another, must name the same columns in the same
    order, and the same series-id column.

    Returns ``{mode, points, rmse, mae, round_accuracy, seconds, start, series, non_finite,
    in_sample, held_out_from, data}``
    (see :func:`forecast_metrics`; ``seconds``: wall time of the forecast itself;
    ``start``: the start window's first point, counted from the series' start;
    ``series``: the series' id, None without ``csv_series_id``; ``non_finite``: how
    many predicted values are infinite or NaN, a closed loop that overflowed float32:
    their CSV cells are empty, ``rmse`` and ``mae`` None, and ``round_accuracy`` counts
    them as wrong; ``in_sample``: how many of the ``points`` lie in the series' training
    part, the model's own training data, so that their scores are in-sample;
    ``held_out_from``: the first ``start`` whose points all lie past it; both None where
    the training part is not known: a run imported from Chainer, a series whose first
    rows are not those the run recorded in ``training_rows`` (or that it did not see),
    or, for a run from before that record, a CSV file whose SHA-256 differs from the
    one trained on; ``data``: the data read). With several
    features, ``features`` holds each one's own ``{points, rmse, mae, round_accuracy}``
    by its name (the CSV's header, else its index; its ``round_accuracy`` is there when
    that feature holds integers only, the pooled one when every feature does): the
    pooled scores mix their units.

    Everything is checked and rendered before the first file is written: a
    directory in the way of an output, or a ``metrics.json`` that cannot take the
    new entry (see :func:`_check_metrics`), is an InputError that leaves the run as
    it was. So is a run that another process trains or forecasts
    (:class:`nsteplstm.runs.RunLock`): two forecasts at once could each write
    ``metrics.json`` over the other's entry.
    """
    from . import runs  # the run-directory layer is only needed here

    check_choice("mode", mode, MODES)
    force = check_bool("force", force)
    name = _check_name(mode if name is None else name, mode)
    lock = runs.RunLock()
    lock.acquire(runs.run_path(run_dir))  # first: a run being trained is read half-written
    try:
        run = runs.load_run(run_dir, history=False)  # history.csv: not needed here
        return _forecast_run(run, mode, horizon, start, series, force, name, data)
    finally:
        lock.release()


def _forecast_run(
    run: Run,
    mode: str,
    horizon: int | None,
    start: int,
    series: str | None,
    force: bool,
    name: str,
    data: str | None,
) -> dict[str, Any]:
    """:func:`forecast_run` on a loaded run that this process holds."""
    from . import plots, runs

    config = _forecast_config(run, data)
    if config.data == "adding":
        raise InputError(
            f"{run.path}: the adding problem is sequence-to-one; there is no series to forecast"
        )
    size = run.config.sequence_size
    horizon = _check_horizon(_default_horizon(size) if horizon is None else horizon)
    _check_run_memory(horizon, run.config.n_out)
    source, index = _series_to_forecast(config, run.scaler, series, run.data_header)
    x = source.series[index]  # (T, F), scaled like the training data
    start = _run_start(start, x.shape[0], size)
    # The outputs after the arguments: a mistake is named first.
    csv_path = runs.output_path(run.path, f"forecast-{name}.csv")
    png_path = runs.output_path(run.path, f"forecast-{name}.png")
    for path in (csv_path, png_path):
        plots.check_output_file(path, force=True)  # a directory in the way
    _check_earlier(run.metrics, run.path / runs.METRICS_FILE, name, [csv_path, png_path], force)
    if not runs.can_create_in(run.path):  # found now, not after the forecast
        raise InputError(f"cannot forecast into {run.path}: the directory is not writable")
    began = time.perf_counter()
    pred = forecast(run.model, x, [start], size, horizon, mode)  # (1, horizon, F)
    seconds = time.perf_counter() - began
    if source.scaler is not None:
        pred = source.scaler.inverse(pred)
    x = source.unscaled[index]  # as read: scaling there and back is not exact in float32
    truth = forecast_truth(x, [start], size, horizon)
    metrics = {"mode": mode, **_finite_scores(forecast_metrics(pred, truth, source.integer_valued))}
    series = None if source.series_ids is None else source.series_ids[index]
    non_finite = int(np.count_nonzero(~np.isfinite(pred)))
    metrics.update(seconds=seconds, start=start, series=series, non_finite=non_finite)
    trained = _training_points(run, config, source, index)
    metrics.update(_in_sample(trained, size, x.shape[1], start, horizon), data=config.data)
    tags = _feature_tags(source.features, pred.shape[2])
    if len(tags) > 1:  # pooled scores mix the features' units: each one's own too
        metrics["features"] = {
            tag: _finite_scores(
                forecast_metrics(pred[..., k], truth[..., k], source.integer_features[k])
            )
            for k, tag in enumerate(tags)
        }

    t, truth_all, pred_all = forecast_series(x, [start], size, pred)  # (1, n), (1, n, F)
    layers = run.config.n_layers
    of_series = "" if series is None else f" of series {series!r}"
    figure = plots.forecast_figure(
        t[0],
        truth_all[0].T,  # (F, n): one panel per feature
        pred_all[0].T,
        (start, start + size),
        ylabels=source.features,
        title=f"{runs.run_name(run.path)}: closed-loop forecast, {mode} mode "
        f"({layers} layer{'s' * (layers > 1)}, {horizon} point{'s' * (horizon > 1)} after "
        f"the window from t = {start}{of_series})",
    )
    csv_text = _forecast_csv(t[0], truth_all[0], pred_all[0], source.features)
    png = plots.png_bytes(figure)
    runs.update_metrics(run.path, f"forecast.{name}", metrics, {csv_path: csv_text, png_path: png})
    return metrics


def _series_to_forecast(
    config: Config, scaler: Scaler | None, series: str | None, header: dict[str, Any] | None
) -> tuple[Series, int]:
    """The series ``config`` names, scaled with the run's ``scaler``, and the index of
    the one with id ``series`` (the first when None); InputError when it is shorter
    than one start window, or when its header does not name the columns the run was
    trained on (``header``, the run's :attr:`nsteplstm.data.Series.header`; None: not
    known)."""
    from .data import ColumnCountError, load_series

    try:
        source = load_series(config, scaler=scaler)  # scaled as in training
    except ColumnCountError as e:  # its advice is for training: a trained model is fixed
        raise InputError(
            f"{config.csv_path}: {e.columns} column{'s' * (e.columns != 1)} read, but the "
            f"run's model takes {config.n_in}; a forecast needs the columns it was "
            f"trained on{e.hint}"
        ) from None
    _check_header(source, header, config.csv_path)
    index = _series_index(source.series_ids, series, config.data)
    size, length = config.sequence_size, len(source.series[index])
    if length < size:
        too_short = f"{length} points, fewer than one start window (sequence_size = {size})"
        ids = source.series_ids
        if ids is None:
            raise InputError(f"data = {config.data!r} has {too_short}")
        longer = [i for i, s in zip(ids, source.series, strict=True) if len(s) >= size]
        other = f"; choose another with --series (e.g. {longer[0]!r})" if longer else ""
        raise InputError(f"series {ids[index]!r} has {too_short}{other}")
    return source, index


def _check_header(source: Series, header: dict[str, Any] | None, path: Path | None) -> None:
    """InputError unless ``source`` was read from columns of the names in ``header``, the
    run's (None: not recorded), in the same order and with the same series-id column."""
    if header is None or source.header == header:
        return
    trained = f"the run was trained on columns {some(header['columns'])}"
    if source.header is None:
        read = "no header read"
    elif source.features != header["columns"]:
        read = f"columns {some(source.features)} read"
    else:
        read = f"series ids read from column {source.id_column!r}"
        trained = f"the run's came from column {header['series_id']!r}"
    raise InputError(
        f"{path}: {read}, but {trained}; a forecast needs the columns it was trained on, "
        "in that order"
    )


def _in_sample(
    trained: int | None, sequence_size: int, n_features: int, start: int, horizon: int
) -> dict[str, int | None]:
    """``in_sample`` and ``held_out_from`` (see :func:`forecast_run`) of a forecast of
    ``horizon`` points after the window at ``start`` in a series whose first
    ``trained`` points the model was trained on (None: not known)."""
    if trained is None:
        return {"in_sample": None, "held_out_from": None}
    first = start + sequence_size  # the first scored point
    steps = max(0, min(trained, first + horizon) - first)
    return {"in_sample": steps * n_features, "held_out_from": max(0, trained - sequence_size)}


def _forecast_config(run: Run, data: str | None) -> Config:
    """The run's config, with ``data = "csv:PATH"`` in place of its CSV file when given."""
    from .runs import check_data_found

    if data is None:
        where = "--data csv:PATH, data= from Python"
        check_data_found(run.config, f"if it moved, name its new place ({where})")
        return run.config
    if not isinstance(data, str) or not is_csv_data(data):
        raise InputError(f"data must be csv:PATH, got {data!r}")
    if run.config.csv_path is None:
        raise InputError(
            f"data {data!r}: the run in {run.path} was trained on data = {run.config.data!r}; "
            "only a run trained on a CSV file reads another"
        )
    return dataclasses.replace(run.config, data=absolute_data(data))


def _training_points(run: Run, config: Config, source: Series, index: int) -> int | None:
    """How many of its first points, of series ``index`` of ``source`` (read as
    ``config`` says), the run's model was trained on; None where that is not known
    (see :func:`forecast_run`)."""
    from .data import rows_digest, source_digest, train_points

    raw = source.unscaled[index]  # (T, F) as read
    if "imported_from" in run.metrics:
        return None
    if config.csv_path is None:  # generated: the same series every time
        return train_points(config.split_rate, len(raw))
    if run.training_rows is not None:
        entry = run.training_rows.get(source.series_ids[index] if source.series_ids else "")
        if entry is None or len(raw) < entry["rows"]:
            return None  # a series the run did not see, or fewer rows than it trained on
        same = rows_digest(raw[: entry["rows"]]) == entry["sha256"]
        return entry["rows"] if same else None
    if run.data_sha256 is None or source_digest(config) != run.data_sha256:
        return None  # a run without a digest (not read again to learn that), or another file
    return train_points(config.split_rate, len(raw))


def _series_index(ids: list[str] | None, series: str | None, data: str) -> int:
    """Index of the series with id ``series`` in ``ids`` (0 when ``series`` is None)."""
    if series is None:
        return 0
    if ids is None:
        raise InputError(
            f"series {series!r}: data = {data!r} is one series (no csv_series_id column to "
            "pick one by)"
        )
    if series not in ids:
        raise InputError(f"series {series!r} not in the data (ids: {some(ids)})")
    return ids.index(series)


# Bytes forecast_run holds per forecast point and feature: the model's buffer, float64
# columns, the CSV text, the plot's arrays. Measured about 195 (the peak RSS of 400,000
# points less that of 200,000, either mode), and 170 to 250 (the peak RSS of 50,000 to
# 200,000 points of 1 to 16 features, stream mode).
RUN_BYTES_PER_POINT = 256


def _check_run_memory(horizon: int, n_features: int) -> None:
    """InputError when a forecast of ``horizon`` points would not fit in this machine's
    memory, before it runs (stream mode takes about 50 us a point, so the largest
    that fits runs for hours: refused at once, not after them)."""
    needed = RUN_BYTES_PER_POINT * horizon * n_features
    check_memory(
        needed,
        f"horizon = {horizon}: writing a forecast of {horizon} points takes about {gib(needed)}",
    )


def _check_start_type(start: object) -> None:
    """InputError unless ``start`` is an integer (a float or a list is not "out of range")."""
    if not is_int(start):
        raise InputError(f"start {plain(start)} must be an integer, got {type(start).__name__}")


def _run_start(start: int, length: int, sequence_size: int) -> int:
    """``start`` as a point of a series of ``length``; a negative one counts from its end."""
    last = length - sequence_size
    _check_start_type(start)
    if not (0 <= start <= last or -length <= start <= -sequence_size):
        raise InputError(
            f"start {plain(start)} out of range: a start window of {sequence_size} points in a "
            f"series of {length} must start in [0, {last}], or in [-{length}, "
            f"-{sequence_size}] counted from the end"
        )
    return int(start + length if start < 0 else start)  # a numpy integer is no JSON


NAME_CHARS = 64


def _check_name(name: str, mode: str) -> str:
    """``name`` of a forecast's outputs, once it is a safe file-name part that does not
    claim the other mode's default."""
    ok = isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name)
    if not ok or len(name) > NAME_CHARS:
        raise InputError(
            f"forecast name {name!r}: use 1 to {NAME_CHARS} letters, digits, '_' or '-', "
            "the first a letter or digit"
        )
    own = name.lower()  # "Stream" is forecast-stream.csv on macOS and Windows
    if own in MODES and own != mode:
        raise InputError(
            f"forecast name {name!r} is the {own} mode's own; choose another for a {mode} forecast"
        )
    return name


def _check_earlier(
    metrics: dict[str, Any], path: os.PathLike[str], name: str, files: list[Path], force: bool
) -> None:
    """InputError unless ``metrics`` (read from ``path``, strict JSON) can take a
    ``forecast.<name>`` entry and, unless ``force``, neither it nor any of ``files``
    (that forecast's outputs) exists yet. ``forecast``, if present, must be an object
    (else it would be lost). A name that differs only in case from a recorded one, or
    from one with files in the run directory, is refused even with ``force``: on a
    case-insensitive filesystem (macOS, Windows) the two would share their files, and
    in a run directory copied there they would."""
    recorded = metrics.get("forecast", {})
    if not isinstance(recorded, dict):
        raise InputError(
            f"{path}: 'forecast' must be a JSON object (forecasts are recorded in it), "
            f"got {metrics['forecast']!r}"
        )
    outputs = [*files[0].parent.glob("forecast-*.csv"), *files[0].parent.glob("forecast-*.png")]
    on_disk = [f.stem.removeprefix("forecast-") for f in outputs]
    twins = [k for k in (*recorded, *on_disk) if k != name and k.lower() == name.lower()]
    if twins:
        raise InputError(
            f"forecast name {name!r} differs from the earlier forecast {twins[0]!r} only in "
            "case, and would share its files on a case-insensitive filesystem (macOS, "
            "Windows); choose another --name"
        )
    if force:
        return
    earlier = [str(p) for p in files if os.path.lexists(p)]
    if name in recorded:
        earlier.append(f"{path} (entry forecast.{name})")
    if earlier:
        raise InputError(
            f"{earlier[0]} already exists; use --force to replace that forecast, or "
            "--name to keep it and write another beside it (force=True, name= from Python)"
        )


def _feature_tags(features: list[str] | None, count: int) -> list[str]:
    """The ``count`` features' names where they are distinct and not empty (a CSV's
    header), else their indices ``"0"``, ``"1"``, ..."""
    named = features is not None and len(set(features)) == count and all(features)
    return list(features) if named else [str(k) for k in range(count)]


def _finite_scores(scores: dict[str, Any]) -> dict[str, Any]:
    """:func:`forecast_metrics` scores with the non-finite ones (an overflowed
    forecast) as None: JSON has no infinity."""
    return {k: v if v is None or math.isfinite(v) else None for k, v in scores.items()}


def _forecast_csv(
    t: np.ndarray, truth: np.ndarray, pred: np.ndarray, features: list[str] | None
) -> str:
    """CSV text: ``t`` ``(n,)``, ``truth`` and ``pred`` ``(n, F)``; NaN as an empty cell.
    Columns ``t,truth,prediction``; for F > 1 ``truth_<feature>``, ... (:func:`_feature_tags`)."""
    tags = _feature_tags(features, truth.shape[1])
    names = (
        ["truth", "prediction"]
        if len(tags) == 1
        else [f"{kind}_{tag}" for kind in ("truth", "prediction") for tag in tags]
    )
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["t", *names])
    for i in range(len(t)):
        cells = [repr(float(v)) if np.isfinite(v) else "" for v in (*truth[i], *pred[i])]
        writer.writerow([int(t[i]), *cells])
    return buf.getvalue()
