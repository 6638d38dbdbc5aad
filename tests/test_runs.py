"""Tests of nsteplstm.runs: atomic writes, safe names, run directories, safe loading."""

from __future__ import annotations

import errno
import json
import os
import re
import resource
import shlex
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import safetensors
import safetensors.torch
import torch

from nsteplstm import runs
from nsteplstm.config import Config
from nsteplstm.data import Scaler
from nsteplstm.errors import InputError
from nsteplstm.model import Forecaster


def make_run(path: Path, n_hidden: int = 4, cell: str = "nstep") -> Forecaster:
    """A run directory holding config.json and model.safetensors of a fresh model."""
    torch.manual_seed(0)
    config = Config.from_dict({"n_hidden": n_hidden, "cell": cell}, "test")
    model = Forecaster(1, 1, n_hidden, 1, config.dropout, cell)
    path.mkdir(parents=True, exist_ok=True)
    runs.write_config(path, config, model.config, None)
    runs.save_model(path / runs.MODEL_FILE, model)
    return model


def test_atomic_write_replaces_and_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    runs.atomic_write(target, "old")
    runs.atomic_write(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_atomic_write_failure_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "a.txt"
    runs.atomic_write(target, "old")

    def broken(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError):
        runs.atomic_write(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_write_files_is_all_or_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, full_disk: Callable[[int], None]
) -> None:
    a, b, c = tmp_path / "a.csv", tmp_path / "b.png", tmp_path / "c.json"
    a.write_text("old a")
    b.write_text("old b")
    full_disk(1)  # a's data is written, b's is not
    with pytest.raises(OSError, match=r"cannot write \(No space left on device\)") as e:
        runs.write_files({a: "new a", b: b"new b", c: "new c"})
    assert e.value.filename == str(b)
    assert (a.read_text(), b.read_text()) == ("old a", "old b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.png"]  # no temporary file

    monkeypatch.undo()
    runs.write_files({a: "new a", b: b"new b", c: "new c"})
    assert [p.read_text() for p in (a, b, c)] == ["new a", "new b", "new c"]


def test_write_files_with_a_directory_in_the_way_writes_none_and_names_it(tmp_path: Path) -> None:
    # The renames ran in order: the files before the directory were replaced, and the
    # error named a temporary file that no longer existed.
    a, b, c = tmp_path / "a.csv", tmp_path / "b.json", tmp_path / "c.json"
    a.write_text("old a")
    b.mkdir()
    with pytest.raises(OSError, match=r"cannot write \(is a directory\)") as e:
        runs.write_files({a: "new a", b: "new b", c: "new c"})
    assert e.value.filename == str(b)
    assert a.read_text() == "old a" and b.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.json"]


def test_tensor_files_that_cannot_be_written_name_the_file(tmp_path: Path) -> None:
    """safetensors streams the tensors itself; its I/O errors become OSErrors too."""
    path = tmp_path / runs.MODEL_FILE
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))  # Python ignores SIGXFSZ
    try:
        with pytest.raises(OSError, match=r"cannot write \(File too large\)") as e:
            runs.save_model(path, Forecaster(1, 1, 64, 1, 0.0))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert e.value.filename == str(path) and e.value.errno == errno.EFBIG
    assert list(tmp_path.iterdir()) == []
    runs.save_model(path, Forecaster(1, 1, 64, 1, 0.0))
    assert safetensors.torch.load_file(path)["head.weight"].shape == (1, 64)


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "/etc/passwd", "a\\b", "x\x00"])
def test_output_path_refuses_escaping_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(InputError, match="not a plain file name"):
        runs.output_path(tmp_path, name)


def test_output_path_accepts_plain_names(tmp_path: Path) -> None:
    assert runs.output_path(tmp_path, "forecast-window.csv") == tmp_path / "forecast-window.csv"


def test_prepare_run_dir(tmp_path: Path) -> None:
    run = runs.prepare_run_dir(tmp_path / "new" / "run", force=False)
    assert run.is_dir()
    assert runs.prepare_run_dir(run, force=False) == run  # empty: fine
    (run / "notes.txt").write_text("mine")
    (run / "checkpoint-3.safetensors").write_bytes(b"stale")
    (run / runs.CHECKPOINT_FILE).write_text("{}")
    runs.write_metrics(run, {"val_loss": 1.0})  # which records no forecast
    (run / "forecast-window.csv").write_text("t,truth,prediction\n")  # of the old model
    (run / "forecast-stream.png").write_bytes(b"old")
    with pytest.raises(InputError, match="--force"):
        runs.check_run_dir_free(run, force=False)
    with pytest.raises(InputError, match="--force"):
        runs.prepare_run_dir(run, force=False)
    assert runs.check_run_dir_free(run, force=True) == run
    assert len(list(run.iterdir())) == 6  # checking changed nothing
    (run / "forecast-mine.csv").write_text("the user's own")  # not recorded as the run's
    (run / "losses.png").write_bytes(b"the user's plot")
    (run / "checkpoint-backup.safetensors").write_bytes(b"the user's copy")  # not a run's name
    (run / runs.MODEL_FILE).mkdir()  # in the way: nothing may be removed
    with pytest.raises(InputError, match="cannot replace .*model.safetensors: it is a directory"):
        runs.prepare_run_dir(run, force=True)
    assert len(list(run.iterdir())) == 10
    (run / runs.MODEL_FILE).rmdir()
    runs.prepare_run_dir(run, force=True)
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoint-backup.safetensors",
        "forecast-mine.csv",
        "losses.png",
        "notes.txt",
    ]
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        runs.prepare_run_dir(file, force=True)


