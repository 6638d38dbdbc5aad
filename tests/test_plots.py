"""Plots: the figures' artists, valid PNG files, atomic writes and input errors."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_rgba

from nsteplstm import plots
from nsteplstm.errors import InputError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def history(scale: float = 1.0, epochs: int = 5) -> list[dict]:
    return [
        dict(epoch=e, train_loss=scale / e, val_loss=2 * scale / e, seconds=0.1)
        for e in range(1, epochs + 1)
    ]


def forecast_data(panels: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = np.arange(20)
    truth = np.tile(np.sin(t / 3.0), (panels, 1))
    truth[:, -3:] = np.nan  # past the series end
    pred = truth + 0.1
    pred[:, :5] = np.nan  # the start window
    return t, truth, pred


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 10_000
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left


def lines(ax) -> dict:
    return {line.get_label(): line for line in ax.get_lines()}


def test_forecast_figure_styles() -> None:
    t, truth, pred = forecast_data()
    fig = plots.forecast_figure(t, truth[0], pred[0], (0, 5), "My title")
    (ax,) = fig.axes
    by_label = lines(ax)
    assert by_label["truth"].get_linestyle() == ":"
    assert to_rgba(by_label["truth"].get_color()) == to_rgba("red")
    assert by_label["prediction"].get_linestyle() == "-"
    assert to_rgba(by_label["prediction"].get_color()) == to_rgba("black")
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == ["truth", "prediction", "start window"]
    (span,) = [p for p in ax.patches if p.get_label() == "start window"]
    x0, x1 = span.get_x(), span.get_x() + span.get_width()
    assert (x0, x1) == (-0.5, 4.5)  # covers points 0..4
    assert fig.get_suptitle() == "My title"
    assert ax.get_xlabel() and ax.get_ylabel()


def test_forecast_figure_one_panel_per_start() -> None:
    t, truth, pred = forecast_data(panels=3)
    t = np.stack([t, t + 100, t + 200])
    fig = plots.forecast_figure(t, truth, pred, [(0, 5), (100, 105), (200, 205)], "x")
    assert len(fig.axes) == 3
    assert fig.axes[2].get_xlim()[0] == pytest.approx(199.5)
    assert fig.axes[0].get_legend() is not None
    # One window for every panel, and t shared by every panel.
    assert len(plots.forecast_figure(t[0], truth, pred, (0, 5), "x").axes) == 3


def test_forecast_figure_draws_at_most_max_panels_and_says_so() -> None:
    # One panel per feature: a 300-column CSV's forecast took 6 minutes to draw, as a
    # PNG 79,000 pixels high.
    many = plots.MAX_PANELS + 5
    t, truth, pred = forecast_data(panels=many)
    names = [f"column {k}" for k in range(many)]
    fig = plots.forecast_figure(t, truth, pred, (0, 5), "Forecast", ylabels=names)
    assert len(fig.axes) == plots.MAX_PANELS
    assert fig.axes[-1].get_ylabel() == f"column {plots.MAX_PANELS - 1}"
    assert fig.get_suptitle() == f"Forecast (the first {plots.MAX_PANELS} of {many} panels)"
    assert fig.get_size_inches()[1] == pytest.approx(1.0 + 2.4 * plots.MAX_PANELS)
    with pytest.raises(InputError, match=f"ylabels must name the {many} panels"):
        plots.forecast_figure(t, truth, pred, (0, 5), "x", ylabels=names[:-1])
    fig = plots.forecast_figure(t, truth[:1], pred[:1], (0, 5), "Forecast")
    assert fig.get_suptitle() == "Forecast"


def test_plot_forecast_writes_png(tmp_path: Path) -> None:
    t, truth, pred = forecast_data()
    path = plots.plot_forecast(tmp_path / "f.png", t, truth[0], pred[0], (0, 5), "title")
    assert path == tmp_path / "f.png"
    assert_png(path)


def test_losses_figure() -> None:
    fig = plots.losses_figure(history(), "Loss")
    (ax,) = fig.axes
    assert ax.get_yscale() == "log"
    assert ax.get_xlabel() == "epoch"
    by_label = lines(ax)
    assert set(by_label) == {"train", "validation"}
    np.testing.assert_allclose(by_label["validation"].get_ydata(), [2 / e for e in range(1, 6)])
    np.testing.assert_array_equal(by_label["train"].get_xdata(), [1, 2, 3, 4, 5])
    assert ax.get_title() == "Loss"


def test_losses_without_epoch_column_or_validation() -> None:
    rows = [dict(train_loss=1.0, val_loss=None), dict(train_loss=0.5, val_loss=None)]
    ax = plots.losses_figure(rows, "x").axes[0]
    np.testing.assert_array_equal(lines(ax)["train"].get_xdata(), [1, 2])
    assert np.isnan(lines(ax)["validation"].get_ydata()).all()


def test_plot_losses_writes_png(tmp_path: Path) -> None:
    assert_png(plots.plot_losses(tmp_path / "l.png", history(), "title"))


def test_overlay_figure_labels_and_styles() -> None:
    runs = {f"dropout {d}": history(d) for d in (0.3, 0.4, 0.5)}
    ax = plots.overlay_figure(runs, "Dropout").axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(runs)
    colors = {to_rgba(line.get_color()) for line in ax.get_lines()}
    assert len(colors) == 3
    assert "validation" in ax.get_ylabel()

    ax = plots.overlay_figure(runs, "Dropout", metric="both").axes[0]
    by_label = lines(ax)
    assert len(by_label) == 6
    assert by_label["dropout 0.4 (train)"].get_linestyle() == "--"
    assert by_label["dropout 0.4 (validation)"].get_linestyle() == "-"
    assert (
        by_label["dropout 0.4 (train)"].get_color()
        == by_label["dropout 0.4 (validation)"].get_color()
    )

    ax = plots.overlay_figure(runs, "Dropout", metric="train_loss").axes[0]
    np.testing.assert_allclose(
        lines(ax)["dropout 0.5"].get_ydata(), history(0.5)[0]["train_loss"] / np.arange(1, 6)
    )


def test_plot_overlay_writes_png(tmp_path: Path) -> None:
    runs = {"1 layer": history(1), "2 layers": history(2)}
    assert_png(plots.plot_overlay(tmp_path / "o.png", runs, "Layers", metric="both"))


def test_overwrite_is_atomic_and_only_touches_path(tmp_path: Path) -> None:
    other = tmp_path / "keep.txt"
    other.write_text("untouched")
    path = tmp_path / "f.png"
    path.write_bytes(b"old")
    plots.plot_losses(path, history(), "t")
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert other.read_text() == "untouched"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png", "keep.txt"]


def test_failed_render_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fig = plots.losses_figure(history(), "t")

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(fig, "savefig", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        plots.save_png(fig, tmp_path / "f.png")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p: plots.plot_losses(p / "no" / "f.png", history(), "t"), "does not exist"),
        (lambda p: plots.plot_losses(p / "f.png", [], "t"), "history is empty"),
        (lambda p: plots.plot_overlay(p / "f.png", {}, "t"), "runs is empty"),
        (
            lambda p: plots.plot_overlay(p / "f.png", {"a": history()}, "t", metric="acc"),
            "metric must be one of val_loss, train_loss, both, got 'acc'",
        ),
        (
            lambda p: plots.plot_forecast(
                p / "f.png", np.arange(3), [1, 2, 3], [1, 2], (0, 1), "t"
            ),
            "same shape",
        ),
        (
            lambda p: plots.plot_forecast(
                p / "f.png", np.arange(4), [1, 2, 3], [1, 2, 3], (0, 1), "t"
            ),
            r"t must have shape \(3,\)",
        ),
        (
            lambda p: plots.plot_forecast(
                p / "f.png", np.arange(3), [[1, 2, 3]] * 2, [[1, 2, 3]] * 2, [(0, 1)] * 3, "t"
            ),
            "start_window must be one",
        ),
        # Not strings: matplotlib's AttributeError ('int' object has no attribute ...).
        (lambda p: plots.plot_losses(p / "f.png", history(), 7), "title must be a string, got 7"),
        (
            lambda p: plots.plot_overlay(p / "f.png", {1: history()}, "t"),
            "each run's label must be a string, got 1",
        ),
        (
            lambda p: plots.plot_forecast(
                p / "f.png", np.arange(3), [1, 2, 3], [1, 2, 3], (0, 1), "t", ylabels=[0.5]
            ),
            r"ylabels\[0\] must be a string, got 0.5",
        ),
        (
            lambda p: plots.plot_forecast(
                p / "f.png", np.arange(3), [1, 2, 3], [1, 2, 3], (0, 1), b"t"
            ),
            "title must be a string, got b't'",
        ),
    ],
)
def test_errors(tmp_path: Path, call, message: str) -> None:
    with pytest.raises(InputError, match=message):
        call(tmp_path)
    assert list(tmp_path.iterdir()) == []


def _two_runs(tmp_path: Path) -> list[Path]:
    from nsteplstm import runs

    dirs = []
    for name, scale in (("a", 1.0), ("b", 2.0)):
        (tmp_path / name).mkdir()
        runs.write_history(tmp_path / name, history(scale))
        dirs.append(tmp_path / name)
    return dirs


def test_plot_runs_overlays_run_histories(tmp_path: Path, legends_drawn: list) -> None:
    dirs = _two_runs(tmp_path)
    drawn = legends_drawn
    out = plots.plot_runs(dirs, tmp_path / "o.png")
    assert out.read_bytes()[:8] == PNG_MAGIC
    plots.plot_runs(dirs, tmp_path / "o.png", labels=["one", "two"], force=True)

    def entries(names: list[str]) -> list[str]:
        return [f"{name} ({m})" for name in names for m in ("train", "validation")]

    assert drawn == [entries(["a", "b"]), entries(["one", "two"])]  # by default: directories
    with pytest.raises(InputError, match="got 1 labels for 2 runs"):
        plots.plot_runs(dirs, tmp_path / "x.png", labels=["one"])
    with pytest.raises(InputError, match="history.csv: file not found"):
        plots.plot_runs([tmp_path / "a", tmp_path], tmp_path / "x.png")
    # The same run twice once blamed labels the user never gave.
    with pytest.raises(InputError, match=r"run .*a/\.\./a is given twice \(also as .*a\)$"):
        plots.plot_runs([tmp_path / "a", tmp_path / "a" / ".." / "a"], tmp_path / "x.png")
    # One path given twice is not named twice ("run a is given twice (also as a)").
    with pytest.raises(InputError, match=r"run .*/a is given twice$"):
        plots.plot_runs([tmp_path / "a", tmp_path / "a"], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_plot_runs_keeps_an_existing_out_unless_force(tmp_path: Path) -> None:
    dirs = _two_runs(tmp_path)
    out = tmp_path / "o.png"
    out.write_bytes(b"mine")
    with pytest.raises(InputError, match=r"o\.png already exists; use --force"):
        plots.plot_runs(dirs, out)
    assert out.read_bytes() == b"mine"
    plots.plot_runs(dirs, out, force=True)
    assert out.read_bytes()[:8] == PNG_MAGIC


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("o.jpg", r"o\.jpg: the name must be NAME\.png"),
        (".png", r"\.png: the name must be NAME\.png"),  # a hidden file, no suffix
        ("a/history.csv", r"history\.csv: the name must be NAME\.png"),  # a run's own file
        ("a", "a: it is a directory"),
        ("", r"cannot write \.: it is a directory"),
        ("a/history.csv/x.png", r"history\.csv/x\.png: .*a/history\.csv is not a directory$"),
        ("a/history.csv/b/x.png", r"x\.png: .*a/history\.csv is not a directory$"),
        ("a/new/x.png", r"x\.png: directory .*a/new does not exist$"),
    ],
)
def test_plot_runs_refuses_a_bad_out_even_with_force(tmp_path: Path, name, message) -> None:
    dirs = _two_runs(tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(InputError, match=message):
        plots.plot_runs(dirs, tmp_path / name if name else Path(name), force=True)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_save_png_names_a_directory_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "f.png").mkdir()
    with pytest.raises(InputError, match=r"f\.png: it is a directory"):
        plots.plot_losses(tmp_path / "f.png", history(), "t")
    assert [p.name for p in tmp_path.iterdir()] == ["f.png"]  # no temporary file left


@pytest.mark.parametrize(
    ("losses", "scale"),
    [
        ((1.0, 0.0), "linear"),
        ((-0.5, -0.1), "linear"),
        ((np.nan, np.nan), "linear"),
        ((1, 10), "log"),
        ((2.05, 4.05), "linear"),  # a log axis labelled only 3 and 4 here
    ],
)
def test_log_axis_only_for_positive_losses(tmp_path: Path, losses, scale: str) -> None:
    rows = [dict(epoch=e, train_loss=v, val_loss=v, seconds=0.1) for e, v in enumerate(losses, 1)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's "cannot be log-scaled" warning
        for fig in (plots.losses_figure(rows, "t"), plots.overlay_figure({"r": rows}, "t")):
            assert fig.axes[0].get_yscale() == scale
            assert fig.axes[0].get_ylabel().endswith(", log scale") == (scale == "log")
            assert plots.png_bytes(fig)[:8] == PNG_MAGIC


def test_a_one_epoch_curve_is_drawn_and_many_runs_keep_their_own_colors() -> None:
    one = [{"epoch": 1, "train_loss": 1.0, "val_loss": 2.0}]  # a line of one point is invisible
    ax = plots.losses_figure(one, "x").axes[0]
    assert [line.get_marker() for line in ax.get_lines()] == ["x", "o"]  # train, validation
    assert list(ax.get_xticks()) == [1]  # not 0.96, 0.98, ...
    hidden = plots.overlay_figure({"_base": one, "b": one}, "x").axes[0].get_legend()
    assert [t.get_text().lstrip("\u200b") for t in hidden.get_texts()] == ["_base", "b"]
    both = plots.overlay_figure({"a": one, "b": one}, "x", "both").axes[0]
    assert [line.get_marker() for line in both.get_lines()] == ["x", "o", "x", "o"]
    runs = {f"run {i}": one if i == 0 else history() for i in range(12)}
    lines = plots.overlay_figure(runs, "x").axes[0].get_lines()
    assert lines[0].get_marker() == "o" and lines[1].get_marker() == "None"
    assert len({to_rgba(line.get_color()) for line in lines}) == 12  # C{i % 10} repeated


def test_user_text_is_shown_as_given_never_as_math(tmp_path: Path) -> None:
    # "lr$x_1$" was drawn as "lrx₁"; "a $\frac{$ b" raised a parse error (a traceback).
    names = ["lr$x_1$", "a $\\frac{$ b"]
    overlay = plots.overlay_figure({n: history(1) for n in names}, "run $\\bad$")
    losses = plots.losses_figure(history(1), "run $\\bad$")
    forecast = plots.forecast_figure(
        np.arange(4), np.zeros((1, 4)), np.zeros((1, 4)), (0, 2), "r$\\bad$: forecast"
    )
    for fig in (overlay, losses, forecast):
        assert plots.png_bytes(fig)[:8] == PNG_MAGIC
    texts = [t.get_text() for t in overlay.axes[0].get_legend().get_texts()]
    assert texts == ["lr\\$x_1\\$", "a \\$\\frac{\\$ b"]  # a \$ is drawn as a $
    assert overlay.axes[0].get_title() == losses.axes[0].get_title() == "run \\$\\bad\\$"


def test_a_name_that_is_not_utf8_is_drawn_escaped(tmp_path: Path) -> None:
    """A run directory named with byte 0xff (Python: the lone surrogate U+DCFF) crashed
    matplotlib's text code with a traceback."""
    path_name = os.fsdecode(b"nu\xffrun")
    overlay = plots.overlay_figure({path_name: history(1), "x\ud800": history(1)}, path_name)
    forecast = plots.forecast_figure(
        np.arange(4), np.zeros((1, 4)), np.zeros((1, 4)), (0, 2), path_name, [path_name]
    )
    for fig in (overlay, forecast):
        assert plots.png_bytes(fig)[:8] == PNG_MAGIC
    texts = [t.get_text() for t in overlay.axes[0].get_legend().get_texts()]
    assert texts == ["nu\\xffrun", "x\\ud800"]
    assert overlay.axes[0].get_title() == forecast.axes[0].get_ylabel() == "nu\\xffrun"


