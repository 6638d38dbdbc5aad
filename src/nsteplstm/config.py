"""Run settings: defaults from the article, a TOML file, command-line flags.

Precedence is defaults < TOML < flags. Every mistake raises `InputError` with one
line that names the source, the key, the value and what is allowed.

`n_in` / `n_out` follow the data when they are not given: "adding" -> (2, 1),
"csv:PATH" with `csv_columns` -> (len(csv_columns), len(csv_columns)), otherwise
the defaults (1, 1). When they are given they must agree with the data where
that is checkable here (fibonacci/sine: 1 and 1; adding: 2 and 1; csv with
`csv_columns`: the number of columns); for csv without `csv_columns` the loader
checks them against the file.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import json
import math
import os
import re
import sys
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from .errors import (
    MAX_DATA_SIZE,
    InputError,
    ascii_float,
    decode_text,
    is_int,
    one_line,
    plain,
    read_input,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FORMAT_VERSION = 1
BUILTIN_DATA = ("fibonacci", "sine", "adding")

MAX_EPOCHS = 100_000


COMMAND_LINE = "command line"  # the source of flags' settings, as errors name it


def _where(source: str) -> str:
    """Where a setting came from, as an error begins: ``command line`` or ``config PATH``."""
    return source if source == COMMAND_LINE else f"config {source}"


def flag_of(key: str) -> str:
    """The command-line flag of the setting ``key``: ``--min-length`` for min_length."""
    return "--" + key.replace("_", "-")


def called_setting(key: str, source: str | None) -> str:
    """A setting without its value, in a formula or a range, in the words of ``source``:
    ``--sequence-size`` from the command line, else (a file, a Python call, None for a
    default) ``sequence_size``."""
    return flag_of(key) if source == COMMAND_LINE else key


def _data_kinds(kinds: Iterable[str], source: str | None) -> str:
    """The kinds of data a setting applies to, with data named as ``source`` gave it:
    ``--data fibonacci or sine`` from the command line, else ``data = fibonacci or sine``."""
    prefix = f"{flag_of('data')} " if source == COMMAND_LINE else "data = "
    return prefix + " or ".join(kinds)


def named_setting(key: str, value: Any, source: str | None) -> str:
    """A setting and its value as an error names them, in the words of ``source``:
    ``--epochs 0`` from the command line (its flag, as :func:`parse_cli_value` names
    it; a list as the flag takes it, ``--csv-columns 'a,b'``), else (a file, a Python
    call, None for a default) ``epochs = 0``."""
    if source != COMMAND_LINE:
        return f"{key} = {_show(value)}"
    if isinstance(value, (list, tuple)):
        value = ",".join(str(x) for x in value)
    return f"{flag_of(key)} {_show(value)}"


def train_points(split_rate: float, length: int) -> int:
    """The training part of ``length`` points: ``floor(split_rate * length)``, with
    ``split_rate`` taken as its decimal (0.29 of 100 is 29 points; float arithmetic
    gives 28.999999999999996, which floors to 28)."""
    return math.floor(Fraction(str(float(split_rate))) * length)


def setting(default: Any, kind: str, help: str) -> Any:
    """A :class:`Config` field: its default, its kind (how it is type-checked and parsed
    from a command-line string: "int", "float", "bool", "str", "device", "int?",
    "bool?", "columns?", "id?"; "?" where None is allowed) and its help text."""
    return dataclasses.field(default=default, metadata={"kind": kind, "help": help})


@dataclass(frozen=True)
class Config:
    """All settings of a run; defaults are the article's experiment.

    `csv_columns` is stored as a tuple (a list is accepted on input). `device` is
    stored normalized: "auto", "cpu", "cuda" or "cuda:K" (-1 -> "cpu", K -> "cuda:K").
    """

    n_layers: int = setting(1, "int", "number of stacked LSTM layers")
    dropout: float = setting(
        0.3,
        "float",
        "dropout ratio on the input of every layer but the first, in [0, 1)",
    )
    value: int = setting(5, "int", "modulus of the Fibonacci series (data=fibonacci)")
    total_size: int = setting(
        2000,
        "int",
        "number of points of the built-in series (fibonacci, sine)",
    )
    split_rate: float = setting(
        0.9,
        "float",
        "fraction of each series (or of the adding samples) used for training, in (0, 1)",
    )
    sequence_size: int = setting(
        30,
        "int",
        "window length in time steps (inputs; targets are shifted by one)",
    )
    epochs: int = setting(60, "int", "number of training epochs")
    batch_size: int = setting(100, "int", "windows per mini-batch")
    n_in: int = setting(
        1,
        "int",
        "input features per time step (default: 2 for data = adding, the number of "
        "csv_columns when they are given, else 1)",
    )
    n_hidden: int = setting(200, "int", "LSTM hidden units per layer")
    n_out: int = setting(
        1,
        "int",
        "output features per time step (default: the number of csv_columns when they are "
        "given, else 1)",
    )
    device: str = setting(
        "auto",
        "device",
        "auto, cpu, cuda, cuda:K, or the article's -1 (CPU) / K >= 0 (GPU K)",
    )
    seed: int = setting(0, "int", "random seed for data, weights and shuffling")
    cell: str = setting(
        "nstep",
        "str",
        "nstep (whole sequences per call) or step (one time step per call)",
    )
    lr: float = setting(1e-3, "float", "Adam learning rate")
    data: str = setting("fibonacci", "str", "fibonacci, sine, adding or csv:PATH")
    period: float = setting(20.0, "float", "period of the sine series in time steps (data=sine)")
    noise: float = setting(
        0.0,
        "float",
        "standard deviation of Gaussian noise added to the sine series (data=sine)",
    )
    min_length: int | None = setting(
        None,
        "int?",
        "variable-length training windows: lengths uniform in [min_length, sequence_size] "
        "(each on an equal share of the windows), batches grouped by length (default, or "
        "--min-length none: all full length)",
    )
    csv_columns: tuple[str | int, ...] | None = setting(
        None,
        "columns?",
        "CSV columns to use, by header name or 0-based index, comma-separated (default, "
        "or --csv-columns all: all, which then need n_in and n_out set to their number)",
    )
    csv_header: bool | None = setting(
        None,
        "bool?",
        "whether the CSV has a header row (default, or --csv-header auto: auto-detect: a "
        "first row with text in a data column; a header of numbers, such as years, needs "
        "--csv-header true)",
    )
    csv_series_id: str | int | None = setting(
        None,
        "id?",
        "CSV column (name or index) that splits the rows into several series (default, or "
        "--csv-series-id none: one series)",
    )
    scale: str = setting(
        "standard",
        "str",
        "standard (mean 0, std 1 fitted on the training parts long enough for a window; "
        "the losses of history.csv are then in these units, forecasts in the data's) or "
        "none; CSV only",
    )
    adding_samples: int = setting(
        10000,
        "int",
        "number of samples of the adding problem (data=adding)",
    )
    grad_clip: float = setting(1.0, "float", "clip the gradient norm to this value; 0 disables")
    keep_best: bool = setting(
        True,
        "bool",
        "restore the weights of the best validation epoch at the end",
    )
    checkpoint_every: int = setting(1, "int", "write a checkpoint every this many epochs")
    format_version: int = setting(
        FORMAT_VERSION,
        "int",
        "version of the config format (only 1 exists)",
    )

    @property
    def csv_path(self) -> str | None:
        """The file of ``data = "csv:PATH"``; None for generated data."""
        return self.data[4:] if self.data.startswith("csv:") else None

    @property
    def data_kind(self) -> str:
        """``"csv"`` for ``csv:PATH``, else the generated data's name."""
        return "csv" if self.csv_path is not None else self.data

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str) -> Config:
        """Validate the settings in `d` (missing keys keep their defaults).

        `source` names where `d` came from (a file path, "command line") in errors.
        A setting of :data:`DATA_SETTINGS` off its default for another kind of data is
        refused, as :meth:`merged` refuses it, unless `d` holds every setting: a run's
        stored settings (config.json, :meth:`to_dict`), which older versions wrote with
        such values (``scale = 'none'`` for an imported Fibonacci run).
        """
        if not isinstance(d, Mapping):
            raise InputError(
                f"config {source}: expected a table of settings, got {type(d).__name__}"
            )
        origin = {key: source for key in d}
        config = _build(d, origin, source)
        if not set(_KINDS) <= set(d):
            off_default = {key for key in d if getattr(config, key, None) != _DEFAULTS.get(key)}
            config.check_data_settings(off_default, origin)
        return config

    @classmethod
    def merged(
        cls,
        toml_dict: Mapping[str, Any] | None,
        overrides: Mapping[str, Any],
        toml_source: str = "TOML file",
        overrides_source: str = COMMAND_LINE,
        resets: Collection[str] = (),
        stored: bool = False,
    ) -> Config:
        """Defaults < `toml_dict` < `overrides`; an override whose value is None is not
        given. The optional settings named in `resets` go back to None (their default)
        whatever `toml_dict` says: what ``--min-length none`` asks (:func:`parse_cli_value`).
        A value of `toml_dict` that an override or a reset replaces must still be valid
        alone: of its type and in its own range (how it goes with the other settings
        is checked on the merged ones only, so that flags can repair a combination).
        A setting of :data:`DATA_SETTINGS` given for another kind of data is refused,
        except in a ``stored`` `toml_dict` (a run's config.json, which holds every key)."""
        _check_merged_arguments(overrides, resets)
        values: dict[str, Any] = {}
        origin: dict[str, str] = {}
        if toml_dict is not None:
            if not isinstance(toml_dict, Mapping):
                raise InputError(
                    f"config {toml_source}: expected a table of settings, "
                    f"got {type(toml_dict).__name__}"
                )
            values.update(toml_dict)
            origin.update({key: toml_source for key in toml_dict})
        flags = {key: value for key, value in overrides.items() if value is not None}
        # A bad file stays refused: it would fail the next time it is used alone.
        replaced = {key: values[key] for key in (*flags, *resets) if key in values}
        values.update(flags)
        values.update(dict.fromkeys(resets))
        origin.update(dict.fromkeys([*flags, *resets], overrides_source))
        if toml_dict is None:
            config = _build(values, origin, overrides_source)
        else:
            config = _build(values, origin, toml_source, toml_source)
        config.check_alone(replaced, toml_source, origin)
        given = set(flags)
        if toml_dict is not None and not stored:
            given |= set(toml_dict)
        config.check_data_settings(given, origin, toml_source)
        return config

    def check_data_settings(
        self,
        given: Collection[str],
        origin: Mapping[str, str],
        toml_source: str = "",
        fix: str = "remove it",
    ) -> None:
        """InputError for a setting among those ``given`` that does not apply to this data
        (stored, it would look as if it applied): one of :data:`DATA_SETTINGS` for another
        kind of data, or a CSV setting (but None) for generated data. ``origin`` names
        where each came from (the command line, the TOML file ``toml_source``, else the
        settings of a Python call, for which ``fix`` says what to do)."""
        v = self.to_dict()

        def fail(key: str, what: str) -> InputError:
            return InputError(f"{_where(origin.get(key, 'settings'))}: {what}")

        def named(key: str) -> str:
            return named_setting(key, v[key], origin.get(key))

        def how_to_drop(key: str) -> str:
            return _how_to_drop(key, origin.get(key, "settings"), toml_source, fix)

        _check_csv_settings_apply(v, given, fail, named, how_to_drop, origin.get("data"))
        for key, kinds in DATA_SETTINGS.items():
            if key in given and self.data_kind not in kinds:
                raise fail(
                    key,
                    f"{named(key)} applies only to {_data_kinds(kinds, origin.get('data'))}, "
                    f"not {named('data')}: {how_to_drop(key)}",
                )

    def check_alone(
        self, settings: Mapping[str, Any], source: str, origin: Mapping[str, str] = {}
    ) -> None:
        """InputError naming ``source`` for a key of ``settings`` (key: value) that is no
        setting (all keys checked first), else the first value not of its type, else the
        first out of its own range; how it goes
        with the other settings is not checked. A range that names others (min_length's:
        data and sequence_size) takes them from this config, named as ``origin`` says each
        was given (:func:`called_setting`; by its key where ``origin`` does not say)."""

        def fail(_: str, what: str) -> InputError:
            return InputError(f"{_where(source)}: {what}")

        def called(other: str) -> str:
            return called_setting(other, origin.get(other))

        _check_keys(settings, fail)
        values = {key: _converted(key, raw, source) for key, raw in settings.items()}
        for key, value in values.items():
            v = {**self.to_dict(), key: value}
            checks = [c for c in _ranges(v) + _optional_ranges(v, called) if c[0] == key]
            _check(checks, fail, lambda k, v=v: named_setting(k, v[k], source))

    def changed(self) -> dict[str, Any]:
        """:meth:`to_dict`'s settings that differ from the defaults: what a Config built
        directly says (``Config(data="adding").n_in`` is the default 1, which
        :meth:`from_dict` of this derives from the data instead)."""
        defaults = Config().to_dict()
        return {k: v for k, v in self.to_dict().items() if v != defaults[k]}

    def to_dict(self) -> dict[str, Any]:
        """All fields as JSON-able values (None stays None, csv_columns a list)."""
        d = dataclasses.asdict(self)
        if isinstance(self.csv_columns, (list, tuple)):  # anything else: from_dict refuses
            d["csv_columns"] = list(self.csv_columns)
        return d

    def to_json(self) -> str:
        """`to_dict()` as indented JSON text (config.json)."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str) -> Config:
        """Parse and validate JSON text written by `to_json`."""
        try:
            d = json.loads(text)
        except (ValueError, RecursionError) as e:
            raise InputError(f"config {source}: not valid JSON ({one_line(e)})") from None
        return cls.from_dict(d, source)


def _how_to_drop(key: str, source: str, toml_source: str | None, fix: str = "remove it") -> str:
    """How to take back the setting ``key`` that ``source`` gave: its flag from the
    command line, the key from the TOML file ``toml_source``, else ``fix``."""
    if source == COMMAND_LINE:
        return f"drop {flag_of(key)}"
    return f"remove it from {source}" if source == toml_source else fix


def _check_merged_arguments(overrides: object, resets: object) -> None:
    """InputError unless :meth:`Config.merged`'s ``overrides`` is a mapping and ``resets``
    a collection of optional settings' names (a str would be read letter by letter)."""
    if not isinstance(overrides, Mapping):
        raise InputError(
            "Config.merged: overrides must be a mapping of settings (a dict), "
            f"got {type(overrides).__name__}"
        )
    optional = [key for key, kind in _KINDS.items() if kind.endswith("?")]
    if isinstance(resets, (str, bytes)) or not isinstance(resets, Collection):
        hint = f": write [{_show(resets)}]" if isinstance(resets, str) else ""
        raise InputError(
            f"Config.merged: resets must be a list of setting names, got {_show(resets)}{hint}"
        )
    for key in resets:
        if not isinstance(key, str) or key not in optional:  # `in` of an array is an array
            raise InputError(
                f"Config.merged: resets names {_show(key)}, which is not an optional setting "
                f"(allowed: {', '.join(optional)}, which go back to None)"
            )


