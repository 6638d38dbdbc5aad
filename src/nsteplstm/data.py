"""Data: built-in series, the adding problem, CSV files, scaling, windows and splits.

A data source gives a list of 2-D float32 series `(T_k, n_features)`. Training
samples are windows of `sequence_size + 1` consecutive points: inputs are the
first `sequence_size` points, targets the same window shifted by one step.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .config import Config, flag_of, train_points
from .errors import (
    MAX_DATA_SIZE,
    InputError,
    ascii_float,
    check_int,
    decode_text,
    is_finite_number,
    is_int,
    plain,
    read_input,
    some,
)


def fibonacci_mod(total_size: int, value: int) -> np.ndarray:
    """The Fibonacci numbers F0=0, F1=1, ... modulo `value`, exactly; float32 (total_size,)."""
    total_size = check_int("total_size", total_size, maximum=MAX_DATA_SIZE)
    value = check_int("value", value)
    out = np.empty(total_size, dtype=np.float32)
    a, b = 0, 1 % value
    for i in range(total_size):
        out[i] = a
        a, b = b, (a + b) % value
    return out


def sine(total_size: int, period: float = 20.0, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """sin(2 pi t / period) for t = 0..total_size-1 (period in time steps), plus Gaussian
    noise of standard deviation `noise`; float32 (total_size,)."""
    total_size = check_int("total_size", total_size, maximum=MAX_DATA_SIZE)
    seed = check_int("seed", seed, 0)
    if not is_finite_number(period) or period <= 0:
        raise InputError(f"sine: period must be a finite number > 0, got {plain(period)}")
    if not is_finite_number(noise) or noise < 0:
        raise InputError(f"sine: noise must be a finite number >= 0, got {plain(noise)}")
    t = np.arange(total_size, dtype=np.float64)
    with np.errstate(all="ignore"):  # extreme settings give inf/NaN: load_dataset says so
        y = np.sin(2.0 * np.pi * t / period)
        if noise > 0:
            y = y + noise * np.random.default_rng(seed).standard_normal(total_size)
        return y.astype(np.float32)


def adding_problem(
    n_samples: int, seq_len: int, seed: int = 0, min_length: int | None = None
) -> tuple[list[np.ndarray], np.ndarray]:
    """The adding problem (a long-range memory task).

    Each sample is a float32 array (L, 2): channel 0 holds values uniform in [0, 1),
    channel 1 a mask with exactly two ones, one in the first half (index < L // 2)
    and one in the second half of the sample's own length. The target is the sum
    of the two marked values; targets are float32 (n_samples,).

    L = seq_len for every sample, or uniform in [min_length, seq_len] when
    min_length is given (min_length >= 2). Always answering 1.0 gives a mean
    squared error of Var(U1 + U2) = 1/6 ~= 0.167, the baseline to beat.
    """
    n_samples = check_int("n_samples", n_samples, maximum=MAX_DATA_SIZE)
    seq_len = check_int("seq_len", seq_len)
    seed = check_int("seed", seed, 0)
    lowest = seq_len if min_length is None else check_int("min_length", min_length)
    if not 2 <= lowest <= seq_len:
        raise InputError(
            f"adding_problem: n_samples = {n_samples}, seq_len = {seq_len}, "
            f"min_length = {min_length}; need n_samples >= 1 and 2 <= min_length <= seq_len"
        )
    rng = np.random.default_rng(seed)
    lengths = rng.integers(lowest, seq_len + 1, size=n_samples)
    values = rng.random((n_samples, seq_len), dtype=np.float32)
    half = lengths // 2
    first = rng.integers(0, half)
    second = rng.integers(half, lengths)
    rows = np.arange(n_samples)
    mask = np.zeros((n_samples, seq_len), dtype=np.float32)
    mask[rows, first] = 1.0
    mask[rows, second] = 1.0
    both = np.stack([values, mask], axis=-1)
    inputs = [both[k, : lengths[k]].copy() for k in range(n_samples)]
    targets = (values[rows, first] + values[rows, second]).astype(np.float32)
    return inputs, targets


def random_lengths(
    n: int, min_length: int, max_length: int, rng: np.random.Generator
) -> np.ndarray:
    """n int64 lengths in [min_length, max_length], stratified: each of the K lengths
    goes to n // K or n // K + 1 of the n places (which lengths get one more is
    drawn), in random order. Every place's length is uniform, as with independent
    draws, but the count of each length is fixed (for variable-length windows: the
    training loop cuts window i to its first lengths[i] steps).

    Fixed counts keep training's one-length batches at the same few shapes in every
    epoch, so oneDNN reuses the kernels it built for them; with independent draws
    the counts, hence the batch shapes, change every epoch, and a fused call on a
    shape not seen before costs about 10% more (CPU, the article's sizes).
    """
    n = check_int("n", n, minimum=0)
    if not 1 <= check_int("min_length", min_length) <= check_int("max_length", max_length):
        raise InputError(
            f"random_lengths: min_length = {min_length}, max_length = {max_length}; "
            "need 1 <= min_length <= max_length"
        )
    k = max_length - min_length + 1
    cycle = (np.arange(n, dtype=np.int64) + rng.integers(k)) % k  # (n,) each value n // k (+1)
    return rng.permutation(cycle + min_length)


# --------------------------------------------------------------------------- CSV


def _show(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


@dataclass(frozen=True)
class _Layout:
    """A CSV file's columns as its first row gives them, for the helpers of
    :func:`_read_table` and the messages that name a column.

    path: the file; first_line, first: the first row's line number and cells; names:
    the header's names (the first row), None without a header; told: whether the
    reader was told that the file has a header (None: detected); config: whether the
    reader's arguments are a Config's csv_* settings (:func:`load_series`), not
    :func:`read_csv`'s own."""

    path: str
    first_line: int
    first: list[str]
    names: list[str] | None
    told: bool | None
    config: bool = False

    @property
    def count(self) -> int:
        """How many columns the file has."""
        return len(self.first)

    def show(self, i: int) -> str:
        """Column ``i`` for a message: its header name, quoted, or its index."""
        return _show(self.names[i]) if self.names is not None else str(i)

    def available(self) -> str:
        """The columns a message offers: the header's names, or the indices."""
        if self.names is None:
            return f"indices 0..{self.count - 1}"
        most = len(self.names) if len(self.names) <= 10 else 5
        return some(self.names, most, _show, "columns")

    def called(self, argument: str) -> str:
        """The reader's ``argument`` as a message names it (:func:`_called`)."""
        return _called(argument, self.config)

    def header_false(self) -> str:
        """What a header told absent does, and how to undo it, in the words of
        :meth:`called`."""
        if not self.config:
            return "header=False reads the first row as data: pass True, or None to detect it"
        return (
            f"csv_header = false ({flag_of('csv_header')} false) reads the first row as data: "
            "set it to true, or leave it out to detect the header"
        )


def _called(argument: str, config: bool) -> str:
    """The reader's ``argument`` ("columns", "header", "series_id") as a message names
    it: read_csv's argument, or where ``config``, a Config's setting by its key and its
    flag (``csv_columns (--csv-columns)``), since which of them was given (a flag, a
    TOML file, Python) is not known once the Config is built."""
    key = f"csv_{argument}"
    return f"{key} ({flag_of(key)})" if config else argument


def _resolve_column(col: str | int, argument: str, layout: _Layout) -> int:
    """0-based index of ``col``, a header name or an index, given by the reader's
    ``argument`` ("columns" or "series_id"), which errors name (:meth:`_Layout.called`)."""
    key = "column" if argument == "columns" else f"{layout.called(argument)} column"
    if is_int(col):
        return _resolve_index(int(col), key, layout, argument)
    if isinstance(col, str):
        return _resolve_name(col, key, layout)
    raise InputError(f"{layout.path}: {key} {plain(col)} must be a column name or a 0-based index")


def _resolve_index(col: int, key: str, layout: _Layout, argument: str) -> int:
    """``col`` once it is an index of the file's columns; ``key`` names it in errors,
    ``argument`` is the reader's argument that gave it ("columns" or "series_id")."""
    if 0 <= col < layout.count:
        return col
    hint = _separator_hint(layout.first)
    if str(col) in layout.first:  # a header of numbers, such as years
        hint = (
            f"; the first row has a cell {str(col)!r}, but a number here is an index: to "
            f"name it, {_by_name(str(col), argument, layout.config)}"
        )
    n = layout.count
    raise InputError(
        f"{layout.path}: {key} index {col} is not present (the file has {n} "
        f"column{'s' * (n != 1)}: {layout.available()}){hint}"
    )


def _by_name(name: str, argument: str, config: bool) -> str:
    """How to give the column ``name``, which is a number, by name to the reader's
    ``argument`` ("columns" or "series_id"): a flag takes a number as an index, so for a
    Config (``config``) only a TOML file can."""
    value = f'["{name}"]' if argument == "columns" else f'"{name}"'
    if config:
        return f"set csv_{argument} = {value} and csv_header = true in a TOML file"
    return f"pass {argument}={value} and header=True"


def _resolve_name(col: str, key: str, layout: _Layout) -> int:
    if layout.names is None:
        fix = layout.header_false() if layout.told is False else "add the header row"
        raise InputError(
            f"{layout.path}: {key} {_show(col)} given by name but the file has no header "
            f"({fix}, or use 0-based indices 0..{layout.count - 1})"
        )
    matches = [i for i, n in enumerate(layout.names) if n == col.strip()]
    if not matches:
        hint = _separator_hint(layout.first)
        if not hint and any(_is_number(n) for n in layout.names):
            hint = "; the first row holds numbers: if it is data, the file has no header"
        raise InputError(
            f"{layout.path}: {key} {_show(col)} not present (available: {layout.available()}){hint}"
        )
    if len(matches) > 1:
        shown = ", ".join(map(str, matches))
        raise InputError(
            f"{layout.path}: {key} {_show(col)} names several columns ({shown}); rename all "
            "but one, or give the column by its index"
        )
    return matches[0]


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _is_number(cell: str) -> bool:
    try:
        ascii_float(cell)
    except ValueError:
        return False
    return True


def _separator_hint(cells: Sequence[str]) -> str:
    """``; the file looks semicolon-separated ..`` where a cell holds a ``;`` or a tab."""
    for sep, name in ((";", "semicolon"), ("\t", "tab")):
        if any(sep in cell for cell in cells):
            return f"; the file looks {name}-separated, but only commas separate columns"
    return ""


# Digits grouped by thousands: 1,234.5 1.234,5 1 234,5 1'234.5 (a no-break space too);
# the decimal mark, if any, is not the grouping mark.
_GROUPED = re.compile(
    r"[+-]?[0-9]{1,3}(?P<group>[,.' \u00a0\u202f\u2019])[0-9]{3}(?:(?P=group)[0-9]{3})*"
    r"(?:(?!(?P=group))[.,][0-9]*)?"
)


def _number_format_hint(cell: str) -> str:
    """A hint for a cell that is no number to the reader but looks like one written
    with thousands separators or a decimal comma (it is not read as one: ``1,000`` may
    be a thousand or one)."""
    if _GROUPED.fullmatch(cell):
        return (
            "; it looks like a number with thousands separators: write numbers without "
            "them and with a decimal point: 1234.5, not 1,234.5 or 1 234,5"
        )
    if re.fullmatch(r"[+-]?[0-9]*,[0-9]+", cell):
        return (
            "; it looks like a number with a decimal comma: write numbers with a decimal "
            "point: 1234.5, not 1234,5"
        )
    return ""


# A number as the hints below take it: decimal digits, perhaps a point and an exponent
# (not "inf" or "nan", which ascii_float also reads).
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _symbol_hint(cell: str) -> str:
    """A hint for a cell that is a number with a currency sign (``€12.5``, ``-$3``,
    ``12.5 €``) or a percent sign (``12%``) before or after it, then the hint of
    :func:`_number_format_hint` for the number left (``$1,000``)."""
    spaces = " \u00a0\u202f"  # French Excel puts a no-break space before € and %
    sign = cell[:1] if cell[:1] in ("+", "-") else ""
    rest = cell[len(sign) :].strip(spaces)
    if rest[:1] and unicodedata.category(rest[0]) == "Sc":
        symbol, number = rest[0], sign + rest[1:].strip(spaces)
    elif rest[-1:] == "%" or (rest[-1:] and unicodedata.category(rest[-1]) == "Sc"):
        symbol, number = rest[-1], sign + rest[:-1].strip(spaces)
    else:
        return ""
    what = "percent" if symbol == "%" else "currency"
    said = f"; remove the {what} sign: numbers must be plain"
    if not _DECIMAL.fullmatch(number):
        format_hint = _number_format_hint(number)  # $1,000.5: the separators too
        return said + format_hint if format_hint else ""
    if len(number) > 40:
        return said
    if symbol == "%" and "e" not in number.lower():  # 1e999999999 / 100 has 1e9 digits
        return f"{said}, write {number} or {Decimal(number).scaleb(-2):f}"
    return f"{said}, write {number}"


def _decimal_comma_hint(cells: Sequence[str], where: str = "") -> str:
    """A hint for a row that may be numbers written with decimal commas, read as
    several columns (``50,0`` as 50 and 0): every cell a whole number, unsigned past
    the first. ``where``: where the row is, for the message (`` on line 1``)."""
    # ASCII digits: \d also takes "٣", which is no number to the reader (ascii_float)
    whole = [re.fullmatch(r"[+-]?[0-9]+" if i == 0 else r"[0-9]+", c) for i, c in enumerate(cells)]
    if len(cells) < 2 or not all(whole):
        return ""
    return (
        f"; if {','.join(cells[:2])}{where} is one number with a decimal comma, write it "
        "with a decimal point: commas separate columns"
    )


def _data_cells(
    first: list[str], columns: Sequence[str | int] | None, series_id: str | int | None
) -> list[int]:
    """Indices of ``first``'s cells that decide whether it is a header: the data
    columns when they are known by index, else (a column named: names need a header;
    no such column) every cell."""
    every = list(range(len(first)))
    given = [] if columns is None else list(columns)
    if isinstance(series_id, str) or any(isinstance(c, str) for c in given):
        return every
    if columns is None:
        data = [i for i in every if i != series_id]
    else:
        data = [c for c in given if is_int(c) and 0 <= c < len(first)]
    return data or every


# Excel's first line naming the column separator, such as "sep=;"
_EXCEL_SEPARATOR = re.compile(r"sep=(.)(?=\r|\n|\Z)", re.IGNORECASE)


def _without_excel_separator(text: str, path: str | Path) -> str:
    """``text`` without a first line ``sep=,`` (which Excel reads as "commas separate
    columns"), its line end kept so that every later line keeps its number; InputError
    where that line names another separator (``sep=;``)."""
    found = _EXCEL_SEPARATOR.match(text)
    if found is None:
        return text
    if found.group(1) != ",":
        raise InputError(
            f"{path}: line 1: {_show(found.group(0))} declares {_show(found.group(1))} as the "
            "column separator (Excel's separator line), but only commas separate columns: "
            "save the file as comma-separated CSV, with decimal points"
        )
    return text[found.end() :]


def _read_rows(path: str | Path) -> list[tuple[int, list[str]]]:
    """Non-blank rows of a CSV file with their 1-based line numbers.

    A blank line is one with no cells, or one unquoted cell of white space. A row of
    empty cells (``,,`` or a quoted ``""``) is a row whose values are missing: kept,
    for the reader to refuse (dropping it would shift every later time step)."""
    text = _without_excel_separator(
        decode_text(read_input(path, str(path)), str(path), "CSV"), path
    )
    rows: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    line = 1
    try:
        for row in reader:
            cells = [c.strip() for c in row]
            if row and not (len(row) == 1 and row[0] != "" and not cells[0]):
                rows.append((line, cells))
            line = reader.line_num + 1
    except csv.Error as e:
        raise InputError(f"{path}: line {reader.line_num}: malformed CSV ({e})") from None
    return rows


def read_csv(
    path: str | Path,
    columns: Sequence[str | int] | None = None,
    header: bool | None = None,
    series_id: str | int | None = None,
) -> dict[str, np.ndarray]:
    """Read numeric columns of a CSV file as float64 series (T_k, n_columns), by id
    (every value finite in float32, the models' type; scaling happens in float64).

    header None detects one: a first row with a non-numeric cell is a header,
    counting only the data columns when they are given by index (or are all but an
    index series_id): an id or a date in the first row of a file without header
    then stays data.
    columns are header names or 0-based indices (default: every column but the
    series id). With series_id, the rows are grouped by that column's text into
    one series per id, keyed by that text in order of first appearance (each keeps
    its row order); without it the file is one series, keyed "". Blank lines are
    skipped; a row of empty cells is a missing value, refused like any other cell
    that is not a number (an empty cell is no header name either). Every problem with
    the file raises InputError naming the file, line, column and value.
    """
    return _read_table(path, columns, header, series_id)[0]


def _read_table(
    path: str | Path,
    columns: Sequence[str | int] | None,
    header: bool | None,
    series_id: str | int | None,
    config: bool = False,
) -> tuple[dict[str, np.ndarray], list[str] | None, str | None, str]:
    """:func:`read_csv`, the header's names of the columns read and of the series_id
    column (None without a header, or without series_id), and a hint for the errors
    that reading it well may yet lead to (:func:`_split_in_every_row_hint`, else "").
    ``config``: the arguments are a Config's csv_* settings, which messages then name
    so (:meth:`_Layout.called`)."""
    _check_arguments(path, columns, header, config)
    header = None if header is None else bool(header)  # np.False_ is not False
    rows = _read_rows(path)
    if not rows:
        raise InputError(f"{path}: empty file (no rows)")
    first_line, first = rows[0]
    has_header = _is_header(first, columns, series_id) if header is None else header
    layout = _Layout(str(path), first_line, first, first if has_header else None, header, config)
    body = rows[1:] if has_header else rows
    if not body:
        raise InputError(f"{path}: no data rows after the header (line {first_line})")
    id_index = None
    if series_id is not None:
        id_index = _resolve_column(series_id, "series_id", layout)
    use = _data_columns(columns, series_id, id_index, layout)
    if columns is None:
        use = _without_empty_last(use, body, layout)
    series = _group_rows(body, use, id_index, layout, every_column=columns is None)
    if layout.names is None:
        return series, None, None, _split_in_every_row_hint(body, use, layout)
    id_name = None if id_index is None else layout.names[id_index]
    return series, [layout.names[i] for i in use], id_name, ""


def _check_arguments(
    path: str | Path, columns: Sequence[str | int] | None, header: bool | None, config: bool
) -> None:
    """InputError unless :func:`read_csv`'s arguments are of its types (the columns
    themselves are checked against the file); ``config``: they are a Config's csv_*
    settings, which the messages then name so (:func:`_called`)."""
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"read_csv: path must be a file path, got {type(path).__name__}")
    if header is not None and not isinstance(header, (bool, np.bool_)):
        allowed = "true, false or unset (detect)" if config else "None (detect), True or False"
        raise InputError(
            f"{path}: {_called('header', config)} must be {allowed}, got {plain(header)}"
        )
    if columns is not None and (
        isinstance(columns, (str, bytes)) or not isinstance(columns, Sequence)
    ):
        raise InputError(
            f"{path}: {_called('columns', config)} must be a list of column names or "
            f"indices, got {columns!r}"
        )


