"""Tests of nsteplstm.data: series, adding problem, CSV reading, scaling, windows, splits."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nsteplstm.config import Config
from nsteplstm.data import (
    ColumnCountError,
    Scaler,
    adding_problem,
    fibonacci_mod,
    load_adding,
    load_dataset,
    load_series,
    make_windows,
    random_lengths,
    read_csv,
    sine,
    split_series,
)
from nsteplstm.errors import InputError


def write(tmp_path: Path, text: str | bytes, name: str = "d.csv") -> Path:
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return p


# ------------------------------------------------------------------ built-ins


def test_fibonacci_exact_against_big_integers() -> None:
    fib = [0, 1]
    while len(fib) < 5000:
        fib.append(fib[-1] + fib[-2])
    for value in (5, 7, 1000):
        got = fibonacci_mod(5000, value)
        assert got.dtype == np.float32 and got.shape == (5000,)
        assert got.tolist() == [float(f % value) for f in fib]


def test_fibonacci_mod5_has_period_20() -> None:
    f = fibonacci_mod(2000, 5)
    assert f[:20].tolist() == [0, 1, 1, 2, 3, 0, 3, 3, 1, 4, 0, 4, 4, 3, 2, 0, 2, 2, 4, 1]
    assert np.array_equal(f[20:], f[:-20])
    assert fibonacci_mod(3, 1).tolist() == [0, 0, 0]


def test_fibonacci_bad_arguments() -> None:
    with pytest.raises(InputError, match="value must be an integer >= 1, got 0"):
        fibonacci_mod(10, 0)
    with pytest.raises(
        InputError, match="total_size must be an integer >= 1 and <= 1e12, got 10.5"
    ):
        fibonacci_mod(10.5, 5)


def test_sine() -> None:
    s = sine(100, period=20.0)
    assert s.dtype == np.float32 and s.shape == (100,)
    np.testing.assert_allclose(s[5], 1.0, atol=1e-6)
    np.testing.assert_allclose(s[:80], s[20:], atol=1e-5)
    noisy = sine(1000, period=20.0, noise=0.5, seed=1)
    assert np.array_equal(noisy, sine(1000, period=20.0, noise=0.5, seed=1))
    assert 0.4 < float(np.std(noisy - sine(1000, period=20.0))) < 0.6


# ------------------------------------------------------------- adding problem


def test_adding_problem_masks_and_targets() -> None:
    xs, ys = adding_problem(500, 20, seed=3)
    assert ys.shape == (500,) and ys.dtype == np.float32
    for x, y in zip(xs, ys, strict=True):
        assert x.shape == (20, 2) and x.dtype == np.float32
        mask = x[:, 1]
        assert set(np.unique(mask).tolist()) == {0.0, 1.0}
        marked = np.flatnonzero(mask)
        assert len(marked) == 2 and marked[0] < 10 <= marked[1]
        assert np.all((x[:, 0] >= 0) & (x[:, 0] < 1))
        assert y == np.float32(x[marked[0], 0] + x[marked[1], 0])


def test_adding_problem_variable_lengths() -> None:
    xs, ys = adding_problem(400, 30, seed=0, min_length=2)
    lengths = np.array([len(x) for x in xs])
    assert lengths.min() >= 2 and lengths.max() <= 30 and len(set(lengths.tolist())) > 20
    for x, y in zip(xs, ys, strict=True):
        marked = np.flatnonzero(x[:, 1])
        half = len(x) // 2
        assert len(marked) == 2 and marked[0] < half <= marked[1] < len(x)
        assert y == np.float32(x[marked, 0].sum())


def test_adding_problem_baseline_mse() -> None:
    _, ys = adding_problem(10000, 30, seed=0)
    assert abs(float(np.mean((ys - 1.0) ** 2)) - 1 / 6) < 0.01


def test_adding_problem_bad_arguments() -> None:
    with pytest.raises(InputError, match="min_length = 1"):
        adding_problem(10, 30, min_length=1)
    with pytest.raises(InputError, match="min_length = 40"):
        adding_problem(10, 30, min_length=40)


def test_load_adding_split() -> None:
    cfg = Config.from_dict({"data": "adding", "adding_samples": 100, "min_length": 5}, "t")
    ds = load_adding(cfg)
    assert len(ds.train_x) == 90 and ds.train_y.shape == (90,)
    assert len(ds.val_x) == 10 and ds.val_y.shape == (10,)
    assert all(5 <= len(x) <= 30 and x.shape[1] == 2 for x in ds.train_x + ds.val_x)
    with pytest.raises(ValueError, match="load_adding"):
        load_dataset(cfg)


def test_random_lengths_are_uniform_and_stratified() -> None:
    lengths = random_lengths(1000, 3, 7, np.random.default_rng(0))
    assert lengths.dtype == np.int64 and lengths.shape == (1000,)
    assert np.bincount(lengths, minlength=8)[3:].tolist() == [200] * 5
    rng = np.random.default_rng(1)
    draws = np.stack([random_lengths(12, 3, 7, rng) for _ in range(20_000)])  # (R, 12)
    counts = np.apply_along_axis(np.bincount, 1, draws, minlength=8)[:, 3:]  # (R, 5)
    assert set(counts.min(1).tolist()) == {2} and set(counts.max(1).tolist()) == {3}
    # each place: uniform over the five lengths (4,000 expected per length)
    for place in (0, 5, 11):
        freq = np.bincount(draws[:, place], minlength=8)[3:]
        assert np.abs(freq - 4000).max() < 250, freq
    # which lengths get the extra place is drawn: every length gets it as often
    extra = (counts == 3).sum(0)  # 2 of 5 lengths per draw: 8,000 expected each
    assert np.abs(extra - 8000).max() < 300, extra
    # and the places are not in a fixed pattern: neighbours independent of each other
    same = (draws[:, 0] == draws[:, 1]).mean()  # (2 * 3 * 2 + 3 * 2 * 1) / (12 * 11)
    assert abs(same - 18 / 132) < 0.02, same
    with pytest.raises(InputError, match="min_length = 8, max_length = 7"):
        random_lengths(3, 8, 7, np.random.default_rng(0))


# ------------------------------------------------------------ windows, split


def test_make_windows_shape_content_shift() -> None:
    series = np.arange(20, dtype=np.float32).reshape(10, 2)
    x, y = make_windows(series, 3)
    assert x.shape == y.shape == (7, 3, 2) and x.dtype == y.dtype == np.float32
    for n in range(7):
        assert np.array_equal(x[n], series[n : n + 3])
        assert np.array_equal(y[n], series[n + 1 : n + 4])
    assert np.array_equal(x[:, 1:], y[:, :-1])
    x[0, 0, 0] = 99.0  # a copy, not a view of the series
    assert series[0, 0] == 0.0


def test_make_windows_too_short() -> None:
    with pytest.raises(InputError, match="series of 4 points is shorter than one window of 5"):
        make_windows(np.zeros((4, 1), dtype=np.float32), 4)
    x, _ = make_windows(np.zeros((5, 1), dtype=np.float32), 4)
    assert x.shape == (1, 4, 1)


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: fibonacci_mod(2**62, 5), "total_size"),
        (lambda: sine(2**63), "total_size"),  # once an empty series, silently
        (lambda: adding_problem(2**63, 5), "n_samples"),
    ],
)
def test_generated_data_sizes_numpy_cannot_hold_are_named(make, name: str) -> None:
    with pytest.raises(InputError, match=rf"^{name} must be an integer >= 1 and <= 1e12, got "):
        make()


def test_make_windows_and_split_series_name_what_they_were_given() -> None:
    with pytest.raises(InputError, match=r"2-D array \(T, F\) in numpy, got a list$"):
        make_windows([[1.0], [2.0], [3.0]], 2)
    with pytest.raises(InputError, match=r"2-D array \(T, F\), got \(3,\)$"):
        make_windows(np.zeros(3), 2)
    series = np.zeros((40, 1), dtype=np.float32)  # its rows are not 40 series
    with pytest.raises(InputError, match=r"got one array of shape \(40, 1\): pass \[series\]"):
        split_series(series, 0.9, 5)
    assert [len(p) for p in split_series([series], 0.5, 5)[0]] == [20]


def test_split_series_disjoint_and_time_ordered() -> None:
    s = np.arange(100, dtype=np.float32).reshape(100, 1)
    train, val = split_series([s], 0.9, 5)
    assert len(train) == len(val) == 1
    assert np.array_equal(train[0][:, 0], np.arange(90)) and np.array_equal(
        val[0][:, 0], 90 + np.arange(10)
    )
    tx, ty = make_windows(train[0], 5)
    vx, vy = make_windows(val[0], 5)
    train_points = set(tx.ravel()) | set(ty.ravel())
    val_points = set(vx.ravel()) | set(vy.ravel())
    assert not train_points & val_points


@pytest.mark.parametrize(("rate", "n_train"), [(0.29, 29), (0.57, 57), (0.58, 58), (0.9, 90)])
def test_split_takes_the_rate_as_written(rate: float, n_train: int) -> None:
    """0.29 * 100 is 28.999999999999996 in floats: the split gave 28 training points."""
    s = np.arange(100, dtype=np.float32).reshape(100, 1)
    train, val = split_series([s], rate, 5)
    assert (len(train[0]), len(val[0])) == (n_train, 100 - n_train)
    config = Config.from_dict({"split_rate": rate, "total_size": 100, "sequence_size": 5}, "t")
    assert load_dataset(config).train_x.shape[0] == n_train - 5  # windows of the train part
    adding = dict(data="adding", adding_samples=100, sequence_size=5, n_in=2, split_rate=rate)
    assert len(load_adding(Config.from_dict(adding, "t")).train_x) == n_train


@pytest.mark.parametrize(
    ("lengths", "rate", "size", "said"),
    [
        ([300], 0.9, 30, "(it splits into 270 training and 30 validation points)"),
        ([300, 120], 0.05, 30, "(the longest splits into 15 training and 285 validation"),
        ([40], 0.9, 30, "(it splits into 36 training and 4 validation points)"),
    ],
)
def test_split_series_says_the_sizes_and_settings_that_would_fit(lengths, rate, size, said):
    # It said only "leaves no validation window": a 300-point CSV at the defaults (30
    # validation points, one short of a window) gave no clue what to change.
    import re

    series = [np.zeros((n, 1), dtype=np.float32) for n in lengths]
    with pytest.raises(InputError) as info:
        split_series(series, rate, size)
    message = str(info.value)
    assert said in message
    hint = message.split("; try ")[1]
    tries = re.findall(
        r"(sequence_size|split_rate) (<=|>=) ([0-9.]+)(?: with split_rate ([0-9.]*[0-9]))?", hint
    )
    assert tries and "with split_rate 0.5" in hint  # an even split fits the most
    for key, _, value, at in tries:  # each suggestion gives both parts a window
        if key == "sequence_size":
            train, val = split_series(series, float(at or rate), int(value))
        else:
            train, val = split_series(series, float(value), size)
        assert train and val


def test_split_series_errors_and_short_parts() -> None:
    s = np.zeros((100, 1), dtype=np.float32)
    with pytest.raises(InputError, match=r"split_rate = 0.95 leaves no validation window.*\[100\]"):
        split_series([s], 0.95, 5)
    with pytest.raises(InputError, match=r"split_rate = 0.05 leaves no training window.*6 points"):
        split_series([s], 0.05, 5)
    train, val = split_series([s, s[:12]], 0.5, 5)
    assert [len(p) for p in train] == [50, 6] and [len(p) for p in val] == [50, 6]
    train, val = split_series([s, s[:8]], 0.5, 5)  # the short series' parts are dropped
    assert [len(p) for p in train] == [50] and [len(p) for p in val] == [50]


def test_load_dataset_fibonacci_article_shapes() -> None:
    ds = load_dataset(Config())
    assert ds.kind == "fibonacci" and ds.integer_valued and ds.scaler is None
    assert ds.train_x.shape == (1800 - 30, 30, 1) and ds.val_x.shape == (200 - 30, 30, 1)
    assert ds.train_x.dtype == np.float32 and ds.n_features == 1
    assert np.array_equal(ds.series[0][:, 0], fibonacci_mod(2000, 5))
    assert np.array_equal(ds.val_x[0, :, 0], fibonacci_mod(2000, 5)[1800:1830])


def test_load_dataset_sine() -> None:
    ds = load_dataset(Config.from_dict({"data": "sine", "total_size": 500}, "t"))
    assert ds.kind == "sine" and not ds.integer_valued and ds.scaler is None
    assert ds.train_x.shape == (450 - 30, 30, 1)


# ----------------------------------------------------------------------- CSV


def test_read_csv_header_auto_and_columns(tmp_path: Path) -> None:
    p = write(tmp_path, "t,a,b\n0,1.5,10\n1,2.5,20\n\n2,3.5,30\n")
    (all_cols,) = read_csv(p).values()
    assert all_cols.dtype == np.float64  # scaled in float64, then float32 for the model
    assert all_cols.tolist() == [[0, 1.5, 10], [1, 2.5, 20], [2, 3.5, 30]]
    (by_name,) = read_csv(p, columns=["b", "a"]).values()
    assert by_name.tolist() == [[10, 1.5], [20, 2.5], [30, 3.5]]
    (by_index,) = read_csv(p, columns=[2]).values()
    assert by_index.tolist() == [[10], [20], [30]]


def test_read_csv_no_header(tmp_path: Path) -> None:
    p = write(tmp_path, "1,2\n3,4\n")
    assert list(read_csv(p)) == [""]  # one series, no id
    (a,) = read_csv(p).values()
    assert a.tolist() == [[1, 2], [3, 4]]
    (b,) = read_csv(p, header=True).values()
    assert b.tolist() == [[3, 4]]
    with pytest.raises(InputError, match=r"column 'x' given by name but the file has no header"):
        read_csv(p, columns=["x"])


def test_read_csv_header_is_decided_by_the_data_columns(tmp_path: Path) -> None:
    # A first row whose id or date is text, but whose data columns are numbers, is data.
    p = write(tmp_path, "a,1\na,2\nb,10\n")
    got = {k: v.tolist() for k, v in read_csv(p, series_id=0).items()}
    assert got == {"a": [[1], [2]], "b": [[10]]}
    p = write(tmp_path, "2020-01-01,5\n2020-01-02,6\n")
    assert read_csv(p, columns=[1])[""].tolist() == [[5], [6]]
    p = write(tmp_path, ",v\n0,5\n1,6\n")  # pandas' to_csv: an empty cell over the index
    assert read_csv(p, columns=[1])[""].tolist() == [[5], [6]]
    p = write(tmp_path, "id,v\na,5\n")  # the data column's text makes it a header
    assert {k: v.tolist() for k, v in read_csv(p, series_id=0).items()} == {"a": [[5]]}


def test_read_csv_series_id(tmp_path: Path) -> None:
    p = write(tmp_path, "id,v\nb,1\nb,2\na,3\nb,4\na,5\nc,6\n")
    series = read_csv(p, series_id="id")
    assert list(series) == ["b", "a", "c"]  # ids in order of first appearance
    assert [s.tolist() for s in series.values()] == [[[1], [2], [4]], [[3], [5]], [[6]]]
    assert [s.tolist() for s in read_csv(p, series_id=0, columns=[1]).values()] == [
        [[1], [2], [4]],
        [[3], [5]],
        [[6]],
    ]
    with pytest.raises(InputError, match="both a data column and the series_id"):
        read_csv(p, series_id="id", columns=["id", "v"])


def test_read_csv_missing_and_empty(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(InputError, match=r"nope\.csv: file not found"):
        read_csv(missing)
    with pytest.raises(InputError, match=r"d\.csv: empty file"):
        read_csv(write(tmp_path, ""))
    with pytest.raises(InputError, match=r"empty file"):
        read_csv(write(tmp_path, "\n\n  \n"))
    with pytest.raises(InputError, match=r"no data rows after the header"):
        read_csv(write(tmp_path, "a,b\n"))
    with pytest.raises(InputError, match="is a directory, not a file"):
        read_csv(tmp_path)


def test_read_csv_refuses_what_is_not_a_file(not_a_file: Callable[[str], Path]) -> None:
    path = not_a_file("d.csv")
    with pytest.raises(InputError, match=f"^{path}: not a regular file"):
        read_csv(path)


def test_read_csv_missing_column_lists_available(tmp_path: Path) -> None:
    p = write(tmp_path, "a,b\n1,2\n")
    with pytest.raises(InputError, match=r"d\.csv: column 'c' not present \(available: 'a', 'b'\)"):
        read_csv(p, columns=["c"])
    with pytest.raises(InputError, match=r"column index 5 is not present.*2 columns: 'a', 'b'"):
        read_csv(p, columns=[5])
    with pytest.raises(InputError, match=r"series_id column 'id' not present"):
        read_csv(p, series_id="id")


def test_read_csv_refuses_one_column_named_twice(tmp_path: Path) -> None:
    # It once read the column twice: a model of n_in = 2 on two copies of one series.
    path = tmp_path / "a.csv"
    path.write_text("t,units,other\n1,2,3\n4,5,6\n")
    for columns, shown in ((["units", "units"], "'units', 'units'"), ([1, "units"], "1, 'units'")):
        with pytest.raises(InputError, match=rf"a.csv: columns {shown} name the same column"):
            read_csv(path, columns)
    assert read_csv(path, ["units", "other"])[""].tolist() == [[2.0, 3.0], [5.0, 6.0]]


def test_read_csv_non_numeric_names_line_and_column(tmp_path: Path) -> None:
    p = write(tmp_path, "a,b\n1,2\n3,oops\n")
    with pytest.raises(InputError) as e:
        read_csv(p)
    msg = str(e.value)
    assert "d.csv" in msg and "line 3" in msg and "column 'b'" in msg and "'oops'" in msg
    assert "\n" not in msg
    assert msg.endswith("; without columns every column is read)")  # e.g. a date column
    with pytest.raises(InputError, match=r"number \(expected a finite decimal number\)$"):
        read_csv(p, columns=["b"])  # chosen: no hint
    p = write(tmp_path, "1,2\n3,\n")
    with pytest.raises(InputError, match=r"line 2, column 1: '' is not a number"):
        read_csv(p)


@pytest.mark.parametrize("bad", ["nan", "inf", "-Infinity", "1e39"])
def test_read_csv_non_finite(tmp_path: Path, bad: str) -> None:
    p = write(tmp_path, f"a,b\n1,2\n\n{bad},3\n")
    with pytest.raises(InputError, match=rf"line 4, column 'a': '{bad}' is not finite"):
        read_csv(p)


def test_read_csv_not_utf8_ragged_and_malformed(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not UTF-8 text CSV"):
        read_csv(write(tmp_path, b"a,b\n1,\xff\xfe\n"))
    with pytest.raises(InputError, match="not UTF-8 text CSV"):
        read_csv(write(tmp_path, b"\x00\x01\x02"))
    with pytest.raises(InputError, match=r"line 3 has 3 cells, expected 2"):
        read_csv(write(tmp_path, "a,b\n1,2\n3,4,5\n"))
    with pytest.raises(InputError, match="malformed CSV"):
        read_csv(write(tmp_path, 'a,b\n1,"2\r3\n'))
    (bom,) = read_csv(write(tmp_path, b"\xef\xbb\xbfa,b\r\n1,2\r\n"), columns=["a"]).values()
    assert bom.tolist() == [[1]]


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    content=st.one_of(
        st.binary(max_size=200),
        st.text(alphabet='0123456789,.-e\n\r "abnif\x00', max_size=200).map(str.encode),
    ),
    header=st.sampled_from([None, True, False]),
    series_id=st.sampled_from([None, 0, "a"]),
)
def test_read_csv_any_bytes_gives_input_error_or_arrays(
    tmp_path: Path, content: bytes, header: bool | None, series_id: str | int | None
) -> None:
    p = write(tmp_path, content, "fuzz.csv")
    try:
        result = read_csv(p, header=header, series_id=series_id)
    except InputError as e:
        assert "\n" not in str(e)
        return
    arrays = list(result.values())
    assert arrays and all(a.dtype == np.float64 and a.ndim == 2 for a in arrays)
    assert all(np.isfinite(a).all() for a in arrays)


def test_load_dataset_csv_scaled_on_train_split(tmp_path: Path) -> None:
    rows = "\n".join(f"{k % 3},{2 * t}" for k in range(3) for t in range(40))
    p = write(tmp_path, "id,v\n" + rows + "\n")
    cfg = Config.from_dict(
        {"data": f"csv:{p}", "csv_series_id": "id", "sequence_size": 5, "split_rate": 0.5}, "t"
    )
    ds = load_dataset(cfg)
    assert ds.kind == "csv" and ds.integer_valued and ds.n_features == 1
    assert len(ds.series) == 3 and ds.series[0].shape == (40, 1)
    assert ds.series_ids == ["0", "1", "2"]
    assert ds.header == {"columns": ["v"], "series_id": "id"}
    assert ds.train_x.shape == (3 * (20 - 5), 5, 1) and ds.val_x.shape == (3 * 15, 5, 1)
    train_raw = np.arange(20, dtype=np.float32) * 2
    np.testing.assert_allclose(ds.scaler.mean, [train_raw.mean()], rtol=1e-6)
    np.testing.assert_allclose(ds.scaler.std, [train_raw.std()], rtol=1e-6)
    np.testing.assert_allclose(ds.scaler.inverse(ds.series[0])[:, 0], 2 * np.arange(40), atol=1e-4)
    unscaled = load_dataset(dataclasses.replace(cfg, scale="none"))
    assert unscaled.scaler is None and unscaled.series[0][-1, 0] == 78.0
    one = load_dataset(dataclasses.replace(cfg, csv_series_id=None, csv_columns=("v",)))
    assert one.series_ids is None and one.header == {"columns": ["v"], "series_id": None}
    headless = write(tmp_path, rows + "\n")
    assert (
        load_dataset(dataclasses.replace(cfg, data=f"csv:{headless}", csv_series_id=0)).header
        is None
    )


def test_a_csv_too_short_to_split_is_named(tmp_path: Path) -> None:
    p = write(tmp_path, "a\n" + "".join(f"{t}\n" for t in range(8)))
    config = Config.from_dict({"data": f"csv:{p}", "sequence_size": 3, "scale": "none"}, "t")
    with pytest.raises(InputError, match=rf"^data = 'csv:{p}': split_rate = 0.9 leaves no val"):
        load_dataset(config)


def test_load_dataset_csv_column_count_must_match_n_in(tmp_path: Path) -> None:
    p = write(tmp_path, "a,b\n" + "\n".join(f"{t}.5,{t}" for t in range(50)) + "\n")
    with pytest.raises(InputError, match=r"2 columns but n_in = 1 and n_out = 1; set both to 2"):
        load_dataset(Config.from_dict({"data": f"csv:{p}", "sequence_size": 3}, "t"))
    ds = load_dataset(
        Config.from_dict({"data": f"csv:{p}", "n_in": 2, "n_out": 2, "sequence_size": 3}, "t")
    )
    assert ds.n_features == 2 and not ds.integer_valued
    ds = load_dataset(
        Config.from_dict({"data": f"csv:{p}", "csv_columns": ["b"], "sequence_size": 3}, "t")
    )
    assert ds.n_features == 1 and ds.integer_valued


def test_integers_past_float32s_exact_range_are_not_integer_valued(tmp_path: Path) -> None:
    rows = [str(2**24 + 1 + t) for t in range(60)]  # the model's float32 cannot hold them
    p = write(tmp_path, "v\n" + "\n".join(rows) + "\n")
    ds = load_dataset(Config.from_dict({"data": f"csv:{p}", "sequence_size": 3}, "t"))
    assert not ds.integer_valued
    assert int(ds.unscaled[0][0, 0]) == 2**24 + 1  # as read; float32 would give 2**24


def test_load_dataset_keeps_the_series_as_read(tmp_path: Path) -> None:
    values = fibonacci_mod(300, 5).astype(int).tolist()
    p = write(tmp_path, "v\n" + "\n".join(map(str, values)) + "\n")
    ds = load_dataset(Config.from_dict({"data": f"csv:{p}", "sequence_size": 3}, "t"))
    assert ds.scaler is not None and ds.unscaled[0][:, 0].tolist() == values
    assert ds.scaler.inverse(ds.series[0])[:, 0].tolist() != values  # not exact in float32


# ----------------------------------------------------------------------- Scaler


def test_scaler_round_trip_and_constant_feature() -> None:
    rng = np.random.default_rng(0)
    a = np.stack([rng.normal(5, 3, 200), np.full(200, 7.0)], axis=1).astype(np.float32)
    sc = Scaler.fit([a[:150], a[150:]])
    z = sc.transform(a)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z[:, 0].mean(), 0, atol=1e-5)
    np.testing.assert_allclose(z[:, 0].std(), 1, atol=1e-5)
    assert sc.std[1] == 1.0 and np.all(z[:, 1] == 0)
    np.testing.assert_allclose(sc.inverse(z), a, atol=1e-5)
    back = Scaler.from_dict(json.loads(json.dumps(sc.to_dict())))
    assert np.array_equal(back.mean, sc.mean) and np.array_equal(back.std, sc.std)


@pytest.mark.parametrize(
    "bad",
    [
        [],
        {"mean": [1.0]},
        {"mean": [1.0], "std": [0.0]},
        {"mean": ["x"], "std": [1.0]},
        {"mean": [1.0, 2.0], "std": [1.0]},
        {"mean": [math.nan], "std": [1.0]},
    ],
)
def test_scaler_from_dict_errors(bad: object) -> None:
    with pytest.raises(InputError, match="run.json: scaler"):
        Scaler.from_dict(bad, "run.json")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: sine(10, period=0), r"period must be a finite number > 0, got 0"),
        (lambda: sine(10, noise=-1.0), r"noise must be a finite number >= 0, got -1.0"),
        (lambda: sine(0), "total_size must be an integer >= 1 and <= 1e12, got 0"),
        (lambda: random_lengths(-1, 2, 4, np.random.default_rng(0)), "n must be .* got -1"),
        (lambda: make_windows([[1.0], [2.0]], 1), r"series must be a 2-D array \(T, F\)"),
        (lambda: make_windows(np.zeros((5, 1)), 2.5), "sequence_size must be .* got 2.5"),
        # A negative rate once split at floor(-0.5 * T) from the end, silently.
        (lambda: split_series([np.zeros((100, 1))], -0.5, 10), r"split_rate must be .* \(0, 1\)"),
        (lambda: split_series([np.zeros((100, 1))], math.nan, 10), "got nan"),
        (lambda: split_series([np.zeros((100, 1))], 0.5, 0), "sequence_size must be"),
        (lambda: Scaler.fit([np.zeros((3, 1)), np.zeros((3, 2))]), r"one F, got shapes"),
        (
            lambda: Scaler.fit([np.random.rand(5, 2)]).transform(np.zeros((3, 3))),
            r"must end in 2 features, got shape \(3, 3\)",
        ),
    ],
)
def test_data_functions_check_their_arguments(call, message: str) -> None:
    with pytest.raises(InputError, match=message):
        call()


def test_read_csv_columns_must_be_a_list(tmp_path: Path) -> None:
    path = tmp_path / "u.csv"
    path.write_text("units\n1\n2\n")
    # A bare string was taken letter by letter: "column 'u' not present".
    with pytest.raises(InputError, match=r"columns must be a list .* got 'units'"):
        read_csv(path, columns="units")
    # Not a sequence at all: detecting the header took list(columns), a TypeError.
    for bad in (1, 1.5):
        with pytest.raises(InputError, match=rf"u\.csv: columns must be a list .* got {bad}$"):
            read_csv(path, columns=bad)  # type: ignore[arg-type]
    np.testing.assert_array_equal(read_csv(path, columns=["units"])[""][:, 0], [1, 2])


@pytest.mark.parametrize("settings", [dict(period=1e-320), dict(noise=1e300)])
def test_a_series_that_is_not_finite_in_float32_is_refused(settings: dict) -> None:
    # Both once trained on NaN and blamed the learning rate.
    config = Config(data="sine", total_size=300, sequence_size=10, **settings)
    refused = pytest.raises(InputError, match="data = 'sine' gives values that are not finite")
    with np.errstate(all="raise"), refused:  # and no NumPy warning on the way
        load_dataset(config)


def test_scaler_treats_a_spread_below_float32_as_none() -> None:
    tiny = np.array([[1e-45], [0.0]] * 5)  # std 7e-46: 0 in float32
    scaler = Scaler.fit([tiny])
    assert scaler.std[0] == 1.0
    assert np.isfinite(scaler.transform(tiny)).all()


def test_fibonacci_modulus_stays_exact_in_float32() -> None:
    with pytest.raises(InputError, match=r"value = 16777217 is out of range .* <= 2\*\*24"):
        Config.from_dict({"value": 2**24 + 1}, "test")
    assert fibonacci_mod(3, 2**24)[2] == 1.0


def test_seeds_and_scaler_inputs_are_checked() -> None:
    for bad in (-1, 1.5):
        with pytest.raises(InputError, match="seed must be an integer >= 0"):
            sine(5, noise=0.1, seed=bad)
        with pytest.raises(InputError, match="seed must be an integer >= 0"):
            adding_problem(3, 4, bad)
    with pytest.raises(InputError, match="non-empty list of .* got ndarray"):
        Scaler.fit(np.ones((5, 2)))
    for rows in (np.zeros((0, 2)), np.array([[1.0, np.nan]])):  # mean NaN, silently
        with pytest.raises(InputError, match="must hold rows, all finite"):
            Scaler.fit([rows])


def test_csv_is_scaled_in_float64(tmp_path: Path) -> None:
    import warnings

    # A signal on a large offset: read as float32 every value was 1e10, the signal lost.
    values = [1e10 + round(math.sin(t / 5), 4) for t in range(100)]
    p = write(tmp_path, "v\n" + "\n".join(repr(v) for v in values) + "\n", "offset.csv")
    ds = load_dataset(Config.from_dict({"data": f"csv:{p}", "sequence_size": 5}, "t"))
    assert ds.unscaled[0][:, 0].tolist() == values
    assert ds.series[0].dtype == np.float32 and 0.9 < float(ds.series[0].std()) < 1.1
    np.testing.assert_allclose(ds.scaler.inverse(ds.series[0])[:, 0], values, rtol=0, atol=1e-4)
    # Finite in float32, but x - mean overflowed in float32 (with a RuntimeWarning).
    span = [3e38 if (t // 10) % 2 else -3e38 for t in range(60)]
    p = write(tmp_path, "v\n" + "\n".join(map(repr, span)) + "\n", "span.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = load_dataset(Config.from_dict({"data": f"csv:{p}", "sequence_size": 5}, "t"))
    assert np.isfinite(ds.train_x).all() and float(np.abs(ds.train_x).max()) < 2


def test_a_row_of_empty_cells_is_a_missing_value_not_a_blank_line(tmp_path: Path) -> None:
    # Such rows were dropped without a word: every later time step moved one earlier.
    # Python's csv.writer writes one missing value as "" and several as ",".
    for text, line, column in (('t\n1\n""\n3\n', 3, "'t'"), ("a,b\n1,2\n,\n5,6\n", 3, "'a'")):
        with pytest.raises(InputError, match=rf"line {line}, column {column}: '' is not a number"):
            read_csv(write(tmp_path, text))
    # Blank lines (nothing, or white space alone) are still skipped, lines still counted.
    series = read_csv(write(tmp_path, "t\n1\n\n   \n2\r\n\r\n3\n"))[""]
    assert series[:, 0].tolist() == [1, 2, 3]
    with pytest.raises(InputError, match="line 5, column 't': 'x'"):
        read_csv(write(tmp_path, "t\n1\n\n  \nx\n"))


def test_a_first_row_with_an_empty_cell_is_data_not_a_header(tmp_path: Path) -> None:
    # An empty cell is no column name: the row was taken as the header and lost.
    path = write(tmp_path, "1,\n2,3\n4,5\n")
    for columns in (None, [1]):
        with pytest.raises(InputError, match=r"line 1, column 1: '' is not a number"):
            read_csv(path, columns)
    # pandas' to_csv writes an unnamed index column: an empty name beside real ones.
    assert read_csv(write(tmp_path, ",v\n0,1.5\n1,2.5\n"), ["v"])[""][:, 0].tolist() == [1.5, 2.5]


def test_every_row_needs_its_series_id(tmp_path: Path) -> None:
    # An empty id made a series named '' of its own, too short to train on.
    path = write(tmp_path, "shop,v\na,1\n,2\na,3\n")
    with pytest.raises(InputError, match=r"d\.csv: line 3, series_id column 'shop': empty"):
        read_csv(path, series_id="shop")


def test_read_csv_messages_stay_short_and_say_why(tmp_path: Path) -> None:
    wide = write(tmp_path, ",".join(f"c{i}" for i in range(2000)) + "\n" + "1," * 1999 + "1\n")
    with pytest.raises(InputError) as e:
        read_csv(wide, ["zz"])  # the message listed all 2000 names (229 kB at 20,000)
    shown = "(available: 'c0', 'c1', 'c2', 'c3', 'c4', ... (2000 columns in all))"
    assert str(e.value).endswith(shown)
    for sep, name in ((";", "semicolon"), ("\t", "tab")):
        path = write(tmp_path, f"a{sep}b\n1{sep}2\n")
        with pytest.raises(InputError, match=rf"the file looks {name}-separated, but only commas"):
            read_csv(path)
        # Named by a column of its header, it was only "not present (available: 'a;b')".
        with pytest.raises(InputError, match=rf"'b' not present .*; the file looks {name}-sep"):
            read_csv(path, ["b"])


def test_a_column_name_that_matches_twice_or_a_first_row_of_data_is_explained(
    tmp_path: Path,
) -> None:
    # "use an index" only: forecast, which takes the run's columns, cannot follow it.
    path = write(tmp_path, "date,units,units\nx,1,2\ny,3,4\n")
    message = r"column 'units' names several columns \(1, 2\); rename all but one, or give"
    with pytest.raises(InputError, match=message):
        read_csv(path, ["units"])
    # A file without header, its columns named: the first row was listed as the names.
    path = write(tmp_path, "2020-01-01,10.0,3\n2020-01-02,11.0,4\n")
    hint = r"not present \(available: '2020-01-01', '10.0', '3'\); the first row holds numbers: if"
    with pytest.raises(InputError, match=hint):
        read_csv(path, ["units"])
    with pytest.raises(InputError, match=r"'units' not present \(available: 'date', 'v'\)$"):
        read_csv(write(tmp_path, "date,v\nx,1\n"), ["units"])


def test_rows_digest_is_of_the_numbers_not_of_their_writing() -> None:
    from nsteplstm.data import rows_digest

    a = np.array([[0.0, 1.5], [2.0, -3.0]])
    assert rows_digest(a) == rows_digest(np.array([[-0.0, 1.5], [2, -3]], dtype=np.float32))
    assert rows_digest(a) != rows_digest(a[:1]) and rows_digest(a) != rows_digest(a + 1e-12)


def test_a_number_is_written_in_ascii_without_underscores(tmp_path: Path) -> None:
    # float() read "2_51" as 251 and full-width digits as digits, without a word.
    for cell in ("2_51", "\uff11\uff12"):
        with pytest.raises(InputError, match=rf"line 3, column 'v': '{cell}' is not a number"):
            read_csv(write(tmp_path, f"v\n1\n{cell}\n"))
    assert read_csv(write(tmp_path, "v\n+1.5e3\n-.5\n 7 \n"))[""][:, 0].tolist() == [1500, -0.5, 7]


def test_read_csv_checks_its_arguments(tmp_path: Path) -> None:
    path = write(tmp_path, "a,b\n1,2\n3,4\n")
    assert read_csv(path, [np.int64(1)])[""][:, 0].tolist() == [2, 4]  # was "must be a name"
    with pytest.raises(InputError, match=r"header must be None \(detect\), True or False, got 'no"):
        read_csv(path, header="no")  # truthy: the first row was taken as the header
    with pytest.raises(InputError, match="read_csv: path must be a file path, got NoneType"):
        read_csv(None)  # type: ignore[arg-type]


def test_decimal_commas_and_semicolons_are_suspected_where_the_columns_do_not_fit(
    tmp_path: Path,
) -> None:
    # A German export, 50,0 for 50.0, read as two columns of whole numbers; the advice
    # "set both to 2 or choose csv_columns" led to training on the whole parts alone.
    german = write(tmp_path, "".join(f"{50 + t},{t % 10}\n" for t in range(40)))
    config = {"data": f"csv:{german}", "sequence_size": 3}
    hint = "; if the commas are decimal commas (50,0 for 50.0), write the numbers with decimal"
    advice = "set both to 2 (--n-in 2 --n-out 2) or choose csv_columns (--csv-columns)"
    with pytest.raises(InputError, match=re.escape(advice + hint)):
        load_dataset(Config.from_dict(config, "t"))
    signed = write(tmp_path, "".join(f"{50 + t},{-t}\n" for t in range(40)))  # not decimals
    with pytest.raises(InputError, match=r"choose csv_columns \(--csv-columns\)$"):
        load_dataset(Config.from_dict({**config, "data": f"csv:{signed}"}, "t"))
    named = write(tmp_path, "units\n50,0\n53,3\n")  # with a header: a row too long
    with pytest.raises(InputError) as e:
        read_csv(named)
    assert str(e.value).endswith(
        "line 2 has 2 cells, expected 1 (as in line 1); if 50,0 is one number with a decimal "
        "comma, write it with a decimal point: commas separate columns"
    )
    # Semicolons with decimal commas: the split cells held no ';' to tell it.
    semicolons = write(tmp_path, "Datum;Umsatz\n01.01.2022;50,0\n02.01.2022;53,3\n")
    said = "; the file looks semicolon-separated, but only commas separate columns"
    for columns, error in ((None, "line 2 has 2 cells, expected 1 (as in line 1)"),
                           ([1], "column index 1 is not present (the file has 1 column: "
                                 "'Datum;Umsatz')")):  # fmt: skip
        with pytest.raises(InputError) as e:
            read_csv(semicolons, columns)
        assert str(e.value).endswith(error + said)


def test_a_column_name_the_reader_cannot_take_says_how_to_give_it(tmp_path: Path) -> None:
    path = write(tmp_path, "date,units\nx,1\ny,2\n")
    # It said "add the header row" to a file that has one, read without it as told.
    with pytest.raises(InputError) as e:
        read_csv(path, ["units"], header=False)
    assert str(e.value).endswith(
        "column 'units' given by name but the file has no header (header=False reads the "
        "first row as data: pass True, or None to detect it, or use 0-based indices 0..1)"
    )
    # A Config's csv_header is named by its key and its flag: which was given is not known.
    config = Config.from_dict(
        {"data": f"csv:{path}", "csv_columns": ["units"], "csv_header": False}, "t"
    )
    with pytest.raises(InputError) as e:
        load_dataset(config)
    assert str(e.value).endswith(
        "(csv_header = false (--csv-header false) reads the first row as data: set it to "
        "true, or leave it out to detect the header, or use 0-based indices 0..1)"
    )
    # A header of years: the command line's 2021 is an index, which it did not say.
    years = write(tmp_path, "2020,2021\n50.5,51.5\n52.5,53.5\n")
    said = "; the first row has a cell '2021', but a number here is an index: to name it, "
    for header in (None, True):
        config = Config.from_dict({"data": f"csv:{years}", "csv_columns": [2021]}, "t")
        if header:
            config = dataclasses.replace(config, csv_header=True)
        with pytest.raises(InputError) as e:
            load_dataset(config)
        assert str(e.value).endswith(
            said + 'set csv_columns = ["2021"] and csv_header = true in a TOML file'
        )
        # read_csv's caller has no TOML file: it was told so, and of csv_columns.
        with pytest.raises(InputError) as e:
            read_csv(years, [2021], header=header)
        assert str(e.value).endswith(said + 'pass columns=["2021"] and header=True')
    assert read_csv(years, ["2021"], header=True)[""].tolist() == [[51.5], [53.5]]


def test_a_file_that_is_not_utf8_names_the_line_and_the_byte(tmp_path: Path) -> None:
    # The offset was counted after the byte-order mark (here 7, not 10), with no line.
    latin1 = write(tmp_path, b"\xef\xbb\xbfv\r\n1\r\n2\xe9\r\n")
    with pytest.raises(InputError) as e:
        read_csv(latin1)
    assert str(e.value).endswith(": line 3: not UTF-8 text CSV (invalid byte 0xe9 at offset 10)")
    # Lines end as the CSV reader ends them (a lone \r too), so its line numbers agree.
    for bad, said in ((b"\xe9", "invalid byte 0xe9"), (b"\x00", "contains NUL bytes")):
        with pytest.raises(InputError, match=rf"d\.csv: line 3: not UTF-8 text CSV \({said}"):
            read_csv(write(tmp_path, b"v\r1\r" + bad + b"\r"))
    with pytest.raises(InputError, match=r"d\.csv: line 3, column 'v': 'x' is not a number"):
        read_csv(write(tmp_path, b"v\r1\rx\r"))
    # Windows PowerShell's `>` and Excel's "Unicode Text" write UTF-16: "invalid byte at
    # offset 0" did not say so.
    for encoding in ("utf-16-le", "utf-16-be"):
        utf16 = write(tmp_path, "\ufeffv\n1\n2\n".encode(encoding))
        with pytest.raises(InputError) as e:
            read_csv(utf16)
        assert str(e.value) == (
            f"{utf16}: line 1: not UTF-8 text CSV (UTF-16, by its byte-order mark; "
            "save it as UTF-8)"
        )


def test_a_row_of_one_cell_is_one_cell(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"line 3 has 1 cell, expected 2 \(as in line 1\)$"):
        read_csv(write(tmp_path, "a,b\n1,2\n3\n"))


def test_digits_that_are_not_ascii_are_no_number_to_any_check(tmp_path: Path) -> None:
    # The decimal-comma hint took "٣,٥" (Arabic-Indic digits) for 3,5, whole numbers, and
    # advised writing "٣.٥", which the reader refuses as not a number like "٣" itself.
    with pytest.raises(InputError) as e:
        read_csv(write(tmp_path, "units\n50\n\u0663,\u0665\n"))
    assert str(e.value).endswith("line 3 has 2 cells, expected 1 (as in line 1)")
    # So a first row of such digits is a header, as the reader could not read it as data.
    assert read_csv(write(tmp_path, "\u0663\n1\n2\n"), ["\u0663"])[""].tolist() == [[1], [2]]


GROUPED = (
    "it looks like a number with thousands separators: write numbers without them and with "
    "a decimal point: 1234.5, not 1,234.5 or 1 234,5"
)
DECIMAL_COMMA = (
    "it looks like a number with a decimal comma: write numbers with a decimal point: "
    "1234.5, not 1234,5"
)


@pytest.mark.parametrize(
    ("written", "shown", "said"),
    [
        ('"1,000.5"', "'1,000.5'", GROUPED),
        ('"1.234,5"', "'1.234,5'", GROUPED),
        ("1 000.5", "'1 000.5'", GROUPED),
        ('"1\u00a0000,5"', "'1\\xa0000,5'", GROUPED),  # French Excel's no-break space
        ('"1,000"', "'1,000'", GROUPED),  # or a decimal comma: the advice is the same
        (
            '"12,5"',
            "'12,5'",
            "it looks like a number with a decimal comma: write numbers with a decimal point: "
            "1234.5, not 1234,5",
        ),
    ],
)
def test_a_cell_with_thousands_separators_or_a_decimal_comma_is_named_and_explained(
    tmp_path: Path, written: str, shown: str, said: str
) -> None:
    # Such a cell was only "not a number"; it is not read as one (1,000 may be 1 or 1000).
    path = write(tmp_path, f"date,sales\nx,1.5\ny,{written}\n")
    with pytest.raises(InputError) as e:
        read_csv(path, ["sales"])
    assert str(e.value) == (
        f"{path}: line 3, column 'sales': {shown} is not a number (expected a finite decimal "
        f"number; {said})"
    )
    for other in ("x", "1e3.5", "2020-01-01", "10:30", "1,2,3"):  # no number format to suggest
        path = write(tmp_path, f'date,sales\nx,1.5\ny,"{other}"\n')
        with pytest.raises(InputError, match=r"a number \(expected a finite decimal number\)$"):
            read_csv(path, ["sales"])


@pytest.mark.parametrize(
    ("row", "said"),
    [
        ("y,1,000.5", "if 1,000.5 in column 'sales' is one number with thousands separators, "
                      "write it without them, 1000.5: commas separate columns"),
        ("y,-12,345,678.25", "if -12,345,678.25 in column 'sales' is one number with "
                             "thousands separators, write it without them, -12345678.25: "
                             "commas separate columns"),
        ("y,1,234", "if 1,234 in column 'sales' is one number, write it 1234 (a thousands "
                    "separator) or 1.234 (a decimal comma): commas separate columns"),
    ],
)  # fmt: skip
def test_a_number_split_at_its_thousands_separators_is_suspected(
    tmp_path: Path, row: str, said: str
) -> None:
    # Unquoted, 1,000.5 is two cells, 1 and 000.5: the row was only "too long".
    path = write(tmp_path, f"date,sales\nx,1.5\n{row}\n")
    with pytest.raises(InputError) as e:
        read_csv(path, ["sales"])
    n = row.count(",") + 1
    assert str(e.value) == f"{path}: line 3 has {n} cells, expected 2 (as in line 1); {said}"


@pytest.mark.parametrize(
    "row",
    [
        "y,0,500",  # a leading zero: a decimal comma (its own hint), not a thousand
        "y,1,0005",  # a group of 4 digits
        "y,1,50",  # a group of 2 digits
        "y,1234,567",  # a first group of 4 digits
        "y,$1,000",  # a currency sign before it: not guessed
    ],
)
def test_a_row_too_long_without_a_split_thousand_gets_no_thousands_hint(
    tmp_path: Path, row: str
) -> None:
    path = write(tmp_path, f"date,sales\nx,1.5\n{row}\n")
    with pytest.raises(InputError, match=r"line 3 has \d cells, expected 2") as e:
        read_csv(path, ["sales"])
    assert "thousands separator" not in str(e.value)


def test_a_split_thousand_is_named_only_where_the_row_has_cells_enough_to_spare(
    tmp_path: Path,
) -> None:
    # 1,234,567 would join three cells where the row has one too many (and a group
    # inside it, 234,567, is not tried): only the hint for rows of whole numbers.
    path = write(tmp_path, "a,b,c\n1,234,567,8\n")
    with pytest.raises(InputError) as e:
        read_csv(path)
    assert str(e.value).endswith(
        "line 2 has 4 cells, expected 3 (as in line 1); if 1,234 is one number with a "
        "decimal comma, write it with a decimal point: commas separate columns"
    )
    # Without a header the column is its index.
    path = write(tmp_path, "1.5,2\n3,1,000.5\n")
    with pytest.raises(InputError, match=r"; if 1,000\.5 in column 1 is one number with"):
        read_csv(path)


@pytest.mark.parametrize(
    ("first", "said"),
    [
        ("1,000.5", "if 1,000.5 on line 1 is one number with thousands separators, write it "
                    "without them, 1000.5: commas separate columns"),
        ("-12,345,678.25", "if -12,345,678.25 on line 1 is one number with thousands "
                           "separators, write it without them, -12345678.25: commas "
                           "separate columns"),
        ("1,234", "if 1,234 on line 1 is one number, write it 1234 (a thousands separator) "
                  "or 1.234 (a decimal comma): commas separate columns"),
        ("50,3", "if 50,3 on line 1 is one number with a decimal comma, write it with a "
                 "decimal point: commas separate columns"),
    ],
)  # fmt: skip
def test_a_first_row_split_at_its_commas_is_suspected_beside_a_shorter_row(
    tmp_path: Path, first: str, said: str
) -> None:
    # Without a header, line 1's 1,000.5 made the file two columns: every later row was
    # "too short", without a word of the number.
    path = write(tmp_path, f"{first}\n2.5\n3.5\n")
    n = first.count(",") + 1
    for header in (None, False):
        with pytest.raises(InputError) as e:
            read_csv(path, header=header)
        assert str(e.value) == f"{path}: line 2 has 1 cell, expected {n} (as in line 1); {said}"
    config = Config.from_dict({"data": f"csv:{path}", "csv_header": False}, "t")
    with pytest.raises(InputError) as e:
        load_dataset(config)
    assert str(e.value).endswith(f"; {said}")


def test_a_row_shorter_than_the_first_is_not_told_of_its_own_decimal_commas(
    tmp_path: Path,
) -> None:
    # Joining 1,2 makes a row that is one cell short two cells short: the hint said it.
    for text in ("a,b,c\n1,2\n", "x,1.5,2.5\n1,2\n"):
        path = write(tmp_path, text)
        with pytest.raises(InputError) as e:
            read_csv(path)
        assert str(e.value) == f"{path}: line 2 has 2 cells, expected 3 (as in line 1)"
    # A header is no number: its names are not suspected of being one.
    path = write(tmp_path, "1,000\n2.5\n")
    with pytest.raises(InputError) as e:
        read_csv(path, header=True)
    assert str(e.value) == f"{path}: line 2 has 1 cell, expected 2 (as in line 1)"


def test_a_number_split_at_its_thousands_separators_on_every_line_is_suspected(
    tmp_path: Path,
) -> None:
    # 1,000.5 on every line of a file without a header reads as two columns, 1 and
    # 000.5, with no row of another length: the column count's advice (both to 2, or
    # choose csv_columns) trained on the halves of the numbers, without a word.
    rows = [f"{1 + t % 9},{t:03d}.5" for t in range(40)]
    path = write(tmp_path, "\n".join(rows) + "\n")
    config = {"data": f"csv:{path}", "sequence_size": 3}
    said = (
        "; if the commas are thousands separators (1,000.5 on line 1 for 1000.5), write the "
        "numbers without them: commas separate columns"
    )
    with pytest.raises(ColumnCountError) as e:
        load_dataset(Config.from_dict(config, "t"))
    assert str(e.value).endswith("choose csv_columns (--csv-columns)" + said)
    assert e.value.hint == said  # for the messages of a model already trained
    # An id column beside them is no part of the number; three groups are one number too.
    ids = write(tmp_path, "".join(f"s,{r}\n" for r in rows), "ids.csv")
    with pytest.raises(ColumnCountError, match=re.escape(said) + "$"):
        load_dataset(Config.from_dict({**config, "data": f"csv:{ids}", "csv_series_id": 0}, "t"))
    millions = "".join(f"-{1 + t % 9},{t:03d},500.25\n" for t in range(40))
    with pytest.raises(ColumnCountError) as e:
        load_dataset(Config.from_dict({**config, "data": f"csv:{write(tmp_path, millions)}"}, "t"))
    assert e.value.hint == (
        "; if the commas are thousands separators (-1,000,500.25 on line 1 for -1000500.25), "
        "write the numbers without them: commas separate columns"
    )
    # 1,234 on every line may be a thousand or a decimal comma; it had only the latter.
    whole = "".join(f"{1 + t % 9},{t:03d}\n" for t in range(40))
    with pytest.raises(ColumnCountError) as e:
        load_dataset(Config.from_dict({**config, "data": f"csv:{write(tmp_path, whole)}"}, "t"))
    assert str(e.value).endswith(
        "; if the commas are thousands separators or decimal commas (1,000 on line 1 for 1000 "
        "or 1.000), write the numbers without thousands separators and with decimal points: "
        "commas separate columns"
    )


@pytest.mark.parametrize(
    "text",
    [
        "a,b\n" + "".join(f"{1 + t % 9},{t:03d}.5\n" for t in range(40)),  # a header: columns
        "".join(f"{1 + t % 9},{t:03d}.5\n" for t in range(39)) + "2,50.5\n",  # one is not
        "".join(f"{1 + t % 9},{t:03d}.5\n" for t in range(39)) + "0,500.5\n",
        "".join(f"{1 + t % 9},s,{t:03d}.5\n" for t in range(40)),  # not adjacent
    ],
    ids=["header", "two-digit-group", "leading-zero", "not-adjacent"],
)
def test_numbers_not_split_on_every_line_are_not_suspected(tmp_path: Path, text: str) -> None:
    series_id = 1 if ",s," in text else None
    config = {"data": f"csv:{write(tmp_path, text)}", "sequence_size": 3}
    with pytest.raises(ColumnCountError) as e:
        load_dataset(Config.from_dict({**config, "csv_series_id": series_id}, "t"))
    assert "thousands" not in str(e.value) and e.value.hint == ""


@pytest.mark.parametrize(
    ("cell", "said"),
    [
        ("€12.5", "remove the currency sign: numbers must be plain, write 12.5"),
        ("$12", "remove the currency sign: numbers must be plain, write 12"),
        ("-$3", "remove the currency sign: numbers must be plain, write -3"),
        ("12.5 €", "remove the currency sign: numbers must be plain, write 12.5"),
        ("12,5\u00a0€", "remove the currency sign: numbers must be plain; " + DECIMAL_COMMA),
        ("£3", "remove the currency sign: numbers must be plain, write 3"),
        ("¥1,234,567", "remove the currency sign: numbers must be plain; " + GROUPED),
        ("12%", "remove the percent sign: numbers must be plain, write 12 or 0.12"),
        ("-5 %", "remove the percent sign: numbers must be plain, write -5 or -0.05"),
        ("2.5e1%", "remove the percent sign: numbers must be plain, write 2.5e1"),
    ],
)
def test_a_currency_or_percent_sign_is_named_and_explained(
    tmp_path: Path, cell: str, said: str
) -> None:
    # Such a cell was only "not a number".
    path = write(tmp_path, f'date,sales\nx,1.5\ny,"{cell}"\n')
    with pytest.raises(InputError) as e:
        read_csv(path, ["sales"])
    assert str(e.value) == (
        f"{path}: line 3, column 'sales': {cell!r} is not a number (expected a finite "
        f"decimal number; {said})"
    )


@pytest.mark.parametrize("cell", ["%", "€", "nan%", "inf €", "x%", "12 USD", "12%%", "1\n2%"])
def test_a_sign_beside_what_is_no_number_gets_no_hint(tmp_path: Path, cell: str) -> None:
    path = write(tmp_path, f'date,sales\nx,1.5\ny,"{cell}"\n')
    with pytest.raises(InputError, match=r"a number \(expected a finite decimal number\)$"):
        read_csv(path, ["sales"])


def test_series_id_errors_name_the_setting_of_a_config_and_the_argument_of_read_csv(
    tmp_path: Path,
) -> None:
    # A Config's said "series_id column", read_csv's argument; a header of years told
    # a series_id to set csv_columns, and read_csv's caller to write a TOML file.
    shops = write(tmp_path, "shop,v\na,1\nb,2\n", "shops.csv")
    years = write(tmp_path, "2020,2021\n1,2\n3,4\n", "years.csv")
    index = "; the first row has a cell '2021', but a number here is an index: to name it, "
    cases = [
        (shops, "zz", "column 'zz' not present (available: 'shop', 'v')", "", ""),
        (shops, 5, "column index 5 is not present (the file has 2 columns: 'shop', 'v')", "", ""),
        (
            years,
            2021,
            "column index 2021 is not present (the file has 2 columns: indices 0..1)" + index,
            'set csv_series_id = "2021" and csv_header = true in a TOML file',
            'pass series_id="2021" and header=True',
        ),
    ]
    for path, series_id, message, in_config, in_python in cases:
        with pytest.raises(InputError) as e:
            load_series(Config.merged(None, {"data": f"csv:{path}", "csv_series_id": series_id}))
        assert str(e.value) == f"{path}: csv_series_id (--csv-series-id) {message}{in_config}"
        with pytest.raises(InputError) as e:
            read_csv(path, series_id=series_id)
        assert str(e.value) == f"{path}: series_id {message}{in_python}"
    by_id = read_csv(years, series_id="2021", header=True)  # as the hint says
    assert {k: v.tolist() for k, v in by_id.items()} == {"2": [[1.0]], "4": [[3.0]]}


def test_excel_separator_line_sep_comma_is_read_and_another_is_refused(tmp_path: Path) -> None:
    # Excel's first line "sep=," was read as a header "sep=", "" and the real header as data.
    path = write(tmp_path, "\ufeffsep=,\r\na,b\r\n1,2\r\n3,4\r\n")
    assert read_csv(path)[""].tolist() == [[1, 2], [3, 4]]
    assert read_csv(path, ["b"])[""].tolist() == [[2], [4]]
    with pytest.raises(InputError, match=r"d\.csv: line 4, column 'a': 'x' is not a number"):
        read_csv(write(tmp_path, "SEP=,\na,b\n1,2\nx,4\n"))  # the lines keep their numbers
    with pytest.raises(InputError, match=r"d\.csv: empty file \(no rows\)$"):
        read_csv(write(tmp_path, "sep=,\n"))
    for sep, shown in ((";", "';'"), ("\t", "'\\\\t'")):
        path = write(tmp_path, f"sep={sep}\na{sep}b\n1{sep}2\n")
        with pytest.raises(InputError) as e:
            read_csv(path)
        assert str(e.value) == (
            f"{path}: line 1: 'sep={shown[1:-1]}' declares {shown} as the column separator "
            "(Excel's separator line), but only commas separate columns: save the file as "
            "comma-separated CSV, with decimal points"
        ).replace("\\\\", "\\")
    # Only the whole first line is Excel's: a column named so is a column.
    assert read_csv(write(tmp_path, "sep=x,v\n1,2\n"), ["v"])[""].tolist() == [[2]]


def test_a_comma_ending_every_line_is_an_empty_column_that_is_not_read(
    tmp_path: Path,
) -> None:
    # Some exporters end every line with a comma: the unnamed empty last column was read,
    # and refused as "column '': '' is not a number".
    for text in ("a,b,\n1,2,\n3,4,\n", "1,2,\n3,4,\n", 'a,b,\n1,2,""\n3,4,\n'):
        assert read_csv(write(tmp_path, text))[""].tolist() == [[1, 2], [3, 4]]
    by_id = read_csv(write(tmp_path, "shop,v,\nx,1,\ny,2,\n"), series_id="shop")
    assert {k: v.tolist() for k, v in by_id.items()} == {"x": [[1]], "y": [[2]]}
    # A gap in a named column is still a missing value.
    with pytest.raises(InputError, match=r"line 3, column 'b': '' is not a number"):
        read_csv(write(tmp_path, "a,b,\n1,2,\n3,,\n"))
    # A last column that is named, holds a value or was asked for is read, as before.
    for text, columns in (("a,b,c\n1,2,\n3,4,\n", None), ("a,b,\n1,2,\n3,4,5\n", None),
                          ("a,b,\n1,2,\n3,4,\n", [0, 2]), ("v,\n,\n,\n", None)):  # fmt: skip
        with pytest.raises(InputError, match=r"line 2, column .*: '' is not a number"):
            read_csv(write(tmp_path, text), columns)
    # The comma ending only some lines is named.
    with pytest.raises(InputError) as e:
        read_csv(write(tmp_path, "a,b\n1,2\n3,4,\n"))
    assert str(e.value).endswith(
        "line 3 has 3 cells, expected 2 (as in line 1); line 3 ends in a comma (an empty last "
        "cell), line 1 does not"
    )
    with pytest.raises(InputError) as e:
        read_csv(write(tmp_path, "a,b,\n1,2,\n3,4\n"))
    assert str(e.value).endswith(
        "line 3 has 2 cells, expected 3 (as in line 1); line 1 ends in a comma (an empty last "
        "cell), line 3 does not"
    )


@pytest.mark.parametrize("value", [0.1, 1e6 + 0.1, 0.3, 123456.789, -2.5e-300])
def test_a_constant_feature_whose_mean_is_inexact_is_constant(value: float) -> None:
    # Its mean was not exact in float64, so its std was ~1e-17 of it instead of 0: the
    # feature was scaled by ~1e16 and its values became +-1.
    for n in (7, 90, 1000):
        rows = np.stack([np.full(n, value), np.arange(n, dtype=np.float64)], axis=1)
        scaler = Scaler.fit([rows[: n // 2], rows[n // 2 :]])
        assert scaler.std[0] == 1.0 and scaler.mean[0] == value
        assert np.all(scaler.transform(rows)[:, 0] == 0)
        assert scaler.std[1] == np.arange(n).std()


def test_a_spread_of_a_few_ulps_is_none_and_a_15th_digit_is_a_spread() -> None:
    # 0.1 + 0.2 is 0.30000000000000004: rounding, not a signal to scale by 1e17.
    noisy = np.array([[0.3], [0.1 + 0.2], [0.3], [0.1 + 0.2]])
    assert Scaler.fit([noisy]).std[0] == 1.0
    assert np.abs(Scaler.fit([noisy]).transform(noisy)).max() < 1e-15
    # Values that differ within 15 significant digits, near the tolerance, are scaled.
    for a, b in (("1", "0.999999999999999"), ("9.65450440513795e-10", "9.65450440513796e-10")):
        rows = np.array([[float(a)], [float(b)]] * 3)
        scaler = Scaler.fit([rows])
        z = scaler.transform(rows)[:, 0]  # +-1 up to the values' own rounding
        assert scaler.std[0] != 1.0 and np.all(np.abs(z) > 0.5) and np.all(z[::2] * z[1::2] < 0)


def test_messages_show_numpy_numbers_as_numbers(tmp_path: Path) -> None:
    # They said "got np.float64(-1.0)", which no user wrote.
    with pytest.raises(InputError, match=r"period must be a finite number > 0, got -1\.0$"):
        sine(10, period=np.float64(-1))
    with pytest.raises(InputError, match=r"noise must be a finite number >= 0, got -0\.5$"):
        sine(10, noise=np.float32(-0.5))
    with pytest.raises(InputError, match=r"split_rate must be a number in \(0, 1\), got 1\.5$"):
        split_series([np.zeros((20, 1))], np.float64(1.5), 3)
    path = write(tmp_path, "a,b\n1,2\n3,4\n")
    with pytest.raises(InputError, match=r"column 1\.0 must be a column name or a 0-based index"):
        read_csv(path, [np.float64(1.0)])
    # A NumPy bool is a bool, as check_bool takes it (np.True_ was refused).
    assert read_csv(path, header=np.bool_(True))[""].tolist() == [[1, 2], [3, 4]]
    with pytest.raises(InputError, match=r"'a' given by name but .*\(header=False reads"):
        read_csv(path, ["a"], header=np.False_)


# The CSV errors of settings: a Config's are named by key and flag (where each was
# given is not known once the Config is built), read_csv's by its arguments.


def _train_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The one stderr line of ``nsteplstm train --out TMP/run ARGV``, which must fail
    with exit code 2 and create no run."""
    from nsteplstm.cli import main

    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--epochs", "1", *argv]) == 2
    assert not out.exists()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nsteplstm train: error: ")
    return err.strip()