def test_force_removes_the_old_runs_named_forecasts(tmp_path: Path) -> None:
    """Named forecasts of the old model survived --force beside the new weights (and
    blocked a new forecast of that name)."""
    run = tmp_path / "run"
    run.mkdir()
    runs.write_metrics(run, {"forecast": {"shop9": {"points": 3}, "window": {"points": 1}}})
    for name in ("forecast-shop9.csv", "forecast-shop9.png", "forecast-window.csv"):
        (run / name).write_text("old")
    (run / "forecast-mine.csv").write_text("the user's own: not recorded")
    runs.prepare_run_dir(run, force=True)
    assert sorted(p.name for p in run.iterdir()) == ["forecast-mine.csv"]


@pytest.mark.parametrize("damage", ['{"forecast": {"shop9"', '{"forecast": 5}', "[]"])
def test_force_refuses_a_damaged_metrics_json_beside_forecasts(tmp_path: Path, damage) -> None:
    """With metrics.json damaged, --force removed the old run but not its named
    forecasts (it could not tell them from the user's files): they survived beside the
    new weights."""
    run = tmp_path / "run"
    run.mkdir()
    (run / runs.METRICS_FILE).write_text(damage)
    runs.prepare_run_dir(run, force=True)  # no forecast beside it: nothing to lose
    assert not list(run.iterdir())
    (run / runs.METRICS_FILE).write_text(damage)
    for name in ("forecast-shop9.csv", "forecast-shop9.png"):
        (run / name).write_text("old")
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    message = (
        r"metrics.json: .*; it records which of the forecast files here \('forecast-shop9.csv', "
        r"'forecast-shop9.png'\) are the old run's, for --force to remove: repair it, or move "
        r"them elsewhere or delete them, and run again \(forecast-window.\* and "
        r"forecast-stream.\* go with the old run in any case\)$"
    )
    for call in (runs.check_run_dir_free, runs.prepare_run_dir):
        with pytest.raises(InputError, match=message):
            call(run, force=True)
        assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    (run / "forecast-shop9.png").unlink()  # the user's choice, as the message offers
    (run / "forecast-shop9.csv").rename(tmp_path / "forecast-shop9.csv")
    runs.prepare_run_dir(run, force=True)
    assert not list(run.iterdir())


