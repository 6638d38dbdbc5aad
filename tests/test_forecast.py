"""Closed-loop forecasting: both modes against plain step-by-step references, and metrics."""

from __future__ import annotations

import json
import re
import weakref
from pathlib import Path
from unittest.mock import ANY

import numpy as np
import pytest
import torch

import nsteplstm.device
from nsteplstm.errors import InputError
from nsteplstm.forecast import (
    forecast,
    forecast_metrics,
    forecast_series,
    forecast_truth,
)
from nsteplstm.model import Forecaster

S = 6


pytestmark = pytest.mark.usefixtures("one_thread")


def make_model(n_layers: int = 2, n_in: int = 1, cell: str = "nstep", seed: int = 0) -> Forecaster:
    torch.manual_seed(seed)
    model = Forecaster(n_layers, n_in, 16, n_in, dropout=0.3, cell=cell)
    with torch.no_grad():
        model.head.weight.normal_(0.0, 0.3)  # visible feedback: errors would compound
        model.head.bias.fill_(0.1)
    return model


def make_series(length: int = 40, features: int = 1) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform(-1, 1, size=(length, features)).astype(np.float32)


def window_reference(model: Forecaster, series: np.ndarray, start: int, horizon: int) -> np.ndarray:
    """A plain loop: model([last S values]) from zero state, keep the last output."""
    model.eval()
    values = [torch.from_numpy(v) for v in series[start : start + S]]  # each (F,)
    out = []
    with torch.no_grad():
        for _ in range(horizon):
            (y,) = model([torch.stack(values[-S:])])  # (S, F)
            values.append(y[-1])
            out.append(y[-1].numpy())
    return np.stack(out)  # (horizon, F)


@pytest.mark.parametrize("features", [1, 2])
@pytest.mark.parametrize("cell", ["nstep", "step"])
def test_window_mode_equals_plain_loop(cell: str, features: int) -> None:
    model = make_model(n_in=features, cell=cell)
    series = make_series(features=features)
    out = forecast(model, series, [3], S, horizon=9, mode="window")
    assert out.shape == (1, 9, features) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], window_reference(model, series, 3, 9), atol=1e-5)


@pytest.mark.parametrize("cell", ["nstep", "step"])
def test_stream_mode_equals_one_pass_over_its_own_predictions(cell: str) -> None:
    model = make_model(cell=cell)
    series = make_series()
    horizon = 12
    pred = forecast(model, series, [5], S, horizon=horizon, mode="stream")[0]  # (H, 1)
    # One sequence: the true window, then the predictions fed back (the last is never input).
    seq = np.concatenate([series[5 : 5 + S], pred[:-1]])  # (S + H - 1, 1)
    model.eval()
    with torch.no_grad():
        (y,) = model([torch.from_numpy(seq)])
    np.testing.assert_allclose(pred, y[S - 1 :].numpy(), atol=1e-5)


@pytest.mark.parametrize("cell", ["nstep", "step"])
def test_first_point_is_the_same_in_both_modes(cell: str) -> None:
    model = make_model(cell=cell)
    series = make_series()
    window = forecast(model, series, [0, 7, 20], S, horizon=5, mode="window")
    stream = forecast(model, series, [0, 7, 20], S, horizon=5, mode="stream")
    np.testing.assert_allclose(window[:, 0], stream[:, 0], atol=1e-6)
    assert not np.allclose(window[:, 1:], stream[:, 1:])  # the modes differ afterwards


@pytest.mark.parametrize("mode", ["window", "stream"])
def test_batch_of_starts_equals_each_start_alone(mode: str) -> None:
    model = make_model()
    series = make_series()
    starts = [0, 11, 11, 34]  # a repeat, and the last valid start (runs past the end)
    batch = forecast(model, series, starts, S, horizon=8, mode=mode)
    for i, s in enumerate(starts):
        alone = forecast(model, series, [s], S, horizon=8, mode=mode)[0]
        np.testing.assert_allclose(batch[i], alone, atol=1e-6)


@pytest.mark.parametrize("mode", ["window", "stream"])
def test_step_cells_give_the_same_forecast_as_nstep(mode: str) -> None:
    nstep, step = make_model(cell="nstep"), make_model(cell="step", seed=1)
    with torch.no_grad():
        for k, cell in enumerate(step.lstm.cells):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(cell, name).copy_(getattr(nstep.lstm.lstm, f"{name}_l{k}"))
        step.head.load_state_dict(nstep.head.state_dict())
    series = make_series()
    a = forecast(nstep, series, [0, 9], S, horizon=10, mode=mode)
    b = forecast(step, series, [0, 9], S, horizon=10, mode=mode)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_default_horizon_mode_and_training_flag_restored() -> None:
    model = make_model()
    model.train()
    out = forecast(model, make_series(), [0], S)
    assert out.shape == (1, 4 * S, 1)
    assert model.training
    # Dropout is off while forecasting: repeated calls agree.
    np.testing.assert_array_equal(out, forecast(model, make_series(), [0], S))


BEYOND = r"horizon = 1000001 is out of range: at most 1,000,000 \(the model runs once per point"


@pytest.mark.parametrize("mode", ["window", "stream"])
def test_a_horizon_past_the_bound_is_refused_before_the_memory_check(monkeypatch, mode) -> None:
    # Any horizon that fit in memory ran: 10**9 points from one start (4 GB) for days.
    monkeypatch.setattr(nsteplstm.device, "physical_memory", lambda: 2**20)
    with pytest.raises(InputError, match=BEYOND) as info:
        forecast(make_model(), make_series(), [0], S, 1_000_001, mode)
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match=r"horizon = 1000000000 is out of range: at most 1,"):
        forecast(make_model(), make_series(), [0], S, 10**9, mode)
    with pytest.raises(InputError, match=r"horizon = an integer of about 5000 digits is out"):
        forecast(make_model(), make_series(), [0], S, 10**5000, mode)  # str() refuses it


def test_the_horizon_bound_is_a_million_points() -> None:
    # forecast_truth shares forecast's checks and is cheap at a million points (8 MB).
    series = np.arange(10, dtype=np.float32)
    assert forecast_truth(series, [0], 3, 10**6).shape == (1, 10**6, 1)
    with pytest.raises(InputError, match=BEYOND):
        forecast_truth(series, [0], 3, 10**6 + 1)


def test_the_default_horizon_stays_within_the_bound(monkeypatch) -> None:
    # 4 * sequence_size of a long window would be refused as a horizon the user never gave.
    from nsteplstm import forecast as forecasting

    monkeypatch.setattr(forecasting, "MAX_HORIZON", 10)
    assert forecast(make_model(), make_series(), [0], S).shape == (1, 10, 1)  # not 4 * S
    with pytest.raises(InputError, match="horizon = 11 is out of range: at most 10 "):
        forecast(make_model(), make_series(), [0], S, 11)