# Per setting: its kind (how it is type-checked and parsed) and its help text.
_KINDS: dict[str, str] = {f.name: f.metadata["kind"] for f in dataclasses.fields(Config)}
CONFIG_HELP: dict[str, str] = {f.name: f.metadata["help"] for f in dataclasses.fields(Config)}
_DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(Config)}


@dataclass(frozen=True)
class FieldHelp:
    """One config field for the CLI: `--{name with dashes}` flag, kind, default, help."""

    name: str
    kind: str
    default: Any
    help: str

    @property
    def flag(self) -> str:
        return flag_of(self.name)


def fields_help() -> list[FieldHelp]:
    """Every Config field in declaration order, with its kind, default and one-line help.

    kind is one of: int, float, bool, str, device, int? (int or None), bool?,
    columns? (list of names/indices or None), id? (name/index or None).
    """
    return [
        FieldHelp(f.name, _KINDS[f.name], f.default, CONFIG_HELP[f.name])
        for f in dataclasses.fields(Config)
    ]


def is_csv_data(data: str) -> bool:
    """Whether ``data`` names a CSV file: ``csv:`` and a path that is not blank."""
    return data.startswith("csv:") and data[4:].strip() != ""


def absolute_data(data: str) -> str:
    """``data`` with a ``csv:`` path made absolute (from the current directory, ``~``
    expanded: no shell expands it after ``csv:``), so the run's config.json finds its
    file wherever ``forecast`` or ``--resume`` runs."""
    if not data.startswith("csv:"):
        return data
    return "csv:" + os.path.abspath(os.path.expanduser(data[4:]))