def _is_header(
    first: list[str], columns: Sequence[str | int] | None, series_id: str | int | None
) -> bool:
    """Whether ``first``, a file's first row, is its header, where the reader was not
    told: a cell that decides it (:func:`_data_cells`) is not a number. An empty cell
    is a missing value, not a column's name."""
    cells = _data_cells(first, columns, series_id)
    return not all(_is_number(first[i]) or first[i] == "" for i in cells)


def _data_columns(
    columns: Sequence[str | int] | None,
    series_id: str | int | None,
    id_index: int | None,
    layout: _Layout,
) -> list[int]:
    """0-based indices of the columns to read: ``columns`` (names or indices), each
    once and not the series_id column (``series_id`` as given, at ``id_index``); by
    default every other one."""
    if columns is None:
        use = [i for i in range(layout.count) if i != id_index]
        if not use:
            raise InputError(
                f"{layout.path}: no data columns besides the {layout.called('series_id')} column"
            )
        return use
    if len(columns) == 0:
        raise InputError(
            f"{layout.path}: {layout.called('columns')} is empty (give at least one column)"
        )
    use = [_resolve_column(c, "columns", layout) for c in columns]
    twice = [c for c, i in zip(columns, use, strict=True) if use.count(i) > 1]
    if twice:  # the model would get one column as two features
        shown = ", ".join(_given(c) for c in twice)
        raise InputError(
            f"{layout.path}: {layout.called('columns')} {shown} name the same column; give it once"
        )
    if id_index is not None and id_index in use:
        column = _given(columns[use.index(id_index)])
        as_id = "" if _given(series_id) == column else f" (given as {_given(series_id)})"
        raise InputError(
            f"{layout.path}: column {column} is both a data column and the series_id{as_id}: "
            f"drop it from {layout.called('columns')} or choose another "
            f"{layout.called('series_id')}"
        )
    return use


