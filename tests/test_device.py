"""tune_malloc: freed memory is reused instead of being faulted in again."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

# Allocates, touches and frees 64 MiB twenty times; prints the minor page faults of
# the last ten rounds (glibc settles within a few). Argument 1: tune_malloc() first.
PROBE = """
import resource, sys, torch
import nsteplstm as nl
if sys.argv[1] == "1":
    assert nl.tune_malloc()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for k in range(20):
    if k == 10:
        start = faults()
    x = torch.ones(16 * 2**20)  # 64 MiB, written
    del x
print(faults() - start)
"""


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_tune_malloc_stops_page_faults_on_reused_memory() -> None:
    def faults(tune: str) -> int:
        done = subprocess.run(
            [sys.executable, "-c", PROBE, tune], capture_output=True, text=True, check=True
        )
        return int(done.stdout.strip())

    pages = 10 * 64 * 2**20 // 4096  # what ten fresh 64 MiB blocks fault in
    assert faults("0") > pages // 2  # glibc's default: every block comes fresh from mmap
    assert faults("1") < pages // 20  # tuned: the freed block is reused


def test_tune_malloc_says_whether_it_applied() -> None:
    import nsteplstm as nl

    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert nl.tune_malloc() is glibc


@pytest.mark.parametrize("seed", [None, "1", 1.5, True, 2**64, -(2**63) - 1])
def test_seed_everything_refuses_what_torch_cannot_seed(seed) -> None:
    import nsteplstm as nl

    with pytest.raises(nl.InputError, match=r"seed must be an integer in \[-2\*\*63, 2\*\*64\)"):
        nl.seed_everything(seed)


def test_seed_everything_keeps_cudnn_in_float32() -> None:
    import torch

    import nsteplstm as nl

    before = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = True  # PyTorch's default
    try:
        nl.seed_everything(0)
        assert torch.backends.cudnn.allow_tf32 is False
    finally:
        torch.backends.cudnn.allow_tf32 = before


def test_seed_everything_makes_cublas_deterministic_unless_the_environment_says(
    monkeypatch,
) -> None:
    # Deterministic mode without CUBLAS_WORKSPACE_CONFIG: every cuBLAS call warned.
    import nsteplstm as nl

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    nl.seed_everything(0)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # the user's choice stays
    nl.seed_everything(0)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"
    # Set after CUDA's first use, cuBLAS may never read it: that is said, not hidden.
    import torch

    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nl.seed_everything(0)  # set by the user: nothing to say
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG")
    with pytest.warns(UserWarning, match=r"CUDA was in use before CUBLAS_WORKSPACE_CONFIG was"):
        nl.seed_everything(0)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"


PEAK_PROBE = """
import numpy as np
from nsteplstm.device import peak_memory_mib, reset_peak_memory
block = np.ones(256 * 2**20 // 8)  # 256 MiB, written; glibc maps it, and unmaps it on del
high = peak_memory_mib()
del block
assert reset_peak_memory()
print(high, peak_memory_mib())
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="Linux /proc only")
def test_each_run_of_one_process_can_report_its_own_peak_memory() -> None:
    # The demo trains five models in one process: later runs reported the earlier ones'
    # peaks (ru_maxrss only grows). In a process of its own: glibc's defaults.
    done = subprocess.run([sys.executable, "-c", PEAK_PROBE], capture_output=True, text=True)
    high, low = map(float, done.stdout.split())
    assert high - low > 200, (high, low)


def test_training_keeps_cublas_in_float32_and_takes_per_operation_tf32_settings(
    tmp_path,
) -> None:
    # cuBLAS's TF32 (set_float32_matmul_precision("high")) was left on for the step
    # cell and the head; and with cuDNN's operations set apart by torch's newer API,
    # reading the old cudnn.allow_tf32 raised: train() failed before its first epoch.
    import torch

    import nsteplstm as nl
    from nsteplstm.train import train

    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    seen: list[tuple[str, str]] = []

    class Watch:
        def batch(self, *args: object) -> None:
            seen.append((cudnn.rnn.fp32_precision, matmul.fp32_precision))

        def epoch(self, *args: object) -> None: ...

        def close(self) -> None: ...

    settings = {"epochs": 1, "total_size": 120, "sequence_size": 5, "n_hidden": 4}
    before = (cudnn.allow_tf32, matmul.allow_tf32)
    try:
        torch.set_float32_matmul_precision("high")
        with nl.device.torch_settings_kept():
            nl.seed_everything(0)
            assert (cudnn.allow_tf32, matmul.allow_tf32) == (False, False)
        assert matmul.allow_tf32 is True
        cudnn.conv.fp32_precision, cudnn.rnn.fp32_precision = "ieee", "tf32"
        matmul.fp32_precision = "tf32"
        train({**settings, "device": "cpu"}, tmp_path / "run", progress=Watch())
        assert seen and set(seen) == {("ieee", "ieee")}
        kept = (cudnn.conv.fp32_precision, cudnn.rnn.fp32_precision, matmul.fp32_precision)
        assert kept == ("ieee", "tf32", "tf32")
    finally:
        cudnn.allow_tf32, matmul.allow_tf32 = before
        torch.set_float32_matmul_precision("highest")