# The word that sets an optional setting back to its default, None, on the command line
# (over a TOML file's or a resumed run's value). A column named so is given by index.
RESET_WORDS = {"int?": "none", "columns?": "all", "bool?": "auto", "id?": "none"}


def parse_cli_value(key: str, text: str) -> Any:
    """Convert the command-line string of field `key` to its type (checked later by Config);
    None for the word of :data:`RESET_WORDS` that resets an optional setting."""
    kind = _KINDS.get(key)
    if kind is None:
        raise InputError(f"command line: unknown setting '{key}' (known: {', '.join(_KINDS)})")
    flag = flag_of(key)
    token = text.strip()
    if kind in RESET_WORDS and token.lower() == RESET_WORDS[kind]:
        return None
    if kind in ("int", "int?"):
        digits = len(token.lstrip("+-"))
        if _is_integer(token) and digits > sys.get_int_max_str_digits():
            raise InputError(f"command line: {flag} has {digits} digits: it is out of range")
        if _is_integer(token):
            return int(token)
        raise InputError(f"command line: {flag} {text!r} is not an integer")
    if kind == "float":
        try:
            number = ascii_float(token)
        except ValueError:
            raise InputError(f"command line: {flag} {text!r} is not a number") from None
        lost = _float64_loss(token, number)
        if lost:
            raise InputError(f"command line: {flag} {text!r} is {lost}")
        return number
    if kind in ("bool", "bool?"):
        if token.lower() in ("true", "false"):  # TOML's words; any case
            return token.lower() == "true"
        allowed = "true or false" + (", or auto" if kind == "bool?" else "")
        raise InputError(f"command line: {flag} {text!r} is not a boolean ({allowed})")
    if kind == "columns?":
        parts = [part.strip() for part in text.split(",")]
        if "" in parts:  # read as a column named "", which no file has
            raise InputError(
                f"command line: {flag} {text!r} has an empty column name; give column "
                f"names or 0-based indices separated by commas ({flag} a,b or {flag} 0,2), "
                "or all for every column"
            )
        return [_name_or_index(part) for part in parts]
    if kind == "id?":
        if not token:
            raise InputError(
                f"command line: {flag} {text!r} is empty; give a column name or 0-based "
                "index, or none for one series"
            )
        return _name_or_index(token)
    return text


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file into a dict; every problem with the file raises InputError.

    A relative ``csv:`` path in ``data`` is taken relative to the TOML file's folder
    (as it reads there), and returned joined to it."""
    text = decode_text(read_input(path, f"config {path}"), f"config {path}", "TOML")
    unheld: list[_Unheld] = []
    try:
        d = tomllib.loads(text, parse_float=lambda literal: _toml_float(literal, unheld))
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"config {path}: invalid TOML: {one_line(e)}") from None
    except ValueError:  # tomllib's int() of more digits than Python writes or reads
        limit = sys.get_int_max_str_digits()
        raise InputError(f"config {path}: an integer of more than {limit} digits") from None
    except RecursionError:
        raise InputError(f"config {path}: invalid TOML: nested too deeply") from None
    if unheld:
        d = _held(d, path)
    if not isinstance(d, dict):  # pragma: no cover - tomllib always returns a table
        raise InputError(f"config {path}: expected a table of settings")
    data = d.get("data")
    if isinstance(data, str) and is_csv_data(data):
        file = os.path.expanduser(data[4:])
        d["data"] = "csv:" + os.path.join(os.path.dirname(path), file)  # kept if absolute
    return d


def _float64_loss(text: str, number: float) -> str | None:
    """Why the float64 ``number`` that the decimal ``text`` was read as is not that
    number: nonzero as written but rounded to 0.0 (``1e-400``), or finite but rounded to
    infinity (``1e400``); None where ``number`` holds it (to float64's precision)."""
    mantissa = re.split("[eE]", text)[0]  # inf and nan have no digits
    if number == 0.0 and re.search("[1-9]", mantissa):
        return (
            f"too small for a 64-bit float (it rounds to {number}: nonzero values are at "
            "least about 5e-324 in size)"
        )
    if math.isinf(number) and re.search("[0-9]", text):
        return (
            f"too large for a 64-bit float (it rounds to {number}: finite values are at "
            "most about 1.8e308 in size)"
        )
    return None


@dataclass(frozen=True)
class _Unheld:
    """A float of a TOML file that float64 cannot hold: its ``literal`` as written,
    the float it rounds to, and why (:func:`_float64_loss`)."""

    literal: str
    rounded: float
    why: str


def _toml_float(literal: str, unheld: list[_Unheld]) -> float | _Unheld:
    """TOML's float ``literal`` (``1_000.5``, ``-inf``) as a float, or as an :class:`_Unheld`
    (appended to ``unheld`` too) where float64 cannot hold it."""
    number = float(literal)  # takes TOML's underscores between digits, inf and nan
    why = _float64_loss(literal, number)
    if why is None:
        return number
    unheld.append(_Unheld(literal, number, why))
    return unheld[-1]


def _held(d: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """``d`` (a TOML file's table) with every :class:`_Unheld` as the float it rounds to;
    InputError naming the literal where it is a float setting's value (an integer
    setting's, or an unknown key's, is refused as such)."""
    for key, value in d.items():
        if isinstance(value, _Unheld) and _KINDS.get(key) == "float":
            raise InputError(f"config {path}: {key} = {value.literal} is {value.why}")
    return _rounded(d)


def _rounded(value: Any) -> Any:
    """``value`` with every :class:`_Unheld` in it, in tables and arrays, as its float."""
    if isinstance(value, _Unheld):
        return value.rounded
    if isinstance(value, dict):
        return {key: _rounded(x) for key, x in value.items()}
    if isinstance(value, list):
        return [_rounded(x) for x in value]
    return value


def _name_or_index(token: str) -> str | int:
    """An integer (a negative one too, refused later as an index) or a column name."""
    return int(token) if _is_integer(token) else token


def _is_integer(token: str) -> bool:
    """Whether `token` is an integer in ASCII digits (``\\d`` also takes "٣", which
    ``int`` reads as 3)."""
    return re.fullmatch(r"[+-]?[0-9]+", token) is not None


def _show(value: Any) -> str:
    """``value`` as TOML writes it (``true``, ``[1, 'a']``, ``{x = 2}``), cut to 60 characters."""
    text = _toml(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _toml(value: Any) -> str:
    if isinstance(value, np.ndarray) and value.size > 20:  # tolist() of millions is slow
        return one_line(np.array2string(value, separator=", ", threshold=20))
    if isinstance(value, (np.generic, np.ndarray)):  # NumPy 2's repr: np.float64(3.0)
        value = value.tolist()
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"  # JSON's (config.json); TOML has none
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(x) for x in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml(x)}" for k, x in value.items()) + "}"
    if isinstance(value, (datetime.date, datetime.time)):  # datetime is a date too
        return value.isoformat()
    if isinstance(value, int):
        return plain(value, most=sys.maxsize)  # one of 5000 digits: described by its size
    if isinstance(value, (str, float)):
        return repr(str(value) if isinstance(value, str) else value)  # np.str_ is a str
    return one_line(repr(value))  # any other object's, a pandas Series', has lines


def _toml_key(key: Any) -> str:
    """A bare TOML key as is, any other quoted (escapes keep it on one line)."""
    return key if isinstance(key, str) and re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml(key)


def _described(key: str, value: Any) -> str:
    """``"key = value is a <kind>"`` in TOML's words (a boolean, an array, a table...)."""
    if value is None:
        return f"{key} is null"
    kind = next((name for types, name in _VALUE_KINDS if isinstance(value, types)), None)
    return f"{key} = {_show(value)} is {kind or 'a ' + type(value).__name__}"


_VALUE_KINDS = (
    ((bool, np.bool_), "a boolean"),
    ((int, np.integer), "an integer"),
    ((float, np.floating), "a float"),
    (str, "a string"),
    ((list, tuple, np.ndarray), "an array"),
    (dict, "a table"),
    (datetime.datetime, "a date-time"),
    (datetime.date, "a date"),
    (datetime.time, "a time"),
)


_TYPE_NAMES = {
    "int": "an integer",
    "float": "a number",
    "bool": "a boolean",
    "str": "a string",
    "device": "a string or an integer",
    "int?": "an integer",
    "bool?": "a boolean",
    "columns?": "a list of column names (strings) or 0-based indices (integers)",
    "id?": "a column name (string) or 0-based index (integer)",
}


def _check_type(kind: str, v: Any) -> Any | None:
    """Return `v` converted to the field's type, or None when it has the wrong type."""
    if kind in ("int", "int?"):
        return int(v) if is_int(v) else None
    if kind == "float":
        if isinstance(v, (float, np.floating)):  # np.float32 is no float subclass
            return float(v)
        if is_int(v):
            return float(v) if abs(v) < 2**1000 else math.inf  # later rejected as not finite
        return None
    if kind in ("bool", "bool?"):
        return bool(v) if isinstance(v, (bool, np.bool_)) else None
    if kind == "str":  # str(): NumPy's np.str_ is a str too
        return str(v) if isinstance(v, str) else None
    if kind in ("device", "id?"):
        return str(v) if isinstance(v, str) else int(v) if is_int(v) else None
    if kind == "columns?":
        if isinstance(v, (list, tuple)) and all(isinstance(c, str) or is_int(c) for c in v):
            return tuple(str(c) if isinstance(c, str) else int(c) for c in v)
        return None
    raise AssertionError(kind)


DEVICE_FORMS = "'auto', 'cpu', 'cuda', 'cuda:K', or an integer (-1 = CPU, K >= 0 = cuda:K)"


# The settings of one kind of data, and the kinds they apply to ("csv" for csv:PATH).
# Given for another kind (on the command line, in a TOML file, to train() from Python),
# they are refused (Config.check_data_settings).
DATA_SETTINGS: dict[str, tuple[str, ...]] = {
    "value": ("fibonacci",),
    "total_size": ("fibonacci", "sine"),
    "period": ("sine",),
    "noise": ("sine",),
    "adding_samples": ("adding",),
    "scale": ("csv",),
}


def device_name(spec: str | int) -> str | None:
    """The canonical name of a device spec of :data:`DEVICE_FORMS`: ``"auto"``, ``"cpu"``,
    ``"cuda"`` or ``"cuda:K"`` (``"cpu:0"``, torch's name of the CPU, is ``"cpu"``);
    None for anything else. Says nothing about whether the device exists."""
    if not isinstance(spec, str) and not is_int(spec):
        return None
    token = spec.strip().lower() if isinstance(spec, str) else str(int(spec))
    if token in ("auto", "cpu", "cpu:0", "cuda"):
        return token[:3] if token.startswith("cpu") else token
    if re.fullmatch(r"cuda:[0-9]+", token):  # ASCII digits: \d also takes "٣"
        return f"cuda:{int(token[5:])}"
    if _is_integer(token) and int(token) >= -1:  # -2 and below: no device
        return "cpu" if int(token) == -1 else f"cuda:{int(token)}"
    return None


def _converted(key: str, raw: Any, source: str) -> Any:
    """The known setting ``key``'s value ``raw`` as its type (:func:`_check_type`);
    InputError naming ``source`` where it is not one."""
    kind = _KINDS[key]
    if raw is None and kind.endswith("?"):
        return None
    converted = _check_type(kind, raw)
    if converted is None:
        raise InputError(f"{_where(source)}: {_described(key, raw)}, expected {_TYPE_NAMES[kind]}")
    return converted


# A setting's range check: its key, whether its value passes, what is allowed.
_Check = tuple[str, bool, str]
# Makes the error of a setting, from its key and what is wrong, naming where it came
# from; a check of several settings names the others after it, for when it is a default.
_Fail = Callable[..., InputError]
# A setting's key and value as its error names them (:func:`named_setting`): ``--epochs 0``.
_Named = Callable[[str], str]

_FINITE = ("dropout", "split_rate", "lr", "period", "noise", "grad_clip")
_COUNTS = (
    "n_layers",
    "value",
    "total_size",
    "sequence_size",
    "epochs",
    "batch_size",
    "n_in",
    "n_hidden",
    "n_out",
    "adding_samples",
    "checkpoint_every",
)


def _build(
    values: Mapping[str, Any],
    origin: Mapping[str, str],
    default_source: str,
    toml_source: str | None = None,
) -> Config:
    """Type-check, range-check and cross-check `values` over the defaults. `origin` names
    where each came from (`default_source` where it does not); `toml_source`, the TOML
    file among them, which an error then says to remove a setting from."""

    def fail(key: str, what: str, *others: str) -> InputError:
        source = next((origin[k] for k in (key, *others) if k in origin), default_source)
        return InputError(f"{_where(source)}: {what}")

    def how_to_drop(key: str) -> str:
        return _how_to_drop(key, origin.get(key, default_source), toml_source)

    def named(key: str) -> str:  # a default is no flag's: named by its key
        return named_setting(key, v[key], origin.get(key))

    def called(key: str) -> str:  # named without its value, in a formula
        return called_setting(key, origin.get(key))

    _check_keys(values, fail)
    v: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(Config)}
    for key, raw in values.items():
        v[key] = _converted(key, raw, origin.get(key, default_source))
    _check(_ranges(v), fail, named)
    v["device"] = device_name(v["device"])
    _check_csv_settings_apply(v, values, fail, named, how_to_drop, origin.get("data"))
    _check(_optional_ranges(v, called), fail, named)
    _check_min_length(v, fail, named, called)
    _set_features(v, values, fail, named)
    if v["data"] == "adding":
        _check_adding_split(v, fail, named)
    elif v["data"] in BUILTIN_DATA:
        _check_series_split(v, fail, named, called)
    return Config(**v)