def _given(column: str | int | None) -> str:
    """A column as the reader's caller gave it, for a message: a name quoted, an index bare."""
    return _show(column) if isinstance(column, str) else str(column)


def _without_empty_last(
    use: list[int], body: list[tuple[int, list[str]]], layout: _Layout
) -> list[int]:
    """The column indices ``use`` without the file's last column where it has no name
    and no value in any row of ``body`` (a comma ending every line, as some exporters
    write), and other columns remain. A row of another length is left for
    :func:`_check_row_length` to refuse."""
    last = layout.count - 1
    if len(use) < 2 or use[-1] != last or (layout.names is not None and layout.names[last]):
        return use
    if all(len(cells) != layout.count or cells[last] == "" for _, cells in body):
        return use[:-1]
    return use


def _group_rows(
    body: list[tuple[int, list[str]]],
    use: list[int],
    id_index: int | None,
    layout: _Layout,
    every_column: bool,
) -> dict[str, np.ndarray]:
    """The columns ``use`` of the rows ``body`` as float64 series (T_k, len(use)), by
    the text of the series_id column at ``id_index`` ("" for all rows without one).
    ``every_column``: the columns were not chosen, which a cell's error then says where
    choosing them can leave a column out."""
    hint = ""
    if every_column and len(use) > 1:
        hint = f"; without {layout.called('columns')} every column is read"
    first_hint = _header_hint(body, use, layout) or hint  # a header read as data: no other
    groups: dict[str, list[list[float]]] = {}
    for line, cells in body:
        _check_row_length(line, cells, layout)
        here = first_hint if line == layout.first_line else hint
        values = [_cell_value(line, i, cells[i], layout, here) for i in use]
        groups.setdefault(_series_key(line, cells, id_index, layout), []).append(values)
    return {k: np.asarray(g, dtype=np.float64).reshape(len(g), len(use)) for k, g in groups.items()}


