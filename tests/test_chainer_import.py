"""Chainer checkpoint import: parity with Chainer 7.8.1's outputs, and clean errors.

The reference outputs come from ``tests/fixtures/make_chainer_fixtures.py`` (run once
with real Chainer); these tests need no Chainer.
"""

from __future__ import annotations

import io as bytes_io
import math
import os
import re
import shutil
import threading
import tracemalloc
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nsteplstm import runs
from nsteplstm.chainer_import import import_chainer_run, load_chainer_npz, read_npz_shapes
from nsteplstm.cli import main
from nsteplstm.errors import InputError
from nsteplstm.forecast import forecast
from nsteplstm.model import Forecaster, NStepBiLSTM, NStepLSTM, StepLSTM

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
ATOL = 1e-5


def fixture(name: str) -> Path:
    return FIXTURES / f"{name}.npz"


def io(name: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / f"{name}_io.npz", allow_pickle=False) as f:
        return dict(f)


def assert_close(actual: torch.Tensor, expected: np.ndarray) -> None:
    assert tuple(actual.shape) == expected.shape
    np.testing.assert_allclose(actual.detach().numpy(), expected, rtol=0, atol=ATOL)


# ------------------------------------------------------------------------- parity


@pytest.mark.parametrize(
    ("name", "cls", "n_layers"),
    [
        ("nstep_l1", NStepLSTM, 1),
        ("nstep_l2", NStepLSTM, 2),
        ("nstep_l3", NStepLSTM, 3),
        ("nstepbi_l1", NStepBiLSTM, 1),
        ("nstepbi_l2", NStepBiLSTM, 2),
    ],
)
@pytest.mark.parametrize("case", ["zero", "given"])
def test_nstep_matches_chainer(name: str, cls: type, n_layers: int, case: str) -> None:
    model = load_chainer_npz(fixture(name))
    assert type(model) is cls and not model.training
    assert (model.n_layers, model.in_size, model.out_size) == (n_layers, 3, 4)
    ref = io(name)
    xs = [torch.from_numpy(ref[f"x{j}"]) for j in range(len(ref["lengths"]))]
    assert [len(x) for x in xs] == [5, 2, 7, 3]  # variable lengths, unsorted
    hx = cx = None
    if case == "given":
        hx, cx = torch.from_numpy(ref["hx"]), torch.from_numpy(ref["cx"])
    with torch.no_grad():
        hy, cy, ys = model(hx, cx, xs)
    assert_close(hy, ref[f"{case}_hy"])
    assert_close(cy, ref[f"{case}_cy"])
    for j, y in enumerate(ys):
        assert_close(y, ref[f"{case}_y{j}"])


def test_lstm_link_matches_chainer_with_shrinking_batch() -> None:
    cell = load_chainer_npz(fixture("lstm_step"))
    assert type(cell) is StepLSTM and (cell.in_size, cell.out_size) == (3, 4)
    ref = io("lstm_step")
    with torch.no_grad():
        for t, batch in enumerate((3, 3, 2, 1)):
            x = torch.from_numpy(ref[f"x{t}"])
            assert len(x) == batch
            assert_close(cell(x), ref[f"y{t}"])
            assert_close(cell.h, ref[f"h{t}"])  # the full state, rows beyond the batch too
            assert_close(cell.c, ref[f"c{t}"])


def test_article_nstep_checkpoint_matches_chainer() -> None:
    model = load_chainer_npz(fixture("article_nstep"))
    assert isinstance(model, Forecaster) and not model.training
    assert model.config == dict(
        n_layers=1, n_in=1, n_hidden=200, n_out=1, dropout=0.3, cell="nstep"
    )
    ref = io("article_nstep")
    xs = [torch.from_numpy(ref[f"x{j}"]) for j in range(3)]
    with torch.no_grad():
        ys = model(xs)
        hy, cy, _ = model.lstm(None, None, xs)
    for j, y in enumerate(ys):
        assert_close(y, ref[f"y{j}"])
    assert_close(hy, ref["hy"])
    assert_close(cy, ref["cy"])


def test_article_step_checkpoint_matches_chainer() -> None:
    model = load_chainer_npz(fixture("article_step"), dropout=0.0)
    assert isinstance(model, Forecaster)
    assert model.config["cell"] == "step" and model.config["n_hidden"] == 200
    ref = io("article_step")
    with torch.no_grad():
        ys = model(list(torch.from_numpy(ref["x"])))
    assert_close(torch.stack(ys), ref["y"])


def test_prefix_reads_the_sub_chain() -> None:
    lstm = load_chainer_npz(fixture("article_nstep"), prefix="l1")
    assert type(lstm) is NStepLSTM and lstm.out_size == 200
    step = load_chainer_npz(fixture("article_step"), prefix="l1/")
    assert type(step) is StepLSTM and step.out_size == 200


def test_nested_prefix(tmp_path: Path) -> None:
    with np.load(fixture("nstep_l2"), allow_pickle=False) as f:
        arrays = {f"encoder/lstm/{k}": v for k, v in f.items()}
    arrays["encoder/embed/W"] = np.zeros((5, 3), np.float32)
    path = tmp_path / "nested.npz"
    np.savez(path, **arrays)
    with pytest.raises(InputError, match=r"prefix 'encoder/lstm/'"):
        load_chainer_npz(path)  # the hint names the sub-chain
    model = load_chainer_npz(path, prefix="encoder/lstm/")
    assert type(model) is NStepLSTM and model.n_layers == 2