def _check_keys(values: Mapping[str, Any], fail: _Fail) -> None:
    """InputError for the first key of `values` that is no setting, with the closest one."""
    known = list(_KINDS)
    for key in values:
        if not isinstance(key, str) or key not in _KINDS:
            close = difflib.get_close_matches(key, known, n=1) if isinstance(key, str) else []
            guess = f"did you mean {close[0]!r}? " if close else ""
            raise fail(key, f"unknown key {_show(key)} ({guess}known: {', '.join(known)})")


def _check(checks: Iterable[_Check], fail: _Fail, named: _Named) -> None:
    """InputError for the first of `checks` that does not pass."""
    for key, ok, allowed in checks:
        if not ok:
            raise fail(key, f"{named(key)} is out of range (allowed: {allowed})")


def _ranges(v: Mapping[str, Any]) -> list[_Check]:
    """The checks of each setting alone, but for the optional ones, in the order they run."""
    return [
        *((key, math.isfinite(v[key]), "a finite number") for key in _FINITE),
        *((key, v[key] >= 1, ">= 1") for key in _COUNTS),
        # checkpoint.json keeps every epoch's row and is written again at each checkpoint
        ("epochs", v["epochs"] <= MAX_EPOCHS, f"1 <= epochs <= {MAX_EPOCHS:,}"),
        ("value", v["value"] <= 2**24, "1 <= value <= 2**24, every number exact in float32"),
        *(
            (key, v[key] <= MAX_DATA_SIZE, f"1 <= {key} <= 1e12")
            for key in ("total_size", "adding_samples")
        ),
        ("dropout", 0.0 <= v["dropout"] < 1.0, "0 <= dropout < 1"),
        ("split_rate", 0.0 < v["split_rate"] < 1.0, "0 < split_rate < 1"),
        ("lr", v["lr"] > 0.0, "> 0"),
        ("period", v["period"] > 0.0, "> 0"),
        ("noise", v["noise"] >= 0.0, ">= 0"),
        ("grad_clip", v["grad_clip"] >= 0.0, ">= 0 (0 disables clipping)"),
        ("seed", 0 <= v["seed"] < 2**63, "0 <= seed < 2**63"),
        ("cell", v["cell"] in ("nstep", "step"), "nstep, step"),
        ("scale", v["scale"] in ("standard", "none"), "standard, none"),
        ("format_version", v["format_version"] == FORMAT_VERSION, str(FORMAT_VERSION)),
        (
            "device",
            device_name(v["device"]) is not None,
            "auto, cpu, cuda, cuda:K, -1 (CPU), K >= 0 (GPU K)",
        ),
        (
            "data",
            v["data"] in BUILTIN_DATA or is_csv_data(v["data"]),
            "fibonacci, sine, adding, csv:PATH",
        ),
    ]


