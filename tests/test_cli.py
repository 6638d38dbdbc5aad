"""The `nsteplstm` command end to end: train, forecast, plot, --config, import-chainer, help.

One real subprocess (the training run every other test reads); the rest calls
``main(argv)`` in process. Tiny settings throughout: the machine is shared.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nsteplstm import __version__, cli
from nsteplstm.cli import build_parser, main
from nsteplstm.config import fields_help, flag_of
from nsteplstm.errors import InputError
from nsteplstm.plots import METRICS

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TINY = ["--n-hidden", "8", "--total-size", "300", "--sequence-size", "10", "--batch-size", "50"]
TINY += ["--device", "cpu"]  # the CPU path, also where a GPU is present
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FORECAST_KEYS = {"points", "rmse", "mae", "round_accuracy", "seconds", "start", "series"}
FORECAST_KEYS |= {"non_finite", "mode", "in_sample", "held_out_from", "data"}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`python -m nsteplstm.cli train ...` in a real subprocess (the only one)."""
    run = tmp_path_factory.mktemp("cli") / "RUN"
    cmd = [sys.executable, "-m", "nsteplstm.cli", "train", "--out", str(run), "--epochs", "4"]
    proc = subprocess.run(
        [*cmd, *TINY, "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.startswith(f"trained {run}: train loss ")
    return run


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_train_writes_the_run_directory(trained):
    for name in ("config.json", "model.safetensors", "history.csv", "metrics.json"):
        assert (trained / name).is_file(), name
    doc = json.loads((trained / "config.json").read_text())
    assert doc["format_version"] == 1
    assert doc["config"]["n_hidden"] == 8 and doc["config"]["epochs"] == 4

    with (trained / "history.csv").open() as f:
        assert f.readline().strip() == "epoch,train_loss,val_loss,seconds"
    history = read_csv(trained / "history.csv")
    assert [int(r["epoch"]) for r in history] == [1, 2, 3, 4]
    losses = [float(r["train_loss"]) for r in history]
    assert losses[-1] < losses[0], losses

    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["epochs"] == 4
    assert metrics["train_loss"] == pytest.approx(losses[-1])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mode", "extra", "start", "points"),
    [
        ("window", [], 0, 40),
        ("stream", ["--horizon", "25", "--start", "5"], 5, 25),
        ("window", ["--start", "-15", "--horizon", "5"], 300 - 15, 5),  # counted from the end
    ],
)
def test_forecast_writes_csv_png_and_metrics(trained, tmp_path, capsys, mode, extra, start, points):
    run = tmp_path / "RUN"
    shutil.copytree(trained, run)
    assert main(["forecast", str(run), "--mode", mode, *extra]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert re.search(rf"points {points}\b", out) and "rmse" in out and "mae" in out
    assert "series" not in out  # the data holds one series: nothing to name

    rows = read_csv(run / f"forecast-{mode}.csv")
    assert list(rows[0]) == ["t", "truth", "prediction"]
    t = [int(r["t"]) for r in rows]
    assert t[0] == start and t == list(range(start, start + len(rows)))
    predicted = [r for r in rows if r["prediction"] != ""]
    assert len(predicted) == points
    assert (run / f"forecast-{mode}.png").read_bytes()[:8] == PNG_MAGIC

    recorded = json.loads((run / "metrics.json").read_text())["forecast"][mode]
    assert set(recorded) == FORECAST_KEYS and recorded["mode"] == mode
    assert recorded["points"] == points
    assert recorded["round_accuracy"] is not None  # Fibonacci mod 5 is integer-valued
    assert 0.0 <= recorded["round_accuracy"] <= 1.0
    assert f"rmse {recorded['rmse']:.4g}" in out


@pytest.mark.slow
def test_forecast_says_when_its_scores_are_in_sample(trained, tmp_path, capsys):
    # 300 points split 0.9: trained on t < 270; a window of 10 points before the scored ones.
    run = tmp_path / "RUN"
    shutil.copytree(trained, run)
    assert main(["forecast", str(run), "--horizon", "5", "--start", "257"]) == 0
    out = capsys.readouterr().out
    assert "in_sample 3, held_out_from 260" in out and "data " not in out.splitlines()[0]
    note = "note: 3 of the 5 scored points lie in the part of the data the model was trained "
    assert note + "on, so these scores are partly in-sample; forecasts from --start 260 on" in out
    assert main(["forecast", str(run), "--horizon", "5", "--start", "100", "--force"]) == 0
    whole = "note: 5 of the 5 scored points lie in the part of the data the model was trained "
    assert whole + "on, so these scores are in-sample;" in capsys.readouterr().out
    assert main(["forecast", str(run), "--horizon", "5", "--start", "260", "--force"]) == 0
    out = capsys.readouterr().out
    assert "in_sample 0, held_out_from 260" in out and "note" not in out
    assert main(["forecast", str(run), "--horizon", "5", "--start", "259", "--force"]) == 0
    assert "note: 1 of the 5 scored points lies in the part" in capsys.readouterr().out


@pytest.mark.slow
def test_forecast_data_reads_another_csv_file_only_for_a_csv_run(trained, tmp_path, capsys):
    run = tmp_path / "RUN"
    shutil.copytree(trained, run)
    (tmp_path / "x.csv").write_text("v\n1\n2\n")
    assert main(["forecast", str(run), "--data", f"csv:{tmp_path / 'x.csv'}"]) == 2
    one_error_line(capsys, "forecast", "was trained on data = 'fibonacci'; only a run trained")
    assert not list(run.glob("forecast-*"))


def test_forecast_again_needs_force(trained, tmp_path, capsys):
    run = tmp_path / "RUN"
    shutil.copytree(trained, run)
    assert main(["forecast", str(run), "--horizon", "5"]) == 0
    first = (run / "forecast-window.csv").read_text()
    capsys.readouterr()
    assert main(["forecast", str(run), "--horizon", "5", "--start", "3"]) == 2
    one_error_line(capsys, "forecast", f"{run}/forecast-window.csv already exists; use --force")
    assert (run / "forecast-window.csv").read_text() == first
    assert main(["forecast", str(run), "--horizon", "5", "--start", "3", "--force"]) == 0
    assert (run / "forecast-window.csv").read_text().splitlines()[1].startswith("3,")


def test_forecast_past_the_data_says_its_scores_do_not_apply(trained, tmp_path, capsys):
    # They were printed as Python's None.
    run = tmp_path / "RUN"
    shutil.copytree(trained, run)
    size = json.loads((run / "config.json").read_text())["config"]["sequence_size"]
    assert main(["forecast", str(run), "--horizon", "5", "--start", str(-size)]) == 0
    out = capsys.readouterr().out
    assert "points 0, rmse n/a, mae n/a, round_accuracy n/a," in out and "None" not in out


def test_forecast_name_keeps_forecasts_side_by_side(trained, tmp_path, capsys):
    # One forecast file per mode: a second series or start replaced the first (--force).
    run = tmp_path / "RUN"
    shutil.copytree(trained, run)
    assert main(["forecast", str(run), "--horizon", "5"]) == 0
    first = (run / "forecast-window.csv").read_text()
    argv = ["forecast", str(run), "--horizon", "5", "--start", "3", "--name", "from-3"]
    assert main(argv) == 0
    assert (run / "forecast-window.csv").read_text() == first
    assert (run / "forecast-from-3.csv").read_text().splitlines()[1].startswith("3,")
    assert (run / "forecast-from-3.png").read_bytes()[:8] == PNG_MAGIC
    recorded = json.loads((run / "metrics.json").read_text())["forecast"]
    assert (recorded["window"]["start"], recorded["from-3"]["start"]) == (0, 3)
    assert recorded["from-3"]["mode"] == "window"
    capsys.readouterr()
    assert main(argv) == 2  # the same name again
    one_error_line(capsys, "forecast", "forecast-from-3.csv already exists; use --force")
    for bad, said in (
        ("a.b", ": use 1 to 64 letters"),
        ("stream", " is the stream mode's own"),
        ("Stream", " is the stream mode's own"),  # the same file on macOS and Windows
        ("From-3", " differs from the earlier forecast 'from-3' only in case"),
    ):
        assert main(["forecast", str(run), "--name", bad, "--force"]) == 2
        one_error_line(capsys, "forecast", f"forecast name {bad!r}{said}")
    written = {p.name for p in run.iterdir() if p.name.startswith("forecast-")}
    assert written == {f"forecast-{n}.{e}" for n in ("window", "from-3") for e in ("csv", "png")}


@pytest.fixture(scope="module")
def toml_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Settings from a TOML file, two of them overridden by flags."""
    tmp = tmp_path_factory.mktemp("toml")
    (tmp / "run.toml").write_text(
        "epochs = 5\nn_hidden = 16\nseed = 3\ndropout = 0.1\ntotal_size = 300\n"
        "sequence_size = 10\nbatch_size = 50\n"
    )
    argv = ["train", "--config", str(tmp / "run.toml"), "--out", str(tmp / "RUN2")]
    assert main([*argv, "--epochs", "2", "--n-hidden", "8", "--quiet"]) == 0
    return tmp / "RUN2"


@pytest.mark.slow
def test_flags_override_the_toml_config(toml_run):
    config = json.loads((toml_run / "config.json").read_text())["config"]
    assert config["epochs"] == 2 and config["n_hidden"] == 8  # flags win
    assert config["seed"] == 3 and config["dropout"] == 0.1  # the rest from TOML
    assert config["lr"] == 1e-3  # untouched: the default
    assert len(read_csv(toml_run / "history.csv")) == 2


@pytest.mark.slow
def test_a_flag_resets_what_the_toml_sets(toml_run, tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text((toml_run.parent / "run.toml").read_text() + "min_length = 10\n")
    argv = ["train", "--config", str(toml), "--out", str(tmp_path / "x")]
    parse = build_parser().parse_args
    assert cli._config_from(parse(argv)).min_length == 10
    assert cli._config_from(parse([*argv, "--min-length", "none"])).min_length is None
    # On resume: the run's value < TOML < flags, and the flag's reset wins over both;
    # what then differs from the run's own settings is refused.
    resumed = ["train", "--resume", str(toml_run), "--config", str(toml)]
    differ = r"these differ: epochs \(run: 2, given: 5\), n_hidden \(run: 8, given: 16\), min_"
    with pytest.raises(InputError, match=differ):
        cli._config_from(parse(resumed))
    own = [*resumed, "--epochs", "2", "--n-hidden", "8"]
    with pytest.raises(InputError, match=r"these differ: min_length \(run: None, given: 10\)$"):
        cli._config_from(parse(own))
    assert cli._config_from(parse([*own, "--min-length", "none"])).min_length is None


def test_plot_overlays_runs(trained, toml_run, tmp_path, capsys):
    out = tmp_path / "x.png"
    assert main(["plot", str(trained), str(toml_run), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert capsys.readouterr().out.strip() == f"wrote {out}"


def test_plot_takes_runs_on_both_sides_of_its_flags(
    trained, toml_run, tmp_path, capsys, legends_drawn
):
    # The second run after --out was an "unrecognized argument"; two labels would not
    # match one run.
    drawn = legends_drawn
    out = tmp_path / "x.png"
    argv = ["plot", str(trained), "--out", str(out), str(toml_run), "--labels", "A", "B"]
    assert main(argv) == 0
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert drawn == [["A (train)", "A (validation)", "B (train)", "B (validation)"]]
    with pytest.raises(SystemExit) as stop:
        main(["plot", str(trained), "--out", str(out), "--bogus"])
    assert stop.value.code == 2
    told = "nsteplstm plot: error: unrecognized arguments: --bogus (see --help)\n"
    assert capsys.readouterr().err == told


def test_plot_draws_the_metric_asked_for(trained, toml_run, tmp_path, legends_drawn):
    # plot_runs took metric=, but the command had no --metric.
    out = tmp_path / "x.png"
    argv = ["plot", str(trained), str(toml_run), "--out", str(out), "--labels", "A", "B"]
    assert main([*argv, "--metric", "val_loss"]) == 0
    assert legends_drawn == [["A", "B"]]
    args = build_parser().parse_args(["plot", "r", "--out", "x.png"])
    assert args.metric == "both"
    assert next(a.choices for a in args.parser._actions if a.dest == "metric") == METRICS


def test_plot_refuses_an_unknown_flag_before_the_command(tmp_path, capsys):
    # Ignored there: the runs after --out were parsed again, and only those.
    argv = ["--bogus", "plot", "a", "--out", str(tmp_path / "x.png"), "b"]
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    told = "nsteplstm plot: error: unrecognized arguments: --bogus (see --help)\n"
    assert capsys.readouterr().err == told


@pytest.mark.slow
def test_import_chainer_then_forecast(tmp_path, capsys):
    run = tmp_path / "R"
    assert main(["import-chainer", str(FIXTURES / "article_nstep.npz"), "--out", str(run)]) == 0
    assert f"nsteplstm forecast {run}" in capsys.readouterr().out
    assert json.loads((run / "config.json").read_text())["format_version"] == 1
    assert main(["forecast", str(run), "--horizon", "12"]) == 0
    assert "points 12" in capsys.readouterr().out
    assert (run / "forecast-window.csv").is_file()


def test_import_chainer_of_a_two_feature_model_needs_its_data(tmp_path, monkeypatch, capsys):
    """The article's chain with n_in = n_out = 2 (random weights, Chainer's key layout)."""
    rng = np.random.default_rng(0)
    hidden, arrays = 6, {"l2/W": rng.normal(size=(2, 6)), "l2/b": np.zeros(2)}
    for j in range(8):
        arrays[f"l1/0/w{j}"] = rng.normal(size=(hidden, 2 if j < 4 else hidden))
        arrays[f"l1/0/b{j}"] = np.zeros(hidden)
    npz = tmp_path / "mynet.npz"
    np.savez(npz, **{k: v.astype(np.float32) for k, v in arrays.items()})
    rows = "".join(f"{i % 5},{i * 3 % 7},{i % 2}\n" for i in range(400))
    (tmp_path / "three.csv").write_text("a,b,c\n" + rows)
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"

    assert main(["import-chainer", str(npz), "--out", str(run)]) == 2
    one_error_line(capsys, "import-chainer", "n_in = 2 and n_out = 2, the built-in series one")
    assert main(["import-chainer", str(npz), "--out", str(run), "--data", "csv:three.csv"]) == 2
    fix = "three.csv: 3 columns read, but the checkpoint's model takes 2; choose 2 of them with"
    one_error_line(capsys, "import-chainer", fix)
    assert not run.exists()

    flags = ["--data", "csv:three.csv", "--csv-columns", "a,c"]
    assert main(["import-chainer", str(npz), "--out", str(run), *flags]) == 0
    doc = json.loads((run / "config.json").read_text())
    config = doc["config"]
    assert (config["data"], config["csv_columns"]) == (f"csv:{tmp_path / 'three.csv'}", ["a", "c"])
    assert doc["data_header"] == {"columns": ["a", "c"], "series_id": None}
    monkeypatch.chdir(run)  # the CSV path is stored absolute
    assert main(["forecast", str(run), "--horizon", "5"]) == 0
    out = capsys.readouterr().out
    assert "points 10" in out  # 5 points of each of the 2 features
    assert "features (a (points 5, rmse " in out and "), c (points 5, rmse " in out
    # The first rmse mixes the features' units: it now says so.
    assert "note: rmse and mae first pool the 2 features, each in its own units" in out


# ---------------------------------------------------------------- help and version


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def help_blocks(text: str) -> dict[str, str]:
    """Option flag -> its help text (continuation lines joined, whitespace normalised)."""
    blocks: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        m = re.match(r"^  (-[-\w]+)", line)
        if m:
            current = m.group(1)
            blocks[current] = line
        elif current and line.startswith("   "):
            blocks[current] += " " + line
        else:
            current = None
    return {k: " ".join(v.split()) for k, v in blocks.items()}


def test_every_setting_flag_is_in_train_help_with_its_default(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code == 0
    blocks = help_blocks(capsys.readouterr().out)
    for field in fields_help():
        if field.name == "format_version":  # written by the program, not a setting
            continue
        assert field.flag in blocks, field.flag
        assert "default" in blocks[field.flag], blocks[field.flag]


HELP_BUGS: dict[str, str] = {}
DOUBLE_DEFAULT_BUGS: dict[str, str] = {}


def _marked(bugs: dict[str, str]):
    return [
        pytest.param(
            name, marks=[pytest.mark.xfail(strict=True, reason=bugs[name])] if name in bugs else []
        )
        for name in subcommands()
    ]


def _optional_help(name: str, capsys) -> dict[str, str]:
    with pytest.raises(SystemExit) as e:
        main([name, "--help"])
    assert e.value.code == 0
    blocks = help_blocks(capsys.readouterr().out)
    actions = subcommands()[name]._actions
    required = {flag for a in actions if a.required for flag in a.option_strings}
    optional = {a.option_strings[0] for a in actions if a.option_strings and not a.required}
    assert optional - {"-h"} and set(blocks) >= optional  # the help was read, every flag
    return {flag: text for flag, text in blocks.items() if flag not in required | {"-h"}}


@pytest.mark.parametrize("name", _marked(HELP_BUGS))
def test_help_documents_every_flag_with_its_default(name, capsys):
    missing = [t for t in _optional_help(name, capsys).values() if "default" not in t.lower()]
    assert not missing, missing


@pytest.mark.parametrize("name", _marked(DOUBLE_DEFAULT_BUGS))
def test_help_states_each_default_once(name, capsys):
    doubled = [t for t in _optional_help(name, capsys).values() if t.lower().count("default") > 1]
    assert not doubled, doubled


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"nsteplstm {__version__}"


# Ctrl-C while torch is being imported: a finder that interrupts the import of torch.
INTERRUPTED_IMPORT = """
import sys
class Interrupt:
    def find_spec(self, name, path=None, target=None):
        if name == "torch":
            raise KeyboardInterrupt
sys.meta_path.insert(0, Interrupt())
from nsteplstm.cli import main
print("torch" in sys.modules)
sys.exit(main(sys.argv[1:]))
"""


def test_start_up_imports_no_torch_and_ctrl_c_there_is_one_line(tmp_path):
    # It once printed a traceback through torch's imports: the package imported torch
    # before main() could catch anything.
    done = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_IMPORT, "forecast", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert (done.returncode, done.stdout, done.stderr) == (
        130,
        "False\n",
        "nsteplstm forecast: interrupted\n",
    )


# A Ctrl-C at the two imports of start-up: the command line's (NumPy), and torch's,
# where a KeyboardInterrupt raised from torch's C++ start-up aborted the process.
INTERRUPTED_START = """
import os, signal, sys
at = sys.argv[1]
class Interrupt:
    def find_spec(self, name, path=None, target=None):
        if name == at == "numpy":
            raise KeyboardInterrupt
        if name == at == "torch":
            os.kill(os.getpid(), signal.SIGINT)  # as a Ctrl-C arrives: the import goes on
sys.meta_path.insert(0, Interrupt())
from nsteplstm.__main__ import main
sys.argv[1:] = ["forecast", sys.argv[2]]
code = main()
print("torch" in sys.modules)
sys.exit(code)
"""


@pytest.mark.parametrize(
    ("at", "said", "torch_imported"),
    [
        ("numpy", "nsteplstm: interrupted\n", "False"),
        ("torch", "nsteplstm forecast: interrupted\n", "True"),
    ],
)
def test_ctrl_c_during_start_up_is_one_line(tmp_path, at, said, torch_imported):
    done = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_START, at, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stderr, done.stdout) == (130, said, torch_imported + "\n")


# Ctrl-C and SIGTERM once the command has returned, as the interpreter exits.
SIGNALLED_AT_EXIT = """
import os, signal, sys
from nsteplstm.__main__ import main
sys.argv[1:] = ["forecast", sys.argv[1]]
code = main()
os.kill(os.getpid(), signal.SIGINT)
os.kill(os.getpid(), signal.SIGTERM)
print("exited as", code)
sys.exit(code)
"""


def test_a_signal_after_the_command_is_done_does_not_change_its_exit(tmp_path):
    # A finished train hit by Ctrl-C in torch's teardown ended 130, with no message.
    done = subprocess.run(
        [sys.executable, "-c", SIGNALLED_AT_EXIT, str(tmp_path / "nothing")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stdout) == (2, "exited as 2\n")
    assert done.stderr.count("\n") == 1 and "does not exist" in done.stderr


# SIGTERM in the middle of a bench, inside a temporary directory (where its
# memory probe runs): the race is replaced by one that sends it.
TERMINATED_BENCH = """
import os, signal, sys, tempfile, time
import nsteplstm.bench as bench
def race(*args):
    with tempfile.TemporaryDirectory(dir=sys.argv[1]):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(60)
bench.race = race
from nsteplstm.cli import main
sys.exit(main(["bench", "--quick", "--device", "cpu", "--out", sys.argv[2]]))
"""


def test_sigterm_outside_training_unwinds_and_exits_143(tmp_path):
    # SIGTERM killed bench outright: its temporary directory (and memory probe) stayed.
    scratch, out = tmp_path / "tmp", tmp_path / "out"
    scratch.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", TERMINATED_BENCH, str(scratch), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stderr.splitlines()[-1:]) == (
        143,
        ["nsteplstm bench: interrupted by SIGTERM"],
    ), done.stderr
    assert list(scratch.iterdir()) == [] and not out.exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # main() in this process:
    assert main(["forecast", str(tmp_path / "missing")]) == 2  # restores the handler
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


# A signal while the demo forecasts, its first training done (here: skipped).
SIGNALLED_DEMO = """
import os, signal, sys, time
import nsteplstm.demo as demo
signal.signal(signal.SIGINT, signal.default_int_handler)  # a background job ignores it
def forecast_run(*args, **kwargs):
    os.kill(os.getpid(), int(sys.argv[1]))
    time.sleep(60)
demo.train, demo.forecast_run = lambda *args, **kwargs: None, forecast_run
from nsteplstm.cli import main
sys.exit(main(["demo", "--out", sys.argv[2], "--epochs", "2", "--quiet"]))
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_a_demo_stopped_after_training_says_how_to_start_again(tmp_path, signum):
    # SIGTERM there said "nsteplstm demo: interrupted by SIGTERM" alone: Ctrl-C named
    # the command that starts the demo again.
    out = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-c", SIGNALLED_DEMO, str(int(signum)), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stderr) == (
        128 + signum,
        f"nsteplstm demo: interrupted by {signum.name} while forecasting layers-1 (finished: "
        f"none); a demo does not resume: start it again with: nsteplstm demo --out {out} "
        "--epochs 2 --quiet --force\n",
    )


