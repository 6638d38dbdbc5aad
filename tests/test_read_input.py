"""``errors.read_input``: the one reader of user input files (TOML, CSV, run files,
Chainer archives), and the one-line errors every caller shares."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from nsteplstm.errors import (
    InputError,
    check_bool,
    check_int,
    check_ratio,
    gib,
    is_finite_number,
    is_int,
    plain,
    read_input,
)


def test_reads_all_or_the_first_bytes(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"abcdef")
    assert read_input(path, "f") == b"abcdef"
    assert read_input(str(path), "f", limit=2) == b"ab"
    assert read_input(path, "f", limit=100) == b"abcdef"


@pytest.mark.parametrize(
    "name, message",
    [
        ("missing.toml", "^where: file not found$"),
        (".", "^where: is a directory, not a file$"),
        ("a\x00b", r"^where: cannot read \(.*null byte.*\)$"),
    ],
)
def test_one_line_errors(tmp_path: Path, name: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        read_input(str(tmp_path / name), "where")


def test_refuses_what_is_not_a_file(not_a_file: Callable[[str], Path]) -> None:
    with pytest.raises(InputError, match="^where: not a regular file"):
        read_input(not_a_file("s"), "where")


def test_other_os_errors_give_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x")

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("builtins.open", refuse)
    with pytest.raises(InputError, match=r"^where: cannot read \(Permission denied\)$"):
        read_input(path, "where")


def test_some_lists_a_few_items_and_counts_the_rest() -> None:
    from nsteplstm.errors import some

    assert some(["a", "b"]) == "'a', 'b'"
    assert some(list("abcdef")) == "'a', 'b', 'c', 'd', 'e', ... (6 in all)"
    assert some([3, 4, 5], most=2, show=str, noun="columns") == "3, 4, ... (3 columns in all)"
    assert some([]) == ""


def test_decode_text_names_the_file_kind_line_and_byte() -> None:
    from nsteplstm.errors import decode_text

    assert decode_text(b"\xef\xbb\xbfa\r\nb", "f", "CSV") == "a\r\nb"  # no byte-order mark
    with pytest.raises(InputError) as e:
        decode_text(b"\xef\xbb\xbfa\rb\n\xff", "where", "TOML")
    assert str(e.value) == "where: line 3: not UTF-8 text TOML (invalid byte 0xff at offset 7)"


def test_ascii_float_reads_ascii_numbers_only() -> None:
    from nsteplstm.errors import ascii_float

    assert ascii_float(" -1.5e3 ") == -1500.0 and math.isnan(ascii_float("nan"))
    for text in ("1_0", "\u0663", "\uff11", "x"):
        with pytest.raises(ValueError):
            ascii_float(text)


def test_checks_show_numpy_values_and_huge_integers_plainly() -> None:
    # NumPy 2's repr reached the messages ("got np.int64(0)"), and an integer of more
    # digits than Python writes (4300) turned the message itself into a ValueError.
    from nsteplstm.errors import check_bool, check_choice, check_int, check_ratio

    for check, said in [
        (lambda: check_int("horizon", np.int64(0)), "horizon must be an integer >= 1, got 0"),
        (lambda: check_ratio("dropout", np.float64(1.5)), "got 1.5"),
        (lambda: check_choice("mode", np.str_("x"), ("window",)), "got 'x'"),
        (lambda: check_bool("force", np.float32(1.0)), "got 1.0"),
        (lambda: check_int("horizon", -(10**5000)), "got a negative integer of about 5000 digits"),
        (lambda: check_int("horizon", "y" * 100), "got '" + "y" * 56 + "..."),
    ]:
        with pytest.raises(InputError) as e:
            check()
        assert str(e.value).endswith(said) and "\n" not in str(e.value)


# Numbers of every kind a caller may pass: (value, is_int, is_finite_number, plain).
# A Python int has no size limit: one past int64 broke np.isfinite (is_finite_number
# raised TypeError), one past 1.8e308 is no float, and one of more than 4300 digits has
# no str(); a bool is an int to Python; NumPy scalars print as np.float32(...) in NumPy 2.
NUMBERS = [
    (10**400, True, False, "an integer of 401 digits"),
    (-(10**400), True, False, "a negative integer of 401 digits"),
    (10**5000, True, False, "an integer of about 5000 digits"),
    (10**59, True, True, "1" + "0" * 59),  # 60 characters: shown whole
    (np.int64(3), True, True, "3"),
    (np.uint64(2**64 - 1), True, True, str(2**64 - 1)),
    (np.float32(0.5), False, True, "0.5"),
    (np.float32("nan"), False, False, "nan"),
    (np.float16(0.5), False, True, "0.5"),
    (np.longdouble("inf"), False, False, "inf"),
    (np.bool_(True), False, False, "True"),
    (True, False, False, "True"),
    (False, False, False, "False"),
    (float("nan"), False, False, "nan"),
    (float("-inf"), False, False, "-inf"),
    (-0.0, False, True, "-0.0"),
    (Decimal("0.5"), False, False, "Decimal('0.5')"),
    (Fraction(1, 2), False, False, "Fraction(1, 2)"),
    ("3", False, False, "'3'"),
]


@pytest.mark.parametrize(
    "value, integer, finite, shown",
    NUMBERS,
    ids=[f"{type(v).__name__}-{shown}" for v, *_, shown in NUMBERS],
)
def test_number_helpers_answer_every_kind_of_number(
    value: object, integer: bool, finite: bool, shown: str
) -> None:
    assert is_int(value) is integer
    assert is_finite_number(value) is finite
    assert plain(value) == shown


def test_plain_describes_an_integer_by_its_size_also_without_a_digit_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # With the limit off (0), every integer, 5 included, was "an integer of about 0 digits".
    monkeypatch.setattr(sys, "get_int_max_str_digits", lambda: 0)
    assert plain(5) == "5"
    assert plain(-(10**400)) == "a negative integer of 401 digits"


def test_plain_shows_an_integer_whole_up_to_most_characters() -> None:
    assert plain(10**99, most=100) == "1" + "0" * 99
    assert plain(-(10**99), most=100) == "a negative integer of 100 digits"
    assert plain(10**4299, most=sys.maxsize) == "1" + "0" * 4299  # as many as str() writes


RAISES = object()

# (check, value, what it returns, or RAISES and the end of its one-line message)
CHECKS = [
    (check_int, 10**400, 10**400, ""),  # an integer >= 1: the caller bounds it
    (
        check_int,
        -(10**400),
        RAISES,
        "n must be an integer >= 1, got a negative integer of 401 digits",
    ),
    (check_int, np.int64(3), 3, ""),
    (check_int, True, RAISES, "n must be an integer >= 1, got True"),
    (check_int, np.bool_(True), RAISES, "got True"),
    (check_int, 3.0, RAISES, "got 3.0"),
    (check_int, np.float32(2), RAISES, "got 2.0"),
    (check_int, float("nan"), RAISES, "got nan"),
    (check_int, Fraction(2), RAISES, "got Fraction(2, 1)"),
    (check_ratio, 10**400, RAISES, "n must be a number in [0, 1), got an integer of 401 digits"),
    (check_ratio, 10**5000, RAISES, "got an integer of about 5000 digits"),
    (check_ratio, np.float32(0.5), 0.5, ""),
    (check_ratio, np.int64(0), 0.0, ""),
    (check_ratio, -0.0, 0.0, ""),
    (check_ratio, True, RAISES, "got True"),
    (check_ratio, False, RAISES, "got False"),
    (check_ratio, float("nan"), RAISES, "got nan"),
    (check_ratio, float("inf"), RAISES, "got inf"),
    (check_ratio, np.float32("nan"), RAISES, "got nan"),
    (check_ratio, Decimal("0.5"), RAISES, "got Decimal('0.5')"),
    (check_ratio, Fraction(1, 2), RAISES, "got Fraction(1, 2)"),
    (check_bool, np.bool_(False), False, ""),
    (check_bool, 1, RAISES, "n must be True or False, got 1"),
    (check_bool, 10**5000, RAISES, "got an integer of about 5000 digits"),
    (check_bool, float("nan"), RAISES, "got nan"),
]


@pytest.mark.parametrize(
    "check, value, returns, said", CHECKS, ids=[f"{c.__name__}-{plain(v)}" for c, v, *_ in CHECKS]
)
def test_checks_answer_or_name_the_setting_for_every_kind_of_number(
    check: Callable[[str, object], object], value: object, returns: object, said: str
) -> None:
    if returns is RAISES:
        with pytest.raises(InputError) as e:
            check("n", value)
        assert str(e.value).endswith(said) and "\n" not in str(e.value)
    else:
        got = check("n", value)
        assert got == returns and type(got) is type(returns)


def test_check_int_names_a_huge_integer_past_its_maximum() -> None:
    with pytest.raises(
        InputError, match=r"^n must be an integer >= 1 and <= 10, got an integer of 401 digits$"
    ):
        check_int("n", 10**400, maximum=10)


@pytest.mark.parametrize(
    "nbytes, shown",
    [
        pytest.param(10**400, "9.31e+390 GiB", id="1e400"),  # was OverflowError: past float's range
        (np.float16(1024), "9.54e-07 GiB"),  # was "0 GiB": 2**30 is inf in float16
        (np.int64(2**40), "1,024 GiB"),
        (1.5 * 2**30, "1.5 GiB"),
    ],
)
def test_gib_takes_any_size(nbytes: float, shown: str) -> None:
    assert gib(nbytes) == shown