def _optional_ranges(v: Mapping[str, Any], called: Callable[[str], str]) -> list[_Check]:
    """The checks of each optional setting alone (None passes), in the order they run;
    ``called`` names another setting in a range as it was given (:func:`called_setting`)."""
    columns = v["csv_columns"]
    series_id = v["csv_series_id"]
    min_length = v["min_length"]
    return [
        ("csv_columns", columns is None or len(columns) >= 1, "a non-empty list"),
        # A blank name is no column's: the reader strips the header's names.
        (
            "csv_columns",
            columns is None or all(_is_column(c) for c in columns),
            "column names (not blank) or indices >= 0",
        ),
        (
            "csv_series_id",
            series_id is None or _is_column(series_id),
            "a column name (not blank) or an index >= 0",
        ),
        # >= 1 whatever the data; the message tells its range with the data's and
        # sequence_size's, as :func:`_check_min_length` does
        ("min_length", min_length is None or min_length >= 1, _min_length_range(v, called)[1]),
    ]


def _is_column(column: str | int) -> bool:
    """Whether ``column`` can name a CSV column: a name that is not blank, or an index >= 0."""
    return column.strip() != "" if isinstance(column, str) else column >= 0


def _check_csv_settings_apply(
    v: Mapping[str, Any],
    given: Collection[str],
    fail: _Fail,
    named: _Named,
    how_to_drop: Callable[[str], str],
    data_source: str | None,
) -> None:
    """InputError for a CSV setting among those ``given`` (but None) for other data:
    accepted and ignored, it would be stored as if it applied. It ends with
    ``how_to_drop(key)``; ``data_source``: where data came from, which names it (None:
    the default)."""
    if is_csv_data(v["data"]):
        return
    for key in ("csv_columns", "csv_header", "csv_series_id"):
        if key in given and v[key] is not None:
            raise fail(
                key,
                f"{named(key)} applies only to {named_setting('data', 'csv:PATH', data_source)}, "
                f"not {named('data')}: {how_to_drop(key)}",
            )


