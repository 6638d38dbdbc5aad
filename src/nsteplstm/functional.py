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

import contextlib
import warnings
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import _VF, Tensor

from .errors import InputError, check_int, check_ratio
from .packing import Cover, CoverEnds, PackedLayout, describe

# The cost of one more fused LSTM call (forward and backward) on the CPU, in row-steps
# of work. A call costs about 0.4 ms beyond its ~7 us per row-step (hidden 200, 2 cores),
# but one call more also means fewer cell states to rebuild (_cell_states): on mixed
# lengths 10..50 any value from 16 to 96 ran within 4% of the others, 32 never worse.
CALL_OVERHEAD_ROW_STEPS = 32.0

# torch.compile runs these eagerly (a graph break): traced with gradients on, torch
# 2.13's AOT autograd fails on the fused LSTM kernel (an AssertionError with aot_eager,
# a TypeError for aten.mkldnn_rnn_layer with inductor), which it never meets otherwise
# because it skips torch.nn.LSTM modules (torch._dynamo.config.allow_rnn). About 0.6 us
# a call outside compile.
_eager = torch.compiler.disable


# ------------------------------------------------------------------ input checks
# The fused kernels trust every size they are given: a mismatch reaching them reads or
# writes out of bounds (heap corruption, or silently wrong numbers), never an error.


def check_dense(name: str, t: Tensor) -> None:
    """Raise :class:`InputError` unless the tensor ``t`` is dense (strided): a nested
    one has no shape to check, and a sparse one fails deep inside torch."""
    if t.is_nested:
        raise InputError(f"{name} must be a dense (strided) tensor, got a nested tensor")
    if t.layout != torch.strided:
        raise InputError(f"{name} must be a dense (strided) tensor, got layout {t.layout}")


def autocast_alike(t: Tensor, weight: Tensor) -> bool:
    """Whether ``torch.autocast``, enabled for ``weight``'s device, runs the LSTM kernels
    on ``t`` and ``weight`` in one dtype: each is float32 or autocast's lower precision
    (bfloat16 or float16), which it casts to (the states an LSTM call returns under
    autocast are of that lower precision, and the next call is given them)."""
    kind = weight.device.type
    low = _autocast_dtype(kind) if kind in ("cpu", "cuda") else None
    return low is not None and {t.dtype, weight.dtype} <= {torch.float32, low}


def _autocast_dtype(kind: str) -> torch.dtype | None:
    """The dtype ``torch.autocast`` casts to on device type ``kind`` ("cpu" or "cuda")
    where it is enabled, else None."""
    try:  # torch >= 2.4
        return torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else None
    except TypeError:  # torch 2.3: is_autocast_enabled() takes no device; one per device
        if kind == "cpu":
            return torch.get_autocast_cpu_dtype() if torch.is_autocast_cpu_enabled() else None
        return torch.get_autocast_gpu_dtype() if torch.is_autocast_enabled() else None


def check_like(name: str, t: Tensor, weight: Tensor) -> None:
    """Raise :class:`InputError` unless ``t`` is a dense tensor of ``weight``'s dtype and
    device (:func:`check_dense`); under autocast, of a dtype it casts (:func:`autocast_alike`)."""
    check_dense(name, t)
    if t.device != weight.device or (t.dtype != weight.dtype and not autocast_alike(t, weight)):
        raise InputError(
            f"{name} must be {weight.dtype} on {weight.device} like the module's weights, "
            f"got {t.dtype} on {t.device} (.to(dtype={weight.dtype}, device='{weight.device}') "
            "converts it)"
        )


def check_packed(data: Tensor, layout: PackedLayout, in_size: int, weight: Tensor) -> None:
    """Raise :class:`InputError` unless ``data`` is ``(layout.n_rows, in_size)``, of
    ``weight``'s dtype and device, and ``layout`` is on that device."""
    if not isinstance(layout, PackedLayout):
        raise InputError(f"layout must be a PackedLayout, got {type(layout).__name__}")
    if isinstance(data, Tensor):
        check_dense("packed data", data)
    if (
        not isinstance(data, Tensor)
        or data.dim() != 2
        or data.shape[0] != layout.n_rows
        or data.shape[1] != in_size
    ):
        raise InputError(
            f"packed data must be a tensor of shape ({layout.n_rows}, {in_size}), "
            f"got {describe(data)}"
        )
    check_like("packed data", data, weight)
    where, there = layout.device, data.device  # a layout's CUDA device has its index
    if where.type != there.type or where.index not in (None, there.index):
        raise InputError(
            f"the layout is on {layout.device} but the packed data on {data.device}: "
            "make the PackedLayout with the data's device"
        )


