"""The core models: NStepLSTM, NStepBiLSTM, StatefulNStepLSTM, StepLSTM, Forecaster."""

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.utils import prune

import nsteplstm as nl
from nsteplstm.config import Config

LENGTHS = [5, 2, 7, 3, 7, 1]  # unsorted, with a tie and a length-1 sequence
TOL = dict(atol=1e-5, rtol=0)
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


def make_xs(lengths, in_size=3, dtype=torch.float32, requires_grad=False):
    return [torch.randn(n, in_size, dtype=dtype, requires_grad=requires_grad) for n in lengths]


def make_states(module, batch, dtype=torch.float32):
    shape = (module.n_layers * module.n_directions, batch, module.out_size)
    return torch.randn(shape, dtype=dtype), torch.randn(shape, dtype=dtype)


@pytest.mark.parametrize("cls", [nl.NStepLSTM, nl.NStepBiLSTM])
@pytest.mark.parametrize("n_layers", [1, 2, 3])
@pytest.mark.parametrize("given_state", [False, True])
def test_batch_equals_each_sequence_alone(cls, n_layers, given_state):
    torch.manual_seed(n_layers)
    lstm = cls(n_layers, 3, 4, dropout=0.5).eval()  # dropout must not act in eval mode
    xs = make_xs(LENGTHS)
    hx, cx = make_states(lstm, len(xs)) if given_state else (None, None)
    hy, cy, ys = lstm(hx, cx, xs)
    d = lstm.n_directions
    assert hy.shape == cy.shape == (n_layers * d, len(xs), 4)
    assert [tuple(y.shape) for y in ys] == [(n, 4 * d) for n in LENGTHS]
    for i, x in enumerate(xs):
        one = (hx[:, i : i + 1], cx[:, i : i + 1]) if given_state else (None, None)
        h1, c1, (y1,) = lstm(*one, [x])
        torch.testing.assert_close(ys[i], y1, **TOL)
        torch.testing.assert_close(hy[:, i], h1[:, 0], **TOL)
        torch.testing.assert_close(cy[:, i], c1[:, 0], **TOL)


@pytest.mark.parametrize("n_layers", [1, 3])
def test_equals_torch_lstm_on_equal_lengths(n_layers):
    torch.manual_seed(0)
    lstm = nl.NStepLSTM(n_layers, 3, 4).eval()
    reference = torch.nn.LSTM(3, 4, n_layers).eval()
    reference.load_state_dict(lstm.lstm.state_dict())
    x = torch.randn(6, 5, 3)  # (T, B, I)
    hy, cy, ys = lstm(None, None, list(x.unbind(1)))
    y_ref, (h_ref, c_ref) = reference(x)
    torch.testing.assert_close(torch.stack(ys, 1), y_ref, **TOL)
    torch.testing.assert_close(hy, h_ref, **TOL)
    torch.testing.assert_close(cy, c_ref, **TOL)


@pytest.mark.parametrize("cls", [nl.NStepLSTM, nl.NStepBiLSTM])
@pytest.mark.parametrize("n_layers", [1, 3])
def test_one_tensor_equals_the_list_of_its_rows(cls, n_layers):
    torch.manual_seed(n_layers)
    lstm = cls(n_layers, 3, 4)
    x = torch.randn(5, 6, 3, requires_grad=True)  # (B, L, I)
    hx, cx = (s.requires_grad_() for s in make_states(lstm, 5))
    hy, cy, ys = lstm(hx, cx, x)
    assert ys.shape == (5, 6, 4 * lstm.n_directions)
    (ys.square().sum() + hy.sum() + cy.sum()).backward()
    grads = [t.grad.clone() for t in (x, hx, cx, *lstm.parameters())]
    for t in (x, hx, cx, *lstm.parameters()):
        t.grad = None
    hy_l, cy_l, ys_l = lstm(hx, cx, list(x.unbind(0)))
    (torch.stack(ys_l).square().sum() + hy_l.sum() + cy_l.sum()).backward()
    torch.testing.assert_close(ys, torch.stack(ys_l), **TOL)
    torch.testing.assert_close(hy, hy_l, **TOL)
    torch.testing.assert_close(cy, cy_l, **TOL)
    for g, t in zip(grads, (x, hx, cx, *lstm.parameters()), strict=True):
        torch.testing.assert_close(g, t.grad, **TOL)


def test_one_tensor_through_forecaster_and_stateful_wrapper():
    torch.manual_seed(4)
    model = nl.Forecaster(2, 3, 8, 2, dropout=0.0).eval()
    x = torch.randn(4, 5, 3)  # (B, L, I)
    torch.testing.assert_close(model(x), torch.stack(model(list(x))), **TOL)
    st_ = nl.StatefulNStepLSTM(1, 3, 4)
    first, second = st_(x[:, :2]), st_(x[:, 2:])  # (B, 2, 4), (B, 3, 4)
    _, _, whole = st_.lstm(None, None, x)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole, **TOL)
    with pytest.raises(ValueError, match="batch of 3 sequences, but the carried state is for 4"):
        st_(x[:3])
    with pytest.raises(ValueError, match=r"xs as one tensor must have shape .*, got \(\)"):
        st_(torch.tensor(1.0))


def copy_to_step_stack(nstep: nl.NStepLSTM, stack: nl.StepLSTMStack) -> None:
    with torch.no_grad():
        for k, cell in enumerate(stack.cells):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(cell, name).copy_(getattr(nstep.lstm, f"{name}_l{k}"))


@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_nstep_equals_step_cells_with_same_weights(n_layers):
    torch.manual_seed(1)
    nstep = nl.Forecaster(n_layers, 3, 8, 2, dropout=0.0, cell="nstep").eval()
    step = nl.Forecaster(n_layers, 3, 8, 2, dropout=0.0, cell="step").eval()
    copy_to_step_stack(nstep.lstm, step.lstm)
    step.head.load_state_dict(nstep.head.state_dict())
    xs = make_xs(LENGTHS)
    for a, b in zip(nstep(xs), step(xs), strict=True):
        torch.testing.assert_close(a, b, **TOL)
    _, _, hidden = nstep.lstm(None, None, xs)
    for a, b in zip(hidden, step.lstm(xs), strict=True):  # the stack alone, on a list
        torch.testing.assert_close(a, b, **TOL)
    dense = torch.randn(4, 6, 3)
    torch.testing.assert_close(step.lstm(dense), nstep.lstm(None, None, dense)[2], **TOL)


def test_bilstm_backward_half_is_nstep_on_reversed_sequences():
    torch.manual_seed(2)
    bi = nl.NStepBiLSTM(1, 3, 4).eval()
    uni = nl.NStepLSTM(1, 3, 4).eval()
    reverse = {k: v for k, v in bi.lstm.state_dict().items() if k.endswith("_reverse")}
    uni.lstm.load_state_dict({k.replace("_reverse", ""): v for k, v in reverse.items()})
    xs = make_xs(LENGTHS)
    hy, _, ys = bi(None, None, xs)
    uni_hy, _, ys_rev = uni(None, None, [x.flip(0) for x in xs])
    for y, y_rev in zip(ys, ys_rev, strict=True):
        torch.testing.assert_close(y[:, 4:], y_rev.flip(0), **TOL)
    torch.testing.assert_close(hy[1], uni_hy[0], **TOL)


