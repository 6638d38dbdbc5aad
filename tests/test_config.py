"""Tests of nsteplstm.config: defaults, validation, TOML, precedence, JSON, help."""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nsteplstm.config import (
    CONFIG_HELP,
    Config,
    fields_help,
    flag_of,
    load_toml,
    parse_cli_value,
)
from nsteplstm.errors import InputError

ARTICLE = {
    "n_layers": 1,
    "dropout": 0.3,
    "value": 5,
    "total_size": 2000,
    "split_rate": 0.9,
    "sequence_size": 30,
    "epochs": 60,
    "batch_size": 100,
    "n_in": 1,
    "n_hidden": 200,
    "n_out": 1,
}


def test_defaults_are_the_articles() -> None:
    cfg = Config()
    for key, value in ARTICLE.items():
        assert getattr(cfg, key) == value, key
    assert cfg.data == "fibonacci" and cfg.cell == "nstep" and cfg.device == "auto"
    assert cfg.lr == 1e-3 and cfg.seed == 0 and cfg.min_length is None
    assert cfg.scale == "standard" and cfg.grad_clip == 1.0 and cfg.keep_best
    assert cfg.adding_samples == 10000 and cfg.checkpoint_every == 1 and cfg.format_version == 1
    assert Config.from_dict({}, "t") == cfg


def test_help_covers_every_field() -> None:
    names = [f.name for f in dataclasses.fields(Config)]
    assert list(CONFIG_HELP) == names
    helps = fields_help()
    assert [h.name for h in helps] == names
    n_layers = helps[0]
    assert n_layers.flag == "--n-layers" and n_layers.default == 1 and n_layers.kind == "int"
    assert all(h.help and "\n" not in h.help for h in helps)


def test_json_round_trip() -> None:
    cfg = Config.from_dict(
        {"data": "csv:x.csv", "csv_columns": ["a", 2], "csv_header": True, "min_length": 4}, "t"
    )
    text = cfg.to_json()
    assert json.loads(text)["csv_columns"] == ["a", 2]
    assert Config.from_json(text, "config.json") == cfg
    assert Config.from_json(Config().to_json(), "c") == Config()
    with pytest.raises(InputError, match=r"config run/config.json: not valid JSON"):
        Config.from_json("{", "run/config.json")


def test_int_accepted_for_float_bool_not_int() -> None:
    cfg = Config.from_dict({"lr": 1, "dropout": 0}, "t")
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float) and cfg.dropout == 0.0
    with pytest.raises(
        InputError, match=r"config t: n_layers = true is a boolean, expected an int"
    ):
        Config.from_dict({"n_layers": True}, "t")
    with pytest.raises(InputError, match=r"lr = false is a boolean, expected a number"):
        Config.from_dict({"lr": False}, "t")


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("n_layers", 2.0, "n_layers = 2.0 is a float, expected an integer"),
        ("epochs", "60", "epochs = '60' is a string, expected an integer"),
        ("keep_best", 1, "keep_best = 1 is an integer, expected a boolean"),
        ("data", 3, "data = 3 is an integer, expected a string"),
        ("csv_columns", "a", "csv_columns = 'a' is a string, expected a list"),
        ("csv_columns", [1.5], "csv_columns = [1.5] is an array, expected a list"),
        ("min_length", 3.0, "min_length = 3.0 is a float, expected an integer"),
        ("device", 1.0, "device = 1.0 is a float, expected a string or an integer"),
        ("seed", None, "seed is null, expected an integer"),
        ("n_layers", {"\n": None}, "n_layers = {'\\n' = null} is a table"),  # one line
        ("seed", datetime.date(1979, 5, 27), "seed = 1979-05-27 is a date, expected an int"),
        ("seed", datetime.time(7, 32), "seed = 07:32:00 is a time, expected an integer"),
        (
            "seed",
            datetime.datetime(1979, 5, 27, 7, 32, tzinfo=datetime.timezone.utc),
            "seed = 1979-05-27T07:32:00+00:00 is a date-time, expected an integer",
        ),
    ],
)
def test_wrong_type(key: str, value: Any, expected: str) -> None:
    with pytest.raises(InputError) as e:
        Config.from_dict({key: value}, "my.toml")
    assert str(e.value).startswith("config my.toml: ")
    assert expected in str(e.value)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"dropout": 1.0}, "dropout = 1.0 is out of range (allowed: 0 <= dropout < 1)"),
        ({"dropout": -0.1}, "dropout = -0.1 is out of range"),
        ({"n_hidden": 0}, "n_hidden = 0 is out of range (allowed: >= 1)"),
        # No end: it trained forever, checkpoint.json growing by a row each epoch.
        ({"epochs": 10**20}, "epochs = 100000000000000000000 is out of range (allowed: 1 <= "),
        ({"batch_size": -5}, "batch_size = -5 is out of range (allowed: >= 1)"),
        ({"sequence_size": 0}, "sequence_size = 0 is out of range"),
        ({"split_rate": 1.0}, "split_rate = 1.0 is out of range (allowed: 0 < split_rate < 1)"),
        ({"split_rate": 0}, "split_rate = 0.0 is out of range"),
        ({"lr": 0.0}, "lr = 0.0 is out of range (allowed: > 0)"),
        ({"lr": float("nan")}, "lr = nan is out of range (allowed: a finite number)"),
        ({"cell": "gru"}, "cell = 'gru' is out of range (allowed: nstep, step)"),
        ({"scale": "minmax"}, "scale = 'minmax' is out of range (allowed: standard, none)"),
        ({"data": "mnist"}, "data = 'mnist' is out of range (allowed: fibonacci, sine, adding"),
        ({"data": "csv:"}, "data = 'csv:' is out of range"),
        ({"min_length": 31}, "min_length = 31 is out of range (allowed: 1 <= min_length <= seq"),
        ({"min_length": 0}, "min_length = 0 is out of range"),
        ({"data": "adding", "min_length": 1}, "allowed: 2 <= min_length <= sequence_size = 30"),
        ({"device": "tpu"}, "device = 'tpu' is out of range (allowed: auto, cpu, cuda"),
        ({"device": -2}, "device = -2 is out of range"),
        ({"format_version": 2}, "format_version = 2 is out of range (allowed: 1)"),
        # Past 1e12 NumPy raised its own errors (a traceback) or sine gave an empty series.
        (
            {"total_size": 2**62},
            f"total_size = {2**62} is out of range (allowed: 1 <= total_size <= 1e12)",
        ),
        ({"adding_samples": 2**63}, "adding_samples = 9223372036854775808 is out of range"),
        ({"n_in": 3}, "n_in = 3 is out of range (allowed: 1 for data = 'fibonacci')"),
        ({"data": "adding", "n_in": 1}, "n_in = 1 is out of range (allowed: 2 for data = 'add"),
        ({"data": "sine", "n_out": 2}, "n_out = 2 is out of range (allowed: 1 for data = 'sine')"),
        ({"data": "csv:a.csv", "csv_columns": ["a", "b"], "n_in": 1}, "n_in = 1 is out of range"),
        (
            {"data": "csv:a.csv", "csv_columns": []},
            "csv_columns = [] is out of range (allowed: a non-empty list)",
        ),
        ({"data": "csv:a.csv", "csv_columns": [-1]}, "csv_columns = [-1] is out of range"),
        ({"csv_columns": ["units"]}, "csv_columns = ['units'] applies only to data = 'csv:PATH'"),
        ({"data": "sine", "csv_header": True}, "csv_header = true applies only to data = 'csv"),
        ({"csv_series_id": 0}, "csv_series_id = 0 applies only to data = 'csv:PATH', not data"),
        ({"grad_clip": -1}, "grad_clip = -1.0 is out of range (allowed: >= 0"),
        ({"seed": -1}, "seed = -1 is out of range"),
        ({"split_rate": 0.99}, "split_rate = 0.99 of total_size = 2000 gives 1980 training and"),
        ({"total_size": 50}, "split_rate = 0.9 of total_size = 50 gives 45 training and 5 val"),
        (
            {"data": "adding", "adding_samples": 5, "split_rate": 0.1},
            "split_rate = 0.1 of adding_samples = 5 leaves 0 training and 5 validation",
        ),
        ({"data": "adding", "adding_samples": 1}, "leaves 0 training and 1 validation"),
    ],
)
def test_out_of_range(values: dict[str, Any], expected: str) -> None:
    with pytest.raises(InputError) as e:
        Config.from_dict(values, "c.toml")
    msg = str(e.value)
    assert msg.startswith("config c.toml: ") and "\n" not in msg
    assert expected in msg