def check_states(
    hx: Tensor | None,
    cx: Tensor | None,
    shape: tuple[int, int, int],
    weight: Tensor,
    optional: bool = True,
) -> None:
    """Raise :class:`InputError` unless ``hx`` and ``cx`` are each a tensor of ``shape``
    ``(layers * D, B, H)``, of ``weight``'s dtype and device, or (``optional``) None."""
    allowed = "None or a tensor" if optional else "a tensor"
    for name, state in (("hx", hx), ("cx", cx)):
        if state is None and optional:
            continue
        if isinstance(state, Tensor):
            check_dense(name, state)
        if not isinstance(state, Tensor) or tuple(state.shape) != shape:
            raise InputError(f"{name} must be {allowed} of shape {shape}, got {describe(state)}")
        check_like(name, state, weight)


def weight_shapes(
    n_layers: int, in_size: int, hidden: int, directions: int = 1
) -> list[tuple[int, ...]]:
    """The shapes of the flat weight list (module docstring), in its order:
    ``(4H, I_l)``, ``(4H, H)``, ``(4H,)``, ``(4H,)`` per layer and direction, with
    ``I_0 = in_size`` and ``I_l = directions * H`` above."""
    return [
        shape
        for layer in range(n_layers)
        for _ in range(directions)
        for shape in (
            (4 * hidden, in_size if layer == 0 else directions * hidden),
            (4 * hidden, hidden),
            (4 * hidden,),
            (4 * hidden,),
        )
    ]


def check_weights(
    weights: Sequence[Tensor],
    shapes: list[tuple[int, ...]],
    names: Sequence[str] | None = None,
    prefix: str = "",
) -> None:
    """Raise :class:`InputError` unless ``weights`` are tensors of ``shapes``, all of the
    first one's dtype and device. ``prefix + names[k]`` names them in the message
    (default ``weights[k]``)."""
    if not isinstance(weights, (list, tuple)) or len(weights) != len(shapes):
        got = f"{len(weights)} of them" if isinstance(weights, (list, tuple)) else describe(weights)
        raise InputError(f"weights must be a list of {len(shapes)} tensors, got {got}")

    def name(k: int) -> str:
        return prefix + names[k] if names is not None else f"weights[{k}]"

    first = weights[0]
    for k, (w, shape) in enumerate(zip(weights, shapes, strict=True)):
        if not isinstance(w, Tensor) or tuple(w.shape) != shape:
            raise InputError(f"{name(k)} must be a tensor of shape {shape}, got {describe(w)}")
        if k and (w.dtype != first.dtype or w.device != first.device):
            raise InputError(
                f"{name(k)} must be {first.dtype} on {first.device} like the other weights, "
                f"got {w.dtype} on {w.device}"
            )


def check_call(
    data: Tensor,
    layout: PackedLayout,
    hx: Tensor,
    cx: Tensor,
    weights: Sequence[Tensor],
    n_layers: int,
    dropout: float,
    bidirectional: bool,
) -> None:
    """Raise :class:`InputError` unless the arguments of :func:`n_step_lstm` and
    :func:`packed_lstm` fit together: ``weights`` a stack of ``n_layers`` layers (H and
    I from ``weights[0]``, ``(4H, I)``), ``data`` ``(N, I)`` for ``layout``, ``hx`` and
    ``cx`` ``(n_layers * D, B, H)`` tensors, all alike, and ``dropout`` in [0, 1)."""
    n_layers = check_int("n_layers", n_layers)
    check_ratio("dropout", dropout)
    directions = 2 if bidirectional else 1
    count = 4 * n_layers * directions
    if not isinstance(weights, (list, tuple)) or len(weights) != count:
        got = f"{len(weights)}" if isinstance(weights, (list, tuple)) else describe(weights)
        raise InputError(f"weights must be a list of {count} tensors (4 per layer), got {got}")
    w_ih = weights[0]
    if not isinstance(w_ih, Tensor) or w_ih.dim() != 2 or w_ih.shape[0] % 4 or not len(w_ih):
        raise InputError(f"weights[0] must be a tensor of shape (4H, I), got {describe(w_ih)}")
    hidden = w_ih.shape[0] // 4
    check_weights(weights, weight_shapes(n_layers, w_ih.shape[1], hidden, directions))
    check_packed(data, layout, w_ih.shape[1], w_ih)
    shape = (n_layers * directions, layout.batch, hidden)
    check_states(hx, cx, shape, w_ih, optional=False)


