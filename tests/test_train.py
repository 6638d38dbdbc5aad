"""Tests of nsteplstm.train: determinism, learning, variable lengths, the adding problem."""

from __future__ import annotations

import dataclasses
import io
import json
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import nsteplstm.device
from nsteplstm import runs
from nsteplstm.cli import build_parser
from nsteplstm.config import Config
from nsteplstm.data import load_adding, load_dataset
from nsteplstm.errors import InputError
from nsteplstm.model import Forecaster
from nsteplstm.train import (
    ProgressBar,
    clip_grad_norm,
    evaluate,
    load_data,
    make_optimizer,
    prepare_data,
    resume_command,
    train,
    train_epoch,
    training_memory,
)

TINY = {"n_hidden": 8, "total_size": 300, "sequence_size": 10, "epochs": 3, "device": "cpu"}


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models: one thread is fastest and immune to a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(**changes: Any) -> Config:
    settings = {**TINY, **changes}
    if settings.get("data") == "adding":  # a series' length is no setting of the adding problem
        del settings["total_size"]
    return Config.from_dict(settings, "test")


def without_seconds(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def test_settings_may_come_as_a_mapping(tmp_path: Path) -> None:
    """A dict was refused ("a Config is needed unless resuming") against train's hint."""
    a = train(dict(TINY, epochs=1), tmp_path / "a", quiet=True)
    b = train(tiny(epochs=1), tmp_path / "b", quiet=True)
    assert without_seconds(a.history) == without_seconds(b.history)
    with pytest.raises(InputError, match="config must be a Config or a mapping, got 3"):
        train(3, tmp_path / "c")  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"config settings: epochs = 0 is out of range"):
        train({"epochs": 0}, tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_same_seed_same_history_bit_for_bit(tmp_path: Path) -> None:
    config = tiny(n_layers=2, min_length=4)  # dropout and random lengths in play
    a = train(config, tmp_path / "a", quiet=True)
    b = train(config, tmp_path / "b", quiet=True)
    assert without_seconds(a.history) == without_seconds(b.history)
    wa, wb = runs.load_model(a.path).state_dict(), runs.load_model(b.path).state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    c = train(dataclasses.replace(config, seed=1), tmp_path / "c", quiet=True)
    assert without_seconds(c.history) != without_seconds(a.history)


def test_run_directory_files(tmp_path: Path) -> None:
    result = train(tiny(), tmp_path / "run", quiet=True)
    assert result.trained
    names = {p.name for p in result.path.iterdir()}
    assert {"config.json", "model.safetensors", "history.csv", "metrics.json"} <= names
    assert "checkpoint.json" in names
    assert runs.read_history(result.path) == result.history
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    metrics = runs.read_metrics(result.path)
    assert metrics == result.metrics
    assert metrics["epochs"] == 3 and metrics["peak_rss_mib"] > 0
    assert "cuda_peak_mib" not in metrics  # a CPU run has no device memory to report
    best = min(result.history, key=lambda row: row["val_loss"])
    assert metrics["best_epoch"] == best["epoch"] and metrics["val_loss"] == best["val_loss"]
    # The saved weights are the best epoch's: evaluating them gives its validation loss.
    run = runs.load_run(result.path)
    data = load_dataset(run.config)
    assert evaluate(run.model, data, run.config) == pytest.approx(best["val_loss"], rel=1e-6)


def test_the_reported_losses_are_the_kept_epochs(tmp_path: Path) -> None:
    # Once train_loss came from the last epoch beside the best epoch's val_loss.
    result = train(tiny(epochs=4, lr=0.3, grad_clip=0.0), tmp_path / "run", quiet=True)
    metrics, history = result.metrics, result.history
    kept = min(history, key=lambda row: row["val_loss"])
    assert kept is not history[-1]  # the premise: this run overshoots at its last epoch
    assert metrics["best_epoch"] == kept["epoch"]
    assert (metrics["train_loss"], metrics["val_loss"]) == (kept["train_loss"], kept["val_loss"])
    assert metrics["last_train_loss"] == history[-1]["train_loss"] != kept["train_loss"]
    # The weights saved are that epoch's (where the best is the last, any would pass).
    run = runs.load_run(result.path)
    val_loss = evaluate(run.model, load_dataset(run.config), run.config)
    assert val_loss == pytest.approx(kept["val_loss"], rel=1e-6)
    assert val_loss != pytest.approx(history[-1]["val_loss"], rel=1e-3)
    last = train(tiny(epochs=4, lr=0.3, grad_clip=0.0, keep_best=False), tmp_path / "b", quiet=True)
    assert last.metrics["train_loss"] == last.history[-1]["train_loss"]
    run = runs.load_run(last.path)
    val_loss = evaluate(run.model, load_dataset(run.config), run.config)
    assert val_loss == pytest.approx(last.history[-1]["val_loss"], rel=1e-6)


def test_loss_goes_down(tmp_path: Path) -> None:
    config = tiny(data="sine", n_hidden=16, lr=1e-2, epochs=6, dropout=0.0)
    history = train(config, tmp_path / "run", quiet=True).history
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
    assert history[-1]["val_loss"] < 0.5 * history[0]["val_loss"]


def test_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    train(tiny(epochs=1), tmp_path / "run", quiet=True)
    before = (tmp_path / "run" / "model.safetensors").read_bytes()
    with pytest.raises(InputError, match="--force"):
        train(tiny(epochs=1, seed=3), tmp_path / "run", quiet=True)
    assert (tmp_path / "run" / "model.safetensors").read_bytes() == before
    train(tiny(epochs=1, seed=3), tmp_path / "run", quiet=True, force=True)
    assert (tmp_path / "run" / "model.safetensors").read_bytes() != before


def test_signal_handlers_restored(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    train(tiny(epochs=1), tmp_path / "run", quiet=True)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_variable_length_batches_are_packed_without_padding() -> None:
    config = tiny(min_length=3)
    data = prepare_data(load_dataset(config), config)
    index = np.array([5, 0, 7, 2])
    lengths = np.zeros(data.train.size, dtype=np.int64)
    lengths[index] = [3, 10, 6, 6]
    x, y, layout = data.batch(data.train, index, lengths)
    assert layout.lengths == [10, 6, 6, 3]  # sorted by decreasing length, stable
    ds = load_dataset(config)
    order = [0, 7, 2, 5]
    xs = [torch.from_numpy(ds.train_x[i, : lengths[i]]) for i in order]
    ys = [torch.from_numpy(ds.train_y[i, : lengths[i]]) for i in order]
    assert x.shape == (25, 1)
    assert torch.equal(x, layout.pack(xs)) and torch.equal(y, layout.pack(ys))

    lengths[index] = 4  # one length, shorter than the windows: a dense batch of 4 steps
    x, y, layout = data.batch(data.train, index, lengths)
    assert layout.is_dense and layout.lengths == [4] * 4
    xs = [torch.from_numpy(ds.train_x[i, :4]) for i in index]
    ys = [torch.from_numpy(ds.train_y[i, :4]) for i in index]
    assert torch.equal(x, layout.pack(xs)) and torch.equal(y, layout.pack(ys))


def test_variable_length_training(tmp_path: Path) -> None:
    config = tiny(min_length=2, epochs=2)
    result = train(config, tmp_path / "run", quiet=True)
    assert all(np.isfinite(row["train_loss"]) for row in result.history)
    # The windows it trains on are cut to lengths drawn from [min_length, S]...
    from nsteplstm.train import _plan, prepare_data

    data = prepare_data(load_dataset(config), config, torch.device("cpu"))
    plan = _plan(data, config, np.random.default_rng(0))
    assert plan.lengths is not None and len(plan.lengths) == data.train.size
    assert plan.lengths.min() == 2 and plan.lengths.max() == config.sequence_size
    # ... so the run differs from one on whole windows (the same seed otherwise).
    whole = train(tiny(epochs=2), tmp_path / "whole", quiet=True)
    assert result.history[0]["train_loss"] != whole.history[0]["train_loss"]


def test_adding_loss_is_on_the_last_step_only() -> None:
    config = tiny(data="adding", adding_samples=60, sequence_size=8, min_length=3)
    dataset = load_adding(config)
    torch.manual_seed(0)
    model = Forecaster(1, 2, 8, 1, 0.0)
    expected = 0.0
    with torch.no_grad():
        ys = model([torch.from_numpy(x) for x in dataset.val_x])
        for out, target in zip(ys, dataset.val_y, strict=True):
            expected += (float(out[-1, 0]) - float(target)) ** 2
    expected /= len(dataset.val_y)
    assert evaluate(model, dataset, config) == pytest.approx(expected, rel=1e-5)

    data = prepare_data(dataset, config)
    index = np.arange(6)
    x, y, layout = data.batch(data.train, index, data.train.lengths)
    assert y.shape == (6, 1)
    rows = data.last_rows(layout)
    expected_rows = [
        layout.seq_to_packed[sum(layout.lengths[:i]) + layout.lengths[i] - 1].item()
        for i in range(6)
    ]
    assert rows.tolist() == expected_rows

    lengths = data.train.lengths
    short = int(lengths.min())
    assert short < 8
    same = np.flatnonzero(lengths == short)[:3]  # one length: a dense batch of `short` steps
    x, y, layout = data.batch(data.train, same, lengths)
    assert layout.is_dense and layout.lengths == [short] * len(same)
    last = x.index_select(0, data.last_rows(layout))  # (B, 2): each sequence's last input
    expected_last = torch.stack([torch.from_numpy(dataset.train_x[i][-1]) for i in same])
    assert torch.equal(last, expected_last)
    assert torch.equal(y[:, 0], torch.tensor([float(dataset.train_y[i]) for i in same]))


def test_adding_training_reports_baseline(tmp_path: Path) -> None:
    settings = {"adding_samples": 200, "sequence_size": 8, "min_length": 4, "epochs": 2}
    config = dataclasses.replace(tiny(data="adding", **settings), total_size=Config.total_size)
    result = train(config, tmp_path / "run", quiet=True)
    assert result.metrics["baseline_mse"] == pytest.approx(1 / 6, abs=0.06)
    assert result.metrics["test_mse"] == result.metrics["val_loss"]


def test_building_blocks() -> None:
    config = tiny(lr=0.005)
    dataset = load_dataset(config)
    torch.manual_seed(0)
    model = Forecaster(1, 1, 8, 1, 0.3)
    optimizer = make_optimizer(model, config)
    assert optimizer.param_groups[0]["lr"] == 0.005
    data = prepare_data(dataset, config)
    first = train_epoch(model, optimizer, data, config, np.random.default_rng(0))
    second = train_epoch(model, optimizer, dataset, config, np.random.default_rng(1))
    assert np.isfinite(first) and second < first
    assert model.training
    assert evaluate(model, data, config) == evaluate(model, dataset, config)
    assert model.training  # evaluate restores the mode


def test_building_blocks_refuse_a_model_of_other_outputs() -> None:
    config = tiny()
    dataset = load_dataset(config)  # one target feature
    model = Forecaster(1, 1, 8, 3, 0.0)  # (N, 3) against (N, 1) broadcast: 3x the MSE
    optimizer = make_optimizer(model, config)
    with pytest.raises(InputError, match="the model has n_out = 3, the data's targets 1 features"):
        evaluate(model, dataset, config)
    with pytest.raises(InputError, match="n_out = 3"):
        train_epoch(
            model, optimizer, prepare_data(dataset, config), config, np.random.default_rng()
        )


def test_optimizer_is_fused_adam_where_torch_has_one(monkeypatch) -> None:
    model = Forecaster(1, 1, 8, 1, 0.3)
    assert make_optimizer(model, tiny()).defaults["fused"] is True  # CPU: torch >= 2.4
    adam = torch.optim.Adam

    def no_fused(params, **kwargs):  # as torch < 2.4 answers on the CPU
        if kwargs.get("fused"):
            raise RuntimeError("`fused=True` requires all the params to be ... CUDA")
        return adam(params, **kwargs)

    monkeypatch.setattr(torch.optim, "Adam", no_fused)
    optimizer = make_optimizer(model, tiny(lr=0.02))
    assert not optimizer.defaults["fused"] and optimizer.param_groups[0]["lr"] == 0.02
    assert len(optimizer.param_groups[0]["params"]) == len(list(model.parameters()))


def test_grad_clip_changes_the_run(tmp_path: Path) -> None:
    config = tiny(lr=0.05, epochs=1)
    clipped = train(dataclasses.replace(config, grad_clip=0.01), tmp_path / "a", quiet=True)
    free = train(dataclasses.replace(config, grad_clip=0.0), tmp_path / "b", quiet=True)
    assert clipped.history[0]["train_loss"] != free.history[0]["train_loss"]
    # The value given is the one used: twice the bound, another run.
    wider = train(dataclasses.replace(config, grad_clip=0.02), tmp_path / "c", quiet=True)
    assert wider.history[0]["train_loss"] not in (
        clipped.history[0]["train_loss"],
        free.history[0]["train_loss"],
    )


@pytest.mark.parametrize("max_norm", [1e-3, 1.0, 1e6])
@pytest.mark.parametrize("scale", [1.0, float("inf"), float("nan")])
def test_clip_grad_norm_matches_torch_bit_for_bit(max_norm: float, scale: float) -> None:
    torch.manual_seed(0)
    ours, theirs = Forecaster(3, 1, 16, 1, 0.3), Forecaster(3, 1, 16, 1, 0.3)
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        a.grad = torch.randn_like(a)
        a.grad[0] *= scale  # inf / nan: a non-finite norm
        b.grad = a.grad.clone()
    before = torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in ours.parameters()]))
    clip_grad_norm(list(ours.parameters()), max_norm)
    torch.nn.utils.clip_grad_norm_(list(theirs.parameters()), max_norm)
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=0, equal_nan=True)
    after = torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in ours.parameters()]))
    if scale == 1.0:
        assert float(after) == pytest.approx(min(float(before), max_norm), rel=1e-5)