def _check_min_length(
    v: Mapping[str, Any], fail: _Fail, named: _Named, called: Callable[[str], str]
) -> None:
    """min_length, when given, within the window lengths of the data and sequence_size
    (named by ``called``, as it was given)."""
    min_length = v["min_length"]
    if min_length is not None:
        lowest, allowed = _min_length_range(v, called)
        _check([("min_length", lowest <= min_length <= v["sequence_size"], allowed)], fail, named)


def _min_length_range(v: Mapping[str, Any], called: Callable[[str], str]) -> tuple[int, str]:
    """The lowest min_length of `v`'s data, and min_length's range as an error says it,
    with sequence_size named by ``called`` (``--sequence-size = 30`` from a flag)."""
    lowest = 2 if v["data"] == "adding" else 1
    return lowest, f"{lowest} <= min_length <= {called('sequence_size')} = {v['sequence_size']}"


def _data_features(data: str, columns: tuple[str | int, ...] | None) -> tuple[int, int] | None:
    """The (n_in, n_out) that the data fixes; None for a CSV file without csv_columns,
    whose loader checks them against the file."""
    if data in BUILTIN_DATA:
        return (2, 1) if data == "adding" else (1, 1)
    return None if columns is None else (len(columns), len(columns))


def _set_features(v: dict[str, Any], given: Collection[str], fail: _Fail, named: _Named) -> None:
    """n_in and n_out follow the data where not `given`, and must agree with it where given."""
    features = _data_features(v["data"], v["csv_columns"])
    if features is None:
        return
    for key, expected in zip(("n_in", "n_out"), features, strict=True):
        if key not in given:
            v[key] = expected
        ok = v[key] == expected
        _check([(key, ok, f"{expected} for {named('data')}")], fail, named)