def test_forecast_command_refuses_a_horizon_past_the_bound(tmp_path, monkeypatch, capsys) -> None:
    # On a machine that could hold it, --horizon 1000001 ran for up to an hour; here,
    # with little memory, it was refused by the memory check.
    from nsteplstm.cli import main

    run_dir, _ = make_run(tmp_path)
    before = sorted(p.name for p in run_dir.iterdir())
    monkeypatch.setattr(nsteplstm.device, "physical_memory", lambda: 2**27)
    assert main(["forecast", str(run_dir), "--horizon", "1000001"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(BEYOND, err), err
    assert sorted(p.name for p in run_dir.iterdir()) == before


def refused_with(memory: int, monkeypatch, call) -> bool:
    """Whether ``call()`` is refused by a memory check on a machine of ``memory`` bytes."""
    monkeypatch.setattr(nsteplstm.device, "physical_memory", lambda: memory)
    try:
        call()
    except InputError as e:
        assert re.match(r"horizon = \d+: \d+ forecasts of \d+ points take .*, more than", str(e))
        return True
    return False


def test_forecast_truth_counts_the_float64_it_allocates(monkeypatch) -> None:
    # Counted at 4 bytes a value (float32): half the float64 it allocates.
    series = np.arange(10, dtype=np.float32)
    out = forecast_truth(series, [0, 2], 3, 10**5)
    assert out.dtype == np.float64
    assert refused_with(
        out.nbytes - 1, monkeypatch, lambda: forecast_truth(series, [0, 2], 3, 10**5)
    )
    assert not refused_with(
        out.nbytes, monkeypatch, lambda: forecast_truth(series, [0, 2], 3, 10**5)
    )


def test_forecast_series_counts_the_three_arrays_it_returns(monkeypatch) -> None:
    # Counted as one float32 (S + horizon, P, F) array: a sixth of the int64 and two
    # float64 arrays it returns, with one feature.
    series = make_series(features=2)
    pred = np.zeros((3, 500, 2), dtype=np.float32)
    arrays = forecast_series(series, [0, 1, 2], S, pred)
    needed = sum(a.nbytes for a in arrays)
    assert refused_with(
        needed - 1, monkeypatch, lambda: forecast_series(series, [0, 1, 2], S, pred)
    )
    assert not refused_with(
        needed, monkeypatch, lambda: forecast_series(series, [0, 1, 2], S, pred)
    )


@pytest.mark.parametrize("mode", ["window", "stream"])
def test_forecast_counts_the_model_dtype_of_its_buffers(monkeypatch, mode) -> None:
    # A float64 model's buffer of predictions was counted at 4 bytes a value.
    model, series, horizon = make_model().double(), make_series(), 1000
    buffer = 8 * horizon  # float64 (horizon, 1, 1), the least either mode holds
    call = lambda: forecast(model, series, [0], S, horizon, mode)  # noqa: E731
    assert refused_with(buffer - 1, monkeypatch, call)
    assert not refused_with(4 * buffer, monkeypatch, call)


@pytest.mark.parametrize("mode", ["window", "stream"])
def test_forecast_counts_the_lstm_over_many_start_windows(monkeypatch, mode) -> None:
    # Only the (S + horizon, B, F) buffer was counted, 28 kB here, while the LSTM's
    # output alone over the start windows is (S * B, H) float32: 384 kB.
    model, series, starts, hidden = make_model(), make_series(), [0, 5, 9, 17] * 250, 16
    lstm_output = 4 * S * len(starts) * hidden
    call = lambda: forecast(model, series, starts, S, 1, mode)  # noqa: E731
    assert refused_with(lstm_output, monkeypatch, call)
    assert not refused_with(5 * lstm_output, monkeypatch, call)


@pytest.mark.parametrize("cell", ["nstep", "step"])
def test_window_mode_frees_each_lstm_output_before_the_next_call(monkeypatch, cell) -> None:
    # The last step's output (S * B, H) was held through the next call: at many starts
    # 1.5x the peak memory of stream mode (measured: 1.5 GB against 1.0 GB).
    model = make_model(cell=cell)
    original = model.lstm.forward_packed
    outputs: list[weakref.ref] = []
    held: list[bool] = []

    def spy(data, layout):
        held.append(any(ref() is not None for ref in outputs))
        result = original(data, layout)
        outputs.append(weakref.ref(result[0] if isinstance(result, tuple) else result))
        return result

    monkeypatch.setattr(model.lstm, "forward_packed", spy)
    forecast(model, make_series(), [0, 3], S, 4, "window")
    assert held == [False] * 4


def test_one_dimensional_series_is_one_feature() -> None:
    model = make_model()
    series = make_series()
    np.testing.assert_array_equal(
        forecast(model, series[:, 0], [2], S, 4), forecast(model, series, [2], S, 4)
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(starts=[35]), r"start 35 out of range: .* must start in \[0, 34\]"),
        (dict(starts=[-1]), r"start -1 out of range"),
        (dict(starts=[]), r"starts must be a non-empty list of integers, got \[\]"),
        (dict(starts=3), r"starts must be a list of integers, got int"),
        (dict(starts=np.array([[0]])), r"starts must be a non-empty list .* got array"),
        (dict(series=["a"] * 40), r"series must hold real numbers, got dtype <U1"),
        # The next four raised torch's or NumPy's errors, or lost the mask / imaginary part.
        (dict(starts=[[0], [1, 2]]), r"start \[0\] must be an integer, got list"),
        (dict(starts=[1.0]), r"start 1.0 must be an integer, got float"),
        (dict(starts=[True]), r"start True must be an integer, got bool"),
        # NumPy 2's repr reached the message: "start np.int64(35) out of range".
        (dict(starts=np.array([35])), r"start 35 out of range: .* must start in \[0, 34\]"),
        (dict(starts=[np.float64(1.0)]), r"start 1.0 must be an integer, got float64"),
        (dict(series=np.ma.masked_array(make_series())), r"a masked array's mask would be lost"),
        (dict(series=make_series().astype(complex)), r"real numbers, got dtype complex128"),
        (dict(series=np.arange(40).astype("datetime64[D]")), r"got dtype datetime64\[D\]"),
        (dict(horizon=0), r"horizon must be an integer >= 1, got 0"),
        (dict(sequence_size=0), r"sequence_size must be an integer >= 1, got 0"),
        (dict(sequence_size=41), r"sequence_size = 41 is longer than the series \(40 points\)"),
        (dict(mode="loop"), r"mode must be one of window, stream, got 'loop'"),
        (
            dict(series=np.zeros((40, 2), np.float32)),
            r"series must have shape \(T, 1\) .* \(40, 2\)",
        ),
        (dict(series=np.full((40, 1), np.nan, np.float32)), r"start window at 0 holds NaN"),
        (dict(series=np.full(40, 1e300)), r"start window at 0 .* \(in float32, the model's"),
        (dict(series=np.array([10**400] * 40, dtype=object)), r"series must be an array of num"),
    ],
)
def test_errors(kwargs: dict, message: str) -> None:
    args = dict(model=make_model(), series=make_series(), starts=[0], sequence_size=S, horizon=3)
    args.update(kwargs)
    with pytest.raises(InputError, match=message) as info:
        forecast(**args)
    assert "\n" not in str(info.value)


def test_starts_may_be_a_numpy_array() -> None:
    model, series = make_model(), make_series()
    np.testing.assert_array_equal(
        forecast(model, series, np.array([0, 4]), S, 3), forecast(model, series, [0, 4], S, 3)
    )