def test_stacked_bilstm_equals_single_layers_chained():
    torch.manual_seed(12)
    bi = nl.NStepBiLSTM(2, 3, 4).eval()
    first, second = nl.NStepBiLSTM(1, 3, 4).eval(), nl.NStepBiLSTM(1, 8, 4).eval()
    state = bi.lstm.state_dict()
    for k, layer in enumerate((first, second)):
        layer.lstm.load_state_dict(
            {n.replace(f"_l{k}", "_l0"): v for n, v in state.items() if f"_l{k}" in n}
        )
    xs = make_xs(LENGTHS)
    hx, cx = make_states(bi, len(xs))
    hy, cy, ys = bi(hx, cx, xs)
    h0, c0, mid = first(hx[:2], cx[:2], xs)
    h1, c1, out = second(hx[2:], cx[2:], list(mid))
    torch.testing.assert_close(hy, torch.cat([h0, h1]), **TOL)
    torch.testing.assert_close(cy, torch.cat([c0, c1]), **TOL)
    for a, b in zip(ys, out, strict=True):
        torch.testing.assert_close(a, b, **TOL)


def test_gradcheck_float64_variable_lengths():
    torch.manual_seed(3)
    lstm = nl.NStepLSTM(2, 2, 3).double().eval()
    xs = make_xs([3, 1, 4], in_size=2, dtype=torch.float64, requires_grad=True)
    hx, cx = (s.requires_grad_() for s in make_states(lstm, 3, dtype=torch.float64))
    params = list(lstm.parameters())

    def f(*args):
        *xs_, hx_, cx_ = args[: len(xs) + 2]
        hy, cy, ys = lstm(hx_, cx_, list(xs_))
        return (hy, cy, *ys)

    assert torch.autograd.gradcheck(f, (*xs, hx, cx), eps=1e-6, atol=1e-5)
    # And through the weights, with a scalar loss.
    hy, cy, ys = lstm(hx, cx, xs)
    loss = sum(y.sum() for y in ys) + hy.sum() + cy.sum()
    grads = torch.autograd.grad(loss, params)
    assert all(g.abs().sum() > 0 for g in grads)


def test_gradients_reach_inputs_states_and_weights():
    torch.manual_seed(4)
    lstm = nl.NStepBiLSTM(2, 3, 4)
    xs = make_xs(LENGTHS, requires_grad=True)
    hx, cx = (s.requires_grad_() for s in make_states(lstm, len(xs)))
    hy, cy, ys = lstm(hx, cx, xs)
    (sum(y.square().sum() for y in ys) + hy.sum() + cy.sum()).backward()
    for t in [*xs, hx, cx, *lstm.parameters()]:
        assert t.grad is not None and t.grad.abs().sum() > 0


def _outputs_and_grads(lstm, xs):
    """``(hy, cy, *ys)`` and the gradients of one scalar of them w.r.t. the weights."""
    hy, cy, ys = lstm(None, None, xs)
    loss = hy.square().sum() + cy.sum() + sum(y.sum() for y in ys)
    return (hy, cy, *ys), torch.autograd.grad(loss, list(lstm.parameters()))


@pytest.mark.parametrize("cls", [nl.NStepLSTM, nl.NStepBiLSTM])
@pytest.mark.parametrize("lengths", [LENGTHS, (6, 6, 6)])
def test_functional_call_uses_and_differentiates_the_weights_it_is_given(cls, lengths):
    # torch.func.functional_call swaps weights in without attribute assignment: they
    # once went unseen (the module's own weights ran and got the gradients).
    torch.manual_seed(5)
    lstm, other = cls(2, 3, 4).eval(), cls(2, 3, 4).eval()
    xs = make_xs(lengths)
    given = {k: v.detach().clone().requires_grad_() for k, v in other.named_parameters()}
    hy, cy, ys = torch.func.functional_call(lstm, given, (None, None, xs))
    loss = hy.square().sum() + cy.sum() + sum(y.sum() for y in ys)
    grads = torch.autograd.grad(loss, list(given.values()))
    want, want_grads = _outputs_and_grads(other, xs)
    for a, b in zip((hy, cy, *ys, *grads), (*want, *want_grads), strict=True):
        torch.testing.assert_close(a, b, **TOL)
    # torch.func.grad too, where a layout's host arrays once were functorch tensors
    loss_of = lambda w: torch.func.functional_call(lstm, w, (None, None, xs))[0].sum()  # noqa: E731
    func_grads = torch.func.grad(loss_of)({k: v.detach() for k, v in given.items()})
    hy_grads = torch.autograd.grad(other(None, None, xs)[0].sum(), list(other.parameters()))
    for a, b in zip(func_grads.values(), hy_grads, strict=True):
        torch.testing.assert_close(a, b, **TOL)


def test_a_parametrization_on_the_weights_is_used_and_trained():
    torch.manual_seed(6)
    lstm = nl.NStepLSTM(1, 3, 4).eval()
    torch.nn.utils.parametrizations.weight_norm(lstm.lstm, "weight_hh_l0")
    with torch.no_grad():
        lstm.lstm.parametrizations.weight_hh_l0.original0.mul_(3.0)  # the norms: w_hh x 3
    plain = nl.NStepLSTM(1, 3, 4).eval()
    with torch.no_grad():
        for name, p in plain.named_parameters():
            p.copy_(getattr(lstm.lstm, name.removeprefix("lstm.")))  # the effective weights
    xs = make_xs(LENGTHS)
    got, want = lstm(None, None, xs), plain(None, None, xs)
    torch.testing.assert_close(got[0], want[0], **TOL)
    got[0].sum().backward()
    assert lstm.lstm.parametrizations.weight_hh_l0.original0.grad.abs().sum() > 0


def test_hooks_on_the_parameter_holder_are_refused_not_skipped():
    lstm = nl.NStepLSTM(1, 3, 4)
    prune.l1_unstructured(lstm.lstm, "weight_hh_l0", amount=0.5)
    with pytest.raises(nl.InputError, match=r"NStepLSTM.lstm has forward hooks .*which never run"):
        lstm(None, None, make_xs(LENGTHS))


@pytest.mark.parametrize("cell", ["nstep", "step"])
@pytest.mark.parametrize("dense", [False, True], ids=["list", "tensor"])
def test_hooks_on_a_forecasters_lstm_run(cell, dense):
    """Forecaster ran its LSTM's forward_packed, past the module call: hooks on
    model.lstm never ran, without a word."""
    torch.manual_seed(7)
    model = nl.Forecaster(2, 3, 4, 2, dropout=0.0, cell=cell)
    xs = torch.randn(3, 5, 3) if dense else make_xs(LENGTHS)
    plain = model(xs)
    seen = []

    def doubled(module, args, out):  # the LSTM's outputs, doubled
        seen.append("forward")
        return (
            (*out[:2], tuple(2 * y for y in out[2]))
            if cell == "nstep"
            else tuple(2 * y for y in out)
        )

    handles = [
        model.lstm.register_forward_pre_hook(lambda module, args: seen.append("pre")),
        model.lstm.register_forward_hook(doubled),
    ]
    got = model(xs)
    assert seen == ["pre", "forward"]
    bias = model.head.bias
    for g, p in zip(got, plain, strict=True):  # head(2h) = 2 head(h) - bias
        torch.testing.assert_close(g, 2 * p - bias, **TOL)
    for h in handles:
        h.remove()
    for g, p in zip(model(xs), plain, strict=True):
        torch.testing.assert_close(g, p, rtol=0, atol=0)