def test_adding_samples_5_is_fine_when_split_allows() -> None:
    cfg = Config.from_dict({"data": "adding", "adding_samples": 5, "split_rate": 0.5}, "t")
    assert cfg.adding_samples == 5


def test_unknown_key_lists_known() -> None:
    with pytest.raises(InputError) as e:
        Config.from_dict({"foo": 1}, "run.toml")
    msg = str(e.value)
    assert msg.startswith("config run.toml: unknown key 'foo' (known: n_layers, dropout, ")
    assert "format_version)" in msg
    with pytest.raises(
        InputError, match=r"unknown key 'n_hiden' \(did you mean 'n_hidden'\? known"
    ):
        Config.from_dict({"n_hiden": 10}, "run.toml")  # a typo is told the key it missed
    with pytest.raises(InputError, match="expected a table of settings, got list"):
        Config.from_dict([1, 2], "x")  # type: ignore[arg-type]


def test_device_forms() -> None:
    for given_value, stored in [
        (-1, "cpu"),
        ("-1", "cpu"),
        (0, "cuda:0"),
        ("1", "cuda:1"),
        ("CUDA:2", "cuda:2"),
        ("cpu", "cpu"),
        ("cuda", "cuda"),
        ("auto", "auto"),
        (np.int64(0), "cuda:0"),  # refused as "not a device"; seeds take NumPy integers too
        (np.int64(-1), "cpu"),
    ]:
        assert Config.from_dict({"device": given_value}, "t").device == stored
    with pytest.raises(InputError, match="device"):
        Config.from_dict({"device": "cuda:\u0663"}, "t")  # an Arabic-Indic 3 was read as 3


def test_numpy_floats_and_bools_are_settings_as_python_ones() -> None:
    # np.float32(0.2) was "a float32, expected a number" while np.float64 passed.
    c = Config.from_dict({"dropout": np.float32(0.25), "keep_best": np.bool_(False)}, "t")
    assert (c.dropout, c.keep_best) == (0.25, False)
    assert type(c.dropout) is float and type(c.keep_best) is bool  # JSON takes them
    with pytest.raises(InputError, match=r"keep_best = .* expected"):
        Config.from_dict({"keep_best": np.int64(1)}, "t")


def test_n_in_n_out_derived_from_data() -> None:
    adding = Config.from_dict({"data": "adding"}, "t")
    assert (adding.n_in, adding.n_out) == (2, 1)
    csv = Config.from_dict({"data": "csv:d.csv", "csv_columns": ["a", "b", 3]}, "t")
    assert (csv.n_in, csv.n_out) == (3, 3)
    free = Config.from_dict({"data": "csv:d.csv", "n_in": 4, "n_out": 4}, "t")
    assert (free.n_in, free.n_out) == (4, 4)
    assert Config.from_dict({"data": "adding", "n_in": 2, "n_out": 1}, "t") == adding


def test_load_toml_and_precedence(tmp_path: Path) -> None:
    p = tmp_path / "run.toml"
    p.write_text('n_layers = 3\ndropout = 0.4\ndata = "sine"\nperiod = 12.5\n', encoding="utf-8")
    d = load_toml(p)
    assert d == {"n_layers": 3, "dropout": 0.4, "data": "sine", "period": 12.5}
    cfg = Config.merged(d, {"n_layers": 2, "epochs": None, "seed": 7}, toml_source=str(p))
    assert cfg.n_layers == 2 and cfg.dropout == 0.4 and cfg.period == 12.5
    assert cfg.epochs == 60 and cfg.seed == 7 and cfg.data == "sine"
    assert Config.merged(None, {"epochs": 3}).epochs == 3
    assert Config.merged(None, {}) == Config()


