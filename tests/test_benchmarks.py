"""The scripts under benchmarks/ that carry math of their own: `stretch.py`'s hand-written
LSTM layer and `compiled_step.py`'s cell must be exact, or their timings compare
different work; and every script checks its settings before it measures anything.
Never a speed."""

from __future__ import annotations

import contextlib
import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@contextlib.contextmanager
def _script(name: str) -> Iterator[ModuleType]:
    sys.path.insert(0, str(BENCHMARKS))  # as `python benchmarks/NAME.py` has it
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.fixture(scope="module")
def stretch() -> Iterator[ModuleType]:
    with _script("stretch") as module:
        yield module


@pytest.fixture(scope="module")
def compiled_step() -> Iterator[ModuleType]:
    with _script("compiled_step") as module:
        yield module


def _main(script: str, *args: str) -> int:
    """``python benchmarks/SCRIPT ARGS...`` in this process (no torch import to wait
    for): its exit code. torch's random state is left as it was."""
    with _script(script.removesuffix(".py")) as module, torch.random.fork_rng(devices=[]):
        try:
            return module.main(list(args))
        except SystemExit as e:  # argparse's usage mistake, its line printed
            return e.code


def _said_in_one_line(script: str, code: int, out: str, err: str, message: str) -> None:
    assert (code, out) == (2, "")
    assert err.startswith(f"{script}: error: ") and err.count("\n") == 1
    assert message in err


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


def test_quality_script_checks_its_settings_and_keeps_what_out_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    # It once trained over runs and quality.json in --out without asking, and bad
    # settings ended in tracebacks after the table's header.
    (tmp_path / "quality.json").write_text("my notes")
    args = ("--layers", "1", "--epochs", "1")
    kept = _main("quality.py", *args, "--out", str(tmp_path))
    assert (kept, *capsys.readouterr()) == (
        2,
        "",
        f"quality.py: error: {tmp_path / 'quality.json'} already exists; use --force\n",
    )
    assert (tmp_path / "quality.json").read_text() == "my notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["quality.json"]
    bad = _main("quality.py", *args, "--seeds", "-1")
    _said_in_one_line("quality.py", bad, *capsys.readouterr(), "seed = -1 is out of range")


def test_load_script_checks_its_settings_before_running(capsys: pytest.CaptureFixture[str]):
    # It once forecast 10,000 series first and then failed on --points 10 with a
    # CalledProcessError traceback; a zero or negative count went through unchecked.
    short = _main("load.py", "--points", "10")
    # The split's own message named sequence_size and split_rate, flags load.py lacks.
    # 0.9 of 301 points leaves 270 and 31 (a window is 31 points); of 300, 270 and 30.
    out, err = capsys.readouterr()
    message = "argument --points: must be an integer >= 301, got 10"
    _said_in_one_line("load.py", short, out, err, message)
    assert "try sequence_size" not in err
    zero = _main("load.py", "--series", "0")
    message = "argument --series: must be an integer >= 1, got '0'"
    _said_in_one_line("load.py", zero, *capsys.readouterr(), message)


@pytest.mark.parametrize(
    ("script", "args", "message"),
    [
        # A 3-line usage block came first; a huge seed ended in an OverflowError traceback.
        ("variable_lengths.py", ["--seed", "99999999999999999999"], "argument --seed: must be"),
        ("stretch.py", ["--steps", "0"], "argument --steps: must be an integer >= 1"),
        # Trained seed 0 twice (or failed on the second's directory after the first).
        (
            "quality.py",
            ["--seeds", "0", "0", "--layers", "1", "--epochs", "1"],
            "--seeds 0 0: each value once",
        ),
        # Wrote its runs and quality.json into the current directory.
        ("quality.py", ["--out", "", "--layers", "1", "--epochs", "1"], "an empty path"),
        # The library's InputError came as a traceback, exit 1.
        (
            "variable_lengths.py",
            ["--hidden", "200000", "--batch", "2"],
            "GiB of float32, more than this machine",
        ),
        # stretch.py's "--hidden 200000" (out of memory) is run as a script below only: in
        # this process, a host that overcommits memory could hand it the 640 GB.
        ("compiled_step.py", ["--rounds", "0"], "argument --rounds: must be an integer >= 1"),
    ],
)
def test_the_scripts_say_a_mistake_in_one_line(
    script: str,
    args: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    monkeypatch.chdir(tmp_path)  # what a script writes by mistake lands there
    code = _main(script, *args)
    _said_in_one_line(script, code, *capsys.readouterr(), message)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_each_script_says_a_mistake_in_one_line_when_run_as_a_script(tmp_path: Path):
    # The tests above call main() in this process; this is `python benchmarks/NAME.py`
    # itself: its imports found beside it, its exit code the process's. quality.py's
    # is the interrupted test's. Started at once: each spends seconds importing torch.
    mistakes = [
        ("load.py", ["--series", "0"], "argument --series: must be an integer >= 1"),
        ("variable_lengths.py", ["--hidden", "200000", "--batch", "2"], "more than this"),
        ("stretch.py", ["--hidden", "200000", "--batch", "2"], "out of memory"),
        ("compiled_step.py", ["--rounds", "0"], "argument --rounds: must be an integer >= 1"),
    ]
    started = [
        subprocess.Popen(
            [sys.executable, str(BENCHMARKS / script), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,  # what a script writes by mistake lands there
        )
        for script, args, _ in mistakes
    ]
    for (script, _, message), proc in zip(mistakes, started, strict=True):
        out, err = proc.communicate(timeout=120)
        _said_in_one_line(script, proc.returncode, out, err, message)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_quality_script_interrupted_says_so_in_one_line(tmp_path: Path):
    """Ctrl-C ended in a traceback, exit 1, suggesting a --resume the script cannot do."""
    import signal
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
