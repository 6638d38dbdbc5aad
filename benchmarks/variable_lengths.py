"""Forward+backward time of NStepLSTM on variable-length batches, against torch.nn.LSTM.

Three ways to run the same batch of B sequences (lengths drawn from [min, max]):

- ``nstep``:  ``nsteplstm.NStepLSTM`` (exact outputs and final states per sequence);
- ``packed``: ``torch.nn.LSTM`` on a ``PackedSequence`` (exact, PyTorch's own way);
- ``padded``: ``torch.nn.LSTM`` on the zero-padded ``(T_max, B, I)`` tensor — the
  floor to beat: its final states are wrong for every shorter sequence, and it
  computes every step of padding.

plus the equal-length case: NStepLSTM on B sequences of length 30 (the article's
windows, whatever --min-length and --max-length say) against
``torch.nn.LSTM`` on the same dense tensor (``padded``: nothing is padded then), and
``listed``: ``torch.nn.LSTM`` handling the same list as NStepLSTM does (stack the
inputs, unbind the outputs), the cost of the list form itself, and ``nstep-tensor``:
NStepLSTM given the batch as one ``(B, T, I)`` tensor. The contenders of a case run
interleaved, round after round, and each one's median is reported with the ratios.
Prints one JSON object. ``--tune-malloc`` first calls ``nsteplstm.tune_malloc()``
(freed memory reused instead of page-faulted in again), for every contender alike;
without it glibc's defaults apply, as in any script that does not call it.

    python benchmarks/variable_lengths.py [--layers 1 3] [--rounds 30] [--tune-malloc]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import torch
from torch.nn.utils.rnn import pack_sequence

import nsteplstm as nl
from nsteplstm.cli import Parser, run_command


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def race(contenders: dict[str, Callable[[], None]], rounds: int) -> dict[str, float]:
    """Median seconds of each contender, run interleaved after two warm-up rounds."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for r in range(rounds + 2):
        for name, fn in contenders.items():
            t = timed(fn)
            if r >= 2:
                times[name].append(t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def at_least(lowest: int, below: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer >= ``lowest`` (and < ``below``, when given), else
    the parser's one-line error."""

    def parse(text: str) -> int:
        digits = text.strip().lstrip("+-")
        if not (digits.isascii() and digits.isdigit()) or int(text) < lowest:
            raise argparse.ArgumentTypeError(f"must be an integer >= {lowest}, got {text!r}")
        if below is not None and int(text) >= below:
            raise argparse.ArgumentTypeError(f"must be an integer < {below}, got {text!r}")
        return int(text)

    return parse


def parse_common(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None = None
) -> tuple[argparse.Namespace, bool]:
    """Add the flags every benchmark script here shares (--batch, --hidden, --rounds,
    --seed, --tune-malloc), parse ``argv`` (None: the command line), apply --tune-malloc
    and --seed; return the arguments and whether malloc was tuned."""
    parser.add_argument("--batch", type=at_least(2), default=100)  # stretch.py halves it
    parser.add_argument("--hidden", type=at_least(1), default=200)
    parser.add_argument("--rounds", type=at_least(1), default=30)
    parser.add_argument("--seed", type=at_least(0, below=2**63), default=0)
    parser.add_argument("--tune-malloc", action="store_true")
    args = parser.parse_args(argv)
    tuned = nl.tune_malloc() if args.tune_malloc else False
    torch.manual_seed(args.seed)
    return args, tuned


def print_report(results: list[dict], malloc_tuned: bool, args: argparse.Namespace) -> None:
    """Print the run's results with the facts that qualify them (the script's
    arguments among them), as one JSON object."""
    facts = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    report = {**facts, "malloc_tuned": malloc_tuned, "settings": vars(args), "results": results}
    print(json.dumps(report, indent=1))


def case(n_layers: int, lengths: list[int], in_size: int, hidden: int, rounds: int) -> dict:
    ours = nl.NStepLSTM(n_layers, in_size, hidden)
    ref = torch.nn.LSTM(in_size, hidden, n_layers)
    ref.load_state_dict(ours.lstm.state_dict())
    xs = [torch.randn(n, in_size, requires_grad=True) for n in lengths]
    padded = torch.nn.utils.rnn.pad_sequence(xs).detach().requires_grad_()  # (T_max, B, I)
    dense = len(set(lengths)) == 1

    def run_ours() -> None:
        hy, cy, ys = ours(None, None, xs)
        (torch.cat(ys).sum() + hy.sum() + cy.sum()).backward()

    def run_packed() -> None:
        out, (hy, cy) = ref(pack_sequence(xs, enforce_sorted=False))
        (out.data.sum() + hy.sum() + cy.sum()).backward()

    def run_padded() -> None:
        out, (hy, cy) = ref(padded)
        (out.sum() + hy.sum() + cy.sum()).backward()

    batch_major = padded.detach().transpose(0, 1).contiguous().requires_grad_()  # (B, T, I)

    def run_tensor() -> None:
        hy, cy, ys = ours(None, None, batch_major)
        (ys.sum() + hy.sum() + cy.sum()).backward()

    def run_listed() -> None:
        out, (hy, cy) = ref(torch.stack(xs, 1))
        (torch.cat(out.unbind(1)).sum() + hy.sum() + cy.sum()).backward()

    contenders = {"nstep": run_ours, "padded": run_padded}
    if dense:
        contenders.update({"nstep-tensor": run_tensor, "listed": run_listed})
    else:
        contenders["packed"] = run_packed
    medians = race(contenders, rounds)
    return {
        "n_layers": n_layers,
        "batch": len(lengths),
        "lengths": f"{min(lengths)}..{max(lengths)}",
        "real_steps_share": sum(lengths) / (len(lengths) * max(lengths)),
        "seconds": medians,
        "ratio_to_padded": {k: v / medians["padded"] for k, v in medians.items()},
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``python benchmarks/variable_lengths.py ARGV``: its exit code (a mistake in ARGV
    raises SystemExit(2)), each error a user can cause one line on stderr."""
    return run_command("variable_lengths.py", lambda: _main(argv))


def _main(argv: Sequence[str] | None) -> None:
    parser = Parser(prog="variable_lengths.py", description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=at_least(1), nargs="+", default=[1, 3])
    parser.add_argument("--in-size", type=at_least(1), default=1)
    parser.add_argument("--min-length", type=at_least(1), default=10)
    parser.add_argument("--max-length", type=at_least(1), default=50)
    args, tuned = parse_common(parser, argv)
    if args.min_length > args.max_length:
        parser.error(f"--min-length {args.min_length} is above --max-length {args.max_length}")
    lengths = torch.randint(args.min_length, args.max_length + 1, (args.batch,)).tolist()
    results = []
    for n_layers in args.layers:
        results.append(case(n_layers, lengths, args.in_size, args.hidden, args.rounds))
        same = [30] * args.batch
        results.append(case(n_layers, same, args.in_size, args.hidden, args.rounds))
    print_report(results, tuned, args)


if __name__ == "__main__":
    sys.exit(main())
