"""nsteplstm: stacked LSTMs over batches of variable-length sequences, on PyTorch.

Chainer's ``links.NStepLSTM`` rebuilt, with the workflow around it: data,
training, closed-loop forecasting, plots, benchmarks and Chainer checkpoint import.
"""

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

__version__ = "0.1.0"

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