def test_a_run_given_as_dot_is_named_by_its_directory(tmp_path: Path, monkeypatch) -> None:
    dirs = _two_runs(tmp_path)
    monkeypatch.chdir(dirs[0])
    seen = {}
    real = plots.plot_overlay

    def overlay(path, runs, *args, **kw):
        seen["labels"] = list(runs)
        return real(path, runs, *args, **kw)

    monkeypatch.setattr(plots, "plot_overlay", overlay)
    plots.plot_runs([".", dirs[1]], tmp_path / "o.png")
    assert seen["labels"] == [dirs[0].name, dirs[1].name]  # '.' was a blank label


def test_a_lone_predicted_point_is_drawn() -> None:
    # A forecast of one point (or one finite value between overflowed ones) was in the
    # CSV but not in the figure: a line through one point draws nothing.
    t = np.arange(6)
    truth = np.arange(6.0)
    pred = np.array([np.nan, np.nan, np.nan, 2.5, np.nan, 4.0])
    ax = plots.forecast_figure(t, truth, pred, (0, 3), "one point").axes[0]
    dots = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert len(dots) == 1 and dots[0].get_label().startswith("_")  # not in the legend
    assert list(dots[0].get_xdata()) == [3, 5] and list(dots[0].get_ydata()) == [2.5, 4.0]
    pred[4] = 3.5  # points 3 to 5 make a line: no dots
    ax = plots.forecast_figure(t, truth, pred, (0, 3), "a line").axes[0]
    assert [len(line.get_xdata()) for line in ax.get_lines() if line.get_marker() == "o"] == [0]