def _check_adding_split(v: Mapping[str, Any], fail: _Fail, named: _Named) -> None:
    """An adding problem's sequence_size, and the training and validation samples that
    split_rate leaves (at least one each)."""
    _check([("sequence_size", v["sequence_size"] >= 2, f">= 2 for {named('data')}")], fail, named)
    samples = v["adding_samples"]
    n_train = train_points(v["split_rate"], samples)
    if not 1 <= n_train < samples:
        raise fail(
            "split_rate",
            f"{named('split_rate')} of {named('adding_samples')} "
            f"leaves {n_train} training and {samples - n_train} validation "
            "samples (need at least 1 each)",
            "adding_samples",
        )


def _check_series_split(
    v: Mapping[str, Any], fail: _Fail, named: _Named, called: Callable[[str], str]
) -> None:
    """The training and validation parts that split_rate makes of a built-in series:
    each must hold a window (sequence_size + 1 points). ``called`` names a setting in
    the message's formula as it was given (``--sequence-size + 1 = 11``)."""
    n_train = train_points(v["split_rate"], v["total_size"])
    n_val = v["total_size"] - n_train
    window = v["sequence_size"] + 1
    if n_train < window or n_val < window:
        longest = min(n_train, n_val) - 1
        size = called("sequence_size")
        hint = f" (here {size} <= {longest})" if longest >= 1 else ""
        raise fail(
            "split_rate",
            f"{named('split_rate')} of {named('total_size')} gives "
            f"{n_train} training and {n_val} validation points; each part needs at least "
            f"{size} + 1 = {window}{hint}",
            "total_size",
            "sequence_size",
        )
