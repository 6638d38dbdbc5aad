"""Interrupted training for real: SIGKILL / SIGTERM a training subprocess, resume it,
and compare with an uninterrupted run bit for bit; broken checkpoints and bad losses."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save

from nsteplstm import runs
from nsteplstm.config import Config
from nsteplstm.errors import InputError
from nsteplstm.train import Interrupted, NonFiniteLoss, train

# Two layers (dropout draws from torch's generator) and random window lengths (drawn
# from the shuffle generator): every generator state must survive the interruption.
SETTINGS = {
    "n_hidden": 8,
    "n_layers": 2,
    "total_size": 300,
    "sequence_size": 10,
    "min_length": 4,
    "batch_size": 50,
    "epochs": 6,
    "checkpoint_every": 1,
    "device": "cpu",
}
# Run first in every subprocess: with SLOW_CHECKPOINT=S in its environment, it
# sleeps S seconds after writing a checkpoint's weights, before checkpoint.json names
# them, where the tests kill it.
SLOW_CHECKPOINT = """
import os, sys, time
from pathlib import Path
from nsteplstm import runs

if os.environ.get("SLOW_CHECKPOINT"):
    write = runs.atomic_write

    def atomic_write(path, data):
        write(path, data)
        if Path(path).name.startswith("checkpoint-"):
            time.sleep(float(os.environ["SLOW_CHECKPOINT"]))

    runs.atomic_write = atomic_write
"""
# Trains SETTINGS in RUN (or resumes it); with KILL_AT = [epoch, batch] it sends
# itself signal SIG right after that batch: a real signal at a known point.
RUNNER = (
    SLOW_CHECKPOINT
    + """
import json
from nsteplstm.config import Config
from nsteplstm.train import Interrupted, train

run, mode, settings, kill_at, sig = sys.argv[1:6]
kill_at, sig = tuple(json.loads(kill_at)), int(sig)

class Hook:
    def batch(self, epoch, epochs, batch, n_batches, loss):
        if (epoch, batch) == kill_at:
            os.kill(os.getpid(), sig)
    def epoch(self, *args):
        pass
    def close(self):
        pass

config = None if mode == "resume" else Config.from_dict(json.loads(settings), "test")
try:
    train(config, run, resume=mode == "resume", progress=Hook())
except Interrupted as e:  # as the command line reports it
    print(f"nsteplstm train: {e}", file=sys.stderr)
    sys.exit(e.exit_code)