def test_merged_error_names_the_source(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^config run.toml: dropout = 2.0 is out of range"):
        Config.merged({"dropout": 2.0}, {}, toml_source="run.toml")
    with pytest.raises(InputError, match=r"^command line: --dropout 2.0 is out of range"):
        Config.merged({"dropout": 0.5}, {"dropout": 2.0}, toml_source="run.toml")
    with pytest.raises(InputError, match=r"^command line: unknown key 'bogus'"):
        Config.merged({}, {"bogus": 1}, toml_source="run.toml")
    # a flag can repair what the TOML alone would break
    cfg = Config.merged({"min_length": 40}, {"sequence_size": 50}, toml_source="run.toml")
    assert cfg.min_length == 40
    # but a value of the wrong type in the file is refused even where a flag replaces
    # it: the run went through, and the file failed the next time it was used alone
    with pytest.raises(InputError, match=r"^config run.toml: dropout = 'high' is a string, exp"):
        Config.merged({"dropout": "high"}, {"dropout": 0.2}, toml_source="run.toml")
    cfg = Config.merged({"epochs": 3, "n_layers": 2}, {"epochs": 5}, toml_source="run.toml")
    assert (cfg.epochs, cfg.n_layers) == (5, 2)


def test_load_toml_refuses_what_is_not_a_file(not_a_file: Callable[[str], Path]) -> None:
    path = not_a_file("c.toml")
    with pytest.raises(InputError, match=f"^config {path}: not a regular file"):
        load_toml(path)


def test_load_toml_takes_a_relative_csv_path_from_the_toml_files_folder(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    toml = tmp_path / "conf" / "run.toml"
    toml.write_text('data = "csv:sales.csv"\n')
    assert load_toml(toml)["data"] == f"csv:{tmp_path / 'conf' / 'sales.csv'}"
    toml.write_text('data = "csv:/abs/sales.csv"\n')
    assert load_toml(toml)["data"] == "csv:/abs/sales.csv"
    toml.write_text('data = "sine"\n')
    assert load_toml(toml)["data"] == "sine"


def test_load_toml_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"config .*missing.toml: file not found"):
        load_toml(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("n_layers = 2\nepochs = = 3\n", encoding="utf-8")
    with pytest.raises(InputError) as e:
        load_toml(bad)
    msg = str(e.value)
    assert "bad.toml: invalid TOML" in msg and "line 2" in msg and "\n" not in msg
    bad.write_bytes(b"a = '\xff'\n")
    with pytest.raises(InputError, match="not UTF-8 text TOML"):
        load_toml(bad)
    with pytest.raises(InputError, match="is a directory, not a file"):
        load_toml(tmp_path)
    bad.write_text("[section]\nn_layers = 2\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad.toml: unknown key 'section' \(known: n_layers"):
        Config.from_dict(load_toml(bad), str(bad))
    bad.write_text("[dropout]\nx = 2\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"dropout = \{x = 2\} is a table, expected a num"):
        Config.from_dict(load_toml(bad), str(bad))


def test_parse_cli_value() -> None:
    assert parse_cli_value("n_layers", "3") == 3
    assert parse_cli_value("dropout", "0.5") == 0.5
    assert parse_cli_value("keep_best", "false") is False
    assert parse_cli_value("csv_header", "true") is True
    assert parse_cli_value("csv_columns", "a, 2,b") == ["a", 2, "b"]
    assert parse_cli_value("csv_series_id", "0") == 0
    # A negative index is an index (refused by Config's range), not a column name.
    assert parse_cli_value("csv_columns", "-1,b") == [-1, "b"]
    assert parse_cli_value("csv_series_id", "-1") == -1
    assert parse_cli_value("device", "-1") == "-1"
    assert Config.merged(None, {"device": parse_cli_value("device", "-1")}).device == "cpu"
    with pytest.raises(InputError, match=r"command line: --n-layers 'two' is not an integer"):
        parse_cli_value("n_layers", "two")
    with pytest.raises(InputError, match=r"--lr 'fast' is not a number"):
        parse_cli_value("lr", "fast")
    with pytest.raises(InputError, match=r"--keep-best 'maybe' is not a boolean"):
        parse_cli_value("keep_best", "maybe")
    with pytest.raises(InputError, match=r"unknown setting 'bogus'"):
        parse_cli_value("bogus", "1")
    with pytest.raises(
        InputError, match=r"--csv-header 'maybe' is not a boolean \(true or false, or auto\)"
    ):
        parse_cli_value("csv_header", "maybe")


@pytest.mark.parametrize(("text", "expected"), [("true", True), (" FALSE ", False), ("True", True)])
def test_a_boolean_flag_takes_true_or_false_in_any_case(text: str, expected: bool) -> None:
    assert parse_cli_value("keep_best", text) is expected
    assert parse_cli_value("csv_header", text) is expected


@pytest.mark.parametrize("text", ["yes", "no", "on", "off", "1", "0", "y", ""])
def test_a_boolean_flag_refuses_what_its_message_does_not_list(
    text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # --keep-best yes (no, on, off, 1, 0) was taken, though the error of a bad value
    # said "(true or false)": the words TOML takes and the docs and --help write.
    from nsteplstm.cli import main

    with pytest.raises(InputError) as e:
        parse_cli_value("keep_best", text)
    assert str(e.value) == f"command line: --keep-best {text!r} is not a boolean (true or false)"
    with pytest.raises(InputError, match=r"is not a boolean \(true or false, or auto\)$"):
        parse_cli_value("csv_header", text)
    assert main(["train", "--out", str(tmp_path / "run"), "--keep-best", text]) == 2
    assert f"--keep-best {text!r} is not a boolean" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_flag_sets_an_optional_setting_back_to_its_default(tmp_path: Path) -> None:
    words = {
        "min_length": "none",
        "csv_columns": "all",
        "csv_header": "AUTO",
        "csv_series_id": "none",
    }
    assert {key: parse_cli_value(key, word) for key, word in words.items()} == dict.fromkeys(words)
    assert parse_cli_value("csv_columns", "none") == ["none"]  # a column name, as before
    assert parse_cli_value("csv_series_id", "all") == "all"
    toml = tmp_path / "run.toml"
    (tmp_path / "a.csv").write_text("shop,units\nx,1\n")
    toml.write_text(
        'data = "csv:a.csv"\nmin_length = 10\ncsv_columns = ["units"]\ncsv_header = true\n'
        'csv_series_id = "shop"\n'
    )
    set_by_toml = Config.merged(load_toml(toml), {})
    assert (set_by_toml.min_length, set_by_toml.csv_header, set_by_toml.csv_series_id) == (
        10,
        True,
        "shop",
    )
    reset = Config.merged(load_toml(toml), {"epochs": 2}, resets=list(words))
    assert [getattr(reset, key) for key in words] == [None] * 4
    assert reset.epochs == 2 and reset.data == set_by_toml.data


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.text(alphabet='abnlr_=[]{}".,0123456789\n -#', max_size=120).map(str.encode),
        st.sampled_from(list(CONFIG_HELP)).flatmap(
            lambda k: st.tuples(
                st.just(k),
                st.sampled_from(["1", "-1", "0.5", "true", '"x"', "[1]", "nan", "1e999"]),
            ).map(lambda kv: f"{kv[0]} = {kv[1]}\n".encode())
        ),
    )
)
def test_any_toml_bytes_give_input_error_or_config(tmp_path: Path, content: bytes) -> None:
    p = tmp_path / "fuzz.toml"
    p.write_bytes(content)
    try:
        cfg = Config.from_dict(load_toml(p), str(p))
    except InputError as e:
        assert "\n" not in str(e)
        return
    assert isinstance(cfg, Config)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from([*CONFIG_HELP, "other"]), json_values, max_size=6))
