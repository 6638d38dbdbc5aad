"""The one error type for mistakes a user can make (bad arguments, files, configs),
and the checks every module uses: integers, numbers in text, input files, reading and
decoding an input file."""

import codecs
import math
import os
import stat
import sys
from collections.abc import Callable, Sequence
from decimal import Decimal

import numpy as np


class InputError(ValueError):
    """A user-caused problem, described in one line: what was expected and what came.

    The CLI turns it into that line on stderr and exit code 2. It subclasses
    `ValueError`, so library callers can catch either.
    """


def is_int(value: object) -> bool:
    """True for a Python or NumPy integer; False for a bool (an int to Python)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_ratio(name: str, value: object) -> float:
    """``value`` as a float, once it is a number in [0, 1) (a dropout ratio);
    :class:`InputError` naming ``name`` otherwise."""
    if not is_finite_number(value) or not 0.0 <= value < 1.0:
        raise InputError(f"{name} must be a number in [0, 1), got {plain(value)}")
    return float(value)


def check_choice(name: str, value: object, allowed: tuple[str, ...]) -> str:
    """``value`` once it is one of the strings ``allowed``; :class:`InputError` naming
    ``name`` and the choices otherwise."""
    if not isinstance(value, str) or value not in allowed:
        raise InputError(f"{name} must be one of {', '.join(allowed)}, got {plain(value)}")
    return value


def some(
    items: Sequence[object], most: int = 5, show: Callable[[object], str] = repr, noun: str = ""
) -> str:
    """``items`` for a message, joined by commas: all of them, or the first ``most`` and
    how many there are (``"'a', 'b', ... (7 in all)"``; ``noun`` after the count)."""
    shown = ", ".join(show(x) for x in items[:most])
    if len(items) <= most:
        return shown
    return f"{shown}, ... ({len(items)} {noun + ' ' if noun else ''}in all)"


def one_line(x: object) -> str:
    """``str(x)`` with every run of whitespace, line breaks included, as one space."""
    return " ".join(str(x).split())


def plain(value: object, most: int = 60) -> str:
    """``repr(value)`` for a message: a NumPy scalar as the Python value it holds (``1.5``,
    not NumPy 2's ``np.float64(1.5)``), on one line, cut to ``most`` characters; an
    integer longer than that, or than Python writes in decimal
    (``sys.get_int_max_str_digits``), described by its sign and size instead."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, int) and not isinstance(value, bool):
        return _plain_int(value, most)
    # .item() of a long double is one still: its str is "inf", its repr np.longdouble('inf')
    text = one_line(str(value) if isinstance(value, np.generic) else repr(value))
    return text if len(text) <= most else text[: most - 3] + "..."


def _plain_int(n: int, most: int) -> str:
    """``repr(n)``, or, past ``most`` characters or what Python writes in decimal, its
    size: ``"a negative integer of 401 digits"``, ``"an integer of about 5000 digits"``."""
    limit = sys.get_int_max_str_digits()  # 0: none
    about = int(abs(n).bit_length() * 0.30103)  # the digits, or one fewer
    if limit and about >= limit:
        digits = f"about {about}"
    else:
        text = repr(n)
        if len(text) <= most:
            return text
        digits = str(len(text.lstrip("-")))
    return f"{'a negative' if n < 0 else 'an'} integer of {digits} digits"


def gib(nbytes: float) -> str:
    """``nbytes`` in GiB for a message: ``"23.5 GiB"``, ``"1,234 GiB"``, ``"8.94e+14 GiB"``,
    ``"9.31e+390 GiB"`` (an int past float's range)."""
    try:
        x = float(nbytes) / 2**30  # float(): a NumPy float16 would overflow at 2**30
    except OverflowError:  # an int of more than 308 digits
        return f"{Decimal(nbytes) / 2**30:.3g} GiB"
    return f"{x:,.0f} GiB" if 1000 <= x < 1e9 else f"{x:.3g} GiB"


def ascii_float(text: str) -> float:
    """``float(text)`` for a number written in ASCII without ``_``; ValueError otherwise:
    Python's float() also reads "2_51" as 251 and "٣" (an Arabic-Indic digit) as 3."""
    if "_" in text or not text.isascii():
        raise ValueError(text)
    return float(text)


def is_finite_number(value: object) -> bool:
    """True for a Python or NumPy int or float that is finite as a float (an int past
    1.8e308 is not: ``float()`` of it fails); False for a bool, and for anything else
    (a Decimal, a Fraction, a string)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


# The most points or samples a generated data set may have: past it NumPy fails with
# errors that name no setting ("Maximum allowed dimension exceeded"), or, for sine,
# silently returns an empty series; below it a size too large is a MemoryError.
MAX_DATA_SIZE = 10**12


def check_int(name: str, value: object, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` as an int; :class:`InputError` naming ``name`` unless it is an integer
    (:func:`is_int`) of at least ``minimum`` (and at most ``maximum`` when given)."""
    if not is_int(value) or value < minimum or (maximum is not None and value > maximum):
        most = ""
        if maximum is not None:
            shown = f"{maximum:,}" if maximum < 10**6 else f"{maximum:.0e}".replace("+", "")
            most = f" and <= {shown}"
        raise InputError(f"{name} must be an integer >= {minimum}{most}, got {plain(value)}")
    return int(value)


def check_bool(name: str, value: object) -> bool:
    """``value`` as a bool; :class:`InputError` naming ``name`` unless it is True or
    False (a truthy ``"no"`` would otherwise replace the user's files)."""
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"{name} must be True or False, got {plain(value)}")
    return bool(value)


