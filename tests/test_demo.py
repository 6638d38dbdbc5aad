"""`nsteplstm demo` on tiny settings: every run, plot and the report; --force; bad input."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from nsteplstm import runs
from nsteplstm.config import Config
from nsteplstm.demo import run_demo
from nsteplstm.errors import InputError

TINY = Config(total_size=300, sequence_size=10, n_hidden=8, batch_size=50, device="cpu")
RUNS = ("layers-1", "layers-2", "layers-3", "dropout-0.4", "dropout-0.5")

pytestmark = pytest.mark.usefixtures("one_thread")


def demo(out: Path, base: Config = TINY, **kw) -> Path:
    return run_demo(out, epochs=1, quiet=True, base=base, echo=lambda line: None, **kw)


@pytest.mark.slow
def test_demo_writes_every_run_plot_and_the_report_and_reruns_only_with_force(tmp_path):
    out = tmp_path / "demo"
    report = demo(out)
    assert report == out / "report.html"
    for name in RUNS:
        run = out / name
        for file in (runs.MODEL_FILE, runs.METRICS_FILE, "losses.png", "forecast-stream.csv"):
            assert (run / file).is_file(), (name, file)
        assert runs.read_metrics(run)["epochs"] == 1
    assert (out / "layers.png").is_file() and (out / "dropout.png").is_file()
    text = report.read_text()
    assert all(name in text for name in RUNS) and text.count("data:image/png;base64,") >= 7
    # 300 points, the first 270 for training: the 40 points after the first window
    assert "(40 of the 40 scored points lie in the training part, as in the article" in text

    before = (out / "layers-1" / runs.MODEL_FILE).read_bytes()
    with pytest.raises(InputError, match="exists and is not empty; pass --force"):
        demo(out)
    assert (out / "layers-1" / runs.MODEL_FILE).read_bytes() == before
    # --force reaches every run of the demo (it once stopped at the first sub-run).
    assert demo(out, force=True) == report
    assert runs.read_metrics(out / "dropout-0.5")["epochs"] == 1


@pytest.mark.slow
def test_an_interrupted_forced_demo_leaves_no_report_that_contradicts_its_runs(
    tmp_path, monkeypatch
):
    import signal

    from nsteplstm import demo as demo_module
    from nsteplstm.train import Interrupted

    out = tmp_path / "demo"
    demo(out)
    real, calls = demo_module.train, []

    def train(config, run_dir, **kw):  # the second run is stopped as by Ctrl-C
        calls.append(run_dir)
        if len(calls) == 2:
            raise Interrupted(signal.SIGINT, run_dir)
        return real(config, run_dir, **kw)

    monkeypatch.setattr(demo_module, "train", train)
    with pytest.raises(Interrupted) as info:
        demo(out, force=True)
    # It once kept the old report, plots and losses.png beside half-replaced runs, and
    # said to resume the one run with train --resume, which never finishes a demo; then
    # it gave `nsteplstm demo`, which has the article's settings, not this base's.
    assert str(info.value) == (
        "interrupted by SIGINT while training layers-2 (finished: layers-1); a demo does "
        "not resume: call run_demo again with the same arguments and force=True"
    )
    assert info.value.exit_code == 130
    assert not any((out / name).exists() for name in ("report.html", "layers.png", "dropout.png"))
    assert (out / "layers-1" / "losses.png").is_file()  # the new run's
    assert not (out / "layers-2" / "losses.png").exists()


def fake_runs(monkeypatch) -> None:
    """The demo's training, forecasts and loss plots: instant stand-ins."""
    from types import SimpleNamespace

    from nsteplstm import demo as demo_module

    metrics = {"train_loss": 1.0, "val_loss": 1.0, "seconds": 1.0}
    result = SimpleNamespace(history=[], metrics=metrics)
    scores = {"rmse": 1.0, "round_accuracy": 0.5, "points": 40, "in_sample": 0}
    monkeypatch.setattr(demo_module, "train", lambda *args, **kwargs: result)
    monkeypatch.setattr(demo_module, "forecast_run", lambda *args, **kwargs: scores)
    monkeypatch.setattr(demo_module, "plot_losses", lambda *args, **kwargs: None)


