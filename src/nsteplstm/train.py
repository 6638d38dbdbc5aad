"""Training: Adam on one mean squared error per batch, checkpoints, resume, signals.

:func:`train` is the whole run (data, model, epochs, run directory). Its building
blocks are public for benchmarks and notebooks: :func:`prepare_data` (tensors on the
device, once per run), :func:`make_optimizer`, :func:`train_epoch`, :func:`evaluate`.

Batches are windows ``(S, B, F)`` taken time-major from tensors converted once, fed
to :meth:`Forecaster.forward_packed` as one packed batch: a dense layout when every
sequence has S steps, otherwise variable lengths, sorted by decreasing length,
without padding. Series data (fibonacci, sine, csv) is sequence-to-sequence: the
loss is the mean squared error over every step of every sequence. The adding
problem is sequence-to-one: the loss is on each sequence's last output only.

Determinism: :func:`seed_everything` seeds torch (weights, dropout) and a
``numpy.random.default_rng(config.seed)`` draws each epoch's permutation (and the
window lengths with ``min_length``), so on the CPU a seed gives the same history
bit for bit, and a resumed run ends exactly as an uninterrupted one. A run resumed
on another device draws its dropout masks from that device's generator from then on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from . import runs
from .config import COMMAND_LINE, Config, absolute_data, is_csv_data
from .data import (
    AddingDataset,
    Dataset,
    load_adding,
    load_dataset,
    random_lengths,
    source_digest,
    training_rows,
)
from .device import (
    check_memory,
    cuda_peak_memory_mib,
    peak_memory_mib,
    resolve_device,
    seed_everything,
    torch_settings_kept,
)
from .errors import InputError, check_bool, gib, is_finite_number, is_int
from .model import Forecaster, lstm_weight_count
from .packing import PackedLayout

EVAL_ROWS = 65536  # packed rows per evaluation batch (memory ~ rows * 4 * n_hidden floats)


class Interrupted(Exception):
    """Training stopped by a signal after writing a checkpoint to ``run_dir``, or, with
    ``kept``, before replacing the old run in ``kept``; ``exit_code`` is 128 + signum.
    ``text``, when given, is the message (a caller that knows more, such as the demo)."""

    def __init__(
        self,
        signum: int,
        run_dir: str | Path | None = None,
        kept: str | Path | None = None,
        text: str | None = None,
    ) -> None:
        self.signum = int(signum)
        self.exit_code = 128 + self.signum
        self.run_dir = run_dir
        self.signal_name = signal.Signals(self.signum).name
        where = f"; resume with: {resume_command(run_dir)}" if run_dir is not None else ""
        if kept is not None:
            where = f" before the new run's first checkpoint; {kept} keeps the old run"
        super().__init__(text or f"training interrupted by {self.signal_name}{where}")


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or infinite at ``epoch`` (1-based), ``batch`` (1-based, or
    ``"validation"``). ``checkpoint``: whether the run has a checkpoint, which is kept
    (:func:`train` sets it); ``grad_clip``: the run's clipping, which the hint names.
    The CLI exits with code 1."""

    def __init__(
        self,
        epoch: int,
        batch: int | str,
        value: float,
        n_batches: int = 0,
        grad_clip: float = 0.0,
    ) -> None:
        self.epoch, self.batch, self.value = epoch, batch, value
        self.where = f"batch {batch} of {n_batches}" if isinstance(batch, int) else str(batch)
        self.checkpoint = True
        self.grad_clip = grad_clip
        super().__init__(epoch, batch, value, n_batches, grad_clip)

    def __str__(self) -> str:
        kept = "the last good checkpoint is kept" if self.checkpoint else "nothing was written"
        clip = f"below {self.grad_clip:g}" if self.grad_clip > 0 else "> 0"
        return (
            f"non-finite loss ({self.value}) at epoch {self.epoch}, {self.where}; {kept} "
            f"(try a lower --lr or a --grad-clip {clip})"
        )


def resume_command(run_dir: str | Path | None) -> str:
    """The command line that resumes the run in ``run_dir``."""
    return f"nsteplstm train --resume {runs.command_path(run_dir)}"


@dataclass
class TrainResult:
    """What :func:`train` returns: per-epoch history rows, final metrics, run directory,
    whether this call trained (False: a resumed run had finished already), and whether
    it wrote such a run's final files again from its checkpoint (one was missing or
    damaged; the forecasts recorded in a readable metrics.json are kept)."""

    history: list[dict[str, Any]]
    metrics: dict[str, Any]
    path: Path
    trained: bool = True
    rewritten: bool = False


# ---------------------------------------------------------------- data as tensors


@dataclass
class Split:
    """One split as tensors on the training device.

    x: inputs, time-major ``(S, N, F_in)``. y: targets ``(S, N, F_out)`` (series) or
    ``(N, F_out)`` (sequence-to-one). lengths: int64 ``(N,)`` sequence lengths
    (sequence ``n`` is ``x[:lengths[n], n]``), or None when all are S.
    """

    x: Tensor
    y: Tensor
    lengths: np.ndarray | None

    @property
    def size(self) -> int:
        return self.x.shape[1]


@dataclass
class TrainData:
    """A dataset converted once for training: see :func:`prepare_data`.

    last_only: sequence-to-one (adding problem): the loss is on each sequence's last
    step. min_length: training windows get random lengths in [min_length, S] each
    epoch (series data only; the adding problem's lengths are part of its data).
    """

    train: Split
    val: Split
    last_only: bool
    min_length: int | None
    device: torch.device
    _layouts: dict[tuple[int, int], tuple[PackedLayout, Tensor]] = field(default_factory=dict)

    def dense_layout(self, steps: int, batch: int) -> tuple[PackedLayout, Tensor]:
        """Cached dense layout of ``batch`` sequences of ``steps`` steps, and the packed
        rows ``(batch,)`` of their last steps."""
        key = (steps, batch)
        if key not in self._layouts:
            # Normal tensors even when evaluate() builds them: training saves them too.
            with torch.inference_mode(False):
                layout = PackedLayout.dense(steps, batch, self.device)
                last = torch.arange((steps - 1) * batch, steps * batch, device=self.device)
            self._layouts[key] = (layout, last)
        return self._layouts[key]

    def batch(
        self, split: Split, index: np.ndarray, lengths: np.ndarray | None
    ) -> tuple[Tensor, Tensor, PackedLayout]:
        """Packed inputs ``(N, F_in)``, targets ``(N, F_out)`` (or ``(B, F_out)`` when
        last_only) and the layout of the windows ``index`` (cut to ``lengths[index]``).

        The predictions to compare with the targets are ``forward_packed`` rows
        (all of them, or the last step of each sequence when last_only).
        """
        steps = split.x.shape[0]
        if lengths is not None:
            lengths = lengths[index]
            if bool((lengths == lengths[0]).all()):  # one length: a dense batch
                steps, lengths = int(lengths[0]), None
        if lengths is None:
            # From pageable memory CUDA may still wait for the stream: not pinned, as
            # pinning a few hundred bytes per batch costs more than it saves.
            idx = torch.from_numpy(index).to(self.device, non_blocking=True)  # (B,)
            layout, _ = self.dense_layout(steps, len(index))
            x = split.x[:steps].index_select(1, idx).view(steps * len(index), -1)  # (S*B, F_in)
            if self.last_only:
                return x, split.y.index_select(0, idx), layout  # y: (B, F_out)
            y = split.y[:steps].index_select(1, idx).view(steps * len(index), -1)  # (S*B, F_out)
            return x, y, layout
        order = np.argsort(-lengths, kind="stable")  # decreasing length: layout in sorted order
        index, lengths = index[order], lengths[order]
        longest = int(lengths[0])
        valid = np.arange(longest)[:, None] < lengths[None, :]  # (T, B), packed order
        rows = torch.from_numpy(np.flatnonzero(valid)).to(self.device, non_blocking=True)  # (N,)
        idx = torch.from_numpy(index).to(self.device, non_blocking=True)  # (B,)
        layout = PackedLayout(lengths.tolist(), self.device)
        x = split.x[:longest].index_select(1, idx).flatten(0, 1).index_select(0, rows)  # (N, F_in)
        if self.last_only:
            return x, split.y.index_select(0, idx), layout  # y: (B, F_out)
        y = split.y[:longest].index_select(1, idx).flatten(0, 1).index_select(0, rows)  # (N, F_out)
        return x, y, layout

    def last_rows(self, layout: PackedLayout) -> Tensor:
        """Packed rows ``(B,)`` of each sequence's last step, for a layout made by
        :meth:`batch` (sorted by decreasing length)."""
        if layout.is_dense:
            return self.dense_layout(layout.max_length, layout.batch)[1]
        return layout.last_rows