def _header_hint(body: list[tuple[int, list[str]]], use: list[int], layout: _Layout) -> str:
    """A hint for a cell of the first row of ``body`` that is not a number, where the
    reader was told that the file has no header but that row looks like one: none of
    its cells is a number or empty, and the next row's cells in the columns ``use``
    are all numbers."""
    if layout.told is not False or len(body) < 2:
        return ""
    if any(cell == "" or _is_number(cell) for cell in layout.first):
        return ""
    _, cells = body[1]
    if len(cells) != layout.count or not all(_is_number(cells[i]) for i in use):
        return ""
    return (
        f"; line {layout.first_line} looks like a header (text in every cell, where line "
        f"{body[1][0]} has numbers): {layout.header_false()}"
    )


def _check_row_length(line: int, cells: list[str], layout: _Layout) -> None:
    n = len(cells)
    if n == layout.count:
        return
    why = (
        _separator_hint(cells)
        or _separator_hint(layout.first)
        or _trailing_comma_hint(line, cells, layout)
        or _split_number_hint(cells, layout)
    )
    raise InputError(
        f"{layout.path}: line {line} has {n} cell{'s' * (n != 1)}, expected "
        f"{layout.count} (as in line {layout.first_line}){why}"
    )


def _trailing_comma_hint(line: int, cells: list[str], layout: _Layout) -> str:
    """A hint for a row one cell longer or shorter than the first row, where the longer
    of the two ends in an empty cell: a comma at the end of only some lines."""
    first = layout.first_line
    if len(cells) == layout.count + 1 and cells[-1] == "":
        return f"; line {line} ends in a comma (an empty last cell), line {first} does not"
    if len(cells) == layout.count - 1 and layout.first[-1] == "":
        return f"; line {first} ends in a comma (an empty last cell), line {line} does not"
    return ""


