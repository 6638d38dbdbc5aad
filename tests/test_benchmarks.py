"""The scripts under benchmarks/ that carry math of their own: `stretch.py`'s hand-written
LSTM layer and `compiled_step.py`'s cell must be exact, or their timings compare
different work. Never a speed."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _script(name: str) -> Iterator[ModuleType]:
    sys.path.insert(0, str(BENCHMARKS))  # as `python benchmarks/NAME.py` has it
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.fixture(scope="module")
def stretch() -> Iterator[ModuleType]:
    yield from _script("stretch")


@pytest.fixture(scope="module")
def compiled_step() -> Iterator[ModuleType]:
    yield from _script("compiled_step")


def test_compiled_step_cell_ops_match_torch_lstm_cell(compiled_step: ModuleType):
    # The cell the script compiles, run eagerly: torch.lstm_cell's outputs and gradients.
    from nsteplstm.functional import lstm_cell

    torch.manual_seed(2)
    cell = torch.nn.LSTMCell(3, 5).double()
    weights = [cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh]
    x = torch.randn(4, 6, 3, dtype=torch.double, requires_grad=True)  # (T, B, I)
    dy = torch.randn(4, 6, 5, dtype=torch.double)
    got = compiled_step.gradients(compiled_step.cell_ops, x, weights, dy)
    want = compiled_step.gradients(lstm_cell, x, weights, dy)
    assert got[0].shape == (4, 6, 5) and len(got) == 6
    for actual, expected in zip(got, want, strict=True):
        torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-12)


def test_hand_lstm_backward_passes_gradcheck(stretch: ModuleType):
    torch.manual_seed(0)
    steps, batch, in_size, hidden = 4, 3, 2, 5
    lstm = torch.nn.LSTM(in_size, hidden).double()
    args = [
        torch.randn(steps, batch, in_size, dtype=torch.double),
        torch.randn(batch, hidden, dtype=torch.double) * 0.5,
        torch.randn(batch, hidden, dtype=torch.double) * 0.5,
        *(w.detach().clone() for w in lstm._flat_weights),
    ]
    args = [a.requires_grad_() for a in args]
    assert torch.autograd.gradcheck(stretch.HandLSTM.apply, args)


def test_hand_lstm_matches_torch_lstm_forward(stretch: ModuleType):
    torch.manual_seed(1)
    lstm = torch.nn.LSTM(3, 7)
    x = torch.randn(6, 4, 3)
    h0, c0 = torch.randn(1, 4, 7), torch.randn(1, 4, 7)
    y, (h, c) = lstm(x, (h0, c0))
    weights = [w.detach() for w in lstm._flat_weights]
    got = stretch.HandLSTM.apply(x, h0[0], c0[0], *weights)
    for expected, actual in zip((y, h[0], c[0]), got, strict=True):
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)


def test_case_reports_every_contender(stretch: ModuleType, one_thread: None):
    result = stretch.case(in_size=2, steps=3, batch=4, hidden=5, rounds=1)
    assert result["hand_max_relative_gradient_error"] < 1e-5
    assert set(result["ms"]) == {
        "onednn-train",
        "onednn-inference",
        "onednn",
        "hand",
        "hand-forward",
        "hand-products",
        "onednn-half-1-thread",
        "onednn-halves-at-once",
    }
    assert all(v > 0 for v in result["ms"].values())
    assert torch.get_num_threads() == 1  # the one-thread contender restores the setting


def test_quality_script_checks_its_settings_and_keeps_what_out_holds(tmp_path: Path):
    # It once trained over runs and quality.json in --out without asking, and bad
    # settings ended in tracebacks after the table's header.
    import subprocess

    (tmp_path / "quality.json").write_text("my notes")
    script = [sys.executable, str(BENCHMARKS / "quality.py"), "--layers", "1", "--epochs", "1"]
    kept = subprocess.run([*script, "--out", str(tmp_path)], capture_output=True, text=True)
    bad = subprocess.run([*script, "--seeds", "-1"], capture_output=True, text=True)
    assert (kept.returncode, kept.stdout) == (2, "")
    assert (
        kept.stderr
        == f"quality.py: error: {tmp_path / 'quality.json'} already exists; use --force\n"
    )
    assert (tmp_path / "quality.json").read_text() == "my notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["quality.json"]
    assert (bad.returncode, bad.stdout) == (2, "")
    assert "seed = -1 is out of range" in bad.stderr and "Traceback" not in bad.stderr


def test_load_script_checks_its_settings_before_running(tmp_path: Path):
    # It once forecast 10,000 series first and then failed on --points 10 with a
    # CalledProcessError traceback; a zero or negative count went through unchecked.
    import subprocess

    script = [sys.executable, str(BENCHMARKS / "load.py")]
    short = subprocess.run([*script, "--points", "10"], capture_output=True, text=True)
    zero = subprocess.run([*script, "--series", "0"], capture_output=True, text=True)
    for done in (short, zero):
        assert (done.returncode, done.stdout) == (2, "")
        assert "Traceback" not in done.stderr
        assert done.stderr.startswith("load.py: error: ") and done.stderr.count("\n") == 1
    # The split's own message named sequence_size and split_rate, flags load.py lacks.
    # 0.9 of 301 points leaves 270 and 31 (a window is 31 points); of 300, 270 and 30.
    assert "argument --points: must be an integer >= 301, got 10" in short.stderr
    assert "try sequence_size" not in short.stderr
    assert "argument --series: must be an integer >= 1, got '0'" in zero.stderr


@pytest.mark.parametrize(
    ("script", "args", "message"),
    [
        # A 3-line usage block came first; a huge seed ended in an OverflowError traceback.
        ("variable_lengths.py", ["--seed", "99999999999999999999"], "argument --seed: must be"),
        ("stretch.py", ["--steps", "0"], "argument --steps: must be an integer >= 1"),
        # Trained seed 0 twice (or failed on the second's directory after the first).
        ("quality.py", ["--seeds", "0", "0", "--layers", "1"], "--seeds 0 0: each value once"),
        # Wrote its runs and quality.json into the current directory.
        ("quality.py", ["--out", "", "--layers", "1", "--epochs", "1"], "an empty path"),
        # The library's InputError came as a traceback, exit 1.
        (
            "variable_lengths.py",
            ["--hidden", "200000", "--batch", "2"],
            "GiB of float32, more than this machine",
        ),
        ("stretch.py", ["--hidden", "200000", "--batch", "2"], "out of memory"),
    ],
)
def test_the_scripts_say_a_mistake_in_one_line(
    script: str, args: list[str], message: str, tmp_path: Path
):
    import subprocess

    done = subprocess.run(  # in tmp_path: what a script writes by mistake lands there
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith(f"{script}: error: ") and done.stderr.count("\n") == 1
    assert message in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_quality_script_interrupted_says_so_in_one_line(tmp_path: Path):
    """Ctrl-C ended in a traceback, exit 1, suggesting a --resume the script cannot do."""
    import signal
    import subprocess
    import time

    script = [sys.executable, str(BENCHMARKS / "quality.py"), "--layers", "1", "--seeds", "0"]
    out = tmp_path / "q"
    proc = subprocess.Popen(
        [*script, "--epochs", "500", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (out / "l1-s0" / "config.json").exists():  # written at the first checkpoint
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err == f"quality.py: interrupted; {out / 'l1-s0'} is partly trained\n"
