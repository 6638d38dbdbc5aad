"""The issue-3 quality bar: does the default recipe learn Fibonacci mod 5 at every depth?

Trains seeds x layers at the article's defaults (60 epochs, CPU unless --device),
then forecasts closed loop from the series start: 120 points in window mode and
1,000 points in stream mode, and prints a Markdown table of the share of
predictions that round to the truth, RMSE and the kept validation loss.

    python benchmarks/quality.py [--seeds 0 1 2] [--layers 1 2 3] [--min-length L] [--out DIR]

Every setting is checked, and so is every run directory under --out (runs there and
quality.json are replaced only with --force), before the first run trains.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from nsteplstm.cli import Parser, path_arg, run_command
from nsteplstm.config import Config
from nsteplstm.data import load_dataset
from nsteplstm.device import resolve_device
from nsteplstm.errors import InputError
from nsteplstm.forecast import forecast, forecast_metrics, forecast_truth
from nsteplstm.runs import atomic_write, check_run_dir_free, load_run
from nsteplstm.train import Interrupted, train

# The settings each row of quality.json records beside n_layers and seed.
RECORDED = ("epochs", "min_length", "grad_clip", "keep_best", "device")


def evaluate_run(run_dir: Path) -> dict:
    run = load_run(run_dir)
    series = load_dataset(run.config).series[0]
    s = run.config.sequence_size
    row = {"val_loss": run.metrics["val_loss"], "best_epoch": run.metrics.get("best_epoch")}
    for mode, horizon in (("window", 4 * s), ("stream", 1000)):
        pred = forecast(run.model, series, [0], s, horizon, mode)
        m = forecast_metrics(pred, forecast_truth(series, [0], s, horizon), True)
        row[mode] = {"points": m["points"], "accuracy": m["round_accuracy"], "rmse": m["rmse"]}
    return row


def main(argv: Sequence[str] | None = None) -> int:
    """``python benchmarks/quality.py ARGV``: its exit code (a mistake in ARGV raises
    SystemExit(2)), each error a user can cause one line on stderr."""
    return run_command("quality.py", lambda: _main(argv))


def _main(argv: Sequence[str] | None) -> int:
    parser = Parser(prog="quality.py", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one run each")
    parser.add_argument("--layers", type=int, nargs="+", default=[1, 2, 3], help="per seed")
    parser.add_argument("--epochs", type=int, default=60, help="per run")
    parser.add_argument("--device", default="cpu", help="as nsteplstm train --device")
    parser.add_argument("--out", type=path_arg, default=None, help="keep the runs here")
    parser.add_argument(
        "--force", action="store_true", help="replace runs and quality.json already in --out"
    )
    parser.add_argument(
        "--grad-clip",
        type=float,
        default=Config.grad_clip,
        help="0 turns clipping off (the ablation of the recipe)",
    )
    parser.add_argument(
        "--keep-best",
        type=int,
        default=1,
        choices=(0, 1),
        help="0 keeps the last epoch's weights (the ablation of the recipe)",
    )
    parser.add_argument(
        "--min-length",
        type=int,
        default=None,
        help="train on variable-length windows, lengths uniform in [MIN_LENGTH, 30]",
    )
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Train, forecast and print the table; InputError before any training for a bad
    setting or an --out that holds runs or quality.json (unless --force). Returns the
    exit code: 0, or a signal's when a run was interrupted (it cannot be resumed here:
    its directory is partly trained, and only --force starts it over)."""
    for name, values in (("--seeds", args.seeds), ("--layers", args.layers)):
        if len(set(values)) != len(values):  # the same run would be trained twice
            raise InputError(f"{name} {' '.join(map(str, values))}: each value once")
    resolve_device(args.device)  # a CUDA run on a machine without one: refused now
    plan = []
    for n_layers in args.layers:
        for seed in args.seeds:
            settings = dict(n_layers=n_layers, seed=seed, epochs=args.epochs, device=args.device)
            settings |= dict(grad_clip=args.grad_clip, keep_best=bool(args.keep_best))
            config = Config.from_dict({**settings, "min_length": args.min_length}, "quality.py")
            plan.append((f"l{n_layers}-s{seed}", config))
    if args.out is not None:
        for name, _ in plan:
            check_run_dir_free(args.out / name, args.force)
        if (args.out / "quality.json").exists() and not args.force:
            raise InputError(f"{args.out / 'quality.json'} already exists; use --force")
    root = args.out or Path(tempfile.mkdtemp(prefix="nsteplstm-quality-"))
    rows = []
    print(
        "| layers | seed | window acc (120) | stream acc (1000) | window RMSE | "
        "stream RMSE | val loss | best epoch |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, config in plan:
        n_layers, seed = config.n_layers, config.seed
        try:
            train(config, root / name, force=args.force, quiet=True)
        except Interrupted as e:
            print(f"quality.py: interrupted; {root / name} is partly trained", file=sys.stderr)
            return e.exit_code
        settings = {k: getattr(config, k) for k in RECORDED}
        row = {"n_layers": n_layers, "seed": seed, **settings, **evaluate_run(root / name)}
        rows.append(row)
        w, st = row["window"], row["stream"]
        print(
            f"| {n_layers} | {seed} | {w['accuracy']:.1%} | {st['accuracy']:.1%} | "
            f"{w['rmse']:.3f} | {st['rmse']:.3f} | {row['val_loss']:.4f} | "
            f"{row['best_epoch']} |",
            flush=True,
        )
    full_window = sum(r["window"]["accuracy"] == 1.0 for r in rows)
    good_stream = sum(r["stream"]["accuracy"] >= 0.99 for r in rows)
    print(f"\nwindow 100%: {full_window}/{len(rows)}; stream >= 99%: {good_stream}/{len(rows)}")
    atomic_write(root / "quality.json", json.dumps(rows, indent=1))
    print(f"runs and quality.json in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