def _split_number_hint(cells: list[str], layout: _Layout) -> str:
    """A hint for a row ``cells`` whose length is not the first row's, where the longer
    of the two holds a number split at its commas: thousands separators
    (:func:`_split_thousands_hint`) or a decimal comma (:func:`_decimal_comma_hint`).
    The first row is suspected only where it is data (no header): then it is line 1's
    ``1,000.5`` that made the file's columns two, and the later rows seem short."""
    if len(cells) > layout.count:
        extra = len(cells) - layout.count
        return _split_thousands_hint(cells, extra, lambda i: _in_column(i, layout)) or (
            _decimal_comma_hint(cells)
        )
    if layout.names is not None:
        return ""
    extra = layout.count - len(cells)
    place = f" on line {layout.first_line}"
    return _split_thousands_hint(layout.first, extra, lambda _: place) or (
        _decimal_comma_hint(layout.first, place)
    )


def _in_column(i: int, layout: _Layout) -> str:
    """`` in column C`` for a number that begins at cell ``i`` of a row too long, where
    the cells before it are in their columns; "" past the file's columns."""
    return f" in column {layout.show(i)}" if i < layout.count else ""


def _thousands_end(cells: Sequence[str], i: int) -> int:
    """The index past the last of ``cells`` that, from ``cells[i]`` on, are one number
    split at its thousands separators (``1``, ``000``, ``000.5`` of 1,000,000.5): a
    cell of 1 to 3 digits, not 0, then cells of 3 digits, the last of them perhaps
    with a decimal part; ``i + 1`` where ``cells[i]`` begins no such number."""
    j = i + 1
    if re.fullmatch(r"[+-]?[1-9][0-9]{0,2}", cells[i]):
        while j < len(cells) and re.fullmatch(r"[0-9]{3}", cells[j]):
            j += 1
        if j < len(cells) and re.fullmatch(r"[0-9]{3}\.[0-9]*", cells[j]):
            j += 1
    return j


def _split_thousands_hint(cells: list[str], extra: int, where: Callable[[int], str]) -> str:
    """A hint for a row ``cells`` with ``extra`` cells too many (the row itself, or the
    first row beside a shorter one), where some of its adjacent cells joined at their
    commas are a number with thousands separators (``1,000.5`` read as 1 and 000.5,
    :func:`_thousands_end`); no more cells joined than the row has too many.
    ``where(i)``: where a number beginning at cell ``i`` is, for the message
    (`` in column 'sales'``). One group without a decimal part (``1,234``) may be a
    decimal comma: both are said."""
    i = 0
    while i < len(cells):
        j = _thousands_end(cells, i)
        if not 1 <= j - i - 1 <= extra:
            i = j
            continue
        written = ",".join(cells[i:j]) + where(i)
        joined = "".join(cells[i:j])
        if j - i == 2 and "." not in cells[i + 1]:
            return (
                f"; if {written} is one number, write it {joined} (a thousands separator) "
                f"or {cells[i]}.{cells[i + 1]} (a decimal comma): commas separate columns"
            )
        return (
            f"; if {written} is one number with thousands separators, write it without "
            f"them, {joined}: commas separate columns"
        )
    return ""


def _split_in_every_row_hint(
    body: list[tuple[int, list[str]]], use: list[int], layout: _Layout
) -> str:
    """A hint for the errors that follow reading a file without a header whose columns
    ``use``, adjacent, are in every row of ``body`` one number split at its thousands
    separators (:func:`_thousands_end`: ``1,000.5`` on every line, read as the two
    columns 1 and 000.5, which no row's length tells); "" otherwise. Numbers of one
    group and no decimal part on every line (``1,234``) may have decimal commas: both
    are said."""
    if layout.names is not None or len(use) < 2 or use != list(range(use[0], use[-1] + 1)):
        return ""  # only adjacent cells in their order were one number
    split = [[cells[i] for i in use] for _, cells in body]
    if not all(_thousands_end(cells, 0) == len(cells) for cells in split):
        return ""
    line, first = body[0][0], split[0]
    written = f"{','.join(first)} on line {line}"
    if len(use) == 2 and not any("." in cells[1] for cells in split):
        return (
            f"; if the commas are thousands separators or decimal commas ({written} for "
            f"{''.join(first)} or {'.'.join(first)}), write the numbers without thousands "
            "separators and with decimal points: commas separate columns"
        )
    return (
        f"; if the commas are thousands separators ({written} for {''.join(first)}), "
        "write the numbers without them: commas separate columns"
    )


def _cell_value(line: int, i: int, cell: str, layout: _Layout, hint: str) -> float:
    """The number in ``cell``, at ``line`` in column ``i``, once it is finite in
    float32; ``hint`` ends the error of a cell that is not a number."""
    try:
        x = ascii_float(cell)
    except ValueError:
        raise InputError(
            f"{layout.path}: line {line}, column {layout.show(i)}: {_show(cell)} is not a "
            f"number (expected a finite decimal number"
            f"{_number_format_hint(cell) or _symbol_hint(cell)}{hint}"
            f"{_separator_hint([cell])})"
        ) from None
    if not abs(x) <= _FLOAT32_MAX:
        raise InputError(
            f"{layout.path}: line {line}, column {layout.show(i)}: {_show(cell)} is not "
            "finite in float32 (expected a finite number below 3.4e38 in magnitude)"
        )
    return x


def _series_key(line: int, cells: list[str], id_index: int | None, layout: _Layout) -> str:
    """The id of the series a row belongs to: its series_id cell, "" without one."""
    if id_index is None:
        return ""
    if not cells[id_index]:
        raise InputError(
            f"{layout.path}: line {line}, {layout.called('series_id')} column "
            f"{layout.show(id_index)}: empty "
            "(every row needs the id of its series)"
        )
    return cells[id_index]


# ----------------------------------------------------------------------- scaling