def test_a_column_count_error_names_the_flags_too(tmp_path: Path, capsys) -> None:
    # It said "set both to 2 or choose csv_columns", keys a command line has no use for.
    p = write(tmp_path, "a,b\n" + "".join(f"{t % 7}.5,{t % 5}\n" for t in range(60)))
    assert _train_error(tmp_path, capsys, "--data", f"csv:{p}").endswith(
        f"{p}: the data has 2 columns but n_in = 1 and n_out = 1; set both to 2 "
        "(--n-in 2 --n-out 2) or choose csv_columns (--csv-columns)"
    )


def test_a_cell_error_says_every_column_is_read_only_where_columns_can_be_chosen(
    tmp_path: Path, capsys
) -> None:
    rows = "".join(f"{t % 7},{t % 5}\n" for t in range(40))
    two = write(tmp_path, "a,b\n" + rows + "1,x\n", "two.csv")
    argv = ["--data", f"csv:{two}", "--n-in", "2", "--n-out", "2"]
    assert _train_error(tmp_path, capsys, *argv).endswith(
        f"{two}: line 42, column 'b': 'x' is not a number (expected a finite decimal "
        "number; without csv_columns (--csv-columns) every column is read)"
    )
    with pytest.raises(InputError, match=r"; without columns every column is read\)$"):
        read_csv(two)
    # One data column (alone, or beside the series_id): choosing columns cannot help.
    one = write(tmp_path, "a\n1\n2\nx\n", "one.csv")
    assert _train_error(tmp_path, capsys, "--data", f"csv:{one}").endswith(
        f"{one}: line 4, column 'a': 'x' is not a number (expected a finite decimal number)"
    )
    with pytest.raises(
        InputError, match=r"'x' is not a number \(expected a finite decimal number\)$"
    ):
        read_csv(two, series_id="a")