def test_torch_compile_trains_the_same_as_eager():
    """Compiled with gradients on, torch 2.13's AOT autograd failed on the fused LSTM
    kernel ("expected all tensors_saved_with_vc_check to be Tensors"): the LSTM now runs
    eagerly inside a compiled model (a graph break), the rest compiled."""
    torch.manual_seed(8)
    model = nl.Forecaster(2, 1, 8, 1, dropout=0.3)
    twin = nl.Forecaster(2, 1, 8, 1, dropout=0.3)
    twin.load_state_dict(model.state_dict())
    compiled = torch.compile(twin, backend="aot_eager")
    xs, dense = make_xs([7, 3, 5], in_size=1), torch.randn(4, 6, 1)
    results = []
    for m in (model, compiled):
        torch.manual_seed(9)  # the same dropout masks
        loss = sum(y.square().sum() for y in m(xs)) + m(dense).square().sum()
        loss.backward()
        results.append([loss.detach(), *(p.grad for p in m.parameters())])
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, **TOL)
    torch._dynamo.reset()


AUTOCAST = [("cpu", torch.bfloat16), pytest.param("cuda", torch.float16, marks=cuda)]


@pytest.mark.parametrize(("device", "dtype"), AUTOCAST, ids=["cpu", "cuda"])
@pytest.mark.parametrize("cls", [nl.NStepLSTM, nl.NStepBiLSTM])
def test_mixed_lengths_run_under_autocast(cls, device, dtype):
    torch.manual_seed(7)
    lstm = cls(2, 3, 8).to(device)
    xs = [x.to(device) for x in make_xs((5, 2, 7, 7, 3, 1, 30, 29))]  # ends inside segments
    want = lstm(None, None, xs)
    with torch.autocast(device, dtype=dtype):
        got = lstm(None, None, xs)
        sum(y.float().sum() for y in got[2]).backward()
        dense = lstm(None, None, torch.randn(2, 4, 3, device=device))  # as torch.nn.LSTM gives
    for a, b in zip((*got[:2], *got[2]), (*want[:2], *want[2]), strict=True):
        torch.testing.assert_close(a.float(), b, atol=2e-2, rtol=0)  # 16-bit rounding
    # On the CPU the final states came back in float32 from a list, 16-bit from a tensor.
    assert {t.dtype for t in (*got[:2], *got[2], *dense)} == {dtype}
    assert all(p.grad.abs().sum() > 0 for p in lstm.parameters())
    dropped = cls(3, 3, 8, dropout=0.3).to(device).train()  # one call per layer, own masks
    with torch.autocast(device, dtype=dtype):
        hy, cy, ys = dropped(None, None, xs)
        (hy.float().sum() + cy.float().sum() + sum(y.float().sum() for y in ys)).backward()
    assert {t.dtype for t in (hy, cy, *ys)} == {dtype}
    assert all(p.grad.isfinite().all() and p.grad.abs().sum() > 0 for p in dropped.parameters())


def run_once(seed):
    nl.seed_everything(seed)
    model = nl.Forecaster(2, 3, 16, 1, dropout=0.3)  # train mode: dropout draws from the seed
    xs = make_xs(LENGTHS)
    loss = sum(y.square().sum() for y in model(xs))
    loss.backward()
    return [y.detach() for y in model(xs)], [p.grad.clone() for p in model.parameters()]


def test_same_seed_gives_bit_identical_outputs_and_gradients():
    (ys_a, g_a), (ys_b, g_b) = run_once(7), run_once(7)
    assert all(torch.equal(a, b) for a, b in zip(ys_a, ys_b, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(g_a, g_b, strict=True))
    ys_c, _ = run_once(8)
    assert not all(torch.equal(a, c) for a, c in zip(ys_a, ys_c, strict=True))


def test_dropout_acts_in_training_only_and_not_on_first_layer_input():
    torch.manual_seed(5)
    xs = make_xs([4, 4])
    one = nl.NStepLSTM(1, 3, 4, dropout=0.9).train()
    # One layer: nothing to drop (only the first layer's input, which is never dropped).
    assert all(
        torch.equal(a, b)
        for a, b in zip(one(None, None, xs)[2], one(None, None, xs)[2], strict=True)
    )
    two = nl.NStepLSTM(2, 3, 4, dropout=0.9).train()
    assert not torch.equal(two(None, None, xs)[2][0], two(None, None, xs)[2][0])
    two.eval()
    assert torch.equal(two(None, None, xs)[2][0], two(None, None, xs)[2][0])


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=cuda)])
def test_dropout_keeps_one_minus_ratio_scaled_and_passes_the_mask_back(device):
    torch.manual_seed(15)
    x = (torch.rand(400, 500, device=device) + 0.5).requires_grad_()  # a zero output: dropped
    y = nl.functional.dropout(x, 0.3)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.005  # 200,000 draws: sd 0.001
    torch.testing.assert_close(y[kept], x[kept] / 0.7)
    y.sum().backward()
    torch.testing.assert_close(x.grad, kept.float() / 0.7)
    assert nl.functional.dropout(x, 0.0) is x


def test_the_cpu_dropout_mask_is_rand_at_least_ratio_on_every_processor():
    # On Intel processors the mask came from bernoulli_ (MKL), 2.4x slower there, and
    # one seed gave other masks than on AMD ones.
    x = torch.ones(30, 100, 200)
    torch.manual_seed(3)
    kept = torch.rand_like(x) >= 0.3
    torch.manual_seed(3)
    assert torch.equal(nl.functional.dropout(x, 0.3) != 0, kept)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=cuda)])
@pytest.mark.parametrize("cls", [nl.NStepLSTM, nl.NStepBiLSTM])
@pytest.mark.parametrize("lengths", [[4, 4, 4], LENGTHS])
def test_training_dropout_runs_between_layers_with_the_same_draws_as_chained_layers(
    cls, lengths, device
):
    torch.manual_seed(16)
    stack = cls(3, 3, 4, dropout=0.4).train().to(device)
    layers = [cls(1, 3, 4)] + [cls(1, 4 * stack.n_directions, 4) for _ in "ab"]
    layers = [layer.train().to(device) for layer in layers]
    state = stack.lstm.state_dict()
    for k, layer in enumerate(layers):
        layer.lstm.load_state_dict(
            {n.replace(f"_l{k}", "_l0"): v for n, v in state.items() if f"_l{k}" in n}
        )
    xs = [x.to(device) for x in make_xs(lengths)]
    hx, cx = (s.to(device) for s in make_states(stack, len(xs)))
    torch.manual_seed(17)  # the CPU's and every CUDA device's generator
    hy, cy, ys = stack(hx, cx, xs)
    torch.manual_seed(17)
    d, layout = stack.n_directions, nl.packing.PackedLayout(lengths, device)
    hs, cs, inputs = [], [], xs
    for k, layer in enumerate(layers):
        if k > 0:  # the same draws, in the same order, as the stack makes
            inputs = layout.unpack(nl.functional.dropout(layout.pack(list(inputs)), 0.4))
        h, c, inputs = layer(hx[d * k : d * k + d], cx[d * k : d * k + d], list(inputs))
        hs.append(h)
        cs.append(c)
    tol = TOL if device == "cpu" else dict(atol=1e-4, rtol=0)  # cuDNN's own algorithm choice
    torch.testing.assert_close(hy, torch.cat(hs), **tol)
    torch.testing.assert_close(cy, torch.cat(cs), **tol)
    for a, b in zip(ys, inputs, strict=True):
        torch.testing.assert_close(a, b, **tol)


