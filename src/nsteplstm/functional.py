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
    one fused (oneDNN) call. Otherwise the steps are cut into a few segments
    (:meth:`PackedLayout.merged_segments`: kernel-call overhead against padding), one
    fused call each; with ``final_states`` each layer runs on its own so that the
    sequences ending inside a segment can have their exact final states.
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

    directions = 2 if bidirectional else 1
    rows = layout.reversed_rows if bidirectional else None
    hy, cy = [], []
    for layer in range(n_layers):
        if layer > 0 and dropout > 0 and train:
            data = F.dropout(data, dropout, training=True)
        outs = []
        for d in range(directions):
            k = layer * directions + d
            x = data if d == 0 else data[rows]  # backward direction: sequences reversed
            y, h, c = _layer(x, layout, hx[k, None], cx[k, None], weights[4 * k : 4 * k + 4], train)
            outs.append(y if d == 0 else y[rows])
            hy.append(h)
            cy.append(c)
        data = torch.cat(outs, dim=1) if directions == 2 else outs[0]  # (N, D * H)
    return data, torch.cat(hy), torch.cat(cy)


def _layer(
    data: Tensor, layout: PackedLayout, h: Tensor, c: Tensor, weights: Sequence[Tensor], train: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """One unidirectional layer with exact final states: ``data`` ``(N, I)``, ``h``, ``c``
    ``(1, B, H)`` sorted -> packed ``(N, H)``, final ``h``, ``c`` ``(1, B, H)`` sorted.

    Runs the padded segments of :meth:`PackedLayout.cover`, one fused call each. A
    sequence that ends strictly inside a segment keeps going over padding, so its
    final state is taken elsewhere: ``h`` is its output at its last step, and ``c``
    is rebuilt by :func:`_cell_states` from the inputs and outputs it had.
    """
    segments, gather, scatter = layout.cover(CALL_OVERHEAD_ROW_STEPS)
    data = torch.cat([data, data.new_zeros(1, data.shape[1])])  # row N: padding
    lengths = layout.sorted_lengths
    outs, h_end, c_end, inside = [], [], [], []
    for (t0, t1, rows), index in zip(segments, gather, strict=True):
        x = data.index_select(0, index).view(t1 - t0, rows, -1)  # (t1 - t0, rows, I)
        h0, c0 = h[:, :rows], c[:, :rows]
        y, h, c = _VF.lstm(x, (h0, c0), weights, True, 1, 0.0, train, False, False)
        outs.append(y.flatten(0, 1))  # ((t1 - t0) * rows, H)
        alive = sum(1 for n in lengths[:rows] if n > t1)  # rows that go on: a prefix
        done = alive + sum(1 for n in lengths[:rows] if n == t1)  # rows ending at t1
        h_end.append(h[:, alive:done])
        c_end.append(c[:, alive:done])
        if done < rows:  # rows ending before t1: their start states
            inside.append((t0, done, rows, h0[0, done:rows], c0[0, done:rows]))
    out = torch.cat(outs).index_select(0, scatter)  # (N, H)
    h_end, c_end = torch.cat(h_end[::-1], dim=1), torch.cat(c_end[::-1], dim=1)
    if inside:  # their rows are those not in h_end: the tail of every segment's rows
        h_end, c_end = _merge_inside(h_end, c_end, inside, data, out, layout, weights)
    return out, h_end, c_end


def _merge_inside(
    h_end: Tensor,
    c_end: Tensor,
    inside: list[tuple[int, int, int, Tensor, Tensor]],
    data: Tensor,
    out: Tensor,
    layout: PackedLayout,
    weights: Sequence[Tensor],
) -> tuple[Tensor, Tensor]:
    """Final states of every sequence: those read off the segment ends (``h_end``,
    ``c_end``, sorted order with the others left out) and those ending inside a
    segment, listed in ``inside`` as ``(t0, first row, end row, h0, c0)`` per segment,
    from the layer's packed input ``data`` and output ``out``."""
    lengths = layout.sorted_lengths
    bounds = {t1 for t1 in (seg[1] for seg in layout.cover(CALL_OVERHEAD_ROW_STEPS)[0])}
    rank = torch.tensor([n not in bounds for n in lengths])  # (B,) ends inside
    order = torch.cat([(~rank).nonzero()[:, 0], rank.nonzero()[:, 0]])  # where each row is
    inside = inside[::-1]  # later segments hold the longer sequences: sorted order
    rows = rank.nonzero()[:, 0]  # (R,) sorted positions, as listed in `inside`
    start = torch.tensor([t0 for t0, done, end, _, _ in inside for _ in range(done, end)])
    ends = torch.tensor(lengths)[rows] - start  # (R,) steps each runs in its segment
    h0 = torch.cat([h for *_, h, _ in inside])  # (R, H)
    c0 = torch.cat([c for *_, c in inside])  # (R, H)
    first = torch.from_numpy(layout.first_rows)  # (T,) row of step t
    c = _cell_states(data, out, h0, c0, first, rows, start, ends, weights)  # (R, H)
    h = out.index_select(0, layout.last_rows[rows.to(layout.device)])  # (R, H) last outputs
    h_all = torch.cat([h_end, h[None]], dim=1)  # (1, B, H), rows in `order`
    c_all = torch.cat([c_end, c[None]], dim=1)
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(len(order))
    return h_all[:, inverse], c_all[:, inverse]


def _cell_states(
    data: Tensor,
    out: Tensor,
    h0: Tensor,
    c0: Tensor,
    first: Tensor,
    rows: Tensor,
    start: Tensor,
    ends: Tensor,
    weights: Sequence[Tensor],
) -> Tensor:
    """Cell states of R sorted sequences ``rows`` after ``ends[r]`` steps from step
    ``start[r]``, where their state was ``h0``, ``c0`` ``(R, H)``: inputs from the
    layer's packed input ``data`` ``(N, I)``, earlier hidden states from its packed
    output ``out`` ``(N, H)``; ``first[t]`` is the packed row of step t's first sequence.

    With inputs and hidden states known, the i, f, a gates of all those steps are one
    matrix product, and ``c_t = f_t c_{t-1} + i_t a_t`` is element-wise: no recurrence
    through a matrix product.
    """
    w_ih, w_hh, b_ih, b_hh = weights
    three = 3 * c0.shape[1]  # rows of i, f, a: the output gate plays no part in c
    steps, count = int(ends.max()), len(rows)
    s = torch.arange(steps)[:, None]  # (S, 1)
    t = (start[None, :] + s).clamp(max=len(first) - 1)  # (S, R) step, clamped past the end
    packed = (first[t] + rows[None, :]).flatten()  # (S * R,) packed row of each step
    cells = (s < ends[None, :]).flatten().nonzero().squeeze(1)  # (n,) real steps, step-major
    # Every sequence has a step 0, so the first R cells are (0, r); cell k > R follows k - R.
    x = data.index_select(0, packed[cells].to(data.device))  # (n, I)
    previous = out.index_select(0, packed[cells[count:] - count].to(out.device))
    h_prev = torch.cat([h0, previous])  # (n, H)
    gates = torch.addmm(b_ih[:three] + b_hh[:three], x, w_ih[:three].t())  # (n, 3H)
    gates = gates.addmm_(h_prev, w_hh[:three].t())
    cells = cells.to(gates.device)
    gates = gates.new_zeros(steps * count, three).index_copy(0, cells, gates)  # (S * R, 3H)
    i, f, a = gates.view(steps, count, three).chunk(3, dim=2)  # (S, R, H) each
    ia = (i.sigmoid() * a.tanh()).unbind(0)  # S x (R, H); unbind: one backward node
    f = f.sigmoid().unbind(0)
    c = c0
    for k in range(steps):
        c = torch.where((k < ends)[:, None], torch.addcmul(ia[k], f[k], c), c)
    return c


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
    """Outputs only: the padded segments of :meth:`PackedLayout.cover`, all layers in
    one fused call each.

    A sequence that ends inside a segment runs on over zero inputs; those steps come
    after its last real one, so its outputs (and their gradients) are exact, and the
    padded outputs are dropped. Its final state is not, hence outputs only.
    """
    segments, gather, scatter = layout.cover(CALL_OVERHEAD_ROW_STEPS)
    data = torch.cat([data, data.new_zeros(1, data.shape[1])])  # row N: padding
    outs = []
    for (t0, t1, rows), index in zip(segments, gather, strict=True):
        x = data.index_select(0, index).view(t1 - t0, rows, -1)  # (t1 - t0, rows, I)
        y, h, c = _VF.lstm(
            x, (h[:, :rows], c[:, :rows]), weights, True, n_layers, dropout, train, False, False
        )
        outs.append(y.flatten(0, 1))  # ((t1 - t0) * rows, H)
    return torch.cat(outs).index_select(0, scatter)  # (N, H)