def test_any_dict_gives_input_error_or_config(d: dict[str, Any]) -> None:
    try:
        cfg = Config.from_dict(d, "fuzz")
    except InputError as e:
        assert "\n" not in str(e)
        return
    assert Config.from_json(cfg.to_json(), "again") == cfg


def test_load_toml_reads_a_file_that_starts_with_a_byte_order_mark(tmp_path: Path) -> None:
    # Some Windows editors write one; it was "invalid TOML ... line 1, column 1".
    path = tmp_path / "run.toml"
    path.write_bytes(b"\xef\xbb\xbfepochs = 3\n")
    assert load_toml(path) == {"epochs": 3}


def test_a_string_of_csv_columns_is_refused_when_a_config_is_checked_again() -> None:
    # to_dict once turned 'ab' into ['a', 'b'], which from_dict then accepted.
    config = Config(data="csv:x.csv", csv_columns="ab", n_in=2, n_out=2)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="csv_columns = 'ab' is a string"):
        Config.from_dict(config.to_dict(), "x")


def test_a_setting_of_another_kind_of_data_is_refused_where_it_was_given(tmp_path: Path) -> None:
    # --total-size with CSV data, --value with a sine, --scale with generated data were
    # accepted, ignored and written to config.json as if they applied.
    cases = [
        (
            {"data": "csv:d.csv", "total_size": 300},
            "--total-size 300 applies only to --data fibonacci or sine, not --data 'csv:d.csv'",
        ),
        ({"data": "sine", "value": 7}, "--value 7 applies only to --data fibonacci, not --data"),
        ({"scale": "none"}, "--scale 'none' applies only to data = csv, not data = 'fibonacci'"),
        ({"data": "fibonacci", "period": 5.0}, "--period 5.0 applies only to --data sine"),
    ]
    for flags, message in cases:
        with pytest.raises(InputError, match=rf"^command line: {re.escape(message)}"):
            Config.merged(None, flags)
    # From a TOML file, it is named; a flag that switches the data does not hide it.
    with pytest.raises(InputError, match=r"^config run.toml: total_size = 3000 applies only"):
        Config.merged({"total_size": 3000}, {"data": "csv:d.csv"}, toml_source="run.toml")
    # Each message ends with the way out, where the setting came from.
    with pytest.raises(InputError, match=r"not --data 'csv:d.csv': remove it from run.toml$"):
        Config.merged({"total_size": 3000}, {"data": "csv:d.csv"}, toml_source="run.toml")
    with pytest.raises(InputError, match=r"not --data 'sine': drop --value$"):
        Config.merged(None, {"data": "sine", "value": 7})
    # A run's stored settings hold every key: not "given".
    stored = Config(data="csv:d.csv").to_dict()
    assert Config.merged(stored, {"epochs": 3}, stored=True).epochs == 3
    assert Config.merged(None, {"data": "sine", "period": 5.0, "total_size": 400}).period == 5.0


def test_a_csv_path_from_home_is_expanded(tmp_path, monkeypatch) -> None:
    # No shell expands "~" after "csv:": the run stored ".../~/x.csv", relative to the cwd.
    from nsteplstm.config import absolute_data, load_toml

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert absolute_data("csv:~/x.csv") == f"csv:{tmp_path / 'home' / 'x.csv'}"
    toml = tmp_path / "run.toml"
    toml.write_text('data = "csv:~/y.csv"\n')
    assert load_toml(toml)["data"] == f"csv:{tmp_path / 'home' / 'y.csv'}"


@pytest.mark.parametrize(
    ("file", "flags"),
    [
        ({"epochs": -5}, {"epochs": 3}),
        ({"epochs": 10**6}, {"epochs": 3}),
        ({"dropout": 1.5}, {"dropout": 0.2}),
        ({"data": "mnist"}, {"data": "sine"}),
        ({"device": "tpu"}, {"device": "cpu"}),
        ({"data": "csv:a.csv", "csv_columns": []}, {"csv_columns": ["a"]}),
        ({"min_length": 0}, {"min_length": 5}),
    ],
)
def test_a_value_out_of_range_in_the_file_is_refused_where_a_flag_replaces_it(
    file: dict[str, Any], flags: dict[str, Any]
) -> None:
    # The run went through, and the file failed the next time it was used alone.
    with pytest.raises(InputError) as alone:
        Config.merged(file, {}, toml_source="run.toml")
    with pytest.raises(InputError) as replaced:
        Config.merged(file, flags, toml_source="run.toml")
    assert str(replaced.value) == str(alone.value)
    assert str(alone.value).startswith("config run.toml: ")


def test_a_reset_flag_checks_the_value_it_replaces_in_the_file() -> None:
    # --min-length none over the file's min_length: the file's value is checked as
    # where any other flag replaces it.
    with pytest.raises(InputError, match=r"^config run.toml: min_length = 0 is out of range"):
        Config.merged({"min_length": 0}, {}, toml_source="run.toml", resets=["min_length"])
    with pytest.raises(InputError, match=r"^config run.toml: min_length = 'x' is a string"):
        Config.merged({"min_length": "x"}, {}, toml_source="run.toml", resets=["min_length"])


def test_a_file_value_a_flag_replaces_needs_only_its_own_range() -> None:
    # How a setting goes with the others is the merged config's to check: each file is
    # valid alone and so is its merge, though the file's value does not fit the flags'.
    for file, flags in [
        ({"data": "adding", "n_in": 2}, {"data": "sine", "n_in": 1}),
        ({"data": "sine", "min_length": 1}, {"data": "adding", "min_length": 2}),
        ({"sequence_size": 10, "min_length": 8}, {"sequence_size": 4, "min_length": 2}),
    ]:
        Config.merged(file, {}, toml_source="run.toml")
        merged = Config.merged(file, flags, toml_source="run.toml")
        assert {key: getattr(merged, key) for key in flags} == flags


