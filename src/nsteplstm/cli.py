"""The ``nsteplstm`` command: parses arguments and calls the library, nothing more.

Every mistake a user can cause ends in one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from . import __version__
from .config import COMMAND_LINE, Config, fields_help, load_toml, parse_cli_value
from .errors import InputError, one_line, some


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: ...)" to a flag's help unless the help already tells it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text.lower() or action.required:
            return text
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (no usage dump) and exit code 2,
    ``--help`` shows each default, and a flag must be spelled out (``--hor`` for
    ``--horizon`` would stop working, or change meaning, when a new flag shares its
    start). The scripts under ``benchmarks/`` use it too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Help)
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def path_arg(text: str) -> Path:
    """A path argument; an empty one (an unset shell variable, say) would mean ``.``."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path (an unset shell variable?)")
    return Path(text)


def _config_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (defaults: the article's experiment)")
    for field in fields_help():
        if field.name == "format_version":
            continue
        default = "none" if field.default is None else field.default
        group.add_argument(
            field.flag,
            dest=f"cfg_{field.name}",
            metavar=field.kind.rstrip("?").upper(),
            help=field.help if "default" in field.help else f"{field.help} (default: {default})",
        )


def _config_from(args: argparse.Namespace) -> Config | None:
    """Defaults < --config TOML < flags. With --resume the run's own settings < TOML <
    flags, for train to check against the run's (None when nothing was given); each
    bad value is named with the file or the command line it came from."""
    given = {
        key[4:]: parse_cli_value(key[4:], value)
        for key, value in vars(args).items()
        if key.startswith("cfg_") and value is not None
    }
    flags = {key: value for key, value in given.items() if value is not None}
    resets = [key for key, value in given.items() if value is None]  # --min-length none
    toml = load_toml(args.config) if args.config else None
    source = str(args.config) if args.config else "TOML file"
    if not args.resume:
        return Config.merged(toml, flags, toml_source=source, resets=resets)
    if toml is None and not given:
        return None
    from . import runs
    from .train import check_resume_settings

    saved, _, _ = runs.read_config(args.resume)
    run_file = str(runs.output_path(args.resume, runs.CONFIG_FILE))
    named = [(source, toml)] if toml is not None else []
    named.append((COMMAND_LINE, {**flags, **dict.fromkeys(resets)}))
    check_resume_settings(saved, named, args.resume)
    if toml is not None:
        saved = Config.merged(
            saved.to_dict(), toml, toml_source=run_file, overrides_source=source, stored=True
        )
    return Config.merged(saved.to_dict(), flags, toml_source=run_file, resets=resets, stored=True)


def _cmd_train(args: argparse.Namespace) -> int:
    from .device import tune_malloc
    from .train import train

    tune_malloc()
    if args.resume is None and args.out is None:
        raise InputError("--out RUN is required (or --resume RUN to continue a run)")
    if args.resume is not None and args.out is not None:
        raise InputError("give either --out RUN or --resume RUN, not both")
    config = _config_from(args)
    result = train(
        config,
        args.resume or args.out,
        force=args.force,
        resume=args.resume is not None,
        quiet=args.quiet,
    )
    m = result.metrics
    done = f"trained {result.path}" if result.trained else f"{result.path} had finished already"
    if result.rewritten:
        done += " (its final files were missing or damaged: written again from its checkpoint)"
    print(
        f"{done}: train loss {m['train_loss']:.4g}, "
        f"validation loss {m['val_loss']:.4g}, {m['seconds']:.1f} s"
    )
    short = m.get("series_without_train_window", 0), m.get("series_without_val_window", 0)
    if any(short):
        left_out = m.get("series_left_out", {})  # not in runs written before it was kept
        named = "".join(
            f"; no {part} window: {some(left_out[key])}"
            for part, key in (("training", "train"), ("validation", "val"))
            if left_out.get(key)
        )
        print(
            f"note: of {m['series']} series, {short[0]} gave no training window and {short[1]} "
            f"no validation window (their part of the split is under sequence_size + 1 "
            f"points){named}"
        )
    return 0


def _cmd_forecast(args: argparse.Namespace) -> int:
    from .forecast import forecast_run

    result = forecast_run(
        args.run,
        mode=args.mode,
        horizon=args.horizon,
        start=args.start,
        series=args.series,
        force=args.force,
        name=args.name,
        data=args.data,
    )
    hidden = {"data"} if args.data is None else set()  # the run's own: config.json says it
    if result["series"] is None:  # one series
        hidden.add("series")
    print(_format_metrics({k: v for k, v in result.items() if k not in hidden}))
    if result["in_sample"]:
        partly = "" if result["in_sample"] == result["points"] else "partly "
        print(
            f"note: {result['in_sample']} of the {result['points']} scored points "
            f"{'lies' if result['in_sample'] == 1 else 'lie'} in "
            f"the part of the data the model was trained on, so these scores are {partly}"
            f"in-sample; forecasts from --start {result['held_out_from']} on score held-out "
            "points only"
        )
    elif result["in_sample"] is None and result["points"]:
        print(
            "note: which of these points the model was trained on is not known (in_sample "
            "n/a): this series does not begin with the rows the run was trained on (or "
            "the run did not see it), or the run does not record them (imported from "
            "Chainer; an older run knows them only while its file is unchanged and its "
            "SHA-256 recorded)"
        )
    if "features" in result:
        print(
            f"note: rmse and mae first pool the {len(result['features'])} features, each in "
            "its own units (a large one weighs most); each feature's own scores follow"
        )
    if result["non_finite"]:
        print(
            f"note: {result['non_finite']} predicted values are infinite or NaN (the closed "
            "loop overflowed float32): their CSV cells are empty, rmse and mae null, and "
            "round_accuracy counts them as wrong"
        )
    return 0


def _format_metrics(m: dict[str, Any]) -> str:
    """``k v, ...``; a nested dict (a feature's own scores) as ``k (k v, ...)``, a
    score that does not apply (None: no truth to score, a series not integer-valued)
    as ``n/a``."""
    parts = []
    for k, v in m.items():
        if isinstance(v, dict):
            v = f"({_format_metrics(v)})"
        elif v is None:
            v = "n/a"
        elif isinstance(v, float):
            v = f"{v:.4g}"
        parts.append(f"{k} {v}")
    return ", ".join(parts)


def _cmd_plot(args: argparse.Namespace) -> int:
    from .plots import plot_runs

    plot_runs(args.runs, args.out, labels=args.labels, metric=args.metric, force=args.force)
    print(f"wrote {args.out}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    from .device import tune_malloc

    tune_malloc()
    report = run_demo(args.out, epochs=args.epochs, force=args.force, quiet=args.quiet)
    print(f"report: {report}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_bench

    doc = run_bench(
        out=args.out,
        quick=args.quick,
        repeats=args.repeats,
        device=args.device,
        chainer_python=args.chainer_python,
        force=args.force,
    )
    return 1 if doc["failed"] else 0  # written in full, but a contender is missing


def _cmd_import_chainer(args: argparse.Namespace) -> int:
    from .chainer_import import import_chainer_run

    given = {"dropout": args.dropout, "seed": args.seed, "data": args.data}
    if args.csv_columns is not None:
        given["csv_columns"] = parse_cli_value("csv_columns", args.csv_columns)
    overrides = {k: v for k, v in given.items() if v is not None}
    run = import_chainer_run(
        args.path,
        args.out,
        sequence_size=args.sequence_size,
        force=args.force,
        prefix=args.prefix,
        from_command_line=True,
        **overrides,
    )
    print(f"imported {args.path} into {run}; next: nsteplstm forecast {run}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``nsteplstm`` parser; each command's arguments also set ``func``, the
    function that runs it, and ``parser``, the command's own parser."""
    parser = Parser(
        prog="nsteplstm",
        description="Stacked LSTMs over variable-length sequences: train, forecast, plot, "
        "benchmark, import Chainer checkpoints.",
    )
    parser.add_argument("--version", action="version", version=f"nsteplstm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    _add_train(sub)
    _add_forecast(sub)
    _add_plot(sub)
    _add_demo(sub)
    _add_bench(sub)
    _add_import_chainer(sub)
    return parser


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model and write a run directory")
    p.add_argument("--config", type=path_arg, help="TOML file of settings (flags win over it)")
    p.add_argument("--out", type=path_arg, help="run directory to create")
    p.add_argument(
        "--resume",
        type=path_arg,
        metavar="RUN",
        help="continue RUN from its checkpoint, with its own settings (--device may "
        "differ, and --data csv:PATH names its CSV file's new place if it moved)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace the run in an existing --out directory (only the files a run writes "
        "are removed, and only once the new run's first checkpoint is written; a Ctrl-C "
        "or a failure before then keeps the old run)",
    )
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar (it is shown only when stdout and stderr are terminals)",
    )
    _config_flags(p)
    p.set_defaults(func=_cmd_train, parser=p)


def _add_forecast(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "forecast",
        help="closed-loop forecast from a trained run",
        description="Closed-loop forecast from a trained run: writes forecast-NAME.csv "
        "(columns t, truth, prediction in the data's units; truth_COLUMN, "
        "prediction_COLUMN per CSV column for several features) and forecast-NAME.png "
        "into RUN and records the scores under forecast.NAME in its metrics.json; NAME "
        "is the mode unless --name says otherwise (an earlier forecast under the same "
        "name is replaced only with --force). 'points' counts the forecast values that "
        "have a true value to compare with (those past the series' end have none), over "
        "all features; 'in_sample' how many of them lie in the series' training part "
        "(their scores are in-sample), and 'held_out_from' the first --start whose "
        "points lie past it (n/a where the run does not know it: a Chainer import, a "
        "series that does not begin with the rows the run was trained on, or an older "
        "run, unless its CSV file is unchanged and its SHA-256 recorded).",
    )
    p.add_argument("run", type=path_arg, help="run directory written by `nsteplstm train`")
    p.add_argument(
        "--mode",
        choices=("window", "stream"),
        default="window",
        help="window: re-run the last window from zero state each step; "
        "stream: carry the LSTM state, one step per point",
    )
    p.add_argument(
        "--horizon",
        type=int,
        default=None,
        help="points to forecast, 1 to 1,000,000 (default: 4 x sequence_size, at most 1,000,000)",
    )
    p.add_argument(
        "--start",
        type=int,
        default=0,
        help="first point of the given start window (t counts from the series start); "
        "negative counts from the series end: -SEQUENCE_SIZE forecasts past the data",
    )
    p.add_argument(
        "--series",
        default=None,
        metavar="ID",
        help="the series to forecast, by its id in the csv_series_id column "
        "(default: the first series in the file)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace an earlier forecast under the same name (its files and metrics entry)",
    )
    p.add_argument(
        "--name",
        default=None,
        help="name of the outputs, to keep several forecasts side by side (e.g. one per "
        "series): letters, digits, _ and - (default: the mode)",
    )
    p.add_argument(
        "--data",
        default=None,
        metavar="csv:PATH",
        help="read this CSV file instead of the run's (a run trained on a CSV file): "
        "the same file moved, or newer data with the columns the run was trained on (by "
        "header name; in the same order where every column was read) and the same series-id "
        "column, scaled as in training "
        "(default: the run's own file)",
    )
    p.set_defaults(func=_cmd_forecast, parser=p)


def _add_plot(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="overlay the loss curves of several runs")
    p.add_argument("runs", type=path_arg, nargs="+", metavar="RUN", help="run directories to plot")
    p.add_argument(
        "--out",
        type=path_arg,
        required=True,
        help="PNG file to write, in an existing directory (the name must end in .png)",
    )
    p.add_argument("--labels", nargs="+", help="legend label per run (default: run names)")
    p.add_argument(
        "--metric",
        choices=("val_loss", "train_loss", "both"),  # plots.METRICS: it imports matplotlib
        default="both",
        help="curves per run: validation loss, training loss, or both (training dashed)",
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    p.set_defaults(func=_cmd_plot, parser=p)


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="the article end to end: 1, 2, 3 layers, dropout 0.4 and 0.5, forecasts, plots, "
        "report.html",
    )
    p.add_argument("--out", type=path_arg, default=Path("demo"), help="output directory")
    p.add_argument("--epochs", type=int, default=60, help="training epochs per model")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace an earlier demo in --out (its runs, plots and report; other files stay)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_demo, parser=p)


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="training and forecast speed: step vs nstep, CPU and CUDA",
    )
    p.add_argument("--out", type=path_arg, default=Path("bench"), help="output directory")
    p.add_argument(
        "--quick", action="store_true", help="a reduced set, one timed epoch each, under a minute"
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed epochs per configuration (default: 3, or 1 with --quick)",
    )
    p.add_argument(
        "--device",
        default=None,
        help="auto, cpu, cuda, cuda:K, or the article's -1 (CPU) / K >= 0 (GPU K) "
        "(default: the CPU, and CUDA when present)",
    )
    p.add_argument(
        "--chainer-python",
        type=path_arg,
        default=None,
        help="python of a Chainer 7.8.1 venv: run the Chainer baseline side by side",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace bench.json, bench.md and bench.png already in --out",
    )
    p.set_defaults(func=_cmd_bench, parser=p)


def _add_import_chainer(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import-chainer",
        help="turn a Chainer save_npz checkpoint into a run directory",
    )
    p.add_argument("path", type=path_arg, help=".npz file written by chainer.serializers.save_npz")
    p.add_argument("--out", type=path_arg, required=True, help="run directory to create")
    p.add_argument(
        "--sequence-size",
        type=int,
        default=30,
        help="window size the model was trained with (not in the checkpoint)",
    )
    p.add_argument(
        "--dropout",
        type=float,
        default=None,
        help="dropout the model was trained with (default: the article's 0.3)",
    )
    p.add_argument("--seed", type=int, default=None, help="seed recorded in the run (default 0)")
    p.add_argument(
        "--data",
        default=None,
        help="series the model forecasts: fibonacci (the article's, default), sine or "
        "csv:PATH; a model with n_in or n_out > 1 needs csv:PATH with that many columns",
    )
    p.add_argument(
        "--csv-columns",
        default=None,
        metavar="COLUMNS",
        help="with --data csv:PATH, the columns to use: names or 0-based indices, "
        "comma-separated (default: every column)",
    )
    p.add_argument(
        "--prefix",
        default=None,
        help="sub-chain holding the article's l1/ and l2/, e.g. "
        "'updater/model:main/predictor/' in a Trainer snapshot (default: the whole file)",
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing --out directory")
    p.set_defaults(func=_cmd_import_chainer, parser=p)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that it unwinds as after Ctrl-C:
    temporary files go, child processes are stopped, the demo says how to start it
    again; ``signum`` tells it from a Ctrl-C. Training handles SIGTERM itself (a
    checkpoint first): its handler replaces this one while it runs."""

    signum = signal.SIGTERM


def _terminated(signum: int, frame: Any) -> NoReturn:
    raise _Terminated


# The exit code where stdout's reader went away (``nsteplstm forecast RUN | head -1``):
# a shell's for a program that SIGPIPE ended, as GNU tools end there (128 + 13; Windows
# has no signal.SIGPIPE). No user error (2), nor a failed run (1): the work is done.
EXIT_PIPE = 141


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 failed run, 2 user error,
    130 interrupted by SIGINT, 141 stdout's reader gone, 143 by SIGTERM)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args, unknown = build_parser().parse_known_args(argv)
        if unknown and args.command == "plot":  # runs on both sides of a flag: a --out x b
            at = argv.index("plot")
            args = args.parser.parse_intermixed_args(
                argv[at + 1 :], argparse.Namespace(command="plot")
            )
            unknown = argv[:at]  # before the command, where only --help and --version exist
        if unknown:  # said by the command's parser, so the line names the command
            args.parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    except KeyboardInterrupt:
        print("nsteplstm: interrupted", file=sys.stderr)
        return 130
    except SystemExit as e:  # --help or --version printed (0), or a usage mistake (2)
        if e.code == 0:
            e.code = _flushed(0)
        raise
    return run_command(f"nsteplstm {args.command}", lambda: args.func(args))


def run_command(name: str, call: Callable[[], int | None]) -> int:
    """Run ``call`` as the command ``name`` (``"nsteplstm train"``, a benchmark script)
    and return its exit code (None: 0): every error a user can cause is one line on
    stderr, ``NAME: error: ...``, SIGINT and SIGTERM end it as Ctrl-C does, and
    stdout's reader gone ends it quietly with :data:`EXIT_PIPE`."""
    handles = threading.current_thread() is threading.main_thread()  # signal's own rule
    previous = signal.signal(signal.SIGTERM, _terminated) if handles else None
    try:
        code = _run(name, call)
    except _Terminated:
        print(f"{name}: interrupted by SIGTERM", file=sys.stderr)
        code = 128 + signal.SIGTERM
    except KeyboardInterrupt:  # also while torch is being imported
        print(f"{name}: interrupted", file=sys.stderr)
        code = 130
    finally:
        if handles:  # None: a handler set outside Python, which signal cannot restore
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
    return _flushed(code)


def _flushed(code: int) -> int:
    """``code``, once what the command printed is flushed: where stdout's reader has
    gone, that is found here, not as the interpreter exits (which warns and exits 120),
    and a command that succeeded ends with :data:`EXIT_PIPE`."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _to_devnull(sys.stdout)
        return EXIT_PIPE if code == 0 else code
    return code


def _to_devnull(stream: TextIO) -> None:
    """Point the file descriptor of ``stream`` (stdout or stderr), whose reader has gone,
    at ``os.devnull``: the interpreter's flush as it exits writes what is left there,
    not into the closed pipe again (Python's recipe, in the signal module's docs)."""
    with contextlib.suppress(AttributeError, OSError, ValueError):  # no fileno (captured)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, stream.fileno())
        finally:
            os.close(devnull)


@contextlib.contextmanager
def _sigint_after() -> Iterator[None]:
    """A SIGINT inside is raised (KeyboardInterrupt) only once it ends: raised inside
    ``import torch`` (its C++ calls back into Python), it aborted the process."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:  # None: a handler set outside Python, which signal cannot restore
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)
    if caught:
        raise KeyboardInterrupt


def _run(name: str, call: Callable[[], int | None]) -> int:
    """``call``'s exit code; every error a user can cause as one line."""
    with _sigint_after():
        from .train import Interrupted, NonFiniteLoss  # torch's import: a few seconds

    try:
        return call() or 0
    except InputError as e:
        _error(name, str(e))
        return 2
    except Interrupted as e:  # the message says how to resume, where one can
        _error(name, str(e), kind="")
        return e.exit_code
    except NonFiniteLoss as e:
        _error(name, str(e))
        return 1
    except OSError as e:  # a path the user named cannot be read or written
        if isinstance(e, BrokenPipeError) and e.filename is None:  # stdout's reader gone
            _to_devnull(sys.stdout)
            return EXIT_PIPE
        _error(name, f"{e.filename}: {e.strerror}" if e.filename and e.strerror else str(e))
        return 2
    except (MemoryError, RuntimeError) as e:
        if isinstance(e, RuntimeError) and not _is_out_of_memory(e):
            raise
        _error(name, f"out of memory ({one_line(e)[:200]}); {_LESS_MEMORY.get(name, _FREE_MEMORY)}")
        return 2


# What needs less memory, by command; the others have no sizes to give (bench, demo).
_LESS_MEMORY = {
    "nsteplstm train": "smaller sizes (n_hidden, n_layers, total_size, batch_size) need less",
    "nsteplstm forecast": "a shorter --horizon needs less",
}
_FREE_MEMORY = "close what else holds memory, or use a machine with more"


def _error(name: str, message: str, kind: str = "error: ") -> None:
    """The one line on stderr: line breaks in the message (a path may hold one) escaped."""
    message = message.replace("\r", "\\r").replace("\n", "\\n")
    try:
        print(f"{name}: {kind}{message}", file=sys.stderr)
    except BrokenPipeError:  # stderr's reader gone too (2>&1 | head): the exit code tells
        _to_devnull(sys.stderr)


def _is_out_of_memory(e: RuntimeError) -> bool:
    """Whether torch failed to allocate (CPU allocator, CUDA, or cuBLAS's or cuDNN's own
    ``..._STATUS_ALLOC_FAILED``), not some other error."""
    text = str(e)
    return any(s in text for s in ("can't allocate memory", "ALLOC_FAILED")) or (
        "out of memory" in text.lower()
    )


if __name__ == "__main__":
    sys.exit(main())