def test_starts_and_series_of_other_integer_and_tensor_types() -> None:
    # numpy.uint64 starts and a series tensor that requires grad ended in torch errors.
    model, series = make_model(), make_series()
    want = forecast(model, series, [2], S, 3)
    np.testing.assert_array_equal(forecast(model, series, [np.uint64(2)], S, 3), want)
    tensor = torch.from_numpy(series).requires_grad_()
    np.testing.assert_array_equal(forecast(model, tensor, [2], S, 3), want)


def test_each_submodules_mode_is_restored() -> None:
    model = make_model()
    model.train()
    model.lstm.eval()  # it came back in training mode
    forecast(model, make_series(), [0], S, 3)
    assert (model.training, model.lstm.training, model.head.training) == (True, False, True)


def test_model_must_feed_back_its_outputs() -> None:
    model = Forecaster(1, 2, 8, 1)
    with pytest.raises(InputError, match="n_out = 1 must equal n_in = 2"):
        forecast(model, make_series(features=2), [0], S, 3)


def test_truth_past_the_end_is_nan() -> None:
    series = np.arange(10, dtype=np.float32)
    truth = forecast_truth(series, [0, 5], 3, 4)
    assert truth.shape == (2, 4, 1)
    np.testing.assert_array_equal(truth[0, :, 0], [3, 4, 5, 6])
    np.testing.assert_array_equal(truth[1, :2, 0], [8, 9])
    assert np.isnan(truth[1, 2:]).all()


def test_forecast_series_puts_windows_and_forecasts_on_one_axis() -> None:
    series = np.arange(10, dtype=np.float32)
    pred = np.array([[[30.0], [40.0]], [[80.0], [90.0]]], dtype=np.float32)  # (2, 2, 1)
    t, truth, prediction = forecast_series(series, [0, 6], 3, pred)
    np.testing.assert_array_equal(t, [[0, 1, 2, 3, 4], [6, 7, 8, 9, 10]])
    np.testing.assert_array_equal(truth[0, :, 0], [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(truth[1, :4, 0], [6, 7, 8, 9])
    assert np.isnan(truth[1, 4, 0])
    assert np.isnan(prediction[:, :3]).all()
    np.testing.assert_array_equal(prediction[:, 3:], pred)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda x: forecast_truth(x, [0], 3, -1), "horizon must be an integer >= 1, got -1"),
        # A negative start once wrapped around to the end of the series.
        (lambda x: forecast_truth(x, [-5], 3, 2), r"start -5 out of range: .* \[0, 7\]"),
        (lambda x: forecast_series(x, [8], 3, np.zeros((1, 2, 1))), "start 8 out of range"),
        (lambda x: forecast_series(x, [0], 3, np.zeros((2, 1))), r"pred must have shape \(1, "),
        (lambda x: forecast_series(x, [0, 1], 3, np.zeros((1, 2, 1))), r"got \(1, 2, 1\)"),
    ],
)
def test_truth_and_series_check_their_arguments(call, message) -> None:
    with pytest.raises(InputError, match=message):
        call(np.arange(10, dtype=np.float32))


def test_metrics() -> None:
    truth = np.array([[1.0, 2.0, 3.0, np.nan]])
    pred = np.array([[1.2, 2.6, 1.0, 7.0]])
    m = forecast_metrics(pred, truth, integer_valued=True)
    assert m["points"] == 3
    assert m["rmse"] == pytest.approx(np.sqrt((0.04 + 0.36 + 4.0) / 3))
    assert m["mae"] == pytest.approx((0.2 + 0.6 + 2.0) / 3)
    assert m["round_accuracy"] == pytest.approx(1 / 3)
    assert forecast_metrics(pred, truth, integer_valued=False)["round_accuracy"] is None
    empty = forecast_metrics(pred[:, 3:], truth[:, 3:], integer_valued=True)
    assert empty == {"points": 0, "rmse": None, "mae": None, "round_accuracy": None}
    with pytest.raises(InputError, match="same shape"):
        forecast_metrics(pred, truth[:, :2], integer_valued=True)


# ------------------------------------------------------------------ forecast_run


def make_run(tmp_path, data: str = "fibonacci", name: str = "run", **settings):
    """A run directory as training writes it (a CSV file's SHA-256, header names and
    training rows included), of an untrained one-layer model."""
    from nsteplstm import runs
    from nsteplstm.config import Config
    from nsteplstm.data import load_dataset, source_digest, training_rows

    config = Config(data=data, total_size=80, sequence_size=S, n_hidden=8, epochs=1, **settings)
    model = Forecaster(1, config.n_in, 8, config.n_out, dropout=config.dropout)
    run_dir = tmp_path / name
    run_dir.mkdir()
    dataset = load_dataset(config)
    digest, rows = source_digest(config), None
    if config.csv_path is not None:
        rows = training_rows(dataset, config.split_rate)
    runs.write_config(run_dir, config, model.config, dataset.scaler, digest, dataset.header, rows)
    runs.save_model(run_dir / runs.MODEL_FILE, model)
    history = [dict(epoch=1, train_loss=1.0, val_loss=2.0, seconds=0.1)]
    runs.write_history(run_dir, history)
    runs.write_metrics(run_dir, {"train_loss": 1.0, "val_loss": 2.0})
    return run_dir, model


@pytest.mark.parametrize("mode", ["window", "stream"])
def test_forecast_run_writes_csv_png_and_metrics(tmp_path, mode: str) -> None:
    import csv
    import json

    from nsteplstm.data import fibonacci_mod
    from nsteplstm.forecast import forecast_run

    run_dir, model = make_run(tmp_path)
    result = forecast_run(run_dir, mode=mode, horizon=80, start=4)  # runs past the end (80)
    keys = {"points", "rmse", "mae", "round_accuracy", "seconds", "start", "series", "non_finite"}
    keys |= {"in_sample", "held_out_from", "data"}
    assert set(result) == keys | {"mode"} and result["mode"] == mode
    assert result["data"] == "fibonacci"
    assert (result["start"], result["series"], result["non_finite"]) == (4, None, 0)
    assert result["points"] == 80 - 4 - S
    assert 0 <= result["round_accuracy"] <= 1

    series = fibonacci_mod(80, 5)
    pred = forecast(model, series, [4], S, 80, mode)[0, :, 0]
    other = forecast(model, series, [4], S, 80, "stream" if mode == "window" else "window")
    assert np.abs(pred[1:] - other[0, 1:, 0]).max() > 1e-5  # so the mode shows below
    rows = list(csv.reader((run_dir / f"forecast-{mode}.csv").open()))
    assert rows[0] == ["t", "truth", "prediction"]
    assert len(rows) == 1 + S + 80
    assert rows[1] == ["4", "3.0", ""]  # start window: truth only
    assert [int(r[0]) for r in rows[1:]] == list(range(4, 4 + S + 80))
    assert [float(r[2]) for r in rows[1 + S :]] == pred.tolist()  # every row, exactly
    assert rows[-1][1] == ""  # past the series end: prediction only
    # The scores, recomputed from the CSV over the points that have a truth.
    both = np.array([(float(r[1]), float(r[2])) for r in rows[1 + S :] if r[1]])  # (P, 2)
    truth, guess = both[:, 0], both[:, 1]
    assert truth.tolist() == series[4 + S :].tolist() and len(both) == result["points"]
    assert result["rmse"] == pytest.approx(np.sqrt(np.mean((guess - truth) ** 2)), rel=1e-6)
    assert result["mae"] == pytest.approx(np.mean(np.abs(guess - truth)), rel=1e-6)
    assert result["round_accuracy"] == pytest.approx(np.mean(np.rint(guess) == truth))

    assert (run_dir / f"forecast-{mode}.png").read_bytes()[:4] == b"\x89PNG"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["forecast"][mode] == result
    assert metrics["val_loss"] == 2.0  # the run's own metrics are kept


