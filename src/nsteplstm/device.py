"""Device choice and seeding: the article's ``GPU`` and ``SEED`` constants, as functions."""

from __future__ import annotations

import random

import numpy as np
import torch

from .errors import InputError

DEVICE_FORMS = "'auto', 'cpu', 'cuda', 'cuda:K', or an integer (-1 = CPU, K >= 0 = cuda:K)"


def resolve_device(spec: str | int | torch.device | None = "auto") -> torch.device:
    """Turn a device spec into a ``torch.device``.

    Accepts ``"auto"``/``None`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda"``,
    ``"cuda:K"``, a ``torch.device``, or the article's integers (also as strings):
    a negative number means the CPU, ``K >= 0`` means ``cuda:K``.

    Raises:
        InputError: for any other spec, or when CUDA device K is asked for and missing.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    given = spec
    if spec is None or spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(spec, bool):
        raise InputError(f"device: {spec!r} is not a device; use {DEVICE_FORMS}")
    if isinstance(spec, str) and spec.strip().lstrip("+-").isdigit():
        spec = int(spec)
    if isinstance(spec, int):
        spec = "cpu" if spec < 0 else f"cuda:{spec}"
    if not isinstance(spec, str):
        raise InputError(f"device: {spec!r} is not a device; use {DEVICE_FORMS}")
    name = spec.strip().lower()
    if name == "cpu":
        return torch.device("cpu")
    kind, _, index = name.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise InputError(f"device: {spec!r} is not a device; use {DEVICE_FORMS}")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    k = int(index or 0)
    if k >= count:
        have = f"{count} CUDA device(s)" if count else "no CUDA device"
        raise InputError(f"device {given!r} was asked for, but this machine has {have}")
    return torch.device(f"cuda:{k}")


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (CPU and CUDA) generators with ``seed``, and
    ask torch for deterministic algorithms where it has them (warning, not failing,
    where it has none).
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    # Deterministic mode also fills every new tensor (NaN/max int) in case a kernel
    # reads uninitialized memory; ours do not, and the fills cost 10-15% of a CPU epoch.
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