def test_train_refuses_a_config_file_whose_bad_value_a_flag_replaces(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nsteplstm.cli import main

    toml = tmp_path / "run.toml"
    toml.write_text("epochs = -5\n", encoding="utf-8")
    argv = ["train", "--config", str(toml), "--epochs", "3", "--out", str(tmp_path / "run")]
    assert main(argv) == 2
    message = f"config {toml}: epochs = -5 is out of range (allowed: >= 1)"
    assert capsys.readouterr().err == f"nsteplstm train: error: {message}\n"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("file", "flags", "expected"),
    [
        ({"epochs": 3}, {"total_size": 50}, "command line: split_rate = 0.9 of --total-size 50 "),
        ({"epochs": 3}, {"sequence_size": 500}, "command line: split_rate = 0.9 of total_size = 2"),
        (
            {"data": "adding"},
            {"adding_samples": 1},
            "command line: split_rate = 0.9 of --adding-samples 1 leaves",
        ),
        ({"total_size": 50}, {"epochs": 3}, "config run.toml: split_rate = 0.9 of total_size = 50"),
        ({"split_rate": 0.5}, {"total_size": 50}, "config run.toml: split_rate = 0.5 of --total-"),
        ({}, {"split_rate": 0.99}, "command line: --split-rate 0.99 of total_size = 2000 gives"),
    ],
)
def test_a_split_too_small_names_where_its_settings_came_from(
    file: dict[str, Any], flags: dict[str, Any], expected: str
) -> None:
    # With split_rate at its default, the error named the TOML file, which held neither
    # it nor the size or sequence_size of the command line.
    with pytest.raises(InputError) as e:
        Config.merged(file, flags, toml_source="run.toml")
    assert str(e.value).startswith(expected)


def test_a_command_line_integer_is_in_ascii_digits() -> None:
    # int() reads "٣" as 3: a column named "٢٠٢٠" was taken for index 2020, which a
    # TOML file's string names.
    assert parse_cli_value("csv_columns", "٢٠٢٠,b") == ["٢٠٢٠", "b"]
    assert parse_cli_value("csv_series_id", "٣") == "٣"
    with pytest.raises(InputError, match=r"--epochs '٣' is not an integer"):
        parse_cli_value("epochs", "٣")


def test_a_toml_file_that_is_not_utf8_names_the_line_and_the_byte(tmp_path: Path) -> None:
    # As a CSV file's: the offset was counted after the byte-order mark (13, not 16), with
    # no line; a UTF-16 file was "invalid byte at offset 0"; NUL bytes, "Invalid statement".
    toml = tmp_path / "run.toml"
    utf16 = "UTF-16, by its byte-order mark; save it as UTF-8"
    cases = [
        (
            b"\xef\xbb\xbfepochs = 3\n# \xe9\n",
            "line 2: not UTF-8 text TOML (invalid byte 0xe9 at offset 16)",
        ),
        ("epochs = 3\n".encode("utf-16"), f"line 1: not UTF-8 text TOML ({utf16})"),
        (b"epochs = 3\n\x00\n", "line 2: not UTF-8 text TOML (contains NUL bytes)"),
    ]
    for raw, said in cases:
        toml.write_bytes(raw)
        with pytest.raises(InputError) as e:
            load_toml(toml)
        assert str(e.value) == f"config {toml}: {said}"
    toml.write_bytes(b"\xef\xbb\xbfepochs = 3\r\n")
    assert load_toml(toml) == {"epochs": 3}


def test_merged_checks_its_arguments() -> None:
    # resets="min_length" was read letter by letter ("unknown key 'm'"), and overrides
    # that were no mapping raised AttributeError.
    with pytest.raises(InputError) as e:
        Config.merged(None, {}, resets="min_length")  # type: ignore[arg-type]
    assert str(e.value) == (
        "Config.merged: resets must be a list of setting names, got 'min_length': "
        "write ['min_length']"
    )
    with pytest.raises(InputError, match="^Config.merged: resets names 'epochs', which is not an"):
        Config.merged(None, {}, resets=["epochs"])  # it became None: "epochs is null"
    for overrides in (None, [("epochs", 3)]):
        with pytest.raises(InputError, match="^Config.merged: overrides must be a mapping"):
            Config.merged(None, overrides)  # type: ignore[arg-type]
    assert Config.merged({"min_length": 5}, {}, resets={"min_length"}).min_length is None


def test_a_csv_setting_for_other_data_says_how_to_drop_it() -> None:
    # It named the setting and the data, but gave no way out, unlike total_size & co.
    with pytest.raises(InputError, match=r"not data = 'fibonacci': drop --csv-columns$"):
        Config.merged(None, {"csv_columns": ["units"]})
    with pytest.raises(InputError, match=r"^config run.toml: .* remove it from run.toml$"):
        Config.merged({"csv_header": True}, {"epochs": 3}, toml_source="run.toml")
    with pytest.raises(InputError, match=r"not data = 'sine': remove it$"):
        Config.from_dict({"data": "sine", "csv_series_id": 0}, "settings")


def test_a_flag_gives_no_empty_column_name() -> None:
    # "--csv-columns a," was read as the columns 'a' and '', and then: "column '' not
    # present (available: 'v')".
    for text in ("", ",", "a,", " , b"):
        with pytest.raises(InputError) as e:
            parse_cli_value("csv_columns", text)
        assert str(e.value) == (
            f"command line: --csv-columns {text!r} has an empty column name; give column "
            "names or 0-based indices separated by commas (--csv-columns a,b or "
            "--csv-columns 0,2), or all for every column"
        )
    with pytest.raises(InputError, match=r"^command line: --csv-series-id ' ' is empty; give a"):
        parse_cli_value("csv_series_id", " ")


def test_a_number_flag_is_written_in_ascii_without_underscores() -> None:
    # As the integer flags and a CSV file's cells: float() read "٣" as 3 and "1_0" as 10.
    for text in ("\u0663", "1_0", "\uff11"):
        with pytest.raises(InputError, match=r"^command line: --lr '.*' is not a number$"):
            parse_cli_value("lr", text)
    assert parse_cli_value("lr", " 1e-3 ") == 1e-3


