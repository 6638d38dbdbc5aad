"""Where a 1.3x over the plain torch.nn.LSTM loop at one layer could come from, measured.

Issue 4's stretch goal names two candidates for beating oneDNN's fused LSTM layer in
training (forward about 6.7 ms and backward about 9.6 ms per batch of 100 windows of 30
steps, hidden 200, on its reference machine): recomputation instead of the backward
workspace, and a fused backward of our own. This script times, for one layer and one
batch, interleaved round after round (medians):

- ``onednn-train`` and ``onednn-inference``: the fused forward with and without
  autograd (the inference call writes no workspace). Recomputation can save at most
  their difference per forward.
- ``onednn`` and ``hand``: forward and backward through the fused layer, and through a
  layer written here with torch operations (:class:`HandLSTM`: one ``addmm`` per step
  forward and one per step backward, the weight gradients as one product each, the
  element-wise work by hand); ``hand-forward`` its forward alone. Its gradients are
  checked against ``torch.nn.LSTM`` first.
- ``hand-products``: only the matrix products :class:`HandLSTM` runs (same shapes,
  same order): the floor of any layer built from ``torch.mm``, before element-wise work.
- ``onednn-half-1-thread``: the fused layer on half the batch with one thread. Two such
  halves on two threads at once is the best that splitting a batch across the cores
  could do, against ``onednn`` with both threads on the whole batch.
  ``onednn-halves-at-once`` does that: two Python threads, one torch thread each,
  each running forward and backward of its half at the same time.

Prints one JSON object. ``--tune-malloc`` as in ``variable_lengths.py``, whose ``race``
and ``print_report`` this script uses (run it as ``python benchmarks/stretch.py``).

    python benchmarks/stretch.py [--in-sizes 1 200] [--rounds 30] [--tune-malloc]
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from variable_lengths import at_least, parse_common, print_report, race

from nsteplstm.cli import Parser, run_command


class HandLSTM(torch.autograd.Function):
    r"""One LSTM layer (``torch.nn.LSTM``'s math and weight layout) with a backward by hand.

    Forward: ``x`` ``(T, B, I)``, ``h0``, ``c0`` ``(B, H)``, ``w_ih`` ``(4H, I)``, ``w_hh``
    ``(4H, H)``, biases ``(4H,)`` -> ``y`` ``(T, B, H)``, ``h_T``, ``c_T`` ``(B, H)``.
    Saves the activated gates ``i, f, a, o``, every ``h`` and ``c`` and ``tanh(c)``.
    ``tanh(z)`` is computed as ``2 sigmoid(2 z) - 1``: torch's CPU ``tanh`` is about 6x
    slower than its ``sigmoid`` on this project's AMD machine (1.3 against 0.2 ns per
    element).

    Backward, step t from T - 1 down to 0, with :math:`\tau_t = \tanh(c_t)`:

    .. math::
        dh_t &= dy_t + dg_{t+1} W_{hh} \qquad (dh_{T-1} = dy_{T-1} + dh_T) \\
        dc_t &= dc_{t+1} \odot f_{t+1} + dh_t \odot o_t (1 - \tau_t^2) \\
        dg_t &= [dc_t a_t i_t (1 - i_t),\ dc_t c_{t-1} f_t (1 - f_t),\
                 dc_t i_t (1 - a_t^2),\ dh_t \tau_t o_t (1 - o_t)]

    then :math:`dW_{hh} = dg^\top h_{-1..T-2}`, :math:`dW_{ih} = dg^\top x`,
    :math:`dx = dg\, W_{ih}`, both biases :math:`\sum dg`, :math:`dh_{-1} = dg_0 W_{hh}`,
    :math:`dc_{-1} = dc_0 \odot f_0`.
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        h0: Tensor,
        c0: Tensor,
        w_ih: Tensor,
        w_hh: Tensor,
        b_ih: Tensor,
        b_hh: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:
        steps, batch, in_size = x.shape
        hidden = w_hh.shape[1]
        a_rows = slice(2 * hidden, 3 * hidden)
        gates = torch.addmm(b_ih + b_hh, x.reshape(steps * batch, in_size), w_ih.t())
        gates = gates.view(steps, batch, 4 * hidden)  # (T, B, 4H), input part
        hs = x.new_empty(steps + 1, batch, hidden)  # h_{-1} .. h_{T-1}
        cs = x.new_empty(steps + 1, batch, hidden)
        taus = x.new_empty(steps, batch, hidden)  # tanh(c_t)
        hs[0], cs[0] = h0, c0
        for t in range(steps):
            g = gates[t].addmm_(hs[t], w_hh.t())  # (B, 4H)
            g[:, a_rows].mul_(2)
            g.sigmoid_()
            a = g[:, a_rows].mul_(2).sub_(1)
            i, f, o = g[:, :hidden], g[:, hidden : 2 * hidden], g[:, 3 * hidden :]
            torch.mul(f, cs[t], out=cs[t + 1]).addcmul_(i, a)
            torch.mul(cs[t + 1], 2, out=taus[t]).sigmoid_().mul_(2).sub_(1)
            torch.mul(o, taus[t], out=hs[t + 1])
        ctx.save_for_backward(x, w_ih, w_hh, gates, hs, cs, taus)
        return hs[1:], hs[steps], cs[steps]

    @staticmethod
    def backward(
        ctx: Any, dy: Tensor | None, dh_last: Tensor | None, dc_last: Tensor | None
    ) -> tuple[Tensor, ...]:
        x, w_ih, w_hh, gates, hs, cs, taus = ctx.saved_tensors
        steps, batch, in_size = x.shape
        hidden = w_hh.shape[1]
        i, f, a, o = gates.split(hidden, dim=2)  # (T, B, H) each
        dc_dh = (1 - taus * taus).mul_(o)  # (T, B, H)
        per_dc = x.new_empty(steps, batch, 3, hidden)  # d gates i, f, a per unit of dc
        torch.mul(a, i * (1 - i), out=per_dc[:, :, 0])
        torch.mul(cs[:-1], f * (1 - f), out=per_dc[:, :, 1])
        torch.mul(i, 1 - a * a, out=per_dc[:, :, 2])
        per_dh = (1 - o).mul_(o).mul_(taus)  # d gate o per unit of dh
        dg = x.new_empty(steps, batch, 4 * hidden)
        dg4 = dg.view(steps, batch, 4, hidden)
        dh = dy.clone() if dy is not None else x.new_zeros(steps, batch, hidden)
        if dh_last is not None:
            dh[-1] += dh_last
        dc = dc_last.clone() if dc_last is not None else x.new_zeros(batch, hidden)
        for t in range(steps - 1, -1, -1):
            if t < steps - 1:
                dh[t].addmm_(dg[t + 1], w_hh)
                dc.mul_(f[t + 1])
            dc.addcmul_(dh[t], dc_dh[t])
            torch.mul(dc.unsqueeze(1), per_dc[t], out=dg4[t, :, :3])
            torch.mul(dh[t], per_dh[t], out=dg4[t, :, 3])
        flat = dg.view(steps * batch, 4 * hidden)
        dw_hh = flat.t() @ hs[:-1].reshape(steps * batch, hidden)
        dw_ih = flat.t() @ x.reshape(steps * batch, in_size)
        db = flat.sum(0)
        dx = (flat @ w_ih).view(steps, batch, in_size)
        return dx, dg[0] @ w_hh, dc * f[0], dw_ih, dw_hh, db, db