def stopped_at(monkeypatch, stage: str) -> None:
    """The demo's ``stage`` (``"forecast_run"``, ``"plot_overlay"``) is stopped as by
    Ctrl-C; what comes before it is instant (:func:`fake_runs`)."""
    from nsteplstm import demo as demo_module

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    fake_runs(monkeypatch)
    monkeypatch.setattr(demo_module, stage, ctrl_c)


def test_a_demo_stopped_by_ctrl_c_outside_training_says_how_to_start_again(tmp_path, monkeypatch):
    # Ctrl-C while forecasting gave only "nsteplstm demo: interrupted", without the command.
    from nsteplstm.train import Interrupted

    stopped_at(monkeypatch, "forecast_run")
    out = tmp_path / "demo"
    with pytest.raises(Interrupted) as info:
        demo(out, base={"epochs": 9})  # the article's settings: the command runs them
    assert str(info.value) == (
        "interrupted by SIGINT while forecasting layers-1 (finished: none); a demo does not "
        f"resume: start it again with: nsteplstm demo --out {out} --epochs 1 --quiet --force"
    )
    assert info.value.exit_code == 130


def test_a_demo_stopped_at_its_comparison_plots_says_how_to_start_again(tmp_path, monkeypatch):
    # Ctrl-C there, every run done, gave only "nsteplstm demo: interrupted".
    from nsteplstm.train import Interrupted

    stopped_at(monkeypatch, "plot_overlay")
    out = tmp_path / "demo"
    with pytest.raises(Interrupted) as info:
        demo(out, base=None)
    assert str(info.value) == (
        "interrupted by SIGINT while plotting the comparisons (finished: "
        f"{', '.join(RUNS)}); a demo does not resume: start it again with: nsteplstm demo "
        f"--out {out} --epochs 1 --quiet --force"
    )


def test_a_demo_of_another_base_says_to_call_run_demo_again(tmp_path, monkeypatch):
    # It said "start it again with: nsteplstm demo --out ... --epochs 1 --force", which
    # runs the article's settings, not these.
    from nsteplstm.train import Interrupted

    stopped_at(monkeypatch, "plot_overlay")
    for base in (TINY, {"data": "sine"}, Config(device="cpu")):
        with pytest.raises(Interrupted) as info:
            demo(tmp_path / "demo", base=base, force=True)
        assert str(info.value).endswith(
            "a demo does not resume: call run_demo again with the same arguments and force=True"
        )


def test_the_command_that_starts_a_demo_again_reads_its_out_as_given(tmp_path, monkeypatch):
    # "--out -d" (argparse: expected one argument) and "--out my demo" (two arguments).
    import shlex

    from nsteplstm.cli import build_parser
    from nsteplstm.train import Interrupted

    stopped_at(monkeypatch, "plot_overlay")
    monkeypatch.chdir(tmp_path)
    for out in ("-d", "my demo"):
        with pytest.raises(Interrupted) as info:
            demo(Path(out), base=None)
        command = str(info.value).split("start it again with: ")[1]
        args = build_parser().parse_args(shlex.split(command)[1:])
        assert (args.out.resolve(), args.epochs, args.force) == (tmp_path / out, 1, True)


def failing_training(monkeypatch) -> None:
    """The demo's first training fails, as where the first batch finds no memory."""
    from nsteplstm import demo as demo_module

    def train(*args, **kwargs):
        raise InputError("no memory for the first batch")

    monkeypatch.setattr(demo_module, "train", train)


@pytest.mark.parametrize(
    "kept",
    [
        # --force removed a config.json, history.csv ... of the user's from --out, as if
        # --out were a run directory; the demo writes none of them there.
        {name: f"the user's {name}" for name in ("config.json", "history.csv", "notes.txt")},
        # --out was checked as a run directory: a damaged metrics.json of the user's
        # beside a forecast-*.csv refused --force ("--force removes only those it
        # records"), though the demo writes neither there.
        {"metrics.json": "{damaged", "forecast-mine.csv": "t,truth,prediction\n"},
    ],
    ids=["run-named files", "a damaged metrics.json beside a forecast"],
)
def test_demo_force_keeps_the_files_it_does_not_write(tmp_path, monkeypatch, kept):
    out = tmp_path / "mine"
    out.mkdir()
    for name, text in kept.items():
        (out / name).write_text(text)
    failing_training(monkeypatch)
    with pytest.raises(InputError, match="no memory for the first batch"):
        demo(out, force=True)
    assert {p.name: p.read_text() for p in out.iterdir()} == kept


