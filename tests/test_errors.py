"""Every row of docs/errors.md, run through the CLI: exit code, one stderr line, no leftovers.

The table is the single source: each row holds a command with placeholders
(``{tmp}``, ``{run}``, ``{csv_nan}``, ...), the stable part of the message and the
exit code. This file builds what the placeholders name, runs ``main(argv)`` in
process, and checks that stderr is exactly one line holding the message, that no
traceback appears, and that no output was written or changed on the way.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import string
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from nsteplstm.cli import main
from nsteplstm.errors import InputError, gib

DOC = Path(__file__).resolve().parents[1] / "docs" / "errors.md"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# --device cpu: on a GPU machine `-k cuda` selects the CUDA row, which then skips; its
# run must not spend device time first.
TRAIN_FLAGS = "--total-size 300 --sequence-size 10 --n-hidden 8 --batch-size 50 --epochs 2 --quiet"
TRAIN_FLAGS += " --device cpu"
ROW = re.compile(r"^\|\s*(.+?)\s*\|\s*`nsteplstm (.+?)`\s*\|\s*`(.+?)`\s*\|\s*(\d+)\s*\|\s*$")

# Rows whose documented behaviour the program does not have yet: strict xfail, so
# the mark has to go when the bug is fixed.
KNOWN_BUGS: dict[str, str] = {}
COMMANDS = {"train", "forecast", "plot", "demo", "bench", "import-chainer"}  # the line names it
# Files whose appearance means a failed command left half-written output behind.
RESULT_FILES = {"model.safetensors", "history.csv", "metrics.json"}


def read_rows() -> list[tuple[str, str, str, int]]:
    rows = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        m = ROW.match(line)
        if m:
            mistake, command, message, code = m.groups()
            rows.append((mistake, command, message, int(code)))
    return rows


ROWS = read_rows()


def test_table_is_parsed():
    """Guards the regular expression: a reformatted table must not silently test nothing."""
    table_lines = [
        line for line in DOC.read_text(encoding="utf-8").splitlines() if "`nsteplstm " in line
    ]
    table_lines = [line for line in table_lines if line.startswith("|")]
    assert len(ROWS) == len(table_lines) >= 30


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def base_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny finished run; every row that needs a run gets its own copy."""
    out = tmp_path_factory.mktemp("base") / "run"
    assert main(["train", "--out", str(out), *TRAIN_FLAGS.split()]) == 0
    return out


# ---------------------------------------------------------------- placeholder makers


def _copy_run(tmp: Path, base: Path, name: str) -> Path:
    run = tmp / name
    shutil.copytree(base, run)
    return run


def _edit_config(run: Path, edit: Callable[[dict], None]) -> None:
    doc = json.loads((run / "config.json").read_text())
    edit(doc)
    (run / "config.json").write_text(json.dumps(doc, indent=2))


def _run(tmp: Path, base: Path) -> Path:
    return _copy_run(tmp, base, "run_given")


def _run_where(name: str, file: str, text: str | None) -> Callable[[Path, Path], Path]:
    """A maker of a copy of the finished run named ``name``, its ``file`` written as
    ``text``, or removed where ``text`` is None."""

    def make(tmp: Path, base: Path) -> Path:
        run = _copy_run(tmp, base, name)
        if text is None:
            (run / file).unlink()
        else:
            (run / file).write_text(text)
        return run

    return make