"""
)


def env(**extra: str) -> dict[str, str]:
    """Subprocess environment: one thread (as the in-process reference), the source tree."""
    e = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **extra)
    src = str(Path(__file__).resolve().parents[1] / "src")
    e["PYTHONPATH"] = src + os.pathsep + e.get("PYTHONPATH", "")
    return e


def start(run: Path, mode: str = "new", kill_at: tuple[int, int] = (0, 0), sig: int = 9, **kw: Any):
    args = [sys.executable, "-c", RUNNER, str(run), mode, json.dumps(SETTINGS)]
    args += [json.dumps(list(kill_at)), str(sig)]
    return subprocess.Popen(
        args, env=env(**kw), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def resume(run: Path) -> None:
    code, err = finish(start(run, "resume"))
    assert code == 0, err


class Unexpected:
    """A progress report that fails the test at the first batch: nothing may train."""

    def batch(self, *args: Any) -> None:
        pytest.fail("a batch was trained")

    def epoch(self, *args: Any) -> None: ...

    def close(self) -> None: ...


def without_seconds(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An uninterrupted run, in this process with one thread like the subprocesses."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = tmp_path_factory.mktemp("reference") / "run"
        train(Config.from_dict(SETTINGS, "test"), run, quiet=True)
    finally:
        torch.set_num_threads(threads)
    yield run


def assert_same_run(run: Path, reference: Path) -> None:
    a, b = load_file(run / runs.MODEL_FILE), load_file(reference / runs.MODEL_FILE)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert without_seconds(runs.read_history(run)) == without_seconds(runs.read_history(reference))
    ma, mb = runs.read_metrics(run), runs.read_metrics(reference)
    assert (ma["best_epoch"], ma["val_loss"]) == (mb["best_epoch"], mb["val_loss"])
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-6.safetensors"]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume(tmp_path: Path, reference: Path) -> None:
    run = tmp_path / "run"
    code, err = finish(start(run, kill_at=(3, 2), sig=signal.SIGKILL))
    assert code == -signal.SIGKILL, err
    ckpt = runs.load_checkpoint(run)
    assert ckpt is not None and (ckpt.state["epoch"], ckpt.state["batch"]) == (2, 0)
    assert not (run / runs.MODEL_FILE).exists()
    resume(run)
    assert_same_run(run, reference)


@pytest.mark.slow
def test_sigkill_mid_checkpoint_write_then_resume(tmp_path: Path, reference: Path) -> None:
    run = tmp_path / "run"
    proc = start(run, SLOW_CHECKPOINT="0.5")
    deadline = time.monotonic() + 60
    # The weights of epoch 2's checkpoint are written; its JSON is not (SLOW_CHECKPOINT).
    while not (run / "checkpoint-2.safetensors").exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    proc.kill()
    finish(proc)
    assert json.loads((run / runs.CHECKPOINT_FILE).read_text())["weights"] == (
        "checkpoint-1.safetensors"
    )
    resume(run)
    assert_same_run(run, reference)


@pytest.mark.slow
def test_sigterm_writes_checkpoint_and_exits_143(tmp_path: Path, reference: Path) -> None:
    run = tmp_path / "run"
    code, err = finish(start(run, kill_at=(4, 3), sig=signal.SIGTERM))
    assert code == 143
    assert f"nsteplstm train --resume {run}" in err
    assert "Traceback" not in err
    ckpt = runs.load_checkpoint(run)
    assert ckpt is not None and (ckpt.state["epoch"], ckpt.state["batch"]) == (3, 3)
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-3-3.safetensors"]
    assert not list(run.glob(".*.tmp"))
    resume(run)
    assert_same_run(run, reference)


def test_resume_of_a_finished_run_is_a_no_op(tmp_path: Path, reference: Path, capsys) -> None:
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    runs.update_metrics(run, "forecast.window", {"points": 3})  # as `nsteplstm forecast` does
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    result = train(None, run, resume=True, quiet=True)
    assert result.metrics["epochs"] == 6 and not result.trained
    assert_same_run(run, reference)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # forecasts kept
    # The command said 'trained RUN' as if it had trained again.
    from nsteplstm.cli import main

    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert capsys.readouterr().out.startswith(f"{run} had finished already: train loss ")


def test_non_finite_loss_names_epoch_and_batch(tmp_path: Path) -> None:
    config = Config.from_dict({**SETTINGS, "lr": 1e30, "min_length": None}, "test")
    with pytest.raises(NonFiniteLoss, match=r"epoch 1, batch \d+ of 6; nothing was written"):
        train(config, tmp_path / "run", quiet=True)
    assert not (tmp_path / "run").exists()  # no checkpoint had been reached


@pytest.mark.parametrize(
    ("grad_clip", "hint"), [(1.0, "--grad-clip below 1)"), (0.0, "--grad-clip > 0)")]
)
def test_non_finite_loss_hints_at_the_clipping_in_use(grad_clip, hint) -> None:
    # It said 'a --grad-clip > 0' with clipping on (the default, 1.0).
    error = NonFiniteLoss(2, 3, float("inf"), 6, grad_clip)
    assert str(error).endswith(f"(try a lower --lr or a {hint}")


def test_non_finite_loss_keeps_the_last_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Data trick: the training windows turn to inf after epoch 2's checkpoint."""
    from nsteplstm import train as train_module

    real = train_module.prepare_data

    def poisoned(dataset: Any, config: Config, device: Any = "cpu") -> Any:
        data = real(dataset, config, device)
        original = data.batch
        seen = {"epochs": 0, "batches": 0}  # finished epochs (validated), batches since

        def batch(split: Any, index: Any, lengths: Any) -> Any:
            x, y, layout = original(split, index, lengths)
            if split is data.train:
                seen["batches"] += 1
                if seen["epochs"] == 2 and seen["batches"] == 4:  # epoch 3, batch 4
                    y = y * float("inf")
            elif seen["batches"]:
                seen["epochs"], seen["batches"] = seen["epochs"] + 1, 0
            return x, y, layout

        data.batch = batch
        return data

    monkeypatch.setattr(train_module, "prepare_data", poisoned)
    run = tmp_path / "run"
    with pytest.raises(NonFiniteLoss, match=r"epoch 3, batch 4 of \d+; the last good checkpoint"):
        train(Config.from_dict(SETTINGS, "test"), run, quiet=True)
    ckpt = runs.load_checkpoint(run)
    assert ckpt is not None and (ckpt.state["epoch"], ckpt.state["batch"]) == (2, 0)
    assert not (run / runs.MODEL_FILE).exists()


def interrupt(
    config: Config, run: Path, at: Callable[[int, int, int], bool]
) -> runs.Checkpoint | None:
    """Train ``config`` into ``run`` in this process, sending ourselves SIGINT after the
    batch where ``at(epoch, batch, n_batches)`` holds; return the checkpoint written."""

    class Stop:
        def batch(self, epoch: int, epochs: int, batch: int, n_batches: int, loss: float) -> None:
            if at(epoch, batch, n_batches):
                os.kill(os.getpid(), signal.SIGINT)

        def epoch(self, *args: Any) -> None:
            pass

        def close(self) -> None:
            pass

    with pytest.raises(Interrupted) as info:
        train(config, run, progress=Stop())
    assert info.value.exit_code == 130
    return runs.load_checkpoint(run)


@pytest.fixture
def interrupted(tmp_path: Path) -> Path:
    """A run interrupted (in-process) after epoch 2, with its checkpoint."""
    run = tmp_path / "run"
    ckpt = interrupt(Config.from_dict(SETTINGS, "test"), run, lambda e, b, n: (e, b) == (2, n))
    assert ckpt is not None and (ckpt.state["epoch"], ckpt.state["batch"]) == (2, 0)
    return run


def test_sigint_at_the_end_of_an_epoch_then_resume(interrupted: Path, reference: Path) -> None:
    train(None, interrupted, resume=True, quiet=True)
    assert_same_run(interrupted, reference)