def test_trainer_snapshot_with_prefix(tmp_path: Path) -> None:
    """Only the keys under the prefix are read: bookkeeping arrays elsewhere do not matter."""
    with np.load(fixture("article_nstep"), allow_pickle=False) as f:
        arrays = {f"updater/model:main/predictor/{k}": v for k, v in f.items()}
    arrays["updater/iteration"] = np.array(1000)
    arrays["updater/iterator:main/order"] = np.array(None, dtype=object)
    path = tmp_path / "snapshot.npz"
    np.savez(path, **arrays)
    # The iterator's pickled None (shuffle=False) once hid this hint behind "pickled".
    hint = (
        "under prefix 'updater/model:main/predictor/': pass --prefix updater/model:main/predictor/"
    )
    assert hint in one_line_error(path)
    model = load_chainer_npz(path, prefix="updater/model:main/predictor/l1")
    assert type(model) is NStepLSTM and model.out_size == 200
    # The whole chain, as the hint says: from Python this once returned nothing.
    chain = load_chainer_npz(path, prefix="updater/model:main/predictor/")
    whole = load_chainer_npz(fixture("article_nstep"))
    assert type(chain) is Forecaster
    for (name, a), b in zip(chain.state_dict().items(), whole.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_an_uninitialised_chainer_parameter_is_named_as_such(tmp_path: Path) -> None:
    # L.Linear(None, 1) saved before its first call: Chainer writes W as a pickled None.
    path = rewrite(tmp_path, "article_nstep", **{"l2/W": np.array(None, dtype=object)})
    assert (
        "'l2/W' holds pickled Python objects, not numbers (Chainer saves a parameter as "
        "None when it was never initialised" in one_line_error(path)
    )
    other = rewrite(tmp_path, "article_nstep", **{"l2/extra": np.array(None, dtype=object)})
    assert "never initialised" not in one_line_error(other)  # not a parameter's name


def test_the_head_tells_a_bidirectional_article_chain_apart(tmp_path: Path) -> None:
    # in_size == out_size: an NStepBiLSTM(1, 4, 4) and an NStepLSTM(2, 4, 4) have the
    # same l1/ keys; the head's width (N or 2N) decides, without the ambiguity warning.
    rng = np.random.default_rng(1)
    arrays = {f"l1/{k}/{p}{j}": rng.random((4, 4) if p == "w" else (4,), np.float32)
              for k in (0, 1) for p in "wb" for j in range(8)}  # fmt: skip
    for width, name in ((8, "bi"), (4, "uni")):
        np.savez(tmp_path / f"{name}.npz", **arrays, **{"l2/W": np.zeros((4, width), np.float32)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "l1/ holds an NStepBiLSTM" in one_line_error(tmp_path / "bi.npz")
        uni = load_chainer_npz(tmp_path / "uni.npz")
    assert type(uni) is Forecaster and uni.lstm.n_layers == 2


@pytest.mark.parametrize("link", ["nstep_l1", "nstep_l2", "nstep_l3"])
def test_a_head_of_twice_the_width_is_the_array_named(tmp_path: Path, link: str) -> None:
    # Where the l1/ keys tell the direction, a head (n_out, 2N) once forced a
    # bidirectional reading of them: "1 link indices cannot be a bidirectional stack",
    # or "l1/1/w0 has shape (4, 4), expected (4, 3)", instead of the head's shape.
    with np.load(fixture(link), allow_pickle=False) as f:
        arrays = {f"l1/{k}": v for k, v in f.items()}
    np.savez(tmp_path / "wide.npz", **arrays, **{"l2/W": np.zeros((1, 8), np.float32)})
    message = one_line_error(tmp_path / "wide.npz")
    assert message.endswith("l2/W has shape (1, 8), expected (1, 4)")


def test_importing_a_snapshot_without_prefix_names_the_chain_to_pass(tmp_path: Path) -> None:
    path = snapshot(tmp_path)
    with pytest.raises(InputError, match=r"under prefix 'updater/model:main/predictor/': pass"):
        import_chainer_run(path, tmp_path / "run")  # the parent of l1/, not l1/ itself
    assert not (tmp_path / "run").exists()
    run = import_chainer_run(path, tmp_path / "run", prefix="updater/model:main/predictor/")
    assert (run / "model.safetensors").is_file()


def test_ambiguous_bidirectionality_reads_unidirectional_unless_forced(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = {f"{k}/{p}{j}": rng.random((4, 4) if p == "w" else (4,), np.float32)
              for k in (0, 1) for p in "wb" for j in range(8)}  # fmt: skip
    path = tmp_path / "square.npz"
    np.savez(path, **arrays)
    with pytest.warns(UserWarning, match="bidirectional=True") as caught:
        uni = load_chainer_npz(path)
    assert caught[0].filename == __file__  # the caller's line, not the library's
    assert type(uni) is NStepLSTM and uni.n_layers == 2
    bi = load_chainer_npz(path, bidirectional=True)
    assert type(bi) is NStepBiLSTM and bi.n_layers == 1


def test_forcing_the_wrong_direction_is_a_shape_error() -> None:
    with pytest.raises(InputError, match=r"1/w0 has shape \(4, 3\), expected \(4, 4\)"):
        load_chainer_npz(fixture("nstepbi_l1"), bidirectional=False)


# ------------------------------------------------------------------------- errors


def rewrite(tmp_path: Path, name: str, **changes: np.ndarray | None) -> Path:
    """A copy of fixture ``name`` with keys replaced, added, or removed (value None)."""
    with np.load(fixture(name), allow_pickle=False) as f:
        arrays = dict(f)
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    path = tmp_path / "changed.npz"
    np.savez(path, **arrays)
    return path


def one_line_error(path: Path, **kwargs: object) -> str:
    with pytest.raises(InputError) as info:
        load_chainer_npz(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_unknown_key_is_listed(tmp_path: Path) -> None:
    path = rewrite(tmp_path, "nstep_l1", **{"0/extra": np.zeros(4, np.float32)})
    assert "'0/extra'" in one_line_error(path)
    path = rewrite(tmp_path, "article_nstep", **{"l3/W": np.zeros(4, np.float32)})
    assert "'l3/W'" in one_line_error(path)
    path = rewrite(tmp_path, "lstm_step", **{"lateral/b": np.zeros(16, np.float32)})
    assert "'lateral/b'" in one_line_error(path)


def test_missing_key_is_named(tmp_path: Path) -> None:
    path = rewrite(tmp_path, "nstep_l2", **{"1/b5": None})
    assert "missing keys '1/b5'" in one_line_error(path)


def test_wrong_shape_names_key_and_shapes(tmp_path: Path) -> None:
    path = rewrite(tmp_path, "nstep_l2", **{"1/w6": np.zeros((4, 5), np.float32)})
    assert "1/w6 has shape (4, 5), expected (4, 4)" in one_line_error(path)
    path = rewrite(tmp_path, "article_nstep", **{"l2/W": np.zeros((1, 100), np.float32)})
    assert "l2/W has shape (1, 100), expected (1, 200)" in one_line_error(path)
    path = rewrite(tmp_path, "article_step", **{"l1/lateral/W": np.zeros((800, 3), np.float32)})
    assert "l1/lateral/W has shape (800, 3), expected (800, 200)" in one_line_error(path)


@pytest.mark.parametrize(
    "index",
    ["2", "00", "9" * 26, "9" * 5000],
    ids=["gap", "leading-zero", "huge", "too-long-for-int"],
)
def test_link_indices_must_run_from_zero(tmp_path: Path, index: str) -> None:
    """A stray link index is named at once; it does not size the table of expected keys
    (an index of 10**26 hung, one of 10**6 took 20 s to list 16 million missing keys)."""
    path = rewrite(
        tmp_path, "article_nstep", **{f"l1/{index}/w0": np.zeros((200, 200), np.float32)}
    )
    message = one_line_error(path)
    assert f"key 'l1/{index}/w0' has a link index outside 0..1" in message
    assert "missing" not in message


def test_one_wrong_first_matrix_is_the_one_named(tmp_path: Path) -> None:
    """The sizes came from 0/w0 alone: a transposed 0/w0 had every other array of the
    link listed as wrong, and 0/w0 itself not at all."""
    with np.load(fixture("nstep_l2"), allow_pickle=False) as f:
        w0 = f["0/w0"]
    assert w0.shape[0] != w0.shape[1]
    message = one_line_error(rewrite(tmp_path, "nstep_l2", **{"0/w0": w0.T.copy()}))
    assert message.endswith(f"0/w0 has shape {w0.T.shape}, expected {w0.shape}")
    message = one_line_error(rewrite(tmp_path, "nstep_l2", **{"0/b3": np.zeros(2, np.float32)}))
    assert message.endswith("0/b3 has shape (2,), expected (4,)")
    # In the article's chain, 0/w0 alone decided bidirectional: half its rows read as
    # a bidirectional head, "1 link indices cannot be a bidirectional stack".
    cut = np.zeros((100, 1), np.float32)
    message = one_line_error(rewrite(tmp_path, "article_nstep", **{"l1/0/w0": cut}))
    assert message.endswith("l1/0/w0 has shape (100, 1), expected (200, 1)")


@pytest.mark.parametrize(("size", "zero_rows"), [("out_size", True), ("in_size", False)])
def test_zero_size_link_names_file_and_key(tmp_path: Path, size: str, zero_rows: bool) -> None:
    """A link whose arrays are all empty in one size, as a zero-size Chainer link saves."""
    with np.load(fixture("nstep_l1"), allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    for k, a in arrays.items():
        if zero_rows:
            arrays[k] = np.zeros((0, *(0 for _ in a.shape[1:])), np.float32)
        elif k in ("0/w0", "0/w1", "0/w2", "0/w3"):
            arrays[k] = np.zeros((a.shape[0], 0), np.float32)
    message = one_line_error(rewrite(tmp_path, "nstep_l1", **arrays))
    shape = arrays["0/w0"].shape
    assert f"0/w0 has shape {shape}, so {size} must be an integer >= 1, got 0" in message


@pytest.mark.parametrize(
    ("name", "key", "shape", "size"),
    [
        ("lstm_step", "upward/W", (0, 3), "4 * out_size"),
        ("lstm_step", "upward/W", (16, 0), "in_size"),
        ("article_nstep", "l2/W", (0, 200), "n_out"),
    ],
)
def test_zero_size_names_file_and_key(
    tmp_path: Path, name: str, key: str, shape: tuple[int, ...], size: str
) -> None:
    """Was "in_size must be an integer >= 1, got 0" from the model, naming neither."""
    path = rewrite(tmp_path, name, **{key: np.zeros(shape, np.float32)})
    message = one_line_error(path)
    assert f"{key} has shape {shape}, so {size} must be an integer >= 1, got 0" in message


def test_truncated_file(tmp_path: Path) -> None:
    data = fixture("article_nstep").read_bytes()
    path = tmp_path / "half.npz"
    path.write_bytes(data[: len(data) // 2])
    assert "truncated or corrupt file" in one_line_error(path)


def test_random_bytes_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "random.npz"
    path.write_bytes(np.random.default_rng(0).bytes(1000))
    assert "not an .npz archive" in one_line_error(path)
    assert "file not found" in one_line_error(tmp_path / "nope.npz")
    assert "directory" in one_line_error(tmp_path)
    assert "path must be a file name (str or Path), got NoneType" in one_line_error(None)
    with pytest.raises(InputError, match="prefix must be None or a string .* got 1"):
        load_chainer_npz(tmp_path / "nope.npz", prefix=1)


def with_member(tmp_path: Path, name: str, key: str, data: bytes) -> Path:
    """A copy of fixture ``name`` whose member ``key`` is replaced by raw ``data``."""
    path = tmp_path / "crafted.npz"
    with zipfile.ZipFile(fixture(name)) as src, zipfile.ZipFile(path, "w") as out:
        for member in src.namelist():
            out.writestr(member, data if member == f"{key}.npy" else src.read(member))
    return path


def npy_header(shape: tuple[int, ...], version: int = 1) -> bytes:
    """A float32 ``.npy`` header claiming ``shape``; version 3 is 2's layout, relabelled."""
    f = bytes_io.BytesIO()
    header = {"descr": "<f4", "fortran_order": False, "shape": shape}
    write = np.lib.format.write_array_header_1_0
    if version > 1:
        write = np.lib.format.write_array_header_2_0
    write(f, header)
    data = f.getvalue()
    return data[:6] + bytes([version]) + data[7:]


def error_and_peak(path: Path, **kwargs: object) -> tuple[str, int]:
    """:func:`one_line_error`'s message and the peak of traced memory while it ran
    (NumPy traces its array data too)."""
    tracemalloc.start()
    try:
        return one_line_error(path, **kwargs), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_header_claiming_more_than_the_member_holds_is_not_allocated(tmp_path: Path) -> None:
    """NumPy allocates what the header claims before reading; a crafted claim is refused."""
    path = with_member(tmp_path, "article_nstep", "l2/W", npy_header((10**9, 10**9)) + bytes(800))
    assert "header claims shape (1000000000, 1000000000)" in one_line_error(path)
    path = with_member(tmp_path, "article_nstep", "l2/W", npy_header((10**4, 10**4)) + bytes(800))
    message, peak = error_and_peak(path)
    assert "claims shape (10000, 10000), 400000000 bytes, but it holds 800" in message
    assert peak < 50 * 2**20  # the claimed 400 MB were never allocated


def with_zeros(tmp_path: Path, name: str, key: str, shape: tuple[int, ...]) -> Path:
    """A compressed copy of fixture ``name`` whose member ``key`` holds float32 zeros of
    ``shape`` under an honest header: 256 MiB of zeros take about 1 MB on disk, written in
    1 MiB pieces, never whole in memory."""
    path = tmp_path / "zeros.npz"
    with (
        zipfile.ZipFile(fixture(name)) as src,
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as out,
    ):
        for member in src.namelist():
            if member != f"{key}.npy":
                out.writestr(member, src.read(member))
        with out.open(f"{key}.npy", "w") as f:
            f.write(npy_header(shape))
            size, piece = 4 * math.prod(shape), bytes(2**20)
            for start in range(0, size, len(piece)):
                f.write(piece[: size - start])
    return path


BIG = (16384, 4096)  # 256 MiB of float32


@pytest.mark.parametrize("prefix", [None, "l1/"])
def test_extra_array_is_refused_before_it_is_decompressed(
    tmp_path: Path, prefix: str | None
) -> None:
    """Names are checked on the archive's directory: an extra 40000x40000 array (6.8 MB
    compressed) was decompressed first, 25 s and 6.4 GB, to be refused as unmapped."""
    path = with_zeros(tmp_path, "article_nstep", "l1/extra", BIG)
    assert read_npz_shapes(path, "l1/extra") == {"l1/extra": BIG}
    message, peak = error_and_peak(path, prefix=prefix)
    assert "cannot map keys 'l1/extra'" in message
    assert peak < 32 * 2**20  # the 256 MiB were never read


@pytest.mark.parametrize(
    ("name", "key", "wrong"),
    [
        (
            "article_step",
            "l1/lateral/W",
            "l1/lateral/W has shape (16384, 4096), expected (800, 200)",
        ),
        ("article_nstep", "l1/0/w4", "l1/0/w4 has shape (16384, 4096), expected (200, 200)"),
        ("article_nstep", "l2/b", "l2/b has shape (16384, 4096), expected (1,)"),
        # upward/W gives the sizes, so the keys that then do not fit are named
        ("article_step", "l1/upward/W", "l1/upward/b has shape (800,), expected (16384,)"),
    ],
    ids=["step-lateral", "nstep-w4", "head-bias", "step-upward"],
)
def test_absurd_shape_is_refused_before_it_is_decompressed(
    tmp_path: Path, name: str, key: str, wrong: str
) -> None:
    """Shapes are checked on the .npy headers, before any array is decompressed."""
    message, peak = error_and_peak(with_zeros(tmp_path, name, key, BIG))
    assert wrong in message
    assert peak < 32 * 2**20  # the 256 MiB were never read


def test_npy_versions_and_compression(tmp_path: Path) -> None:
    """The size check reads every .npy header version and compressed archives (Chainer's
    default); a version NumPy does not know is a corrupt file."""
    for version in (1, 2, 3):
        data = npy_header((1, 200), version) + np.ones((1, 200), "<f4").tobytes()
        model = load_chainer_npz(with_member(tmp_path, "article_nstep", "l2/W", data))
        assert float(model.head.weight.detach().sum()) == 200.0
    data = npy_header((1, 200), 9) + np.ones((1, 200), "<f4").tobytes()
    path = with_member(tmp_path, "article_nstep", "l2/W", data)
    assert "truncated or corrupt file at array 'l2/W'" in one_line_error(path)
    data = npy_header((-1, 200)) + np.ones((1, 200), "<f4").tobytes()
    path = with_member(tmp_path, "article_nstep", "l2/W", data)
    assert "array 'l2/W' (its header claims shape (-1, 200))" in one_line_error(path)
    with np.load(fixture("article_nstep"), allow_pickle=False) as f:
        np.savez_compressed(tmp_path / "compressed.npz", **f)
    assert isinstance(load_chainer_npz(tmp_path / "compressed.npz"), Forecaster)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX named pipes")
def test_named_pipe_is_refused_not_waited_on(tmp_path: Path) -> None:
    """open() on a FIFO blocks until a writer comes: the import hung."""
    pipe = tmp_path / "pipe.npz"
    os.mkfifo(pipe)
    errors: list[str] = []

    def load() -> None:
        try:
            load_chainer_npz(pipe)
        except InputError as e:
            errors.append(str(e))

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(20)
    if thread.is_alive():
        os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))  # releases the blocked open()
        thread.join(20)
        pytest.fail("load_chainer_npz waited on a named pipe")
    assert errors and errors[0].endswith("pipe.npz: not a regular file (a pipe, socket or device)")


def test_bidirectional_must_be_a_bool() -> None:
    """The string "False" is truthy: it read the file as bidirectional."""
    with pytest.raises(InputError, match="bidirectional must be None, True or False, got 'False'"):
        load_chainer_npz(fixture("nstepbi_l1"), bidirectional="False")


def test_object_array_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "objects.npz"
    np.savez(path, **{"0/w0": np.array([{"evil": 1}, None], dtype=object)})
    assert "pickled Python objects" in one_line_error(path)


def test_npy_and_non_array_members_are_refused(tmp_path: Path) -> None:
    npy = tmp_path / "single.npz"
    with npy.open("wb") as f:
        np.save(f, np.zeros(3, np.float32))
    assert "single .npy array" in one_line_error(npy)
    odd = tmp_path / "odd.npz"
    shutil.copy(fixture("lstm_step"), odd)
    with zipfile.ZipFile(odd, "a") as z:
        z.writestr("notes.txt", "hello")
    assert "'notes.txt' is not a .npy array" in one_line_error(odd)
    ints = rewrite(tmp_path, "lstm_step", **{"upward/b": np.zeros(16, np.int64)})
    assert "expected floating point" in one_line_error(ints)
    # An integer array inside the chain's own link: no hint to load that link alone.
    ints = rewrite(tmp_path, "article_nstep", **{"l1/0/w0": np.zeros((200, 1), np.int32)})
    assert one_line_error(ints).endswith(
        "expected floating point: not a weight, so nothing it could be loaded into"
    )


def test_a_snapshot_of_a_bare_link_names_its_prefix_before_refusing_integers(
    tmp_path: Path,
) -> None:
    # The iterator's integers were refused first, without the prefix to pass.
    with np.load(fixture("nstep_l1"), allow_pickle=False) as f:
        arrays = {f"updater/model:main/{k}": v for k, v in f.items()}
    arrays["updater/iterator:main/current_position"] = np.array(7)
    np.savez(tmp_path / "snapshot.npz", **arrays)
    message = one_line_error(tmp_path / "snapshot.npz")
    assert "'updater/iterator:main/current_position' has dtype int64" in message
    assert message.endswith("prefix='updater/model:main/')")
    assert type(load_chainer_npz(tmp_path / "snapshot.npz", prefix="updater/model:main/")) is (
        NStepLSTM
    )


def adam_state(prefix: str = "") -> dict[str, np.ndarray]:
    """What ``chainer.serializers.save_npz`` writes for an Adam optimizer set up on the
    article's chain: its step count and epoch, then each parameter's t, m and v."""
    arrays = {f"{prefix}t": np.array(10), f"{prefix}epoch": np.array(1)}
    with np.load(fixture("article_nstep"), allow_pickle=False) as f:
        for key, value in f.items():
            arrays[f"{prefix}{key}/t"] = np.array(10)
            arrays[f"{prefix}{key}/m"] = arrays[f"{prefix}{key}/v"] = np.zeros_like(value)
    return arrays


def test_an_optimizer_state_is_named_as_such(tmp_path: Path) -> None:
    # It was "array 't' has dtype int64, expected floating point: not a weight".
    np.savez(tmp_path / "adam.npz", **adam_state())
    message = one_line_error(tmp_path / "adam.npz")
    assert "array 't' is an optimizer's step count" in message and "not a model's" in message
    message = one_line_error(tmp_path / "adam.npz", prefix="l1/")
    assert re.search(r"array 'l1/0/[wb]\d/t' is an optimizer's step count", message)
    with np.load(fixture("article_nstep"), allow_pickle=False) as f:
        model = {f"updater/model:main/{k}": v for k, v in f.items()}
    np.savez(tmp_path / "snapshot.npz", **adam_state("updater/optimizer:main/"), **model)
    message = one_line_error(tmp_path / "snapshot.npz", prefix="updater/optimizer:main")
    assert message.endswith("in a Trainer snapshot the model is under prefix 'updater/model:main/'")
    other = rewrite(tmp_path, "nstep_l1", **{"0/t": np.array(3)})  # no optimizer's
    assert "'0/t' has dtype int64, expected floating point" in one_line_error(other)


@pytest.mark.parametrize(("matrices", "link"), [(6, "NStepGRU"), (2, "NStepRNNTanh")])
def test_other_nstep_links_are_named(tmp_path: Path, matrices: int, link: str) -> None:
    # A GRU's file was reported as an LSTM's with keys missing.
    arrays = {f"0/{kind}{j}": np.zeros((4, 3) if kind == "w" else 4, np.float32)
              for kind in "wb" for j in range(matrices)}  # fmt: skip
    np.savez(tmp_path / "other.npz", **arrays)
    message = one_line_error(tmp_path / "other.npz")
    assert f"0/ holds {matrices} weight matrices" in message and link in message


@pytest.mark.parametrize(("cli", "named"), [(True, "--csv-columns"), (False, "csv_columns")])
def test_csv_columns_that_do_not_fit_the_model_name_both(
    tmp_path: Path, cli: bool, named: str
) -> None:
    (tmp_path / "two.csv").write_text("a,b\n" + "".join(f"{i % 5},{i % 3}\n" for i in range(80)))
    with pytest.raises(InputError, match=rf"takes n_in = 1 features, but {named} names 2 "):
        import_chainer_run(
            fixture("article_nstep"),
            tmp_path / "run",
            data=f"csv:{tmp_path / 'two.csv'}",
            csv_columns=["a", "b"],
            from_command_line=cli,
        )
    assert not (tmp_path / "run").exists()


def test_a_csv_with_another_column_count_gets_the_import_s_fix(tmp_path: Path) -> None:
    # It was training's advice, "set both to 2", which import-chainer has no flag for.
    (tmp_path / "two.csv").write_text("a,b\n" + "".join(f"{i % 5},{i % 3}\n" for i in range(80)))
    with pytest.raises(InputError) as e:
        import_chainer_run(
            fixture("article_nstep"), tmp_path / "run", data=f"csv:{tmp_path / 'two.csv'}"
        )
    assert str(e.value).endswith(
        "two.csv: 2 columns read, but the checkpoint's model takes 1; choose 1 of them "
        "with --csv-columns (csv_columns= from Python)"
    )
    rng = np.random.default_rng(3)  # a model of 2 features each way, for a file of 1 column
    arrays = {f"l1/0/{p}{j}": rng.random((4, 2 if j < 4 else 4) if p == "w" else (4,), np.float32)
              for p in "wb" for j in range(8)}  # fmt: skip
    np.savez(tmp_path / "two.npz", **arrays, **{"l2/W": np.zeros((2, 4), np.float32)})
    (tmp_path / "one.csv").write_text("a\n" + "".join(f"{i % 5}\n" for i in range(80)))
    with pytest.raises(InputError) as e:
        import_chainer_run(
            tmp_path / "two.npz", tmp_path / "run", data=f"csv:{tmp_path / 'one.csv'}"
        )
    assert str(e.value).endswith(
        "one.csv: 1 column read, but the checkpoint's model takes 2; name a file with 2 data "
        "columns"
    )
    # 1,000.5 on every line of a headerless file: read as two columns, the file's hint
    # says why (it was dropped with training's advice).
    (tmp_path / "split.csv").write_text("".join(f"{1 + i % 9},{i:03d}.5\n" for i in range(80)))
    with pytest.raises(InputError) as e:
        import_chainer_run(
            fixture("article_nstep"), tmp_path / "run", data=f"csv:{tmp_path / 'split.csv'}"
        )
    assert str(e.value).endswith(
        "choose 1 of them with --csv-columns (csv_columns= from Python); if the commas are "
        "thousands separators (1,000.5 on line 1 for 1000.5), write the numbers without "
        "them: commas separate columns"
    )
    assert not (tmp_path / "run").exists()


def test_import_of_a_chain_with_other_names_says_what_a_run_needs(tmp_path: Path) -> None:
    # It said only "no Chainer LSTM link found" and how to load the link from Python.
    with np.load(fixture("article_nstep"), allow_pickle=False) as f:
        arrays = {k.replace("l1/", "lstm/").replace("l2/", "fc/"): v for k, v in f.items()}
    np.savez(tmp_path / "named.npz", **arrays)
    with pytest.raises(InputError) as e:
        import_chainer_run(tmp_path / "named.npz", tmp_path / "run")
    assert "no l1/ and l2/ of the article's chain, which a run needs" in str(e.value)
    assert "rename its keys so); an LSTM link seems to be under prefix 'lstm/'" in str(e.value)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("data", ["adding", "bogus", "csv: ", 5])
def test_import_data_lists_only_what_an_import_takes(tmp_path: Path, data: str) -> None:
    # Config's list offered "adding", whose 2-in, 1-out model no import can have.
    with pytest.raises(InputError) as e:
        import_chainer_run(fixture("article_nstep"), tmp_path / "run", data=data)
    assert str(e.value) == (
        f"import of {fixture('article_nstep')}: data = {data!r} is out of range (allowed: "
        "fibonacci, sine, csv:PATH)"
    )


def test_cli_import_of_an_ambiguous_bare_link_prints_the_error_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The reading-as-NStepLSTM warning came first, with a source line: two lines more.
    rng = np.random.default_rng(4)
    arrays = {f"{k}/{p}{j}": rng.random((5, 5) if p == "w" else (5,), np.float32)
              for k in "01" for p in "wb" for j in range(8)}  # fmt: skip
    np.savez(tmp_path / "bare.npz", **arrays)
    with pytest.warns(UserWarning, match="fit both a 2-layer NStepLSTM"):
        load_chainer_npz(tmp_path / "bare.npz")  # from Python the warning stays
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert (
            main(["import-chainer", str(tmp_path / "bare.npz"), "--out", str(tmp_path / "r")]) == 2
        )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds a bare NStepLSTM" in err


def test_nothing_to_load(tmp_path: Path) -> None:
    path = rewrite(tmp_path, "nstep_l1", **{"0/w0": None})
    assert "0/w0 must be 2-D" in one_line_error(path)
    with pytest.raises(InputError, match="no arrays under prefix 'l9/'"):
        load_chainer_npz(fixture("article_nstep"), prefix="l9")


def test_bidirectional_article_chain_is_refused(tmp_path: Path) -> None:
    with np.load(fixture("nstepbi_l1"), allow_pickle=False) as f:
        arrays = {f"l1/{k}": v for k, v in f.items()}
    arrays["l2/W"] = np.zeros((1, 8), np.float32)
    np.savez(tmp_path / "bi.npz", **arrays)
    assert "prefix='l1/'" in one_line_error(tmp_path / "bi.npz")
    assert type(load_chainer_npz(tmp_path / "bi.npz", prefix="l1/")) is NStepBiLSTM


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=600), zip_header=st.booleans())
def test_arbitrary_bytes_give_input_error_only(
    tmp_path: Path, data: bytes, zip_header: bool
) -> None:
    path = tmp_path / "fuzz.npz"
    path.write_bytes((b"PK\x03\x04" if zip_header else b"") + data)
    try:
        load_chainer_npz(path)
    except InputError as e:
        assert "\n" not in str(e)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cut=st.integers(min_value=0, max_value=2000), flip=st.integers(min_value=0, max_value=2000))
def test_damaged_fixture_gives_input_error_only(tmp_path: Path, cut: int, flip: int) -> None:
    data = bytearray(fixture("nstep_l1").read_bytes())
    data[flip % len(data)] ^= 0xFF
    path = tmp_path / "damaged.npz"
    path.write_bytes(bytes(data[: len(data) - cut]))
    try:
        load_chainer_npz(path)
    except InputError as e:
        assert "\n" not in str(e)


# ------------------------------------------------------------------------- run dir


def test_import_run_is_a_loadable_run(tmp_path: Path) -> None:
    out = import_chainer_run(fixture("article_nstep"), tmp_path / "run", sequence_size=25)
    run = runs.load_run(out)
    assert run.config.sequence_size == 25 and run.config.n_hidden == 200
    assert run.config.cell == "nstep" and run.scaler is None and run.history == []
    assert run.metrics["imported_from"] == str(fixture("article_nstep"))
    ref = io("article_nstep")
    with torch.no_grad():
        ys = run.model([torch.from_numpy(ref[f"x{j}"]) for j in range(3)])
    for j, y in enumerate(ys):
        assert_close(y, ref[f"y{j}"])
    series = np.asarray(ref["x0"], np.float32)
    out_points = forecast(run.model, series, [0], sequence_size=25, horizon=3)
    assert out_points.shape == (1, 3, 1)


def test_import_run_step_cell_and_overrides(tmp_path: Path) -> None:
    out = import_chainer_run(
        fixture("article_step"), tmp_path / "run", epochs=5, dropout=0.5, n_layers=None
    )
    config, model_config, _ = runs.read_config(out)
    assert (config.cell, config.epochs, config.dropout, config.sequence_size) == (
        "step",
        5,
        0.5,
        30,
    )
    assert model_config["cell"] == "step" and model_config["dropout"] == 0.5


def test_import_run_of_a_model_that_cannot_run_closed_loop(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    arrays = {f"l1/0/{p}{j}": rng.random((4, 3 if p == "w" and j < 4 else 4) if p == "w" else (4,),
                                         np.float32) for p in "wb" for j in range(8)}  # fmt: skip
    path = tmp_path / "three_in_two_out.npz"
    np.savez(path, **arrays, **{"l2/W": np.zeros((2, 4), np.float32)})
    assert load_chainer_npz(path).config["n_in"] == 3  # the model itself loads
    with pytest.raises(InputError, match=r"n_in = 3 and n_out = 2; a run forecasts closed loop"):
        import_chainer_run(path, tmp_path / "run", data="csv:x.csv")
    with pytest.raises(InputError, match=r"run directory must be a path, got None"):
        import_chainer_run(fixture("article_nstep"), None)
    assert sorted(tmp_path.iterdir()) == [path]


def test_import_run_needs_one_window_of_data_not_a_split(tmp_path: Path) -> None:
    # 40 points: no validation window at split_rate 0.9, which a forecast does not use.
    csv = tmp_path / "short.csv"
    csv.write_text("v\n" + "".join(f"{t % 5}\n" for t in range(40)))
    run = import_chainer_run(fixture("article_nstep"), tmp_path / "run", data=f"csv:{csv}")
    from nsteplstm.forecast import forecast_run

    assert forecast_run(run, horizon=15)["points"] == 10
    # Fewer points than one start window: the import went through, every forecast failed.
    for cli, named in [
        (False, "import of .*: sequence_size = 41"),
        (True, "command line: --sequence-size 41"),
    ]:
        with pytest.raises(
            InputError,
            match=rf"^{named} is longer than the longest series of csv:.*short.csv \(40 points\)",
        ):
            import_chainer_run(
                fixture("article_nstep"),
                tmp_path / "run2",
                data=f"csv:{csv}",
                sequence_size=41,
                from_command_line=cli,
            )
    assert not (tmp_path / "run2").exists()


def test_import_run_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="has n_hidden = 200, but 100"):
        import_chainer_run(fixture("article_nstep"), tmp_path / "a", n_hidden=100)
    with pytest.raises(InputError, match="bare NStepLSTM"):
        import_chainer_run(fixture("nstep_l1"), tmp_path / "b")
    with pytest.raises(InputError, match="scale must be 'none'"):
        import_chainer_run(fixture("article_nstep"), tmp_path / "c", scale="standard")
    nan = rewrite(tmp_path, "article_nstep", **{"l2/b": np.array([np.nan], np.float32)})
    with pytest.raises(InputError, match=r"npz: l2/b holds NaN or infinite values$"):
        import_chainer_run(nan, tmp_path / "e")
    nan.unlink()
    with np.load(fixture("article_nstep")) as npz:
        head = npz["l2/W"].astype(np.float64)
    head[0, 0] = 1e300  # a float64 file: it was cast to inf with a RuntimeWarning
    big = rewrite(tmp_path, "article_nstep", **{"l2/W": head})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InputError, match=r"l2/W holds 1e\+300, beyond float32's range"):
            import_chainer_run(big, tmp_path / "e")
    big.unlink()
    assert not any(tmp_path.iterdir())  # nothing written on a failure
    out = import_chainer_run(fixture("article_nstep"), tmp_path / "d")
    with pytest.raises(InputError, match="not empty"):
        import_chainer_run(fixture("article_nstep"), out)
    assert import_chainer_run(fixture("article_step"), out, force=True) == out
    assert runs.load_run(out).config.cell == "step"


def snapshot(tmp_path: Path, **changes: np.ndarray) -> Path:
    """The article checkpoint (keys replaced by ``changes``) inside a Trainer snapshot,
    beside its bookkeeping."""
    with np.load(fixture("article_nstep"), allow_pickle=False) as f:
        arrays = {f"updater/model:main/predictor/{k}": v for k, v in {**f, **changes}.items()}
    arrays["updater/iteration"] = np.array(1000)  # int64, as Chainer's Trainer writes it
    arrays["updater/iterator:main/current_position"] = np.array(17)
    path = tmp_path / "snapshot.npz"
    np.savez(path, **arrays)
    return path


def test_import_run_prefix_names_the_chain(tmp_path: Path) -> None:
    """For a run, prefix names the sub-chain holding l1/ and l2/ (the head is needed);
    it was passed on as a config field: "unknown key 'prefix'"."""
    path = snapshot(tmp_path)
    out = import_chainer_run(path, tmp_path / "run", prefix="updater/model:main/predictor")
    ref = io("article_nstep")
    with torch.no_grad():
        ys = runs.load_run(out).model([torch.from_numpy(ref[f"x{j}"]) for j in range(3)])
    for j, y in enumerate(ys):
        assert_close(y, ref[f"y{j}"])
    out = import_chainer_run(fixture("article_step"), tmp_path / "whole", prefix="")
    assert runs.load_run(out).config.cell == "step"
    path = snapshot(tmp_path, **{"l2/W": np.zeros((1, 100), np.float32)})
    with pytest.raises(InputError, match=r"predictor/l2/W has shape \(1, 100\), expected"):
        import_chainer_run(path, tmp_path / "bad", prefix="updater/model:main/predictor/")


@pytest.mark.parametrize(
    ("prefix", "parent"),
    [("l1/", ""), ("updater/model:main/predictor/l1", "updater/model:main/predictor/")],
)
def test_import_run_prefix_of_the_lstm_alone_is_refused(
    tmp_path: Path, prefix: str, parent: str
) -> None:
    path = fixture("article_nstep") if prefix == "l1/" else snapshot(tmp_path)
    with pytest.raises(InputError, match="holds a bare NStepLSTM") as info:
        import_chainer_run(path, tmp_path / "run", prefix=prefix)
    assert f"prefix must name the sub-chain that holds both (here {parent!r})" in str(info.value)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("prefix", "code"), [("", 0), ("l1/", 2)])
def test_cli_import_prefix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], prefix: str, code: int
) -> None:
    argv = ["import-chainer", str(fixture("article_nstep")), "--out", str(tmp_path / "run")]
    assert main([*argv, "--prefix", prefix]) == code
    err = capsys.readouterr().err
    assert "unknown key" not in err and "Traceback" not in err
    assert (tmp_path / "run").exists() == (code == 0)
    if code:
        assert err.count("\n") == 1 and "holds a bare NStepLSTM" in err