def test_a_column_both_data_and_series_id_is_named_as_given(tmp_path: Path, capsys) -> None:
    # It said "column 0 is both a data column and the series_id": neither the name
    # given nor the settings to change.
    p = write(tmp_path, "shop,units\n" + "".join(f"s{t % 2},{t}\n" for t in range(40)))
    both = "is both a data column and the series_id"
    fix = (
        "drop it from csv_columns (--csv-columns) or choose another csv_series_id (--csv-series-id)"
    )
    argv = ["--data", f"csv:{p}", "--csv-columns", "shop,units"]
    assert _train_error(tmp_path, capsys, *argv, "--csv-series-id", "shop").endswith(
        f"{p}: column 'shop' {both}: {fix}"
    )
    assert _train_error(tmp_path, capsys, *argv, "--csv-series-id", "0").endswith(
        f"{p}: column 'shop' {both} (given as 0): {fix}"
    )
    with pytest.raises(InputError) as e:
        read_csv(p, columns=[1, 0], series_id="shop")
    assert str(e.value) == (
        f"{p}: column 0 {both} (given as 'shop'): drop it from columns or choose another series_id"
    )


def test_a_header_read_as_data_is_suspected_only_where_it_looks_like_one(
    tmp_path: Path, capsys
) -> None:
    # It said only "line 1, column 0: 'units' is not a number", and "without
    # csv_columns every column is read", which does not help.
    rows = "".join(f"{t % 3},{t % 5}\n" for t in range(40))
    p = write(tmp_path, "shop,units\n" + rows)
    looks = "line 1 looks like a header (text in every cell, where line 2 has numbers): "
    argv = ["--data", f"csv:{p}", "--csv-header", "false", "--n-in", "2", "--n-out", "2"]
    assert _train_error(tmp_path, capsys, *argv).endswith(
        f"{p}: line 1, column 0: 'shop' is not a number (expected a finite decimal number; "
        f"{looks}csv_header = false (--csv-header false) reads the first row as data: set "
        "it to true, or leave it out to detect the header)"
    )
    with pytest.raises(InputError) as e:
        read_csv(p, header=False)
    assert str(e.value).endswith(
        f"{looks}header=False reads the first row as data: pass True, or None to detect it)"
    )
    # Not where the first row holds a number or an empty cell, nor where the next row
    # is not numbers in the columns read.
    for first in ("shop,1\n", "shop,\n", "shop,units\nx,2\n"):
        q = write(tmp_path, first + rows, "q.csv")
        with pytest.raises(InputError, match=r"line 1, column 0: 'shop' is not a number") as e:
            read_csv(q, header=False)
        assert "looks like a header" not in str(e.value)