def test_resume_of_a_read_only_run_is_refused_before_training(
    interrupted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It trained up to its next checkpoint, then failed: "Read-only file system".
    import tempfile

    real = tempfile.mkdtemp

    def mkdtemp(*args: Any, dir: Any, **kwargs: Any) -> str:  # as on a read-only mount
        if Path(dir) == interrupted:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real(*args, dir=dir, **kwargs)

    files = {p.name: p.read_bytes() for p in interrupted.iterdir()}
    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    with pytest.raises(InputError, match=r"cannot resume .*run: the directory is not writable$"):
        train(None, interrupted, resume=True, progress=Unexpected())
    assert {p.name: p.read_bytes() for p in interrupted.iterdir()} == files


def test_resume_and_force_clear_what_a_killed_writer_left(interrupted: Path) -> None:
    # A SIGKILL mid-write left .checkpoint-3.safetensors.XXXXXXXX.tmp for good.
    left = [".checkpoint-3.safetensors.wi6qctpn.tmp", ".metrics.json.4242.removed"]
    left.append("..history.csv.4242.removed.4343.removed")  # a killed --force set it aside
    mine = [".notes.txt.abcd1234.tmp", "checkpoint-notes.txt"]  # not the run's own
    for name in left + mine:
        (interrupted / name).write_text(name)
    assert runs.leftover_files(interrupted) == sorted(interrupted / n for n in left)
    train(None, interrupted, resume=True, quiet=True)
    assert not any((interrupted / n).exists() for n in left)
    for name in left:
        (interrupted / name).write_text(name)
    train(Config.from_dict(SETTINGS, "test"), interrupted, force=True, quiet=True)
    assert not any((interrupted / n).exists() for n in left)
    assert all((interrupted / n).read_text() == n for n in mine)


@pytest.mark.parametrize("finished", [True, False], ids=["finished", "unfinished"])
def test_a_damaged_checkpoint_says_what_to_do(
    tmp_path: Path, reference: Path, interrupted: Path, finished: bool
) -> None:
    # It said what was wrong ("checkpoint.json is not valid JSON"), not what to do.
    run = tmp_path / "finished"
    if finished:
        shutil.copytree(reference, run)
    else:
        run = interrupted
    (run / runs.CHECKPOINT_FILE).write_text('{"format')
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    anew = rf"to train it anew: nsteplstm train --out {run} --force$"
    advice = (
        r"the run has final weights \(model.safetensors\), which forecast and plot use "
        r"without it \(it serves only to resume\); "
        if finished
        else "the run cannot go on without it; "
    )
    message = rf"checkpoint.json: checkpoint.json is not valid JSON \(.*\); {advice}{anew}"
    with pytest.raises(InputError, match=message):
        train(None, run, resume=True, progress=Unexpected())
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    if finished:  # as the message says
        assert runs.load_run(run).history


def test_truncated_checkpoint(interrupted: Path) -> None:
    path = interrupted / "checkpoint-2.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputError, match="checkpoint-2.safetensors.*truncated or corrupted"):
        train(None, interrupted, resume=True, quiet=True)


def test_corrupted_checkpoint_values(interrupted: Path) -> None:
    path = interrupted / "checkpoint-2.safetensors"
    tensors = load_file(path)
    tensors["model.head.weight"] = torch.zeros(3, 3)
    runs.atomic_write(path, save(tensors))
    with pytest.raises(InputError, match=r"model.head.weight has shape \(3, 3\)"):
        train(None, interrupted, resume=True, quiet=True)


def test_checkpoint_json_garbage(interrupted: Path) -> None:
    (interrupted / runs.CHECKPOINT_FILE).write_text('{"format_version": 1, "weights": ')
    with pytest.raises(InputError, match="checkpoint.json is not valid JSON"):
        train(None, interrupted, resume=True, quiet=True)


def _edit_checkpoint(run: Path, edit: Any) -> None:
    path = run / runs.CHECKPOINT_FILE
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d["history"][0].update(train_loss=float("nan")),
        lambda d: d["history"][0].update(val_loss=None),
        lambda d: d["history"][1].update(epoch="x"),
        lambda d: d["history"][1].update(epoch=7),
        lambda d: d.update(epoch_seconds=float("inf")),
        lambda d: d.update(loss_count=-1),
        lambda d: d.update(loss_count=10**400),  # OverflowError in the epoch's mean loss
        lambda d: d.update(best_val_loss="low"),
        # Finite alone, infinite summed: metrics.json could not be written at the end.
        lambda d: (d.update(epoch_seconds=1.7e308), d["history"][0].update(seconds=1.7e308)),
    ],
    ids=["nan loss", "null loss", "text epoch", "order", "inf", "negative", "huge", "text", "sum"],
)
def test_checkpoint_bad_numbers(interrupted: Path, edit: Any) -> None:
    # Each once ended in a traceback, some only after another epoch had been trained.
    _edit_checkpoint(interrupted, edit)
    before = (interrupted / "checkpoint-2.safetensors").read_bytes()
    refused = "malformed checkpoint .* finite numbers >= 0|(NaN|Infinity) is not a number JSON"
    with pytest.raises(InputError, match=refused):
        train(None, interrupted, resume=True, quiet=True)
    assert (interrupted / "checkpoint-2.safetensors").read_bytes() == before


def test_checkpoint_batch_past_the_epoch(interrupted: Path) -> None:
    _edit_checkpoint(interrupted, lambda d: d.update(batch=999))
    with pytest.raises(InputError, match="batch 999 of epoch 3 does not exist .* has \\d+ batches"):
        train(None, interrupted, resume=True, quiet=True)


@pytest.mark.parametrize(
    "edit", [lambda d: d.update(best_epoch=99), lambda d: d.update(best_epoch=0)], ids=["99", "0"]
)
def test_checkpoint_best_epoch_must_fit(interrupted: Path, edit: Any) -> None:
    _edit_checkpoint(interrupted, edit)
    with pytest.raises(
        InputError, match=r"best_epoch (99|0) with best_val_loss [\d.]+ does not fit"
    ):
        train(None, interrupted, resume=True, quiet=True)


