"""``nsteplstm bench``: the article's speed comparison, measured side by side.

What is timed, and how:

- **Training epoch.** One *epoch* is one pass over the training windows of the
  article's setup (Fibonacci mod 5, 2000 points, 90% for training: 1770 windows of
  30 steps, 18 batches of at most 100): for every batch the forward pass, the loss,
  the backward pass and the optimizer update. Validation is *not* part of it, for
  every contender alike (Chainer's baseline script times the same thing). Ours is
  :func:`nsteplstm.train.train_epoch`, exactly the code ``nsteplstm train`` runs per
  epoch (including its gradient-norm clipping and per-batch ``loss.item()``).
- **Contenders**, each at 1, 2 and 3 layers: ``step`` and ``nstep`` (ours),
  ``nstep-var`` (ours, training windows cut to random lengths in
  ``[VARIABLE_MIN_LENGTH, 30]``, compared per processed time step), ``plain``
  (:func:`plain_torch_epoch`: a ``torch.nn.LSTM`` loop as a typical user writes it,
  on the same batches), ``plain-var`` (the plain loop on the variable-length
  windows, padded per batch with the loss masked) and, with ``chainer_python``, Chainer 7.8.1's
  ``links.LSTM`` (``chainer-step``) and ``links.NStepLSTM`` (``chainer-nstep``)
  through ``benchmarks/chainer_baseline.py`` in a subprocess.
- **Memory allocator.** The bench calls :func:`nsteplstm.device.tune_malloc` as
  ``nsteplstm train`` does, so ours and ``plain`` share its settings, and Chainer's
  subprocess gets them too. ``plain-default`` is the plain loop in its own process
  with glibc's defaults (one subprocess per turn, like Chainer): what a user's own
  script gets.
- **Interleaving.** Every contender runs one untimed warm-up epoch, then the
  contenders take turns, one timed epoch each per round, for ``repeats`` rounds
  (the starting contender rotates), so a noisy neighbour slows all of them alike.
  Chainer runs one subprocess per turn (its own warm-up epoch, then one timed epoch).
  A contender that fails on its turn (or in its warm-up) is dropped from the rounds
  left and recorded under ``failed``; the others run on (:func:`race`).
- **Roofline.** :func:`epoch_flops` counts the floating-point operations of an
  epoch; :func:`measure_peak` measures the device's best float32 matrix-product
  rate in the same run, before the race and after it (each kernel's best reading;
  where the one after raises, that is recorded under ``failed`` as ``peak`` and the
  one before stands alone). ``roofline = (flops / peak) / seconds``: the share of the
  device's matrix-product limit that a contender reaches (1.0 = at the limit).
- **Forecast throughput** of both modes of :func:`nsteplstm.forecast.forecast`
  against the original's 10.2 s for 121 points (the issue's figure, which the
  targets use) and, with ``chainer_python``, against Chainer's NStepLSTM doing the
  article's closed loop in the same run (:func:`chainer_forecast`); and the **peak
  resident memory** of a ``nsteplstm train`` subprocess. Where either of ours fails,
  it is recorded under ``failed`` as a contender is, and the rest kept.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import operator
import os
import platform
import selectors
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import Tensor, nn

from .config import Config, train_points
from .data import Dataset, load_dataset
from .device import MALLOC_ENV, resolve_device, seed_everything, torch_settings_kept, tune_malloc
from .errors import InputError, check_bool, check_int, is_finite_number, one_line
from .forecast import MODES, ONE_THREAD_STARTS, forecast
from .plots import check_output_file, png_bytes
from .runs import creation_blocker, new_directory, read_metrics, write_files
from .train import TrainData, _plan, make_model, make_optimizer, prepare_data, train_epoch

JSON_FILE, TABLE_FILE, CHART_FILE = "bench.json", "bench.md", "bench.png"
LAYERS, QUICK_LAYERS = (1, 2, 3), (1,)
MAX_REPEATS = 1000  # timed epochs per contender: about 4 hours at 3 layers here
QUICK_TOTAL_SIZE = 500  # points of the series in --quick (5 batches per epoch instead of 18)
VARIABLE_MIN_LENGTH = 10  # nstep-var: window lengths uniform in [10, sequence_size]
ORIGINAL_FORECAST_SECONDS, ORIGINAL_FORECAST_POINTS = 10.2, 121  # the article's predict.py
FORECAST_HORIZON = 120
FORECAST_MANY_STARTS, QUICK_FORECAST_MANY_STARTS = 100, 16
RSS_EPOCHS, QUICK_RSS_EPOCHS = 3, 1
MAX_OUTPUT = 16 * 2**20  # bytes a baseline subprocess may print: its JSON line and warnings
# s a bench subprocess may run: ~60x Chainer's 3-layer warm-up + epoch; a hang costs a race (20 min)
SUBPROCESS_TIMEOUT = 1200
# s more that Chainer's forecast subprocess may run per forecast it times (--repeats of them,
# ~2.1 s each: docs/performance.md), ~5x that; at --repeats 1000, 11,200 s in all (3.1 h)
CHAINER_FORECAST_TIMEOUT_PER_REPEAT = 10
CHAINER_REFERENCE = {("step", 1): 0.85, ("nstep", 1): 1.49, ("nstep", 3): 5.14}  # s/epoch
TARGETS = {
    "nstep_vs_plain": 1.0,  # time ratio ours / plain torch, at most
    "step_speedup_vs_chainer_step": 1.5,  # at least
    "nstep_1L_speedup_vs_chainer_nstep": 4.0,  # at least (what nstep_vs_plain implies)
    "nstep_3L_speedup_vs_chainer_nstep": 3.5,  # at least
    "forecast_window_speedup": 100.0,  # at least
    "forecast_stream_speedup": 1000.0,  # at least
    "peak_rss_mib": 1024.0,  # below
    "stretch_nstep_1L_speedup_vs_plain": 1.3,  # at least
}
# How each target's measured value is held against its line of TARGETS: met when
# ``value OP threshold``.
TARGET_RULES = {goal: ">=" for goal in TARGETS} | {"nstep_vs_plain": "<=", "peak_rss_mib": "<"}
_COMPARE = {">=": operator.ge, "<=": operator.le, "<": operator.lt}
ORDER = (
    "chainer-step",
    "chainer-nstep",
    "plain-default",
    "plain",
    "step",
    "nstep",
    "plain-var",
    "nstep-var",
)
LABELS = {
    "chainer-step": "Chainer links.LSTM",
    "chainer-nstep": "Chainer NStepLSTM",
    "plain-default": "plain loop, glibc malloc defaults",
    "plain": "plain torch.nn.LSTM loop",
    "step": "ours, step",
    "nstep": "ours, nstep",
    "plain-var": "plain loop, variable lengths (padded, masked loss)",
    "nstep-var": "ours, nstep, variable lengths",
    # Measurements that run no rounds, named only where they fail (round None in ``failed``).
    "chainer-forecast": "Chainer NStepLSTM, closed-loop forecast",
    "forecast": "ours, forecast throughput",
    "peak-rss": "peak resident memory of nsteplstm train",
    "peak": "float32 peak, measured again after the race",
}
# What bench.md lacks, or gives from less, when one of these failed; the targets that
# needed it read not measured.
_ROUNDLESS = {
    "chainer-forecast": "The forecast table has no 'x Chainer' column.",
    "forecast": "The forecast table has no rows of this device.",
    "peak-rss": "The report gives no peak resident memory.",
    "peak": "The float32 peak of this device, and so its rooflines, are from the reading "
    "before the race alone.",
}
COLORS = {
    "chainer-step": "#bdbdbd",
    "chainer-nstep": "#737373",
    "plain-default": "#fee6ce",
    "plain": "#fdae6b",
    "step": "#9ecae1",
    "nstep": "#2171b5",
}


# ---------------------------------------------------------------- FLOPs and peak


def epoch_flops(steps: int, n_layers: int, n_in: int, n_hidden: int, n_out: int) -> int:
    """Floating-point operations of the matrix products of one training epoch.

    ``steps`` is the number of (sequence, time step) pairs the epoch processes: for
    equal-length windows ``windows * sequence_size`` (1770 * 30 = 53100 at the
    article's defaults), for variable lengths the sum of the lengths. A product of
    an ``(m, k)`` by a ``(k, n)`` matrix counts ``2 m k n`` operations. Per step:

    - forward, layer ``l`` (input size ``I_l = n_in`` for ``l = 0``, else ``n_hidden``
      ``= H``): the four gates, ``x W_ih^T + h W_hh^T``: ``2 * 4H * (I_l + H)``;
    - forward, head: ``2 * H * n_out``;
    - backward: twice the forward, for every layer and the head (one product for the
      gradient with respect to the inputs and the state, one for the weights).

    So ``flops = 3 * steps * (sum_l 8 H (I_l + H) + 2 H n_out)``. Element-wise work
    (gate nonlinearities, the cell update, dropout, the loss, Adam) is left out: it
    is a few percent of the products at H = 200. At the article's defaults this is
    51.3 GFLOP per epoch for one layer, 153 for two, 255 for three.
    """
    forward = 2 * n_hidden * n_out
    for layer in range(n_layers):
        in_size = n_in if layer == 0 else n_hidden
        forward += 2 * 4 * n_hidden * (in_size + n_hidden)
    return 3 * steps * forward


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _trial_seconds(fn: Callable[[], Any], device: torch.device, calls: int) -> float:
    """Seconds that ``calls`` calls of ``fn`` take, the device's queue drained."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    _sync(device)
    return time.perf_counter() - start


def _best_seconds(fn: Callable[[], Any], device: torch.device, trials: int) -> float:
    """Best seconds per call of ``fn`` over ``trials`` trials of >= 20 ms each."""
    fn()
    _sync(device)
    calls = 1
    while True:  # calibrate: enough calls that one trial takes >= 20 ms
        elapsed = _trial_seconds(fn, device, calls)
        if elapsed >= 0.02:
            break
        calls *= 2
    best = elapsed / calls
    for _ in range(trials - 1):
        best = min(best, _trial_seconds(fn, device, calls) / calls)
    return best


def measure_peak(
    device: torch.device, n_hidden: int, batch: int, steps: int, trials: int = 5
) -> dict[str, Any]:
    """The device's float32 matrix-product limit: the best rate (FLOP/s) among

    - ``torch.mm`` (MKL or cuBLAS) at the model's shapes: the recurrent product
      ``(batch, H) @ (H, 4H)``, all steps of a batch at once ``(steps * batch, H + 1)
      @ (H + 1, 4H)``, and a large square (2048 on the CPU, 8192 on CUDA);
    - the fused LSTM inference kernel (oneDNN on the CPU, cuDNN on CUDA):
      ``torch.nn.LSTM(H, H)`` forward under ``inference_mode`` on ``(steps, batch, H)``,
      counted as its input and recurrent products, ``2 * steps * batch * 4H * 2H``.

    Returns ``{"kernels": [{"name", "gflops"}...], "best": name, "gflops": best}``.
    """
    h = n_hidden
    square = 8192 if device.type == "cuda" else 2048
    shapes = [(batch, h, 4 * h), (steps * batch, h + 1, 4 * h), (square, square, square)]
    kernels = []
    gen = torch.Generator().manual_seed(0)
    # Built outside inference mode: on CUDA, .to() flattens its weights into one buffer.
    lstm = nn.LSTM(h, h).to(device).eval()  # in training mode the kernel keeps a workspace
    with torch.inference_mode():
        for m, k, n in shapes:
            a = torch.randn(m, k, generator=gen).to(device)
            b = torch.randn(k, n, generator=gen).to(device)
            c = torch.empty(m, n, device=device)
            seconds = _best_seconds(lambda a=a, b=b, c=c: torch.mm(a, b, out=c), device, trials)
            kernels.append(
                {"name": f"torch.mm ({m}x{k})@({k}x{n})", "gflops": 2 * m * k * n / seconds / 1e9}
            )
        x = torch.randn(steps, batch, h, generator=gen).to(device)
        seconds = _best_seconds(lambda: lstm(x), device, trials)
        backend = "cuDNN" if device.type == "cuda" else "oneDNN"
        kernels.append(
            {
                "name": f"{backend} LSTM inference ({steps},{batch},{h})->{h}",
                "gflops": 2 * steps * batch * 4 * h * 2 * h / seconds / 1e9,
            }
        )
    return _peak(kernels)


def best_peak(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two :func:`measure_peak` results of the same kernels, each kernel at its best."""
    rates = {k["name"]: k["gflops"] for k in a["kernels"]}
    return _peak(
        [{"name": k["name"], "gflops": max(k["gflops"], rates[k["name"]])} for k in b["kernels"]]
    )


def _peak(kernels: list[dict[str, Any]]) -> dict[str, Any]:
    best = max(kernels, key=lambda k: k["gflops"])
    return {"kernels": kernels, "best": best["name"], "gflops": best["gflops"]}


# ---------------------------------------------------------------- contenders


@dataclass
class Contender:
    """One configuration to time. ``epoch()`` runs one epoch and returns
    ``(seconds, steps)``: wall-clock seconds and (sequence, time step) pairs processed."""

    name: str
    device: str
    n_layers: int
    epoch: Callable[[], tuple[float, int]]
    warm_up: bool = True  # run one untimed epoch here first (Chainer warms up itself)
    seconds: list[float] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    # Set by :func:`race` when ``epoch()`` raised: {"round": 1-based, 0 for the warm-up,
    # "reason": one line, "timed_out": whether it was a :class:`TimedOut`}. The
    # contender takes no further turns.
    failure: dict[str, Any] | None = None


def _planned_steps(data: TrainData, config: Config, rng: np.random.Generator) -> int:
    """Time steps the next :func:`train_epoch` with ``rng`` processes (``rng`` untouched)."""
    probe = np.random.default_rng()
    probe.bit_generator.state = rng.bit_generator.state
    plan = _plan(data, config, probe)
    if plan.lengths is None:
        return data.train.size * data.train.x.shape[0]  # N windows * T steps
    return int(plan.lengths.sum())


def _timed(device: torch.device, run: Callable[[], Any]) -> float:
    _sync(device)
    start = time.perf_counter()
    run()
    _sync(device)
    return time.perf_counter() - start


def ours(
    cell: str, config: Config, dataset: Dataset, device: torch.device
) -> Callable[[], tuple[float, int]]:
    """An epoch of our model as ``nsteplstm train`` runs it (``config.n_layers``,
    ``config.min_length`` apply): :func:`nsteplstm.train.train_epoch`."""
    seed_everything(config.seed)
    model = make_model(config, cell).to(device)
    optimizer = make_optimizer(model, config)
    data = prepare_data(dataset, config, device)
    rng = np.random.default_rng(config.seed)

    def epoch() -> tuple[float, int]:
        steps = _planned_steps(data, config, rng)
        return _timed(device, lambda: train_epoch(model, optimizer, data, config, rng)), steps

    return epoch


class PlainLSTM(nn.Module):
    """The model as a typical PyTorch user writes it: ``nn.LSTM`` then ``nn.Linear``."""

    def __init__(self, n_layers: int, n_in: int, n_hidden: int, n_out: int, dropout: float) -> None:
        super().__init__()
        self.lstm = nn.LSTM(n_in, n_hidden, n_layers, dropout=dropout if n_layers > 1 else 0.0)
        self.head = nn.Linear(n_hidden, n_out)

    def forward(self, x: Tensor) -> Tensor:
        """``x`` ``(T, B, n_in)`` -> ``(T, B, n_out)``."""
        y, _ = self.lstm(x)  # (T, B, n_hidden)
        return self.head(y)


def plain_torch_epoch(
    model: PlainLSTM,
    optimizer: torch.optim.Optimizer,
    x: Tensor,
    y: Tensor,
    order: np.ndarray,
    batch_size: int,
    lengths: np.ndarray | None = None,
) -> float:
    """One epoch of the plain loop over windows ``x``, ``y`` ``(T, N, F)`` (dense,
    time-major, on the model's device) in ``order``; returns the mean batch loss.

    With ``lengths`` ``(N,)`` window n is cut to its first ``lengths[n]`` steps the
    way a user pads: each batch runs to its longest window and the loss covers the
    real steps only."""
    model.train()
    total = 0.0
    for start in range(0, len(order), batch_size):
        ids = order[start : start + batch_size]
        idx = torch.from_numpy(ids).to(x.device)  # (B,)
        if lengths is None:
            loss = F.mse_loss(model(x[:, idx]), y[:, idx])  # (): mean over (T, B, F)
        else:
            steps = torch.from_numpy(lengths[ids]).to(x.device)  # (B,)
            longest = int(steps.max())
            real = torch.arange(longest, device=x.device)[:, None] < steps  # (T, B)
            error = (model(x[:longest, idx]) - y[:longest, idx]).square()  # (T, B, F)
            loss = (error * real[:, :, None]).sum() / (real.sum() * y.shape[2])  # ()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total / -(-len(order) // batch_size)


@contextlib.contextmanager
def torch_defaults() -> Iterator[None]:
    """Torch's default settings inside (no deterministic algorithms, no cuDNN
    determinism), as a plain user's loop runs; the previous settings come back after.

    :func:`nsteplstm.device.seed_everything` (called by ``nsteplstm train``) turns them
    on, process-wide; ours is timed with them, as it runs. Float32 math stays as it is
    (cuDNN's and cuBLAS's TF32 off, :func:`run_bench`): contenders are compared at one precision.
    """
    with torch_settings_kept():
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False
        yield


def plain(
    config: Config, dataset: Dataset, device: torch.device
) -> Callable[[], tuple[float, int]]:
    """An epoch of :func:`plain_torch_epoch` on the same batches as :func:`ours`
    (same windows, same permutation per epoch), Adam with the same learning rate,
    under :func:`torch_defaults`. No gradient clipping (ours clips, as ``train`` does).

    With ``config.min_length``, the windows get the random lengths ours gets in the
    same epoch (the same draws), are taken in random order (not bucketed by length)
    and padded per batch (:func:`plain_torch_epoch`); steps count the real ones."""
    torch.manual_seed(config.seed)
    model = PlainLSTM(
        config.n_layers, config.n_in, config.n_hidden, config.n_out, config.dropout
    ).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    data = prepare_data(dataset, config, device)
    x, y = data.train.x, data.train.y  # (T, N, n_in), (T, N, n_out)
    rng = np.random.default_rng(config.seed)
    shuffle = np.random.default_rng(config.seed + 1)  # plain-var's own window order

    def epoch() -> tuple[float, int]:
        if config.min_length is None:
            order, lengths = rng.permutation(data.train.size), None
        else:
            lengths = _plan(data, config, rng).lengths  # the lengths ours gets this epoch
            order = shuffle.permutation(data.train.size)  # not bucketed by length
        with torch_defaults():
            seconds = _timed(
                device,
                lambda: plain_torch_epoch(
                    model, optimizer, x, y, order, config.batch_size, lengths
                ),
            )
        return seconds, x.shape[0] * x.shape[1] if lengths is None else int(lengths.sum())

    return epoch


def _env(malloc: bool, package: bool = True) -> dict[str, str]:
    """The environment for a subprocess: ``malloc`` True adds
    :func:`nsteplstm.device.tune_malloc`'s settings, False removes them; ``package``
    puts this package's directory first on ``PYTHONPATH``. Chainer's Python gets no
    ``package``: the directory of an installed nsteplstm holds its numpy too, which
    would hide Chainer's own (numpy 2 cannot import chainer 7)."""
    env = {k: v for k, v in os.environ.items() if k not in MALLOC_ENV}
    if package:
        package_root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    return env | (MALLOC_ENV if malloc else {})


class TimedOut(InputError):
    """The InputError of a subprocess that ran past its timeout (:func:`_run_python`)."""


def _run_python(
    cmd: list[str], who: str, timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run(cmd)``, output captured as text; InputError starting with ``who``
    (e.g. ``--chainer-python PATH``) when it cannot start, runs past ``timeout`` s
    (:class:`TimedOut`) or prints more than :data:`MAX_OUTPUT` bytes
    (:func:`_bounded_output`). Runs in a process group of its own, killed whole when it
    fails so or this process is interrupted: a script's own children do not outlive it."""
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
    except OSError as e:
        raise InputError(f"{who}: cannot run it ({e.strerror or e})") from None
    try:
        out, err = _bounded_output(proc, timeout, who)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if isinstance(e, subprocess.TimeoutExpired):
            raise TimedOut(f"{who}: no result within {timeout:g} s") from None
        raise
    finally:
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    text = [data.decode(errors="replace") for data in (out, err)]
    return subprocess.CompletedProcess(cmd, proc.returncode, *text)


def _bounded_output(proc: subprocess.Popen[bytes], timeout: float, who: str) -> tuple[bytes, bytes]:
    """``proc``'s stdout and stderr once it has ended (``communicate`` without its
    memory growing unbounded: a program that prints forever filled GiBs a second).
    TimeoutExpired past ``timeout`` s; InputError naming ``who`` once it has printed
    more than :data:`MAX_OUTPUT` bytes."""
    deadline = time.monotonic() + timeout
    fds = [pipe.fileno() for pipe in (proc.stdout, proc.stderr) if pipe is not None]
    data = {fd: bytearray() for fd in fds}  # stdout's, stderr's
    with selectors.DefaultSelector() as selector:
        for fd in data:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            if (left := deadline - time.monotonic()) <= 0:
                raise subprocess.TimeoutExpired(proc.args, timeout)
            for key, _ in selector.select(left):
                chunk = os.read(key.fd, 1 << 16)
                if not chunk:
                    selector.unregister(key.fd)
                data[key.fd] += chunk
                if sum(map(len, data.values())) > MAX_OUTPUT:
                    raise InputError(f"{who}: printed more than {MAX_OUTPUT >> 20} MiB of output")
    proc.wait(max(deadline - time.monotonic(), 0.001))
    return bytes(data[fds[0]]), bytes(data[fds[1]])


def _last_line(text: str, default: str) -> str:
    """The last non-blank line of ``text``, or ``default``."""
    return (text.strip().splitlines() or [default])[-1]


def _subprocess_seconds(
    cmd: list[str],
    env: dict[str, str],
    who: str,
    key: str = "seconds_per_epoch",
    timeout: float | None = None,
) -> list[float]:
    """Run a baseline script that prints JSON with ``key`` (a list of seconds) last;
    that list.

    InputError naming ``who`` and saying that the baseline run failed when it cannot
    run, exits non-zero (with the last line of its stderr), prints no positive times
    or runs past ``timeout`` s (:class:`TimedOut`; None: :data:`SUBPROCESS_TIMEOUT`).
    """
    timeout = SUBPROCESS_TIMEOUT if timeout is None else timeout
    done = _run_python(cmd, f"{who}: the baseline run failed", timeout, env=env)
    if done.returncode != 0:
        last = _last_line(done.stderr, "nothing on stderr")
        raise InputError(f"{who}: the baseline run failed (exit code {done.returncode}): {last}")
    last = _last_line(done.stdout, "")
    try:
        times = json.loads(last).get(key)
    except (ValueError, AttributeError):
        times = None
    if (
        not isinstance(times, list)
        or not times
        or not all(is_finite_number(t) and 1e-6 <= t <= 1e6 for t in times)  # ms to hours
    ):
        raise InputError(
            f"{who}: the baseline run failed: its last line of output must be JSON with "
            f"'{key}': [seconds, ...] (1e-6 to 1e6 s), got {last[:80]!r}"
        )
    return [float(t) for t in times]


def _subprocess_epoch(
    cmd: list[str], env: dict[str, str], who: str, steps: int
) -> Callable[[], tuple[float, int]]:
    """An epoch run as a subprocess, one per call (:func:`_subprocess_seconds`): the
    first seconds it prints, and ``steps``."""

    def epoch() -> tuple[float, int]:
        return _subprocess_seconds(cmd, env, who)[0], steps

    return epoch


def plain_default(config: Config) -> Callable[[], tuple[float, int]]:
    """:func:`plain` in its own process with glibc's malloc defaults, as a user's
    script runs it: one subprocess per call, a warm-up epoch, then one timed epoch."""
    cmd = [sys.executable, "-m", "nsteplstm.bench", "plain-worker", config.to_json()]
    steps = load_dataset(config).train_x.shape[0] * config.sequence_size
    return _subprocess_epoch(cmd, _env(malloc=False), f"plain-default ({sys.executable})", steps)


def _plain_worker(config_json: str) -> None:
    """``python -m nsteplstm.bench plain-worker CONFIG_JSON``: print one timed epoch."""
    config = Config.from_json(config_json, "plain-worker argument")
    epoch = plain(config, load_dataset(config), torch.device("cpu"))
    epoch()
    print(json.dumps({"seconds_per_epoch": [epoch()[0]]}))


# Prints the facts of the Chainer side as one JSON line: versions, numpy's BLAS and the
# threads it runs (asked of the OpenBLAS that numpy wheels bundle; None elsewhere).
_CHAINER_PROBE = """
import ctypes, glob, json, os, platform
import chainer, numpy
blas = getattr(numpy.__config__, "CONFIG", {}).get("Build Dependencies", {}).get("blas") or {}
libs = os.path.join(os.path.dirname(numpy.__file__), os.pardir, "numpy.libs", "*blas*")
threads = None
for lib in glob.glob(libs):
    for name in ("openblas_get_num_threads64_", "openblas_get_num_threads"):
        get = getattr(ctypes.CDLL(lib), name, None)
        threads = get() if get is not None and threads is None else threads
print(json.dumps({
    "chainer": chainer.__version__, "numpy": numpy.__version__,
    "python": platform.python_version(), "blas_threads": threads,
    "blas": " ".join(filter(None, [blas.get("name"), blas.get("version")])) or None,
}))
"""


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON bench.json can hold")


def find_chainer_script() -> Path:
    """``benchmarks/chainer_baseline.py`` of the source tree (it is not installed)."""
    candidates = [
        Path(__file__).resolve().parents[2] / "benchmarks" / "chainer_baseline.py",
        Path.cwd() / "benchmarks" / "chainer_baseline.py",
    ]
    for path in candidates:
        if path.is_file():
            return path
    raise InputError(
        "--chainer-python: benchmarks/chainer_baseline.py not found (it ships with the "
        "source tree, not the package): run from a checkout of the repository"
    )


def check_chainer_python(python: str | os.PathLike[str]) -> tuple[Path, dict[str, Any]]:
    """``python`` as an absolute path, and the facts of its Chainer side (versions of
    chainer, numpy and Python, numpy's BLAS and its thread count, None where unknown),
    once it has run, imported chainer and printed them; InputError otherwise.

    Absolute, so that ``./python`` is run rather than looked up on ``PATH``; not
    resolved, because a venv's python is a symlink whose target is outside the venv.
    """
    python = Path(python).absolute()
    who = f"--chainer-python {python}"
    if not python.is_file() or not os.access(python, os.X_OK):
        raise InputError(f"{who}: not an executable file")
    probe = _run_python([str(python), "-c", _CHAINER_PROBE], who, 120)
    if probe.returncode != 0:
        last = _last_line(probe.stderr, "nothing on stderr")
        raise InputError(f"{who}: cannot import chainer (exit code {probe.returncode}: {last})")
    try:
        facts = json.loads(_last_line(probe.stdout, ""), parse_constant=_no_constant)
    except ValueError:
        facts = None
    if isinstance(facts, dict):  # what bench.json records: text and counts only
        facts = {k: v for k, v in facts.items() if v is None or isinstance(v, (str, int))}
    if not isinstance(facts, dict) or not isinstance(facts.get("chainer"), str):
        raise InputError(f"{who}: printed no chainer version (is it a Python interpreter?)")
    return python, facts


def _chainer_cmd(python: Path, script: Path, cell: str, config: Config) -> list[str]:
    """``benchmarks/chainer_baseline.py`` in Chainer's Python, at ``config``'s settings,
    with the training points ours trains on (:func:`nsteplstm.config.train_points`):
    the script then splits the series where ours does, whatever the split rate."""
    n_train = train_points(config.split_rate, config.total_size)
    return [
        str(python),
        str(script),
        *("--cell", cell, "--layers", str(config.n_layers)),
        *("--seed", str(config.seed), "--hidden", str(config.n_hidden)),
        *("--batch-size", str(config.batch_size), "--sequence-size", str(config.sequence_size)),
        *("--total-size", str(config.total_size), "--dropout", str(config.dropout)),
        *("--split-rate", str(config.split_rate), "--train-points", str(n_train)),
        *("--modulo", str(config.value)),
    ]


def chainer(
    python: Path, script: Path, cell: str, config: Config, steps: int, malloc: bool
) -> Callable[[], tuple[float, int]]:
    """One subprocess per call: Chainer's warm-up epoch, then one timed epoch; with
    ``malloc``, under the same malloc settings as ours (:func:`_env`)."""
    cmd = [*_chainer_cmd(python, script, cell, config), "--warmup", "1", "--repeats", "1"]
    return _subprocess_epoch(cmd, _env(malloc, package=False), f"--chainer-python {python}", steps)


def chainer_forecast(
    python: Path, script: Path, config: Config, repeats: int, malloc: bool
) -> dict[str, Any]:
    """Chainer's NStepLSTM (one layer) forecasting the original's 121 points closed loop,
    one model call per point, as the article describes its prediction
    (``chainer_baseline.py --forecast``): one warm-up forecast, then ``repeats`` timed,
    in one subprocess that may run :data:`SUBPROCESS_TIMEOUT` s plus
    :data:`CHAINER_FORECAST_TIMEOUT_PER_REPEAT` s per timed forecast."""
    config = dataclasses.replace(config, n_layers=1)
    cmd = [
        *_chainer_cmd(python, script, "nstep", config),
        *("--forecast", str(ORIGINAL_FORECAST_POINTS), "--warmup", "1", "--repeats", str(repeats)),
    ]
    env = _env(malloc, package=False)
    timeout = SUBPROCESS_TIMEOUT + repeats * CHAINER_FORECAST_TIMEOUT_PER_REPEAT
    who = f"--chainer-python {python}"
    times = _subprocess_seconds(cmd, env, who, "seconds_per_forecast", timeout)
    return {
        "model": "Chainer links.NStepLSTM, 1 layer",
        "points": ORIGINAL_FORECAST_POINTS,
        "seconds": times,
        "best_seconds": min(times),
        "points_per_second": ORIGINAL_FORECAST_POINTS / min(times),
    }


def race(contenders: list[Contender], repeats: int, log: Callable[[str], None]) -> None:
    """A warm-up epoch each, then ``repeats`` rounds of one timed epoch per contender,
    the starting contender rotating by one each round. Fills ``seconds``/``steps``.

    A contender whose epoch raises (a baseline subprocess that timed out or crashed,
    say) is dropped from the rounds that remain, with one line to ``log``: its
    ``failure`` says why and in which round; the epochs it timed stay. The others go on.
    """
    for c in contenders:
        if c.warm_up:
            _attempt(c, 0, repeats, log)
    log(f"warm-up done ({len(contenders)} configurations)")
    for r in range(1, repeats + 1):
        shift = (r - 1) % len(contenders)
        for c in contenders[shift:] + contenders[:shift]:
            if c.failure is not None or (done := _attempt(c, r, repeats, log)) is None:
                continue
            seconds, steps = done
            c.seconds.append(seconds)
            c.steps.append(steps)
            log(f"round {r}/{repeats}: {c.device} {c.name} {c.n_layers}L {seconds:.3f} s")


def _attempt(
    c: Contender, round_: int, repeats: int, log: Callable[[str], None]
) -> tuple[float, int] | None:
    """``c.epoch()`` in round ``round_`` (0: the warm-up); None once it raised, which
    sets ``c.failure`` and logs it. Ctrl-C and SIGTERM are not caught."""
    try:
        return c.epoch()
    except Exception as e:  # whatever a contender raises ends that contender only
        c.failure = {"round": round_, "reason": _reason(e), "timed_out": isinstance(e, TimedOut)}
        when = _when(round_, repeats)
        who = _who(c.name, c.device, c.n_layers)
        log(f"{who} failed {when}, dropped from the rounds left: {c.failure['reason']}")
        return None


def _reason(e: Exception) -> str:
    """An exception as one line: an InputError's message as it is, others after their
    type's name (``RuntimeError: ...``)."""
    text = one_line(e)
    if isinstance(e, InputError):
        return text
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _when(round_: int | None, repeats: int | None = None) -> str:
    """``in round 9 of 10`` (``in round 9`` without ``repeats``), ``in its warm-up``
    (round 0), or ``""`` (no round: None)."""
    if round_ is None:
        return ""
    if round_ == 0:
        return "in its warm-up"
    return f"in round {round_}" + ("" if repeats is None else f" of {repeats}")


def _who(name: str, device: str, n_layers: int) -> str:
    """``chainer-step (cpu, 1 layer)``."""
    return f"{name} ({device}, {n_layers} layer{'s' if n_layers > 1 else ''})"


# ---------------------------------------------------------------- forecast and memory


def forecast_speed(
    config: Config, dataset: Dataset, device: torch.device, many: int, repeats: int, trials: int = 3
) -> list[dict[str, Any]]:
    """Points per second of both forecast modes of a one-layer model (article defaults),
    from one start and from ``many`` starts at once; the best of ``max(repeats, trials)``
    calls after a warm-up.

    ``speedup`` compares with the original: 121 points in 10.2 s (11.9 points/s).
    """
    seed_everything(config.seed)
    model = make_model(dataclasses.replace(config, n_layers=1), "nstep").to(device)
    series = dataset.series[0]
    last = len(series) - config.sequence_size
    original = ORIGINAL_FORECAST_POINTS / ORIGINAL_FORECAST_SECONDS
    rows = []
    for mode in MODES:
        for starts in ([0], np.linspace(0, last, many).astype(int).tolist()):

            def run(starts: list[int] = starts, mode: str = mode) -> None:
                forecast(model, series, starts, config.sequence_size, FORECAST_HORIZON, mode)

            run()
            times = [_timed(device, run) for _ in range(max(repeats, trials))]
            points = len(starts) * FORECAST_HORIZON
            best = min(times)
            rows.append(
                {
                    "device": str(device),
                    "mode": mode,
                    "starts": len(starts),
                    "horizon": FORECAST_HORIZON,
                    "points": points,
                    "seconds": times,
                    "best_seconds": best,
                    "points_per_second": points / best,
                    "speedup": points / best / original,
                }
            )
    return rows


# Runs the CLI, then writes its own peak resident set in MiB (VmHWM: of this program
# alone) to argv[1] where /proc has it. The wait4 figure is no good on Linux: a child
# inherits the parent's peak at fork and keeps it across exec.
_RSS_PROBE = """
import sys
from pathlib import Path
from nsteplstm.cli import main
from nsteplstm.device import peak_memory_mib
code = main(sys.argv[2:])
if Path("/proc/self/status").exists():
    Path(sys.argv[1]).write_text(str(peak_memory_mib()))
sys.exit(code)
"""


def _wait4(proc: subprocess.Popen[bytes], timeout: float, who: str) -> tuple[int, Any]:
    """``os.wait4``'s wait status and resource usage of ``proc`` once it has ended;
    :class:`TimedOut` naming ``who`` past ``timeout`` s, ``proc`` left running."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid != 0:
            return status, usage
        if time.monotonic() >= deadline:
            raise TimedOut(f"{who}: no result within {timeout:g} s")
        time.sleep(0.05)  # as Popen.wait polls with a timeout


def peak_rss(config: Config, device: torch.device, epochs: int) -> dict[str, Any]:
    """Peak resident memory of ``nsteplstm train`` (``epochs`` epochs, otherwise
    ``config``'s settings) in a subprocess: its ``VmHWM`` where ``/proc`` has one,
    else its ``ru_maxrss``; on CUDA also the device memory its tensors held at most
    (``cuda_peak_mib``, from the run's ``metrics.json``; None on the CPU).
    RuntimeError when the run fails, :class:`TimedOut` (the run killed) when it takes
    more than :data:`SUBPROCESS_TIMEOUT` s."""
    env = _env(malloc=False)  # nsteplstm train tunes malloc itself
    with tempfile.TemporaryDirectory(prefix="nsteplstm-bench-") as tmp:
        run = Path(tmp) / "run"
        args = [
            *("train", "--quiet", "--out", str(run)),
            *("--epochs", str(epochs), "--device", str(device)),
            *("--total-size", str(config.total_size), "--seed", str(config.seed)),
        ]
        shown = [a if a != str(run) else "RUN" for a in args]  # tmp is gone afterwards
        peak_file = Path(tmp) / "peak_mib.txt"
        cmd = [sys.executable, "-c", _RSS_PROBE, str(peak_file), *args]
        with open(Path(tmp) / "stderr.txt", "w+") as err:
            started = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
            try:
                code, usage = _wait4(proc, SUBPROCESS_TIMEOUT, f"nsteplstm {' '.join(shown)}")
            except BaseException:  # interrupted or timed out: the run must not outlive the bench
                proc.kill()
                proc.wait()
                raise
            proc.returncode = os.waitstatus_to_exitcode(code)
            seconds = time.perf_counter() - started
            err.seek(0)
            tail = err.read().strip().splitlines()
        hwm = float(peak_file.read_text()) if peak_file.exists() else None  # MiB
        cuda_peak = read_metrics(run).get("cuda_peak_mib") if proc.returncode == 0 else None
    if proc.returncode != 0:
        raise RuntimeError(f"nsteplstm {' '.join(shown)} failed: {tail[-1] if tail else code}")
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    peak = hwm if hwm is not None else usage.ru_maxrss * scale / 2**20
    return {
        "command": "nsteplstm " + " ".join(shown),
        "device": str(device),
        "epochs": epochs,
        "seconds": seconds,
        "source": "VmHWM" if hwm is not None else "ru_maxrss",
        "peak_rss_mib": peak,
        "cuda_peak_mib": cuda_peak,
    }


# ---------------------------------------------------------------- machine facts


def machine() -> dict[str, Any]:
    """CPU model, cores, torch version and threads, CUDA devices."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cuda = torch.cuda.is_available()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "mkl": torch.backends.mkl.is_available(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "tf32_environment": {
            k: os.environ[k]
            for k in ("TORCH_ALLOW_TF32_CUBLAS_OVERRIDE", "NVIDIA_TF32_OVERRIDE")
            if k in os.environ
        },
        "cuda": torch.version.cuda if cuda else None,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "cuda_devices": [torch.cuda.get_device_name(k) for k in range(torch.cuda.device_count())]
        if cuda
        else [],
    }


# ---------------------------------------------------------------- summary


def _summary(c: Contender, config: Config, peak_gflops: float) -> dict[str, Any]:
    steps = statistics.mean(c.steps)
    flops = epoch_flops(round(steps), c.n_layers, config.n_in, config.n_hidden, config.n_out)
    mean, best = statistics.mean(c.seconds), min(c.seconds)
    limit = flops / (peak_gflops * 1e9)
    return {
        "device": c.device,
        "contender": c.name,
        "label": LABELS[c.name],
        "n_layers": c.n_layers,
        "seconds": c.seconds,
        "steps": c.steps,
        "mean": mean,
        "min": best,
        "max": max(c.seconds),
        "us_per_step": mean / steps * 1e6,
        "us_per_step_min": min(t / n for t, n in zip(c.seconds, c.steps, strict=True)) * 1e6,
        "gflop_per_epoch": flops / 1e9,
        "limit_seconds": limit,
        "roofline": limit / mean,
        "roofline_best": limit / best,
    }


def _paired(ours: dict[str, Any], theirs: dict[str, Any]) -> float:
    """The median over rounds of ours / theirs, time per processed step, each round's
    two epochs against each other: what load disturbed one round weighs no more than
    any other (the best epochs may come from different rounds)."""
    per_step = [
        (a / n) / (b / m)
        for a, n, b, m in zip(
            ours["seconds"], ours["steps"], theirs["seconds"], theirs["steps"], strict=True
        )
    ]
    return statistics.median(per_step)


def _by_key(rows: list[dict[str, Any]]) -> dict[tuple[str, str, int], dict[str, Any]]:
    """``rows`` by ``(device, contender, n_layers)``."""
    return {(r["device"], r["contender"], r["n_layers"]): r for r in rows}


def _ratios(rows: list[dict[str, Any]]) -> None:
    """Add time ratios ours / plain and ours / Chainer (same device and depth;
    < 1 means ours is faster), per processed step: of the means (``vs_X``), of the
    best epochs (``vs_X_min``) and the median of each round's ratio (``vs_X_paired``)."""
    by = _by_key(rows)
    for r in rows:
        if r["contender"] not in ("step", "nstep", "nstep-var"):
            continue
        key = (r["device"], r["n_layers"])
        cell = "nstep" if r["contender"] == "nstep-var" else r["contender"]
        others = {"plain": "plain", "plain_default": "plain-default", "chainer": f"chainer-{cell}"}
        if r["contender"] == "nstep-var":
            others["plain_var"] = "plain-var"
        for name, contender in others.items():
            other = by.get((key[0], contender, key[1]))
            if other is None:
                continue
            r[f"vs_{name}"] = r["us_per_step"] / other["us_per_step"]
            r[f"vs_{name}_min"] = r["us_per_step_min"] / other["us_per_step_min"]
            r[f"vs_{name}_paired"] = _paired(r, other)
        if r["contender"] == "nstep-var" and (r["device"], "nstep", r["n_layers"]) in by:
            equal = by[(r["device"], "nstep", r["n_layers"])]
            r["vs_equal_length_per_step"] = r["us_per_step"] / equal["us_per_step"]
            r["vs_equal_length_per_step_min"] = r["us_per_step_min"] / equal["us_per_step_min"]


# Which of a row's ratios (``vs_KEY_min``, :func:`_ratios`) compares with a contender.
_RATIO_KEY = {
    "plain": "plain",
    "plain-default": "plain_default",
    "chainer-step": "chainer",
    "chainer-nstep": "chainer",
}


def _target_lines(n_layers: int) -> list[tuple[str, str, str, str]]:
    """The training targets at ``n_layers`` layers, in the order bench.md gives them:
    ``(name, goal, ours, theirs)``, ``goal`` the target's key in :data:`TARGETS`,
    ``ours`` and ``theirs`` the two contenders it compares."""
    lines = []
    if n_layers == 1:
        goal = "step_speedup_vs_chainer_step"
        lines.append(("step_1L_speedup_vs_chainer_step", goal, "step", "chainer-step"))
    lines.append((f"nstep_{n_layers}L_vs_plain", "nstep_vs_plain", "nstep", "plain"))
    if n_layers in (1, 3):
        goal = f"nstep_{n_layers}L_speedup_vs_chainer_nstep"
        lines.append((goal, goal, "nstep", "chainer-nstep"))
    if n_layers == 1:
        goal = "stretch_nstep_1L_speedup_vs_plain"
        lines.append((goal, goal, "nstep", "plain"))
        lines.append((f"{goal}_default", goal, "nstep", "plain-default"))
    lines.append((f"nstep-var_{n_layers}L_vs_plain", "nstep_vs_plain", "nstep-var", "plain"))
    return lines


def _met(goal: str, value: float) -> bool:
    """Whether ``value`` meets the target ``goal`` (:data:`TARGET_RULES`)."""
    return _COMPARE[TARGET_RULES[goal]](value, TARGETS[goal])


def _graded(goal: str, value: float, **more: Any) -> dict[str, Any]:
    """A target's entry: its value, ``more`` (``paired``, ``against``), met, goal."""
    return {"value": value, **more, "met": _met(goal, value), "goal": goal}


def _failure_words(f: dict[str, Any]) -> str:
    """``chainer-nstep (cpu, 1 layer) failed in round 9`` (or ``in its warm-up``)."""
    who = _who(f["contender"], f["device"], f["n_layers"])
    return " ".join(filter(None, [who, "failed", _when(f["round"])]))


def _training_target(
    goal: str,
    ours: dict[str, Any],
    theirs: dict[str, Any] | None,
    theirs_name: str,
) -> dict[str, Any]:
    """A training target from the rows of ``ours`` and ``theirs`` (None: not in the
    run, where the step-wise target takes the issue's reference time instead)."""
    if theirs is None:
        value = CHAINER_REFERENCE[("step", 1)] / ours["min"]
        return _graded(goal, value, against=f"reference {CHAINER_REFERENCE[('step', 1)]} s")
    key = _RATIO_KEY[theirs_name]
    ratio, paired = ours[f"vs_{key}_min"], ours[f"vs_{key}_paired"]
    if TARGET_RULES[goal] == "<=":  # a time ratio, ours / theirs
        return _graded(goal, ratio, paired=paired)
    speedup = _graded(goal, 1 / ratio, paired=1 / paired)  # theirs / ours
    return speedup | ({"against": "measured"} if theirs_name == "chainer-step" else {})


def _targets(doc: dict[str, Any]) -> dict[str, Any]:
    """Each target of issue 4 on the CPU: the measured value (from the best epochs),
    whether it is met and the target's ``goal`` (its line of :data:`TARGETS`), with
    the median of the rounds' ratios beside it (``paired``: see :func:`_paired`). A
    target whose contender, forecast or memory probe failed (``doc["failed"]``) is not
    measured: ``met`` None, ``not_measured`` saying which failed. Empty for
    ``--quick``: a smoke test on other settings (a 500-point series)."""
    if doc["arguments"]["quick"]:
        return {}
    rows = {(r["contender"], r["n_layers"]): r for r in doc["training"] if r["device"] == "cpu"}
    cpu_failed = [f for f in doc.get("failed", []) if f["device"] == "cpu"]
    lost = {(f["contender"], f["n_layers"]): f for f in cpu_failed if f["round"] is not None}
    roundless = {f["contender"]: f for f in cpu_failed if f["round"] is None}
    out: dict[str, Any] = {}
    for n_layers in sorted({n for _, n in [*rows, *lost]}):
        for name, goal, ours, theirs in _target_lines(n_layers):
            keys = [(ours, n_layers), (theirs, n_layers)]
            if theirs != "chainer-step" and not any(keys[1] in ran for ran in (rows, lost)):
                continue  # not in this run (no Chainer, no glibc), and no reference time
            if failed := [lost[k] for k in keys if k in lost]:
                out[name] = _unmeasured(goal, failed)
            elif keys[0] in rows:
                out[name] = _training_target(goal, rows[keys[0]], rows.get(keys[1]), theirs)
    for f in doc["forecast"]:
        if f["starts"] == 1 and f["device"] == "cpu":
            goal = f"forecast_{f['mode']}_speedup"
            out[goal] = _graded(goal, f["speedup"])
    if "forecast" in roundless:  # ours raised on the CPU: no rows
        for mode in MODES:
            goal = f"forecast_{mode}_speedup"
            out[goal] = _unmeasured(goal, [roundless["forecast"]])
    rss = doc["peak_rss"]
    if rss is not None and rss["device"] == "cpu":  # a CUDA process's host memory differs
        out["peak_rss_mib"] = _graded("peak_rss_mib", rss["peak_rss_mib"])
    elif "peak-rss" in roundless:
        out["peak_rss_mib"] = _unmeasured("peak_rss_mib", [roundless["peak-rss"]])
    return out


def _unmeasured(goal: str, failed: list[dict[str, Any]]) -> dict[str, Any]:
    """A target's entry when ``failed`` (entries of ``doc["failed"]``) left it unmeasured."""
    return {"met": None, "not_measured": "; ".join(map(_failure_words, failed)), "goal": goal}


def _percent(share: float) -> str:
    """``0.713`` -> ``71%``, ``0.0152`` -> ``1.5%``: two digits, also for the small
    shares of a GPU's peak."""
    return f"{100 * share:.0f}%" if share >= 0.1 else f"{100 * share:.2g}%"


def _chainer_words(facts: dict[str, Any] | None) -> str:
    """``; Chainer 7.8.1 (numpy 1.26.4, openblas64 0.3.23, 2 threads)``, or ``""``."""
    if not facts:
        return ""
    threads = facts.get("blas_threads")
    inside = [f"numpy {facts.get('numpy')}", facts.get("blas") or "BLAS unknown"]
    inside.append(f"{threads} threads" if threads is not None else "BLAS threads unknown")
    return f"; Chainer {facts['chainer']} ({', '.join(inside)})"


def _targets_words(doc: dict[str, Any]) -> str:
    if doc["arguments"]["quick"]:
        return (
            "not checked (--quick is a smoke test on a 500-point series; the speed targets in "
            "docs/performance.md are set for the article's settings)"
        )
    if not doc["targets"]:
        return "none on this device (the speed targets in docs/performance.md are for the CPU)"
    return ", ".join(_target_words(k, v) for k, v in doc["targets"].items())


def _target_words(name: str, target: dict[str, Any]) -> str:
    """``nstep_1L_vs_plain 0.9 (met; paired 1.05)``, or ``... not measured (why)``."""
    if target["met"] is None:
        return f"{name} not measured ({target['not_measured']})"
    return (
        f"{name} {target['value']:.4g} ({'met' if target['met'] else 'MISSED'}"  # 1.001 is not 1
        + (f"; paired {target['paired']:.4g})" if "paired" in target else ")")
    )


def markdown(doc: dict[str, Any]) -> str:
    """The report as Markdown tables."""
    lines = [
        _machine_words(doc["machine"]),
        "",
        _training_words(doc),
        "",
        *_failure_lines(doc),
        *_training_table(doc["training"]),
        *_variable_table(doc),
        *_forecast_table(doc),
        *_peak_list(doc["peak"]),
        *([] if doc["peak_rss"] is None else ["", _memory_words(doc["peak_rss"])]),
        "",
        "Targets: " + _targets_words(doc),
    ]
    return "\n".join(lines) + "\n"


def _failure_lines(doc: dict[str, Any]) -> list[str]:
    """A list item per contender that failed (``doc["failed"]``), then a blank line;
    no lines when none did."""
    lines = []
    for f in doc.get("failed", []):
        when = _when(f["round"], doc["repeats"])
        epochs = len(f["seconds"])
        kept = f", after {epochs} timed epoch{'s' if epochs > 1 else ''}" if epochs else ""
        left = _ROUNDLESS.get(
            f["contender"],
            "Left out of the tables, the ratios, the targets and the chart (bench.json "
            "keeps the epochs it timed, under 'failed').",
        )
        lines.append(
            f"- **Failed:** {f['label']} ({f['device']}, {f['n_layers']} layer"
            f"{'s' if f['n_layers'] > 1 else ''}){' ' + when if when else ''}{kept}: "
            f"{f['reason']}. {left}"
        )
    return [*lines, ""] if lines else []


def _machine_words(facts: dict[str, Any]) -> str:
    """``Machine: CPU, 2 cores, torch 2.x (2 threads), CUDA: GPUs; Chainer ...``."""
    cuda = f", CUDA: {', '.join(facts['cuda_devices'])}" if facts["cuda_devices"] else ""
    return (
        f"Machine: {facts['cpu']}, {_cores_words(facts)}, torch "
        f"{facts['torch']} ({facts['torch_threads']} threads)"
        + cuda
        + _chainer_words(facts.get("chainer"))
    )


def _cores_words(facts: dict[str, Any]) -> str:
    """``2 cores``, or ``8 cores (2 usable)`` where this process may run on fewer of
    them (``taskset``, a container's CPU set): the count its threads compete for."""
    usable = facts.get("usable_cores")
    shown = f" ({usable} usable)" if usable is not None and usable != facts["cores"] else ""
    return f"{facts['cores']} cores{shown}"


def _training_words(doc: dict[str, Any]) -> str:
    """The paragraph above the training table: the setup, what the ratios and the
    roofline compare, and the malloc settings the contenders ran with."""
    return (
        f"Training, seconds per epoch ({doc['setup']['windows']} windows of "
        f"{doc['setup']['sequence_size']} steps, batch {doc['setup']['batch_size']}, hidden "
        f"{doc['setup']['n_hidden']}; 1 warm-up + {doc['repeats']} interleaved epochs). "
        "Ratios: time per processed step, ours / theirs (< 1: ours faster); roofline: share "
        "of the measured float32 matrix-product peak. Both from each contender's best epoch, "
        "the one least disturbed by other load (bench.json also holds the ratios of the means "
        "and, as 'paired', the median over rounds of each round's ratio; the targets line "
        "gives that one too). " + _malloc_words(doc)
    )


def _malloc_words(doc: dict[str, Any]) -> str:
    """The malloc settings the contenders ran with."""
    names = {r["contender"] for r in [*doc["training"], *doc.get("failed", [])]}
    if not doc["machine"].get("malloc_tuned"):
        return "glibc's malloc settings were not tuned here (not glibc)."
    return (
        "Every contender runs with nsteplstm's malloc settings (`nsteplstm.tune_malloc`: "
        "freed memory is reused instead of page-faulted back in every batch)"
        + (
            ", except 'plain loop, glibc malloc defaults', the plain loop in its own "
            "process as a user's script runs it."
            if "plain-default" in names
            else "."
        )
    )


def _ratio_cell(r: dict[str, Any], key: str) -> str:
    """``r[key]`` with two decimals, or empty where ``r`` has no such ratio."""
    return f"{r[key]:.2f}" if key in r else ""


def _training_table(rows: list[dict[str, Any]]) -> list[str]:
    """A row per contender: seconds per epoch, ratios of the best epochs, roofline."""
    lines = [
        "| device | model | layers | mean s | min s | max s | / plain | / plain, defaults "
        "| / Chainer | roofline |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['device']} | {r['label']} | {r['n_layers']} | {r['mean']:.3f} | "
            f"{r['min']:.3f} | {r['max']:.3f} | {_ratio_cell(r, 'vs_plain_min')} | "
            f"{_ratio_cell(r, 'vs_plain_default_min')} | {_ratio_cell(r, 'vs_chainer_min')} | "
            f"{_percent(r['roofline_best'])} |"
        )
    return lines


def _variable_table(doc: dict[str, Any]) -> list[str]:
    """nstep-var against nstep and the plain loops, us per real step, after a blank
    line; no lines when no nstep-var row has its nstep row."""
    var = [r for r in doc["training"] if "vs_equal_length_per_step" in r]
    if not var:
        return []
    lines = [
        "",
        f"Variable-length windows (lengths uniform in [{doc['setup']['variable_min_length']}, "
        f"{doc['setup']['sequence_size']}]), us per real time step (best epoch; the "
        "padded plain loop also computes its padding, about 1.5x the real steps, so "
        "its roofline counts useful work only):",
        "",
        "| device | layers | equal length | variable | variable / equal | variable / plain "
        "| variable / plain, variable |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    by = _by_key(doc["training"])
    for r in var:
        equal = by[(r["device"], "nstep", r["n_layers"])]
        lines.append(
            f"| {r['device']} | {r['n_layers']} | {equal['us_per_step_min']:.2f} | "
            f"{r['us_per_step_min']:.2f} | {r['vs_equal_length_per_step_min']:.2f} | "
            f"{_ratio_cell(r, 'vs_plain_min')} | {_ratio_cell(r, 'vs_plain_var_min')} |"
        )
    return lines


def _forecast_table(doc: dict[str, Any]) -> list[str]:
    """Forecast throughput against the original (and Chainer, when it ran), after a
    blank line; no table where ours failed on every device (its failure lines say so)."""
    lines = [
        "",
        f"Forecast, {FORECAST_HORIZON} points per start, one-layer model (original: "
        f"{ORIGINAL_FORECAST_POINTS} points in {ORIGINAL_FORECAST_SECONDS} s; on the CPU "
        f"fewer than {ONE_THREAD_STARTS} starts run on one thread, as `nl.forecast.forecast` runs "
        "them):",
        "",
    ]
    theirs = doc.get("chainer_forecast")
    if theirs is not None:
        lines += [
            f"Chainer in this run ({theirs['model']}, the same closed loop as the article "
            "describes it, one model call per point: `benchmarks/chainer_baseline.py "
            f"--forecast {theirs['points']}`): best {theirs['best_seconds']:.3f} s for "
            f"{theirs['points']} points, {theirs['points_per_second']:,.0f} points/s.",
            "",
        ]
    if not doc["forecast"]:
        return lines[:-1] if theirs is not None else []  # Chainer's line alone, or nothing
    column, rule = (" x Chainer |", "---:|") if theirs is not None else ("", "")
    lines += [
        "| device | mode | starts | best s | points/s | x original |" + column,
        "|---|---|---:|---:|---:|---:|" + rule,
    ]
    for f in doc["forecast"]:
        vs = f.get("vs_chainer")
        cell = "" if theirs is None else (f" {vs:,.0f} |" if vs is not None else "  |")
        lines.append(
            f"| {f['device']} | {f['mode']} | {f['starts']} | {f['best_seconds']:.4f} | "
            f"{f['points_per_second']:,.0f} | {f['speedup']:,.0f} |{cell}"
        )
    return lines


def _peak_list(peak: dict[str, Any]) -> list[str]:
    """Each device's float32 peak and the rates of all its kernels, after a blank line."""
    lines = ["", "Float32 peak (best of the kernels below, measured in this run):", ""]
    for device, p in peak.items():
        kernels = "; ".join(f"{k['name']}: {k['gflops']:.0f}" for k in p["kernels"])
        lines.append(f"- {device}: **{p['gflops']:.0f} GFLOP/s** ({p['best']}). All: {kernels}")
    return lines


def _memory_words(rss: dict[str, Any]) -> str:
    """The peak resident memory of :func:`peak_rss`'s run, and its GPU peak on CUDA."""
    return (
        f"Peak resident memory of `{rss['command']}`: **{rss['peak_rss_mib']:.0f} MiB**"
        + _cuda_peak_words(rss.get("cuda_peak_mib"))
    )


def _cuda_peak_words(mib: float | None) -> str:
    if mib is None:
        return ""
    return (
        f"; on the GPU its tensors held at most **{mib:.0f} MiB** "
        "(`torch.cuda.max_memory_allocated`; torch's caching allocator reserves more)"
    )


def chart(doc: dict[str, Any]) -> Figure:
    """Grouped bars: seconds per epoch for each model of the article's equal-length
    windows (the variable-length contenders are in the table only), grouped by layers,
    one panel per device; a note where no contender finished (all failed)."""
    devices = list(dict.fromkeys(r["device"] for r in doc["training"]))
    if not devices:
        fig = Figure(figsize=(6, 2), layout="constrained")
        fig.text(0.5, 0.5, "No training contender finished (see bench.md)", ha="center")
        return fig
    fig = Figure(figsize=(4.2 + 2.6 * len(doc["layers"]), 4.2 * len(devices)), layout="constrained")
    axes = fig.subplots(len(devices), 1, squeeze=False)[:, 0]
    for ax, device in zip(axes, devices, strict=True):
        rows = [r for r in doc["training"] if r["device"] == device and r["contender"] in COLORS]
        names = [n for n in ORDER if any(r["contender"] == n for r in rows)]
        width = 0.8 / max(len(names), 1)  # none: only variable-length rows finished
        by = {(r["contender"], r["n_layers"]): r for r in rows}
        for k, name in enumerate(names):
            xs, means, errs = [], [], [[], []]
            for g, layers in enumerate(doc["layers"]):
                r = by.get((name, layers))
                if r is None:
                    continue
                xs.append(g - 0.4 + width * (k + 0.5))
                means.append(r["mean"])
                errs[0].append(r["mean"] - r["min"])
                errs[1].append(r["max"] - r["mean"])
            bars = ax.bar(
                xs,
                means,
                width * 0.92,
                yerr=errs,
                capsize=2,
                color=COLORS[name],
                edgecolor="black",
                linewidth=0.5,
                label=LABELS[name],
                error_kw={"lw": 0.7},
            )
            ax.bar_label(bars, labels=[f"{m:.2f}" for m in means], padding=2, fontsize=7)
        ax.set_xticks(range(len(doc["layers"])))
        ax.set_xticklabels([f"{n} layer{'s' if n > 1 else ''}" for n in doc["layers"]])
        ax.set_ylabel("seconds per epoch")
        ax.set_title(
            f"Training time per epoch on {device} (mean of {doc['repeats']}, min-max bars)",
            fontsize=10,
        )
        ax.margins(y=0.15)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        if names:
            ax.legend(fontsize=8, frameon=False, loc="upper left")
    return fig


# ---------------------------------------------------------------- the command


def _devices(device: str | None) -> list[torch.device]:
    if device is None:
        cuda = [resolve_device("cuda")] if torch.cuda.is_available() else []
        return [torch.device("cpu"), *cuda]
    return [resolve_device(device)]


def _log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _check_out(out: Path, force: bool) -> None:
    """InputError unless ``out`` is a directory holding none of the bench's files
    (unless ``force``), or can be created in a writable directory."""
    if os.path.lexists(out) and not out.is_dir():  # a broken symlink does not "exist"
        raise InputError(f"--out {out}: exists and is not a directory (or a broken link)")
    if out.is_dir():
        for name in (JSON_FILE, TABLE_FILE, CHART_FILE):
            check_output_file(out / name, force)
    if (why := creation_blocker(out)) is not None:
        raise InputError(f"--out {out}: cannot create it: {why}")


@dataclass(frozen=True)
class _Setup:
    """What :func:`run_bench` checked and loaded before the first timing."""

    quick: bool
    repeats: int  # timed epochs per contender
    devices: list[torch.device]
    chainer_python: Path | None  # absolute (:func:`check_chainer_python`)
    chainer_facts: dict[str, Any] | None
    script: Path | None  # benchmarks/chainer_baseline.py, with chainer_python only
    malloc_tuned: bool  # :func:`nsteplstm.device.tune_malloc` applied
    base: Config  # the article's settings (a 500-point series with quick), on the CPU
    dataset: Dataset
    started: str  # UTC, ISO 8601, to the second

    @property
    def layers(self) -> tuple[int, ...]:
        """The depths to time."""
        return QUICK_LAYERS if self.quick else LAYERS

    @property
    def windows(self) -> int:
        """Training windows of the dataset."""
        return self.dataset.train_x.shape[0]


def _setup(
    out: Path,
    quick: bool,
    repeats: int | None,
    device: str | None,
    chainer_python: Path | None,
    force: bool,
) -> _Setup:
    """:func:`run_bench`'s checks (InputError), its malloc tuning and its dataset."""
    repeats = check_int(
        "--repeats", (1 if quick else 3) if repeats is None else repeats, maximum=MAX_REPEATS
    )
    _check_out(out, force)
    seed_everything(0)  # as nsteplstm train: float32 in cuDNN too, also for the peak
    devices = _devices(device)
    if chainer_python is not None and all(d.type != "cpu" for d in devices):
        raise InputError(
            f"--chainer-python: Chainer's baseline runs on the CPU, and --device {device} "
            "times no CPU contender to compare it with"
        )
    script, chainer_facts = None, None
    if chainer_python is not None:
        chainer_python, chainer_facts = check_chainer_python(chainer_python)
        script = find_chainer_script()
    malloc_tuned = tune_malloc()  # as nsteplstm train does; baselines get the same
    base = Config(device="cpu", total_size=QUICK_TOTAL_SIZE) if quick else Config(device="cpu")
    dataset = load_dataset(base)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return _Setup(
        quick=quick,
        repeats=repeats,
        devices=devices,
        chainer_python=chainer_python,
        chainer_facts=chainer_facts,
        script=script,
        malloc_tuned=malloc_tuned,
        base=base,
        dataset=dataset,
        started=started,
    )


# Subprocesses that run their own warm-up epoch.
_WARMS_UP_ITSELF = ("chainer-step", "chainer-nstep", "plain-default")


def _epochs(
    s: _Setup, dev: torch.device, layers: int
) -> dict[str, Callable[[], tuple[float, int]]]:
    """The epoch of each contender on ``dev`` at ``layers`` layers, by name, in the
    order the rounds take them."""
    config = dataclasses.replace(s.base, n_layers=layers)
    var = dataclasses.replace(config, min_length=VARIABLE_MIN_LENGTH)
    epochs: dict[str, Callable[[], tuple[float, int]]] = {}
    if dev.type == "cpu" and s.script is not None:
        steps = s.windows * s.base.sequence_size
        for cell in ("step", "nstep"):
            run = chainer(s.chainer_python, s.script, cell, config, steps, s.malloc_tuned)
            epochs[f"chainer-{cell}"] = run
    if dev.type == "cpu" and s.malloc_tuned and not s.quick:
        epochs["plain-default"] = plain_default(config)
    epochs["plain"] = plain(config, s.dataset, dev)
    for cell in ("step", "nstep"):
        epochs[cell] = ours(cell, config, s.dataset, dev)
    epochs["plain-var"] = plain(var, s.dataset, dev)
    epochs["nstep-var"] = ours("nstep", var, s.dataset, dev)
    return epochs


def _contenders(s: _Setup) -> list[Contender]:
    """Every contender, by device, then by layers, then in :func:`_epochs`' order."""
    return [
        Contender(name, str(dev), layers, epoch, warm_up=name not in _WARMS_UP_ITSELF)
        for dev in s.devices
        for layers in s.layers
        for name, epoch in _epochs(s, dev, layers).items()
    ]


def _time_training(
    s: _Setup, contenders: list[Contender]
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """:func:`race` the contenders; the float32 peak of each device (:func:`best_peak`
    of one measurement before the race and one after), a summary row per contender
    that finished with its ratios (:func:`_ratios`), and a :func:`_failed` entry per
    contender that failed, then one per device whose measurement after the race
    raised (``peak``, logged): that device's peak, and so its rooflines, are the
    reading before the race alone. One before the race that raises ends the run:
    nothing has been timed yet."""
    trials = 3 if s.quick else 7

    def measure(dev: torch.device) -> dict[str, Any]:
        return measure_peak(dev, s.base.n_hidden, s.base.batch_size, s.base.sequence_size, trials)

    # The peak is measured before and after the timed epochs and the best of each kernel
    # kept: one second of it disturbed by other load would inflate every roofline.
    before = {str(dev): measure(dev) for dev in s.devices}
    names = ", ".join(map(str, s.devices))
    _log(f"{len(contenders)} configurations x {s.repeats} timed epochs on {names}")
    race(contenders, s.repeats, _log)

    failed = [
        _failed(c.name, c.device, c.n_layers, c.failure, c.seconds, c.steps)
        for c in contenders
        if c.failure is not None
    ]
    peak = {}
    for dev in s.devices:
        try:
            peak[str(dev)] = best_peak(before[str(dev)], measure(dev))
        except Exception as e:  # as a contender of the race: the race is kept
            failed.append(_roundless_failure("peak", str(dev), 1, _reason(e)))
            peak[str(dev)] = before[str(dev)]
        _log(f"peak {dev}: {peak[str(dev)]['gflops']:.0f} GFLOP/s ({peak[str(dev)]['best']})")
    rows = [_summary(c, s.base, peak[c.device]["gflops"]) for c in contenders if c.failure is None]
    _ratios(rows)
    return peak, rows, failed


def _failed(
    name: str,
    device: str,
    n_layers: int,
    failure: dict[str, Any],
    seconds: list[float],
    steps: list[int],
) -> dict[str, Any]:
    """bench.json's entry for a contender that failed: who, ``round`` (1-based, 0 for
    its warm-up, None for a measurement that runs no rounds: Chainer's forecast, ours
    (``forecast``, per device), the memory probe (``peak-rss``), the float32 peak's
    reading after the race (``peak``, per device); :data:`_ROUNDLESS`),
    ``reason`` (one line), and the epochs it timed before (``seconds``, ``steps``)."""
    return {
        "device": device,
        "contender": name,
        "label": LABELS[name],
        "n_layers": n_layers,
        "round": failure["round"],
        "reason": failure["reason"],
        "seconds": seconds,
        "steps": steps,
    }


def _chainer_timed_out(contenders: list[Contender], repeats: int) -> str | None:
    """Why Chainer's forecast is not worth starting: ``chainer-nstep (cpu, 1 layer) timed
    out in round 2 of 3`` for the first Chainer contender whose subprocess ran past its
    timeout (they all run the one ``--chainer-python``); None when none did. A crash
    says nothing of how long the forecast would take."""
    for c in contenders:
        if c.name.startswith("chainer-") and c.failure is not None and c.failure["timed_out"]:
            when = _when(c.failure["round"], repeats)
            return f"{_who(c.name, c.device, c.n_layers)} timed out {when}"
    return None


def _roundless_failure(name: str, device: str, n_layers: int, reason: str) -> dict[str, Any]:
    """The :func:`_failed` entry of a measurement that runs no rounds (one of
    :data:`_ROUNDLESS`), logged in one line."""
    _log(f"{_who(name, device, n_layers)} failed: {reason}")
    return _failed(name, device, n_layers, {"round": None, "reason": reason}, [], [])


def _time_forecasts(
    s: _Setup, timed_out: str | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any] | None, list[dict[str, Any]]]:
    """:func:`forecast_speed` on each device, and :func:`chainer_forecast` (None without
    ``chainer_python``, when it failed, or when not run because ``timed_out`` says a
    Chainer contender timed out: :func:`_chainer_timed_out`), which adds ``vs_chainer``
    to the CPU rows; the :func:`_failed` entries (logged) of ours on a device where it
    raised (``forecast``: that device has no rows) and of Chainer's forecast where it
    failed or was not run."""
    many = QUICK_FORECAST_MANY_STARTS if s.quick else FORECAST_MANY_STARTS
    forecasts, failed = [], []
    for dev in s.devices:
        try:
            forecasts += forecast_speed(
                s.base, s.dataset, dev, many, s.repeats, 2 if s.quick else 3
            )
        except Exception as e:  # as a contender of the race: the rest is kept
            failed.append(_roundless_failure("forecast", str(dev), 1, _reason(e)))
    theirs = None
    if s.script is not None:
        reason = None
        if timed_out is not None:  # it would most likely wait out its timeout too
            reason = f"not run: {timed_out}, with the same --chainer-python"
        else:
            try:
                theirs = chainer_forecast(
                    s.chainer_python, s.script, s.base, s.repeats, s.malloc_tuned
                )
            except Exception as e:  # as a contender of the race: the rest is kept
                reason = _reason(e)
        if reason is not None:
            failed.append(_roundless_failure("chainer-forecast", "cpu", 1, reason))
        for row in forecasts:
            if row["device"] == "cpu" and theirs is not None:
                row["vs_chainer"] = row["points_per_second"] / theirs["points_per_second"]
    _log("forecast timed")
    return forecasts, theirs, failed


def _time_memory(s: _Setup) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """:func:`peak_rss` on the first device, or None and its :func:`_failed` entry
    (``peak-rss``, logged) where it raised or timed out."""
    device = s.devices[0]
    try:
        rss = peak_rss(s.base, device, QUICK_RSS_EPOCHS if s.quick else RSS_EPOCHS)
    except Exception as e:  # as a contender of the race: the rest is kept
        return None, [_roundless_failure("peak-rss", str(device), s.base.n_layers, _reason(e))]
    _log(f"peak RSS {rss['peak_rss_mib']:.0f} MiB")
    return rss, []


def _document(s: _Setup, out: Path, device: str | None, measured: dict[str, Any]) -> dict[str, Any]:
    """bench.json: the arguments, machine and setup, then ``measured`` (peak, training,
    failed, forecast, chainer_forecast, peak_rss), then the fixed figures the report
    compares with (:func:`reference_figures`) and the targets (:func:`_targets`).
    One written beside ``out`` also says where (``written_to``: :func:`_write_results`)."""
    doc: dict[str, Any] = {
        "format": 1,
        "started": s.started,
        "arguments": {
            "out": str(out),
            "quick": s.quick,
            "repeats": s.repeats,
            "device": device,
            "chainer_python": None if s.chainer_python is None else str(s.chainer_python),
        },
        "machine": machine() | {"malloc_tuned": s.malloc_tuned, "chainer": s.chainer_facts},
        "setup": {
            "n_hidden": s.base.n_hidden,
            "batch_size": s.base.batch_size,
            "sequence_size": s.base.sequence_size,
            "value": s.base.value,
            "dropout": s.base.dropout,
            "total_size": s.base.total_size,
            "windows": s.windows,
            "batches_per_epoch": -(-s.windows // s.base.batch_size),
            "variable_min_length": VARIABLE_MIN_LENGTH,
            "epoch": "one pass over the training windows: forward, loss, backward and "
            "update of every batch; no validation (the same for every contender)",
        },
        "layers": list(s.layers),
        "repeats": s.repeats,
        **measured,
        "reference_figures": reference_figures(),
    }
    doc["targets"] = _targets(doc)
    return doc


def reference_figures() -> dict[str, Any]:
    """The fixed figures, not measured in the run, that bench.md and the targets use:
    the original article's forecast (``points`` in ``seconds``; a forecast's ``speedup``
    is its points per second over ``points_per_second``), the starts from which
    ``nl.forecast.forecast`` uses all CPU threads (fewer run on one), the issue's Chainer times
    (seconds per epoch on the issue's machine; the step-wise target uses the one-layer
    ``step`` time when Chainer did not run), and each target's threshold and rule: a
    target of bench.json whose ``goal`` is G is met when ``value RULE threshold``."""
    return {
        "original_forecast": {
            "points": ORIGINAL_FORECAST_POINTS,
            "seconds": ORIGINAL_FORECAST_SECONDS,
            "points_per_second": ORIGINAL_FORECAST_POINTS / ORIGINAL_FORECAST_SECONDS,
        },
        "forecast_one_thread_starts": ONE_THREAD_STARTS,
        "chainer_seconds_per_epoch": [
            {"cell": cell, "n_layers": n_layers, "seconds": seconds}
            for (cell, n_layers), seconds in CHAINER_REFERENCE.items()
        ],
        "targets": {
            goal: {"threshold": threshold, "rule": TARGET_RULES[goal]}
            for goal, threshold in TARGETS.items()
        },
    }


def _write_results(doc: dict[str, Any], out: Path, force: bool) -> None:
    """Print the Markdown table; write bench.json, bench.md and bench.png into ``out``.

    InputError when ``out`` can no longer take them (one of them appeared there while
    the bench ran, say): nothing is written into ``out``; the message names the new
    directory beside it that holds them instead (:func:`_write_beside`), where one
    could be made. The bench.json there says so: ``written_to`` gives that directory
    (``arguments.out`` stays the ``--out`` given); bench.md names no directory."""
    table = markdown(doc)
    print(table)
    png = png_bytes(chart(doc))

    def files(where: Path) -> dict[str, Any]:
        shown = doc if where == out else doc | {"written_to": str(where)}
        json_text = json.dumps(shown, indent=1, allow_nan=False) + "\n"
        return {JSON_FILE: json_text, TABLE_FILE: table, CHART_FILE: png}

    try:
        _check_out(out, force)  # again: files may have appeared while the bench ran
    except InputError as e:
        if (instead := _write_beside(out, files)) is None:
            raise
        raise InputError(
            f"the results are in {instead}, not in --out {out}, found changed once the "
            f"bench had run: {e}"
        ) from None
    with new_directory(out, "--out"):  # a failed write leaves no directory behind
        write_files({out / name: data for name, data in files(out).items()})
    failed = f" ({len(doc['failed'])} failed: see bench.md)" if doc["failed"] else ""
    _log(f"wrote {out / JSON_FILE}, {out / TABLE_FILE}, {out / CHART_FILE}{failed}")


def _write_beside(out: Path, files: Callable[[Path], dict[str, Any]]) -> Path | None:
    """``files(directory)`` (name: data) written into a new directory beside ``out``:
    ``OUT.1``, or ``OUT.2``, ... where that exists. Made here, so nothing of anyone's is
    written over; None, with nothing left behind, where it cannot be made or written."""
    if out.name in ("", ".."):  # "." or "x/..": name the directory itself
        out = Path(os.path.abspath(out))
    if not out.name:  # the root
        return None
    for k in itertools.count(1):
        sibling = out.with_name(f"{out.name}.{k}")
        try:
            sibling.mkdir()  # fails where anything is there already
            break
        except FileExistsError:
            continue
        except OSError:
            return None
    try:
        write_files({sibling / name: data for name, data in files(sibling).items()})
    except OSError:
        with contextlib.suppress(OSError):
            sibling.rmdir()  # write_files leaves it empty
        return None
    return sibling


def run_bench(
    out: Path = Path("bench"),
    quick: bool = False,
    repeats: int | None = None,
    device: str | None = None,
    chainer_python: Path | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Run the benchmark, print the Markdown table, write ``bench.json``, ``bench.md``
    and ``bench.png`` into ``out``; return the JSON document.

    ``device`` None: the CPU, and CUDA when present; else only that device.
    ``quick``: one layer, a 500-point series (CI smoke test). ``repeats``: timed epochs
    per contender, by default 3, or 1 with ``quick``. Everything runs in float32 (no
    TF32 in cuDNN and cuBLAS: :func:`~nsteplstm.device.seed_everything`).
    Raises InputError for a bad device, ``repeats`` outside 1 to :data:`MAX_REPEATS`, an
    ``out`` that already holds one of the three files (unless ``force``) or cannot be
    created, or an unusable ``chainer_python``: all before the first timing. ``out`` is
    created only when the results are written, so a failed run leaves nothing behind;
    where ``out`` can no longer take them once the bench has run (a ``bench.md``
    appeared there meanwhile, say), InputError naming the new directory beside it,
    ``OUT.1``, that holds them instead, its bench.json with ``written_to``: ``OUT.1``
    (:func:`_write_results`). A contender that fails once the timing has begun (a
    baseline subprocess that times out or crashes, in its warm-up or a later round;
    Chainer's forecast) does not end the run: it is left out of the rounds that remain,
    the ratios, the targets and the chart, and listed under ``failed`` in the document
    (and in one line of bench.md); the rest is written in full. So are our forecast on a
    device (``forecast``: no rows for that device) and the memory probe (``peak-rss``:
    ``peak_rss`` None), where they raise (the probe also where it times out), and the
    float32 peak's reading after the race (``peak``: the device's peak is the reading
    before the race alone). Once a Chainer contender has timed out, Chainer's forecast
    is not started: it is listed under ``failed`` as not run. Callers tell such a run by
    a non-empty ``doc["failed"]``.
    """
    out = Path(out)
    quick, force = check_bool("quick", quick), check_bool("force", force)
    s = _setup(out, quick, repeats, device, chainer_python, force)
    contenders = _contenders(s)
    peak, rows, failed = _time_training(s, contenders)
    timed_out = _chainer_timed_out(contenders, s.repeats)
    forecasts, chainer_fc, forecast_failed = _time_forecasts(s, timed_out)
    rss, rss_failed = _time_memory(s)
    measured = {
        "peak": peak,
        "training": rows,
        "failed": failed + forecast_failed + rss_failed,
        "forecast": forecasts,
        "chainer_forecast": chainer_fc,
        "peak_rss": rss,
    }
    doc = _document(s, out, device, measured)
    _write_results(doc, out, force)
    return doc


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "plain-worker":
        sys.exit("usage: python -m nsteplstm.bench plain-worker CONFIG_JSON (used by the bench)")
    _plain_worker(sys.argv[2])