def _time_major(a: np.ndarray, device: torch.device) -> Tensor:
    """float32 (N, S, F) numpy -> contiguous (S, N, F) tensor on ``device``."""
    t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    return t.to(device).transpose(0, 1).contiguous()


def _adding_split(xs: list[np.ndarray], y: np.ndarray, device: torch.device) -> Split:
    lengths = np.array([len(x) for x in xs], dtype=np.int64)
    steps, features = int(lengths.max()), xs[0].shape[1]
    padded = np.zeros((len(xs), steps, features), dtype=np.float32)  # tail never read
    for n, x in enumerate(xs):
        padded[n, : len(x)] = x
    target = torch.from_numpy(np.asarray(y, dtype=np.float32).reshape(len(xs), -1)).to(device)
    same = bool((lengths == steps).all())
    return Split(_time_major(padded, device), target, None if same else lengths)


def prepare_data(
    dataset: Dataset | AddingDataset, config: Config, device: torch.device | str = "cpu"
) -> TrainData:
    """Convert a dataset to tensors on ``device`` once, for :func:`train_epoch` and
    :func:`evaluate` (which accept the raw dataset too, converting on every call)."""
    device = torch.device(device)
    if isinstance(dataset, AddingDataset):
        train = _adding_split(dataset.train_x, dataset.train_y, device)
        val = _adding_split(dataset.val_x, dataset.val_y, device)
        return TrainData(train, val, True, None, device)
    train = Split(_time_major(dataset.train_x, device), _time_major(dataset.train_y, device), None)
    val = Split(_time_major(dataset.val_x, device), _time_major(dataset.val_y, device), None)
    return TrainData(train, val, False, config.min_length, device)


def _as_data(
    dataset: Dataset | AddingDataset | TrainData, config: Config, model: Forecaster
) -> TrainData:
    """``dataset`` as TrainData on the model's device; InputError unless the model
    predicts as many features as the targets hold (the loss would broadcast)."""
    weight = next(model.parameters())
    if weight.dtype != torch.float32:
        raise InputError(
            f"training and evaluation run float32 models (the data is prepared in float32), "
            f"got a {weight.dtype} model: call .float() on it"
        )
    data = dataset
    if not isinstance(data, TrainData):
        data = prepare_data(data, config, weight.device)
    n_out, features = model.config["n_out"], data.val.y.shape[-1]
    if n_out != features:
        raise InputError(f"the model has n_out = {n_out}, the data's targets {features} features")
    return data


def training_memory(config: Config, dataset: Dataset | AddingDataset) -> dict[str, int]:
    """A lower bound of the memory CPU training takes, in bytes, by part.

    - ``parameters``: 6 float32 per weight: the weights, their gradients, Adam's two
      moments, and the copies of weights and gradients that oneDNN's fused LSTM makes
      in its own layout (the step-wise cell takes more for its per-step graph);
    - ``data``: the dataset's arrays and the tensors :func:`prepare_data` copies them to;
    - ``activations``: what one batch keeps for its backward pass, at least the four
      gates, ``c`` and ``h`` of every layer and step: ``L * S * B * 6H`` float32.

    ``nsteplstm train`` peaked at 1.8 to 2.5 times this sum (whole process, hidden 1500
    to 3000, 1 to 3 layers; ``tests/test_train.py`` checks one such run).
    """
    n_hidden, n_out = config.n_hidden, config.n_out
    weights = lstm_weight_count(config.n_layers, config.n_in, n_hidden) + n_hidden * n_out + n_out
    if isinstance(dataset, AddingDataset):
        arrays = [*dataset.train_x, *dataset.val_x, dataset.train_y, dataset.val_y]
    else:
        arrays = [dataset.train_x, dataset.train_y, dataset.val_x, dataset.val_y]
    steps, batch = config.sequence_size, min(config.batch_size, len(dataset.train_x))
    per_step = 6 * config.n_layers * n_hidden * batch  # float32
    return {
        "parameters": 4 * 6 * weights,
        "data": 2 * sum(a.nbytes for a in arrays),
        "activations": 4 * per_step * steps,
    }


def _check_memory(config: Config, dataset: Dataset | AddingDataset) -> None:
    """:class:`InputError` when CPU training would surely exceed this machine's memory
    (:func:`training_memory`): better than the kernel's out-of-memory killer, which
    ends the process without a word. (CUDA reports out-of-memory as an error.)"""
    parts = training_memory(config, dataset)
    check_memory(
        sum(parts.values()),
        f"training needs at least {gib(sum(parts.values()))} (weights, gradients, "
        f"Adam's moments {gib(parts['parameters'])}, data {gib(parts['data'])}, one batch's "
        f"LSTM activations {gib(parts['activations'])})",
        "; smaller n_hidden, n_layers, batch_size, sequence_size or total_size need less",
    )


def load_data(config: Config) -> Dataset | AddingDataset:
    """The dataset ``config.data`` names (the adding problem or a series)."""
    return load_adding(config) if config.data == "adding" else load_dataset(config)


# ---------------------------------------------------------------- epochs


def make_model(config: Config, cell: str | None = None) -> Forecaster:
    """The :class:`Forecaster` that ``config`` describes (``cell``, if given, in place of
    ``config.cell``), on the CPU, freshly initialised from torch's generator."""
    return Forecaster(
        config.n_layers,
        config.n_in,
        config.n_hidden,
        config.n_out,
        config.dropout,
        config.cell if cell is None else cell,
    )