def test_checkpoint_bad_rng_state(interrupted: Path) -> None:
    path = interrupted / runs.CHECKPOINT_FILE
    doc = json.loads(path.read_text())
    doc["rng"]["torch"] = [1, 2, 3]
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="random generator states are malformed"):
        train(None, interrupted, resume=True, quiet=True)


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: (d.update(batch=1), d["rng"].update(shuffle=None)),
        lambda d: d["rng"]["shuffle"]["state"].update(state=-1),
    ],
    ids=["mid-epoch without one", "negative"],
)
def test_checkpoint_bad_shuffle_state(interrupted: Path, edit: Any) -> None:
    # TypeError and OverflowError tracebacks once.
    _edit_checkpoint(interrupted, edit)
    with pytest.raises(InputError, match="shuffle generator state is malformed"):
        train(None, interrupted, resume=True, quiet=True)


def test_resume_of_a_finished_run_writes_damaged_final_files_again(
    tmp_path: Path, reference: Path, capsys
) -> None:
    # It said "trained" and left them as they were; odd metrics crashed the CLI's line.
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    runs.update_metrics(run, "forecast.window", {"points": 3})  # as `nsteplstm forecast` does
    model = run / runs.MODEL_FILE
    model.write_bytes(model.read_bytes()[:100])
    (run / runs.HISTORY_FILE).unlink()
    metrics = json.loads((run / runs.METRICS_FILE).read_text())
    runs.write_metrics(run, {**metrics, "train_loss": "x"})
    result = train(None, run, resume=True, quiet=True)
    assert not result.trained and result.rewritten
    assert_same_run(run, reference)  # rebuilt from the checkpoint, bit for bit
    assert result.metrics["train_loss"] == runs.read_metrics(reference)["train_loss"]
    # The same weights: the forecast made with them stays recorded (it was dropped).
    assert runs.read_metrics(run)["forecast"] == {"window": {"points": 3}}
    from nsteplstm.cli import main

    (run / runs.HISTORY_FILE).unlink()
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert "written again from its checkpoint" in capsys.readouterr().out
    assert runs.read_metrics(run)["forecast"] == {"window": {"points": 3}}


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: text[: len(text) // 2],  # cut short: not JSON
        lambda text: json.dumps({**json.loads(text), "forecast": 5, "train_loss": "x"}),
    ],
    ids=["truncated", "forecast-not-an-object"],
)
def test_resume_keeps_a_damaged_metrics_json_that_records_forecasts(
    tmp_path: Path, reference: Path, damage: Callable[[str], str]
) -> None:
    # It wrote metrics.json again without the forecasts it recorded: their files stayed,
    # unrecorded, and a later --force left them beside the new run's weights.
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    files = {run / "forecast-shop9.csv": "t,truth,prediction\n", run / "forecast-shop9.png": b""}
    runs.update_metrics(run, "forecast.shop9", {"points": 3}, files)  # as `forecast` does
    metrics = run / runs.METRICS_FILE
    metrics.write_text(damage(metrics.read_text()))
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    message = (
        rf"^{metrics}: .*; it records which of the forecasts here \('shop9': "
        r"forecast-NAME.csv and .png\) are the run's: writing it again from the checkpoint "
        "would drop those records; repair it, or delete it to resume without them$"
    )
    with pytest.raises(InputError, match=message):
        train(None, run, resume=True, progress=Unexpected())
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    metrics.unlink()  # the user's choice, as the message offers
    result = train(None, run, resume=True, progress=Unexpected())
    assert result.rewritten and "forecast" not in runs.read_metrics(run)
    assert_same_run(run, reference)


def test_resume_of_a_finished_run_clears_what_a_killed_forecast_left(
    tmp_path: Path, reference: Path
) -> None:
    # A forecast killed while writing left its temporary files; --resume, which clears
    # them in an unfinished run, left them in a finished one.
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    left = [".forecast-window.csv.wi6qctpn.tmp", ".metrics.json.abcd1234.tmp"]
    for name in left:
        (run / name).write_text(name)
    assert not train(None, run, resume=True, progress=Unexpected()).trained
    assert not any((run / n).exists() for n in left)


def test_missing_checkpoint_weights(interrupted: Path) -> None:
    (interrupted / "checkpoint-2.safetensors").unlink()
    with pytest.raises(InputError, match="checkpoint-2.safetensors: file not found"):
        train(None, interrupted, resume=True, quiet=True)


@pytest.mark.parametrize("file,version", [(runs.CHECKPOINT_FILE, 99), (runs.CONFIG_FILE, 2)])
def test_newer_format_is_refused(interrupted: Path, file: str, version: int) -> None:
    path = interrupted / file
    doc = json.loads(path.read_text())
    doc["format_version"] = version
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=f"format_version {version} was written by a newer"):
        train(None, interrupted, resume=True, quiet=True)