def test_stateful_two_calls_equal_one_call_over_concatenation():
    torch.manual_seed(6)
    st_ = nl.StatefulNStepLSTM(2, 3, 4).eval()
    first, second = make_xs([3, 5, 2]), make_xs([4, 1, 6])
    ys1 = st_(first)
    ys2 = st_(second)
    _, _, whole = st_.lstm(None, None, [torch.cat(p) for p in zip(first, second, strict=True)])
    for a, b, w in zip(ys1, ys2, whole, strict=True):
        torch.testing.assert_close(torch.cat([a, b]), w, **TOL)


def test_stateful_batch_change_needs_reset_and_detach_cuts_graph():
    st_ = nl.StatefulNStepLSTM(1, 3, 4)
    st_(make_xs([2, 3]))
    with pytest.raises(ValueError, match="batch of 3 sequences, but the carried state is for 2"):
        st_(make_xs([2, 3, 4]))
    with pytest.raises(ValueError, match="non-empty list or tuple .* got an empty one"):
        st_([])
    st_.detach_state()
    assert st_.h.grad_fn is None and st_.c.grad_fn is None
    st_.reset_state()
    assert len(st_(make_xs([2, 3, 4]))) == 3
    assert "h" not in st_.state_dict()  # state is not saved with the weights


def test_step_lstm_shrinking_and_growing_batch():
    torch.manual_seed(7)
    cell = nl.StepLSTM(3, 4)
    reference = torch.nn.LSTMCell(3, 4)
    reference.load_state_dict(cell.state_dict())
    x0, x1, x2 = torch.randn(3, 3), torch.randn(2, 3), torch.randn(4, 3)
    h0 = cell(x0)
    rh0, rc0 = reference(x0)
    torch.testing.assert_close(h0, rh0, **TOL)
    h1 = cell(x1)  # only the first two rows advance
    rh1, rc1 = reference(x1, (rh0[:2], rc0[:2]))
    torch.testing.assert_close(h1, rh1, **TOL)
    torch.testing.assert_close(cell.h[2], rh0[2], **TOL)  # the third row kept its state
    torch.testing.assert_close(cell.c[2], rc0[2], **TOL)
    h2 = cell(x2)  # a fourth row appears and starts from zeros
    state_h = torch.cat([rh1, rh0[2:], torch.zeros(1, 4)])
    state_c = torch.cat([rc1, rc0[2:], torch.zeros(1, 4)])
    rh2, _ = reference(x2, (state_h, state_c))
    torch.testing.assert_close(h2, rh2, **TOL)
    cell.reset_state()
    torch.testing.assert_close(cell(x0), rh0, **TOL)
    with pytest.raises(nl.InputError, match="x must be torch.float32 on cpu .* got torch.float64"):
        cell(x0.double())


def test_forecaster_config_head_init_and_stateless_calls():
    torch.manual_seed(8)
    model = nl.Forecaster(n_layers=2, n_in=1, n_hidden=200, n_out=1, dropout=0.3, cell="nstep")
    assert model.config == dict(
        n_layers=2, n_in=1, n_hidden=200, n_out=1, dropout=0.3, cell="nstep"
    )
    assert abs(model.head.weight.std().item() - 0.01) < 0.003
    assert torch.equal(model.head.bias, torch.zeros(1))
    model.eval()
    xs = make_xs([5, 3], in_size=1)
    first, second = model(xs), model(xs)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert [tuple(y.shape) for y in first] == [(5, 1), (3, 1)]


def test_module_moves_with_to():
    st_ = nl.StatefulNStepLSTM(1, 3, 4)
    st_(make_xs([2, 2]))
    st_.to(torch.float64)
    assert st_.h.dtype == torch.float64 and st_.lstm.lstm.weight_ih_l0.dtype == torch.float64


BAD_CALLS = [
    ("empty xs", lambda m: m(None, None, []), "non-empty list or tuple"),
    ("not a list", lambda m: m(None, None, {"x": 1}), "non-empty list or tuple .* got dict"),
    (
        "2-D tensor",
        lambda m: m(None, None, torch.zeros(2, 3)),
        r"\(B >= 1, L >= 1, 3\), got \(2, 3\)",
    ),
    ("empty tensor", lambda m: m(None, None, torch.zeros(2, 0, 3)), r"got \(2, 0, 3\)"),
    ("tensor features", lambda m: m(None, None, torch.zeros(2, 4, 5)), r"got \(2, 4, 5\)"),
    (
        "tensor dtype",
        lambda m: m(None, None, torch.zeros(2, 4, 3).double()),
        "xs must be torch.float32",
    ),
    (
        "tensor hx batch",
        lambda m: m(torch.zeros(2, 3, 4), None, torch.zeros(2, 4, 3)),
        r"hx must be None or a tensor of shape \(2, 2, 4\)",
    ),
    ("zero length", lambda m: m(None, None, [torch.zeros(0, 3)]), r"xs\[0\] must have shape"),
    ("feature size", lambda m: m(None, None, [torch.zeros(2, 5)]), r"\(L >= 1, 3\), got \(2, 5\)"),
    ("1-D input", lambda m: m(None, None, [torch.zeros(3)]), r"got \(3,\)"),
    (
        "not a tensor",  # with what makes one of it
        lambda m: m(None, None, [[1.0, 2.0, 3.0]]),
        r"must be a tensor, got list \(torch.as_tensor\(x, dtype=torch.float32\) makes one\)$",
    ),
    (
        "dtype",
        lambda m: m(None, None, [torch.zeros(2, 3, dtype=torch.float64)]),
        r"got torch.float64 on cpu \(.to\(dtype=torch.float32, device='cpu'\) converts it\)$",
    ),
    (
        "hx shape",
        lambda m: m(torch.zeros(1, 1, 4), None, [torch.zeros(2, 3)]),
        r"hx must be None or a tensor of shape \(2, 1, 4\), got tensor of shape \(1, 1, 4\)",
    ),
    (
        "cx dtype",
        lambda m: m(None, torch.zeros(2, 1, 4).double(), [torch.zeros(2, 3)]),
        "cx must be torch.float32",
    ),
]