@pytest.mark.parametrize(
    ("settings", "from_flags", "from_keys"),
    [
        ({"epochs": 0}, "--epochs 0 is out of range (allowed: >= 1)", "epochs = 0 is out"),
        ({"dropout": 1.5}, "--dropout 1.5 is out of range (allowed: 0 <=", "dropout = 1.5 is"),
        ({"device": "tpu"}, "--device 'tpu' is out of range (allowed: auto", "device = 'tpu' is"),
        ({"min_length": 40}, "--min-length 40 is out of range (allowed: 1 <=", "min_length = 40"),
        ({"data": "adding", "n_in": 3}, "--n-in 3 is out of range (allowed: 2 for", "n_in = 3 is"),
        ({"data": "adding", "sequence_size": 1}, "--sequence-size 1 is out", "sequence_size = 1"),
        (
            {"csv_columns": ["a", 2]},
            "--csv-columns 'a,2' applies only to data = 'csv:PATH'",
            "csv_columns = ['a', 2] applies only",
        ),
        (
            {"data": "adding", "adding_samples": 5, "split_rate": 0.1},
            "--split-rate 0.1 of --adding-samples 5 leaves 0 training and 5 validation",
            "split_rate = 0.1 of adding_samples = 5 leaves",
        ),
        (
            {"total_size": 300, "sequence_size": 10, "split_rate": 0.99},
            "--split-rate 0.99 of --total-size 300 gives 297 training and 3 validation points",
            "split_rate = 0.99 of total_size = 300 gives",
        ),
    ],
)
def test_a_setting_from_the_command_line_is_named_by_its_flag(
    settings: dict[str, Any], from_flags: str, from_keys: str
) -> None:
    # It said "command line: epochs = 0 is out of range" where the user typed --epochs,
    # unlike the command line's other errors ("--epochs 'x' is not an integer").
    with pytest.raises(InputError, match=rf"^command line: {re.escape(from_flags)}"):
        Config.merged(None, settings)
    # From a TOML file or a Python call, a setting keeps its key.
    with pytest.raises(InputError, match=rf"^config run.toml: {re.escape(from_keys)}"):
        Config.merged(settings, {}, toml_source="run.toml")
    with pytest.raises(InputError, match=rf"^config settings: {re.escape(from_keys)}"):
        Config.from_dict(settings, "settings")


def test_a_flag_in_an_error_is_the_one_the_command_line_offers() -> None:
    # A flag given over a file's value is named as the flag (tests/test_cli.py checks
    # that flag_of makes the flags of `nsteplstm train`).
    assert flag_of("min_length") == "--min-length"
    with pytest.raises(InputError, match=r"^command line: --min-length 0 is out of range"):
        Config.merged({"min_length": 5}, {"min_length": 0}, toml_source="run.toml")
    # A default is no flag's: named by its key beside the flag that broke it.
    with pytest.raises(InputError, match=r"^command line: split_rate = 0.9 of --total-size 50 "):
        Config.merged(None, {"total_size": 50})


FLOAT_KEYS = [h.name for h in fields_help() if h.kind == "float"]
TOO_SMALL = "is too small for a 64-bit float (it rounds to {}: nonzero values are at least about "
TOO_LARGE = "is too large for a 64-bit float (it rounds to {}: finite values are at most about "


@pytest.mark.parametrize("key", FLOAT_KEYS)
def test_a_float_that_float64_cannot_hold_is_refused_as_typed(tmp_path: Path, key: str) -> None:
    # --lr 1e-400 became 0.0 (and 1e400 inf), refused as "--lr 0.0 is out of range", a
    # value nobody typed; --noise -1e-400 passed as -0.0. tomllib rounds the same way.
    flag = flag_of(key)
    toml = tmp_path / "run.toml"
    for typed, why in [
        ("1e-400", TOO_SMALL.format("0.0")),
        ("-1e-400", TOO_SMALL.format("-0.0")),
        ("1e400", TOO_LARGE.format("inf")),
        ("-1.5e999", TOO_LARGE.format("-inf")),
        ("1e-99999999999999999999999", TOO_SMALL.format("0.0")),
        ("0." + "0" * 400 + "1", TOO_SMALL.format("0.0")),
    ]:
        with pytest.raises(InputError) as e:
            parse_cli_value(key, typed)
        assert str(e.value).startswith(f"command line: {flag} '{typed}' {why}")
        toml.write_text(f"{key} = {typed}\n")
        with pytest.raises(InputError) as e:
            load_toml(toml)
        assert str(e.value).startswith(f"config {toml}: {key} = {typed} {why}")
    # TOML's underscores are part of the number as typed.
    toml.write_text(f"{key} = 1_0e-4_00\n")
    with pytest.raises(InputError, match=f"^config {re.escape(str(toml))}: {key} = 1_0e-4_00 is"):
        load_toml(toml)
    # What float64 holds, a zero, an infinity and a subnormal, reads as before.
    for typed, number in [
        ("0e-999", 0.0),
        ("-0.000e99999999999999999999999", -0.0),
        ("inf", float("inf")),
        ("5e-324", 5e-324),
    ]:
        assert parse_cli_value(key, typed) == number
        toml.write_text(f"{key} = {typed}\nx = [1e-400, {{y = 1e400}}]\n")
        assert load_toml(toml) == {key: number, "x": [0.0, {"y": float("inf")}]}


def test_a_literal_float64_cannot_hold_of_another_setting_is_refused_as_before(
    tmp_path: Path,
) -> None:
    # Only a float setting's literal is named as too small or large: an integer setting's
    # is a float all the same, and an unknown key is unknown.
    toml = tmp_path / "run.toml"
    toml.write_text("epochs = 1e400\n")
    with pytest.raises(InputError, match=r"epochs = inf is a float, expected an integer$"):
        Config.from_dict(load_toml(toml), str(toml))
    toml.write_text("lrr = 1e-400\n")
    with pytest.raises(InputError, match=r"unknown key 'lrr' \(did you mean 'lr'\?"):
        Config.from_dict(load_toml(toml), str(toml))


