"""Device choice and seeding: the article's ``GPU`` and ``SEED`` constants, as functions."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import platform
import random
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import DEVICE_FORMS, device_name
from .errors import InputError, gib, is_int

# glibc mallopt parameters (malloc.h) and the values tune_malloc sets.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES = 1 << 30
TRIM_THRESHOLD_BYTES = 2**31 - 1
# The same settings for a process about to start (glibc reads them at start-up).
MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD_BYTES),
    "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD_BYTES),
}


def resolve_device(spec: str | int | torch.device | None = "auto") -> torch.device:
    """Turn a device spec into a ``torch.device``.

    Accepts ``"auto"``/``None`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda"``,
    ``"cuda:K"``, a CPU or CUDA ``torch.device``, or the article's integers (also as strings):
    ``-1`` means the CPU, ``K >= 0`` means ``cuda:K``. ``"cuda"`` and ``"auto"`` give the
    current CUDA device, as in torch (``cuda:0`` unless ``torch.cuda.set_device`` moved it),
    always with its index.

    Raises:
        InputError: for any other spec, or when CUDA device K is asked for and missing.
    """
    given = str(spec) if isinstance(spec, torch.device) else spec
    name = "auto" if given is None else device_name(given)
    if name is None:
        raise InputError(f"device: {given!r} is not a device; use {DEVICE_FORMS}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    current = torch.cuda.current_device() if count else 0
    k = int(name[5:]) if name.startswith("cuda:") else current  # "cuda": torch's meaning
    if k >= count:
        have = f"{count} CUDA device(s)" if count else "no CUDA device"
        raise InputError(f"device {given!r} was asked for, but this machine has {have}")
    return torch.device(f"cuda:{k}")


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (CPU and CUDA) generators with ``seed``, ask
    torch for deterministic algorithms where it has them (warning, not failing, where
    it has none), and keep cuDNN's and cuBLAS's float32 products in float32 (PyTorch
    lets cuDNN, and a user who asks it cuBLAS, round their inputs to TF32, 10 mantissa
    bits, on Ampere and newer GPUs): training on a GPU then computes what it computes
    on the CPU, to float32 rounding.
    ``seed``: an integer in ``[-2**63, 2**64)``, torch's range.

    On CUDA, cuBLAS is deterministic only with ``CUBLAS_WORKSPACE_CONFIG`` set, which
    it reads at its first use: unless the environment sets it, this sets it to
    ``:4096:8`` (call this before the first CUDA matrix product, as ``nsteplstm train``
    does; without it, every cuBLAS call warns that it is not deterministic, and this
    warns where CUDA is in use already).
    """
    if not is_int(seed) or not -(2**63) <= seed < 2**64:
        raise InputError(f"seed must be an integer in [-2**63, 2**64), got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if "CUBLAS_WORKSPACE_CONFIG" not in os.environ:
        if torch.cuda.is_initialized():  # cuBLAS may have read it already
            warnings.warn(
                "seed_everything: CUDA was in use before CUBLAS_WORKSPACE_CONFIG was set; "
                "cuBLAS reads it once, so its products may not be deterministic: set it "
                "to :4096:8 in the environment, or call seed_everything first",
                stacklevel=2,
            )
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
    torch.use_deterministic_algorithms(True, warn_only=True)
    # Deterministic mode also fills every new tensor (NaN/max int) in case a kernel
    # reads uninitialized memory; ours do not, and the fills cost 10-15% of a CPU epoch.
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    for namespace, name, value in _float32_settings():
        setattr(namespace, name, value)


def _float32_settings() -> list[tuple[Any, str, Any]]:
    """``(namespace, attribute, value)`` of the settings that keep float32 products in
    float32 on CUDA (no TF32): cuDNN's (its LSTM) and cuBLAS's (the step cell, the head).
    The old flags (``allow_tf32``) where they answer; torch >= 2.9 also sets precisions
    per operation (``fp32_precision``), and once a user has set those apart the old
    flag raises instead: then the operation's own one."""
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    settings = []
    for legacy in (cudnn, matmul):
        try:
            legacy.allow_tf32  # noqa: B018 (does it answer?)
        except RuntimeError:
            settings.append((cudnn.rnn if legacy is cudnn else matmul, "fp32_precision", "ieee"))
        else:
            settings.append((legacy, "allow_tf32", False))
    return settings


@contextlib.contextmanager
def torch_settings_kept() -> Iterator[None]:
    """Inside, the process-wide settings that :func:`seed_everything` changes may be
    changed; after, they are as before (deterministic algorithms and their fill of new
    tensors, cuDNN's determinism and autotuning, cuDNN's and cuBLAS's TF32). The random
    generators are not."""
    deterministic = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    fill = torch.utils.deterministic.fill_uninitialized_memory
    cudnn = torch.backends.cudnn
    flags = (cudnn.deterministic, cudnn.benchmark)
    float32 = [(ns, name, getattr(ns, name)) for ns, name, _ in _float32_settings()]
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
        torch.utils.deterministic.fill_uninitialized_memory = fill
        cudnn.deterministic, cudnn.benchmark = flags
        for namespace, name, value in float32:
            setattr(namespace, name, value)


def physical_memory() -> int | None:
    """Bytes of RAM of this machine, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(needed: float, what: str, hint: str = "") -> None:
    """:class:`InputError` ``"{what}, more than this machine's N GiB{hint}"`` when
    ``needed`` bytes exceed this machine's memory; nothing where the OS does not say
    how much it has."""
    memory = physical_memory()
    if memory is not None and needed > memory:
        raise InputError(f"{what}, more than this machine's {gib(memory)}{hint}")


def peak_memory_mib() -> float:
    """This process's peak resident memory in MiB: Linux's ``VmHWM``, which
    :func:`reset_peak_memory` can start afresh; elsewhere ``ru_maxrss`` (since start)."""
    try:
        status = Path("/proc/self/status").read_text()
        return int(status.split("VmHWM:")[1].split()[0]) / 1024  # kB
    except (OSError, IndexError, ValueError):
        import resource  # POSIX only, like this fallback

        scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, else KiB
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def cuda_peak_memory_mib(device: torch.device) -> float | None:
    """The most memory torch's tensors have held on CUDA ``device`` at once, in MiB
    (``torch.cuda.max_memory_allocated``: since the process started or the last
    :func:`reset_peak_memory`; the caching allocator reserves somewhat more); None for
    any other device."""
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


def reset_peak_memory() -> bool:
    """Start :func:`peak_memory_mib` afresh from the current resident memory (Linux
    4.0+), and :func:`cuda_peak_memory_mib` from what each CUDA device holds now;
    False where the first is not possible. For a process that trains one model
    after another (``nsteplstm demo``), so that each run reports its own peaks."""
    if torch.cuda.is_initialized():
        for k in range(torch.cuda.device_count()):
            torch.cuda.reset_peak_memory_stats(k)
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def tune_malloc() -> bool:
    """Keep freed heap memory in the process for reuse (glibc only); True when applied.

    With glibc's defaults, blocks above the mmap threshold (which adapts up to 32 MiB)
    get fresh pages from the kernel and go back to it when freed, and the top of the
    heap is trimmed. Training allocates and frees the same tens of MiB of LSTM
    workspace every batch, so every batch faults those pages in again: at the
    article's defaults about 100,000 minor page faults per epoch, a sixth to a quarter
    of the epoch's time on the 2-core machines measured. With an mmap threshold of 1 GiB and no
    trimming, freed blocks are reused instead; the price is that resident memory
    stays at its peak. Process-wide and not undone: the same as starting Python
    with ``MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=2147483647``.
    ``nsteplstm train``, ``demo`` and ``bench`` call it; other allocators (macOS,
    Windows, musl) are left alone and give False.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    return ok and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
