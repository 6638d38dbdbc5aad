"""``errors.read_input``: the one reader of user input files (TOML, CSV, run files,
Chainer archives), and the one-line errors every caller shares."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from nsteplstm.errors import InputError, read_input


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
        (lambda: check_int("horizon", -(10**5000)), "got an integer of about 5000 digits"),
        (lambda: check_int("horizon", "y" * 100), "got '" + "y" * 56 + "..."),
    ]:
        with pytest.raises(InputError) as e:
            check()
        assert str(e.value).endswith(said) and "\n" not in str(e.value)
