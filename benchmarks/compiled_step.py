"""What ``torch.compile`` would give the step-wise cell, measured before building it.

The step-wise model (``cell = "step"``) makes one ``torch.lstm_cell`` call per time
step. On the CPU that call runs a dozen eager operations each way (two products, then
the gates' element-wise work and, backward, its derivatives and the ``cat`` of the four
gate gradients), and torch's CPU ``tanh`` is slow. ``torch.compile`` (Inductor) fuses
the element-wise work of a step into one generated C++ loop forward and one backward;
the products stay library calls. This script times training epochs of the step-wise
model exactly as ``nsteplstm bench`` does (:func:`nsteplstm.bench.ours`: the article's
data and settings, ``nsteplstm.train.train_epoch``), two models side by side,
interleaved epoch after epoch (medians, and the median of each round's ratio):

- ``eager``: :func:`nsteplstm.functional.lstm_cell` (``torch.lstm_cell``), what
  :class:`nsteplstm.StepLSTM` runs;
- ``compiled``: the same math written in torch operations (:func:`cell_ops`), through
  ``torch.compile``, put in its place for that model's epochs (``nsteplstm.model``
  looks ``lstm_cell`` up at each call).

It reports the seconds the first compiled epoch took (Inductor builds its C++ then, and
again for each new batch shape; a later process finds it in Inductor's on-disk cache:
set ``TORCHINDUCTOR_CACHE_DIR`` to an empty directory to time a first use)
and the largest difference of a batch's outputs and gradients from ``eager`` (the
compiled cell must keep the same numbers within float32 rounding). Needs a C++
compiler, as ``torch.compile`` on the CPU does. Prints one JSON object.

    python benchmarks/compiled_step.py [--layers 1 3] [--rounds 12] [--tune-malloc]
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from variable_lengths import at_least, print_report

from nsteplstm import StepLSTM, model, tune_malloc
from nsteplstm.bench import ours
from nsteplstm.cli import Parser, run_command
from nsteplstm.config import Config
from nsteplstm.data import load_dataset
from nsteplstm.functional import lstm_cell

Cell = Callable[..., tuple[Tensor, Tensor]]


def cell_ops(
    x: Tensor, h: Tensor, c: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor
) -> tuple[Tensor, Tensor]:
    """``torch.lstm_cell``'s math in torch operations: ``x`` ``(B, I)``, ``h``, ``c``
    ``(B, H)`` -> new ``(h, c)``; gates (i, f, a, o) as ``torch.nn.LSTMCell``."""
    gates = torch.addmm(b_ih + b_hh, x, w_ih.t()) + h @ w_hh.t()  # (B, 4H)
    i, f, a, o = gates.chunk(4, 1)
    c1 = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(a)
    return torch.sigmoid(o) * torch.tanh(c1), c1


def run_steps(cell: Cell, x: Tensor, weights: list[Tensor]) -> Tensor:
    """``x`` ``(T, B, I)`` one step per ``cell`` call from zero state -> ``(T, B, H)``."""
    h = c = x.new_zeros(x.shape[1], weights[1].shape[1])  # (B, H)
    hs = []
    for x_t in x:
        h, c = cell(x_t, h, c, *weights)
        hs.append(h)
    return torch.stack(hs)


def gradients(cell: Cell, x: Tensor, weights: list[Tensor], dy: Tensor) -> list[Tensor]:
    """Outputs ``(T, B, H)`` then the gradients of ``sum(y * dy)`` by ``x`` and weights."""
    y = run_steps(cell, x, weights)
    return [y.detach(), *torch.autograd.grad(y, [x, *weights], dy)]


def epoch_race(
    contenders: dict[str, Callable[[], tuple[float, int]]], rounds: int
) -> dict[str, list[float]]:
    """Seconds of each contender's epochs, interleaved after one warm-up round."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for r in range(rounds + 1):
        for name, epoch in contenders.items():
            seconds, _ = epoch()
            if r >= 1:
                times[name].append(seconds)
    return times


def case(n_layers: int, rounds: int) -> dict[str, Any]:
    config = Config(cell="step", n_layers=n_layers)
    torch.compiler.reset()  # dynamo's compiled variants are per function, across cases
    dataset = load_dataset(config)
    cells: dict[str, Cell] = {
        "eager": lstm_cell,
        "compiled": torch.compile(cell_ops, dynamic=False),
    }

    def contender(cell: Cell) -> Callable[[], tuple[float, int]]:
        epoch = ours("step", config, dataset, torch.device("cpu"))

        def run() -> tuple[float, int]:
            model.lstm_cell = cell
            try:
                return epoch()
            finally:
                model.lstm_cell = lstm_cell

        return run

    contenders = {name: contender(cell) for name, cell in cells.items()}
    first_compiled_epoch, _ = contenders["compiled"]()
    step = StepLSTM(config.n_hidden, config.n_hidden)  # a deeper layer's shapes
    weights = [step.weight_ih, step.weight_hh, step.bias_ih, step.bias_hh]
    x = torch.randn(config.sequence_size, config.batch_size, config.n_hidden, requires_grad=True)
    dy = torch.randn(config.sequence_size, config.batch_size, config.n_hidden)
    got, want = (gradients(cells[k], x, weights, dy) for k in ("compiled", "eager"))
    error = max(float((g - w).abs().max() / w.abs().max()) for g, w in zip(got, want, strict=True))

    times = epoch_race(contenders, rounds)
    medians = {k: statistics.median(v) for k, v in times.items()}
    paired = [c / e for c, e in zip(times["compiled"], times["eager"], strict=True)]
    return {
        "n_layers": n_layers,
        "first_compiled_epoch_seconds": round(first_compiled_epoch, 2),
        "compiled_max_relative_error": error,
        "epoch_seconds": {k: round(v, 4) for k, v in medians.items()},
        "best_epoch_seconds": {k: round(min(v), 4) for k, v in times.items()},
        "compiled_over_eager_paired": round(statistics.median(paired), 3),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``python benchmarks/compiled_step.py ARGV``: its exit code (a mistake in ARGV raises
    SystemExit(2)), each error a user can cause one line on stderr."""
    return run_command("compiled_step.py", lambda: _main(argv))


def _main(argv: Sequence[str] | None) -> None:
    parser = Parser(prog="compiled_step.py", description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=at_least(1), nargs="+", default=[1])
    parser.add_argument("--rounds", type=at_least(1), default=12)
    parser.add_argument("--tune-malloc", action="store_true")
    args = parser.parse_args(argv)
    tuned = tune_malloc() if args.tune_malloc else False
    results = [case(n, args.rounds) for n in args.layers]
    print_report(results, tuned, args)


if __name__ == "__main__":
    sys.exit(main())