@pytest.mark.parametrize("name,call,message", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_arguments_raise_value_error_saying_expected_and_got(name, call, message):
    with pytest.raises(ValueError, match=message):
        call(nl.NStepLSTM(2, 3, 4))


@pytest.mark.parametrize(
    "args,message",
    [
        ((0, 3, 4), "n_layers must be an integer >= 1, got 0"),
        ((1, 3, 4, 1.0), r"dropout must be a number in \[0, 1\), got 1.0"),
        ((1, 3.5, 4), "in_size must be an integer >= 1, got 3.5"),
    ],
)
def test_bad_constructor_arguments(args, message):
    with pytest.raises(nl.InputError, match=message):
        nl.NStepLSTM(*args)


@pytest.mark.parametrize("dropout", ["a", None, [0.1], 1.5])
def test_forecaster_checks_dropout_before_using_it(dropout):
    with pytest.raises(nl.InputError, match=r"dropout must be a number in \[0, 1\), got"):
        nl.Forecaster(dropout=dropout)


@settings(max_examples=150, deadline=None)
@given(
    lengths=st.lists(st.integers(-1, 4), min_size=0, max_size=4),
    in_size=st.integers(0, 4),
    hx_shape=st.one_of(
        st.none(), st.tuples(st.integers(0, 3), st.integers(0, 5), st.integers(0, 5))
    ),
    dtype=st.sampled_from([torch.float32, torch.float64, torch.int64]),
)
def test_argument_checking_never_crashes_otherwise(lengths, in_size, hx_shape, dtype):
    lstm = nl.NStepLSTM(2, 3, 4)
    xs = [
        torch.zeros(max(n, 0), in_size, dtype=dtype) if n >= 0 else torch.zeros(2) for n in lengths
    ]
    hx = None if hx_shape is None else torch.zeros(hx_shape)
    try:
        hy, _, ys = lstm(hx, None, xs)
    except nl.InputError as e:
        assert str(e) and "\n" not in str(e)
    else:
        assert len(ys) == len(xs) and hy.shape == (2, len(xs), 4)


@settings(max_examples=100, deadline=None)
@given(
    shape=st.lists(st.integers(0, 4), min_size=0, max_size=4),
    hx_batch=st.one_of(st.none(), st.integers(0, 5)),
    dtype=st.sampled_from([torch.float32, torch.float64, torch.int64]),
)
def test_one_tensor_argument_checking_never_crashes_otherwise(shape, hx_batch, dtype):
    lstm = nl.NStepLSTM(2, 3, 4)
    x = torch.zeros(shape, dtype=dtype)
    hx = None if hx_batch is None else torch.zeros(2, hx_batch, 4)
    try:
        hy, _, ys = lstm(hx, None, x)
    except nl.InputError as e:
        assert str(e) and "\n" not in str(e)
    else:
        assert ys.shape == (*shape[:2], 4) and hy.shape == (2, shape[0], 4)


def test_cuda_without_an_index_is_the_current_device(monkeypatch: pytest.MonkeyPatch) -> None:
    # "cuda" was cuda:0 even after torch.cuda.set_device(1), where torch and a
    # PackedLayout take cuda:1. Two devices are faked: nothing here touches CUDA.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    for spec in ("cuda", "auto", None, torch.device("cuda"), "CUDA"):
        assert nl.resolve_device(spec) == torch.device("cuda", 1), spec
    for spec in ("cuda:0", 0, "0", torch.device("cuda", 0)):
        assert nl.resolve_device(spec) == torch.device("cuda", 0), spec
    assert nl.resolve_device(1) == torch.device("cuda", 1)
    with pytest.raises(ValueError, match="'cuda:2' was asked for, but this machine has 2 CUDA"):
        nl.resolve_device("cuda:2")


def test_resolve_device():
    assert nl.resolve_device(-1) == torch.device("cpu")
    assert nl.resolve_device("-1") == torch.device("cpu")
    assert nl.resolve_device("cpu") == torch.device("cpu")
    # torch's own names of the CPU, and what Config stores for them
    assert (
        nl.resolve_device("cpu:0")
        == nl.resolve_device(torch.device("cpu", 0))
        == torch.device("cpu")
    )
    assert Config.merged(None, {"device": "CPU:0"}).device == "cpu"
    with pytest.raises(ValueError, match="'cpu:1' is not a device"):
        nl.resolve_device("cpu:1")
    expected_auto = "cuda" if torch.cuda.is_available() else "cpu"
    assert nl.resolve_device("auto").type == expected_auto
    with pytest.raises(ValueError, match="is not a device"):
        nl.resolve_device("tpu")
    for spec in (-2, "-7"):  # only -1 means the CPU, as Config says (bench took -2 for it)
        with pytest.raises(ValueError, match="is not a device"):
            nl.resolve_device(spec)
    if not torch.cuda.is_available():
        for spec in (0, "cuda", "cuda:1"):
            with pytest.raises(ValueError, match=rf"device '?{spec}'? was asked for.*no CUDA"):
                nl.resolve_device(spec)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_the_cuda_paths_packed_call_matches_the_cpu_path(bidirectional):
    """CUDA runs n_step_lstm as one packed call (functional.packed_lstm); the same call
    runs on the CPU, so its arguments and result order are checked here, GPU or not."""
    torch.manual_seed(11)
    cls = nl.NStepBiLSTM if bidirectional else nl.NStepLSTM
    lstm = cls(2, 3, 4).eval()
    xs = make_xs([5, 3, 6, 1, 3])
    layout = nl.PackedLayout([len(x) for x in xs])
    data = layout.pack(xs)  # (N, 3)
    hx, cx = make_states(lstm, len(xs))
    hx_s, cx_s = layout.sort_states(hx), layout.sort_states(cx)
    args = (lstm.weights, 2, 0.0, False, bidirectional)
    expected = nl.functional.n_step_lstm(data, layout, hx_s, cx_s, *args)
    got = nl.functional.packed_lstm(data, layout, hx_s, cx_s, *args)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, **TOL)