def make_optimizer(model: torch.nn.Module, config: Config) -> torch.optim.Adam:
    """Adam with learning rate ``config.lr`` and torch's defaults otherwise, in its
    fused implementation (one kernel per parameter instead of about ten operations)
    where torch has one for the parameters' device (on the CPU since torch 2.4), else
    the default implementation.

    Measured on the CPU with the article's model: 0.1 against 0.3 ms per step, whole
    epochs 4% faster at one layer and 1% at three (more with short windows). Its results
    differ from the default implementation's by float32 rounding (about 1e-8 per
    step); a seed still gives the same run.
    """
    params = list(model.parameters())
    try:
        return torch.optim.Adam(params, lr=config.lr, fused=True)
    except RuntimeError:  # no fused Adam for this device in this torch
        return torch.optim.Adam(params, lr=config.lr)


def clip_grad_norm(params: list[torch.nn.Parameter], max_norm: float) -> None:
    """Scale the gradients of ``params`` in place by ``min(1, max_norm / (norm + 1e-6))``,
    ``norm`` the 2-norm of all of them together: ``torch.nn.utils.clip_grad_norm_``,
    with the same numbers bit for bit.

    On the CPU it is computed here: torch's spends about 0.1 ms more per call on
    grouping tensors by device (1 to 2% of a training epoch on short windows), and
    reading the factor on the host costs nothing there, so gradients are multiplied
    only when the factor is below 1. Elsewhere torch's (no host synchronisation).
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads or grads[0].device.type != "cpu":
        torch.nn.utils.clip_grad_norm_(params, max_norm)
        return
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))  # ()
    factor = max_norm / (norm + 1e-6)  # 0-d tensor
    if not factor >= 1:  # below 1, or NaN from a non-finite norm (torch multiplies by it too)
        for g in grads:
            g.mul_(factor)


@dataclass
class _Plan:
    """One epoch's order of training windows, its batches and (optionally) lengths."""

    order: np.ndarray  # (N,) int64 window indices
    lengths: np.ndarray | None  # (N,) per window id, or None (all full length)
    bounds: np.ndarray  # (n_batches + 1,) batch b is order[bounds[b]:bounds[b + 1]]

    @property
    def n_batches(self) -> int:
        return len(self.bounds) - 1

    def index(self, b: int) -> np.ndarray:
        return self.order[self.bounds[b] : self.bounds[b + 1]]