def test_train_refuses_a_learning_rate_that_underflows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nsteplstm.cli import main

    assert main(["train", "--out", str(tmp_path / "run"), "--lr", "1e-400"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "nsteplstm train: error: command line: --lr '1e-400' is too small for a 64-bit float"
    )
    assert err.count("\n") == 1 and not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("file", "flags", "formula"),
    [
        ({}, {"sequence_size": 500}, "--sequence-size + 1 = 501 (here --sequence-size <= 199)"),
        ({"sequence_size": 500}, {}, "sequence_size + 1 = 501 (here sequence_size <= 199)"),
        ({"sequence_size": 500}, {"epochs": 3}, "sequence_size + 1 = 501 (here sequence_size <="),
        ({}, {"split_rate": 0.999}, "sequence_size + 1 = 31 (here sequence_size <= 1)"),
        (
            {"sequence_size": 4},
            {"split_rate": 0.999, "total_size": 3000},
            "sequence_size + 1 = 5 (",
        ),
        ({"sequence_size": 10}, {"sequence_size": 2999}, "--sequence-size + 1 = 3000"),
    ],
)
def test_a_split_formula_names_sequence_size_as_it_was_given(
    file: dict[str, Any], flags: dict[str, Any], formula: str
) -> None:
    # It said "sequence_size + 1 = 501" after --sequence-size 500, where the rest of the
    # message names the flags; a default or a TOML file's value keeps its key.
    with pytest.raises(InputError) as e:
        Config.merged(file, flags, toml_source="run.toml")
    said = str(e.value).split("; each part needs at least ")[1]
    assert said.startswith(formula)
    assert ("--sequence-size" in said) == ("sequence_size" in flags)


@pytest.mark.parametrize(
    ("setting", "shown", "allowed"),
    [
        ({"csv_columns": [""]}, "csv_columns = ['']", "column names (not blank) or indices >= 0"),
        ({"csv_columns": ["a", " "]}, "csv_columns = ['a', ' ']", "column names (not blank)"),
        ({"csv_series_id": ""}, "csv_series_id = ''", "a column name (not blank) or an index"),
    ],
)
def test_a_blank_csv_column_name_in_a_file_is_refused_when_the_config_is_built(
    tmp_path: Path, setting: dict[str, Any], shown: str, allowed: str
) -> None:
    # The flag refused it when parsed; the file's was refused only when the CSV was read,
    # as "column '' not present", naming the CSV, not the file and key that gave it.
    toml = tmp_path / "run.toml"
    key, value = next(iter(setting.items()))
    toml.write_text(f'data = "csv:d.csv"\n{key} = {json.dumps(value)}\n')
    expected = f"config {toml}: {shown} is out of range (allowed: {allowed}"
    for flags in ({}, {key: parse_cli_value(key, "a")}):  # a flag replacing it: refused still
        with pytest.raises(InputError) as e:
            Config.merged(load_toml(toml), flags, toml_source=str(toml))
        assert str(e.value).startswith(expected)
    with pytest.raises(InputError, match=rf"^config py: {re.escape(shown)} is out of range"):
        Config.from_dict({"data": "csv:d.csv", **setting}, "py")


def test_from_dict_refuses_a_setting_for_another_kind_of_data_as_merged_does() -> None:
    # Config.from_dict({"data": "sine", "value": 7}) was a Config, which TOML and the
    # command line refused (and train() refused later).
    for values, said in [
        ({"data": "sine", "value": 7}, "value = 7 applies only to data = fibonacci, not data"),
        ({"data": "csv:d.csv", "total_size": 300}, "total_size = 300 applies only to data = fib"),
        ({"scale": "none"}, "scale = 'none' applies only to data = csv, not data = 'fibonacci'"),
        ({"data": "adding", "noise": 0.5}, "noise = 0.5 applies only to data = sine, not data ="),
    ]:
        with pytest.raises(InputError, match=rf"^config py: {re.escape(said)}.*: remove it$"):
            Config.from_dict(values, "py")
        with pytest.raises(InputError, match=rf"^config run.toml: {re.escape(said)}"):
            Config.merged(values, {}, toml_source="run.toml")
    # At its default it says nothing a config.json would not hold anyway.
    assert Config.from_dict({"data": "sine", "value": 5}, "py").value == 5
    # Every setting: a run's stored ones, which an older nsteplstm wrote with such values
    # (import-chainer's scale = 'none' for Fibonacci, --total-size with CSV data).
    for stored in (
        {**Config().to_dict(), "scale": "none"},
        {**Config(data="csv:d.csv").to_dict(), "total_size": 300},
    ):
        assert Config.from_dict(stored, "run/config.json").to_dict() == stored
        assert Config.from_json(json.dumps(stored), "run/config.json").to_dict() == stored


def test_a_built_configs_csv_setting_for_other_data_is_to_be_left_at_its_default(
    tmp_path: Path,
) -> None:
    # It said "remove it", as for a key of a mapping; a Config's DATA_SETTINGS field
    # already said to leave it at its default.
    from nsteplstm.train import train

    for config, said in [
        (Config(csv_columns=("a",)), "csv_columns = ['a'] applies only to data = 'csv:PATH'"),
        (Config(data="sine", csv_header=True), "csv_header = true applies only to data = 'csv"),
    ]:
        with pytest.raises(InputError, match=rf"^config settings: {re.escape(said)}.*default$"):
            train(config, tmp_path / "run", quiet=True)
        assert not (tmp_path / "run").exists()


def test_check_alone_checks_each_setting_by_itself() -> None:
    from nsteplstm.config import COMMAND_LINE

    config = Config.from_dict({"sequence_size": 20}, "t")
    # Each valid alone, though they go neither together nor with the config's others.
    config.check_alone({"min_length": 40, "data": "adding", "n_in": 3, "value": 7}, "t")
    config.check_alone({"csv_header": None, "csv_columns": ["a"]}, COMMAND_LINE)
    for values, source, said in [
        ({"epochs": 3, "bogus": 1}, "t", "config t: unknown key 'bogus' (known: n_layers,"),
        ({"epochs": "x"}, "t", "config t: epochs = 'x' is a string, expected an integer"),
        ({"epochs": 0}, COMMAND_LINE, "command line: --epochs 0 is out of range (allowed: >= 1)"),
        ({"epochs": 2, "period": -1.0}, "t", "config t: period = -1.0 is out of range (allowed: "),
        ({"csv_columns": []}, "t", "config t: csv_columns = [] is out of range (allowed: a non"),
        ({"min_length": 0}, "t", "(allowed: 1 <= min_length <= sequence_size = 20)"),
    ]:
        with pytest.raises(InputError) as e:
            config.check_alone(values, source)
        assert said in str(e.value)
    # A range that names another setting names it as origin says it was given.
    with pytest.raises(InputError, match=r"1 <= min_length <= --sequence-size = 20\)$"):
        config.check_alone({"min_length": 0}, "t", {"sequence_size": COMMAND_LINE})