def _run_truncated_weights(tmp: Path, base: Path) -> Path:
    run = _copy_run(tmp, base, "run_truncated_weights")
    data = (run / "model.safetensors").read_bytes()
    (run / "model.safetensors").write_bytes(data[: len(data) // 2])
    return run


def _run_wrong_shape(tmp: Path, base: Path) -> Path:
    run = _copy_run(tmp, base, "run_wrong_shape")

    def edit(doc: dict) -> None:
        doc["config"]["n_hidden"] = doc["model"]["n_hidden"] = 16

    _edit_config(run, edit)
    return run


def _run_config_disagrees(tmp: Path, base: Path) -> Path:
    run = _copy_run(tmp, base, "run_config_disagrees")

    def edit(doc: dict) -> None:
        doc["config"]["n_hidden"] = 16  # 'model' and the weights still say 8

    _edit_config(run, edit)
    return run


def _run_future_format(tmp: Path, base: Path) -> Path:
    run = _copy_run(tmp, base, "run_future_format")

    def edit(doc: dict) -> None:
        doc["format_version"] = 99

    _edit_config(run, edit)
    return run


def _run_corrupt_config(tmp: Path, base: Path) -> Path:
    run = _copy_run(tmp, base, "run_corrupt_config")
    text = (run / "config.json").read_text()
    (run / "config.json").write_text(text[: len(text) // 2])
    return run


def _run_csv_units(tmp: Path, base: Path) -> Path:
    """A CSV run trained on the column 'units' (--csv-columns units)."""
    run = _copy_run(tmp, base, "run_csv_units")
    data = tmp / "units.csv"
    data.write_text("units\n" + "".join(f"{t % 5}\n" for t in range(300)))

    def edit(doc: dict) -> None:
        doc["config"]["data"] = f"csv:{data}"
        doc["config"]["csv_columns"] = ["units"]
        doc["data_header"] = {"columns": ["units"], "series_id": None}

    _edit_config(run, edit)
    return run


def _run_damaged_metrics(tmp: Path, base: Path) -> Path:
    run = _copy_run(tmp, base, "run_damaged_metrics")
    (run / "forecast-window.csv").write_text("t,truth,prediction\n")
    (run / "forecast-mine.csv").write_text("t,truth,prediction\n")
    text = (run / "metrics.json").read_text()
    (run / "metrics.json").write_text(text[: len(text) // 2])
    return run


def _run_without_metrics(tmp: Path, base: Path) -> Path:
    run = _run_where("run_without_metrics", "metrics.json", None)(tmp, base)
    (run / "forecast-mine.csv").write_text("t,truth,prediction\n")
    return run


def _run_csv_moved(tmp: Path, base: Path) -> Path:
    run = _copy_run(tmp, base, "run_csv_moved")

    def edit(doc: dict) -> None:
        doc["config"]["data"] = f"csv:{tmp / 'moved-away.csv'}"
        doc["data_sha256"] = "0" * 64  # as train records it

    _edit_config(run, edit)
    return run


def _run_csv_columns(tmp: Path, base: Path) -> Path:
    run = _copy_run(tmp, base, "run_csv_columns")
    data = tmp / "v.csv"
    data.write_text("v\n" + "".join(f"{t % 5}\n" for t in range(300)))

    def edit(doc: dict) -> None:
        doc["config"]["data"] = f"csv:{data}"
        doc["data_header"] = {"columns": ["v"], "series_id": None}

    _edit_config(run, edit)
    return run


def _bench_with_notes(tmp: Path, base: Path) -> Path:
    out = tmp / "bench_with_notes"
    out.mkdir()
    (out / "bench.md").write_text("my notes\n")
    return out


def _chainer_npz_extra(tmp: Path, base: Path) -> Path:
    with np.load(FIXTURES / "article_nstep.npz") as npz:
        arrays = dict(npz)
    path = tmp / "extra.npz"
    np.savez(path, **arrays, **{"l3/W": np.zeros((1, 200), np.float32)})
    return path


def _chainer_npz_optimizer(tmp: Path, base: Path) -> Path:
    """What chainer.serializers.save_npz writes for an Adam optimizer: t, epoch, and
    each parameter's t, m, v under its path."""
    with np.load(FIXTURES / "article_nstep.npz") as npz:
        arrays = dict(npz)
    state = {"t": np.array(10), "epoch": np.array(1)}
    for key, w in arrays.items():
        state |= {f"{key}/t": np.array(10), f"{key}/m": w * 0, f"{key}/v": w * 0}
    path = tmp / "optimizer.npz"
    np.savez(path, **state)
    return path


def _file(name: str, content: bytes | str) -> Callable[[Path, Path], Path]:
    def make(tmp: Path, base: Path) -> Path:
        path = tmp / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return path

    return make


MAKERS: dict[str, Callable[[Path, Path], Path]] = {
    "run": _run,
    "run_without_weights": _run_where("run_without_weights", "model.safetensors", None),
    "run_without_checkpoint": _run_where("run_without_checkpoint", "checkpoint.json", None),
    "run_truncated_weights": _run_truncated_weights,
    "run_wrong_shape": _run_wrong_shape,
    "run_config_disagrees": _run_config_disagrees,
    "run_future_format": _run_future_format,
    "run_corrupt_config": _run_corrupt_config,
    "run_nan_metrics": _run_where("run_nan_metrics", "metrics.json", '{"val_loss": NaN}'),
    "run_forecast_done": _run_where(
        "run_forecast_done", "forecast-window.csv", "t,truth,prediction\n"
    ),
    "run_damaged_metrics": _run_damaged_metrics,
    "run_without_metrics": _run_without_metrics,
    "run_without_history": _run_where("run_without_history", "history.csv", None),
    "run_damaged_checkpoint": _run_where("run_damaged_checkpoint", "checkpoint.json", '{"format'),
    "run_csv_moved": _run_csv_moved,
    "run_csv_columns": _run_csv_columns,
    "run_csv_units": _run_csv_units,
    "run_without_config": _run_where("run_without_config", "config.json", None),
    "bench_with_notes": _bench_with_notes,
    "existing_png": _file("mine.png", b"my picture"),
    "toml_unknown_key": _file("unknown.toml", "epochs = 2\nbogus = 1\n"),
    "toml_bad_syntax": _file("syntax.toml", "epochs = \n"),
    "toml_bad_epochs": _file("epochs.toml", "epochs = -5\n"),
    "toml_blank_column": _file("blank.toml", 'data = "csv:d.csv"\ncsv_columns = [""]\n'),
    "csv_empty": _file("empty.csv", ""),
    "csv_utf16": _file("utf16.csv", "v\n1\n2\n".encode("utf-16")),
    "csv_text_cell": _file("text.csv", "a,b\n1,2\n3,x\n4,5\n"),
    "csv_excel_semicolon": _file("excel.csv", "sep=;\nv\n1\n2\n"),
    "csv_two_columns": _file("two.csv", "a,b\n" + "".join(f"{t % 7},{t % 5}\n" for t in range(40))),
    "csv_thousands": _file("thousands.csv", 'v\n"1,000.5"\n"2,000.5"\n'),
    "csv_thousands_unquoted": _file("thousands2.csv", "v\n1.5\n1,000.5\n"),
    "csv_thousands_first": _file("thousands3.csv", "1,000.5\n2.5\n3.5\n"),
    "csv_thousands_every_line": _file(
        "thousands4.csv", "".join(f"{1 + t % 9},{t:03d}.5\n" for t in range(40))
    ),
    "csv_percent": _file("percent.csv", "v\n1.5\n12%\n"),
    "csv_currency": _file("currency.csv", "v\n1.5\n\u20ac12.5\n"),
    "csv_nan": _file("nan.csv", "v\n1\n2\nnan\n4\n"),
    "csv_gap": _file("gap.csv", "a,b\n1,2\n,\n4,5\n"),
    "csv_no_id": _file("ids.csv", "shop,v\na,1\n,2\na,3\n"),
    "csv_short": _file("short.csv", "v\n1\n2\n3\n"),
    "csv_renamed": _file("renamed.csv", "w\n" + "".join(f"{t % 5}\n" for t in range(300))),
    "random_bytes": _file("random.npz", bytes(range(7, 256)) * 3),
    "chainer_npz": lambda tmp, base: FIXTURES / "article_nstep.npz",
    "chainer_npz_extra": _chainer_npz_extra,
    "chainer_npz_optimizer": _chainer_npz_optimizer,
}


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def _params() -> list:
    params = []
    for mistake, command, message, code in ROWS:
        marks = [
            pytest.mark.xfail(strict=True, reason=reason)
            for key, reason in KNOWN_BUGS.items()
            if key in command
        ]
        params.append(pytest.param(command, message, code, id=mistake, marks=marks))
    return params  # a list: pytest is deprecating generators here


@pytest.mark.parametrize(("command", "message", "code"), _params())
def test_documented_error(command, message, code, tmp_path, base_run, capsys, monkeypatch):
    if "--device cuda" in command and torch.cuda.is_available():
        pytest.skip("this machine has a GPU: --device cuda is no mistake here")
    tmp = tmp_path / "work"
    tmp.mkdir()
    monkeypatch.chdir(tmp)  # anything written to a relative path lands where we look
    values = {"tmp": str(tmp)}
    for name in _fields(command) | _fields(message):
        if name != "tmp":
            assert name in MAKERS, f"docs/errors.md uses an unknown placeholder {{{name}}}"
            values[name] = str(MAKERS[name](tmp, base_run))
    argv = shlex.split(command.format(**values))
    expected = message.format(**values)
    before, dirs_before = _snapshot(tmp), {p for p in tmp.rglob("*") if p.is_dir()}
    capsys.readouterr()

    try:
        rc = main(argv)
    except SystemExit as e:  # argparse usage errors exit from inside parse_args
        rc = e.code

    out, err = capsys.readouterr()
    assert rc == code, err
    assert "Traceback" not in out + err
    assert err.endswith("\n") and err.count("\n") == 1, f"not one line: {err!r}"
    named = argv[0] in COMMANDS
    assert err.startswith(f"nsteplstm {argv[0]}: error: " if named else "nsteplstm: error: "), err
    assert expected in err

    after = _snapshot(tmp)
    changed = sorted(k for k in before.keys() & after.keys() if before[k] != after[k])
    assert not changed, f"a failed command changed {changed}"
    assert before.keys() <= after.keys(), f"removed {sorted(before.keys() - after.keys())}"
    new = sorted(after.keys() - before.keys())
    leftovers = [p for p in new if ".tmp" in p or os.path.basename(p).startswith(".")]
    assert not leftovers, f"temporary files left behind: {leftovers}"
    if code == 2:
        assert not new, f"a rejected command wrote {new}"
        made = sorted(str(p) for p in {p for p in tmp.rglob("*") if p.is_dir()} - dirs_before)
        assert not made, f"a rejected command created the directories {made}"
    else:  # a failed run keeps its config and last good checkpoint, but no results
        assert not [p for p in new if os.path.basename(p) in RESULT_FILES], new


def test_sizes_in_messages_keep_three_digits_or_group_thousands() -> None:
    # A huge --n-hidden printed "894,069,678,365,439.1 GiB"; a small need "0.0 GiB".
    assert [gib(x * 2**30) for x in (0.0012345, 23.54, 1234.4, 8.94e14)] == [
        "0.00123 GiB",
        "23.5 GiB",
        "1,234 GiB",
        "8.94e+14 GiB",
    ]


def test_a_python_flag_that_is_not_a_bool_is_refused(tmp_path, base_run) -> None:
    # force="no" is truthy: it replaced the run, the forecast, the figure.
    from nsteplstm.bench import run_bench
    from nsteplstm.chainer_import import import_chainer_run
    from nsteplstm.demo import run_demo
    from nsteplstm.forecast import forecast_run
    from nsteplstm.plots import plot_runs
    from nsteplstm.train import train

    run = _copy_run(tmp_path, base_run, "run")
    (tmp_path / "mine.png").write_bytes(b"my picture")
    before = _snapshot(tmp_path)
    calls = {
        "force": [
            lambda: train(None, run, force="no"),
            lambda: forecast_run(run, force="no"),
            lambda: plot_runs([run], tmp_path / "mine.png", force="no"),
            lambda: import_chainer_run(FIXTURES / "article_nstep.npz", run, force="no"),
            lambda: run_demo(tmp_path / "demo", force="no"),
            lambda: run_bench(tmp_path / "bench", force="no"),
        ],
        "resume": [lambda: train(None, run, resume="yes")],
        "quiet": [lambda: train(None, tmp_path / "new", quiet=1)],
        "quick": [lambda: run_bench(tmp_path / "bench", quick="yes")],
    }
    for name, tries in calls.items():
        for call in tries:
            with pytest.raises(InputError, match=rf"^{name} must be True or False, got "):
                call()
    assert _snapshot(tmp_path) == before


def test_plot_runs_names_a_string_of_runs_and_a_title_that_is_no_string(tmp_path, base_run):
    from nsteplstm.plots import plot_runs

    run = _copy_run(tmp_path, base_run, "run")
    with pytest.raises(InputError, match=r"^run_dirs must be a list of run directories, got "):
        plot_runs(str(run), tmp_path / "a.png")  # was: "run directory / does not exist"
    with pytest.raises(InputError, match=r"^title must be a string, got None"):
        plot_runs([run], tmp_path / "a.png", title=None)  # was an AttributeError
    two = _copy_run(tmp_path, base_run, "two")
    with pytest.raises(InputError, match=r"^labels must be a list of one label per run, got 'ab'"):
        plot_runs([run, two], tmp_path / "a.png", labels="ab")  # was labels 'a' and 'b'
    assert not (tmp_path / "a.png").exists()