def test_resume_needs_a_run(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        train(None, tmp_path / "nope", resume=True, quiet=True)
    (tmp_path / "empty").mkdir()
    no_run = "config.json: file not found; .*empty holds no run: name a run directory$"
    with pytest.raises(InputError, match=no_run):
        train(None, tmp_path / "empty", resume=True, quiet=True)
    with pytest.raises(InputError, match=no_run):
        train({"epochs": 3}, tmp_path / "empty", resume=True, quiet=True)


def test_resume_without_config_json_says_what_to_do(interrupted: Path, capsys) -> None:
    # It said only "RUN/config.json: file not found", though the run's other files
    # (weights, history, checkpoint) were there.
    from nsteplstm.cli import main

    (interrupted / runs.CONFIG_FILE).unlink()
    files = {p.name: p.read_bytes() for p in interrupted.iterdir()}
    assert main(["train", "--resume", str(interrupted)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"nsteplstm train: error: {interrupted / runs.CONFIG_FILE}: file not found; "
        f"{interrupted} holds the run's other files ("
    )
    advice = "but not its config.json, which says how to read them: restore it, or train anew "
    assert err.endswith(f"{advice}with nsteplstm train --out {interrupted} --force\n")
    assert {p.name: p.read_bytes() for p in interrupted.iterdir()} == files
    # The advice works: --force trains anew in the directory.
    train(Config.from_dict({**SETTINGS, "epochs": 1}, "test"), interrupted, force=True, quiet=True)
    assert runs.read_config(interrupted)[0].epochs == 1


def test_resume_and_force_together_are_refused(interrupted: Path, capsys) -> None:
    # train() ignored force and resumed; only the command line refused the pair.
    from nsteplstm.cli import main

    files = {p.name: p.read_bytes() for p in interrupted.iterdir()}
    with pytest.raises(InputError, match=r"replaces a run, resume \(--resume\) keeps it"):
        train(None, interrupted, resume=True, force=True, quiet=True)
    assert main(["train", "--resume", str(interrupted), "--force"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "force (--force) replaces a run" in err
    assert {p.name: p.read_bytes() for p in interrupted.iterdir()} == files


def test_resume_refuses_other_settings(interrupted: Path) -> None:
    other = Config.from_dict({**SETTINGS, "n_hidden": 9}, "test")
    with pytest.raises(InputError, match="n_hidden"):
        train(other, interrupted, resume=True, quiet=True)
    # Only the settings named are compared, against the run's own (not the defaults).
    with pytest.raises(InputError, match=r"these differ: n_hidden \(run: 8, given: 9\)$"):
        train({"n_hidden": 9}, interrupted, resume=True, quiet=True)


def test_cli_resume_names_where_a_bad_setting_came_from(
    interrupted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nsteplstm.cli import main

    toml = tmp_path / "run.toml"
    toml.write_text('n_layers = "two"\n')
    before = sorted((p.name, p.read_bytes()) for p in interrupted.iterdir())

    def error(*args: str) -> str:
        assert main(["train", "--resume", str(interrupted), *args]) == 2
        return capsys.readouterr().err.strip()

    # The TOML's value was labelled 'command line', the flags' label.
    assert error("--config", str(toml)).endswith(
        f"config {toml}: n_layers = 'two' is a string, expected an integer"
    )
    toml.write_text("n_layers = 2\ndropout = 1.5\n")
    assert f"config {toml}: dropout = 1.5 is out of range" in error("--config", str(toml))
    toml.write_text("n_layers = 2\n")  # the run's own value: accepted
    assert "command line: --dropout 1.5" in error("--config", str(toml), "--dropout", "1.5")
    assert "these differ: n_layers (run: 2, given: 3)" in error("--n-layers", "3")
    assert sorted((p.name, p.read_bytes()) for p in interrupted.iterdir()) == before


def test_resume_refuses_a_changed_csv(tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    text = "v\n" + "\n".join(str(t % 7) for t in range(120)) + "\n"
    data.write_text(text)
    settings = {"data": f"csv:{data}", "sequence_size": 10, "n_hidden": 4, "epochs": 2}
    run = tmp_path / "run"
    interrupt(Config.from_dict(settings, "test"), run, lambda e, b, n: (e, b) == (1, n))
    doc = json.loads((run / runs.CONFIG_FILE).read_text())
    assert len(doc["data_sha256"]) == 64 and doc["data_header"] == {
        "columns": ["v"],
        "series_id": None,
    }
    trained = np.array([[t % 7] for t in range(108)], dtype="<f8")  # 0.9 of 120 rows
    digest = hashlib.sha256(trained.tobytes()).hexdigest()
    assert doc["training_rows"] == {"": {"rows": 108, "sha256": digest}}
    before = sorted((p.name, p.read_bytes()) for p in run.iterdir())

    data.write_text(text + "3\n")  # one new observation: another training split, scaler
    with pytest.raises(InputError, match=rf"^{data}: the file changed since the run in"):
        train(None, run, resume=True, quiet=True)
    assert sorted((p.name, p.read_bytes()) for p in run.iterdir()) == before
    data.write_text(text)
    assert train(None, run, resume=True, quiet=True).metrics["epochs"] == 2


def test_resume_reads_the_runs_csv_file_from_its_new_place(tmp_path: Path) -> None:
    # A run whose file had moved could not be resumed: "file not found", and a new
    # path was refused as a different setting.
    data = tmp_path / "d.csv"
    data.write_text("v\n" + "\n".join(str(t % 7) for t in range(120)) + "\n")
    settings = {"data": f"csv:{data}", "sequence_size": 10, "n_hidden": 4, "epochs": 2}
    run, whole = tmp_path / "run", tmp_path / "whole"
    train(Config.from_dict(settings, "test"), whole, quiet=True)
    interrupt(Config.from_dict(settings, "test"), run, lambda e, b, n: (e, b) == (1, n))
    before = sorted((p.name, p.read_bytes()) for p in run.iterdir())
    moved = tmp_path / "elsewhere" / "d.csv"
    moved.parent.mkdir()
    data.rename(moved)

    with pytest.raises(InputError, match=rf"^{data}: file not found \(the run's data.*--data csv"):
        train(None, run, resume=True, quiet=True)
    other = tmp_path / "other.csv"
    other.write_text("v\n" + "\n".join(str(t % 5) for t in range(120)) + "\n")
    with pytest.raises(InputError, match=rf"^{other}: not the file the run in .* was trained on"):
        train({"data": f"csv:{other}"}, run, resume=True, quiet=True)
    with pytest.raises(InputError, match=r"these differ: data \(run: 'csv:"):
        train({"data": "sine"}, run, resume=True, quiet=True)  # not a CSV file
    assert sorted((p.name, p.read_bytes()) for p in run.iterdir()) == before

    result = train({"data": f"csv:{moved}"}, run, resume=True, quiet=True)
    assert result.metrics["epochs"] == 2
    assert runs.read_config(run)[0].data == f"csv:{moved}"  # forecast finds it there too
    model = runs.MODEL_FILE
    assert (run / model).read_bytes() == (whole / model).read_bytes()


def test_a_moved_csv_needs_the_runs_digest_to_resume(tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    data.write_text("v\n" + "\n".join(str(t % 7) for t in range(120)) + "\n")
    settings = {"data": f"csv:{data}", "sequence_size": 10, "n_hidden": 4, "epochs": 2}
    run = tmp_path / "run"
    interrupt(Config.from_dict(settings, "test"), run, lambda e, b, n: (e, b) == (1, n))
    doc = json.loads((run / runs.CONFIG_FILE).read_text())
    doc["data_sha256"] = None  # a run from before nsteplstm recorded it
    (run / runs.CONFIG_FILE).write_text(json.dumps(doc))
    moved = tmp_path / "moved.csv"
    data.rename(moved)
    with pytest.raises(
        InputError, match=rf"records no SHA-256 of its data.*put it back at {data}$"
    ):
        train({"data": f"csv:{moved}"}, run, resume=True, quiet=True)


def test_a_resume_that_fails_after_naming_a_moved_csv_keeps_config_json(tmp_path: Path) -> None:
    # The new place was written into config.json before the checks that follow it.
    data = tmp_path / "d.csv"
    data.write_text("v\n" + "\n".join(str(t % 7) for t in range(120)) + "\n")
    settings = {"data": f"csv:{data}", "sequence_size": 10, "n_hidden": 4, "epochs": 2}
    run = tmp_path / "run"
    train(Config.from_dict(settings, "test"), run, quiet=True)
    (run / runs.CHECKPOINT_FILE).unlink()  # final weights, no checkpoint: refused
    before = sorted((p.name, p.read_bytes()) for p in run.iterdir())
    moved = tmp_path / "moved.csv"
    data.rename(moved)
    with pytest.raises(InputError, match=r"no checkpoint.json to resume from"):
        train({"data": f"csv:{moved}"}, run, resume=True, quiet=True)
    assert sorted((p.name, p.read_bytes()) for p in run.iterdir()) == before


def test_an_older_run_with_a_relative_csv_path_resumes_with_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Runs stored the path as typed, and no SHA-256: a resume naming any setting took
    # the same file for a moved one and refused it.
    monkeypatch.chdir(tmp_path)
    Path("d.csv").write_text("v\n" + "\n".join(str(t % 7) for t in range(120)) + "\n")
    settings = {"data": "csv:d.csv", "sequence_size": 10, "n_hidden": 4, "epochs": 2}
    run = tmp_path / "run"
    interrupt(Config.from_dict(settings, "test"), run, lambda e, b, n: (e, b) == (1, n))
    doc = json.loads((run / runs.CONFIG_FILE).read_text())
    doc["config"]["data"], doc["data_sha256"] = "csv:d.csv", None
    (run / runs.CONFIG_FILE).write_text(json.dumps(doc))
    assert train({"device": "cpu"}, run, resume=True, quiet=True).metrics["epochs"] == 2
    assert train(None, run, resume=True, quiet=True).trained is False
    assert runs.read_config(run)[0].data == "csv:d.csv"  # not moved: left as it was

    Path("d.csv").rename("gone.csv")  # without a SHA-256 no other place can be checked
    message = r"d.csv: file not found \(the run's data.*\); put it back there: the run records no"
    with pytest.raises(InputError, match=message):
        train(None, run, resume=True, quiet=True)


def test_resume_with_named_settings_continues_the_run(tmp_path: Path, reference: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    # The run's settings are not the defaults; naming only the device must be accepted.
    result = train({"device": "cpu", "epochs": 6}, run, resume=True, quiet=True)
    assert result.metrics["epochs"] == 6
    assert_same_run(run, reference)


def test_resume_never_overwrites_final_weights_without_a_checkpoint(
    tmp_path: Path, reference: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    (run / runs.CHECKPOINT_FILE).unlink()  # as in an imported run
    weights = (run / runs.MODEL_FILE).read_bytes()
    with pytest.raises(InputError, match="no checkpoint.json to resume from.* --force"):
        train(None, run, resume=True, quiet=True)
    assert (run / runs.MODEL_FILE).read_bytes() == weights


def test_force_keeps_the_old_run_until_the_new_one_can_start(
    tmp_path: Path, reference: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    before = sorted(p.name for p in run.iterdir())
    settings = {k: v for k, v in SETTINGS.items() if k != "total_size"}  # not for a CSV
    bad = Config.from_dict({**settings, "data": f"csv:{tmp_path / 'missing.csv'}"}, "test")
    with pytest.raises(InputError, match="missing.csv: file not found"):
        train(bad, run, force=True, quiet=True)
    assert sorted(p.name for p in run.iterdir()) == before
    with pytest.raises(InputError, match="file not found"):
        train(bad, tmp_path / "new" / "run", quiet=True)
    assert not (tmp_path / "new").exists()  # nothing created for a run that cannot start


@pytest.mark.parametrize("at_end", [False, True])
def test_ctrl_c_before_a_forced_runs_first_checkpoint_keeps_the_old_run(
    tmp_path: Path, reference: Path, at_end: bool
) -> None:
    # It once wrote the interrupt's checkpoint, and so replaced the old run the user
    # was cancelling the replacement of.
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    config = Config.from_dict({**SETTINGS, "seed": 5, "checkpoint_every": 3}, "test")

    class Stop:
        def batch(self, epoch: int, epochs: int, batch: int, n_batches: int, loss: float) -> None:
            if (epoch, batch) == (1, n_batches if at_end else 1):
                os.kill(os.getpid(), signal.SIGINT)

        def epoch(self, *args: Any) -> None:
            pass

        def close(self) -> None:
            pass

    with pytest.raises(Interrupted, match=f"first checkpoint; {run} keeps the old run$"):
        train(config, run, force=True, progress=Stop())
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    # A new directory has no old run to keep: the interrupt checkpoints as before.
    ckpt = interrupt(config, tmp_path / "new", lambda e, b, n: (e, b) == (1, 1))
    assert ckpt is not None and (ckpt.state["epoch"], ckpt.state["batch"]) == (0, 1)


def cli(*args: str, **kw: str) -> subprocess.Popen:
    """``nsteplstm`` itself (its ``main``, after :data:`SLOW_CHECKPOINT`) in a subprocess."""
    command = SLOW_CHECKPOINT + "from nsteplstm.cli import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.Popen(
        [sys.executable, "-c", command, *args],
        env=env(**kw),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def cli_flags() -> list[str]:
    return [f"--{k.replace('_', '-')}={v}" for k, v in SETTINGS.items()] + ["--quiet"]


@pytest.mark.slow
def test_cli_sigkill_then_resume_equals_uninterrupted_run(tmp_path: Path, reference: Path) -> None:
    run = tmp_path / "run"
    proc = cli("train", "--out", str(run), *cli_flags(), SLOW_CHECKPOINT="0.3")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        state = run / runs.CHECKPOINT_FILE
        if state.exists() and json.loads(state.read_text()).get("epoch", 0) >= 2:
            break
        time.sleep(0.02)
    proc.kill()  # SIGKILL, somewhere in epoch 3 or in the middle of a checkpoint write
    proc.communicate(timeout=30)
    assert not (run / runs.MODEL_FILE).exists()
    resumed = cli("train", "--resume", str(run))
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert_same_run(run, reference)


@pytest.mark.slow
def test_cli_sigint_writes_checkpoint_prints_resume_command_exits_130(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = cli("train", "--out", str(run), *cli_flags(), SLOW_CHECKPOINT="0.3")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (run / runs.CHECKPOINT_FILE).exists():
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert f"nsteplstm train --resume {run}" in err
    assert "Traceback" not in err
    assert runs.load_checkpoint(run) is not None


def test_a_run_failing_before_its_first_checkpoint_leaves_the_old_run(
    tmp_path: Path, reference: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nsteplstm.train as training

    def out_of_memory(*args: Any, **kwargs: Any) -> int:
        raise MemoryError("no memory for the first batch")

    run = tmp_path / "run"
    shutil.copytree(reference, run)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    monkeypatch.setattr(training, "_run_batches", out_of_memory)
    with pytest.raises(MemoryError):  # the CLI turns it into one line, exit 2
        train(Config.from_dict(SETTINGS, "test"), run, force=True, quiet=True)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # --force waited
    with pytest.raises(MemoryError):
        train(Config.from_dict(SETTINGS, "test"), tmp_path / "new", quiet=True)
    assert not (tmp_path / "new").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_run_interrupted_mid_epoch_resumes_bit_for_bit(tmp_path: Path) -> None:
    """On CUDA too: weights, Adam, and the CUDA generator (dropout) survive a checkpoint."""
    settings = Config.from_dict({**SETTINGS, "device": "cuda"}, "test")
    train(settings, tmp_path / "reference", quiet=True)
    run = tmp_path / "run"
    ckpt = interrupt(settings, run, lambda e, b, n: (e, b) == (3, 2))
    assert ckpt is not None and (ckpt.state["epoch"], ckpt.state["batch"]) == (2, 2)
    train(None, run, resume=True, quiet=True)
    assert_same_run(run, tmp_path / "reference")


def test_a_run_another_process_trains_is_refused_whole(interrupted: Path) -> None:
    # Two resumes of one run ran side by side, each deleting the other's checkpoint
    # weights: a crash between left "checkpoint-2.safetensors: file not found".
    pytest.importorskip("fcntl")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDONLY)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "time.sleep(60)\n",
            str(interrupted),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        before = sorted((p.name, p.read_bytes()) for p in interrupted.iterdir())
        refused = f"^{interrupted}: another process is training or forecasting this run; "
        with pytest.raises(InputError, match=refused):
            train(None, interrupted, resume=True, quiet=True)
        with pytest.raises(InputError, match=refused):  # nor replaced under it
            train(Config.from_dict(SETTINGS, "test"), interrupted, force=True, quiet=True)
        assert sorted((p.name, p.read_bytes()) for p in interrupted.iterdir()) == before
    finally:
        holder.kill()
        holder.wait()
    assert train(None, interrupted, resume=True, quiet=True).metrics["epochs"] == 6


def _files(run: Path) -> list[tuple[str, bytes]]:
    return sorted((p.name, p.read_bytes()) for p in run.iterdir())


def test_resuming_a_csv_run_with_other_data_says_the_data_differs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The run's csv_columns were blamed instead: "config RUN/config.json: csv_columns =
    # ['units'] applies only to data = 'csv:PATH', not data = 'fibonacci': remove it from
    # RUN/config.json", which damages the run if followed.
    from nsteplstm.cli import main

    data = tmp_path / "d.csv"
    data.write_text("units,other\n" + "".join(f"{t % 7},{t % 3}\n" for t in range(60)))
    settings = {"data": f"csv:{data}", "csv_columns": ["units"], "sequence_size": 5}
    run = tmp_path / "run"
    train({**settings, "n_hidden": 4, "epochs": 1, "batch_size": 50}, run, quiet=True)
    before = _files(run)
    toml = tmp_path / "sine.toml"
    toml.write_text('data = "sine"\n')

    def error(*args: str) -> str:
        assert main(["train", "--resume", str(run), *args]) == 2
        return capsys.readouterr().err

    differs = f"{run}: --resume continues the run with its own settings; these differ: "
    for other in ("fibonacci", "sine", "adding"):
        shown = f"data (run: 'csv:{data}', given: '{other}')"
        with pytest.raises(InputError, match=f"^{re.escape(differs + shown)}$"):
            train({"data": other}, run, resume=True, quiet=True)
        assert error("--data", other) == f"nsteplstm train: error: {differs}{shown}\n"
    assert error("--config", str(toml)).endswith("given: 'sine')\n")
    assert error("--csv-columns", "other").endswith(
        "these differ: csv_columns (run: ['units'], given: ['other'])\n"
    )
    assert _files(run) == before

    moved = tmp_path / "elsewhere.csv"  # the run's own file in a new place: resumed
    data.rename(moved)
    assert main(["train", "--resume", str(run), "--data", f"csv:{moved}", "--quiet"]) == 0
    assert runs.read_config(run)[0].data == f"csv:{moved}"


def test_a_resumed_setting_that_does_not_go_with_the_runs_others_is_said_to_differ(
    interrupted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The run's config.json was blamed for what the setting given changed: its split
    # for --sequence-size 200, its n_in for --data adding.
    from nsteplstm.cli import main

    before = _files(interrupted)

    def error(*args: str) -> str:
        assert main(["train", "--resume", str(interrupted), *args]) == 2
        return capsys.readouterr().err.strip()

    assert error("--sequence-size", "200").endswith(
        "these differ: sequence_size (run: 10, given: 200)"
    )
    assert error("--data", "adding").endswith(
        "these differ: data (run: 'fibonacci', given: 'adding')"
    )
    assert error("--min-length", "400").endswith("these differ: min_length (run: 4, given: 400)")
    with pytest.raises(InputError, match=r"these differ: sequence_size \(run: 10, given: 200\)$"):
        train({"sequence_size": 200}, interrupted, resume=True, quiet=True)
    # A value wrong alone is still named so, where it came from.
    assert error("--sequence-size", "0").endswith(
        "command line: --sequence-size 0 is out of range (allowed: >= 1)"
    )
    with pytest.raises(InputError, match=r"^config settings: sequence_size = 0 is out of range"):
        train({"sequence_size": 0}, interrupted, resume=True, quiet=True)
    with pytest.raises(InputError, match=r"^config settings: sequence_size = 'x' is a string"):
        train({"sequence_size": "x"}, interrupted, resume=True, quiet=True)
    assert _files(interrupted) == before


def test_resume_refuses_a_config_that_is_no_config_nor_mapping(interrupted: Path) -> None:
    # An AttributeError traceback ('list' object has no attribute 'to_dict').
    with pytest.raises(
        InputError, match=r"^train: config must be a Config or a mapping, got \[1\]$"
    ):
        train([1], interrupted, resume=True, quiet=True)


def test_a_csv_setting_to_resume_generated_data_is_refused_as_train_refuses_it(
    interrupted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # It said "these differ: csv_columns (run: None, given: ['a'])", where train without
    # --resume says the setting applies only to CSV data.
    from nsteplstm.cli import main
    from nsteplstm.config import COMMAND_LINE
    from nsteplstm.train import check_resume_settings

    before = _files(interrupted)

    def error(*args: str) -> str:
        assert main(["train", "--resume", str(interrupted), *args]) == 2
        return capsys.readouterr().err.strip()

    fibonacci = "not data = 'fibonacci'"
    assert error("--csv-columns", "a").endswith(
        f"command line: --csv-columns 'a' applies only to data = 'csv:PATH', {fibonacci}: "
        "drop --csv-columns"
    )
    assert error("--csv-header", "true").endswith(
        f"command line: --csv-header true applies only to data = 'csv:PATH', {fibonacci}: "
        "drop --csv-header"
    )
    assert error("--data", "sine", "--csv-series-id", "0").endswith(
        "command line: --csv-series-id 0 applies only to --data 'csv:PATH', not --data 'sine': "
        "drop --csv-series-id"
    )
    toml = tmp_path / "run.toml"
    toml.write_text('csv_columns = ["a"]\n')
    assert error("--config", str(toml)).endswith(
        f"config {toml}: csv_columns = ['a'] applies only to data = 'csv:PATH', {fibonacci}: "
        f"remove it from {toml}"
    )
    with pytest.raises(InputError, match=r"^config settings: csv_columns = \['a'\] applies only"):
        train({"csv_columns": ["a"]}, interrupted, resume=True, quiet=True)
    assert _files(interrupted) == before
    # Set back to its default (--csv-columns all), it is the run's own None: accepted.
    saved = runs.read_config(interrupted)[0]
    resets = {"csv_columns": None, "csv_header": None, "csv_series_id": None}
    check_resume_settings(saved, [(COMMAND_LINE, resets)], interrupted)
