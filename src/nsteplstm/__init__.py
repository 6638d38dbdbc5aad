"""nsteplstm: stacked LSTMs over batches of variable-length sequences, on PyTorch.

Chainer's ``links.NStepLSTM`` rebuilt, with the workflow around it: data,
training, closed-loop forecasting, plots, benchmarks and Chainer checkpoint import.

The names below are imported on first use (PEP 562), so that ``import nsteplstm``
and the command line start without importing torch: ``nsteplstm --help`` is quick,
and a Ctrl-C during start-up ends in one line, not an import traceback.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
    "import_chainer_run": "chainer_import",
    "load_chainer_npz": "chainer_import",
    "resolve_device": "device",
    "seed_everything": "device",
    "tune_malloc": "device",
    "InputError": "errors",
    "Forecaster": "model",
    "NStepBiLSTM": "model",
    "NStepLSTM": "model",
    "StatefulNStepLSTM": "model",
    "StepLSTM": "model",
    "StepLSTMStack": "model",
    "PackedLayout": "packing",
}
_SUBMODULES = {
    *("bench", "chainer_import", "cli", "config", "data", "demo", "device", "errors"),
    *("forecast", "functional", "model", "packing", "plots", "runs", "train"),
}

__all__ = [
    "Forecaster",
    "InputError",
    "NStepBiLSTM",
    "NStepLSTM",
    "PackedLayout",
    "StatefulNStepLSTM",
    "StepLSTM",
    "StepLSTMStack",
    "__version__",
    "import_chainer_run",
    "load_chainer_npz",
    "resolve_device",
    "seed_everything",
    "tune_malloc",
]

if TYPE_CHECKING:
    from .chainer_import import import_chainer_run, load_chainer_npz
    from .device import resolve_device, seed_everything, tune_malloc
    from .errors import InputError
    from .model import (
        Forecaster,
        NStepBiLSTM,
        NStepLSTM,
        StatefulNStepLSTM,
        StepLSTM,
        StepLSTMStack,
    )
    from .packing import PackedLayout


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS, *_SUBMODULES})