def test_forecast_run_replaces_an_earlier_forecast_only_with_force(tmp_path) -> None:
    # A second forecast in one mode replaced the first one's files and metrics entry
    # without being asked.
    import json

    from nsteplstm.forecast import forecast_run

    run_dir, _ = make_run(tmp_path)
    first = forecast_run(run_dir, horizon=5, start=0)
    files = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    with pytest.raises(
        InputError,
        match=r"forecast-window.csv already exists; use --force to replace that "
        "forecast, or --name to keep it",
    ):
        forecast_run(run_dir, horizon=5, start=3)
    with pytest.raises(InputError, match=r"start 75 out of range"):  # the mistake comes first
        forecast_run(run_dir, horizon=5, start=75)
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == files
    assert forecast_run(run_dir, mode="stream", horizon=5)["start"] == 0  # the other mode
    for name in ("forecast-window.csv", "forecast-window.png"):  # only the entry is left
        (run_dir / name).unlink()
    metrics = (run_dir / "metrics.json").read_text()
    with pytest.raises(
        InputError, match=r"metrics.json \(entry forecast.window\) already exists; use --force"
    ):
        forecast_run(run_dir, horizon=5, start=3)
    assert (run_dir / "metrics.json").read_text() == metrics
    again = forecast_run(run_dir, horizon=5, start=3, force=True)
    assert again["start"] == 3 != first["start"]
    assert json.loads((run_dir / "metrics.json").read_text())["forecast"]["window"] == again


def test_forecast_run_counts_predictions_that_overflowed(tmp_path, capsys) -> None:
    # They were written as empty cells with null scores, and nothing said why.
    import json

    from nsteplstm import runs
    from nsteplstm.forecast import forecast_run

    run_dir, model = make_run(tmp_path)
    with torch.no_grad():
        for weight in model.lstm.parameters():  # every gate open, cell input 1, for any
            weight.fill_(5.0 if weight.dim() == 1 else 0.0)  # input: hidden states near 0.75
        model.head.bias.fill_(3e38)  # + 8 units * 1e38 * ~1: beyond float32's 3.4e38
        model.head.weight.fill_(1e38)
    runs.save_model(run_dir / runs.MODEL_FILE, model)
    result = forecast_run(run_dir, horizon=6, start=0)
    assert (result["points"], result["non_finite"], result["rmse"], result["mae"]) == (
        6,
        6,
        None,
        None,
    )
    assert result["round_accuracy"] == 0.0
    rows = (run_dir / "forecast-window.csv").read_text().splitlines()[1 + S :]
    assert [r.split(",")[2] for r in rows] == [""] * 6
    assert json.loads((run_dir / "metrics.json").read_text())["forecast"]["window"] == result
    from nsteplstm.cli import main

    assert main(["forecast", str(run_dir), "--horizon", "6", "--force"]) == 0
    out = capsys.readouterr().out
    assert "non_finite 6" in out and "note: 6 predicted values are infinite or NaN" in out


@pytest.mark.parametrize(
    ("head", "columns"),
    [("units,price\n", ["truth_units", "truth_price", "prediction_units", "prediction_price"]),
     ("", ["truth_0", "truth_1", "prediction_0", "prediction_1"])],
)  # fmt: skip
def test_forecast_run_names_the_features_by_the_csvs_header(tmp_path, head, columns) -> None:
    # Columns were truth_0, truth_1, ... and every panel said "value", header or not.
    import csv

    from nsteplstm.forecast import forecast_run

    path = tmp_path / "shop.csv"
    path.write_text(head + "".join(f"{t % 5},{100.5 + t % 3}\n" for t in range(80)))
    run_dir, _ = make_run(tmp_path, data=f"csv:{path}", n_in=2, n_out=2)
    result = forecast_run(run_dir, horizon=3)
    assert result["points"] == 6
    rows = list(csv.reader((run_dir / "forecast-window.csv").open()))
    assert rows[0] == ["t", *columns]
    # The pooled scores mix the features' units; each feature has its own too.
    names = [c[len("truth_") :] for c in columns[:2]]
    own = result["features"]
    assert list(own) == names and [own[n]["points"] for n in names] == [3, 3]
    pooled = (own[names[0]]["rmse"] ** 2 + own[names[1]]["rmse"] ** 2) / 2
    assert result["rmse"] == pytest.approx(pooled**0.5)
    assert result["mae"] == pytest.approx((own[names[0]]["mae"] + own[names[1]]["mae"]) / 2)
    assert [float(x) for x in rows[1][1:3]] == [0.0, 100.5]  # in the file's units
    # Rounded where the feature holds integers (it was None as soon as one did not).
    assert result["round_accuracy"] is None and own[names[1]]["round_accuracy"] is None
    assert 0 <= own[names[0]]["round_accuracy"] <= 1


def test_forecast_run_undoes_the_scaling(tmp_path) -> None:
    from nsteplstm.forecast import forecast_run

    values = 1000 + 50 * np.sin(np.arange(80) / 3.0)
    path = tmp_path / "data.csv"
    path.write_text("value\n" + "\n".join(f"{v:.3f}" for v in values) + "\n")
    run_dir, _ = make_run(tmp_path, data=f"csv:{path}")
    result = forecast_run(run_dir, mode="stream", horizon=5)
    assert result["round_accuracy"] is None  # not integer-valued
    lines = (run_dir / "forecast-stream.csv").read_text().splitlines()
    assert float(lines[1].split(",")[1]) == pytest.approx(values[0], abs=1e-3)
    assert float(lines[S + 1].split(",")[2]) > 500  # data units, not standardized ones
    # The scores too: recomputed from the file's columns, in data units.
    cells = [line.split(",") for line in lines[S + 1 :]]
    both = np.array([(float(c[1]), float(c[2])) for c in cells if c[1]])  # (P, 2)
    error = both[:, 1] - both[:, 0]
    assert len(both) == result["points"] == 5
    assert result["rmse"] == pytest.approx(np.sqrt(np.mean(error**2)), rel=1e-6)
    assert result["mae"] == pytest.approx(np.mean(np.abs(error)), rel=1e-6)