@pytest.mark.slow
def test_the_config_json_of_every_kind_of_run_reads_back(tmp_path: Path) -> None:
    from nsteplstm import runs
    from nsteplstm.train import train

    (tmp_path / "d.csv").write_text("a,b\n" + "".join(f"{i},{i % 7}\n" for i in range(60)))
    small = {"epochs": 1, "n_hidden": 4, "batch_size": 50, "device": "cpu"}
    for name, values in [
        ("fibonacci", {"total_size": 300, "sequence_size": 5, "value": 7}),
        ("sine", {"data": "sine", "total_size": 300, "sequence_size": 5, "period": 8.0}),
        ("adding", {"data": "adding", "adding_samples": 100, "sequence_size": 5}),
        ("csv", {"data": f"csv:{tmp_path / 'd.csv'}", "csv_columns": ["b"], "scale": "none"}),
    ]:
        given = Config.from_dict({**small, **values, "sequence_size": 5}, "t")
        train(given, tmp_path / name, quiet=True)
        config, _, _ = runs.read_config(tmp_path / name)
        assert config == given
        doc = json.loads((tmp_path / name / "config.json").read_text())
        assert Config.from_dict(doc["config"], "config.json") == given


def test_numpy_values_are_shown_as_plain_numbers() -> None:
    # NumPy 2's reprs reached the messages: "keep_best = np.int64(1) is a int64", a 2-D
    # array's repr broke the line, and a np.str_ stayed in the Config.
    for values, said in [
        ({"keep_best": np.int64(1)}, "keep_best = 1 is an integer, expected a boolean"),
        ({"n_layers": np.float64(2.0)}, "n_layers = 2.0 is a float, expected an integer"),
        ({"epochs": np.float32(3)}, "epochs = 3.0 is a float, expected an integer"),
        ({"seed": np.bool_(True)}, "seed = true is a boolean, expected an integer"),
        ({"data": np.str_("mnist")}, "data = 'mnist' is out of range"),
        ({"n_in": np.array([[1, 2], [3, 4]])}, "n_in = [[1, 2], [3, 4]] is an array, expected"),
        ({"csv_columns": [np.float64(1.5)]}, "csv_columns = [1.5] is an array, expected a list"),
        ({"n_in": np.zeros(10**6)}, "n_in = [0., 0., 0., ..., 0., 0., 0.] is an array, expected"),
        ({"n_layers": {np.str_("a b"): np.int64(1)}}, "n_layers = {'a b' = 1} is a table"),
        ({np.str_("bogus"): 1}, "unknown key 'bogus' (known: "),
    ]:
        with pytest.raises(InputError) as e:
            Config.from_dict(values, "t")
        assert str(e.value).startswith(f"config t: {said}")
        assert "np." not in str(e.value) and "\n" not in str(e.value)
    config = Config.from_dict({"data": np.str_("csv:x.csv"), "csv_columns": [np.str_("a")]}, "t")
    assert type(config.data) is str and type(config.csv_columns[0]) is str
    with pytest.raises(InputError, match=r"^Config.merged: resets names \['epochs', 'x'\], "):
        Config.merged(None, {}, resets=np.array([["epochs", "x"]]))  # was a ValueError


def test_an_integer_of_more_digits_than_python_reads_is_one_line(tmp_path: Path) -> None:
    # int() of more than 4300 digits raises ValueError: a traceback from a flag, a TOML
    # file and from Python (the message's own repr of the value).
    digits = "9" * 5000
    with pytest.raises(InputError, match="^command line: --epochs has 5000 digits: it is out"):
        parse_cli_value("epochs", digits)
    toml = tmp_path / "big.toml"
    toml.write_text(f"epochs = {digits}\n")
    with pytest.raises(InputError, match="an integer of more than 4300 digits"):
        load_toml(toml)
    with pytest.raises(InputError, match="epochs = an integer of about 5000 digits is out of"):
        Config.from_dict({"epochs": 10**5000}, "t")


@pytest.mark.parametrize(
    ("file", "flags", "message"),
    [
        # sequence_size by its flag where a flag gave it, else (a default, a file) its key
        ({}, {"min_length": 40}, "--min-length 40 is out of range (allowed: 1 <= min_length <= "),
        ({}, {"min_length": 40}, "(allowed: 1 <= min_length <= sequence_size = 30)"),
        ({}, {"min_length": 40, "sequence_size": 20}, "min_length <= --sequence-size = 20)"),
        ({"sequence_size": 20}, {"min_length": 40}, "min_length <= sequence_size = 20)"),
        ({"min_length": 40}, {"sequence_size": 20}, "min_length <= --sequence-size = 20)"),
        ({}, {"data": "adding", "min_length": 1}, "2 <= min_length <= sequence_size = 30)"),
        # a file's value that a flag replaces is checked alone, with the merged settings
        (
            {"min_length": 0},
            {"min_length": 5, "sequence_size": 50},
            "config run.toml: min_length = 0 is out of range (allowed: 1 <= min_length <= "
            "--sequence-size = 50)",
        ),
        # data by its flag where a flag gave it
        ({}, {"data": "adding", "n_in": 3}, "--n-in 3 is out of range (allowed: 2 for --data 'add"),
        ({"data": "adding"}, {"n_in": 3}, "(allowed: 2 for data = 'adding')"),
        ({}, {"data": "sine", "n_out": 2}, "(allowed: 1 for --data 'sine')"),
        ({}, {"n_out": 2}, "(allowed: 1 for data = 'fibonacci')"),
        ({}, {"data": "adding", "sequence_size": 1}, "(allowed: >= 2 for --data 'adding')"),
        ({"data": "adding"}, {"sequence_size": 1}, "(allowed: >= 2 for data = 'adding')"),
        (
            {},
            {"data": "sine", "csv_header": True},
            "--csv-header true applies only to --data 'csv:PATH', not --data 'sine': drop",
        ),
        (
            {"data": "sine"},
            {"csv_header": True},
            "--csv-header true applies only to data = 'csv:PATH', not data = 'sine': drop",
        ),
        (
            {"total_size": 300},
            {"data": "csv:d.csv"},
            "total_size = 300 applies only to --data fibonacci or sine, not --data 'csv:d.csv'",
        ),
    ],
)
def test_a_range_names_the_other_settings_as_they_were_given(
    file: dict[str, Any], flags: dict[str, Any], message: str
) -> None:
    # "--min-length 40 is out of range (allowed: 1 <= min_length <= sequence_size = 30)"
    # named sequence_size by its key after --sequence-size 20, as "for data = 'adding'"
    # named data after --data adding, unlike the split's formula (--sequence-size + 1).
    with pytest.raises(InputError) as e:
        Config.merged(file, flags, toml_source="run.toml")
    assert message in str(e.value)
