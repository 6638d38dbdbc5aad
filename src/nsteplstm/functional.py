r"""The math of the LSTM links, as functions of tensors (Chainer's *functions* side).

One LSTM step, for input :math:`x_t` ``(B, I)`` and state :math:`h_{t-1}, c_{t-1}` ``(B, H)``:

.. math::
    i_t &= \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi})  &\text{input gate} \\
    f_t &= \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf})  &\text{forget gate} \\
    a_t &= \tanh(W_{ia} x_t + b_{ia} + W_{ha} h_{t-1} + b_{ha})   &\text{cell input} \\
    o_t &= \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho})  &\text{output gate} \\
    c_t &= f_t \odot c_{t-1} + i_t \odot a_t \\
    h_t &= o_t \odot \tanh(c_t)

Weights are stacked per layer and direction as in ``torch.nn.LSTM``: ``w_ih`` ``(4H, I)``,
``w_hh`` ``(4H, H)``, ``b_ih`` and ``b_hh`` ``(4H,)``, gate blocks in the order
(i, f, a, o) — Chainer's NStepLSTM ``w0..w3`` (input side) and ``w4..w7`` (hidden
side). A stack of layers flattens them as ``[w_ih, w_hh, b_ih, b_hh]`` per layer
(forward direction, then backward for bidirectional ones): ``torch.nn.LSTM``'s
``_flat_weights``. Dropout of ratio ``dropout`` acts on the input of every layer but
the first, in training only (Chainer's rule, and PyTorch's).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import _VF, Tensor

from .packing import PackedLayout

# The cost of one fused LSTM call (forward and backward) on the CPU, in row-steps of
# work: measured about 0.5 ms per call against about 15 us per row-step (hidden 200).
CALL_OVERHEAD_ROW_STEPS = 32.0


def lstm_cell(
    x: Tensor, h: Tensor, c: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor
) -> tuple[Tensor, Tensor]:
    """One LSTM step: ``x`` ``(B, I)``, ``h`` and ``c`` ``(B, H)`` -> new ``(h, c)``."""
    return torch.lstm_cell(x, (h, c), w_ih, w_hh, b_ih, b_hh)


def n_step_lstm(
    data: Tensor,
    layout: PackedLayout,
    hx: Tensor,
    cx: Tensor,
    weights: Sequence[Tensor],
    n_layers: int,
    dropout: float,
    train: bool,
    bidirectional: bool,
    final_states: bool = True,
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """A stack of LSTM layers over a packed batch of variable-length sequences.

    Args:
        data: packed inputs ``(N, I)`` (see :mod:`nsteplstm.packing`).
        layout: the batch's :class:`PackedLayout`.
        hx, cx: initial states ``(n_layers * D, B, H)`` in *sorted* order, D = 2 if
            bidirectional else 1 (forward and backward interleaved per layer).
        weights: the flat weight list described in the module docstring.
        final_states: when False, ``hy`` and ``cy`` are not needed and come back None,
            which lets the CPU path merge segments (see :func:`_merged_segments`).

    Returns:
        ``(out, hy, cy)``: packed last-layer hidden states ``(N, D * H)`` and each
        sequence's state after its own last step ``(n_layers * D, B, H)``, sorted order.

    On CUDA one cuDNN call runs everything. On the CPU, a batch of equal lengths is
    one fused (oneDNN) call; otherwise one fused call per segment of constant batch
    size, so no step of padding is computed and final states are exact.
    """
    if layout.is_dense:
        x = data.view(layout.max_length, layout.batch, -1)  # (T, B, I)
        out, hy, cy = _VF.lstm(
            x, (hx, cx), weights, True, n_layers, dropout, train, bidirectional, False
        )
        return out.flatten(0, 1), hy, cy  # (N, D * H)
    if data.is_cuda:
        return _VF.lstm(
            data,
            layout.batch_sizes,
            (hx, cx),
            weights,
            True,
            n_layers,
            dropout,
            train,
            bidirectional,
        )
    if not bidirectional and not final_states:
        out = _merged_segments(data, layout, hx, cx, weights, n_layers, dropout, train)
        return out, None, None
    if not bidirectional:
        return _segments(data, layout, hx, cx, weights, n_layers, dropout, train)

    rows = layout.reversed_rows
    hy, cy = [], []
    for layer in range(n_layers):
        if layer > 0 and dropout > 0 and train:
            data = F.dropout(data, dropout, training=True)
        fw, bw = weights[8 * layer : 8 * layer + 4], weights[8 * layer + 4 : 8 * layer + 8]
        y_f, h_f, c_f = _segments(data, layout, hx[2 * layer, None], cx[2 * layer, None], fw)
        y_b, h_b, c_b = _segments(
            data[rows], layout, hx[2 * layer + 1, None], cx[2 * layer + 1, None], bw
        )
        data = torch.cat([y_f, y_b[rows]], dim=1)  # (N, 2H)
        hy += [h_f, h_b]
        cy += [c_f, c_b]
    return data, torch.cat(hy), torch.cat(cy)


def _segments(
    data: Tensor,
    layout: PackedLayout,
    h: Tensor,
    c: Tensor,
    weights: Sequence[Tensor],
    n_layers: int = 1,
    dropout: float = 0.0,
    train: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """Unidirectional stack, one fused call per segment; shapes as in :func:`n_step_lstm`."""
    outs, h_end, c_end = [], [], []
    for seg in layout.segments:
        x = data[seg.start : seg.stop].view(seg.t1 - seg.t0, seg.rows, -1)  # (steps, rows, I)
        y, h, c = _VF.lstm(
            x,
            (h[:, : seg.rows], c[:, : seg.rows]),
            weights,
            True,
            n_layers,
            dropout,
            train,
            False,
            False,
        )
        outs.append(y.flatten(0, 1))  # (steps * rows, H)
        h_end.append(h[:, seg.rows - seg.ending :])  # the sequences that end here
        c_end.append(c[:, seg.rows - seg.ending :])
    # Longer sequences end later but come first in sorted order.
    return torch.cat(outs), torch.cat(h_end[::-1], dim=1), torch.cat(c_end[::-1], dim=1)


def _merged_segments(
    data: Tensor,
    layout: PackedLayout,
    h: Tensor,
    c: Tensor,
    weights: Sequence[Tensor],
    n_layers: int,
    dropout: float,
    train: bool,
) -> Tensor:
    """Outputs only: fewer, padded segments (:meth:`PackedLayout.merged_segments`).

    A sequence that ends inside a segment runs on over zero inputs; those steps come
    after its last real one, so its outputs (and their gradients) are exact, and the
    padded outputs are dropped. Its final state is not, hence outputs only.
    """
    steps, batch = layout.max_length, layout.batch
    padded = data.new_zeros(steps * batch, data.shape[1])  # (T * B, I)
    padded = padded.index_copy(0, layout.padded_rows, data).view(steps, batch, -1)
    outs = []
    for t0, t1, rows in layout.merged_segments(CALL_OVERHEAD_ROW_STEPS):
        y, h, c = _VF.lstm(
            padded[t0:t1, :rows],
            (h[:, :rows], c[:, :rows]),
            weights,
            True,
            n_layers,
            dropout,
            train,
            False,
            False,
        )
        outs.append(F.pad(y, (0, 0, 0, batch - rows)))  # (steps, B, H)
    return torch.cat(outs).flatten(0, 1).index_select(0, layout.padded_rows)  # (N, H)