def test_demo_names_its_out_a_demo_directory(tmp_path):
    # "run directory ... exists and is not empty", of the demo's --out.
    out = tmp_path / "demo"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match=r"^demo directory .*/demo exists and is not empty; "):
        demo(out)
    (tmp_path / "file").write_text("a file")
    with pytest.raises(InputError, match=r"^demo directory .*/file exists and is not a direc"):
        demo(tmp_path / "file", force=True)
    assert (out / "notes.txt").read_text() == "mine"


def test_a_demo_that_fails_at_once_leaves_no_directory_it_made(tmp_path, monkeypatch):
    # It left the empty --out it had made (a failed command creates no directory).
    failing_training(monkeypatch)
    with pytest.raises(InputError, match="no memory for the first batch"):
        demo(tmp_path / "new" / "demo")
    assert list(tmp_path.iterdir()) == []


def test_demo_checks_its_settings_before_creating_anything(tmp_path):
    # It said "config of the demo: epochs = 0 is out of range", naming no flag.
    epochs = r"^--epochs \(epochs= from Python\) must be an integer >= 1 and <= 100,000, got "
    for bad in (0, 100_001, True, 2.0):
        with pytest.raises(InputError, match=epochs + re.escape(repr(bad)) + "$"):
            run_demo(tmp_path / "demo", epochs=bad, base=TINY, echo=lambda line: None)
    # A mapping raised TypeError from dataclasses.replace; a Config of the adding
    # problem was refused for its default n_in, not for what the demo cannot do.
    with pytest.raises(InputError, match="config of the demo: unknown key 'layers'"):
        demo(tmp_path / "demo", base={"layers": 2})
    with pytest.raises(InputError, match="demo: base must be a Config, a mapping or None, got 3"):
        demo(tmp_path / "demo", base=3)
    with pytest.raises(InputError, match="demo: data = 'adding' is sequence-to-one"):
        demo(tmp_path / "demo", base=Config(data="adding"))
    assert not (tmp_path / "demo").exists()


def test_demo_checks_every_run_directory_before_replacing_any(tmp_path):
    out = tmp_path / "demo"
    (out / "layers-1").mkdir(parents=True)
    (out / "layers-1" / runs.MODEL_FILE).write_bytes(b"an earlier model")
    (out / "layers-3").write_text("a file where a run goes")
    with pytest.raises(InputError, match="layers-3 exists and is not a directory"):
        demo(out, force=True)
    assert (out / "layers-1" / runs.MODEL_FILE).read_bytes() == b"an earlier model"


@pytest.mark.slow
def test_demo_follows_its_base_settings(tmp_path, monkeypatch):
    import dataclasses

    from nsteplstm import demo as demo_module

    plotted = {}
    real = demo_module.plot_overlay

    def overlay(path, histories, *args, **kw):
        plotted[Path(path).name] = list(histories)
        return real(path, histories, *args, **kw)

    monkeypatch.setattr(demo_module, "plot_overlay", overlay)
    base = dataclasses.replace(TINY, dropout=0.4, data="sine")
    report = demo(tmp_path / "demo", base=base).read_text()
    # 0.4 is the base's: the 2-layer run stands for it (it was trained twice, plotted once).
    assert plotted["dropout.png"] == ["dropout 0.4", "dropout 0.5"]
    assert sorted(p.name for p in (tmp_path / "demo").iterdir() if p.is_dir()) == [
        "dropout-0.5",
        "layers-1",
        "layers-2",
        "layers-3",
    ]
    assert "dropout 0.4, 0.5, 2 layers" in report and "0.3" not in report.split("<table>")[0]
    assert "a sine of period" in report and "Fibonacci" not in report
    # The configuration block once showed the base's n_layers and dropout, which four
    # of the five models do not have.
    shown = html.unescape(report.split("<h2>Configuration</h2>")[1])
    assert '"n_hidden"' in shown and '"n_layers"' not in shown and '"dropout"' not in shown
    assert "layers and dropout of each are in the table" in shown


def test_demo_refuses_the_adding_problem(tmp_path):
    import dataclasses

    with pytest.raises(InputError, match="demo: data = 'adding' is sequence-to-one"):
        demo(tmp_path / "demo", base=dataclasses.replace(TINY, data="adding", n_in=2))
    assert not (tmp_path / "demo").exists()