class _KernelCalls:
    """Stands in for ``torch._VF`` in nsteplstm.functional: records each fused LSTM call's
    arguments, then runs it."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def lstm(self, *args):
        self.calls.append(args)
        return torch._VF.lstm(*args)


@pytest.mark.parametrize("lengths", [[4, 4, 4], [5, 2, 4]])  # one dense call; one packed call
def test_the_fused_calls_get_contiguous_states_and_no_dropout_to_skip(monkeypatch, lengths):
    # cuDNN refuses strided states ("rnn: hx is not contiguous") where the CPU takes them,
    # and given a dropout ratio it builds its dropout state (a draw from the CUDA
    # generator) even for one layer, where there is nothing to drop.
    calls = _KernelCalls()
    monkeypatch.setattr(nl.functional, "_VF", calls)
    torch.manual_seed(14)
    lstm = nl.NStepLSTM(1, 3, 4, dropout=0.5).train()
    layout = nl.PackedLayout(lengths)
    data = torch.randn(sum(lengths), 3)
    hx = torch.randn(1, 4, 3).transpose(1, 2)  # (1, B, H), not contiguous
    cx = torch.randn(1, 4, 3).transpose(1, 2)
    assert not hx.is_contiguous() and not cx.is_contiguous()
    out, hy, cy = lstm.forward_packed(data, layout, hx, cx)
    _, want_hy, want_cy = lstm.forward_packed(data, layout, hx.contiguous(), cx.contiguous())
    torch.testing.assert_close((hy, cy), (want_hy, want_cy), atol=0, rtol=0)
    assert calls.calls, "no fused call was made"
    for args in calls.calls:
        states = next(a for a in args if isinstance(a, tuple))
        assert all(t.is_contiguous() for t in states)
        floats = [a for a in args if isinstance(a, float)]
        assert floats == [0.0], f"dropout ratio handed to the kernel: {floats}"


def test_the_per_layer_weight_warning_is_silenced_on_cuda_only():
    import warnings

    from nsteplstm.functional import _one_layer_of_flat_weights

    text = "RNN module weights are not part of single contiguous chunk of memory. ..."
    for on_cuda, expected in ((True, ["other"]), (False, [text, "other"])):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            with _one_layer_of_flat_weights(on_cuda):
                warnings.warn(text, UserWarning, stacklevel=1)
                warnings.warn("other", UserWarning, stacklevel=1)
            warnings.warn("after", UserWarning, stacklevel=1)  # the filter is gone again
        assert [str(w.message) for w in seen] == [*expected, "after"]


@cuda
def test_cuda_takes_strided_states_and_trains_layers_without_weight_warnings():
    import warnings

    nl.seed_everything(15)
    lstm = nl.NStepLSTM(2, 3, 4, dropout=0.3).to("cuda").train()
    xs = [x.cuda() for x in make_xs(LENGTHS)]
    hx = torch.randn(len(xs), 2, 4, device="cuda").transpose(0, 1)  # (L, B, H), strided
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        hy, cy, ys = lstm(hx, hx, xs)
        (hy.sum() + cy.sum() + sum(y.sum() for y in ys)).backward()
    messages = [str(w.message) for w in seen]
    assert not [m for m in messages if "contiguous chunk" in m or "CuBLAS" in m], messages
    assert all(p.grad is not None and p.grad.isfinite().all() for p in lstm.parameters())


@cuda
@pytest.mark.parametrize("cls", [nl.NStepLSTM, nl.NStepBiLSTM])
def test_cuda_matches_cpu(cls):
    nl.seed_everything(9)  # also float32 math in cuDNN (no TF32), as on the CPU
    lstm = cls(2, 3, 4).eval()
    xs = make_xs(LENGTHS)
    hx, cx = make_states(lstm, len(xs))
    hy, cy, ys = lstm(hx, cx, xs)
    gpu = cls(2, 3, 4).eval().to("cuda")
    gpu.load_state_dict(lstm.state_dict())
    g_hy, g_cy, g_ys = gpu(hx.cuda(), cx.cuda(), [x.cuda() for x in xs])
    torch.testing.assert_close(g_hy.cpu(), hy, atol=1e-4, rtol=0)
    torch.testing.assert_close(g_cy.cpu(), cy, atol=1e-4, rtol=0)
    for a, b in zip(g_ys, ys, strict=True):
        torch.testing.assert_close(a.cpu(), b, atol=1e-4, rtol=0)
    x = torch.randn(5, 6, 3)  # (B, L, I): the one-tensor form
    g_hy, _, g_y = gpu(hx[:, :5].cuda(), cx[:, :5].cuda(), x.cuda())
    hy, _, y = lstm(hx[:, :5], cx[:, :5], x)
    torch.testing.assert_close(g_y.cpu(), y, atol=1e-4, rtol=0)
    torch.testing.assert_close(g_hy.cpu(), hy, atol=1e-4, rtol=0)


def _gradients_on(device: str, cell: str) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The loss and weight gradients of one batch of mixed lengths, 2 layers, on
    ``device`` (no dropout: the devices draw their masks from different generators)."""
    nl.seed_everything(12)
    model = nl.Forecaster(2, 3, 8, 3, dropout=0.0, cell=cell)
    torch.nn.init.normal_(model.head.weight)  # std 1, not the article's 0.01: O(1) numbers
    xs = make_xs(LENGTHS)
    model.to(device)
    loss = sum(y.square().sum() for y in model([x.to(device) for x in xs]))
    loss.backward()
    return loss.detach().cpu(), [p.grad.cpu() for p in model.parameters()]


def _forecasts_on(device: str, cell: str, mode: str) -> np.ndarray:
    from nsteplstm.forecast import forecast

    nl.seed_everything(13)
    model = nl.Forecaster(2, 1, 8, 1, cell=cell)
    torch.nn.init.normal_(model.head.weight)  # O(1) forecasts, not 0.001
    model.to(device)
    series = np.sin(np.arange(60) / 3).astype(np.float32)
    return forecast(model, series, [0, 7], 10, 25, mode)  # (2, 25, 1)


@cuda
@pytest.mark.parametrize("cell", ["nstep", "step"])
def test_cuda_training_gradients_and_forecasts_match_cpu(cell):
    loss, grads = _gradients_on("cuda", cell)
    want_loss, want_grads = _gradients_on("cpu", cell)
    torch.testing.assert_close(loss, want_loss, atol=0, rtol=1e-5)
    for got, want in zip(grads, want_grads, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    for mode in ("window", "stream"):
        got, want = _forecasts_on("cuda", cell, mode), _forecasts_on("cpu", cell, mode)
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0, err_msg=mode)


@cuda
def test_cuda_stateful_state_moves_and_mixed_devices_rejected():
    st_ = nl.StatefulNStepLSTM(1, 3, 4).to("cuda")
    st_([x.cuda() for x in make_xs([2, 3])])
    assert st_.h.is_cuda
    st_.to("cpu")
    assert not st_.h.is_cuda
    with pytest.raises(ValueError, match="on cpu"):
        st_.lstm(None, None, [torch.zeros(2, 3, device="cuda")])


@pytest.mark.parametrize("n_layers", [1, 2])
def test_merged_segments_give_exact_outputs_and_gradients(n_layers):
    torch.manual_seed(10)
    model = nl.Forecaster(n_layers, 3, 8, 2, dropout=0.0)
    lengths = torch.randint(3, 40, (25,)).tolist()
    layout = nl.PackedLayout(lengths)
    cover = layout.merged_segments(32.0)
    assert len(cover) < len(layout.segments)  # some segments were merged
    assert [t1 for _, t1, _ in cover][-1] == max(lengths)
    assert all(a[1] == b[0] for a, b in zip(cover, cover[1:], strict=False))
    xs = make_xs(lengths)
    merged = model(xs)  # Forecaster: outputs only, merged padded segments
    _, _, hidden = model.lstm(None, None, xs)  # exact segments with final states
    exact = [model.head(h) for h in hidden]
    for a, b in zip(merged, exact, strict=True):
        torch.testing.assert_close(a, b, **TOL)
    grads = [
        torch.autograd.grad(sum(y.square().sum() for y in ys), model.parameters())
        for ys in (merged, exact)
    ]
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("cls", [nl.NStepLSTM, nl.NStepBiLSTM])
@pytest.mark.parametrize("n_layers", [1, 2])
def test_outputs_only_means_no_states_and_the_same_outputs(cls, n_layers):
    torch.manual_seed(11)
    lstm = cls(n_layers, 3, 4).eval()
    layout = nl.PackedLayout(LENGTHS)
    data = layout.pack(make_xs(LENGTHS))
    out, hy, cy = lstm.forward_packed(data, layout, final_states=False)
    assert hy is None and cy is None  # as documented, bidirectional too
    torch.testing.assert_close(out, lstm.forward_packed(data, layout)[0], **TOL)


@pytest.mark.parametrize("cell", ["nstep", "step"])
def test_packed_fast_path_refuses_data_that_does_not_fit_the_layout(cell):
    # The fused kernels trust these sizes; a mismatch once corrupted the heap.
    model = nl.Forecaster(1, 1, 8, 1, cell=cell)
    layout = nl.PackedLayout([5, 3])
    with pytest.raises(nl.InputError, match=r"shape \(8, 1\), got tensor of shape \(8, 2\)"):
        model.forward_packed(torch.zeros(8, 2), layout)
    with pytest.raises(nl.InputError, match=r"got tensor of shape \(7, 1\)"):
        model.forward_packed(torch.zeros(7, 1), layout)
    with pytest.raises(nl.InputError, match="packed data must be torch.float32 on cpu"):
        model.forward_packed(torch.zeros(8, 1, dtype=torch.float64), layout)