def lstm_cell(
    x: Tensor, h: Tensor, c: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor
) -> tuple[Tensor, Tensor]:
    """One LSTM step: ``x`` ``(B, I)``, ``h`` and ``c`` ``(B, H)`` -> new ``(h, c)``."""
    return torch.lstm_cell(x, (h, c), w_ih, w_hh, b_ih, b_hh)


def dropout(x: Tensor, ratio: float) -> Tensor:
    """Inverted dropout (training): each element zeroed with probability ``ratio`` in
    [0, 1), the others scaled by ``1 / (1 - ratio)``; same shape as ``x`` (floating).

    On the CPU the mask is ``rand >= ratio``, as Chainer draws it, from torch's
    generator: so one seed gives one mask on every CPU. ``F.dropout`` draws its mask
    with ``bernoulli_``, which takes twice as long or more on the CPU: for a
    (30, 100, 200) mask 6 ms against 2 ms on this project's AMD machine (element by
    element), and 7.1 against 3.0 ms on its Intel one (torch 2.13, MKL's path). On
    CUDA, ``F.dropout``.
    """
    check_ratio("dropout ratio", ratio)
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise InputError(f"dropout: x must be a floating-point tensor, got {describe(x)}")
    if ratio == 0.0:
        return x
    if x.is_cuda:
        return F.dropout(x, ratio, training=True)
    keep = torch.rand_like(x).ge_(ratio).div_(1.0 - ratio)  # 0 or 1 / (1 - ratio)
    return x * keep


@_eager
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
    check: bool = True,
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """A stack of LSTM layers over a packed batch of variable-length sequences.

    Args:
        data: packed inputs ``(N, I)`` (see :mod:`nsteplstm.packing`).
        layout: the batch's :class:`PackedLayout`.
        hx, cx: initial states ``(n_layers * D, B, H)`` in *sorted* order, D = 2 if
            bidirectional else 1 (forward and backward interleaved per layer).
        weights: the flat weight list described in the module docstring.
        final_states: when False, ``hy`` and ``cy`` are not needed and come back None,
            which lets the CPU path merge the segments of unidirectional layers (see
            :func:`_merged_segments`).
        check: False skips :func:`check_call`, for callers that checked the arguments
            already (:class:`nsteplstm.NStepLSTM` checks data and states once per call,
            its weights as it reads them).

    Returns:
        ``(out, hy, cy)``: packed last-layer hidden states ``(N, D * H)`` and each
        sequence's state after its own last step ``(n_layers * D, B, H)``, sorted order.

    On CUDA one cuDNN call runs the stack, except in training with dropout between
    layers: then each layer is its own call and :func:`dropout` draws the masks, as on
    the CPU, because cuDNN keeps its dropout state outside torch's random state, where
    a checkpoint cannot save it (a resumed run would draw other masks; see
    pytorch/pytorch#104697). On the CPU, a batch of equal lengths is one fused (oneDNN)
    call. Otherwise the steps are cut into a few segments
    (:meth:`PackedLayout.merged_segments`: kernel-call overhead against padding), one
    fused call each; with ``final_states`` each layer runs on its own so that the
    sequences ending inside a segment can have their exact final states.

    Raises:
        InputError: arguments that do not fit together (:func:`check_call`).
    """
    if check:
        check_call(data, layout, hx, cx, weights, n_layers, dropout, bidirectional)
    hx, cx = hx.contiguous(), cx.contiguous()  # cuDNN refuses strided states (the CPU takes them)
    if n_layers > 1 and dropout > 0 and train:
        return _layer_by_layer(
            data, layout, hx, cx, weights, n_layers, dropout, bidirectional, final_states
        )
    dropout = 0.0  # none to apply (one layer, or not training): cuDNN would still build its state
    if layout.is_dense:
        x = data.view(layout.max_length, layout.batch, -1)  # (T, B, I)
        out, hy, cy = _VF.lstm(
            x, (hx, cx), weights, True, n_layers, dropout, train, bidirectional, False
        )
        return out.flatten(0, 1), hy, cy  # (N, D * H)
    if data.is_cuda:
        return packed_lstm(
            data, layout, hx, cx, weights, n_layers, dropout, train, bidirectional, check=False
        )
    if not bidirectional and not final_states:
        out = _merged_segments(data, layout, hx, cx, weights, n_layers, dropout, train)
        return out, None, None

    directions = 2 if bidirectional else 1
    rows = layout.reversed_rows if bidirectional else None
    hy, cy = [], []
    for layer in range(n_layers):  # no dropout here: _layer_by_layer handles it
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