def test_long_titles_and_labels_are_wrapped_and_fit(tmp_path: Path) -> None:
    # A 150-character title ran off the figure, and a long run name in the legend
    # squeezed the axes or left the legend cut off (with a constrained-layout warning).
    title = "sales-2layers-dropout0.3-seed1-lr1e-3-h64: closed-loop forecast, stream mode " * 2
    t, truth, pred = forecast_data()
    fig = plots.forecast_figure(t, truth[0], pred[0], (0, 5), title)
    assert max(len(line) for line in fig.get_suptitle().split("\n")) <= plots.TITLE_CHARS
    assert fig.get_suptitle().replace("\n", " ") == title.strip()
    name = "runs/" + "x" * 140
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the layout warning is a UserWarning
        overlay = plots.overlay_figure({name: history(), "short": history()}, "t", "val_loss")
        plots.save_png(overlay, tmp_path / "long.png")
    labels = [text.get_text() for text in overlay.axes[0].get_legend().get_texts()]
    assert labels[0].replace("\n", "") == name and labels[1] == "short"
    assert max(len(line) for line in labels[0].split("\n")) <= plots.LEGEND_CHARS


def test_a_legend_of_many_runs_fits_and_each_run_has_its_own_color() -> None:
    # 14 runs with both curves: the legend ran off the bottom of the figure, the last
    # runs could not be told apart, and past 20 runs the colors repeated.
    for n in (24, plots.MAX_RUNS):  # one legend column, and several
        runs = {f"run {i:03d}": history() for i in range(n)}
        fig = plots.overlay_figure(runs, "t", "both")
        fig.draw_without_rendering()  # lays the figure out at its own dpi
        box = fig.bbox
        texts = fig.axes[0].get_legend().get_texts()
        assert len(texts) == 2 * n
        for text in texts:
            e = text.get_window_extent()
            inside = box.x0 <= e.x0 and e.x1 <= box.x1 and box.y0 <= e.y0 and e.y1 <= box.y1
            assert inside, (n, text.get_text())
        colors = {to_rgba(line.get_color()) for line in fig.axes[0].get_lines()}
        assert len(colors) == n
        assert max(fig.get_size_inches()) < 20  # a 1000-run figure was 400 inches tall
    assert plots.overlay_figure({"a": history()}, "t").get_size_inches()[1] == 4.5
    too_many = {f"r{i}": history() for i in range(plots.MAX_RUNS + 1)}
    with pytest.raises(InputError, match=r"^101 runs are more than one figure can tell apart"):
        plots.overlay_figure(too_many, "t")