def test_forecast_run_scales_with_the_runs_own_scaler(tmp_path) -> None:
    from nsteplstm import runs
    from nsteplstm.forecast import forecast_run

    path = tmp_path / "data.csv"
    path.write_text("v\n" + "\n".join(str(t % 9) for t in range(80)) + "\n")
    run_dir, model = make_run(tmp_path, data=f"csv:{path}")
    scaler = runs.load_run(run_dir).scaler
    # New observations arrive, far from the old range: a scaler fitted again would move.
    values = [t % 9 for t in range(80)] + [100 + t for t in range(40)]
    path.write_text("v\n" + "\n".join(str(v) for v in values) + "\n")
    forecast_run(run_dir, horizon=3, start=-S)
    rows = (run_dir / "forecast-window.csv").read_text().split()[1:]
    got = [float(r.split(",")[2]) for r in rows[S:]]

    x = scaler.transform(np.asarray(values, dtype=np.float32).reshape(-1, 1))
    want = scaler.inverse(forecast(model, x, [len(values) - S], S, 3, "window"))[0, :, 0]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_forecast_run_truth_is_the_files_values(tmp_path) -> None:
    from nsteplstm.data import fibonacci_mod
    from nsteplstm.forecast import forecast_run

    values = fibonacci_mod(300, 5).astype(int).tolist()  # scaled and back: 0 -> 1.19e-07
    path = tmp_path / "fib.csv"
    path.write_text("v\n" + "\n".join(map(str, values)) + "\n")
    run_dir, _ = make_run(tmp_path, data=f"csv:{path}")
    forecast_run(run_dir, horizon=250, start=0)
    rows = [r.split(",") for r in (run_dir / "forecast-window.csv").read_text().split()[1:]]
    assert [float(r[1]) for r in rows if r[1]] == values[: S + 250]


def test_forecast_run_errors(tmp_path) -> None:
    from nsteplstm.forecast import forecast_run

    run_dir, _ = make_run(tmp_path)
    with pytest.raises(InputError, match=r"start 75 out of range: .* \[0, 74\]"):
        forecast_run(run_dir, start=75)
    with pytest.raises(InputError, match=r"start -5 out of range: .* or in \[-80, -6\] counted"):
        forecast_run(run_dir, start=-S + 1)  # the window would run past the end
    with pytest.raises(InputError, match=r"start -81 out of range"):
        forecast_run(run_dir, start=-81)
    with pytest.raises(InputError, match=r"start 2.0 must be an integer, got float"):
        forecast_run(run_dir, start=2.0)  # was "out of range"
    with pytest.raises(InputError, match="series 'a': data = 'fibonacci' is one series"):
        forecast_run(run_dir, series="a")
    with pytest.raises(InputError, match="mode must be one of"):
        forecast_run(run_dir, mode="x")
    with pytest.raises(InputError, match="does not exist"):
        forecast_run(tmp_path / "missing")
    assert not (run_dir / "forecast-window.csv").exists()


def _files(run_dir) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ('{"a": NaN}', r"not valid JSON \(NaN is not a number JSON allows\)"),
        ('{"a": 1, "forecast": 5}', "'forecast' must be a JSON object"),
    ],
)
def test_forecast_run_checks_metrics_json_before_writing(tmp_path, metrics, message) -> None:
    from nsteplstm.forecast import forecast_run

    run_dir, _ = make_run(tmp_path)
    (run_dir / "metrics.json").write_text(metrics)
    before = _files(run_dir)
    with pytest.raises(InputError, match=message):
        forecast_run(run_dir, horizon=5)
    assert _files(run_dir) == before  # no CSV, no PNG, metrics.json as it was


def test_forecast_run_does_not_need_history_csv(tmp_path) -> None:
    # It refused a run without a readable history.csv, which a forecast does not read.
    from nsteplstm import runs
    from nsteplstm.forecast import forecast_run

    run_dir, _ = make_run(tmp_path)
    (run_dir / runs.HISTORY_FILE).write_text("damaged\n")
    assert forecast_run(run_dir, horizon=3)["points"] == 3
    (run_dir / runs.HISTORY_FILE).unlink()
    assert forecast_run(run_dir, horizon=3, name="again")["points"] == 3


def test_forecast_run_names_the_forecasts_a_damaged_metrics_json_records(tmp_path) -> None:
    from nsteplstm import runs
    from nsteplstm.forecast import forecast_run

    run_dir, _ = make_run(tmp_path)
    forecast_run(run_dir, horizon=3, name="a")
    metrics = run_dir / runs.METRICS_FILE
    metrics.write_text(metrics.read_text()[:-20])
    before = _files(run_dir)
    message = (
        rf"^{metrics}: metrics.json is not valid JSON \(.*\); it records which of the "
        r"forecasts here \('a': forecast-NAME.csv and .png\) are the run's: repair it$"
    )
    with pytest.raises(InputError, match=message):
        forecast_run(run_dir, horizon=3, name="b", force=True)
    assert _files(run_dir) == before


def test_forecast_run_refuses_a_directory_in_the_way(tmp_path) -> None:
    from nsteplstm.forecast import forecast_run

    run_dir, _ = make_run(tmp_path)
    (run_dir / "forecast-window.png").mkdir()
    before = _files(run_dir)
    with pytest.raises(InputError, match=r"forecast-window\.png: it is a directory"):
        forecast_run(run_dir, horizon=5)
    assert _files(run_dir) == before
    assert sorted(p.name for p in run_dir.iterdir() if p.is_dir()) == ["forecast-window.png"]


def test_forecast_run_refuses_an_unwritable_run_before_forecasting(tmp_path, monkeypatch) -> None:
    import tempfile

    import nsteplstm.forecast as fc

    run_dir, _ = make_run(tmp_path)
    before = _files(run_dir)
    make_dir = tempfile.mkdtemp

    def read_only(*args: object, dir: object = None, **kwargs: object) -> str:
        if dir is not None and Path(dir) == run_dir:  # as chmod a-w would, for a non-root user
            raise PermissionError(13, "Permission denied")
        return make_dir(*args, dir=dir, **kwargs)

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("forecast ran into a directory it cannot write")

    monkeypatch.setattr(tempfile, "mkdtemp", read_only)
    monkeypatch.setattr(fc, "forecast", never)
    with pytest.raises(InputError, match=f"cannot forecast into {run_dir}: .* not writable"):
        fc.forecast_run(run_dir, horizon=5)
    assert _files(run_dir) == before


def test_forecast_run_renders_before_writing(tmp_path, monkeypatch) -> None:
    from nsteplstm import plots
    from nsteplstm.forecast import forecast_run

    run_dir, _ = make_run(tmp_path)
    before = _files(run_dir)

    def boom(*args: object, **kwargs: object) -> bytes:
        raise RuntimeError("render failed")

    monkeypatch.setattr(plots, "png_bytes", boom)
    with pytest.raises(RuntimeError, match="render failed"):
        forecast_run(run_dir, horizon=5)
    assert _files(run_dir) == before  # the CSV was not written ahead of the PNG