@pytest.mark.parametrize(
    ("size", "cli", "message"),
    [
        (
            250,
            True,
            "command line: --sequence-size 250 is too long for the run's data (2000 points of "
            "fibonacci, split 0.9: 200 validation points, which must hold --sequence-size + 1): "
            "at most 199",
        ),
        (0, True, "command line: --sequence-size 0 is out of range (allowed: >= 1)"),
        (
            200,
            False,
            "config settings: split_rate = 0.9 of total_size = 2000 gives 1800 training and 200 "
            "validation points; each part needs at least sequence_size + 1 = 201 (here "
            "sequence_size <= 199)",
        ),
        (0, False, "config settings: sequence_size = 0 is out of range (allowed: >= 1)"),
        (True, False, "config settings: sequence_size = true is a boolean, expected an integer"),
    ],
)
def test_import_run_names_sequence_size(tmp_path: Path, size: int, cli: bool, message: str) -> None:
    """A window the article's 2000 points cannot hold: from the command line, which has
    no flags for split_rate and total_size, the error names --sequence-size and the
    largest that fits (it named split_rate and total_size as a config file's, after
    "sequence_size (--sequence-size)"); from Python, as train's settings."""
    path = fixture("article_nstep")
    with pytest.raises(InputError) as info:
        import_chainer_run(path, tmp_path / "run", sequence_size=size, from_command_line=cli)
    assert str(info.value) == message
    assert not (tmp_path / "run").exists()
    out = import_chainer_run(path, tmp_path / "run", sequence_size=199, from_command_line=cli)
    assert runs.load_run(out).config.sequence_size == 199  # the largest that fits


