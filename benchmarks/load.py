"""Load check (issue 6): big inputs run in bounded memory that does not grow per epoch.

1. Forecasts from 10,000 start windows of one generated series at once in stream
   mode (one batch) and reports the time and the peak resident memory of that process.
2. Trains on a generated 1,000,000-point CSV series through ``nsteplstm train`` in a
   subprocess and reports its peak resident memory after epoch 1 and after the
   last epoch (from the run's ``metrics.json``).

Prints the forecast's result as one JSON line first, then both as one JSON object.
Settings are checked before anything runs; a failed training run ends the script
with its own one-line error and exit status.

    python benchmarks/load.py [--points 1000000] [--epochs 3] [--n-hidden 32] \
                              [--series 10000] [--horizon 120]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from variable_lengths import at_least

from nsteplstm.cli import Parser, run_command
from nsteplstm.config import Config, train_points
from nsteplstm.device import peak_memory_mib


def write_csv(path: Path, points: int) -> None:
    t = np.arange(points)
    rng = np.random.default_rng(0)
    values = 50 + 10 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 1, points)
    np.savetxt(path, values, fmt="%.4f", header="load", comments="")


def fewest_points(config: Config) -> int:
    """The shortest series that ``config``'s split leaves a training and a validation
    window (each part at least ``sequence_size + 1`` points)."""
    window = config.sequence_size + 1
    points = 2 * window
    while min(n := train_points(config.split_rate, points), points - n) < window:
        points += 1
    return points


def train_big(root: Path, points: int, epochs: int, hidden: int) -> dict:
    csv = root / "big.csv"
    write_csv(csv, points)
    run = root / "run"
    cmd = [
        sys.executable,
        "-m",
        "nsteplstm.cli",
        "train",
        "--data",
        f"csv:{csv}",
        "--out",
        str(run),
        "--epochs",
        str(epochs),
        "--n-hidden",
        str(hidden),
        "--batch-size",
        "1000",
        "--quiet",
    ]
    began = time.perf_counter()
    done = subprocess.run(cmd, stdout=sys.stderr)  # stdout holds only this script's JSON
    if done.returncode != 0:  # the command printed its own one-line reason
        sys.exit(done.returncode)
    metrics = json.loads((run / "metrics.json").read_text())
    return {
        "points": points,
        "epochs": epochs,
        "n_hidden": hidden,
        "batch_size": 1000,
        "seconds": time.perf_counter() - began,
        "peak_rss_mib_epoch1": metrics["peak_rss_mib_epoch1"],
        "peak_rss_mib_last_epoch": metrics["peak_rss_mib"],
        "seconds_per_epoch": metrics["seconds_per_epoch"],
    }


def forecast_many(n_series: int, horizon: int) -> dict:
    import torch

    from nsteplstm.forecast import forecast
    from nsteplstm.model import Forecaster

    torch.manual_seed(0)
    model = Forecaster(1, 1, 200, 1).eval()
    series = np.sin(np.arange(n_series + 60) / 5).astype(np.float32)
    began = time.perf_counter()
    pred = forecast(model, series, list(range(n_series)), 30, horizon, "stream")
    seconds = time.perf_counter() - began
    return {
        "series": n_series,
        "horizon": horizon,
        "model": model.config,  # the article's model (an untrained one: speed and memory)
        "shape": list(pred.shape),
        "seconds": seconds,
        "points_per_second": n_series * horizon / seconds,
        "peak_rss_mib": peak_memory_mib(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``python benchmarks/load.py ARGV``: its exit code (a mistake in ARGV raises
    SystemExit(2)), each error a user can cause one line on stderr."""
    return run_command("load.py", lambda: _main(argv))


def _main(argv: Sequence[str] | None) -> None:
    parser = Parser(prog="load.py", description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=at_least(1), default=1_000_000, help="CSV points")
    parser.add_argument("--epochs", type=at_least(1), default=3, help="training epochs")
    parser.add_argument("--n-hidden", type=at_least(1), default=32, help="hidden units")
    parser.add_argument("--series", type=at_least(1), default=10_000, help="forecast starts")
    parser.add_argument("--horizon", type=at_least(1), default=120, help="points forecast")
    args = parser.parse_args(argv)
    config = Config()  # the training run's settings but --data, --epochs, --n-hidden
    least = fewest_points(config)
    if args.points < least:
        parser.error(
            f"argument --points: must be an integer >= {least}, got {args.points} (the run "
            f"splits at {config.split_rate} and each part needs {config.sequence_size + 1} points)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        result = {"forecast": forecast_many(args.series, args.horizon)}
        print(json.dumps(result), flush=True)
        result["train"] = train_big(Path(tmp), args.points, args.epochs, args.n_hidden)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    sys.exit(main())