@pytest.mark.parametrize("mode", ["window", "stream"])
def test_forecast_run_negative_start_counts_from_the_end(tmp_path, mode: str) -> None:
    import json

    from nsteplstm.forecast import forecast_run

    run_dir, _ = make_run(tmp_path)
    by_end = forecast_run(run_dir, mode=mode, horizon=7, start=-S)  # the last window: no truth
    assert by_end["start"] == 80 - S and by_end["points"] == 0 and by_end["rmse"] is None
    csv_by_end = (run_dir / f"forecast-{mode}.csv").read_text()
    assert csv_by_end.splitlines()[-1].startswith(f"{80 + 6},,")  # t past the series
    by_start = forecast_run(run_dir, mode=mode, horizon=7, start=80 - S, force=True)
    assert (run_dir / f"forecast-{mode}.csv").read_text() == csv_by_end
    assert by_start["start"] == by_end["start"]
    assert json.loads((run_dir / "metrics.json").read_text())["forecast"][mode] == by_start


def test_forecast_run_picks_a_series_by_id(tmp_path) -> None:
    import json

    from nsteplstm.forecast import forecast_run

    lines = [f"{shop},{(k * t) % 7}" for shop, k in (("b", 1), ("a", 3)) for t in range(80)]
    path = tmp_path / "shops.csv"
    path.write_text("shop,units\n" + "\n".join(lines) + "\n")
    run_dir, _ = make_run(tmp_path, data=f"csv:{path}", csv_series_id="shop")

    first = forecast_run(run_dir, horizon=5, start=2)
    assert first["series"] == "b"
    again = forecast_run(run_dir, horizon=5, start=2, series="b", force=True)
    assert again == {**first, "seconds": ANY}
    second = forecast_run(run_dir, horizon=5, start=2, series="a", force=True)
    assert second["series"] == "a" and second["rmse"] != first["rmse"]
    rows = (run_dir / "forecast-window.csv").read_text().split()[1:]
    truth = [float(r.split(",")[1]) for r in rows]
    assert truth[:S] == [(3 * t) % 7 for t in range(2, 2 + S)]  # series 'a', in data units
    assert json.loads((run_dir / "metrics.json").read_text())["forecast"]["window"]["series"] == "a"
    with pytest.raises(InputError, match=r"series 'c' not in the data \(ids: 'b', 'a'\)"):
        forecast_run(run_dir, series="c", force=True)


def test_forecast_run_names_a_series_too_short_to_start_from(tmp_path) -> None:
    from nsteplstm.forecast import forecast_run

    lines = [f"tiny,{t}" for t in range(3)] + [f"big,{t % 5}" for t in range(80)]
    path = tmp_path / "shops.csv"
    path.write_text("shop,units\n" + "\n".join(lines) + "\n")
    run_dir, _ = make_run(tmp_path, data=f"csv:{path}", csv_series_id="shop")
    with pytest.raises(InputError, match=r"series 'tiny' has 3 points, fewer than one start "):
        forecast_run(run_dir)  # the first series: its message said 'must start in [0, -3]'
    assert forecast_run(run_dir, series="big", horizon=2)["series"] == "big"
    path.write_text("shop,units\n" + "\n".join(lines[:3]) + "\n")  # no series long enough
    with pytest.raises(
        InputError, match=rf"series 'tiny' has 3 points, .*\(sequence_size = {S}\)$"
    ):
        forecast_run(run_dir, force=True)


def test_forecast_run_refuses_a_horizon_its_outputs_cannot_hold(tmp_path, monkeypatch) -> None:
    # Only the model's float32 buffer was counted: horizons 40x too large passed,
    # then ran for hours (stream mode, about 50 us a point) before running out.
    from nsteplstm import forecast as forecasting

    run_dir, _ = make_run(tmp_path)
    before = sorted(p.name for p in run_dir.iterdir())
    monkeypatch.setattr(nsteplstm.device, "physical_memory", lambda: 2**27)
    # Both sizes were rounded to whole GiB: "about 0 GiB, more than this machine's 0 GiB".
    match = r"horizon = 600000: .* about 0.143 GiB, more .*'s 0.125 GiB"
    with pytest.raises(InputError, match=match):
        forecasting.forecast_run(run_dir, mode="stream", horizon=600_000)
    assert sorted(p.name for p in run_dir.iterdir()) == before
    assert forecasting.forecast_run(run_dir, mode="stream", horizon=1000)["points"] > 0


def test_forecast_needs_one_window_of_data_not_a_split(tmp_path) -> None:
    # A forecast reads the series with the run's scaler: no split, no validation part
    # (a short CSV once failed on split_rate, which a forecast does not use).
    from nsteplstm.forecast import forecast_run

    path = tmp_path / "units.csv"
    path.write_text("units\n" + "".join(f"{t % 5}\n" for t in range(80)))
    run_dir, _ = make_run(tmp_path, data=f"csv:{path}")
    path.write_text("units\n" + "".join(f"{t % 5}\n" for t in range(S + 1)))
    assert forecast_run(run_dir, horizon=3)["points"] == 1  # truth for one point
    path.write_text("units\n" + "".join(f"{t % 5}\n" for t in range(S - 1)))
    with pytest.raises(InputError, match=rf"has {S - 1} points, fewer than one start window"):
        forecast_run(run_dir, force=True)


def test_forecast_run_refuses_a_run_another_process_holds(tmp_path) -> None:
    # Two forecasts at once each read metrics.json, then wrote it back without the
    # other's entry; a forecast during training met half-written files.
    from nsteplstm import runs

    pytest.importorskip("fcntl")
    from nsteplstm.forecast import forecast_run

    run_dir, _ = make_run(tmp_path)
    before = sorted((p.name, p.read_bytes()) for p in run_dir.iterdir())
    holder = runs.RunLock()
    holder.acquire(run_dir)  # another open file description: as another process's
    try:
        with pytest.raises(InputError, match="another process is training or forecasting"):
            forecast_run(run_dir, horizon=3)
        # A run in the middle of its training has no model yet: the lock is what to
        # report (it said 'missing, the training did not finish; resume it with ...').
        model = (run_dir / runs.MODEL_FILE).read_bytes()
        (run_dir / runs.MODEL_FILE).unlink()
        with pytest.raises(InputError, match="another process is training or forecasting"):
            forecast_run(run_dir, horizon=3)
        (run_dir / runs.MODEL_FILE).write_bytes(model)
    finally:
        holder.release()
    assert sorted((p.name, p.read_bytes()) for p in run_dir.iterdir()) == before
    assert forecast_run(run_dir, horizon=3)["points"] == 3


@pytest.mark.parametrize("mode", ["window", "stream"])
def test_forecast_run_counts_the_scored_points_in_the_training_part(tmp_path, mode) -> None:
    from nsteplstm.forecast import forecast_run

    # 80 points split 0.5: the model trained on t < 40. Points are scored from start + S.
    run_dir, _ = make_run(tmp_path, split_rate=0.5)
    result = forecast_run(run_dir, mode=mode, horizon=80, start=4)
    assert (result["points"], result["in_sample"], result["held_out_from"]) == (80 - 10, 30, 34)
    for start, inside in ((33, 1), (34, 0), (0, 34)):
        result = forecast_run(run_dir, mode=mode, horizon=5, start=start, force=True)
        assert (result["points"], result["in_sample"]) == (5, min(inside, 5))