def test_progress_bar_output() -> None:
    stream = io.StringIO()
    bar = ProgressBar(stream, width=4, interval=0.0)
    bar.batch(1, 2, 1, 2, 0.5)
    bar.epoch(1, 2, 0.5, 0.25)
    text = stream.getvalue()
    assert "epoch 1/2 [##..] batch 1/2 loss 0.5" in text
    assert "train loss 0.5 val loss 0.25\x1b[K\n" in text


def test_a_directly_built_config_is_checked_before_anything_runs(tmp_path):
    from nsteplstm.config import Config
    from nsteplstm.errors import InputError
    from nsteplstm.train import train

    with pytest.raises(InputError, match=r"n_in = 3 is out of range \(allowed: 2 for data"):
        train(Config(data="adding", n_in=3), tmp_path / "run")
    with pytest.raises(InputError, match=r"epochs = 0 is out of range"):
        train(Config(epochs=0), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_directly_built_config_takes_n_in_and_n_out_from_its_data(tmp_path):
    # Config(data="adding") kept the default n_in = 1 and was refused for it, where the
    # same settings as a mapping (and the command line) train with n_in = 2.
    from nsteplstm import runs
    from nsteplstm.config import Config
    from nsteplstm.train import train

    small = {"epochs": 1, "n_hidden": 4, "sequence_size": 5, "device": "cpu"}
    train(Config(data="adding", adding_samples=60, **small), tmp_path / "a", quiet=True)
    adding = runs.load_run(tmp_path / "a").config
    assert (adding.n_in, adding.n_out) == (2, 1)
    csv = tmp_path / "two.csv"
    csv.write_text("a,b\n" + "".join(f"{t % 5},{t % 3}\n" for t in range(60)))
    config = Config(data=f"csv:{csv}", csv_columns=("a", "b"), **small)
    train(config, tmp_path / "c", quiet=True)
    run = runs.load_run(tmp_path / "c").config
    assert (run.n_in, run.n_out) == (2, 2)


def test_length_batches_partition_sorted_windows_into_one_length_batches() -> None:
    from nsteplstm.train import length_batches

    lengths = np.array([10] * 84 + [11] * 84 + [12] * 150 + [13] * 3 + [14] * 2 + [15] * 250)
    bounds = length_batches(lengths, 100)
    sizes = np.diff(bounds).tolist()
    assert bounds[0] == 0 and bounds[-1] == len(lengths)
    # 84 | 84 | 150 as two halves | 3 + 2 topped up from the 15s | the rest of the 15s in two
    assert sizes == [84, 84, 75, 75, 100, 77, 78]
    mixed = [len(set(lengths[a:b])) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    assert mixed == [1, 1, 1, 1, 3, 1, 1]

    rng = np.random.default_rng(0)
    for size in (1, 7, 50, 100):
        lengths = np.sort(rng.integers(1, 40, rng.integers(1, 900)))
        sizes = np.diff(length_batches(lengths, size))
        assert sizes.sum() == len(lengths) and sizes.min() >= 1 and sizes.max() <= size
        assert (sizes[:-1] >= size // 2).all()  # only the last batch may be small


def test_training_that_cannot_fit_is_refused_before_it_starts(tmp_path, monkeypatch) -> None:
    config = tiny(n_hidden=64, batch_size=50)
    needed = sum(training_memory(config, load_data(config)).values())
    # weights 4 * 4 * 64 * (1 + 64 + 2) + head: 6 copies; 1 * 10 * 50 * 6 * 64 float32
    assert needed >= 6 * 4 * (4 * 64 * 67 + 65) + 4 * 10 * 50 * 6 * 64
    monkeypatch.setattr(nsteplstm.device, "physical_memory", lambda: needed - 1)
    with pytest.raises(InputError, match=r"training needs at least 0\.0\d+ GiB .* more than this"):
        train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    monkeypatch.setattr(nsteplstm.device, "physical_memory", lambda: needed)
    train(dataclasses.replace(config, epochs=1), tmp_path / "run")


@pytest.mark.slow
def test_training_memory_is_a_lower_bound_of_the_real_peak(tmp_path: Path) -> None:
    """The pre-check must never refuse a run that fits: a real run's peak resident
    memory is at least the estimate (measured 1.8 to 2.5 times it)."""
    flags = {"n_hidden": 1500, "total_size": 400, "epochs": 1, "device": "cpu"}
    argv = [f"--{k.replace('_', '-')}={v}" for k, v in flags.items()]
    cmd = [sys.executable, "-m", "nsteplstm.cli", "train", "--quiet", "--out", str(tmp_path / "r")]
    subprocess.run(cmd + argv, check=True, capture_output=True)
    peak = json.loads((tmp_path / "r" / "metrics.json").read_text())["peak_rss_mib"] * 2**20
    config = Config.from_dict(flags, "test")
    estimate = sum(training_memory(config, load_data(config)).values())
    assert estimate > 200 * 2**20  # the model's share dominates the process's own ~300 MiB
    assert peak >= estimate


def test_evaluate_first_then_train_on_the_same_prepared_data() -> None:
    # evaluate() cached the adding problem's last-step rows under inference_mode, and
    # training then failed: "Inference tensors cannot be saved for backward".
    settings = {"data": "adding", "adding_samples": 40, "sequence_size": 6, "batch_size": 20}
    config = Config.from_dict({**settings, "split_rate": 0.5, "n_hidden": 8}, "t")
    model = Forecaster(1, 2, 8, 1, 0.0)
    data = prepare_data(load_data(config), config)
    before = evaluate(model, data, config)
    train_epoch(model, make_optimizer(model, config), data, config, np.random.default_rng(0))
    assert evaluate(model, data, config) != before


def test_a_float64_model_is_told_to_be_float32() -> None:
    config = tiny()
    with pytest.raises(InputError, match=r"float32 models .* got a torch.float64 model: call"):
        evaluate(Forecaster(1, 1, 8, 1, 0.0).double(), load_dataset(config), config)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_a_cuda_run_reports_its_own_peak_device_memory(tmp_path: Path) -> None:
    from nsteplstm.device import cuda_peak_memory_mib, reset_peak_memory

    device = torch.device("cuda")
    # cuBLAS keeps a workspace per thread (about 32 MiB each on Hopper) in torch's
    # allocator, and they count: a GiB of ballast stands far above them.
    ballast = torch.ones(2**30 // 4, device=device)  # 1 GiB
    del ballast
    assert cuda_peak_memory_mib(device) >= 1024
    reset_peak_memory()  # what the demo does between runs
    assert cuda_peak_memory_mib(device) < 512
    metrics = train(tiny(device="cuda"), tmp_path / "run", quiet=True).metrics
    assert 0 < metrics["cuda_peak_mib"] < 512  # a tiny model: its own peak, not the ballast's


def _torch_settings() -> tuple:
    cudnn = torch.backends.cudnn
    return (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.utils.deterministic.fill_uninitialized_memory,
        cudnn.deterministic,
        cudnn.benchmark,
        cudnn.allow_tf32,
    )


def test_train_restores_torch_settings_it_trains_under(tmp_path: Path) -> None:
    # train() left deterministic mode on for the rest of a library user's process.
    class Seen:
        settings: list[tuple] = []

        def batch(self, *args: Any) -> None:
            self.settings.append(_torch_settings())

        def epoch(self, *args: Any) -> None: ...

        def close(self) -> None: ...

    before = _torch_settings()
    mine = (False, False, True, False, True, True)  # none as seed_everything sets them
    cudnn = torch.backends.cudnn
    try:
        torch.use_deterministic_algorithms(False)
        torch.utils.deterministic.fill_uninitialized_memory = True
        cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32 = False, True, True
        seen = Seen()
        train(dict(TINY, epochs=1), tmp_path / "run", progress=seen)
        assert seen.settings and set(seen.settings) == {(True, True, False, True, False, False)}
        assert _torch_settings() == mine
        seen.batch = lambda *args: 1 / 0  # restored when training fails too
        with pytest.raises(ZeroDivisionError):
            train(dict(TINY, epochs=1), tmp_path / "run2", progress=seen)
        assert _torch_settings() == mine
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.utils.deterministic.fill_uninitialized_memory = before[2]
        cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32 = before[3:]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"value": 7, "data": "sine"}, r"value = 7 applies only to data = fibonacci, .*: remove"),
        ({"period": 3.0}, r"period = 3.0 applies only to data = sine, not data = 'fibonacci'"),
        (Config(scale="none"), r"scale = 'none' applies only to data = csv, .*: leave it at its"),
    ],
)
def test_train_refuses_a_setting_for_another_kind_of_data(tmp_path, settings, message) -> None:
    # The command line and TOML refused them, a Python call stored them as if they applied.
    with pytest.raises(InputError, match=rf"^config settings: {message}"):
        train(settings, tmp_path / "run", quiet=True)
    assert not (tmp_path / "run").exists()
    small = {"epochs": 1, "n_hidden": 4, "total_size": 300, "sequence_size": 5}
    for data in ("fibonacci", "sine"):  # every setting given, the others' at their defaults
        full = Config.from_dict({**small, "data": data}, "t").to_dict()
        assert train(full, tmp_path / data, quiet=True).metrics["epochs"] == 1
    with pytest.raises(InputError, match=r"^config settings: value = 7 applies only to "):
        train({"value": 7}, tmp_path / "sine", resume=True)  # not "command line: ... --value"


def test_the_resume_command_reads_a_path_starting_with_a_dash_as_a_path() -> None:
    command = shlex.split(resume_command("-my run"))
    assert command[:3] == ["nsteplstm", "train", "--resume"]
    assert build_parser().parse_args(command[1:]).resume == Path("./-my run")