def test_packed_call_checks_the_states_against_the_layout():
    lstm, layout = nl.NStepLSTM(2, 1, 4), nl.PackedLayout([2, 3])
    # A state for 3 sequences on a batch of 2 once ran, silently dropping a row.
    with pytest.raises(nl.InputError, match=r"hx must be None or a tensor of shape \(2, 2, 4\)"):
        lstm.forward_packed(torch.zeros(5, 1), layout, torch.zeros(2, 3, 4))
    with pytest.raises(nl.InputError, match="cx must be torch.float32"):
        lstm.forward_packed(torch.zeros(5, 1), layout, None, torch.zeros(2, 2, 4).double())
    out, hy, _ = lstm.forward_packed(torch.zeros(5, 1), layout, torch.zeros(2, 2, 4))
    assert out.shape == (5, 4) and hy.shape == (2, 2, 4)


@pytest.mark.parametrize(
    "cls,n_layers", [(nl.NStepLSTM, 1), (nl.NStepLSTM, 3), (nl.NStepBiLSTM, 2)]
)
def test_many_mixed_lengths_equal_each_sequence_alone(cls, n_layers):
    # Enough distinct lengths that segments merge and many sequences end inside one.
    torch.manual_seed(11)
    lstm = cls(n_layers, 3, 5).eval()
    lengths = torch.randint(1, 40, (60,)).tolist()
    xs = make_xs(lengths)
    hx, cx = make_states(lstm, len(xs))
    hy, cy, ys = lstm(hx, cx, xs)
    for i in range(len(xs)):
        h1, c1, (y1,) = lstm(hx[:, i : i + 1], cx[:, i : i + 1], [xs[i]])
        torch.testing.assert_close(ys[i], y1, **TOL)
        torch.testing.assert_close(hy[:, i], h1[:, 0], **TOL)
        torch.testing.assert_close(cy[:, i], c1[:, 0], **TOL)