def test_the_package_exports_what_all_names() -> None:
    import nsteplstm as nl

    assert sorted(nl.__all__) == sorted([*nl._EXPORTS, "__version__"])
    assert all(getattr(nl, name) is not None for name in nl.__all__)
    assert nl.functional.dropout is not None  # submodules too, imported on first use
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        nl.nothing  # noqa: B018


def test_an_error_is_one_line_even_for_a_path_with_a_line_break(tmp_path, capsys):
    assert main(["forecast", str(tmp_path / "no\nrun")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no\\nrun does not exist" in err


# ---------------------------------------------------------------- outputs kept, one-line errors


def with_a_closed_pipe(
    args: list[str], unbuffered: bool, stderr_too: bool = False
) -> subprocess.CompletedProcess:
    """`python -m nsteplstm ARGS` writing stdout (and stderr, with ``stderr_too``) into
    a pipe whose reader has gone, as `... | true` or `... | head -1` leave it."""
    read, write = os.pipe()
    os.close(read)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env |= {"OMP_NUM_THREADS": "1", **({"PYTHONUNBUFFERED": "1"} if unbuffered else {})}
    try:
        return subprocess.run(
            [sys.executable, "-m", "nsteplstm", *args],
            stdout=write,
            stderr=write if stderr_too else subprocess.PIPE,
            text=True,
            timeout=120,
            env=env,
        )
    finally:
        os.close(write)


@pytest.mark.slow
@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "unbuffered"])
def test_a_closed_stdout_pipe_ends_a_done_command_quietly_with_141(trained, unbuffered):
    # `nsteplstm forecast RUN | true` said "error: [Errno 32] Broken pipe" and exit 2,
    # a user error, once the forecast was written (unbuffered); buffered, Python's
    # "Exception ignored ... BrokenPipeError" and exit 120.
    name = f"piped_{'un' * unbuffered}buffered"
    done = with_a_closed_pipe(["forecast", str(trained), "--name", name], unbuffered)
    assert (done.returncode, done.stderr) == (141, "")
    rows = read_csv(trained / f"forecast-{name}.csv")  # whole: the window, then 40 ahead
    assert [row["t"] for row in rows] == [str(t) for t in range(50)] and rows[-1]["prediction"]
    assert json.loads((trained / "metrics.json").read_text())["forecast"][name]["points"] == 40