@dataclass
class Scaler:
    """Per-feature standardization x' = (x - mean) / std; mean, std float64 (F,).

    Computed in float64: a signal riding on a large offset (1e10 + sin t) keeps its
    shape, and (x - mean) cannot overflow for values finite in float32."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, train_arrays: Sequence[np.ndarray]) -> Scaler:
        """Fit on arrays (T_k, F) stacked along time; a feature with std 0 gets std 1,
        as does one whose values differ only past float64's 15 significant digits."""
        if not isinstance(train_arrays, (list, tuple)) or not train_arrays:
            raise InputError(
                "Scaler.fit: train_arrays must be a non-empty list of (T_k, F) arrays, got "
                f"{type(train_arrays).__name__}"
            )
        shapes = {np.shape(a)[1:] for a in train_arrays}
        if len(shapes) != 1 or len(next(iter(shapes))) != 1:
            raise InputError(
                f"Scaler.fit: arrays must all be (T_k, F) with one F, got shapes "
                f"{sorted(np.shape(a) for a in train_arrays)}"
            )
        stacked = np.concatenate([np.asarray(a, dtype=np.float64) for a in train_arrays], axis=0)
        if len(stacked) == 0 or not np.isfinite(stacked).all():
            raise InputError("Scaler.fit: the training data must hold rows, all finite")
        # Offsets from the first row are exact where values are close (Sterbenz): a
        # constant feature gets mean = its value and std = 0 exactly, whatever its sum's
        # rounding (0.1 seven times had std 1.4e-17, and was scaled by 7e16).
        offsets = stacked - stacked[0]
        mean, std = stacked[0] + offsets.mean(axis=0), offsets.std(axis=0)
        none = ~(std.astype(np.float32) > 0)  # a spread below float32's range
        std[none | _negligible_spread(stacked)] = 1.0
        return cls(mean, std)

    def transform(self, a: np.ndarray) -> np.ndarray:
        """Scale `a` (..., F) to float32 (computed in float64)."""
        self._check_features(a)
        return ((np.asarray(a, dtype=np.float64) - self.mean) / self.std).astype(np.float32)

    def inverse(self, a: np.ndarray) -> np.ndarray:
        """Undo `transform` on `a` (..., F): float64 data units."""
        self._check_features(a)
        return np.asarray(a, dtype=np.float64) * self.std + self.mean

    def _check_features(self, a: np.ndarray) -> None:
        if np.ndim(a) < 1 or np.shape(a)[-1] != self.mean.shape[0]:
            raise InputError(
                f"Scaler: arrays must end in {self.mean.shape[0]} features, got shape {np.shape(a)}"
            )

    def to_dict(self) -> dict[str, list[float]]:
        """{"mean": [...], "std": [...]} (JSON-able)."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: Any, source: str = "scaler") -> Scaler:
        """Inverse of `to_dict`; bad content raises InputError naming `source`."""
        if not isinstance(d, dict) or set(d) != {"mean", "std"}:
            raise InputError(f"{source}: scaler must be a table with keys 'mean' and 'std'")
        arrays = []
        for key in ("mean", "std"):
            values = d[key]
            if not isinstance(values, list) or not all(is_finite_number(x) for x in values):
                raise InputError(f"{source}: scaler {key} must be a list of finite numbers")
            arrays.append(np.asarray(values, dtype=np.float64))
        mean, std = arrays
        if mean.shape != std.shape or mean.size == 0 or not np.all(std > 0):
            raise InputError(
                f"{source}: scaler mean and std must have the same non-zero length and std > 0"
            )
        return cls(mean, std)


# Two different values written with at most 15 significant decimal digits (what float64
# holds) differ, once read, by more than this many units in the last place of the larger
# (over 7.7e-16 of it; 3 ulps are at most 6.7e-16 of it).
_NEGLIGIBLE_ULPS = 3


def _negligible_spread(stacked: np.ndarray) -> np.ndarray:
    """Per feature of ``stacked`` (T, F): bool (F,), whether its values lie within
    _NEGLIGIBLE_ULPS units in the last place (float64) of its largest magnitude, as
    0.3 and 0.1 + 0.2 do: differences past 15 significant digits are rounding."""
    spread = stacked.max(axis=0) - stacked.min(axis=0)
    return spread <= _NEGLIGIBLE_ULPS * np.spacing(np.abs(stacked).max(axis=0))


# ------------------------------------------------------------ windows and splits


def make_windows(series: np.ndarray, sequence_size: int) -> tuple[np.ndarray, np.ndarray]:
    """All windows of sequence_size + 1 consecutive points of `series` (T, F).

    Returns inputs and targets, each float32 (N, sequence_size, F) with
    N = T - sequence_size; targets[n, t] = series[n + t + 1] = inputs[n, t + 1].
    """
    if not isinstance(series, np.ndarray):
        got = type(series).__name__
        raise InputError(f"make_windows: series must be a 2-D array (T, F) in numpy, got a {got}")
    if series.ndim != 2:
        raise InputError(f"make_windows: series must be a 2-D array (T, F), got {series.shape}")
    sequence_size = check_int("sequence_size", sequence_size)
    t = series.shape[0]
    if t < sequence_size + 1:
        raise InputError(
            f"series of {t} points is shorter than one window of {sequence_size + 1} points "
            f"(sequence_size = {sequence_size})"
        )
    windows = sliding_window_view(series, sequence_size + 1, axis=0)  # (N, F, S+1)
    windows = windows.transpose(0, 2, 1)
    inputs = np.ascontiguousarray(windows[:, :-1], dtype=np.float32)
    targets = np.ascontiguousarray(windows[:, 1:], dtype=np.float32)
    return inputs, targets


def split_series(
    series_list: Sequence[np.ndarray], split_rate: float, sequence_size: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Split each series (T, F) in time: its first floor(split_rate * T) points train,
    the rest validate, so training and validation windows never share a point.

    Only parts long enough for one window (sequence_size + 1 points) are returned;
    InputError when no training or no validation window remains.
    """
    if isinstance(series_list, np.ndarray):  # its rows would be taken as series
        raise InputError(
            f"split_series: series_list must be a list of (T, F) arrays, got one array of "
            f"shape {series_list.shape}: pass [series]"
        )
    if not is_finite_number(split_rate) or not 0 < split_rate < 1:
        raise InputError(f"split_rate must be a number in (0, 1), got {plain(split_rate)}")
    sequence_size = check_int("sequence_size", sequence_size)
    parts = [_parts(s, split_rate, sequence_size) for s in series_list]
    train = [part for part, _ in parts if part is not None]
    val = [part for _, part in parts if part is not None]
    if not train or not val:
        lengths = [len(s) for s in series_list]
        shown = str(lengths) if len(lengths) <= 5 else f"{lengths[:5]} ... ({len(lengths)} series)"
        missing = "training" if not train else "validation"
        longest = max(lengths, default=0)
        n_train = train_points(split_rate, longest)
        parts = "it splits" if len(lengths) == 1 else "the longest splits"
        raise InputError(
            f"split_rate = {split_rate} leaves no {missing} window: series of {shown} points "
            f"({parts} into {n_train} training and {longest - n_train} validation points); "
            f"each part needs at least sequence_size + 1 = {sequence_size + 1} points"
            f"{_split_hint(longest, split_rate, sequence_size)}"
        )
    return train, val