def products(x: Tensor, w_ih: Tensor, w_hh: Tensor) -> None:
    """The matrix products of one :class:`HandLSTM` forward and backward, nothing else."""
    steps, batch, in_size = x.shape
    hidden = w_hh.shape[1]
    gates = x.reshape(steps * batch, in_size) @ w_ih.t()  # (T B, 4H)
    gates = gates.view(steps, batch, 4 * hidden)
    hs, dh = x.new_zeros(steps, batch, hidden), x.new_zeros(steps, batch, hidden)
    for t in range(steps):
        gates[t].addmm_(hs[t], w_hh.t())
    for t in range(steps - 1, -1, -1):
        dh[t].addmm_(gates[t], w_hh)
    flat = gates.view(steps * batch, 4 * hidden)
    _ = flat.t() @ hs.view(steps * batch, hidden), flat.t() @ x.reshape(steps * batch, in_size)
    _ = flat @ w_ih


def max_gradient_error(lstm: torch.nn.LSTM, x: Tensor) -> float:
    """Largest difference between :class:`HandLSTM`'s gradients and ``lstm``'s, relative
    to the largest gradient of each tensor, for a loss using ``y``, ``h_T`` and ``c_T``."""
    x = x.detach().requires_grad_()
    target = torch.randn(x.shape[0], x.shape[1], lstm.hidden_size)
    y, (h, c) = lstm(x)
    ((y - target).square().sum() + h.sum() + 2 * c.sum()).backward()
    expected = [x.grad] + [w.grad for w in lstm._flat_weights]
    x.grad = None
    weights = [w.detach().requires_grad_() for w in lstm._flat_weights]
    zeros = x.new_zeros(x.shape[1], lstm.hidden_size)
    y, h, c = HandLSTM.apply(x, zeros, zeros, *weights)
    ((y - target).square().sum() + h.sum() + 2 * c.sum()).backward()
    got = [x.grad] + [w.grad for w in weights]
    return max(
        float((e - g).abs().max() / e.abs().max()) for e, g in zip(expected, got, strict=True)
    )