@_eager
def packed_lstm(
    data: Tensor,
    layout: PackedLayout,
    hx: Tensor,
    cx: Tensor,
    weights: Sequence[Tensor],
    n_layers: int,
    dropout: float,
    train: bool,
    bidirectional: bool,
    check: bool = True,
) -> tuple[Tensor, Tensor, Tensor]:
    """PyTorch's own packed-sequence LSTM, the whole stack in one call (cuDNN on CUDA,
    :func:`n_step_lstm`'s path there). Arguments and results as :func:`n_step_lstm`'s;
    it runs on the CPU too, which lets the CPU test the CUDA path's call."""
    if check:
        check_call(data, layout, hx, cx, weights, n_layers, dropout, bidirectional)
    return _VF.lstm(
        data, layout.batch_sizes, (hx, cx), weights, True, n_layers, dropout, train, bidirectional
    )


def _layer_by_layer(
    data: Tensor,
    layout: PackedLayout,
    hx: Tensor,
    cx: Tensor,
    weights: Sequence[Tensor],
    n_layers: int,
    ratio: float,
    bidirectional: bool,
    final_states: bool,
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """:func:`n_step_lstm` in training with dropout between layers: one layer per call,
    and :func:`dropout` on the input of every layer but the first (not the fused call's
    own: see :func:`dropout` and :func:`n_step_lstm`). Arguments and results as
    :func:`n_step_lstm`'s."""
    d = 2 if bidirectional else 1
    hy, cy = [], []
    with _one_layer_of_flat_weights(data.is_cuda):
        for layer in range(n_layers):
            if layer > 0:
                data = dropout(data, ratio)  # (N, D * H)
            rows = slice(d * layer, d * (layer + 1))
            w = weights[4 * d * layer : 4 * d * (layer + 1)]
            h, c = hx[rows], cx[rows]  # (D, B, H)
            data, h, c = n_step_lstm(
                data, layout, h, c, w, 1, 0.0, True, bidirectional, final_states, False
            )
            hy.append(h)
            cy.append(c)
    if not final_states:
        return data, None, None
    return data, torch.cat(hy), torch.cat(cy)


@contextlib.contextmanager
def _one_layer_of_flat_weights(on_cuda: bool) -> Iterator[None]:
    """Silence cuDNN's warning that a call's weights are "not part of single contiguous
    chunk of memory" (on CUDA only). ``torch.nn.LSTM`` keeps the whole stack's weights in
    one flat buffer, and a call with one layer's slice of it makes cuDNN copy that layer
    into a buffer of its own (a few MB at most) and advise ``flatten_parameters()``,
    which cannot help a call per layer."""
    if not on_cuda:
        yield
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "RNN module weights are not part of single contiguous")
        yield


def _segment_inputs(data: Tensor, cover: Cover) -> list[Tensor]:
    """Each segment's inputs ``(t1 - t0, rows, I)`` from packed ``data`` ``(N, I)``, zeros
    where a sequence has ended: one gather for all segments."""
    data = torch.cat([data, data.new_zeros(1, data.shape[1])])  # row N: padding
    grids = data.index_select(0, cover.gather).split(cover.sizes)  # (G, I) in segments
    return [
        x.view(t1 - t0, rows, -1) for (t0, t1, rows), x in zip(cover.segments, grids, strict=True)
    ]