@pytest.mark.parametrize(
    ("settings", "flags", "keys"),
    [
        (
            {"dropout": 2.0},
            "command line: --dropout 2.0 is out of range (allowed: 0 <= dropout < 1)",
            "config settings: dropout = 2.0 is out of range (allowed: 0 <= dropout < 1)",
        ),
        (
            {"seed": -1},
            "command line: --seed -1 is out of range (allowed: 0 <= seed < 2**63)",
            "config settings: seed = -1 is out of range (allowed: 0 <= seed < 2**63)",
        ),
        (
            {"csv_columns": ["units"]},
            "command line: --csv-columns 'units' applies only to data = 'csv:PATH', not "
            "data = 'fibonacci': drop --csv-columns",
            "config settings: csv_columns = ['units'] applies only to data = 'csv:PATH', not "
            "data = 'fibonacci': remove it",
        ),
        (
            {"data": "sine", "csv_columns": ["a", "b"]},  # not "names 2 columns" first
            "command line: --csv-columns 'a,b' applies only to --data 'csv:PATH', not "
            "--data 'sine': drop --csv-columns",
            "config settings: csv_columns = ['a', 'b'] applies only to data = 'csv:PATH', not "
            "data = 'sine': remove it",
        ),
        (
            {"data": "bogus"},
            "command line: --data 'bogus' is out of range (allowed: fibonacci, sine, csv:PATH)",
            "import of {path}: data = 'bogus' is out of range (allowed: fibonacci, sine, csv:PATH)",
        ),
    ],
)
def test_import_names_a_setting_as_it_was_given(
    tmp_path: Path, settings: dict[str, object], flags: str, keys: str
) -> None:
    """import-chainer's flags are named as train names them; they were named by their
    keys, after "config import of PATH", as if a config file had given them."""
    path = fixture("article_nstep")
    for cli, message in [(True, flags), (False, keys.format(path=path))]:
        with pytest.raises(InputError) as info:
            import_chainer_run(path, tmp_path / "run", from_command_line=cli, **settings)
        assert str(info.value) == message
    assert not (tmp_path / "run").exists()