def _plan(data: TrainData, config: Config, rng: np.random.Generator) -> _Plan:
    """Draw the epoch's permutation, then (with min_length) the window lengths
    (:func:`nsteplstm.data.random_lengths`: the same count of each length every
    epoch, so the batches below keep the same shapes).

    With lengths that differ, batches are bucketed by length: the shuffled windows
    are sorted by length (stable, so ties stay shuffled), cut by
    :func:`length_batches`, and the batches shuffled. A batch then holds windows of
    one length where there are enough of them (one fused kernel call, no padding),
    while every epoch still sees the windows in a new random order.
    """
    n = data.train.size
    order = rng.permutation(n)
    lengths = data.train.lengths
    if data.min_length is not None and not data.last_only:
        lengths = random_lengths(n, data.min_length, data.train.x.shape[0], rng)
    if lengths is None:
        return _Plan(order, None, np.r_[0 : n : config.batch_size, n])
    order = order[np.argsort(lengths[order], kind="stable")]
    bounds = length_batches(lengths[order], config.batch_size)
    batches = [order[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    batches = [batches[k] for k in rng.permutation(len(batches))]
    sizes = np.array([len(batch) for batch in batches])
    return _Plan(np.concatenate(batches), lengths, np.r_[0, np.cumsum(sizes)])


def length_batches(sorted_lengths: np.ndarray, size: int) -> np.ndarray:
    """Cut points ``(n_batches + 1,)`` of windows sorted by length into batches of at
    most ``size``: a run of one length longer than ``size`` is split into equal
    parts; shorter runs share a batch with their neighbours while they fit, and a
    batch under half of ``size`` is filled up from the next run instead of closed."""
    _, runs = np.unique(sorted_lengths, return_counts=True)
    bounds, start, end = [0], 0, 0  # the open batch is [start, end)
    for run in runs.tolist():
        if end > start and end - start + run > size:
            if end - start < size // 2:
                take = size - (end - start)
                end, run = end + take, run - take
            bounds.append(end)
            start = end
        if run > size:
            parts = -(-run // size)
            bounds += [end + run * k // parts for k in range(1, parts + 1)]
            start = end + run
        end += run
    if end > start:
        bounds.append(end)
    return np.array(bounds)


class _Totals:
    """Running sums of an epoch: loss * elements and elements."""

    def __init__(self, loss_sum: float = 0.0, count: int = 0) -> None:
        self.loss_sum, self.count = loss_sum, count

    @property
    def mean(self) -> float:
        return self.loss_sum / self.count if self.count else math.nan


def _run_batches(
    model: Forecaster,
    optimizer: torch.optim.Optimizer,
    data: TrainData,
    config: Config,
    plan: _Plan,
    epoch: int,
    start: int,
    totals: _Totals,
    stop: Callable[[], bool] | None = None,
    report: Callable[[int, int, float], None] | None = None,
) -> int:
    """Train on batches ``start..`` of ``plan``; return how many batches are done
    (all, unless ``stop()`` turned true after one). Raises NonFiniteLoss."""
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    n_batches = plan.n_batches
    for b in range(start, n_batches):
        x, y, layout = data.batch(data.train, plan.index(b), plan.lengths)
        out = model.forward_packed(x, layout)  # (N, n_out)
        if data.last_only:
            out = out.index_select(0, data.last_rows(layout))  # (B, n_out)
        loss = F.mse_loss(out, y)
        for p in params:  # optimizer.zero_grad(set_to_none=True), without its hooks' cost
            p.grad = None
        loss.backward()
        if config.grad_clip > 0:
            clip_grad_norm(params, config.grad_clip)
        value = loss.item()  # once the backward is queued: a GPU waits for no host sync
        if not math.isfinite(value):  # before the update: the weights stay finite
            raise NonFiniteLoss(epoch, b + 1, value, n_batches, config.grad_clip)
        optimizer.step()
        totals.loss_sum += value * y.numel()
        totals.count += y.numel()
        if report is not None:
            report(b + 1, n_batches, totals.mean)
        if stop is not None and stop() and b + 1 < n_batches:
            return b + 1
    return n_batches


def train_epoch(
    model: Forecaster,
    optimizer: torch.optim.Optimizer,
    dataset: Dataset | AddingDataset | TrainData,
    config: Config,
    rng: np.random.Generator,
    *,
    epoch: int = 1,
) -> float:
    """One pass over the training windows in an order drawn from ``rng``.

    Returns the mean squared error of the epoch: every batch's loss weighted by its
    number of target elements (so the mean over all elements seen). ``epoch`` only
    names the epoch in a :class:`NonFiniteLoss`. Pass :func:`prepare_data`'s result
    to avoid converting the dataset on every call.
    """
    data = _as_data(dataset, config, model)
    totals = _Totals()
    _run_batches(model, optimizer, data, config, _plan(data, config, rng), epoch, 0, totals)
    return totals.mean


def evaluate(
    model: Forecaster, dataset: Dataset | AddingDataset | TrainData, config: Config
) -> float:
    """Mean squared error over the whole validation split, in eval mode (no dropout),
    without gradients, in batches of about ``EVAL_ROWS`` packed rows."""
    data = _as_data(dataset, config, model)
    split = data.val
    chunk = max(1, EVAL_ROWS // split.x.shape[0])
    was_training = model.training
    model.eval()
    sse = torch.zeros((), dtype=torch.float64, device=data.device)
    count = 0
    try:
        with torch.inference_mode():
            for start in range(0, split.size, chunk):
                index = np.arange(start, min(start + chunk, split.size))
                x, y, layout = data.batch(split, index, split.lengths)
                out = model.forward_packed(x, layout)  # (N, n_out)
                if data.last_only:
                    out = out.index_select(0, data.last_rows(layout))  # (B, n_out)
                sse += torch.sum((out - y).double() ** 2)
                count += y.numel()
    finally:
        model.train(was_training)
    return float(sse.item() / count)


# ---------------------------------------------------------------- progress


class Progress(Protocol):
    """What :func:`train` reports to: one call per batch and one per epoch."""

    def batch(self, epoch: int, epochs: int, batch: int, n_batches: int, loss: float) -> None: ...

    def epoch(self, epoch: int, epochs: int, train_loss: float, val_loss: float) -> None: ...

    def close(self) -> None: ...


class ProgressBar:
    """A one-line progress bar on a terminal stream (epoch, batch, running loss)."""

    def __init__(self, stream: Any = None, width: int = 24, interval: float = 0.1) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.width, self.interval = width, interval
        self._last = 0.0
        self._open = False

    def _write(self, text: str) -> None:
        self.stream.write("\r" + text + "\x1b[K")
        self.stream.flush()
        self._open = True

    def batch(self, epoch: int, epochs: int, batch: int, n_batches: int, loss: float) -> None:
        now = time.monotonic()
        if batch < n_batches and now - self._last < self.interval:
            return
        self._last = now
        filled = self.width * batch // n_batches
        bar = "#" * filled + "." * (self.width - filled)
        self._write(f"epoch {epoch}/{epochs} [{bar}] batch {batch}/{n_batches} loss {loss:.4g}")

    def epoch(self, epoch: int, epochs: int, train_loss: float, val_loss: float) -> None:
        self._write(f"epoch {epoch}/{epochs} train loss {train_loss:.4g} val loss {val_loss:.4g}")
        self.stream.write("\n")
        self._open = False

    def close(self) -> None:
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False


class _NoProgress:
    def batch(self, epoch: int, epochs: int, batch: int, n_batches: int, loss: float) -> None:
        pass

    def epoch(self, epoch: int, epochs: int, train_loss: float, val_loss: float) -> None:
        pass

    def close(self) -> None:
        pass


# ---------------------------------------------------------------- signals


class _StopFlag:
    """Set by the signal handler; a second signal abandons at once."""

    def __init__(self, run_dir: Path) -> None:
        self.signum: int | None = None
        self.run_dir = run_dir

    def __call__(self) -> bool:
        return self.signum is not None

    def handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise Interrupted(signum, self.run_dir)
        self.signum = signum


@contextlib.contextmanager
def _signal_guard(run_dir: Path) -> Iterator[_StopFlag]:
    """SIGINT/SIGTERM set a stop flag while inside; the previous handlers come back after."""
    flag = _StopFlag(run_dir)
    previous: dict[int, Any] = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, flag.handle)
    except ValueError:  # not the main thread: leave signals alone
        pass
    try:
        yield flag
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# ---------------------------------------------------------------- checkpoint state


def _rows(rows: Any) -> list[dict[str, Any]]:
    return [dict(row) for row in rows]


def _float_or_none(x: Any) -> float | None:
    return None if x is None else float(x)


@dataclass
class _State:
    """Everything besides tensors that a resumed run needs, JSON-able.

    A checkpoint's document holds the fields in this order under their names (see
    :func:`_checkpoint`), ``epoch_rng`` as ``rng.shuffle``. :func:`_state_from` reads
    each back with its ``read`` (metadata); a field without one is taken as stored,
    None where the document lacks it.
    """

    epoch: int = field(default=0, metadata={"read": int})  # finished epochs
    batch: int = field(default=0, metadata={"read": int})  # batches done of epoch + 1
    loss_sum: float = field(default=0.0, metadata={"read": float})
    loss_count: int = field(default=0, metadata={"read": int})
    epoch_seconds: float = field(default=0.0, metadata={"read": float})
    history: list[dict[str, Any]] = field(default_factory=list, metadata={"read": _rows})
    best_epoch: int = field(default=0, metadata={"read": int})
    best_val_loss: float | None = field(default=None, metadata={"read": _float_or_none})
    peak_rss_mib_epoch1: float | None = None
    epoch_rng: dict[str, Any] | None = None  # the shuffle generator at the epoch's start


def _rng_states(device: torch.device) -> dict[str, Any]:
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    states: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy_global": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state().tolist(),
        "cuda": None,
    }
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device).tolist()
    return states


def _restore_rngs(states: Any, device: torch.device, source: Path) -> None:
    try:
        version, internal, gauss = states["python"]
        random.setstate((version, tuple(internal), gauss))
        name, keys, pos, has_gauss, cached = states["numpy_global"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
        torch.set_rng_state(torch.tensor(states["torch"], dtype=torch.uint8))
        if device.type == "cuda" and states.get("cuda") is not None:
            torch.cuda.set_rng_state(torch.tensor(states["cuda"], dtype=torch.uint8), device)
    except (TypeError, ValueError, KeyError, RuntimeError, OverflowError):
        raise InputError(f"{source}: the random generator states are malformed") from None


def _checkpoint(
    model: Forecaster,
    optimizer: torch.optim.Optimizer,
    state: _State,
    best: dict[str, Tensor] | None,
    device: torch.device,
) -> runs.Checkpoint:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    if best is not None:
        tensors.update({f"best.{k}": v for k, v in best.items()})
    for i, param_state in optimizer.state_dict()["state"].items():
        tensors.update({f"optim.{i}.{k}": v for k, v in param_state.items()})
    doc = {f.name: getattr(state, f.name) for f in dataclasses.fields(state)}
    doc["rng"] = {**_rng_states(device), "shuffle": doc.pop("epoch_rng")}
    return runs.Checkpoint(tensors, doc)


def _expected_tensors(
    model: Forecaster, optimizer: torch.optim.Optimizer, with_best: bool, with_optim: bool
) -> dict[str, Tensor]:
    weights = {k: v.cpu() for k, v in model.state_dict().items()}
    expected = {f"model.{k}": v for k, v in weights.items()}
    if with_best:
        expected.update({f"best.{k}": v for k, v in weights.items()})
    if with_optim:
        for i, p in enumerate(optimizer.param_groups[0]["params"]):
            expected[f"optim.{i}.step"] = torch.zeros((), dtype=torch.float32)
            expected[f"optim.{i}.exp_avg"] = p.detach().cpu()
            expected[f"optim.{i}.exp_avg_sq"] = p.detach().cpu()
    return expected


def _state_from(doc: Mapping[str, Any]) -> _State:
    """The :class:`_State` a checkpoint's document holds, unchecked; KeyError,
    TypeError or ValueError where an entry is missing or does not convert."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(_State):
        if f.name == "epoch_rng":
            values[f.name] = doc["rng"]["shuffle"]
        elif "read" in f.metadata:
            values[f.name] = f.metadata["read"](doc[f.name])
        else:
            values[f.name] = doc.get(f.name)
    return _State(**values)


def _read_state(doc: Mapping[str, Any], config: Config, source: Path) -> _State:
    """The state in the document of checkpoint ``source``; InputError unless its
    numbers are sane and it fits a run of ``config.epochs`` epochs."""
    try:
        state = _state_from(doc)
        counts = [doc["epoch"], doc["batch"], doc["loss_count"], doc["best_epoch"]]
        numbers = [state.loss_sum, state.best_val_loss or 0.0, state.peak_rss_mib_epoch1 or 0.0]
        seconds = [state.epoch_seconds]
        for k, row in enumerate(state.history, start=1):
            if set(row) != set(runs.HISTORY_FIELDS) or row["epoch"] != k:
                raise ValueError
            counts.append(row["epoch"])
            numbers += [row["train_loss"], row["val_loss"]]
            seconds.append(row["seconds"])
        if not all(is_int(n) and 0 <= n < 2**63 for n in counts):  # 10**400 overflows a mean
            raise ValueError
        if not all(is_finite_number(x) and x >= 0 for x in numbers):
            raise ValueError
        if not all(is_finite_number(x) and 0 <= x < 1e9 for x in seconds):  # sums stay finite
            raise ValueError
    except (KeyError, TypeError, ValueError):
        raise InputError(
            f"{source}: malformed checkpoint (bad or missing entries: counts must be integers "
            "in [0, 2**63), losses and seconds finite numbers >= 0)"
        ) from None
    if state.epoch > config.epochs or len(state.history) != state.epoch:
        raise InputError(
            f"{source}: checkpoint at epoch {state.epoch} with {len(state.history)} history "
            f"rows does not fit a run of {config.epochs} epochs"
        )
    if state.best_epoch > state.epoch or (state.best_epoch == 0) != (state.best_val_loss is None):
        raise InputError(
            f"{source}: best_epoch {state.best_epoch} with best_val_loss "
            f"{state.best_val_loss} does not fit a checkpoint at epoch {state.epoch}"
        )
    return state


def _load_tensors(
    run_dir: Path,
    ckpt: runs.Checkpoint,
    model: Forecaster,
    optimizer: torch.optim.Optimizer,
    with_best: bool,
    device: torch.device,
) -> dict[str, Tensor] | None:
    """Check a checkpoint's tensors against the model and optimizer (``with_best``:
    it must hold best weights) and load them; return the best weights on ``device``."""
    with_optim = any(k.startswith("optim.") for k in ckpt.tensors)
    runs.check_checkpoint_tensors(
        run_dir, ckpt, _expected_tensors(model, optimizer, with_best, with_optim)
    )
    t = ckpt.tensors
    model.load_state_dict({k[6:]: v for k, v in t.items() if k.startswith("model.")})
    best = {k[5:]: v.to(device) for k, v in t.items() if k.startswith("best.")} or None
    opt = optimizer.state_dict()
    if with_optim:
        opt["state"] = {
            i: {name: t[f"optim.{i}.{name}"] for name in ("step", "exp_avg", "exp_avg_sq")}
            for i in range(len(opt["param_groups"][0]["params"]))
        }
        optimizer.load_state_dict(opt)
    return best


def _restore(
    run_dir: Path,
    ckpt: runs.Checkpoint,
    model: Forecaster,
    optimizer: torch.optim.Optimizer,
    rng: np.random.Generator,
    config: Config,
    device: torch.device,
) -> tuple[_State, dict[str, Tensor] | None]:
    """Load a checkpoint into model, optimizer and generators; return state and best weights."""
    source = run_dir / runs.CHECKPOINT_FILE
    state = _read_state(ckpt.state, config, source)
    with_best = config.keep_best and state.best_epoch > 0
    best = _load_tensors(run_dir, ckpt, model, optimizer, with_best, device)
    _restore_rngs(ckpt.state["rng"], device, source)
    if state.epoch_rng is not None or state.batch > 0:  # mid-epoch: the epoch's plan needs it
        try:
            rng.bit_generator.state = state.epoch_rng
        except (TypeError, ValueError, KeyError, OverflowError):
            raise InputError(f"{source}: the shuffle generator state is malformed") from None
    return state, best


# ---------------------------------------------------------------- the run


def _resume_config(
    saved: Config, given: Config | Mapping[str, Any] | None, run_dir: Path
) -> Config:
    """The saved config; a given one must match it, except in the device and in the
    place of a CSV file (checked to be the same file by the caller). ``given`` as a
    mapping holds only the settings the user named; the others are the run's own."""
    if given is None:
        return saved
    if not isinstance(given, (Config, Mapping)):
        raise InputError(f"train: config must be a Config or a mapping, got {given!r:.60}")
    if isinstance(given, Mapping):
        named = {key: value for key, value in given.items() if value is not None}  # as merged
        check_resume_settings(saved, [("settings", named)], run_dir)
        given = Config.merged(
            saved.to_dict(),
            given,
            toml_source=str(run_dir / runs.CONFIG_FILE),
            overrides_source="settings",  # of a Python call: the command line gives a Config
            stored=True,
        )
    _refuse_differences(saved, given.to_dict(), run_dir)
    return dataclasses.replace(saved, device=given.device, data=absolute_data(given.data))


def check_resume_settings(
    saved: Config, given: Sequence[tuple[str, Mapping[str, Any]]], run_dir: Path
) -> None:
    """InputError unless the settings given to resume the run in ``run_dir`` (``saved``,
    its config) are its own, but for the device and a CSV file's place: checked before
    they are merged with the run's, whose checks of settings together would blame the
    run's config.json for a setting the user changed (its CSV columns for ``--data sine``).

    ``given``: (source, settings) pairs, later ones over earlier ones, each source named
    in the errors as :meth:`Config.merged` names it (``"command line"``, a TOML file,
    ``"settings"`` of a Python call). Each setting is first checked alone (a known key,
    of its type and in its own range: ``--epochs 0`` says so, not that it differs), then
    whether it applies to the data resumed with (``--period`` or ``--csv-columns`` to a
    Fibonacci run).
    """
    for source, settings in given:
        saved.check_alone(settings, source)
    named = {key: value for _, settings in given for key, value in settings.items()}
    resumed_with = dataclasses.replace(saved, **named)  # as given: for its data, as named
    for source, settings in given:
        file = "" if source in (COMMAND_LINE, "settings") else source  # "remove it from" it
        resumed_with.check_data_settings(settings.keys(), dict.fromkeys(settings, source), file)
    as_stored = {key: list(v) if isinstance(v, tuple) else v for key, v in named.items()}
    _refuse_differences(saved, {**saved.to_dict(), **as_stored}, run_dir)


def _refuse_differences(saved: Config, given: dict[str, Any], run_dir: Path) -> None:
    """InputError naming the settings (up to three) in which ``given`` (a
    :meth:`Config.to_dict`) differs from the run's ``saved`` config; the device and,
    where both are CSV files, the data file's place may differ."""
    a, b = saved.to_dict(), dict(given)
    a["data"], b["data"] = absolute_data(a["data"]), absolute_data(b["data"])  # as stored
    moved = bool(saved.csv_path) and is_csv_data(b["data"])
    may_differ = {"device"} | ({"data"} if moved else set())
    differ = [k for k in a if k not in may_differ and a[k] != b[k]]
    if differ:
        shown = ", ".join(f"{k} (run: {a[k]!r}, given: {b[k]!r})" for k in differ[:3])
        raise InputError(
            f"{run_dir}: --resume continues the run with its own settings; these differ: {shown}"
        )


def _finished_metrics(run_dir: Path) -> dict[str, Any] | None:
    """The metrics of a finished run whose final files all read back; None when one is
    missing or damaged, and the run's checkpoint is to write them again."""
    try:
        runs.load_model(run_dir)
        runs.read_history(run_dir)
        metrics = runs.read_metrics(run_dir)
    except InputError:
        return None
    losses = [metrics.get(k) for k in ("train_loss", "val_loss", "seconds")]
    return metrics if all(is_finite_number(x) for x in losses) else None


def _final_metrics(
    config: Config,
    state: _State,
    dataset: Dataset | AddingDataset,
    final_val: float,
    device: torch.device,
) -> dict[str, Any]:
    last = state.history[-1]
    kept = last
    if config.keep_best:  # the losses beside the weights are the kept epoch's
        kept = next((r for r in state.history if r["epoch"] == state.best_epoch), last)
    seconds = sum(row["seconds"] for row in state.history)
    metrics: dict[str, Any] = {
        "epochs": len(state.history),
        "train_loss": kept["train_loss"],
        "val_loss": final_val,
        "last_train_loss": last["train_loss"],
        "last_val_loss": last["val_loss"],
        "best_epoch": state.best_epoch,
        "best_val_loss": state.best_val_loss,
        "kept_weights": "best" if config.keep_best else "last",
        "seconds": seconds,
        "seconds_per_epoch": seconds / len(state.history),
        "peak_rss_mib_epoch1": state.peak_rss_mib_epoch1,
        "peak_rss_mib": peak_memory_mib(),
    }
    if device.type == "cuda":
        metrics["cuda_peak_mib"] = cuda_peak_memory_mib(device)
    if isinstance(dataset, Dataset):
        metrics["series"] = len(dataset.series)
        no_train, no_val = dataset.left_out
        metrics["series_without_train_window"] = len(no_train)
        metrics["series_without_val_window"] = len(no_val)
        metrics["series_left_out"] = {"train": no_train, "val": no_val}  # their ids
    if isinstance(dataset, AddingDataset):
        metrics["test_mse"] = final_val
        metrics["baseline_mse"] = float(np.mean((dataset.val_y.astype(np.float64) - 1.0) ** 2))
    return metrics


def train(
    config: Config | Mapping[str, Any] | None,
    out_dir: str | Path,
    *,
    force: bool = False,
    resume: bool = False,
    quiet: bool = False,
    progress: Progress | None = None,
) -> TrainResult:
    """Train a :class:`Forecaster` as ``config`` says and write the run directory.

    ``config``: a :class:`~nsteplstm.config.Config`, or a mapping of the settings that
    differ from its defaults (``{"n_layers": 2, "epochs": 10}``); a setting of another
    kind of data than ``config.data``'s that is not at its default (``period`` for
    Fibonacci, :data:`~nsteplstm.config.DATA_SETTINGS`) is an InputError. Writes ``config.json``
    with the first checkpoint (so a run that fails before it leaves nothing), a
    checkpoint every ``config.checkpoint_every`` epochs (and at the last, or when
    interrupted), then ``model.safetensors``, ``history.csv`` and ``metrics.json``. With
    ``config.keep_best`` the weights of the epoch with the lowest validation loss are
    the ones kept; ``train_loss`` and ``val_loss`` in ``metrics.json`` are that epoch's
    (``last_train_loss``, ``last_val_loss``: the last epoch's). ``resume`` continues
    ``out_dir`` from its checkpoint and ends with the weights and history of an
    uninterrupted run; ``config`` is then None (the run's own), a full Config that must
    match the run's, or a mapping of the settings to check against it (only ``device``
    may differ). A run without a checkpoint restarts from epoch 1 unless it has final
    weights (an imported run, or one whose checkpoint was removed): those are never
    overwritten. A new run checks ``out_dir``, the data and the model before it touches
    ``out_dir`` (with ``force``: before it removes the old run). ``progress`` receives
    per-batch and per-epoch reports; by default a bar on stderr when stdout and stderr
    are terminals and not ``quiet``. It trains under
    :func:`~nsteplstm.device.seed_everything` (``config.seed``); torch's deterministic
    and cuDNN settings are restored when it returns, the random generators are not.

    Raises:
        InputError: a bad run directory, data or checkpoint.
        Interrupted: SIGINT/SIGTERM arrived; a checkpoint was written first (except in
            a ``force`` run before its first checkpoint: the old run is kept as it was).
        NonFiniteLoss: the loss became NaN/inf; the last good checkpoint, if any, is kept.
        InputError also when another process trains into ``out_dir``
            (:class:`nsteplstm.runs.RunLock`).
    """
    force, resume = check_bool("force", force), check_bool("resume", resume)
    quiet = check_bool("quiet", quiet)
    if force and resume:  # it was ignored: the run was resumed
        raise InputError("force (--force) replaces a run, resume (--resume) keeps it: not both")
    lock = runs.RunLock()
    try:
        with torch_settings_kept():  # seed_everything's process-wide settings end here
            return _train(config, out_dir, force, resume, quiet, progress, lock)
    finally:
        lock.release()


def _train(
    config: Config | Mapping[str, Any] | None,
    out_dir: str | Path,
    force: bool,
    resume: bool,
    quiet: bool,
    progress: Progress | None,
    lock: runs.RunLock,
) -> TrainResult:
    """:func:`train` inside its lock and torch settings: set up, restore, train, write."""
    out = runs.run_path(out_dir)
    config, saved_model, checkpoint, moved = _run_config(config, out, force, resume, lock)
    if progress is None:
        # The bar goes to stderr, and only when the user watches: both streams on a terminal.
        watching = sys.stdout.isatty() and sys.stderr.isatty()
        progress = ProgressBar() if not quiet and watching else _NoProgress()
    run = _set_up(config, out, force, resume, lock, progress, saved_model)
    if checkpoint is not None:
        run.state, run.best = _restore(
            out, checkpoint, run.model, run.optimizer, run.rng, config, run.data.device
        )
        run.position = (run.state.epoch, run.state.batch)
    state = run.state
    finished = checkpoint is not None and state.epoch == config.epochs and state.batch == 0
    kept = _finished_metrics(out) if finished else None
    if kept is not None:
        # Nothing to train: keep the run's files (its forecasts in metrics.json too).
        _remove_leftovers(out)  # of a forecast killed while writing, say
        if moved:
            runs.move_data(out, config.data)
        return TrainResult([dict(row) for row in state.history], kept, out, trained=False)
    forecasts = runs.forecast_records(out, _REWRITE_ADVICE) if finished else {}
    if resume:
        if not runs.can_create_in(out):  # found now, not at the next checkpoint
            raise InputError(f"cannot resume {out}: the directory is not writable")
        _remove_leftovers(out)
        if moved:  # every check passed: the run goes on from the file's new place
            runs.move_data(out, config.data)
    _train_epochs(run)
    return _write_results(run, rewritten=finished, forecasts=forecasts)


def _remove_leftovers(run_dir: Path) -> None:
    """Remove the temporary files a process killed while writing ``run_dir`` left in it
    (:func:`nsteplstm.runs.leftover_files`; this process holds the run's lock); one
    that cannot be removed (a read-only directory) stays."""
    for leftover in runs.leftover_files(run_dir):
        with contextlib.suppress(OSError):
            leftover.unlink()


# What to do when a finished run's metrics.json, to be written again, is damaged.
_REWRITE_ADVICE = (
    "writing it again from the checkpoint would drop those records; repair it, or "
    "delete it to resume without them"
)


def _run_config(
    config: Config | Mapping[str, Any] | None,
    out: Path,
    force: bool,
    resume: bool,
    lock: runs.RunLock,
) -> tuple[Config, dict[str, Any] | None, runs.Checkpoint | None, bool]:
    """The run's checked config; with ``resume`` also the saved model arguments, the
    checkpoint (None where there is none) and whether the run's CSV file is to be read
    from a new place (checked to be the same file). Takes ``lock`` on an existing
    ``out``."""
    if resume:
        saved, saved_model, _ = runs.read_config(out)
        config = _resume_config(saved, config, out)
        lock.acquire(out)  # before the checkpoint: another process may be replacing it
        moved = absolute_data(config.data) != absolute_data(saved.data)
        if moved:
            runs.check_same_data(out, source_digest(config), moved_to=config.csv_path)
        elif runs.stored_data_digest(out) is None:  # nothing to check another place by
            runs.check_data_found(config, "put it back there: the run records no SHA-256 of it")
        else:
            where = "with --resume, --data csv:PATH; from Python, data= in config"
            runs.check_data_found(config, f"if it moved, name its new place ({where})")
        checkpoint = _load_checkpoint(out)
        if checkpoint is None and (out / runs.MODEL_FILE).exists():
            raise InputError(
                f"{out}: no {runs.CHECKPOINT_FILE} to resume from, and the run has final "
                f"weights ({runs.MODEL_FILE}); to train it anew: --out {out} --force"
            )
        return config, saved_model, checkpoint, moved
    if not isinstance(config, (Config, Mapping)):
        raise InputError(f"train: config must be a Config or a mapping, got {config!r:.60}")
    # A Config built directly skips the checks of from_dict (ranges, data vs n_in), and
    # keeps the default n_in and n_out where from_dict derives them from the data.
    built = isinstance(config, Config)
    settings = config.changed() if built else config
    if built:  # a field of a Config, not a key to remove
        config.check_data_settings(settings.keys(), {}, fix="leave it at its default")
    config = Config.from_dict(settings, "settings")
    # A full mapping (Config.to_dict()) holds every setting, which from_dict takes as a
    # run's stored ones: those at their defaults say nothing, the others must apply.
    config.check_data_settings(config.changed().keys() & set(settings), {})
    config = dataclasses.replace(config, data=absolute_data(config.data))
    runs.check_run_dir_free(out, force)
    if out.is_dir():  # an old run in it may be in training: fail now, not at the end
        lock.acquire(out)
    return config, None, None, False


def _load_checkpoint(out: Path) -> runs.Checkpoint | None:
    """:func:`nsteplstm.runs.load_checkpoint`; where the checkpoint is damaged, the
    InputError also says what to do: a finished run's final weights serve without it."""
    try:
        return runs.load_checkpoint(out)
    except InputError as e:
        anew = f"to train it anew: nsteplstm train --out {runs.command_path(out)} --force"
        if (out / runs.MODEL_FILE).exists():
            advice = (
                f"the run has final weights ({runs.MODEL_FILE}), which forecast and plot "
                f"use without it (it serves only to resume); {anew}"
            )
        else:
            advice = f"the run cannot go on without it; {anew}"
        raise InputError(f"{e}; {advice}") from None


def _set_up(
    config: Config,
    out: Path,
    force: bool,
    resume: bool,
    lock: runs.RunLock,
    progress: Progress,
    saved_model: dict[str, Any] | None,
) -> _Run:
    """Seed the generators, load and check the data, build the model and optimizer on
    the config's device: the run at epoch 0. A resumed run's model must match
    ``saved_model`` (its config.json's) and its data file must be unchanged."""
    device = resolve_device(config.device)
    seed_everything(config.seed)
    digest = source_digest(config)
    if resume:
        runs.check_same_data(out, digest)
    dataset = load_data(config)
    if device.type == "cpu":
        _check_memory(config, dataset)
    model = make_model(config).to(device)
    if resume and saved_model != model.config:
        raise InputError(f"{out / runs.CONFIG_FILE}: 'model' does not match its 'config'")
    optimizer = make_optimizer(model, config)
    rng = np.random.default_rng(config.seed)
    data = prepare_data(dataset, config, device)
    return _Run(
        out, config, force, resume, lock, progress, dataset, digest, model, optimizer, rng, data
    )


@dataclass
class _Run:
    """A run in training: its parts, its state, and where its checkpoints go."""

    out: Path  # the run directory
    config: Config
    force: bool  # the first checkpoint replaces an old run in out
    dir_ready: bool  # out holds this run (resumed, or since the first checkpoint)
    lock: runs.RunLock
    progress: Progress
    dataset: Dataset | AddingDataset
    digest: str | None  # SHA-256 of the data file, for config.json
    model: Forecaster
    optimizer: torch.optim.Optimizer
    rng: np.random.Generator  # the shuffle generator
    data: TrainData  # on the training device, data.device
    state: _State = field(default_factory=_State)
    best: dict[str, Tensor] | None = None  # the best epoch's weights (with keep_best)
    position: tuple[int, int] | None = None  # (epoch, batch) of the last checkpoint

    def save(self) -> None:
        """Write a checkpoint. The first one creates the run directory and config.json
        with it, all or nothing (with ``force``: replacing the old run): a run that
        fails before or in it (no memory for the first batch, a full disk) leaves the
        old run, or no directory, behind."""
        state = self.state
        if self.position == (state.epoch, state.batch) and self.dir_ready:
            return
        if not self.dir_ready:
            if self.out.is_dir():  # held before its old run's files go
                self.lock.acquire(self.out)
            self.out = runs.prepare_run_dir(self.out, self.force, self._first_checkpoint)
            self.dir_ready = True
        else:
            self._write_checkpoint(self.out)
        self.position = (state.epoch, state.batch)

    def interrupted(self, signum: int | None) -> Interrupted:
        """Save a checkpoint to resume from, unless this is still a ``force`` run that
        has not replaced the old run: a Ctrl-C then cancels, and the old run stays."""
        signum = signum or signal.SIGINT
        if not self.dir_ready and runs.holds_run(self.out):
            return Interrupted(signum, kept=self.out)
        self.save()
        return Interrupted(signum, self.out)

    def _write_checkpoint(self, run_dir: Path) -> None:
        """Write a checkpoint of the run as it stands, and history.csv, into ``run_dir``."""
        ckpt = _checkpoint(self.model, self.optimizer, self.state, self.best, self.data.device)
        runs.save_checkpoint(run_dir, ckpt)
        runs.write_history(run_dir, self.state.history)

    def _first_checkpoint(self, run_dir: Path) -> None:
        """Write config.json and the first checkpoint into the new run directory."""
        self.lock.acquire(run_dir)
        scaler = getattr(self.dataset, "scaler", None)
        header = getattr(self.dataset, "header", None)
        rows = None
        if self.config.csv_path is not None:
            rows = training_rows(self.dataset, self.config.split_rate)
        runs.write_config(
            run_dir, self.config, self.model.config, scaler, self.digest, header, rows
        )
        self._write_checkpoint(run_dir)


def _train_epochs(run: _Run) -> None:
    """Train the epochs after ``run.state.epoch`` up to ``config.epochs``, with a
    checkpoint every ``checkpoint_every`` epochs and at the last. SIGINT or SIGTERM
    stops it after the batch in progress, with a checkpoint (:class:`Interrupted`)."""
    state, config = run.state, run.config
    try:
        with _signal_guard(run.out) as stop:
            for epoch in range(state.epoch + 1, config.epochs + 1):
                train_loss, val_loss = _train_epoch(run, epoch, stop)
                _end_epoch(run, epoch, train_loss, val_loss)
                if stop():
                    raise run.interrupted(stop.signum)
                if epoch % config.checkpoint_every == 0 or epoch == config.epochs:
                    run.save()
    except NonFiniteLoss as e:
        e.checkpoint = run.position is not None
        raise
    finally:
        run.progress.close()


def _train_epoch(run: _Run, epoch: int, stop: _StopFlag) -> tuple[float, float]:
    """Train epoch ``epoch`` (1-based) from batch ``run.state.batch`` on, then validate;
    return its training and validation losses (mean squared errors). Raises
    :class:`Interrupted` when ``stop`` turns true before the last batch."""
    state, config, progress = run.state, run.config, run.progress
    started, base_seconds = time.perf_counter(), state.epoch_seconds
    plan = _epoch_plan(run, epoch)
    totals = _Totals(state.loss_sum, state.loss_count)

    def report(b: int, n: int, loss: float) -> None:
        progress.batch(epoch, config.epochs, b, n, loss)

    done = _run_batches(
        run.model, run.optimizer, run.data, config, plan, epoch, state.batch, totals, stop, report
    )
    state.loss_sum, state.loss_count = totals.loss_sum, totals.count
    state.epoch_seconds = base_seconds + time.perf_counter() - started
    if done < plan.n_batches:
        state.batch = done
        raise run.interrupted(stop.signum)
    val_loss = evaluate(run.model, run.data, config)
    if not math.isfinite(val_loss):
        raise NonFiniteLoss(epoch, "validation", val_loss, grad_clip=config.grad_clip)
    state.epoch_seconds = base_seconds + time.perf_counter() - started
    return totals.mean, val_loss


def _epoch_plan(run: _Run, epoch: int) -> _Plan:
    """Draw epoch ``epoch``'s plan, keeping the shuffle generator's state at its start;
    a mid-epoch resume draws it again from the state the checkpoint kept."""
    state = run.state
    if state.batch == 0:
        state.epoch_rng = run.rng.bit_generator.state
    else:
        run.rng.bit_generator.state = state.epoch_rng
    plan = _plan(run.data, run.config, run.rng)
    if state.batch >= plan.n_batches:
        raise InputError(
            f"{run.out / runs.CHECKPOINT_FILE}: batch {state.batch} of epoch {epoch} "
            f"does not exist (the epoch has {plan.n_batches} batches)"
        )
    return plan


def _end_epoch(run: _Run, epoch: int, train_loss: float, val_loss: float) -> None:
    """Record finished epoch ``epoch``: its history row, the best epoch so far (and its
    weights with ``keep_best``), the state a checkpoint now resumes from; report it."""
    state, config = run.state, run.config
    row = {
        "epoch": epoch,
        "train_loss": train_loss,
        "val_loss": val_loss,
        "seconds": state.epoch_seconds,
    }
    state.history.append(row)
    if state.best_val_loss is None or val_loss < state.best_val_loss:
        state.best_epoch, state.best_val_loss = epoch, val_loss
        if config.keep_best:
            run.best = {k: v.detach().clone() for k, v in run.model.state_dict().items()}
    state.epoch, state.batch = epoch, 0
    state.epoch_rng = run.rng.bit_generator.state  # where the next epoch starts
    state.loss_sum, state.loss_count, state.epoch_seconds = 0.0, 0, 0.0
    if state.peak_rss_mib_epoch1 is None:
        state.peak_rss_mib_epoch1 = peak_memory_mib()
    run.progress.epoch(epoch, config.epochs, train_loss, val_loss)


def _write_results(
    run: _Run, rewritten: bool, forecasts: dict[str, Any] | None = None
) -> TrainResult:
    """Write the final files of a trained run (with ``keep_best``, the best epoch's
    weights). ``rewritten``: a finished run's files written again from its checkpoint;
    the forecasts its metrics.json recorded (``forecasts``, by name) still hold (the
    same weights) and are kept."""
    state, config = run.state, run.config
    if not state.history:  # a resumed run that had already finished has its history
        raise InputError(f"{run.out}: nothing to train (epochs = {config.epochs})")
    if config.keep_best and run.best is not None:
        run.model.load_state_dict(run.best)
    final_val = state.best_val_loss if config.keep_best else state.history[-1]["val_loss"]
    metrics = _final_metrics(config, state, run.dataset, float(final_val), run.data.device)
    if forecasts:
        metrics["forecast"] = forecasts
    runs.write_results(run.out, run.model, state.history, metrics)
    history = [dict(row) for row in state.history]
    return TrainResult(history, metrics, run.out, not rewritten, rewritten)