def _parts(
    series: np.ndarray, split_rate: float, sequence_size: int
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """A series' training and validation parts (:func:`split_series`), each None where it
    is too short for a window of sequence_size + 1 points."""
    n_train = train_points(split_rate, len(series))
    train, val = series[:n_train], series[n_train:]
    return (
        train if len(train) >= sequence_size + 1 else None,
        val if len(val) >= sequence_size + 1 else None,
    )


def _split_hint(length: int, split_rate: float, sequence_size: int) -> str:
    """``"; try ..."``: the settings that give a series of ``length`` points a training
    and a validation window (the largest sequence_size at this split and at an even
    one, the nearest split_rate in steps of 0.001), or "" where none does."""
    window = sequence_size + 1
    n_train = train_points(split_rate, length)
    tries = []
    here = min(n_train, length - n_train) - 1  # the largest sequence_size at this split
    if here >= 1:
        tries.append(f"sequence_size <= {here}")
    if length // 2 - 1 > max(here, 0) and split_rate != 0.5:  # the most any split allows
        tries.append(f"sequence_size <= {length // 2 - 1} with split_rate 0.5")
    if n_train < window:
        rate = math.ceil(window / length * 1000) / 1000
    else:
        rate = math.floor((length - window) / length * 1000) / 1000
    at_rate = train_points(rate, length)
    if 0 < rate < 1 and min(at_rate, length - at_rate) >= window:
        tries.append(f"split_rate {'>=' if n_train < window else '<='} {rate}")
    return f"; try {' or '.join(tries)}" if tries else ""


# ------------------------------------------------------------------- datasets


@dataclass
class Series:
    """The series of a data source (fibonacci, sine, csv), for closed-loop forecasting.

    series: each series (T_k, F) float32, scaled as the model sees it; unscaled: the
    same in data units, as read (float64 for a CSV, float32 for a generated series);
    scaler: the scaling applied (None when unscaled), `scaler.inverse` returns to data
    units; integer_features: per feature, whether every raw value is an integer
    (fibonacci always), so its forecasts may be rounded; kind: "fibonacci", "sine" or
    "csv"; series_ids: their ids (the csv_series_id column's text), None for one series
    without an id; features: the F features' names (a CSV's header), None where there
    are none; id_column: the header's name of the csv_series_id column, None where
    there is none.
    """

    series: list[np.ndarray]
    unscaled: list[np.ndarray]
    scaler: Scaler | None
    integer_features: list[bool]
    kind: str
    series_ids: list[str] | None = None
    features: list[str] | None = None
    id_column: str | None = None

    @property
    def integer_valued(self) -> bool:
        """Every feature holds integers only."""
        return all(self.integer_features)

    @property
    def header(self) -> dict[str, Any] | None:
        """The header's names of the columns read, ``{"columns": features, "series_id":
        id_column}``; None without a header (and for generated series)."""
        if self.features is None:
            return None
        return {"columns": self.features, "series_id": self.id_column}


@dataclass(kw_only=True)
class Dataset(Series):
    """A :class:`Series` with its windows: train_x, train_y, val_x, val_y float32
    (N, sequence_size, F), targets = inputs shifted by one step. left_out: the ids
    (:attr:`Series.series_ids`, else the 0-based index as text) of the series that
    gave no training window, then of those that gave no validation window (their part
    of the split was shorter than sequence_size + 1 points)."""

    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    left_out: tuple[list[str], list[str]] = field(default_factory=lambda: ([], []))

    @property
    def n_features(self) -> int:
        """F, the features per time step."""
        return self.train_x.shape[2]


@dataclass
class AddingDataset:
    """The adding problem, split by split_rate (first samples train, the rest validate).

    train_x, val_x: lists of float32 (L_k, 2) inputs, lengths may differ
    (min_length); train_y, val_y: float32 (N,) targets, one per sequence (the
    model's output at each sequence's last step is compared with it).
    """

    train_x: list[np.ndarray]
    train_y: np.ndarray
    val_x: list[np.ndarray]
    val_y: np.ndarray
    kind: str = "adding"


def _windows(parts: list[np.ndarray], sequence_size: int) -> tuple[np.ndarray, np.ndarray]:
    pairs = [make_windows(p, sequence_size) for p in parts]
    return (
        np.concatenate([x for x, _ in pairs], axis=0),
        np.concatenate([y for _, y in pairs], axis=0),
    )


def source_digest(config: Config) -> str | None:
    """SHA-256 (hex) of the CSV file ``config.data`` names; None for generated data."""
    path = config.csv_path
    if path is None:
        return None
    return hashlib.sha256(read_input(path, str(path))).hexdigest()


def rows_digest(rows: np.ndarray) -> str:
    """SHA-256 (hex) of a series' rows (T, F) as read (float64): the same numbers give
    the same digest however the file writes them (``1``, ``1.0``, ``-0``)."""
    values = np.ascontiguousarray(rows, dtype="<f8") + 0.0  # -0.0 + 0.0 is 0.0
    return hashlib.sha256(values.tobytes()).hexdigest()


def training_rows(series: Series, split_rate: float) -> dict[str, dict[str, Any]]:
    """Per series, by id ("" for a file of one series): ``{"rows": N, "sha256": ...}``,
    the first N rows the split trains on and :func:`rows_digest` of them, so that a
    later file (the same one grown, say) can be checked to begin with those rows."""
    ids = series.series_ids or [""]
    record = {}
    for key, raw in zip(ids, series.unscaled, strict=True):
        n = train_points(split_rate, len(raw))
        record[key] = {"rows": n, "sha256": rows_digest(raw[:n])}
    return record


class ColumnCountError(InputError):
    """A CSV file whose number of columns read is not the model's ``n_in``/``n_out``;
    ``columns``: how many it has. Its message advises a run about to be trained and
    ends in ``hint`` ("; if the commas are decimal commas ...", or ""), the file's own,
    which a message for a model already trained can end in too."""

    def __init__(self, message: str, columns: int, hint: str = "") -> None:
        super().__init__(message)
        self.columns = columns
        self.hint = hint


def load_series(config: Config, scaler: Scaler | None = None) -> Series:
    """The series of config.data ("fibonacci", "sine" or "csv:PATH") as the model sees
    them, and as read: what a closed-loop forecast needs, no windows.

    Built-in series are not scaled. CSV data is standardized (config.scale = "standard")
    with `scaler` when given (a trained run's, so that its model sees the data as in
    training even when the file has changed since), else with a Scaler fitted on the
    training parts of config.split_rate. Only that fit splits the series, so a series
    too short to split still loads when a scaler is given or none applies.
    """
    series_ids = features = id_column = None
    if config.data == "adding":
        raise ValueError("load_series: data = 'adding' has no series; use load_adding")
    if config.data == "fibonacci":
        raw = [fibonacci_mod(config.total_size, config.value).reshape(-1, 1)]
        integer_features = [True]
    elif config.data == "sine":
        raw = [sine(config.total_size, config.period, config.noise, config.seed).reshape(-1, 1)]
        integer_features = [False]
    elif (path := config.csv_path) is not None:
        by_id, features, id_column, split_hint = _read_table(
            path, config.csv_columns, config.csv_header, config.csv_series_id, config=True
        )
        raw = list(by_id.values())
        if config.csv_series_id is not None:
            series_ids = list(by_id)
        whole = _whole_numbers(raw)
        _check_column_count(config, path, raw, whole, features is not None, split_hint)
        n_features = raw[0].shape[1]
        integer_features = [all(bool(w[:, k].all()) for w in whole) for k in range(n_features)]
    else:
        raise InputError(
            f"config: data = {config.data!r} is not one of fibonacci, sine, adding, csv:PATH"
        )
    series, scaler = _to_model(config, raw, scaler)
    return Series(
        series, raw, scaler, integer_features, config.data_kind, series_ids, features, id_column
    )


def _whole_numbers(raw: list[np.ndarray]) -> list[np.ndarray]:
    """Per series (T_k, F), where its values are integers exact in float32: past 2**24
    float32 is not exact, and rounding to an integer means nothing."""
    return [(a == np.round(a)) & (abs(a) <= 2**24) for a in raw]


def _check_column_count(
    config: Config,
    path: str,
    raw: list[np.ndarray],
    whole: list[np.ndarray],
    headed: bool,
    split_hint: str,
) -> None:
    """:class:`ColumnCountError` unless the CSV data ``raw`` (:func:`_whole_numbers`:
    ``whole``; ``headed``: read with a header) has config.n_in = config.n_out columns;
    ``split_hint``: the reader's hint of numbers split at their thousands separators in
    every row (:func:`_split_in_every_row_hint`), which ends the message."""
    n_features = raw[0].shape[1]
    if (config.n_in, config.n_out) == (n_features, n_features):
        return
    hint = split_hint
    # 50,0 read as two columns: whole numbers, unsigned past the first column
    decimal = all(w.all() and (a[:, 1:] >= 0).all() for w, a in zip(whole, raw, strict=True))
    if not headed and decimal and not hint:
        hint = (
            "; if the commas are decimal commas (50,0 for 50.0), write the numbers "
            "with decimal points: commas separate columns"
        )
    # which of them was given (a flag, a TOML file, Python) is not known here: both named
    flags = f"{flag_of('n_in')} {n_features} {flag_of('n_out')} {n_features}"
    raise ColumnCountError(
        f"{path}: the data has {n_features} columns but n_in = {config.n_in} and "
        f"n_out = {config.n_out}; set both to {n_features} ({flags}) or choose csv_columns "
        f"({flag_of('csv_columns')}){hint}",
        n_features,
        hint,
    )


def _to_model(
    config: Config, raw: list[np.ndarray], scaler: Scaler | None
) -> tuple[list[np.ndarray], Scaler | None]:
    """The series ``raw`` as the model sees them, float32, and the scaler applied: for
    CSV data with config.scale = "standard", ``scaler`` or else one fitted on the
    training parts; None otherwise. InputError where a value is not finite."""
    if not (config.data_kind == "csv" and config.scale == "standard"):
        scaler = None
    elif scaler is None:
        scaler = Scaler.fit(_split(raw, config)[0])
    # The model's float32, scaled in float64 first where a scaler applies.
    convert = scaler.transform if scaler is not None else lambda a: a.astype(np.float32)
    series = [convert(a) for a in raw]
    for part in series:
        if not np.isfinite(part).all():
            scaled = " after standard scaling" if scaler is not None else ""
            raise InputError(
                f"config: data = {config.data!r} gives values that are not finite in float32"
                f"{scaled} (check period, noise, the data's range)"
            )
    return series, scaler


def _split(series: list[np.ndarray], config: Config) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """:func:`split_series` by config's split_rate and sequence_size; its error names
    the data (a CSV's path)."""
    try:
        return split_series(series, config.split_rate, config.sequence_size)
    except InputError as e:
        raise InputError(f"data = {config.data!r}: {e}") from None


def load_dataset(config: Config, scaler: Scaler | None = None) -> Dataset:
    """The windows of config.data: :func:`load_series` (`scaler` as there), each series
    split in time by config.split_rate (:func:`split_series`), then every window of
    sequence_size + 1 points of each part. For "adding" use `load_adding`."""
    if config.data == "adding":
        raise ValueError("load_dataset: data = 'adding' has no series; use load_adding")
    data = load_series(config, scaler)
    s = config.sequence_size
    train_parts, val_parts = _split(data.series, config)
    train_x, train_y = _windows(train_parts, s)
    val_x, val_y = _windows(val_parts, s)
    ids = data.series_ids or [str(k) for k in range(len(data.series))]
    parts = [_parts(x, config.split_rate, s) for x in data.series]
    left_out = (
        [i for i, (train, _) in zip(ids, parts, strict=True) if train is None],
        [i for i, (_, val) in zip(ids, parts, strict=True) if val is None],
    )
    return Dataset(
        **vars(data), train_x=train_x, train_y=train_y, val_x=val_x, val_y=val_y, left_out=left_out
    )


def load_adding(config: Config) -> AddingDataset:
    """config.adding_samples samples of length config.sequence_size (or uniform in
    [config.min_length, config.sequence_size]), seeded by config.seed; the first
    floor(split_rate * adding_samples) train, the rest validate."""
    inputs, targets = adding_problem(
        config.adding_samples, config.sequence_size, config.seed, config.min_length
    )
    n_train = train_points(config.split_rate, config.adding_samples)
    if not 1 <= n_train < config.adding_samples:
        raise InputError(
            f"split_rate = {config.split_rate} of adding_samples = {config.adding_samples} "
            "leaves no training or no validation sample"
        )
    return AddingDataset(inputs[:n_train], targets[:n_train], inputs[n_train:], targets[n_train:])