def case(in_size: int, steps: int, batch: int, hidden: int, rounds: int) -> dict:
    lstm = torch.nn.LSTM(in_size, hidden)
    x = torch.randn(steps, batch, in_size)
    error = max_gradient_error(lstm, x)
    weights = [w.detach().requires_grad_() for w in lstm._flat_weights]
    w_ih, w_hh = (w.detach() for w in weights[:2])
    zeros = x.new_zeros(batch, hidden)
    dy = torch.randn(steps, batch, hidden)
    half = x[:, : batch // 2].contiguous()
    threads = torch.get_num_threads()

    def inference() -> None:
        with torch.no_grad():
            lstm(x)

    def one_thread_half() -> None:
        torch.set_num_threads(1)
        lstm(half)[0].backward(dy[:, : batch // 2])
        torch.set_num_threads(threads)

    first, second = slice(0, batch // 2), slice(batch // 2, batch)
    halves = [(x[:, s].contiguous(), dy[:, s].contiguous()) for s in (first, second)]

    def halves_at_once() -> None:
        start = threading.Barrier(len(halves))

        def work(xs: Tensor, dys: Tensor) -> None:
            torch.set_num_threads(1)  # this thread's own setting
            start.wait()
            lstm(xs)[0].backward(dys)

        workers = [threading.Thread(target=work, args=half) for half in halves]
        for w in workers:
            w.start()
        for w in workers:
            w.join()

    contenders: dict[str, Callable[[], None]] = {
        "onednn-train": lambda: lstm(x),
        "onednn-inference": inference,
        "onednn": lambda: lstm(x)[0].backward(dy),
        "hand": lambda: HandLSTM.apply(x, zeros, zeros, *weights)[0].backward(dy),
        "hand-forward": lambda: HandLSTM.apply(x, zeros, zeros, *weights),
        "hand-products": lambda: products(x, w_ih, w_hh),
        "onednn-half-1-thread": one_thread_half,
        "onednn-halves-at-once": halves_at_once,
    }
    medians = race(contenders, rounds)
    return {
        "shape": {"steps": steps, "batch": batch, "in_size": in_size, "hidden": hidden},
        "hand_max_relative_gradient_error": error,
        "ms": {k: round(v * 1e3, 3) for k, v in medians.items()},
        "ratio_to_onednn": {k: round(v / medians["onednn"], 3) for k, v in medians.items()},
        "workspace_share_of_train_forward": round(
            1 - medians["onednn-inference"] / medians["onednn-train"], 3
        ),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``python benchmarks/stretch.py ARGV``: its exit code (a mistake in ARGV raises
    SystemExit(2)), each error a user can cause one line on stderr."""
    return run_command("stretch.py", lambda: _main(argv))


def _main(argv: Sequence[str] | None) -> None:
    parser = Parser(prog="stretch.py", description=__doc__.splitlines()[0])
    parser.add_argument("--in-sizes", type=at_least(1), nargs="+", default=[1, 200])
    parser.add_argument("--steps", type=at_least(1), default=30)
    args, tuned = parse_common(parser, argv)
    results = [case(n, args.steps, args.batch, args.hidden, args.rounds) for n in args.in_sizes]
    print_report(results, tuned, args)


if __name__ == "__main__":
    sys.exit(main())
