"""Load checkpoints written by ``chainer.serializers.save_npz`` into our modules.

Supported layouts (keys as Chainer writes them; ``N`` hidden size, ``I`` input size):

- bare ``links.NStepLSTM`` / ``links.NStepBiLSTM``: ``{k}/w0..w7`` and ``{k}/b0..b7``
  for every link index ``k`` (``k = 2 * layer + direction`` when bidirectional);
  ``w0..w3`` are ``(N, I_layer)``, ``w4..w7`` ``(N, N)``, biases ``(N,)``
  -> :class:`~nsteplstm.model.NStepLSTM` / :class:`~nsteplstm.model.NStepBiLSTM`.
- bare ``links.LSTM``: ``upward/W`` ``(4N, I)``, ``upward/b`` ``(4N,)``, ``lateral/W``
  ``(4N, N)`` -> :class:`~nsteplstm.model.StepLSTM`.
- the article's chain: one of the two above under ``l1/`` and a ``links.Linear``
  under ``l2/`` (``l2/W`` ``(n_out, N)``, ``l2/b`` ``(n_out,)``, optional)
  -> :class:`~nsteplstm.model.Forecaster` (cell ``"nstep"`` or ``"step"``).
- any other file: pass ``prefix``, the path of the sub-chain that holds the LSTM
  link (e.g. ``"encoder/lstm/"``); only the keys under it are read.

Gate layouts. NStepLSTM: input gate i = w0/w4, forget f = w1/w5, cell input
a = w2/w6, output o = w3/w7 (what Chainer runs, not its docstring), both biases
added; ours stack the gates (i, f, a, o). links.LSTM interleaves the gates per unit
in the 4N axis as (a, i, f, o) (row ``unit * 4 + gate``) and has no lateral bias.

Nothing is loaded partially: every key is mapped and every shape checked, on the
``.npy`` headers, before any array is decompressed, and again before
``load_state_dict(strict=True)``; any problem is one :class:`InputError` line.
"""

from __future__ import annotations

import contextlib
import math
import re
import sys
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .config import (
    COMMAND_LINE,
    Config,
    absolute_data,
    flag_of,
    is_csv_data,
    named_setting,
    train_points,
)
from .data import ColumnCountError, load_series
from .errors import (
    InputError,
    check_bool,
    check_int,
    is_finite_number,
    is_int,
    one_line,
    plain,
    read_input,
)
from .model import Forecaster, NStepBiLSTM, NStepLSTM, StepLSTM
from .runs import (
    prepare_run_dir,
    write_config,
    write_results,
)

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip file; an empty one
NPY_MAGIC = b"\x93NUMPY"
ARTICLE_DROPOUT = 0.3
_NSTEP_KEY = re.compile(r"(\d+)/([wb][0-7])")
_LSTM_KEYS = ("upward/W", "upward/b", "lateral/W")
_MAX_LISTED = 12
OTHER_NSTEP_LINKS = {  # weight matrices per link index -> the other NStep links that have them
    2: "NStepRNNTanh or NStepRNNReLU (or a Bi one)",
    6: "NStepGRU (or NStepBiGRU)",
}

Arrays = dict[str, np.ndarray]
Shapes = dict[str, tuple[int, ...]]


# ------------------------------------------------------------------------- reading


def read_npz_shapes(path: str | Path, prefix: str = "") -> Shapes:
    """The shapes of the arrays of the ``.npz`` file at ``path`` whose names start with
    ``prefix`` (full names as keys), from their ``.npy`` headers alone: no array data
    is decompressed, so names and shapes can be checked before anything large is read.

    Raises:
        InputError: missing or unreadable file, not an npz archive, a truncated or
            corrupt archive, a header claiming more data than its member holds, a
            member that is not a plain numeric array (pickled objects, raw bytes), no
            member under ``prefix``, an array that is not floating point.
    """
    headers = _read_headers(path, prefix)
    _check_floating(headers, f"Chainer checkpoint {path}")
    return {key: shape for key, (shape, _) in headers.items()}


Headers = dict[str, tuple[tuple[int, ...], np.dtype]]


def _read_headers(path: str | Path, prefix: str) -> Headers:
    """:func:`read_npz_shapes` with the dtypes, any dtype accepted (pickled object
    arrays too: their headers only)."""
    where = f"Chainer checkpoint {path}"
    if not isinstance(path, (str, Path)):
        raise InputError(f"path must be a file name (str or Path), got {type(path).__name__}")
    if not isinstance(prefix, str):
        raise InputError(f"prefix must be a string such as 'l1/', got {prefix!r}")
    magic = read_input(path, where, limit=len(NPY_MAGIC))
    if magic.startswith(NPY_MAGIC):
        raise InputError(f"{where}: a single .npy array, not an .npz archive of named arrays")
    if not magic.startswith(ZIP_MAGIC):
        raise InputError(
            f"{where}: not an .npz archive (no zip header); expected a file written by "
            "chainer.serializers.save_npz"
        )
    headers: Headers = {}
    with _corrupt_file(where, "archive"), np.load(path, allow_pickle=False) as npz:
        for key in (k for k in npz.files if k.startswith(prefix)):
            with _corrupt_file(where, f"array {key!r}"):
                headers[key] = _read_header(npz.zip, key, where)
    if not headers:
        under = f" under prefix {prefix!r}" if prefix else ""
        raise InputError(f"{where}: the archive holds no arrays{under}")
    return headers