@pytest.mark.parametrize("args", [["train", "--help"], ["--version"]])
def test_help_into_a_closed_pipe_exits_141_without_a_warning(args):
    done = with_a_closed_pipe(args, unbuffered=False)
    assert (done.returncode, done.stderr) == (141, "")


@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "unbuffered"])
def test_an_error_whose_stderr_reader_has_gone_still_exits_2(tmp_path, unbuffered):
    # `nsteplstm forecast MISSING 2>&1 | true`: writing the error line raised
    # BrokenPipeError out of main(), a traceback into the closed pipe and exit 1.
    done = with_a_closed_pipe(["forecast", str(tmp_path / "missing")], unbuffered, True)
    assert done.returncode == 2


def test_demo_names_the_epochs_flag(tmp_path, capsys):
    # It said "config of the demo: epochs = 0 is out of range".
    assert main(["demo", "--out", str(tmp_path / "demo"), "--epochs", "0"]) == 2
    one_error_line(capsys, "demo", "--epochs (epochs= from Python) must be an integer >= 1")
    assert list(tmp_path.iterdir()) == []


def test_a_setting_out_of_range_names_the_flag_typed(tmp_path, capsys):
    # It said "command line: epochs = 0 is out of range"; the user typed --epochs.
    assert main(["train", "--out", str(tmp_path / "run"), "--epochs", "0"]) == 2
    message = "command line: --epochs 0 is out of range (allowed: >= 1)"
    assert capsys.readouterr().err == f"nsteplstm train: error: {message}\n"
    # A file's value keeps its key, beside a flag's.
    toml = tmp_path / "run.toml"
    toml.write_text("split_rate = 0.5\n", encoding="utf-8")
    argv = ["train", "--out", str(tmp_path / "run"), "--config", str(toml), "--total-size", "50"]
    assert main(argv) == 2
    one_error_line(capsys, "train", f"config {toml}: split_rate = 0.5 of --total-size 50 gives")
    assert list(tmp_path.iterdir()) == [toml]