def test_force_refuses_a_run_without_metrics_json_beside_named_forecasts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With metrics.json deleted, --force kept the old run's named forecasts beside the
    new weights, where they passed for the new model's."""
    from nsteplstm.cli import main

    run = tmp_path / "run"
    make_run(run)
    named = ["forecast-a.csv", "forecast-a.png", "forecast-b.csv", "forecast-c.png"]
    for name in [*named, "forecast-window.csv", "forecast-stream.png"]:
        (run / name).write_text("old")
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    message = (
        f"{run / runs.METRICS_FILE}: file not found; it records which of the forecast files "
        "here ('forecast-a.csv', 'forecast-a.png', 'forecast-b.csv', ... (4 files in all)) are "
        "the old run's, for --force to remove: move them elsewhere or delete them, and run "
        "again (forecast-window.* and forecast-stream.* go with the old run in any case)"
    )
    for call in (runs.check_run_dir_free, runs.prepare_run_dir):
        with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
            call(run, force=True)
        assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    assert main(["train", "--out", str(run), "--force", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith(f"error: {message}\n"), err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    for name in named:  # the advice followed
        (run / name).rename(tmp_path / name)
    runs.prepare_run_dir(run, force=True)
    assert list(run.iterdir()) == []
    # No run beside them: forecast files alone are the user's, and stay.
    for name in named:
        (tmp_path / name).rename(run / name)
    runs.prepare_run_dir(run, force=True)
    assert sorted(p.name for p in run.iterdir()) == sorted(named)


@pytest.mark.parametrize("damage", ['{"forecast": {"shop9"', '{"forecast": 5}', "[]"])
def test_force_replaces_a_run_whose_damaged_metrics_json_has_only_default_forecasts(
    tmp_path: Path, damage: str
) -> None:
    """forecast-window.* and forecast-stream.* go with the old run whatever metrics.json
    records, yet --force refused a damaged one beside them."""
    run = tmp_path / "run"
    make_run(run)
    (run / runs.METRICS_FILE).write_text(damage)
    for name in ("forecast-window.csv", "forecast-window.png", "forecast-stream.csv"):
        (run / name).write_text("old")
    (run / "notes.txt").write_text("mine")
    assert runs.check_run_dir_free(run, force=True) == run
    runs.prepare_run_dir(run, force=True)
    assert [p.name for p in run.iterdir()] == ["notes.txt"]


@pytest.mark.slow
def test_train_force_replaces_a_run_whose_damaged_metrics_json_has_only_default_forecasts(
    tmp_path: Path,
) -> None:
    from nsteplstm.train import train

    run = tmp_path / "run"
    tiny = {"epochs": 1, "total_size": 300, "sequence_size": 10, "n_hidden": 8, "batch_size": 50}
    train(tiny, run, quiet=True)
    (run / runs.METRICS_FILE).write_text('{"forecast": {"window"')
    (run / "forecast-window.csv").write_text("t,truth,prediction\n")
    result = train(tiny, run, force=True, quiet=True)
    assert runs.read_metrics(run) == result.metrics
    assert not (run / "forecast-window.csv").exists()


def test_force_removes_all_of_the_old_run_or_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file that cannot be removed (an immutable one) was met after others had gone,
    leaving a run that could be neither used nor resumed."""
    run = tmp_path / "run"
    run.mkdir()
    names = [runs.CONFIG_FILE, runs.MODEL_FILE, runs.HISTORY_FILE, runs.METRICS_FILE]
    for name in names:
        (run / name).write_text(name)
    real = Path.rename

    def rename(self: Path, target: Path) -> Path:
        if self.name == runs.METRICS_FILE:
            raise PermissionError(errno.EPERM, "Operation not permitted")
        return real(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(
        InputError,
        match=r"cannot remove .*metrics.json: Operation not permitted; nothing was removed",
    ):
        runs.prepare_run_dir(run, force=True)
    assert {p.name: p.read_text() for p in run.iterdir()} == {n: n for n in names}
    monkeypatch.setattr(Path, "rename", real)
    runs.prepare_run_dir(run, force=True)
    assert list(run.iterdir()) == []


def test_a_run_directory_that_cannot_be_created_is_refused_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # train() checks this first; it once trained, then failed at the first checkpoint.
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match=r"run directory .*file/a/run: .*file is not a directory$"):
        runs.check_run_dir_free(tmp_path / "file" / "a" / "run", force=False)
    real = tempfile.mkdtemp

    def refused(*args: object, dir: Path, **kwargs: object) -> str:  # as a read-only mount
        if Path(dir) == tmp_path:
            raise PermissionError(13, "Permission denied")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkdtemp", refused)
    with pytest.raises(InputError, match=rf"new/run: {tmp_path} is not writable$"):
        runs.check_run_dir_free(tmp_path / "new" / "run", force=False)
    assert not (tmp_path / "new").exists()
    # As root, os.access allowed /proc: training ran, then failed at its first checkpoint.
    if Path("/proc/self").is_dir():
        with pytest.raises(InputError, match=r"/proc/nsteplstm-x/run: /proc is not writable$"):
            runs.check_run_dir_free("/proc/nsteplstm-x/run", force=False)
    monkeypatch.setattr(tempfile, "mkdtemp", real)
    runs.check_run_dir_free(tmp_path / "new" / "run", force=False)
    assert sorted(tmp_path.iterdir()) == [tmp_path / "file"]  # the probe left nothing
    for bad in (None, "", 3):
        with pytest.raises(InputError, match=r"run directory must be a path, got"):
            runs.check_run_dir_free(bad, force=False)


def test_a_run_directory_that_is_a_dangling_link_is_named_so(tmp_path: Path, capsys) -> None:
    # plot on a link loop ended in a traceback (Path.resolve's RuntimeError); forecast
    # said "does not exist", train --out "cannot create run directory ...: File exists".
    from nsteplstm.cli import main

    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    (tmp_path / "broken").symlink_to("/nonexistent/dir")
    loop, broken = "is a symbolic link in a loop", "is a broken symbolic link (to /nonexistent/dir)"
    for path, said in ((tmp_path / "a", loop), (tmp_path / "broken", broken)):
        with pytest.raises(InputError, match=re.escape(f"run directory {path} {said}; pick")):
            runs.check_run_dir_free(path, force=True)
        with pytest.raises(InputError, match=re.escape(f"run directory {path} {said}") + "$"):
            runs.read_history(path)
        for argv in (
            ["plot", str(path), "--out", str(tmp_path / "p.png")],
            ["forecast", str(path)],
        ):
            assert main(argv) == 2
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and said in err, err
    # A run directory under such a link: "cannot create run directory ...: File exists".
    for link, said in ((tmp_path / "a", loop), (tmp_path / "broken", broken)):
        path = link / "run"
        assert main(["train", "--out", str(path), "--epochs", "1"]) == 2
        err = capsys.readouterr().err
        assert err.endswith(f"error: cannot create run directory {path}: {link} {said}\n"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "broken"]


def test_new_directory_removes_what_it_made_when_the_body_fails(tmp_path: Path) -> None:
    # bench on a full disk left its new, empty --out directory behind.
    (tmp_path / "had").mkdir()
    made = tmp_path / "had" / "a" / "b"
    with pytest.raises(OSError, match="No space"), runs.new_directory(made, "--out"):
        assert made.is_dir()
        raise OSError(errno.ENOSPC, "No space left on device")
    assert sorted(tmp_path.rglob("*")) == [tmp_path / "had"]
    with runs.new_directory(tmp_path / "had" / "c", "--out"):
        pass
    assert (tmp_path / "had" / "c").is_dir()
    (tmp_path / "file").write_text("x")
    bad = pytest.raises(InputError, match=r"^cannot create --out .*file/d: ")
    with bad, runs.new_directory(tmp_path / "file" / "d", "--out"):
        pytest.fail("entered")


def test_model_round_trip(tmp_path: Path) -> None:
    model = make_run(tmp_path)
    loaded = runs.load_model(tmp_path)
    assert not loaded.training
    assert loaded.config == model.config
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    doc = json.loads((tmp_path / runs.CONFIG_FILE).read_text())
    assert doc["format_version"] == 1 and doc["model"] == model.config
    assert doc["scaler"] is None and doc["config"]["n_hidden"] == 4


def test_the_same_weights_give_the_same_bytes(tmp_path: Path) -> None:
    # With two metadata keys, safetensors wrote them in either order: 2 of 8 runs
    # of one seed gave other file hashes, with identical weights.
    model = make_run(tmp_path)
    files = set()
    for _ in range(12):
        runs.save_model(tmp_path / "again.safetensors", model)
        files.add((tmp_path / "again.safetensors").read_bytes())
    assert len(files) == 1
    with safetensors.safe_open(tmp_path / "again.safetensors", "pt") as f:
        about = json.loads(f.metadata()["nsteplstm"])
    assert about == {"format_version": 1, "model": model.config}


def test_scaler_round_trip(tmp_path: Path) -> None:
    scaler = Scaler(np.array([1.5], np.float32), np.array([2.0], np.float32))
    config = Config(n_hidden=3)
    keys = ("n_layers", "n_in", "n_hidden", "n_out", "dropout", "cell")
    arch = {k: getattr(config, k) for k in keys}
    runs.write_config(tmp_path, config, arch, scaler)
    _, model_config, back = runs.read_config(tmp_path)
    assert model_config == arch
    assert back is not None and back.mean.tolist() == [1.5] and back.std.tolist() == [2.0]


def test_load_model_truncated(tmp_path: Path) -> None:
    make_run(tmp_path)
    path = tmp_path / runs.MODEL_FILE
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(InputError, match="model.safetensors.*truncated or corrupted"):
        runs.load_model(tmp_path)


def test_load_model_garbage(tmp_path: Path) -> None:
    make_run(tmp_path)
    (tmp_path / runs.MODEL_FILE).write_bytes(b"\x80\x04garbage pickle?")
    with pytest.raises(InputError, match="truncated or corrupted"):
        runs.load_model(tmp_path)


def test_load_model_wrong_shape(tmp_path: Path) -> None:
    make_run(tmp_path, n_hidden=4)
    other = Forecaster(1, 1, 5, 1, 0.0)
    runs.save_model(tmp_path / runs.MODEL_FILE, other)
    with pytest.raises(InputError, match=r"has shape \(20, 1\).*expected \(16, 1\)"):
        runs.load_model(tmp_path)


def test_run_files_that_are_not_files_are_refused(
    tmp_path: Path, not_a_file: Callable[[str], Path]
) -> None:
    make_run(tmp_path / "run")
    (tmp_path / "run" / runs.CONFIG_FILE).unlink()
    path = not_a_file(f"run/{runs.CONFIG_FILE}")
    with pytest.raises(InputError, match=f"^{path}: not a regular file"):
        runs.load_model(tmp_path / "run")


def test_load_model_wrong_architecture(tmp_path: Path) -> None:
    make_run(tmp_path, cell="nstep")
    runs.save_model(tmp_path / runs.MODEL_FILE, Forecaster(1, 1, 4, 1, 0.0, "step"))
    with pytest.raises(InputError, match="does not match the architecture"):
        runs.load_model(tmp_path)


def test_load_model_non_finite_weights(tmp_path: Path) -> None:
    model = make_run(tmp_path)
    with torch.no_grad():
        model.head.weight.fill_(float("nan"))
    runs.save_model(tmp_path / runs.MODEL_FILE, model)
    with pytest.raises(InputError, match="NaN"):
        runs.load_model(tmp_path)


def test_missing_files_and_dirs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        runs.load_model(tmp_path / "nope")
    with pytest.raises(InputError, match="config.json: file not found"):
        runs.load_model(tmp_path)
    make_run(tmp_path)
    (tmp_path / runs.MODEL_FILE).unlink()
    with pytest.raises(InputError, match="model.safetensors: file not found"):
        runs.load_model(tmp_path)
    with pytest.raises(InputError, match="training did not finish"):
        runs.load_run(tmp_path)


def test_newer_format_version(tmp_path: Path) -> None:
    make_run(tmp_path)
    path = tmp_path / runs.CONFIG_FILE
    doc = json.loads(path.read_text())
    doc["format_version"] = 2
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="format_version 2 was written by a newer nsteplstm"):
        runs.load_model(tmp_path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"format_version": 1, "config": CONFIG, "model": 3}', "'model' must be a JSON object"),
        ('{"format_version": 1, "config": CONFIG, "model": {MODEL, "n_hidden": -1}}', "not match"),
        ('{"format_version": 1, "config": CONFIG, "model": {MODEL, "foo": 1}}', "not a valid arch"),
        # It took Forecaster's default, then was reported as weights of the wrong shape.
        ('{"format_version": 1, "config": CONFIG, "model": {"n_layers": 1}}', "lacks 'n_in'$"),
        ('{"format_version": "1", "config": CONFIG, "model": {}}', "format_version must be"),
        ('{"format_version": 1, "config": {"epochs": 0}, "model": {}}', "'config' lacks 'n_"),
        ('{"format_version": 1, "config": {"x": 1e999}, "model": {}}', "beyond float64's"),
    ],
)
def test_bad_config_json(tmp_path: Path, text: str, message: str) -> None:
    make_run(tmp_path)
    doc = json.loads((tmp_path / runs.CONFIG_FILE).read_text())
    text = text.replace("CONFIG", json.dumps(doc["config"]))
    (tmp_path / runs.CONFIG_FILE).write_text(text.replace("MODEL", json.dumps(doc["model"])[1:-1]))
    with pytest.raises(InputError, match=message):
        runs.load_model(tmp_path)


def test_a_setting_missing_from_config_json_is_refused_not_defaulted(tmp_path: Path) -> None:
    # It took its default: a model trained on windows of 10 forecast with windows of 30.
    make_run(tmp_path)
    path = tmp_path / runs.CONFIG_FILE
    doc = json.loads(path.read_text())
    del doc["config"]["sequence_size"]
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=r"config.json: 'config' lacks 'sequence_size'$"):
        runs.read_config(tmp_path)


def test_a_data_hash_beside_generated_data_is_named_as_such(tmp_path: Path) -> None:
    # The message cut "fibonacci" as if it were "csv:PATH": "nacci: the file changed".
    make_run(tmp_path)
    path = tmp_path / runs.CONFIG_FILE
    doc = json.loads(path.read_text())
    doc["data_sha256"] = "abc"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=r"data_sha256 is set, but data = 'fibonacci' is no file"):
        runs.check_same_data(tmp_path, None)


HEADER = r'\{"columns": \[names\], "series_id": name or null\}'


@pytest.mark.parametrize(
    ("key", "value", "what"),
    [
        ("data_sha256", 5, "a string"),
        ("data_header", ["a", "b"], HEADER),
        ("data_header", {"columns": ["a", 1], "series_id": None}, HEADER),
        ("data_header", {"columns": ["a"], "series_id": 0}, HEADER),
        ("training_rows", {"": {"rows": -1, "sha256": "ab"}}, r"an object of .* by series id"),
        ("training_rows", {"": {"rows": 3}}, r"an object of .* by series id"),
    ],
)
def test_data_facts_of_the_wrong_type_are_named(tmp_path: Path, key, value, what) -> None:
    make_run(tmp_path)
    path = tmp_path / runs.CONFIG_FILE
    doc = json.loads(path.read_text())
    doc[key] = value
    path.write_text(json.dumps(doc))
    read = {
        "data_sha256": runs.stored_data_digest,
        "data_header": runs.stored_data_header,
        "training_rows": runs.stored_training_rows,
    }
    with pytest.raises(InputError, match=rf"config.json: {key} must be {what} or null, got "):
        read[key](tmp_path)


def test_metrics_beyond_float64_are_refused(tmp_path: Path) -> None:
    # 1e999 read as inf, and writing the metrics back (forecast) ended in a traceback.
    (tmp_path / runs.METRICS_FILE).write_text('{"val_loss": 1e999}')
    with pytest.raises(InputError, match=r"metrics.json is not valid JSON \(1e999 is beyond"):
        runs.read_metrics(tmp_path)


def test_history_round_trip_is_exact(tmp_path: Path) -> None:
    history = [
        {"epoch": 1, "train_loss": 0.1 + 0.2, "val_loss": 1 / 3, "seconds": 1e-7},
        {"epoch": 2, "train_loss": 5.973849039811355, "val_loss": 2.0, "seconds": 3.0},
    ]
    runs.write_history(tmp_path, history)
    assert (tmp_path / runs.HISTORY_FILE).read_text().splitlines()[0] == (
        "epoch,train_loss,val_loss,seconds"
    )
    assert runs.read_history(tmp_path) == history
    (tmp_path / runs.HISTORY_FILE).write_text("epoch,train_loss,val_loss,seconds\n1,x,2,3\n")
    with pytest.raises(InputError, match="line 2 must hold an epoch and three finite .* '1,x,2,3'"):
        runs.read_history(tmp_path)
    (tmp_path / runs.HISTORY_FILE).write_text("epoch,train_loss,val_loss,seconds\n1,nan,2,3\n")
    with pytest.raises(InputError, match="got '1,nan,2,3'"):
        runs.read_history(tmp_path)
    # A BOM and a trailing blank line, as an editor may leave them, are fine.
    (tmp_path / runs.HISTORY_FILE).write_text(
        "\ufeffepoch,train_loss,val_loss,seconds\n1,1,2,3\n\n"
    )
    assert runs.read_history(tmp_path) == [
        {"epoch": 1, "train_loss": 1.0, "val_loss": 2.0, "seconds": 3.0}
    ]


def test_update_metrics(tmp_path: Path) -> None:
    runs.write_metrics(tmp_path, {"val_loss": 0.5})
    runs.update_metrics(tmp_path, "forecast.window", {"rmse": 0.1})
    runs.update_metrics(tmp_path, "forecast.stream", {"rmse": 0.2})
    assert runs.read_metrics(tmp_path) == {
        "val_loss": 0.5,
        "forecast": {"window": {"rmse": 0.1}, "stream": {"rmse": 0.2}},
    }


def test_load_run(tmp_path: Path) -> None:
    make_run(tmp_path)
    runs.write_history(tmp_path, [{"epoch": 1, "train_loss": 1.0, "val_loss": 2.0, "seconds": 0}])
    runs.write_metrics(tmp_path, {"val_loss": 2.0})
    run = runs.load_run(tmp_path)
    assert run.path == tmp_path and run.config.n_hidden == 4 and run.scaler is None
    assert run.history[0]["val_loss"] == 2.0 and run.metrics == {"val_loss": 2.0}
    (tmp_path / runs.HISTORY_FILE).unlink()
    with pytest.raises(InputError, match=r"history.csv: file not found$"):
        runs.load_run(tmp_path)  # no checkpoint: nothing to rebuild it from
    (tmp_path / runs.CHECKPOINT_FILE).write_text("{}")
    with pytest.raises(
        InputError,
        match=r"history.csv: file not found; nsteplstm train --resume .* writes the run's "
        "final files again from its checkpoint$",
    ):
        runs.load_run(tmp_path)


def test_load_run_without_history(tmp_path: Path) -> None:
    make_run(tmp_path)
    runs.write_metrics(tmp_path, {"val_loss": 2.0})
    (tmp_path / runs.HISTORY_FILE).write_text("not a history\n")
    assert runs.load_run(tmp_path, history=False).history == []
    (tmp_path / runs.HISTORY_FILE).unlink()
    assert runs.load_run(tmp_path, history=False).metrics == {"val_loss": 2.0}
    with pytest.raises(InputError, match=r"history.csv: file not found$"):
        runs.load_run(tmp_path)


def test_load_run_names_the_forecasts_a_damaged_metrics_json_records(tmp_path: Path) -> None:
    # Its advice, resume, wrote metrics.json again without the forecasts' records.
    make_run(tmp_path)
    runs.write_history(tmp_path, [])
    (tmp_path / runs.METRICS_FILE).write_text('{"val_loss": 2.0, "forecast": {"a"')
    (tmp_path / "forecast-a.csv").write_text("t,truth,prediction\n")
    damaged = (
        r"metrics.json is not valid JSON \(.*\); it records which of the forecasts here "
        r"\('a': forecast-NAME.csv and .png\) are the run's: repair it"
    )
    with pytest.raises(InputError, match=damaged + "$"):
        runs.load_run(tmp_path)  # no checkpoint to write it again from
    (tmp_path / runs.CHECKPOINT_FILE).write_text("{}")
    again = (
        r", or delete it and run nsteplstm train --resume .*, which writes it again without them$"
    )
    with pytest.raises(InputError, match=damaged + again):
        runs.load_run(tmp_path)
    (tmp_path / "forecast-a.csv").unlink()  # no record to lose: resume writes it again
    with pytest.raises(
        InputError, match=r"not valid JSON .*final files again from its checkpoint$"
    ):
        runs.load_run(tmp_path)


def checkpoint(epoch: int, batch: int = 0) -> runs.Checkpoint:
    tensors = {"model.w": torch.full((2, 3), float(epoch)), "optim.0.step": torch.tensor(3.0)}
    return runs.Checkpoint(tensors, {"epoch": epoch, "batch": batch, "history": []})


def test_checkpoint_pairs_json_with_one_weights_file(tmp_path: Path) -> None:
    runs.save_checkpoint(tmp_path, checkpoint(1))
    (tmp_path / "checkpoint-keep.safetensors").write_bytes(b"the user's copy")
    runs.save_checkpoint(tmp_path, checkpoint(2, 5))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["checkpoint-2-5.safetensors", "checkpoint-keep.safetensors", "checkpoint.json"]
    back = runs.load_checkpoint(tmp_path)
    assert back is not None and back.name == "checkpoint-2-5.safetensors"
    assert back.state == {"epoch": 2, "batch": 5, "history": []}
    assert torch.equal(back.tensors["model.w"], torch.full((2, 3), 2.0))
    assert back.tensors["optim.0.step"].shape == ()


def test_no_checkpoint_is_none(tmp_path: Path) -> None:
    assert runs.load_checkpoint(tmp_path) is None


@pytest.mark.parametrize(
    "change, message",
    [
        ({"weights": "../model.safetensors"}, "'weights' must name"),
        ({"weights": "checkpoint-9.safetensors"}, "checkpoint-9.safetensors: file not found"),
        ({"format_version": 7}, "format_version 7 was written by a newer"),
        ({"epoch": -1}, "'epoch' must be an integer"),
    ],
)
def test_bad_checkpoint_json(tmp_path: Path, change: dict, message: str) -> None:
    runs.save_checkpoint(tmp_path, checkpoint(1))
    path = tmp_path / runs.CHECKPOINT_FILE
    doc = json.loads(path.read_text())
    doc.update(change)
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=message):
        runs.load_checkpoint(tmp_path)


def test_run_name_is_the_directorys_name_however_given(tmp_path: Path, monkeypatch) -> None:
    run = tmp_path / "fib"
    (run / "sub").mkdir(parents=True)
    monkeypatch.chdir(run)
    assert [runs.run_name(p) for p in (".", "sub/..", run, "./sub")] == ["fib", "fib", "fib", "sub"]
    (tmp_path / "link").symlink_to(run)
    assert runs.run_name(tmp_path / "link") == "link"  # the name the user gave


def test_command_path_is_one_argument_argparse_reads_as_a_path() -> None:
    assert runs.command_path(Path("runs/fib")) == "runs/fib"
    assert runs.command_path("my run") == "'my run'"
    assert runs.command_path("-r") == "./-r"  # "--resume -r": expected one argument
    assert runs.command_path("-my run") == "'./-my run'"


def test_load_run_says_how_to_resume_a_run_whose_path_needs_quoting(
    tmp_path: Path, monkeypatch
) -> None:
    # "resume it with: nsteplstm train --resume my run" named two arguments, and
    # "--resume -run" none (argparse takes -run for an option).
    monkeypatch.chdir(tmp_path)
    for name, shown in (("my run", "'my run'"), ("-run", "./-run")):
        make_run(Path(name))
        (Path(name) / runs.MODEL_FILE).unlink()
        (Path(name) / runs.CHECKPOINT_FILE).write_text("{}")
        with pytest.raises(InputError) as info:
            runs.load_run(name)
        assert str(info.value).endswith(f"resume it with: nsteplstm train --resume {shown}")


def test_check_dir_free_names_what_the_directory_is(tmp_path: Path) -> None:
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "notes.txt").write_text("mine")
    (tmp_path / "file").write_text("a file")
    with pytest.raises(InputError, match=r"^demo directory .*/demo exists and is not empty; "):
        runs.check_dir_free(tmp_path / "demo", False, "demo directory")
    with pytest.raises(InputError, match="^demo directory .*/file exists and is not a directory"):
        runs.check_dir_free(tmp_path / "file", True, "demo directory")
    with pytest.raises(InputError, match="^demo directory must be a path, got None$"):
        runs.check_dir_free(None, False, "demo directory")  # type: ignore[arg-type]
    assert runs.check_dir_free(tmp_path / "demo", True, "demo directory") == tmp_path / "demo"


def test_a_history_that_is_not_utf8_names_its_line_and_byte(tmp_path: Path) -> None:
    make_run(tmp_path)
    runs.write_history(tmp_path, [{"epoch": 1, "train_loss": 1.0, "val_loss": 2.0, "seconds": 0}])
    raw = (tmp_path / runs.HISTORY_FILE).read_bytes()
    (tmp_path / runs.HISTORY_FILE).write_bytes(raw + b"2,\xe9,1,0\n")
    with pytest.raises(
        InputError,
        match=rf"line 3: not UTF-8 text CSV \(invalid byte 0xe9 at offset {len(raw) + 2}\)$",
    ):
        runs.read_history(tmp_path)


def test_a_force_killed_over_leftovers_leaves_only_what_a_later_force_removes(
    tmp_path: Path,
) -> None:
    # A --force killed while it set aside an earlier killed --force's leftovers left
    # them as ..config.json.123.removed.456.removed, which no later --force or
    # --resume recognised: they stayed for good.
    run = tmp_path / "run"
    run.mkdir()
    for name in (runs.CONFIG_FILE, runs.METRICS_FILE, "notes.txt"):
        (run / name).write_text(name)
    for name in (".config.json.123.removed", ".metrics.json.abcd1234.tmp"):
        (run / name).write_text(name)  # an earlier killed process's
    at_kill: list[str] = []
    runs.prepare_run_dir(run, force=True, write=lambda path: at_kill.extend(os.listdir(path)))
    killed = tmp_path / "killed"  # the directory as a SIGKILL in write() leaves it
    killed.mkdir()
    for name in at_kill:
        (killed / name).write_text(name)
    assert [p.name for p in runs.leftover_files(killed)] == sorted(set(at_kill) - {"notes.txt"})
    runs.prepare_run_dir(killed, force=True)
    assert os.listdir(killed) == ["notes.txt"]


def test_read_config_names_the_files_a_killed_force_set_aside(tmp_path: Path) -> None:
    # "config.json: file not found" did not say that a killed --force had set the old
    # run aside, nor what to do.
    make_run(tmp_path)
    (tmp_path / runs.CONFIG_FILE).rename(tmp_path / f".{runs.CONFIG_FILE}.4242.removed")
    (tmp_path / runs.MODEL_FILE).rename(tmp_path / f".{runs.MODEL_FILE}.4242.removed")
    message = (
        r"config.json: file not found; a train --force killed while replacing the run left "
        r"the old run's files set aside \('.config.json.4242.removed', "
        r"'.model.safetensors.4242.removed'\): to train anew, nsteplstm train --out .* --force$"
    )
    with pytest.raises(InputError, match=message):
        runs.read_config(tmp_path)
    with pytest.raises(InputError, match=message):
        runs.load_run(tmp_path)
    (tmp_path / f".{runs.CONFIG_FILE}.4242.removed").unlink()
    (tmp_path / f".{runs.MODEL_FILE}.4242.removed").rename(tmp_path / runs.MODEL_FILE)
    with pytest.raises(InputError, match=r"config.json: file not found; .* other files"):
        runs.read_config(tmp_path)


def test_reading_a_directory_that_holds_no_run_says_so(tmp_path: Path) -> None:
    # It said only "DIR/config.json: file not found", where plot said what to do.
    (tmp_path / "notes.txt").write_text("mine")  # no file of a run
    no_run = f"{tmp_path / runs.CONFIG_FILE}: file not found; {tmp_path} holds no run"
    message = f"^{re.escape(no_run)}: name a run directory$"
    for read in (runs.read_config, runs.load_run, runs.load_model):
        with pytest.raises(InputError, match=message):
            read(tmp_path)
    # Other files of a run beside it: a damaged run, not none.
    for name in (runs.MODEL_FILE, runs.HISTORY_FILE, "checkpoint-2.safetensors"):
        (tmp_path / name).write_text("x")
        with pytest.raises(InputError, match=rf"config.json: file not found; .*\('{name}'\)"):
            runs.read_config(tmp_path)
        (tmp_path / name).unlink()


def test_force_advice_on_a_damaged_metrics_json_says_which_forecasts_go(tmp_path: Path) -> None:
    # It said "--force removes only those it records: ... delete it and the forecast
    # files you do not want kept", but --force removes forecast-window.* and
    # forecast-stream.* (run files) whatever metrics.json records: one kept on that
    # advice was lost.
    run = tmp_path / "run"
    make_run(run)
    (run / runs.METRICS_FILE).write_text("{damaged")
    forecasts = ("forecast-window.csv", "forecast-stream.png", "forecast-mine.csv")
    for name in forecasts:
        (run / name).write_text("old")
    with pytest.raises(InputError) as refused:
        runs.check_run_dir_free(run, force=True)
    assert "('forecast-mine.csv') are the old run's" in str(refused.value)  # the only one
    assert str(refused.value).endswith(
        "(forecast-window.* and forecast-stream.* go with the old run in any case)"
    )
    (run / "forecast-mine.csv").rename(tmp_path / "forecast-mine.csv")  # the advice followed
    runs.prepare_run_dir(run, force=True)  # what it says goes, goes
    assert list(run.iterdir()) == []


@pytest.mark.parametrize("read", [runs.read_config, runs.load_run, runs.load_model])
def test_a_run_without_its_config_json_says_what_to_do(tmp_path: Path, read) -> None:
    # forecast and train --resume said only "RUN/config.json: file not found", though
    # the run's other files were there.
    run = tmp_path / "run"
    make_run(run)
    runs.write_history(run, [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.0, "seconds": 1.0}])
    (run / runs.CONFIG_FILE).unlink()
    message = (
        f"{run / runs.CONFIG_FILE}: file not found; {run} holds the run's other files "
        f"('model.safetensors', 'history.csv') but not its config.json, which says how to "
        f"read them: restore it, or train anew with nsteplstm train --out {shlex.quote(str(run))} "
        "--force"
    )
    with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
        read(run)