def test_forecast_run_in_sample_counts_features_as_points_does(tmp_path) -> None:
    from nsteplstm.forecast import forecast_run

    path = tmp_path / "two.csv"
    path.write_text("a,b\n" + "\n".join(f"{t % 7},{t % 5}" for t in range(80)) + "\n")
    run_dir, _ = make_run(tmp_path, data=f"csv:{path}", split_rate=0.5, n_in=2, n_out=2)
    result = forecast_run(run_dir, horizon=10, start=30)  # scored t = 36 .. 45; 36 .. 39 inside
    assert (result["points"], result["in_sample"], result["held_out_from"]) == (20, 8, 34)


def test_forecast_run_knows_the_training_part_only_of_the_data_trained_on(tmp_path) -> None:
    from nsteplstm import runs
    from nsteplstm.forecast import forecast_run

    def scores(run_dir, start=0, **args):
        result = forecast_run(run_dir, horizon=5, start=start, force=True, **args)
        return result["points"], result["in_sample"], result["held_out_from"]

    def write(path, values):
        path.write_text("v\n" + "\n".join(values) + "\n")

    path = tmp_path / "data.csv"
    write(path, [str(t % 9) for t in range(80)])
    run_dir, _ = make_run(tmp_path, data=f"csv:{path}", split_rate=0.5)  # 40 rows trained on
    assert scores(run_dir) == (5, 5, 34) and scores(run_dir, 31) == (5, 3, 34)
    write(path, [f"{t % 9}.0" for t in range(95)])  # grown since, its numbers written otherwise
    assert scores(run_dir) == (5, 5, 34) and scores(run_dir, 31) == (5, 3, 34)
    assert scores(run_dir, -15) == (5, 0, 34)
    write(path, [str(t % 9 + (t == 39)) for t in range(95)])  # one training row changed
    assert scores(run_dir) == (5, None, None)
    write(path, [str(t % 9) for t in range(39)])  # fewer rows than were trained on
    assert scores(run_dir) == (5, None, None)

    write(path, [str(t % 9) for t in range(80)])
    older, _ = make_run(tmp_path, data=f"csv:{path}", name="older", split_rate=0.5)
    config, model, scaler = runs.read_config(older)
    digest = runs.stored_data_digest(older)  # a run from before training_rows
    runs.write_config(older, config, model, scaler, digest, {"columns": ["v"], "series_id": None})
    assert scores(older) == (5, 5, 34)
    write(path, [str(t % 9) for t in range(95)])  # grown: another file to such a run
    assert scores(older) == (5, None, None)
    runs.write_config(older, config, model, scaler)  # a run from before data_sha256
    assert scores(older) == (5, None, None)

    imported, _ = make_run(tmp_path, name="imported")
    runs.write_metrics(imported, {"imported_from": "/somewhere/model.npz"})
    assert forecast_run(imported, horizon=5)["in_sample"] is None


def test_forecast_run_knows_the_training_rows_of_each_series_by_its_id(tmp_path) -> None:
    from nsteplstm.forecast import forecast_run

    def write(path, ids, length):
        rows = [f"{i},{t % 9 + 2 * (i == 'b')}" for i in ids for t in range(length)]
        path.write_text("id,v\n" + "\n".join(rows) + "\n")

    path = tmp_path / "two.csv"
    write(path, "ab", 80)
    with path.open("a") as f:  # too short for a training window: no point trained on
        f.write("".join(f"d,{t}\n" for t in range(12)))
    newer = tmp_path / "newer.csv"
    write(newer, "cba", 90)  # grown, in another order, and a series the run never saw
    run_dir, _ = make_run(tmp_path, data=f"csv:{path}", split_rate=0.5, csv_series_id="id")
    short = forecast_run(run_dir, horizon=5, series="d", name="d")
    assert (short["points"], short["in_sample"], short["held_out_from"]) == (5, 0, 0)
    for series, known in (("a", 5), ("b", 5), ("c", None)):
        result = forecast_run(run_dir, horizon=5, series=series, name=series, data=f"csv:{newer}")
        assert result["in_sample"] == known, series


def test_forecast_run_reads_a_moved_csv_file_from_data(tmp_path) -> None:
    from nsteplstm.forecast import forecast_run

    path = tmp_path / "data.csv"
    path.write_text("v\n" + "\n".join(str(t % 9) for t in range(80)) + "\n")
    run_dir, _ = make_run(tmp_path, data=f"csv:{path}", split_rate=0.5)
    before = forecast_run(run_dir, horizon=5)
    rows = (run_dir / "forecast-window.csv").read_text()
    moved = tmp_path / "elsewhere" / "moved.csv"
    moved.parent.mkdir()
    path.rename(moved)
    with pytest.raises(InputError, match=rf"{path}: file not found \(the run's data.*--data csv:"):
        forecast_run(run_dir, horizon=5, force=True)
    path.symlink_to(tmp_path / "gone.csv")  # a link to nowhere: not found either
    with pytest.raises(InputError, match=rf"{path}: file not found \(the run's data.*--data csv:"):
        forecast_run(run_dir, horizon=5, force=True)
    after = forecast_run(run_dir, horizon=5, force=True, data=f"csv:{moved}")
    assert (run_dir / "forecast-window.csv").read_text() == rows
    assert after["data"] == f"csv:{moved}" and before["data"] == f"csv:{path}"
    same = ("points", "rmse", "mae", "round_accuracy", "in_sample", "held_out_from")
    assert [after[k] for k in same] == [before[k] for k in same]
    assert after["in_sample"] == 5  # the same bytes: the same training part


def test_forecast_run_reads_other_data_with_the_runs_scaler(tmp_path, monkeypatch) -> None:
    from nsteplstm import runs
    from nsteplstm.forecast import forecast_run

    path = tmp_path / "data.csv"
    path.write_text("v\n" + "\n".join(str(t % 9) for t in range(80)) + "\n")
    run_dir, model = make_run(tmp_path, data=f"csv:{path}")
    scaler = runs.load_run(run_dir).scaler
    other = tmp_path / "sub" / "new.csv"
    other.parent.mkdir()
    values = [100 + t for t in range(20)]
    other.write_text("v\n" + "\n".join(map(str, values)) + "\n")
    monkeypatch.chdir(tmp_path)
    result = forecast_run(run_dir, horizon=3, data="csv:sub/new.csv")  # from the current folder
    assert result["data"] == f"csv:{other}" and result["in_sample"] is None
    rows = [r.split(",") for r in (run_dir / "forecast-window.csv").read_text().split()[1:]]
    assert [float(r[1]) for r in rows] == values[: S + 3]
    x = scaler.transform(np.asarray(values, dtype=np.float32).reshape(-1, 1))
    want = scaler.inverse(forecast(model, x, [0], S, 3, "window"))[0, :, 0]
    np.testing.assert_allclose([float(r[2]) for r in rows[S:]], want, rtol=1e-6)
    assert json.loads((run_dir / "config.json").read_text())["config"]["data"] == f"csv:{path}"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("sine", r"data must be csv:PATH, got 'sine'"),
        ("csv: ", r"data must be csv:PATH, got 'csv: '"),
        (5, r"data must be csv:PATH, got 5"),
    ],
)
def test_forecast_run_data_must_be_a_csv_file(tmp_path, data, message) -> None:
    from nsteplstm.forecast import forecast_run

    path = tmp_path / "data.csv"
    path.write_text("v\n" + "\n".join(str(t % 9) for t in range(80)) + "\n")
    run_dir, _ = make_run(tmp_path, data=f"csv:{path}")
    with pytest.raises(InputError, match=message):
        forecast_run(run_dir, data=data)
    generated, _ = make_run(tmp_path, name="fib")
    with pytest.raises(
        InputError, match=r"the run in .*fib was trained on data = 'fibonacci'; only a run"
    ):
        forecast_run(generated, data=f"csv:{path}")
    assert not list(tmp_path.glob("*/forecast-*"))