def _layer(
    data: Tensor, layout: PackedLayout, h: Tensor, c: Tensor, weights: Sequence[Tensor], train: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """One unidirectional layer with exact final states: ``data`` ``(N, I)``, ``h``, ``c``
    ``(1, B, H)`` sorted -> packed ``(N, H)``, final ``h``, ``c`` ``(1, B, H)`` sorted.

    Runs the padded segments of :meth:`PackedLayout.cover`, one fused call each. A
    sequence that ends strictly inside a segment keeps going over padding, so its
    final state is taken elsewhere (:class:`~nsteplstm.packing.CoverEnds`): ``h`` is
    its output at its last step, and ``c`` is rebuilt by :func:`_cell_states` from the
    inputs and outputs it had.
    """
    cover, ends = layout.cover(CALL_OVERHEAD_ROW_STEPS), layout.cover_ends(CALL_OVERHEAD_ROW_STEPS)
    outs, hs, cs = [], [h.squeeze(0)], [c.squeeze(0)]  # state table: start, then each end
    for (_, _, rows), x in zip(cover.segments, _segment_inputs(data, cover), strict=True):
        y, h, c = _VF.lstm(
            x, (h[:, :rows], c[:, :rows]), weights, True, 1, 0.0, train, False, False
        )
        outs.append(y.flatten(0, 1))  # ((t1 - t0) * rows, H)
        hs.append(h.squeeze(0))  # (rows, H); squeeze: a view also in backward
        cs.append(c.squeeze(0))
    out = torch.cat(outs).index_select(0, cover.scatter)  # (N, H)
    hs[0], cs[0] = hs[0].to(out.dtype), cs[0].to(out.dtype)  # autocast: as the calls give
    h_table, c_table = torch.cat(hs), torch.cat(cs)  # (B + sum(rows), H)
    if len(ends.start):
        h0, c0 = h_table.index_select(0, ends.start), c_table.index_select(0, ends.start)  # (R, H)
        h_table = torch.cat([h_table, out.index_select(0, ends.last)])  # (B + sum(rows) + R, H)
        c_table = torch.cat([c_table, _cell_states(data, out, h0, c0, ends, weights)])  # same
    return out, h_table.index_select(0, ends.final)[None], c_table.index_select(0, ends.final)[None]


def _cell_states(
    data: Tensor, out: Tensor, h0: Tensor, c0: Tensor, ends: CoverEnds, weights: Sequence[Tensor]
) -> Tensor:
    """Cell states ``(R, H)`` of the R sequences that end inside a segment, after their
    real steps there from the segment's start state ``h0``, ``c0`` ``(R, H)``: inputs
    from the layer's packed input ``data`` ``(N, I)``, earlier hidden states from its
    packed output ``out`` ``(N, H)``, rows and order as listed in ``ends``.

    With inputs and hidden states known, the i, f, a gates of all those steps are one
    matrix product, and ``c_t = f_t c_{t-1} + i_t a_t`` is element-wise: no recurrence
    through a matrix product. Step s updates the first ``ends.counts[s]`` rows, those
    still running (a packed batch's rule): memory for the n real steps only. (A grid of
    every step of the longest run for all R took 70 times the layer's output: many
    short sequences ending inside a segment beside two long ones.)
    """
    w_ih, w_hh, b_ih, b_hh = weights
    hidden = c0.shape[1]
    three = 3 * hidden  # rows of i, f, a: the output gate plays no part in c
    h_prev = torch.cat([h0, out.index_select(0, ends.previous)])  # (n, H)
    gates = torch.addmm(
        b_ih[:three] + b_hh[:three], data.index_select(0, ends.inputs), w_ih[:three].t()
    )
    gates = torch.addmm(gates, h_prev, w_hh[:three].t())  # (n, 3H); not in place: autocast
    i, f, a = gates.chunk(3, dim=1)  # (n, H) each
    ia = (i.sigmoid() * a.tanh()).split(ends.counts)  # S x (counts[s], H)
    f = f.sigmoid().split(ends.counts)
    c, done = c0, []  # done: the rows that have ended, the shortest runs first
    for ia_s, f_s in zip(ia, f, strict=True):
        rows = len(ia_s)
        if rows < len(c):
            done.append(c[rows:])
            c = c[:rows]
        c = torch.addcmul(ia_s, f_s, c)  # (rows, H)
    return torch.cat([c, *done[::-1]])  # (R, H), by decreasing run as in ends


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
    cover = layout.cover(CALL_OVERHEAD_ROW_STEPS)
    outs = []
    for (_, _, rows), x in zip(cover.segments, _segment_inputs(data, cover), strict=True):
        y, h, c = _VF.lstm(
            x, (h[:, :rows], c[:, :rows]), weights, True, n_layers, dropout, train, False, False
        )
        outs.append(y.flatten(0, 1))  # ((t1 - t0) * rows, H)
    return torch.cat(outs).index_select(0, cover.scatter)  # (N, H)
