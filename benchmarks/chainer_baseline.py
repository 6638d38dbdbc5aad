"""Time the article's training epoch with Chainer 7.8.1 on the CPU (reference numbers).

Chainer is never a dependency of the project; run this with a side venv (the recipe
is in docs/performance.md, "Chainer's side")::

    /tmp/chainer/bin/python benchmarks/chainer_baseline.py --cell nstep --layers 1

Setup, as in the article: Fibonacci numbers mod 5 (2000 points, computed exactly and
then reduced), the first 90% for training (``--train-points``, which ``nsteplstm bench``
passes, or ``floor(split_rate * total_size)`` with the split rate taken as the decimal
it is written as, as nsteplstm splits), every window of 31 points a sample (input
the first 30, target the same shifted by one), Adam with defaults, batch 100, windows
reshuffled every epoch. The model is an LSTM of ``--hidden`` units, then a Linear
layer applied to the outputs of all steps of all sequences at once; the loss is one
mean squared error over them.

``--cell nstep`` uses ``links.NStepLSTM(layers, 1, hidden, dropout)`` on a list of
sequences. ``--cell step`` stacks ``layers`` ``links.LSTM`` links driven one time step
per call (state reset per batch), with the same dropout on the input of every layer
but the first. Each epoch (forward, backward and update of every batch) is timed with
``time.perf_counter``; one JSON object is printed on stdout.

``--forecast N`` times the article's closed-loop prediction instead, as its text
describes it (the code of its ``predict.py`` is not published): from the series' first
window, one call of the model per point on the latest ``--sequence-size`` points
(batch 1, ``chainer.config.train = False``, no graph), the last step's output appended
to the window, ``N`` times; ``--warmup`` untimed forecasts, then ``--repeats`` timed
ones. The weights are untrained: the time does not depend on them.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np

try:
    import chainer
    import chainer.functions as F
    import chainer.links as L
    from chainer import initializers, optimizers
except ImportError as e:  # --help works without Chainer; a run stops in main
    chainer, NO_CHAINER = None, " ".join(str(e).split())
else:
    NO_CHAINER = None

# The models' base class; a stand-in without Chainer, where main stops before any model.
_Chain = object if chainer is None else chainer.Chain


def fibonacci_mod(total: int, mod: int) -> np.ndarray:
    """First ``total`` Fibonacci numbers (F0 = 0, F1 = 1), exact, then taken mod ``mod``."""
    values = []
    a, b = 0, 1
    for _ in range(total):
        values.append(a % mod)
        a, b = b, a + b
    return np.array(values, dtype=np.float32)


def train_points(split_rate: float, total: int) -> int:
    """The training part of ``total`` points: ``floor(split_rate * total)``, with
    ``split_rate`` taken as its decimal, as ``nsteplstm.config.train_points`` has it
    (0.57 of 100 is 57 points; float arithmetic gives 56.99999999999999, which
    ``int()`` cut to 56). Written out here: this script runs in Chainer's venv,
    without nsteplstm."""
    return math.floor(Fraction(str(float(split_rate))) * total)


def make_windows(series: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Every window of ``size + 1`` points: inputs (n, size, 1) and targets shifted by one."""
    n = len(series) - size
    idx = np.arange(n)[:, None] + np.arange(size + 1)[None, :]
    w = series[idx][:, :, None]
    return w[:, :-1], w[:, 1:]


class NStepModel(_Chain):
    """NStepLSTM over a list of sequences, then Linear on every step of every sequence."""

    def __init__(self, n_layers: int, hidden: int, dropout: float) -> None:
        super().__init__()
        with self.init_scope():
            self.lstm = L.NStepLSTM(n_layers, 1, hidden, dropout)
            self.out = L.Linear(hidden, 1, initialW=initializers.Normal(0.01))

    def forward(self, x: np.ndarray) -> chainer.Variable:
        """Map a batch (B, T, 1) to outputs (B * T, 1), sequence-major."""
        _, _, ys = self.lstm(None, None, list(x))
        return self.out(F.concat(ys, axis=0))


