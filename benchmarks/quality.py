"""The issue-3 quality bar: does the default recipe learn Fibonacci mod 5 at every depth?

Trains seeds x layers at the article's defaults (60 epochs, CPU unless --device),
then forecasts closed loop from the series start: 120 points in window mode and
1,000 points in stream mode, and prints a Markdown table of the share of
predictions that round to the truth, RMSE and the kept validation loss.

    python benchmarks/quality.py [--seeds 0 1 2] [--layers 1 2 3] [--min-length L] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from nsteplstm.config import Config
from nsteplstm.data import load_dataset
from nsteplstm.forecast import forecast, forecast_metrics, forecast_truth
from nsteplstm.runs import load_run
from nsteplstm.train import train


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--layers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here")
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
    args = parser.parse_args()

    root = args.out or Path(tempfile.mkdtemp(prefix="nsteplstm-quality-"))
    rows = []
    print(
        "| layers | seed | window acc (120) | stream acc (1000) | window RMSE | "
        "stream RMSE | val loss | best epoch |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n_layers in args.layers:
        for seed in args.seeds:
            config = Config(
                n_layers=n_layers,
                seed=seed,
                epochs=args.epochs,
                device=args.device,
                grad_clip=args.grad_clip,
                keep_best=bool(args.keep_best),
                min_length=args.min_length,
            )
            run_dir = root / f"l{n_layers}-s{seed}"
            train(config, run_dir, force=True, quiet=True)
            row = {"n_layers": n_layers, "seed": seed, **evaluate_run(run_dir)}
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
    (root / "quality.json").write_text(json.dumps(rows, indent=1))
    print(f"runs and quality.json in {root}")


if __name__ == "__main__":
    main()