@pytest.mark.parametrize(("starts", "inside"), [(1, 1), (31, 1), (32, 2)])
def test_few_starts_run_on_one_thread_and_the_setting_comes_back(monkeypatch, starts, inside):
    import nsteplstm.forecast as fc

    seen = []
    run = fc._window

    def window(*args):
        seen.append(torch.get_num_threads())
        return run(*args)

    def failing(*args):
        raise RuntimeError("boom")

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        monkeypatch.setattr(fc, "_window", window)
        forecast(make_model(), make_series(80), list(range(starts)), S, 2)
        assert seen == [inside] and torch.get_num_threads() == 2
        monkeypatch.setattr(fc, "_window", failing)
        with pytest.raises(RuntimeError, match="boom"):
            forecast(make_model(), make_series(80), list(range(starts)), S, 2)
        assert torch.get_num_threads() == 2  # back after a failure too
    finally:
        torch.set_num_threads(before)


def test_forecast_run_names_a_column_count_the_model_cannot_take(tmp_path) -> None:
    # It gave training's advice, "set both to 3 or choose csv_columns", which a
    # trained model cannot follow.
    from nsteplstm.forecast import forecast_run

    path = tmp_path / "two.csv"
    path.write_text("a,b\n" + "\n".join(f"{t % 7},{t % 5}" for t in range(80)) + "\n")
    run_dir, _ = make_run(tmp_path, data=f"csv:{path}", n_in=2, n_out=2)
    three = tmp_path / "three.csv"
    three.write_text("a,b,c\n" + "\n".join(f"{t % 7},{t % 5},1" for t in range(80)) + "\n")
    message = rf"{three}: 3 columns read, but the run's model takes 2; a forecast needs the"
    with pytest.raises(InputError, match=message):
        forecast_run(run_dir, data=f"csv:{three}")
    path.write_text(three.read_text())  # the run's own file, grown a column
    with pytest.raises(InputError, match=rf"{path}: 3 columns read, but the run's model takes 2"):
        forecast_run(run_dir)
    assert not list(run_dir.glob("forecast-*"))


def test_forecast_run_keeps_the_readers_hint_on_a_column_count(tmp_path) -> None:
    # 1,000.5 on every line of a headerless file reads as two columns: the reader's
    # hint, which says why, was dropped with training's advice.
    from nsteplstm.forecast import forecast_run

    path = tmp_path / "one.csv"
    path.write_text("".join(f"{t % 7}.5\n" for t in range(80)))
    run_dir, _ = make_run(tmp_path, data=f"csv:{path}")
    split = tmp_path / "split.csv"
    split.write_text("".join(f"{1 + t % 9},{t:03d}.5\n" for t in range(80)))
    with pytest.raises(InputError) as e:
        forecast_run(run_dir, data=f"csv:{split}")
    assert str(e.value).endswith(
        "a forecast needs the columns it was trained on; if the commas are thousands "
        "separators (1,000.5 on line 1 for 1000.5), write the numbers without them: commas "
        "separate columns"
    )


def test_forecast_run_needs_the_header_names_it_was_trained_on_in_order(tmp_path) -> None:
    # Columns were read by position: a file with its columns swapped or renamed was
    # forecast without a word.
    from nsteplstm import runs
    from nsteplstm.forecast import forecast_run

    rows = [f"{t % 7},{t % 5}" for t in range(80)]
    path = tmp_path / "ab.csv"
    path.write_text("a,b\n" + "\n".join(rows) + "\n")
    run_dir, _ = make_run(tmp_path, data=f"csv:{path}", n_in=2, n_out=2)
    assert runs.load_run(run_dir).data_header == {"columns": ["a", "b"], "series_id": None}
    for header, read in [
        ("b,a\n", "columns 'b', 'a'"),
        ("x,y\n", "columns 'x', 'y'"),
        ("", "no header"),
    ]:
        other = tmp_path / "other.csv"
        other.write_text(header + "\n".join(rows) + "\n")
        message = rf"^{other}: {read} read, but the run was trained on columns 'a', 'b'; a"
        with pytest.raises(InputError, match=message):
            forecast_run(run_dir, data=f"csv:{other}")
    assert not list(run_dir.glob("forecast-*"))
    other.write_text("a,b\n" + "\n".join(rows[:40]) + "\n")
    assert forecast_run(run_dir, horizon=3, data=f"csv:{other}")["points"] == 6
    unnamed = tmp_path / "unnamed"  # a run from before data_header: not checked
    unnamed.mkdir()
    for f in (runs.MODEL_FILE, runs.HISTORY_FILE, runs.METRICS_FILE):
        (unnamed / f).write_bytes((run_dir / f).read_bytes())
    doc = json.loads((run_dir / runs.CONFIG_FILE).read_text())
    del doc["data_header"]
    (unnamed / runs.CONFIG_FILE).write_text(json.dumps(doc))
    other.write_text("x,y\n" + "\n".join(rows) + "\n")
    assert forecast_run(unnamed, horizon=3, data=f"csv:{other}", force=True)["points"] == 6


def test_forecast_run_needs_the_series_id_column_it_was_trained_on(tmp_path) -> None:
    # With csv_series_id by index, a file whose id column had swapped places with
    # another was grouped by that column (every shop at one week as a "series").
    from nsteplstm.forecast import forecast_run

    rows = [(f"s{k}", str(t), str(t % 7 + k)) for k in range(2) for t in range(80)]
    path = tmp_path / "shops.csv"
    path.write_text("shop,week,units\n" + "".join(",".join(r) + "\n" for r in rows))
    settings = {"csv_series_id": 0, "csv_columns": ["units"]}
    run_dir, _ = make_run(tmp_path, data=f"csv:{path}", **settings)
    moved = tmp_path / "moved.csv"
    moved.write_text("week,shop,units\n" + "".join(f"{t},{s},{v}\n" for s, t, v in rows))
    message = rf"^{moved}: series ids read from column 'week', but the run's came from column"
    with pytest.raises(InputError, match=message):
        forecast_run(run_dir, data=f"csv:{moved}")
    assert not list(run_dir.glob("forecast-*"))
    assert forecast_run(run_dir, horizon=3, series="s1")["points"] == 3


def test_forecast_run_takes_a_numpy_integer_start(tmp_path) -> None:
    # It ran the forecast, then failed writing metrics.json: "int64 is not JSON serializable".
    from nsteplstm.forecast import forecast_run

    run_dir, _ = make_run(tmp_path)
    assert forecast_run(run_dir, horizon=3, start=np.int64(2))["start"] == 2
    result = forecast_run(run_dir, horizon=3, start=np.int32(-S), name="last")
    assert result["start"] == 80 - S and type(result["start"]) is int