def test_forecast_panels_take_their_features_names() -> None:
    t, truth, pred = forecast_data(panels=2)
    fig = plots.forecast_figure(t, truth, pred, (0, 5), "two", ylabels=["units", "price $"])
    assert [ax.get_ylabel() for ax in fig.axes] == ["units", r"price \$"]
    assert plots.forecast_figure(t, truth, pred, (0, 5), "two").axes[0].get_ylabel() == "value"
    with pytest.raises(InputError, match="ylabels must name the 2 panels, got 1 labels"):
        plots.forecast_figure(t, truth, pred, (0, 5), "two", ylabels=["units"])


def test_a_run_without_epochs_is_named_in_the_legend_not_fatal(
    tmp_path: Path, legends_drawn: list
) -> None:
    # An imported run (empty history.csv) among trained ones once stopped the whole
    # overlay; now it has a legend entry saying so, and no curve.
    from nsteplstm import runs

    dirs = _two_runs(tmp_path)
    (tmp_path / "imported").mkdir()
    runs.write_history(tmp_path / "imported", [])
    plots.plot_runs([dirs[0], tmp_path / "imported", dirs[1]], tmp_path / "o.png")
    assert legends_drawn == [
        ["a (train)", "a (validation)", "imported (no epochs)", "b (train)", "b (validation)"]
    ]
    ax = plots.overlay_figure({"a": history(), "i": []}, "t").axes[0]
    assert [len(line.get_xdata()) for line in ax.get_lines()] == [5, 0]
    # Nothing to draw at all is still an error, naming why.
    with pytest.raises(InputError, match=r"run 'i' is empty: no epochs .*imported from Chainer"):
        plots.overlay_figure({"i": []}, "t")
    (tmp_path / "imported2").mkdir()
    runs.write_history(tmp_path / "imported2", [])
    with pytest.raises(InputError, match="histories of all 2 runs are empty: no epochs"):
        plots.plot_runs([tmp_path / "imported", tmp_path / "imported2"], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_plot_runs_says_what_to_do_about_a_missing_history(tmp_path: Path) -> None:
    # "history.csv: file not found" said what was wrong, not what to do.
    from nsteplstm import runs

    run = _two_runs(tmp_path)[0]
    (run / runs.HISTORY_FILE).unlink()
    out = tmp_path / "x.png"
    (run / runs.CHECKPOINT_FILE).write_text("{}")
    resume = (
        rf"history.csv: file not found; nsteplstm train --resume {run} writes it again "
        "from the run's checkpoint, or leave the run out of the plot$"
    )
    with pytest.raises(InputError, match=resume):
        plots.plot_runs([run], out)
    (run / runs.CHECKPOINT_FILE).unlink()
    (run / runs.CONFIG_FILE).write_text("{}")
    no_checkpoint = "the run has no checkpoint to write it again from: leave it out of the plot$"
    with pytest.raises(InputError, match=rf"history.csv: file not found; {no_checkpoint}"):
        plots.plot_runs([run], out)
    (run / runs.HISTORY_FILE).write_text("damaged\n")
    with pytest.raises(InputError, match=rf"the header must be .*; {no_checkpoint}"):
        plots.plot_runs([run], out)
    (run / runs.CONFIG_FILE).unlink()
    (run / runs.HISTORY_FILE).unlink()
    no_run = rf"; {run} holds no run \(no config.json either\): name a run directory$"
    with pytest.raises(InputError, match=no_run):
        plots.plot_runs([run], out)
    assert not out.exists()


def test_a_run_stopped_before_its_first_epoch_is_not_called_imported(tmp_path: Path) -> None:
    # Its empty history was blamed on Chainer ("a run imported from Chainer has none").
    from nsteplstm import runs

    run = tmp_path / "half"
    run.mkdir()
    runs.write_history(run, [])
    (run / runs.CHECKPOINT_FILE).write_text("{}")  # what a run stopped mid-epoch holds
    said = rf"no epochs to plot \({run} stopped before its first epoch ended; nsteplstm train "
    with pytest.raises(InputError, match=said + rf"--resume {run}\)$"):
        plots.plot_runs([run], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