def check_not_special(path: str | os.PathLike[str], where: str) -> None:
    """:class:`InputError` ``"{where}: not a regular file ..."`` when ``path`` is a pipe,
    socket or device: reading ``/dev/zero`` never ends, and opening a FIFO waits for a
    writer forever. Anything else (a missing file, say) is left to the reader to name."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):  # ValueError: a NUL byte in the path
        return
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise InputError(f"{where}: not a regular file (a pipe, socket or device)")


def read_input(path: str | os.PathLike[str], where: str, limit: int = -1) -> bytes:
    """The bytes of the input file ``path`` (the first ``limit`` of them, if >= 0).

    Every problem is an :class:`InputError` starting ``"{where}: "``: a pipe, socket
    or device (:func:`check_not_special`), a missing file, a directory, or any other
    read error (permissions, a NUL byte in the name) with the system's reason.
    """
    check_not_special(path, where)
    try:
        with open(path, "rb") as f:
            return f.read(limit)
    except FileNotFoundError:
        raise InputError(f"{where}: file not found") from None
    except IsADirectoryError:
        raise InputError(f"{where}: is a directory, not a file") from None
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the path
        raise InputError(f"{where}: cannot read ({getattr(e, 'strerror', None) or e})") from None


def decode_text(raw: bytes, where: str, kind: str) -> str:
    """``raw``, an input file's bytes, as UTF-8 text without a leading byte-order mark
    (some Windows editors write one). :class:`InputError` ``"{where}: line N: not UTF-8
    text {kind} (...)"`` naming the line of the first byte that is not UTF-8 (and its
    offset, counted from the file's start), or of a NUL byte (a binary file); a UTF-16
    file is called so."""
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        why = f"invalid byte 0x{raw[e.start]:02x} at offset {e.start}"
        if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            why = "UTF-16, by its byte-order mark; save it as UTF-8"
        line = _line_at(raw, e.start)
        raise InputError(f"{where}: line {line}: not UTF-8 text {kind} ({why})") from None
    if "\x00" in text:
        line = _line_at(raw, raw.index(b"\x00"))
        raise InputError(f"{where}: line {line}: not UTF-8 text {kind} (contains NUL bytes)")
    return text


def _line_at(raw: bytes, offset: int) -> int:
    """The 1-based line of byte ``offset`` in ``raw``, lines ending at ``\\n``,
    ``\\r\\n`` or ``\\r`` (as the CSV reader ends them; TOML allows no lone ``\\r``)."""
    # "x" stands for the byte at offset: after a line end, it begins a line of its own.
    return len((raw[:offset] + b"x").splitlines())