def two_feature_chain(tmp_path: Path) -> Path:
    """The article's chain with n_in = n_out = 2 (random weights)."""
    rng = np.random.default_rng(5)
    arrays = {f"l1/0/{p}{j}": rng.random((4, 2 if j < 4 else 4) if p == "w" else (4,), np.float32)
              for p in "wb" for j in range(8)}  # fmt: skip
    path = tmp_path / "two.npz"
    np.savez(path, **arrays, **{"l2/W": np.zeros((2, 4), np.float32)})
    return path


def test_import_of_a_two_feature_model_for_a_built_in_series_asks_for_its_data(
    tmp_path: Path,
) -> None:
    # --data sine named n_in, which import-chainer has no flag for: "config import of
    # PATH: n_in = 2 is out of range (allowed: 1 for data = 'sine')".
    path = two_feature_chain(tmp_path)
    with pytest.raises(InputError) as info:
        import_chainer_run(path, tmp_path / "run", data="sine", from_command_line=True)
    assert str(info.value) == (
        f"Chainer checkpoint {path}: the model has n_in = 2 and n_out = 2, the built-in "
        "series one feature; name the data it forecasts (--data csv:PATH, data= from Python)"
    )
    assert not (tmp_path / "run").exists()


def test_cli_import_names_its_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Through main: cli.py passes from_command_line=True."""
    argv = ["import-chainer", str(fixture("article_nstep")), "--out", str(tmp_path / "run")]
    assert main([*argv, "--dropout", "2"]) == 2
    assert capsys.readouterr().err == (
        "nsteplstm import-chainer: error: command line: --dropout 2.0 is out of range "
        "(allowed: 0 <= dropout < 1)\n"
    )
    assert main([*argv, "--sequence-size", "250"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "command line: --sequence-size 250 is too long" in err
    assert not (tmp_path / "run").exists()


def test_import_run_other_config_errors_are_not_blamed_on_sequence_size(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="total_size") as info:
        import_chainer_run(fixture("article_nstep"), tmp_path / "run", total_size=10)
    assert "--sequence-size" not in str(info.value)


def test_import_messages_point_at_what_is_wrong(tmp_path: Path) -> None:
    # An int head said to load the LSTM link alone (no run), a key with a stray "/"
    # was only "missing", and bidirectional=True was ignored for a links.LSTM.
    with np.load(fixture("article_nstep")) as npz:
        bias, w0 = npz["l2/b"], npz["l1/0/w0"]
    head = rewrite(tmp_path, "article_nstep", **{"l2/b": bias.astype(np.int64)})
    with pytest.raises(InputError, match=r"'l2/b' has dtype int64, .* loaded into$"):
        import_chainer_run(head, tmp_path / "run")
    slash = rewrite(tmp_path, "article_nstep", **{"l1/0/w0": None, "l1/0/w0/": w0})
    with pytest.raises(
        InputError, match=r"l1/0/w0 must be 2-D .*, got missing \(keys: .*'l1/0/w0/'"
    ):
        import_chainer_run(slash, tmp_path / "run")
    with pytest.raises(InputError, match=r"bidirectional=True, but the keys are a links.LSTM's"):
        load_chainer_npz(fixture("article_step"), prefix="l1/", bidirectional=True)
    assert not (tmp_path / "run").exists()


def test_numpy_values_import_as_python_ones(tmp_path: Path) -> None:
    # dropout=np.float32(0.25) reached config.json while the model took 0.3: a run that
    # could not be read back. A float64 weight that rounds to float32's largest value
    # is no overflow; np.True_ is a bool.
    out = import_chainer_run(fixture("article_nstep"), tmp_path / "a", dropout=np.float32(0.25))
    assert runs.load_run(out).model.config["dropout"] == 0.25
    with np.load(fixture("article_nstep")) as npz:
        head = npz["l2/W"].astype(np.float64)
    head[0, 0] = np.nextafter(float(np.finfo(np.float32).max), np.inf)  # casts to the max
    edge = rewrite(tmp_path, "article_nstep", **{"l2/W": head})
    assert import_chainer_run(edge, tmp_path / "b").exists()
    head[0, 0] = 3.5e38
    over = rewrite(tmp_path, "article_nstep", **{"l2/W": head})
    with pytest.raises(InputError, match=r"l2/W holds 3.5e\+38, beyond float32's range"):
        import_chainer_run(over, tmp_path / "c")
    step = load_chainer_npz(fixture("nstepbi_l1"), bidirectional=np.True_)
    assert isinstance(step, NStepBiLSTM)