def test_errors_name_each_setting_by_the_flag_train_offers():
    # config.flag_of names a command-line setting in errors: it must be the parser's flag.
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    flags = {
        action.dest[4:]: action.option_strings
        for action in train._actions
        if action.dest.startswith("cfg_")
    }
    assert flags == {key: [flag_of(key)] for key in flags}
    assert len(flags) == len(fields_help()) - 1  # all but format_version


def one_error_line(capsys, command: str, message: str) -> None:
    """stderr is exactly one `nsteplstm COMMAND: error: ...` line holding ``message``."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"nsteplstm {command}: error: "), err
    assert message in err, err


@pytest.mark.slow
def test_plot_keeps_existing_files_unless_force(trained, tmp_path, capsys):
    model = (trained / "model.safetensors").read_bytes()
    argv = ["plot", str(trained), "--out", str(trained / "model.safetensors"), "--force"]
    assert main(argv) == 2
    one_error_line(capsys, "plot", "the name must be NAME.png")
    assert (trained / "model.safetensors").read_bytes() == model

    out = tmp_path / "mine.png"
    out.write_bytes(b"mine")
    assert main(["plot", str(trained), "--out", str(out)]) == 2
    one_error_line(capsys, "plot", f"{out} already exists; use --force to overwrite it")
    assert out.read_bytes() == b"mine"
    assert main(["plot", str(trained), "--out", str(out), "--force"]) == 0
    assert out.read_bytes()[:8] == PNG_MAGIC

    assert main(["plot", str(trained), "--out", str(tmp_path)]) == 2
    one_error_line(capsys, "plot", f"cannot write {tmp_path}: it is a directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.png"]  # no temporary file


@pytest.mark.slow
def test_forecast_with_a_directory_in_the_way_writes_nothing(trained, tmp_path, capsys):
    run = tmp_path / "RUN"
    shutil.copytree(trained, run)
    (run / "forecast-window.png").mkdir()
    metrics = (run / "metrics.json").read_bytes()
    assert main(["forecast", str(run), "--horizon", "7"]) == 2
    one_error_line(capsys, "forecast", f"cannot write {run}/forecast-window.png: it is a directory")
    assert not (run / "forecast-window.csv").exists()
    assert (run / "metrics.json").read_bytes() == metrics


@pytest.mark.slow
def test_forecast_on_a_full_disk_writes_nothing(trained, tmp_path, full_disk, capsys):
    run = tmp_path / "RUN"
    shutil.copytree(trained, run)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    full_disk(1)  # the CSV fits, the PNG does not
    assert main(["forecast", str(run), "--horizon", "7"]) == 2
    one_error_line(capsys, "forecast", f"{run}/forecast-window.png: cannot write (No space left")
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


@pytest.mark.slow
def test_train_on_a_full_disk_leaves_a_resumable_run(tmp_path, monkeypatch, full_disk, capsys):
    run = tmp_path / "run"
    flags = ["--total-size", "300", "--sequence-size", "10", "--n-hidden", "8", "--epochs", "2"]
    # Writes: config.json, then checkpoint weights, checkpoint.json and history.csv at
    # epochs 1 and 2; then the final model fits and its history.csv does not.
    full_disk(8)
    assert main(["train", "--out", str(run), "--quiet", *flags]) == 2
    one_error_line(capsys, "train", f"{run}/history.csv: cannot write (No space left on device)")
    assert not (run / "model.safetensors").exists()  # the three final files: none of them
    monkeypatch.undo()
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert (run / "metrics.json").exists() and (run / "model.safetensors").exists()


def test_bench_keeps_notes_and_leaves_no_directory_on_errors(tmp_path, capsys):
    out = tmp_path / "bx"
    out.mkdir()
    (out / "bench.md").write_text("notes\n")
    assert main(["bench", "--quick", "--out", str(out), "--device", "tpu"]) == 2
    one_error_line(capsys, "bench", f"{out}/bench.md already exists; use --force")
    assert (out / "bench.md").read_text() == "notes\n"

    new = tmp_path / "new" / "bench"
    assert main(["bench", "--quick", "--out", str(new), "--chainer-python", "/bin/true"]) == 2
    one_error_line(capsys, "bench", "--chainer-python /bin/true: printed no chainer version")
    assert not (tmp_path / "new").exists()


def test_bench_exits_1_when_a_contender_failed(tmp_path, monkeypatch):
    import nsteplstm.bench as bench

    failed = [{"contender": "chainer-step", "reason": "timed out"}]
    monkeypatch.setattr(bench, "run_bench", lambda **kw: {"failed": failed})
    assert main(["bench", "--out", str(tmp_path / "b")]) == 1
    monkeypatch.setattr(bench, "run_bench", lambda **kw: {"failed": []})
    assert main(["bench", "--out", str(tmp_path / "b")]) == 0


def test_a_csv_run_forecasts_from_any_directory(tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "units.csv").write_text("v\n" + "".join(f"{i % 7}\n" for i in range(120)))
    monkeypatch.chdir(data)
    flags = ["--sequence-size", "5", "--n-hidden", "4", "--epochs", "1", "--quiet"]
    assert main(["train", "--out", "run", "--data", "csv:units.csv", *flags]) == 0
    config = json.loads((data / "run" / "config.json").read_text())["config"]
    assert config["data"] == f"csv:{data / 'units.csv'}"  # stored absolute
    monkeypatch.chdir(tmp_path)  # the relative path no longer points at the file
    assert main(["forecast", str(data / "run"), "--horizon", "3"]) == 0, capsys.readouterr().err
    (data / "more.csv").write_text("v\n" + "".join(f"{i % 7}.0\n" for i in range(121)))
    more = ["--horizon", "3", "--data", "csv:data/more.csv", "--name", "more"]
    assert main(["forecast", str(data / "run"), *more]) == 0
    out = capsys.readouterr().out  # the same 108 training rows, written otherwise, and one more
    assert "in_sample 3, held_out_from 103, data csv:" + str(data / "more.csv") in out
    (data / "other.csv").write_text("v\n" + "".join(f"{i % 5}\n" for i in range(121)))
    other = ["--horizon", "3", "--data", "csv:data/other.csv", "--name", "other"]
    assert main(["forecast", str(data / "run"), *other]) == 0
    out = capsys.readouterr().out
    assert "in_sample n/a, held_out_from n/a, data csv:" + str(data / "other.csv") in out
    assert "note: which of these points the model was trained on is not known" in out
    assert main(["train", "--resume", str(data / "run"), "--data", "csv:data/units.csv"]) == 0


def test_train_says_how_many_series_gave_no_window(tmp_path, capsys):
    # Series too short for a part of the split were left out of it without a word.
    rows = [f"s{k},{i % 7}" for k in range(6) for i in range(120 if k < 2 else 45)]
    (tmp_path / "shops.csv").write_text("shop,v\n" + "\n".join(rows) + "\n")
    flags = ["--csv-series-id", "shop", "--sequence-size", "10", "--n-hidden", "4", "--quiet"]
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--out",
                str(run),
                "--data",
                f"csv:{tmp_path / 'shops.csv'}",
                "--epochs",
                "1",
                *flags,
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    # 45 points split 40 + 5: no 11-point validation part; 120 split 108 + 12: both
    assert out[1] == (
        "note: of 6 series, 0 gave no training window and 4 no validation window "
        "(their part of the split is under sequence_size + 1 points); no validation "
        "window: 's2', 's3', 's4', 's5'"
    )
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["series"], metrics["series_without_val_window"]) == (6, 4)
    doc = json.loads((run / "config.json").read_text())
    assert doc["data_header"] == {"columns": ["v"], "series_id": "shop"}
    assert [doc["training_rows"][f"s{k}"]["rows"] for k in range(6)] == [108, 108, 40, 40, 40, 40]
    assert metrics["series_without_train_window"] == 0
    assert metrics["series_left_out"] == {"train": [], "val": ["s2", "s3", "s4", "s5"]}
    # A run written before series_left_out was kept resumes with the counts alone.
    del metrics["series_left_out"]
    (run / "metrics.json").write_text(json.dumps(metrics))
    assert main(["train", "--resume", str(run)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{run} had finished already")
    assert out[1].endswith("(their part of the split is under sequence_size + 1 points)")
    assert main(["forecast", str(run), "--series", "s1", "--horizon", "2"]) == 0
    assert ", series s1," in capsys.readouterr().out  # named when the data holds several
    assert main(["train", "--out", str(tmp_path / "r2"), *TINY, "--epochs", "1", "--quiet"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1  # no note when every series counts


@pytest.mark.slow
def test_a_full_disk_at_a_runs_first_files_leaves_the_old_run_or_nothing(
    trained, tmp_path, monkeypatch, full_disk, capsys
):
    # import-chainer left a directory holding config.json alone (then refused as not
    # empty, taken by forecast for an unfinished training run); train --force had
    # already removed the old run when its first checkpoint did not fit.
    npz = str(FIXTURES / "article_nstep.npz")
    full_disk(1)  # config.json fits, the weights do not
    assert main(["import-chainer", npz, "--out", str(tmp_path / "new" / "imp")]) == 2
    one_error_line(capsys, "import-chainer", "model.safetensors: cannot write (No space left")
    assert list(tmp_path.iterdir()) == []  # the directories it made are gone too
    monkeypatch.undo()

    run = tmp_path / "RUN"
    shutil.copytree(trained, run)
    (run / "notes.txt").write_text("mine")
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    for writes in (0, 1, 2):  # config.json, the checkpoint's weights, checkpoint.json
        full_disk(writes)
        assert main(["train", "--out", str(run), "--force", "--quiet", *TINY, "--seed", "7"]) == 2
        capsys.readouterr()
        monkeypatch.undo()
        assert {p.name: p.read_bytes() for p in run.iterdir()} == before, writes
    assert main(["import-chainer", npz, "--out", str(run), "--force"]) == 0
    assert (run / "notes.txt").read_text() == "mine"
    assert json.loads((run / "metrics.json").read_text())["imported_from"] == npz


def test_a_library_allocation_failure_is_out_of_memory_and_other_errors_stay_bugs(
    tmp_path, monkeypatch, capsys
):
    # cuBLAS's and cuDNN's own allocations fail with ..._STATUS_ALLOC_FAILED, which did
    # not say "out of memory": a traceback instead of the one line.
    from nsteplstm import train as training

    def fail(message: str):
        def run(*args, **kwargs):
            raise RuntimeError(message)

        return run

    argv = ["train", "--epochs", "1", "--total-size", "400", "--n-hidden", "4", "--quiet"]
    messages = (
        "cuDNN error: CUDNN_STATUS_ALLOC_FAILED",
        "cuBLAS error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
    )
    for k, message in enumerate(messages):
        monkeypatch.setattr(training, "_run_batches", fail(message))
        assert main([*argv, "--out", str(tmp_path / f"run{k}")]) == 2
        one_error_line(capsys, "train", f"out of memory ({message}); smaller sizes")
    monkeypatch.setattr(training, "_run_batches", fail("CUDNN_STATUS_BAD_PARAM"))
    with pytest.raises(RuntimeError, match="BAD_PARAM"):
        main([*argv, "--out", str(tmp_path / "run2")])


def test_out_of_memory_advice_names_what_the_command_can_change(tmp_path, monkeypatch, capsys):
    # Every command was told "smaller sizes (n_hidden, ..., horizon) need less": bench
    # and demo have no such flags, and forecast only --horizon.
    from nsteplstm import bench, forecast

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(bench, "run_bench", out_of_memory)
    monkeypatch.setattr(forecast, "forecast_run", out_of_memory)
    for argv, advice in [
        (["bench", "--out", str(tmp_path / "b")], "close what else holds memory, or use a machine"),
        (["forecast", str(tmp_path)], "a shorter --horizon needs less"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and advice in err and "n_hidden" not in err, err


@pytest.mark.parametrize("command", [["forecast"], ["train", "--resume"]])
def test_a_directory_without_a_run_says_to_name_one(tmp_path, capsys, command):
    # forecast and train --resume said only "DIR/config.json: file not found".
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([*command, str(empty)]) == 2
    assert capsys.readouterr().err == (
        f"nsteplstm {command[0]}: error: {empty / 'config.json'}: file not found; "
        f"{empty} holds no run: name a run directory\n"
    )
    assert list(empty.iterdir()) == []