def _check_floating(headers: Headers, where: str, hint: Callable[[str], str] | None = None) -> None:
    """InputError unless every array is floating point; ``hint(key)`` ends the message."""
    for key, (shape, dtype) in headers.items():
        more = hint(key) if hint else ""
        if dtype.hasobject:
            never_set = (
                " (Chainer saves a parameter as None when it was never initialised: a link "
                "built with in_size None, saved before its first call)"
                if shape == () and re.search(r"(^|/)(W|b|[wb]\d+)$", key)
                else ""
            )
            raise InputError(
                f"{where}: array {key!r} holds pickled Python objects, not numbers"
                f"{never_set}; refusing to load it{more}"
            )
        if _is_step_count(headers, key):
            raise InputError(f"{where}: {_optimizer_state(key)}{more}")
        if dtype.kind != "f":
            raise InputError(
                f"{where}: array {key!r} has dtype {dtype}, expected floating point: not a "
                f"weight, so nothing it could be loaded into{more}"
            )


def _is_step_count(headers: Headers, key: str) -> bool:
    """Whether ``key`` is an optimizer's step count: an integer scalar ``t`` that
    ``chainer.Optimizer.serialize`` writes first, beside ``epoch``, and each parameter's
    update rule first under the parameter's path (``l1/0/w0/t``, then Adam's ``m``, ``v``)."""
    shape, dtype = headers[key]
    m = re.fullmatch(r"(.*/)?t", key)
    if m is None or shape != () or dtype.kind not in "iu":
        return False
    parent = m.group(1) or ""
    return parent + "epoch" in headers or re.search(r"(^|/)(W|b|[wb][0-7])/$", parent) is not None


def _optimizer_state(key: str) -> str:
    """The message for :func:`_is_step_count`'s ``key``, with the model's prefix in a
    Trainer snapshot."""
    trainer = re.match(r"(.*?)optimizer:([^/]*)/", key)  # a StandardUpdater's optimizer:NAME/
    where = (
        f"; in a Trainer snapshot the model is under prefix "
        f"'{trainer.group(1)}model:{trainer.group(2)}/'"
        if trainer
        else ""
    )
    return (
        f"array {key!r} is an optimizer's step count: this holds a Chainer optimizer's "
        "state (t, epoch, and each parameter's, such as Adam's m and v), not a model's "
        f"weights; load the file chainer.serializers.save_npz wrote for the model{where}"
    )


def _read_arrays(path: str | Path, prefix: str, shapes: Shapes) -> Arrays:
    """The arrays ``prefix + k`` for the keys ``k`` of ``shapes`` (from
    :func:`read_npz_shapes`), keyed ``k``; each must have the shape its header claimed."""
    where = f"Chainer checkpoint {path}"
    arrays: Arrays = {}
    with _corrupt_file(where, "archive"), np.load(path, allow_pickle=False) as npz:
        for key, shape in shapes.items():
            with _corrupt_file(where, f"array {prefix + key!r}"):
                value = npz[prefix + key]
            if not isinstance(value, np.ndarray) or value.shape != shape:
                raise InputError(
                    f"{where}: truncated or corrupt file at array {prefix + key!r} (its data "
                    f"does not have the shape {shape} its header claims)"
                )
            arrays[key] = value
    return arrays


@contextlib.contextmanager
def _corrupt_file(where: str, member: str) -> Iterator[None]:
    """Turn any error but :class:`InputError` into one naming ``member``: zipfile, zlib,
    EOF, struct, memory errors all mean a broken file."""
    try:
        yield
    except InputError:
        raise
    except Exception as e:
        raise InputError(
            f"{where}: truncated or corrupt file at {member} ({type(e).__name__}: {one_line(e)})"
        ) from None