def test_a_configs_csv_settings_are_named_as_settings_in_the_readers_checks(
    tmp_path: Path,
) -> None:
    # load_series said "columns 'a', 'a' name the same column" of --csv-columns a,a:
    # read_csv's argument, where every other message of a Config's CSV names the setting.
    p = write(tmp_path, "id,a\nx,1\nx,2\n")
    settings = {"data": f"csv:{p}", "sequence_size": 1, "split_rate": 0.5}
    cases = [
        ({"csv_columns": ["a", "a"]}, "csv_columns (--csv-columns) 'a', 'a' name the same column"),
        ({"csv_columns": [1, "a"]}, "csv_columns (--csv-columns) 1, 'a' name the same column"),
        (
            {"csv_columns": None, "csv_series_id": "id", "n_in": 1, "n_out": 1},
            "no data columns besides the csv_series_id (--csv-series-id) column",
        ),
    ]
    one = write(tmp_path, "id\nx\ny\n", "one.csv")
    for values, message in cases:
        data = f"csv:{one}" if values.get("csv_series_id") else settings["data"]
        config = Config.merged(None, {**settings, **values, "data": data})
        with pytest.raises(InputError) as e:
            load_series(config)
        assert str(e.value).startswith(f"{data[4:]}: ") and message in str(e.value)
    # A Config built directly is not checked before it is read.
    direct = [
        (Config(data=f"csv:{p}", csv_columns=()), "csv_columns (--csv-columns) is empty"),
        (
            Config(data=f"csv:{p}", csv_columns="a"),  # type: ignore[arg-type]
            "csv_columns (--csv-columns) must be a list of column names or indices, got 'a'",
        ),
        (
            Config(data=f"csv:{p}", csv_header="yes"),  # type: ignore[arg-type]
            "csv_header (--csv-header) must be true, false or unset (detect), got 'yes'",
        ),
    ]
    for config, message in direct:
        with pytest.raises(InputError) as e:
            load_series(config)
        assert message in str(e.value)
    # read_csv keeps its own arguments' names.
    with pytest.raises(InputError, match=r"d\.csv: columns is empty"):
        read_csv(p, [])
    with pytest.raises(InputError, match=r"d\.csv: header must be None \(detect\), True or"):
        read_csv(p, header="yes")  # type: ignore[arg-type]