@pytest.mark.parametrize("n_layers", [1, 2])
def test_weight_gradients_of_a_batch_equal_the_sum_over_each_sequence_alone(n_layers):
    """With final states in the loss, so the rebuilt cell states of sequences that
    end inside a segment carry gradient too (float64: exact up to rounding)."""
    torch.manual_seed(11)
    lstm = nl.NStepLSTM(n_layers, 3, 5).double()
    lengths = torch.randint(1, 30, (40,)).tolist()
    xs = make_xs(lengths, in_size=3, dtype=torch.float64)
    hx, cx = make_states(lstm, len(xs), dtype=torch.float64)
    w = torch.randn(5, dtype=torch.float64)

    def loss(hx, cx, xs):
        hy, cy, ys = lstm(hx, cx, xs)
        return sum((y * w).sum() for y in ys) + hy.square().sum() + (1.7 * cy).sum()

    params = list(lstm.parameters())
    batch = torch.autograd.grad(loss(hx, cx, xs), params)
    alone = [
        torch.autograd.grad(loss(hx[:, b : b + 1], cx[:, b : b + 1], [x]), params)
        for b, x in enumerate(xs)
    ]
    for k, g in enumerate(batch):
        torch.testing.assert_close(g, sum(a[k] for a in alone), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("n_out", [1, 3])
@pytest.mark.parametrize("shape", [(50, 8), (1, 8), (4, 6, 8)])
def test_head_equals_linear_in_values_and_gradients(n_out, shape):
    torch.manual_seed(n_out)
    head = nl.model.Head(8, n_out)
    linear = torch.nn.Linear(8, n_out)
    linear.load_state_dict(head.state_dict())
    x = torch.randn(shape, requires_grad=True)
    outs = [module(x) for module in (head, linear)]
    assert outs[0].shape == outs[1].shape == (*shape[:-1], n_out)
    torch.testing.assert_close(outs[0], outs[1], atol=1e-6, rtol=0)
    w = torch.randn_like(outs[0])
    grads = [
        torch.autograd.grad((y * w).sum(), [x, *m.parameters()])
        for y, m in zip(outs, (head, linear), strict=True)
    ]
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_numpy_integer_sizes_are_taken_as_ints():
    model = nl.Forecaster(np.int64(2), n_hidden=np.int32(8), dropout=0.0)
    assert json.loads(json.dumps(model.config))["n_layers"] == 2  # config.json stays writable
    assert type(model.lstm.out_size) is int and model.lstm.lstm.hidden_size == 8


@pytest.mark.parametrize("cls", [nl.NStepLSTM, nl.NStepBiLSTM])
@pytest.mark.parametrize("n_layers", [1, 3])
def test_weight_count_is_the_modules(cls, n_layers):
    from nsteplstm.model import lstm_weight_count

    lstm = cls(n_layers, 5, 7)
    directions = 2 if cls is nl.NStepBiLSTM else 1
    assert lstm_weight_count(n_layers, 5, 7, directions) == sum(
        p.numel() for p in lstm.parameters()
    )
    stack = nl.StepLSTMStack(n_layers, 5, 7)
    assert lstm_weight_count(n_layers, 5, 7) == sum(p.numel() for p in stack.parameters())


@pytest.mark.parametrize(
    "build",
    [
        lambda: nl.NStepLSTM(10**9, 1, 8),  # once ran for minutes building layers
        lambda: nl.Forecaster(1, 1, 10**6),
        lambda: nl.Forecaster(10**9, 1, 8, cell="step"),
        lambda: nl.StepLSTM(1, 10**6),
        lambda: nl.NStepLSTM(1, 1, 10**3000),  # its weight count has more digits than str takes
        lambda: nl.NStepLSTM(10**400, 1, 8),  # was written out in full, 400 digits
    ],
)
def test_sizes_beyond_this_machines_memory_are_refused_at_once(build):
    with pytest.raises(
        nl.InputError, match=r"weights take .* GiB of float32, more than this machine.s"
    ) as refused:
        build()
    assert len(str(refused.value)) < 300


def test_state_carried_from_inference_mode_can_be_trained_on():
    # An inference tensor cannot be saved for backward: the next call used to fail in _VF.lstm.
    torch.manual_seed(0)
    xs = [torch.randn(5, 3), torch.randn(5, 3)]
    st = nl.StatefulNStepLSTM(1, 3, 4)
    with torch.inference_mode():
        st(xs)
    h0, c0 = st.h.clone(), st.c.clone()
    ys = st(xs)
    sum(y.sum() for y in ys).backward()
    _, _, want = st.lstm(h0, c0, xs)  # the same call from plain tensors
    assert all(torch.equal(y, w) for y, w in zip(ys, want, strict=True))
    assert st.lstm.weights[0].grad is not None
    cell = nl.StepLSTM(3, 4)
    with torch.inference_mode():
        cell(torch.randn(2, 3))
    cell(torch.randn(2, 3)).sum().backward()
    assert cell.weight_hh.grad is not None


def test_argument_checks_take_numpy_numbers_and_name_a_wrong_layout():
    assert nl.NStepLSTM(1, 3, 4, dropout=np.float32(0.25)).dropout == 0.25
    with pytest.raises(nl.InputError, match="layout must be a PackedLayout, got list"):
        nl.NStepLSTM(1, 3, 4).forward_packed(torch.randn(6, 3), [4, 2])


def test_the_functional_calls_check_what_the_fused_kernels_trust():
    # n_step_lstm and packed_lstm handed these to _VF.lstm, which corrupted the heap
    # (a state for another batch size: "munmap_chunk(): invalid pointer", exit 134) or
    # ran on wrong sizes without a word (extra data rows, a wrong-shaped weight).
    from nsteplstm.functional import n_step_lstm, packed_lstm

    lstm = nl.NStepLSTM(1, 3, 4)
    layout = nl.PackedLayout([5, 5, 5])
    zeros = torch.zeros(1, 3, 4)
    data = torch.randn(15, 3)
    cases = [
        ((data, layout, torch.zeros(1, 1, 4), zeros), r"hx must be a tensor of shape \(1, 3, 4\)"),
        (
            (torch.randn(100, 3), layout, zeros, zeros),
            r"packed data must be .* \(15, 3\), got .*100",
        ),
        ((data, layout, None, zeros), r"hx must be a tensor of shape \(1, 3, 4\), got NoneType"),
    ]
    for call in (n_step_lstm, packed_lstm):
        for args, message in cases:
            with pytest.raises(nl.InputError, match=message):
                call(*args, lstm.weights, 1, 0.0, False, False)
        with pytest.raises(nl.InputError, match="weights must be a list of 4 tensors"):
            call(data, layout, zeros, zeros, lstm.weights[:3], 1, 0.0, False, False)
        wrong = [*lstm.weights[:1], torch.randn(16, 5), *lstm.weights[2:]]
        with pytest.raises(
            nl.InputError,
            match=r"weights\[1\] must be a tensor of shape \(16, 4\), got .*\(16, 5\)",
        ):
            call(data, layout, zeros, zeros, wrong, 1, 0.0, False, False)
    with pytest.raises(nl.InputError, match=r"dropout must be a number in \[0, 1\), got 1.5"):
        n_step_lstm(data, layout, zeros, zeros, lstm.weights, 1, 1.5, True, False)
    out, _, _ = n_step_lstm(data, layout, zeros, zeros, lstm.weights, 1, 0.0, False, False)
    torch.testing.assert_close(out, lstm.forward_packed(data, layout)[0])


def test_weights_given_to_the_module_must_fit_it():
    # A (16, 5) hidden-to-hidden weight for 4 hidden units ran through functional_call.
    lstm = nl.NStepLSTM(1, 3, 4)
    xs = make_xs((5, 3))
    for name, shape in (("weight_hh_l0", (16, 5)), ("weight_ih_l0", (16, 2))):
        with pytest.raises(nl.InputError, match=rf"lstm\.{name} must be a tensor of shape"):
            torch.func.functional_call(lstm, {f"lstm.{name}": torch.randn(shape)}, (None, None, xs))


def test_a_layout_on_another_device_than_the_data_is_refused():
    lstm = nl.NStepLSTM(1, 3, 4)
    layout = nl.PackedLayout([2, 3, 1], "meta")
    with pytest.raises(nl.InputError, match="the layout is on meta but the packed data on cpu"):
        lstm.forward_packed(torch.randn(6, 3), layout)


def test_dropout_checks_its_ratio_and_input():
    from nsteplstm.functional import dropout

    for ratio in (1.0, -0.1, 1.5, float("nan")):  # 1.0 gave NaN, the others scaled silently
        with pytest.raises(nl.InputError, match=r"dropout ratio must be a number in \[0, 1\)"):
            dropout(torch.ones(3), ratio)
    with pytest.raises(nl.InputError, match="x must be a floating-point tensor"):
        dropout(torch.ones(3, dtype=torch.int64), 0.5)


def test_a_one_output_forecaster_runs_under_cpu_autocast():
    # The head's addmv shortcut met a bfloat16 input beside float32 weights.
    torch.manual_seed(0)
    model = nl.Forecaster(1, 1, 8, 1, 0.0)
    xs = make_xs((5, 3), in_size=1)
    want = model(xs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = model(xs)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a.float(), b, atol=2e-2, rtol=0)


@pytest.mark.parametrize(("device", "dtype"), AUTOCAST, ids=["cpu", "cuda"])
@pytest.mark.parametrize("cls", [nl.NStepLSTM, nl.NStepBiLSTM])
def test_states_and_inputs_of_autocasts_precision_are_taken_under_it(cls, device, dtype):
    # Under autocast an LSTM call returns 16-bit states: given back as hx, cx (Chainer's
    # loop hy, cy, ys = lstm(hy, cy, xs)) they were refused ("hx must be torch.float32"),
    # and StatefulNStepLSTM failed on its second call; so were 16-bit inputs, which
    # torch.nn.LSTM takes there.
    torch.manual_seed(0)
    lstm = cls(2, 3, 4).to(device)
    xs = [x.to(device) for x in make_xs((5, 2, 7))]
    with torch.autocast(device, dtype=dtype):
        hy, cy, _ = lstm(None, None, xs)
        hy2, cy2, ys = lstm(hy, cy, [x.to(dtype) for x in xs])
    _, _, want = lstm(hy.float(), cy.float(), xs)
    for y, w in zip(ys, want, strict=True):
        torch.testing.assert_close(y.float(), w, atol=2e-2, rtol=0)
    with pytest.raises(nl.InputError, match=f"hx must be torch.float32 on .*, got {dtype}"):
        lstm(hy, cy, xs)  # outside autocast: the dtypes must match
    st, cell = nl.StatefulNStepLSTM(2, 3, 4).to(device), nl.StepLSTM(3, 4).to(device)
    with torch.autocast(device, dtype=dtype):
        st(xs)
        st(xs)
        cell(xs[0][:2].to(dtype))
        cell(xs[0][:3])
    # Outside autocast the carried state takes the weights' dtype (StepLSTM's 16-bit
    # state once met float32 weights in a matrix product: a RuntimeError).
    assert st(xs)[0].dtype == cell(xs[0][:1]).dtype == torch.float32
    assert st.h.dtype == cell.h.dtype == torch.float32


def test_final_states_of_sequences_ending_inside_a_segment_take_memory_for_their_steps():
    # Many short sequences end inside merged segments beside two long ones: the cell
    # states rebuilt for them were computed on a grid of every step of the longest
    # run for all of them, 34 times the layer's output (and 70 times, 3 GB and 8 s,
    # for 300 short ones beside two of 10,000 steps: now 0.6 GB and 0.7 s).
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    class Largest(TorchDispatchMode):
        """The most elements of a tensor made outside the fused LSTM kernels."""

        most = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if "rnn" not in str(func) and "lstm" not in str(func):
                sizes = [t.numel() for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
                self.most = max([self.most, *sizes])
            return out

    rng = np.random.default_rng(0)
    lengths = [int(n) for n in rng.integers(1, 40, 300)] + [1000, 990]
    ends = nl.PackedLayout(lengths).cover_ends(32.0)
    assert len(ends.start) > 100  # many sequences end inside a segment
    torch.manual_seed(0)
    lstm = nl.NStepLSTM(1, 2, 16)
    xs = make_xs(lengths, in_size=2)
    with Largest() as mode:
        hy, cy, ys = lstm(None, None, xs)
        (hy.sum() + cy.sum() + sum(y.sum() for y in ys)).backward()
    assert mode.most <= 4 * sum(lengths) * 16  # the gates of the real steps: (n, 3H)
    for x, h, c in zip(xs[:3], hy[0], cy[0], strict=False):  # and still exact
        alone_h, alone_c, _ = lstm(None, None, [x])
        torch.testing.assert_close(h, alone_h[0, 0], **TOL)
        torch.testing.assert_close(c, alone_c[0, 0], **TOL)