def _read_header(
    archive: zipfile.ZipFile, key: str, where: str
) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from the ``.npy`` header of member ``key``: only the first bytes
    of the member are decompressed.

    Raises :class:`InputError` for a member that is not ``.npy``, holds objects (pickles),
    or whose header claims more data than the member holds: NumPy allocates the claimed
    shape before it reads, so a crafted header of shape ``(10**9, 10**9)`` must be
    refused, not allocated.
    """
    try:  # the member np.load reads for key: "W" itself, else "W.npy"
        info = archive.getinfo(key)
    except KeyError:
        info = archive.getinfo(key + ".npy")
    with archive.open(info) as f:
        if f.read(len(NPY_MAGIC)) != NPY_MAGIC:
            raise InputError(f"{where}: member {key!r} is not a .npy array")
        major = f.read(2)[:1]
        if major == b"\x01":
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif major in (b"\x02", b"\x03"):  # 3.0 (UTF-8 field names) has 2.0's layout
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise InputError(
                f"{where}: truncated or corrupt file at array {key!r} (unknown .npy version)"
            )
        held = info.file_size - f.tell()
    if dtype.hasobject:  # pickled data, never read: _check_floating refuses it
        return shape, dtype
    if min(shape, default=0) < 0:
        raise InputError(
            f"{where}: truncated or corrupt file at array {key!r} (its header claims shape {shape})"
        )
    claimed = math.prod(shape) * dtype.itemsize
    if claimed > held:
        raise InputError(
            f"{where}: truncated or corrupt file at array {key!r} (its header claims shape "
            f"{shape}, {claimed} bytes, but it holds {held})"
        )
    return shape, dtype


# ------------------------------------------------------------------------- loading


def load_chainer_npz(
    path: str | Path,
    prefix: str | None = None,
    *,
    bidirectional: bool | None = None,
    dropout: float = ARTICLE_DROPOUT,
) -> nn.Module:
    """Build the module that a ``chainer.serializers.save_npz`` file describes, in eval mode.

    Args:
        path: the ``.npz`` file.
        prefix: the sub-chain to read (a missing trailing ``/`` is added): an LSTM
            link (``"l1/"``, ``"encoder/lstm/"``), returned as the bare LSTM module, or
            the article's ``l1``/``l2`` chain inside a larger file
            (``"predictor/"`` in an ``L.Classifier``,
            ``"updater/model:main/predictor/"`` in a Trainer snapshot), returned as a
            :class:`Forecaster`. Only keys under it are read. ``None``: the whole file
            is either.
        bidirectional: force how NStep keys are read. ``None`` infers it from the
            shapes; the one ambiguous case (two link indices ``0/``, ``1/`` and
            ``in_size == out_size``: a 1-layer NStepBiLSTM and a 2-layer NStepLSTM
            have identical keys and shapes) is read as the 2-layer NStepLSTM, with a
            warning.
        dropout: dropout ratio of the built NStep model (the file cannot tell it;
            default the article's 0.3). It acts in training mode only.

    Returns:
        :class:`NStepLSTM`, :class:`NStepBiLSTM`, :class:`StepLSTM` or
        :class:`Forecaster` with the file's weights, in eval mode, float32 on the CPU.
        NaN or infinite weights are loaded as stored (:func:`import_chainer_run`
        refuses them).

    Raises:
        InputError: unreadable file (a pipe or device, an array header claiming more
            data than it holds), keys it cannot map (all listed), missing keys, link
            indices that do not run 0, 1, .., zero sizes, or shapes that do not fit
            (key, shape found, shape expected).
    """
    if bidirectional is not None:
        if not isinstance(bidirectional, (bool, np.bool_)):
            raise InputError(f"bidirectional must be None, True or False, got {bidirectional!r}")
        bidirectional = bool(bidirectional)
    shapes, where, p = _shapes_under(path, "" if prefix is None else prefix)
    model = _link_or_chain(shapes, where, p, bidirectional, dropout)
    _load_exact(model, _state(model, _read_arrays(path, p, shapes)))
    return model.eval()


def _shapes_under(path: str | Path, prefix: str) -> tuple[Shapes, str, str]:
    """The header shapes under ``prefix`` (keys relative to it), the file's name for
    messages and the prefix normalized to ``""`` or ``"a/b/"`` (a missing trailing ``/``
    added). The structure is checked on these; only then are the arrays read
    (:func:`_read_arrays`), all of them: a name the checks do not map is refused."""
    if not isinstance(prefix, str):
        raise InputError(f"prefix must be None or a string such as 'l1/', got {prefix!r}")
    p = prefix.strip("/") + "/" if prefix.strip("/") else ""
    where = f"Chainer checkpoint {path}" + (f" (prefix {p!r})" if p else "")
    headers = _read_headers(path, p)
    shapes = {k[len(p) :]: shape for k, (shape, _) in headers.items()}
    chains = _chain_prefixes(shapes, p)
    if not any(k.startswith(("l1/", "l2/")) for k in shapes) and chains:
        # Before the dtypes: a Trainer snapshot also holds the iterator's integers.
        raise InputError(
            f"{where}: no l1/ and l2/ of the article's chain here; they seem to be under "
            f"prefix {chains[0]!r}: pass --prefix {chains[0]} (prefix={chains[0]!r} "
            "from Python)"
        )

    # A snapshot holds more than weights: say where a link is, if not around the array,
    # nor in the article chain's head (a link alone makes no run).
    def hint(key: str) -> str:
        return "" if re.search(r"(^|/)l2/[Wb]$", key) else _prefix_hint(shapes, p, key)

    _check_floating(headers, f"Chainer checkpoint {path}", hint)
    return shapes, where, p


def _link_or_chain(
    shapes: Shapes, where: str, prefix: str, bidirectional: bool | None, dropout: float
) -> nn.Module:
    """The article's chain if ``shapes`` has ``l1/`` or ``l2/`` keys, else a bare LSTM link."""
    if any(k.startswith(("l1/", "l2/")) for k in shapes):
        return _article_chain(shapes, where, prefix, bidirectional, dropout)
    return _lstm_link(shapes, where, prefix, bidirectional, dropout)


def _lstm_link(
    shapes: Shapes, where: str, prefix: str, bidirectional: bool | None, dropout: float
) -> nn.Module:
    """The bare LSTM link that ``shapes`` (keys relative to ``prefix``) describe."""
    if any(k in shapes for k in _LSTM_KEYS):
        if bidirectional:
            raise InputError(
                f"{where}: bidirectional=True, but the keys are a links.LSTM's (one direction)"
            )
        return _step_lstm(shapes, where, prefix)
    if any(_NSTEP_KEY.fullmatch(k) for k in shapes):
        return _nstep_lstm(shapes, where, prefix, bidirectional, dropout)
    hint = _prefix_hint(shapes, prefix)
    raise InputError(
        f"{where}: no Chainer LSTM link found: expected keys 0/w0..0/b7 (NStepLSTM) or "
        f"upward/W, upward/b, lateral/W (LSTM); cannot map keys {_list(shapes, prefix)}{hint}"
    )


def _nstep_lstm(
    shapes: Shapes, where: str, prefix: str, bidirectional: bool | None, dropout: float
) -> NStepLSTM:
    """``links.NStep(Bi)LSTM`` keys -> :class:`NStepLSTM` / :class:`NStepBiLSTM`."""
    w0 = shapes.get("0/w0")
    if w0 is None or len(w0) != 2:
        got = f"missing (keys: {_list(shapes, prefix)})" if w0 is None else f"shape {w0}"
        raise InputError(f"{where}: {prefix}0/w0 must be 2-D (out_size, in_size), got {got}")
    n_hidden, n_in = _layer0_sizes(shapes)
    _check_sizes(where, f"{prefix}0/w0", (n_hidden, n_in), ("out_size", "in_size"))
    matrices = sum(re.fullmatch(r"0/w\d+", k) is not None for k in shapes)
    if matrices in OTHER_NSTEP_LINKS:
        raise InputError(
            f"{where}: {prefix}0/ holds {matrices} weight matrices (w0..w{matrices - 1}), as "
            f"Chainer's {OTHER_NSTEP_LINKS[matrices]} does; only LSTMs (w0..w7) can be loaded"
        )
    n_links = _count_links(shapes, where, prefix)
    if bidirectional is None:
        bidirectional = _infer_bidirectional(shapes, n_links, n_in, n_hidden, where)
    n_dirs = 2 if bidirectional else 1
    if n_links % n_dirs:
        raise InputError(
            f"{where}: {n_links} link indices cannot be a bidirectional stack (needs an even count)"
        )
    expected: Shapes = {}
    for k in range(n_links):
        layer_in = n_in if k < n_dirs else n_dirs * n_hidden
        for j in range(4):
            expected[f"{k}/w{j}"] = (n_hidden, layer_in)
            expected[f"{k}/w{j + 4}"] = (n_hidden, n_hidden)
        for j in range(8):
            expected[f"{k}/b{j}"] = (n_hidden,)
    _check(shapes, expected, where, prefix)
    cls = NStepBiLSTM if bidirectional else NStepLSTM
    return cls(n_links // n_dirs, n_in, n_hidden, dropout)


def _layer0_sizes(shapes: Shapes) -> tuple[int, int]:
    """``(out_size, in_size)`` as most of link 0's arrays have them (on a tie, as
    ``0/w0``, which must be 2-D): so that one wrong array is the one :func:`_check`
    names, instead of every array that disagrees with it."""
    keys = [f"0/w{j}" for j in range(8)] + [f"0/b{j}" for j in range(8)]
    rows = [shapes[k][0] for k in keys if len(shapes.get(k, ())) >= 1]
    cols = [shapes[k][1] for k in keys[:4] if len(shapes.get(k, ())) == 2]
    return max(rows, key=rows.count), max(cols, key=cols.count)


def _count_links(shapes: Shapes, where: str, prefix: str) -> int:
    """The number of link indices ``k`` in the ``{k}/w0``.. keys, which must run 0, 1, ..

    Compared as strings, never as ints: a crafted index such as ``99999999999999999999``
    would otherwise size the table of expected keys (a hang), and one of 5000 digits
    is a ValueError in ``int()``.
    """
    found = {m.group(1): k for k in shapes if (m := _NSTEP_KEY.fullmatch(k))}
    allowed = {str(k) for k in range(len(found))}
    stray = sorted(key for index, key in found.items() if index not in allowed)
    if stray:
        raise InputError(
            f"{where}: key {prefix + stray[0]!r} has a link index outside 0..{len(found) - 1}; "
            f"the {len(found)} link indices must run 0, 1, .. without gaps or leading zeros"
        )
    return len(found)


def _link_count(shapes: Shapes) -> int:
    """How many distinct link indices ``k`` the ``{k}/w0``.. keys name."""
    return len({m.group(1) for k in shapes if (m := _NSTEP_KEY.fullmatch(k))})


def _infer_bidirectional(
    shapes: Shapes, n_links: int, n_in: int, n_hidden: int, where: str
) -> bool:
    """Bidirectional or not, from the input-side shapes ``w0`` of the link indices.

    Unidirectional: layer ``k >= 1`` reads ``(N, N)``. Bidirectional: indices 0 and 1
    read ``(N, I)``, indices ``>= 2`` read ``(N, 2N)``. An odd count is unidirectional.
    """
    if n_links % 2:
        return False
    if n_links >= 4:
        return shapes.get("2/w0") == (n_hidden, 2 * n_hidden)
    if n_in != n_hidden:
        return shapes.get("1/w0") == (n_hidden, n_in)
    warnings.warn(
        f"{where}: two link indices with in_size == out_size == {n_in} fit both a 2-layer "
        "NStepLSTM and a 1-layer NStepBiLSTM; reading a 2-layer NStepLSTM "
        "(pass bidirectional=True for the other)",
        stacklevel=_caller_level(),
    )
    return False


def _step_lstm(shapes: Shapes, where: str, prefix: str) -> StepLSTM:
    """``links.LSTM`` keys -> :class:`StepLSTM`."""
    upward = shapes.get("upward/W")
    if upward is None or len(upward) != 2 or upward[0] % 4:
        got = "missing" if upward is None else f"shape {upward}"
        raise InputError(
            f"{where}: {prefix}upward/W must be 2-D (4 * out_size, in_size), got {got}"
        )
    n_in, n_hidden = upward[1], upward[0] // 4
    _check_sizes(where, f"{prefix}upward/W", upward, ("4 * out_size", "in_size"))
    expected: Shapes = {
        "upward/W": (4 * n_hidden, n_in),
        "upward/b": (4 * n_hidden,),
        "lateral/W": (4 * n_hidden, n_hidden),
    }
    _check(shapes, expected, where, prefix)
    return StepLSTM(n_in, n_hidden)


def _article_chain(
    shapes: Shapes, where: str, prefix: str, bidirectional: bool | None, dropout: float
) -> Forecaster:
    """The article's ``MyNet`` (keys relative to ``prefix``): LSTM link under ``l1/``,
    ``links.Linear`` under ``l2/``."""
    head_keys = {"l2/W", "l2/b"}
    unknown = [k for k in shapes if not k.startswith("l1/") and k not in head_keys]
    if unknown:
        raise InputError(
            f"{where}: cannot map keys {_list(unknown, prefix)} (the article's chain holds "
            "only l1/... and l2/W, l2/b)"
        )
    if "l2/W" not in shapes:
        raise InputError(f"{where}: missing key '{prefix}l2/W' of the Linear layer under l2/")
    lstm_shapes = {k[3:]: v for k, v in shapes.items() if k.startswith("l1/")}
    if not lstm_shapes:
        raise InputError(f"{where}: missing the LSTM link under {prefix}l1/")
    w0, head = lstm_shapes.get("0/w0"), shapes["l2/W"]
    if bidirectional is None and w0 is not None and len(w0) == 2 == len(head):
        n_hidden, n_in = _layer0_sizes(lstm_shapes)
        if n_in == n_hidden and _link_count(lstm_shapes) == 2:  # the keys fit both ways
            bidirectional = head[1] == 2 * n_hidden  # the head reads (N) or both directions (2N)
    lstm = _lstm_link(lstm_shapes, where, f"{prefix}l1/", bidirectional, dropout)
    if isinstance(lstm, NStepBiLSTM):
        raise InputError(
            f"{where}: {prefix}l1/ holds an NStepBiLSTM, which the article's Forecaster does "
            f"not have; load the LSTM alone with prefix='{prefix}l1/'"
        )
    n_layers, cell = (lstm.n_layers, "nstep") if isinstance(lstm, NStepLSTM) else (1, "step")
    n_in, n_hidden = lstm.in_size, lstm.out_size
    if len(head) != 2:
        raise InputError(f"{where}: {prefix}l2/W must be 2-D (n_out, {n_hidden}), got shape {head}")
    n_out = head[0]
    _check_sizes(where, f"{prefix}l2/W", head, ("n_out",))
    expected: Shapes = {"W": (n_out, n_hidden), "b": (n_out,)}
    head_shapes = {k[3:]: v for k, v in shapes.items() if k in head_keys}
    _check(
        head_shapes, {k: s for k, s in expected.items() if k in head_shapes}, where, f"{prefix}l2/"
    )
    return Forecaster(n_layers, n_in, n_hidden, n_out, dropout, cell)


def _state(model: nn.Module, arrays: Arrays) -> dict[str, torch.Tensor]:
    """``model``'s state from ``arrays`` (keys relative to the prefix), whose shapes
    :func:`_link_or_chain` or :func:`_lstm_link` checked when they built ``model``."""
    if isinstance(model, Forecaster):
        lstm_arrays = {k[3:]: v for k, v in arrays.items() if k.startswith("l1/")}
        if isinstance(model.lstm, NStepLSTM):
            state = {f"lstm.{k}": v for k, v in _state(model.lstm, lstm_arrays).items()}
        else:
            cell = _state(model.lstm.cells[0], lstm_arrays)
            state = {f"lstm.cells.0.{k}": v for k, v in cell.items()}
        n_out = model.head.out_features
        b = arrays.get("l2/b")
        state["head.weight"] = _tensor(arrays["l2/W"])  # (n_out, N)
        state["head.bias"] = torch.zeros(n_out) if b is None else _tensor(b)  # nobias: zeros
        return state
    if isinstance(model, StepLSTM):
        return {
            "weight_ih": _tensor(_deinterleave(arrays["upward/W"])),  # (4N, I)
            "weight_hh": _tensor(_deinterleave(arrays["lateral/W"])),  # (4N, N)
            "bias_ih": _tensor(_deinterleave(arrays["upward/b"])),  # (4N,)
            "bias_hh": torch.zeros(4 * model.out_size),  # links.LSTM has no lateral bias
        }
    assert isinstance(model, NStepLSTM), type(model)

    def cat(k: int, name: str, first: int) -> torch.Tensor:
        return _tensor(np.concatenate([arrays[f"{k}/{name}{j}"] for j in range(first, first + 4)]))

    state = {}
    for k in range(model.n_layers * model.n_directions):
        layer, direction = divmod(k, model.n_directions)
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        state[f"lstm.weight_ih{suffix}"] = cat(k, "w", 0)  # (4N, I_layer), gates i, f, a, o
        state[f"lstm.weight_hh{suffix}"] = cat(k, "w", 4)  # (4N, N)
        state[f"lstm.bias_ih{suffix}"] = cat(k, "b", 0)  # (4N,)
        state[f"lstm.bias_hh{suffix}"] = cat(k, "b", 4)  # (4N,)
    return state


def _deinterleave(w: np.ndarray) -> np.ndarray:
    """Rows ``unit * 4 + gate`` with gates (a, i, f, o) -> gate-major blocks (i, f, a, o).

    ``w``: ``(4N, ...)`` -> ``(4N, ...)``.
    """
    n = w.shape[0] // 4
    per_unit = w.reshape(n, 4, *w.shape[1:])  # (N, 4, ...), gates a, i, f, o
    return np.concatenate([per_unit[:, g] for g in (1, 2, 0, 3)])  # (4N, ...)


# ------------------------------------------------------------------------- run dir


def import_chainer_run(
    path: str | Path,
    out_dir: str | Path,
    *,
    sequence_size: int = 30,
    prefix: str | None = None,
    force: bool = False,
    from_command_line: bool = False,
    **config_overrides: Any,
) -> Path:
    """Turn the article's chain checkpoint (``l1`` LSTM + ``l2`` Linear) into a run directory.

    A run needs the whole chain, head included, so ``prefix`` here must name the
    sub-chain that holds ``l1/`` and ``l2/`` (e.g. ``"updater/model:main/predictor/"``
    in a Trainer snapshot; ``None`` or ``""``: the whole file). :func:`load_chainer_npz`
    also takes a prefix of the LSTM link alone (``"l1/"``); here that holds no head
    and is refused with a hint to name its parent.

    The architecture (``n_layers``, ``n_in``, ``n_hidden``, ``n_out``, ``cell``) comes
    from the file; what it cannot tell comes from ``sequence_size`` and
    ``config_overrides`` (any :class:`~nsteplstm.config.Config` field; ``None`` values
    count as not given) over the article's defaults. With CSV data ``scale`` is
    ``"none"`` (a Chainer model carries no scaler; another ``scale`` is refused). The
    directory gets ``config.json``, ``model.safetensors``, an empty ``history.csv`` and
    ``metrics.json`` naming the source, all written by :mod:`nsteplstm.runs`, so
    ``nsteplstm forecast`` reads it like a trained run.

    ``from_command_line``: ``sequence_size`` and the overrides are ``import-chainer``'s
    flags, which errors then name as ``train``'s are (``command line: --dropout 2.0 is
    out of range``); otherwise by their keys, as for :func:`~nsteplstm.train.train`'s
    settings (``config settings: dropout = 2.0 ...``).

    Returns:
        The run directory.

    Raises:
        InputError: unreadable or non-chain checkpoint, non-finite weights, an
            override that contradicts the checkpoint, an invalid config, a non-empty
            ``out_dir`` without ``force``, a ``prefix`` that holds no chain.
    """
    force = check_bool("force", force)
    cli = check_bool("from_command_line", from_command_line)
    overrides = {k: v for k, v in config_overrides.items() if v is not None}
    data = overrides.get("data")
    if data is not None and not (
        isinstance(data, str) and (data in ("fibonacci", "sine") or is_csv_data(data))
    ):  # Not "adding": its model maps 2 features to 1, and a run forecasts closed loop.
        raise InputError(
            f"{_given(path, 'data', data, cli)} is out of range (allowed: fibonacci, sine, "
            "csv:PATH)"
        )
    dropout = overrides.get("dropout", ARTICLE_DROPOUT)
    dropout = dropout if _is_ratio(dropout) else ARTICLE_DROPOUT  # Config names a bad one
    model = _chain(path, "" if prefix is None else prefix, dropout)
    found = {k: v for k, v in model.config.items() if k != "dropout"}
    _check_found(path, found, overrides, cli)
    if data is not None:
        overrides["data"] = absolute_data(data)  # as train stores it
    config = _run_config(path, found, {"sequence_size": sequence_size, **overrides}, cli)
    header = _forecastable(path, config, cli)

    def write(run_dir: Path) -> None:
        write_config(run_dir, config, model.config, None, data_header=header)
        write_results(run_dir, model, [], {"imported_from": str(Path(path).resolve())})

    return prepare_run_dir(out_dir, force, write)  # all of the run or none of it


def _given(path: str | Path, key: str, value: Any, cli: bool) -> str:
    """Where a setting of the import came from and the setting, as an error begins:
    ``command line: --data 'bogus'`` (its flag), else ``import of PATH: data = 'bogus'``."""
    if cli:
        return f"{COMMAND_LINE}: {named_setting(key, value, COMMAND_LINE)}"
    return f"import of {path}: {named_setting(key, value, None)}"


def _chain(path: str | Path, prefix: str, dropout: float) -> Forecaster:
    """The article's chain under ``prefix`` of the file, loaded, in eval mode; an
    InputError for anything else (a bare link, other names, weights not finite in float32)."""
    shapes, where, p = _shapes_under(path, prefix)
    is_link = any(k in shapes for k in _LSTM_KEYS) or any(_NSTEP_KEY.fullmatch(k) for k in shapes)
    if not is_link and not any(k.startswith(("l1/", "l2/")) for k in shapes):
        raise InputError(
            f"{where}: no l1/ and l2/ of the article's chain, which a run needs (its LSTM link "
            "under l1/, its Linear head under l2/; a chain that names them otherwise: rename "
            f"its keys so){_prefix_hint(shapes, p)}"
        )
    with warnings.catch_warnings():  # only a bare link is ambiguous, and it is refused below
        warnings.simplefilter("ignore")
        model = _link_or_chain(shapes, where, p, None, dropout)
    if not isinstance(model, Forecaster):
        raise _not_a_chain(model, where, p)
    arrays = _read_arrays(path, p, shapes)
    for key, a in arrays.items():
        if not np.isfinite(a).all():
            raise InputError(f"Chainer checkpoint {path}: {p}{key} holds NaN or infinite values")
        arrays[key] = weights = _tensor(a).numpy()  # cast once: _state's _tensor copies not
        if not np.isfinite(weights).all():  # finite, but not as float32
            raise InputError(
                f"Chainer checkpoint {path}: {p}{key} holds {np.abs(a).max():.6g}, beyond "
                "float32's range (at most 3.40282e+38 in magnitude)"
            )
    _load_exact(model, _state(model, arrays))
    return model.eval()


def _check_found(
    path: str | Path, found: dict[str, Any], overrides: dict[str, Any], cli: bool
) -> None:
    """InputError where the model ``found`` in the file cannot make a run with these
    ``overrides`` (flags when ``cli``): one contradicts it, it cannot forecast closed
    loop, or the data cannot feed it."""
    for key, value in found.items():
        if key in overrides and overrides[key] != value:
            raise InputError(
                f"Chainer checkpoint {path}: has {key} = {plain(value)}, but "
                f"{plain(overrides[key])} was asked for"
            )
    if found["n_in"] != found["n_out"]:
        raise InputError(
            f"Chainer checkpoint {path}: the model has n_in = {found['n_in']} and n_out = "
            f"{found['n_out']}; a run forecasts closed loop, feeding each prediction back "
            "as the next input, which needs n_in == n_out (nl.load_chainer_npz loads the "
            "model itself)"
        )
    is_csv = is_csv_data(overrides.get("data", "fibonacci"))
    if not is_csv and (found["n_in"], found["n_out"]) != (1, 1):
        raise InputError(
            f"Chainer checkpoint {path}: the model has n_in = {found['n_in']} and n_out = "
            f"{found['n_out']}, the built-in series one feature; name the data it forecasts "
            "(--data csv:PATH, data= from Python)"
        )
    columns = overrides.get("csv_columns")
    if is_csv and isinstance(columns, (list, tuple)) and len(columns) != found["n_in"]:
        named = flag_of("csv_columns") if cli else "csv_columns"
        raise InputError(
            f"Chainer checkpoint {path}: the model takes n_in = {found['n_in']} features, but "
            f"{named} names {len(columns)} column{'s' * (len(columns) != 1)} "
            f"({', '.join(map(repr, columns))})"
        )
    if overrides.get("scale", "none") != "none":
        raise InputError("import-chainer: scale must be 'none' (a Chainer model has no scaler)")


def _forecastable(path: str | Path, config: Config, cli: bool) -> dict[str, Any] | None:
    """The run's data header (:attr:`nsteplstm.data.Series.header`) once its data loads
    and fits the model, with one start window in some series: a run must forecast.
    ``cli``: sequence_size came from the command line (an error names its flag)."""
    try:
        series = load_series(config)
    except ColumnCountError as e:  # its advice is for training: the model's sizes are fixed
        fix = (
            f"choose {config.n_in} of them with --csv-columns (csv_columns= from Python)"
            if e.columns > config.n_in
            else f"name a file with {config.n_in} data columns"
        )
        raise InputError(
            f"{config.csv_path}: {e.columns} column{'s' * (e.columns != 1)} read, but the "
            f"checkpoint's model takes {config.n_in}; {fix}{e.hint}"
        ) from None
    longest = max(len(x) for x in series.series)
    if longest < config.sequence_size:
        raise InputError(
            f"{_given(path, 'sequence_size', config.sequence_size, cli)} is longer than the "
            f"longest series of {config.data} ({longest} points): the run could not forecast"
        )
    return series.header


def _run_config(
    path: str | Path, found: dict[str, Any], given: dict[str, Any], cli: bool
) -> Config:
    """The settings ``given`` (flags when ``cli``, else a Python call's settings) over
    the model ``found`` in the file, over the article's defaults, as a validated
    :class:`Config`; errors name each setting as it was given."""
    _check_window(given, cli)
    from_file = {**found, **({"scale": "none"} if is_csv_data(given.get("data", "")) else {})}
    return Config.merged(
        from_file,
        given,
        toml_source=f"Chainer checkpoint {path}",  # its settings match given's (_check_found)
        overrides_source=COMMAND_LINE if cli else "settings",  # as train's
    )


def _check_window(given: dict[str, Any], cli: bool) -> None:
    """From the command line, InputError for a ``--sequence-size`` that the article's
    built-in series cannot hold, with the largest that fits: ``import-chainer`` has no
    flags for ``total_size`` and ``split_rate``, which :class:`Config`'s message blames.
    Each part of the split must hold a window of ``sequence_size + 1`` points."""
    size, data = given["sequence_size"], given.get("data", "fibonacci")
    if not cli or not is_int(size) or data not in ("fibonacci", "sine"):
        return
    if {"total_size", "split_rate"} & given.keys():  # not flags: Config's message says it
        return
    total, split = Config.total_size, Config.split_rate  # the defaults
    n_train = train_points(split, total)
    points, part = min((n_train, "training"), (total - n_train, "validation"))
    if points - 1 >= 1 and size > points - 1:
        raise InputError(
            f"{COMMAND_LINE}: {flag_of('sequence_size')} {size} is too long for the run's data "
            f"({total} points of {data}, split {split}: {points} {part} points, which must "
            f"hold {flag_of('sequence_size')} + 1): at most {points - 1}"
        )


def _not_a_chain(lstm: nn.Module, where: str, prefix: str) -> InputError:
    """The error for a bare LSTM link where a run needs the article's whole chain."""
    parent = prefix[: -len("l1/")] if prefix.endswith("l1/") else None
    hint = f" (here {parent!r})" if parent is not None else ""
    also = f"; prefix must name the sub-chain that holds both{hint}, not the LSTM link"
    return InputError(
        f"{where}: holds a bare {type(lstm).__name__}, not the article's chain a run needs "
        f"(an LSTM link under l1/ and a Linear head under l2/){also if prefix else ''}"
    )


def _is_ratio(x: Any) -> bool:
    return is_finite_number(x) and 0 <= x < 1  # as Config takes it (a NumPy float too)


# ------------------------------------------------------------------------- helpers


def _check(shapes: Shapes, expected: Shapes, where: str, prefix: str) -> None:
    """Raise :class:`InputError` unless ``shapes`` has exactly the ``expected`` keys and shapes."""
    unknown = [k for k in shapes if k not in expected]
    if unknown:
        raise InputError(f"{where}: cannot map keys {_list(unknown, prefix)}")
    missing = [k for k in expected if k not in shapes]
    if missing:
        raise InputError(f"{where}: missing keys {_list(missing, prefix)}")
    wrong = [
        f"{prefix}{k} has shape {shapes[k]}, expected {shape}"
        for k, shape in expected.items()
        if shapes[k] != shape
    ]
    if wrong:
        raise InputError(f"{where}: {'; '.join(wrong[:_MAX_LISTED])}")


def _check_sizes(where: str, key: str, shape: tuple[int, ...], names: tuple[str, ...]) -> None:
    """Raise :class:`InputError` naming the file and ``key`` unless each size is >= 1
    (a zero-size array would otherwise fail in the model, naming neither)."""
    for name, size in zip(names, shape, strict=False):
        check_int(f"{where}: {key} has shape {tuple(shape)}, so {name}", size)


def _load_exact(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """``load_state_dict(strict=True)`` after asserting the mapping covers every shape."""
    own = model.state_dict()
    assert state.keys() == own.keys(), (sorted(state), sorted(own))
    for key, value in state.items():
        assert value.shape == own[key].shape, (key, value.shape, own[key].shape)
    model.load_state_dict(state, strict=True)


def _tensor(a: np.ndarray) -> torch.Tensor:
    with np.errstate(over="ignore"):  # loaded as stored: past float32, inf
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def _prefix_hint(shapes: Shapes, prefix: str, outside: str = "") -> str:
    """A ``; pass prefix=...`` hint naming sub-chains that look like LSTM links (not
    one holding the key ``outside``: loading that link alone would not help)."""
    tails = ("0/w0", "upward/W")
    links = {prefix + k[: -len(t)] for k in shapes for t in tails if k.endswith("/" + t)}
    found = sorted(link for link in links if not (outside and outside.startswith(link)))
    return (
        f"; an LSTM link seems to be under prefix {found[0]!r}: load it alone with "
        f"nl.load_chainer_npz(path, prefix={found[0]!r})"
        if found
        else ""
    )


def _chain_prefixes(shapes: Shapes, prefix: str) -> list[str]:
    """Prefixes under which the article's chain (an LSTM link under ``l1/``) seems to be."""
    tails = ("l1/0/w0", "l1/upward/W")
    return sorted({prefix + k[: -len(t)] for k in shapes for t in tails if k.endswith("/" + t)})


def _list(keys: Any, prefix: str = "") -> str:
    names = sorted(prefix + k for k in keys)
    more = f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else ""
    return ", ".join(repr(n) for n in names[:_MAX_LISTED]) + more


def _caller_level() -> int:
    """The ``stacklevel`` for a warning raised here that names the first caller outside
    this package (the user's line), however deep in the package the warning is."""
    package = str(Path(__file__).parent)
    frame, level = sys._getframe(1), 1  # the frame that calls warnings.warn: level 1
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level