class StepModel(_Chain):
    """Stacked links.LSTM driven one time step per call, then Linear on every step."""

    def __init__(self, n_layers: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.dropout = dropout
        with self.init_scope():
            self.lstms = chainer.ChainList(
                *[L.LSTM(1 if k == 0 else hidden, hidden) for k in range(n_layers)]
            )
            self.out = L.Linear(hidden, 1, initialW=initializers.Normal(0.01))

    def forward(self, x: np.ndarray) -> chainer.Variable:
        """Map a batch (B, T, 1) to outputs (B * T, 1), sequence-major."""
        for lstm in self.lstms:
            lstm.reset_state()
        steps = []
        for t in range(x.shape[1]):
            h = x[:, t]
            for k, lstm in enumerate(self.lstms):
                if k > 0:
                    h = F.dropout(h, self.dropout)
                h = lstm(h)
            steps.append(h)
        h = F.stack(steps, axis=1)  # (B, T, hidden)
        return self.out(F.reshape(h, (-1, h.shape[2])))


def run_epoch(
    model: chainer.Chain,
    optimizer: chainer.Optimizer,
    x: np.ndarray,
    t: np.ndarray,
    batch_size: int,
    rng: np.random.RandomState,
) -> tuple[float, int]:
    """Train one epoch over reshuffled windows; return (mean loss per window, batches)."""
    order = rng.permutation(len(x))
    total = 0.0
    n_batches = 0
    for start in range(0, len(x), batch_size):
        batch = order[start : start + batch_size]
        y = model(x[batch])
        loss = F.mean_squared_error(y, t[batch].reshape(-1, 1))
        model.cleargrads()
        loss.backward()
        optimizer.update()
        total += float(loss.array) * len(batch)
        n_batches += 1
    return total / len(x), n_batches


def _number(kind: type, lowest: float, below: float | None = None) -> Callable[[str], Any]:
    """An argparse type: a ``kind`` number >= ``lowest`` (and < ``below``). This script
    runs in Chainer's venv, without nsteplstm, so it has its own."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value >= lowest or (below is not None and not value < below):
            limits = f">= {lowest}" + ("" if below is None else f" and < {below}")
            raise argparse.ArgumentTypeError(f"must be {limits}, got {text!r}")
        return value

    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags; defaults are the article's setup."""
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--cell", choices=("nstep", "step"), default="nstep", help="LSTM link")
    p.add_argument("--layers", type=_number(int, 1), default=1, help="stacked layers")
    p.add_argument("--repeats", type=_number(int, 1), default=3, help="timed epochs")
    p.add_argument("--warmup", type=_number(int, 0), default=1, help="untimed epochs first")
    p.add_argument("--seed", type=_number(int, 0, 2**32), default=0, help="numpy's seed")
    p.add_argument("--hidden", type=_number(int, 1), default=200, help="hidden units")
    p.add_argument("--batch-size", type=_number(int, 1), default=100, help="windows per batch")
    p.add_argument("--sequence-size", type=_number(int, 1), default=30, help="window length")
    p.add_argument("--total-size", type=_number(int, 2), default=2000, help="series points")
    p.add_argument("--dropout", type=_number(float, 0, 1), default=0.3, help="between layers")
    p.add_argument("--split-rate", type=_number(float, 0, 1), default=0.9, help="training part")
    p.add_argument(
        "--train-points",
        type=_number(int, 2),
        default=None,
        help="points of the training part; wins over --split-rate (default: "
        "floor(split_rate * total_size), the split rate taken as its decimal)",
    )
    p.add_argument("--modulo", type=_number(int, 1), default=5, help="Fibonacci modulo")
    p.add_argument(
        "--forecast", type=_number(int, 0), default=0, help="time an N-point forecast instead"
    )
    args = p.parse_args(argv)
    if args.train_points is None:
        args.train_points = train_points(args.split_rate, args.total_size)
    elif args.train_points > args.total_size:
        p.error(f"--train-points {args.train_points} is more than --total-size {args.total_size}")
    if args.train_points <= args.sequence_size:
        p.error(
            f"the training part of the series ({args.train_points} points) is shorter "
            f"than one window plus one point ({args.sequence_size + 1})"
        )
    return args


def closed_loop(model: chainer.Chain, window: np.ndarray, points: int) -> list[float]:
    """Predict ``points`` values after ``window`` (``(T,)``), one model call per point on
    the latest ``T`` values, each prediction appended to them."""
    values = [float(v) for v in window]
    size = len(window)
    with chainer.using_config("train", False), chainer.no_backprop_mode():
        for _ in range(points):
            x = np.array(values[-size:], dtype=np.float32).reshape(1, size, 1)
            values.append(float(model(x).array[-1, 0]))  # the window's last step
    return values[size:]


def timed_runs(run: Callable[[], Any], warmup: int, repeats: int) -> tuple[list[float], Any]:
    """Call ``run`` ``warmup + repeats`` times; the seconds of the last ``repeats`` calls
    and what the last call returned."""
    seconds, result = [], None
    for k in range(warmup + repeats):
        start = time.perf_counter()
        result = run()
        if k >= warmup:
            seconds.append(round(time.perf_counter() - start, 4))
    return seconds, result


def require_chainer() -> None:
    """Exit with code 2 and one line on stderr when Chainer could not be imported."""
    if NO_CHAINER is not None:
        print(
            f"chainer_baseline.py: needs Chainer 7.8.1, which {sys.executable} cannot "
            f"import ({NO_CHAINER}): run it with a Chainer venv's Python "
            '(docs/performance.md, "Chainer\'s side")',
            file=sys.stderr,
        )
        raise SystemExit(2)


def main(argv: list[str] | None = None) -> None:
    """Train (or forecast) with the given flags and print the timings as one JSON object."""
    args = parse_args(argv)
    require_chainer()
    np.random.seed(args.seed)  # Chainer's initializers and CPU dropout draw from here
    rng = np.random.RandomState(args.seed)
    chainer.config.train = True

    series = fibonacci_mod(args.total_size, args.modulo)
    model_cls = NStepModel if args.cell == "nstep" else StepModel
    model = model_cls(args.layers, args.hidden, args.dropout)
    about = {
        "framework": "chainer",
        "chainer_version": chainer.__version__,
        "cell": args.cell,
        "n_layers": args.layers,
        "warmup": args.warmup,
        "settings": vars(args),  # everything that ran: sizes, seed, dropout, ...
    }
    if args.forecast:
        window = series[: args.sequence_size]
        seconds, _ = timed_runs(
            lambda: closed_loop(model, window, args.forecast), args.warmup, args.repeats
        )
        print(
            json.dumps({**about, "forecast_points": args.forecast, "seconds_per_forecast": seconds})
        )
        return

    x, t = make_windows(series[: args.train_points], args.sequence_size)
    optimizer = optimizers.Adam()
    optimizer.setup(model)
    seconds, (loss, n_batches) = timed_runs(
        lambda: run_epoch(model, optimizer, x, t, args.batch_size, rng), args.warmup, args.repeats
    )
    timings = {"seconds_per_epoch": seconds, "batches_per_epoch": n_batches}
    print(json.dumps({**about, **timings, "final_train_loss": loss}))


if __name__ == "__main__":
    main()
