"""PackedLayout's index tables: every packed row lands where the docstrings say."""

import re
import tracemalloc

import numpy as np
import pytest
import torch

import nsteplstm as nl
from nsteplstm.packing import Segment

LENGTHS = [7, 3, 12, 3, 9, 1, 12, 5, 10, 2, 8, 6]  # unsorted, ties, a length-1 sequence
OVERHEAD = 3.0  # small enough to keep some segments apart, large enough to merge others


def labelled(layout: nl.PackedLayout) -> torch.Tensor:
    """Packed ``(N, 2)`` rows holding (sorted position, step) of each entry."""
    xs = [torch.tensor([[0.0, t] for t in range(n)]) for n in layout.lengths]
    for rank, i in enumerate(sorted(range(layout.batch), key=lambda i: -layout.lengths[i])):
        xs[i][:, 0] = rank
    return layout.pack(xs)


def test_cover_grids_hold_each_segment_time_major_and_scatter_inverts_them():
    layout = nl.PackedLayout(LENGTHS)
    data = labelled(layout)
    cover = layout.cover(OVERHEAD)
    assert 1 < len(cover.segments) < len(layout.segments)  # some merged, not all
    grid = torch.cat([data, torch.full((1, 2), -1.0)]).index_select(0, cover.gather)
    for (t0, t1, rows), cells in zip(cover.segments, grid.split(cover.sizes), strict=True):
        cells = cells.view(t1 - t0, rows, 2)
        for t in range(t0, t1):
            for j in range(rows):
                real = t < layout.sorted_lengths[j]
                expected = [j, t] if real else [-1, -1]  # padding past the sequence's end
                assert cells[t - t0, j].tolist() == expected
    assert torch.equal(grid.index_select(0, cover.scatter), data)


def test_cover_ends_point_at_each_sequences_final_state_and_its_real_steps():
    layout = nl.PackedLayout(LENGTHS)
    data = labelled(layout)
    cover, ends = layout.cover(OVERHEAD), layout.cover_ends(OVERHEAD)
    lengths = layout.sorted_lengths
    # The state table, labelled (segment index of the state's end, sorted position);
    # the start state of segment 0 is labelled -1 (the given hx).
    table = [(-1, j) for j in range(layout.batch)]
    table += [(k, j) for k, (_, _, rows) in enumerate(cover.segments) for j in range(rows)]
    bounds = {t1 for _, t1, _ in cover.segments}
    starts = {  # the start of the segment each sequence ending inside one ends in
        j: next(t0 for t0, t1, _ in cover.segments if t0 < lengths[j] < t1)
        for j in range(layout.batch)
        if lengths[j] not in bounds
    }
    assert len(starts) > 1  # the case the tables exist for
    # Listed by decreasing run (real steps in their segment), sorted position on a tie.
    inside = sorted(starts, key=lambda j: (starts[j] - lengths[j], j))
    assert [starts[j] - lengths[j] for j in inside] != [starts[j] - lengths[j] for j in starts]
    table += [("rebuilt", j) for j in inside]
    for j, row in enumerate(ends.final.tolist()):
        segment, position = table[row]
        assert position == j
        if segment != "rebuilt":
            assert cover.segments[segment][1] == lengths[j]  # that segment ends with it
    for r, j in enumerate(inside):
        k = next(k for k, (t0, _, _) in enumerate(cover.segments) if t0 == starts[j])
        assert table[ends.start[r]] == (k - 1, j)  # the end of the segment before
        assert data[ends.last[r]].tolist() == [j, lengths[j] - 1]
    # Real steps in their segment, step-major; those taking step s are the first counts[s].
    runs = [lengths[j] - starts[j] for j in inside]
    assert ends.counts == [sum(run > s for run in runs) for s in range(max(runs))]
    expected = [(j, starts[j] + s) for s in range(max(runs)) for j in inside[: ends.counts[s]]]
    assert [tuple(step) for step in data[ends.inputs].long().tolist()] == expected
    previous = data[ends.previous].long().numpy()
    assert np.array_equal(previous, np.array(expected[len(inside) :]) - [0, 1])


def test_cover_memory_grows_with_the_data_not_with_steps_times_sequences():
    # The cover's tables once spanned every (step, sequence) pair, T * B of them: 16 GB
    # of indices for 10,000 sequences beside one of 100,000 steps. Here T * B = 5e6
    # (two 40 MB tables then), N = 15,000.
    layout = nl.PackedLayout([10_000] + [10] * 499)
    tracemalloc.start()
    try:
        cover = layout.cover(OVERHEAD)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000
    assert sorted(cover.scatter.tolist()) == sorted(set(cover.scatter.tolist()))
    real = cover.gather[cover.scatter]  # the packed row in each row's cell: itself
    assert torch.equal(real, torch.arange(layout.n_rows))


@pytest.mark.parametrize(
    "lengths,shown",
    [
        *[([], "an empty list"), ([3, 0], "0"), ([3, -1], "-1"), ([2.5], "2.5"), ([True], "True")],
        *[(None, "None"), (3, "3"), ("34", "'34'"), (iter([2]), "<list_iterator object.*")],
    ],
)
def test_lengths_must_be_integers_of_at_least_one(lengths, shown):
    with pytest.raises(nl.InputError, match=f"integers >= 1, got {shown}$"):
        nl.PackedLayout(lengths)


@pytest.mark.parametrize(
    "lengths,shown",
    [
        (torch.tensor(3), "0-D Tensor of shape ()"),
        (np.ones((2, 1), int), "2-D ndarray of shape (2, 1)"),
    ],
)
def test_lengths_must_be_one_dimensional(lengths, shown):
    """A 0-d tensor raised torch's bare TypeError ("iteration over a 0-d tensor")."""
    with pytest.raises(nl.InputError, match=re.escape(f"integers >= 1, got a {shown}")):
        nl.PackedLayout(lengths)


def test_pack_refuses_sequences_that_do_not_fit_the_layout():
    layout = nl.PackedLayout([2, 3])
    # Once packed silently into the wrong rows.
    with pytest.raises(nl.InputError, match=r"lengths \[3, 3\], the layout is for \[2, 3\]"):
        layout.pack([torch.zeros(3, 1), torch.zeros(3, 1)])
    with pytest.raises(nl.InputError, match=r"lengths \[3\], the layout is for"):
        layout.pack([torch.zeros(3, 1)])
    with pytest.raises(nl.InputError, match="needs a dense layout"):
        layout.pack(torch.zeros(2, 3, 1))
    with pytest.raises(nl.InputError, match=r"shape \(2, 4, F\), got \(4, 2, 1\)"):
        nl.PackedLayout([4, 4]).pack(torch.zeros(4, 2, 1))
    with pytest.raises(nl.InputError, match="device must be a torch.device or its name"):
        nl.PackedLayout([2], "bogus")


def test_layout_refuses_a_cuda_index_past_the_device_count(monkeypatch):
    # It raised torch's bare RuntimeError (invalid device ordinal) at its first index tensor.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    told = r"device 'cuda:2': this machine has 2 CUDA device\(s\), cuda:0 to cuda:1"
    with pytest.raises(nl.InputError, match=told):
        nl.PackedLayout([2, 3], "cuda:2")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_a_layout_on_plain_cuda_takes_the_current_devices_index():
    """Its index tensors go to the current device: a "cuda" layout passed the check
    against data on any GPU, then failed in torch with a cross-device error."""
    here = torch.device("cuda", torch.cuda.current_device())
    layout = nl.PackedLayout([2, 3], "cuda")
    assert layout.device == here and layout.device.index is not None
    last = torch.cuda.device_count() - 1
    assert nl.PackedLayout([2, 3], f"cuda:{last}").device == torch.device("cuda", last)


def test_layout_pack_and_unpack_check_what_they_are_given():
    # Each raised torch's own errors (an AssertionError for CUDA on a machine without).
    if not torch.cuda.is_available():
        with pytest.raises(nl.InputError, match="device 'cuda': no CUDA device on this machine"):
            nl.PackedLayout([2, 3], "cuda")
    layout = nl.PackedLayout([2, 3])
    with pytest.raises(nl.InputError, match=r"one F, got \[\(1,\), \(2,\)\]"):
        layout.pack([torch.zeros(2, 1), torch.zeros(3, 2)])
    with pytest.raises(
        nl.InputError, match=r"packed data must be \(5, H\), got tensor of shape \(4, 1\)"
    ):
        layout.unpack(torch.zeros(4, 1))
    with pytest.raises(nl.InputError, match=r"unpack_dense: lengths \[2, 3\] are not all equal"):
        layout.unpack_dense(torch.zeros(5, 1))


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors")
def test_sparse_and_nested_inputs_are_refused():
    lstm = nl.NStepLSTM(1, 3, 4)
    sparse = torch.ones(2, 3).to_sparse()
    with pytest.raises(nl.InputError, match=r"xs\[0\] must be a dense \(strided\) tensor"):
        lstm(None, None, [sparse])
    nested = torch.nested.nested_tensor([torch.ones(2, 3), torch.ones(4, 3)])
    with pytest.raises(nl.InputError, match="xs must be a dense .* got a nested tensor$"):
        lstm(None, None, nested)
    # Items and states that are nested tensors ended in torch's 'NestedTensorImpl
    # doesn't support sizes', raised while the message was being written.
    with pytest.raises(nl.InputError, match=r"xs\[0\] must be a dense .* got a nested tensor$"):
        lstm(None, None, [nested])
    one = torch.nested.nested_tensor([torch.ones(1, 4)])
    with pytest.raises(nl.InputError, match="hx must be a dense .* got a nested tensor$"):
        lstm(one, None, [torch.ones(2, 3)])
    layout = nl.PackedLayout([2, 4])
    with pytest.raises(nl.InputError, match="packed data must be a dense .* a nested tensor$"):
        lstm.forward_packed(nested, layout)


def test_layout_takes_a_1d_integer_array_and_refuses_unordered_lengths():
    # A tensor of lengths was refused as 'got tensor(3)'; a set was taken in its own order.
    assert nl.PackedLayout(torch.tensor([3, 2])).lengths == [3, 2]
    assert nl.PackedLayout(np.array([1, 4])).lengths == [1, 4]
    with pytest.raises(nl.InputError, match=r"integers >= 1, got \{"):
        nl.PackedLayout({2, 10, 3})
    with pytest.raises(nl.InputError, match="integers >= 1, got 2.5$"):
        nl.PackedLayout(torch.tensor([2.5]))


def test_layout_helpers_check_their_arguments():
    # Each raised TypeError or torch's 'INDICES element is out of DATA bounds', or
    # (sort_states) silently dropped rows.
    layout = nl.PackedLayout([2, 3])
    with pytest.raises(nl.InputError, match="pack: xs must be a list or tuple of tensors"):
        layout.pack(iter([torch.zeros(2, 1), torch.zeros(3, 1)]))
    for method in (layout.sort_states, layout.unsort_states):
        with pytest.raises(
            nl.InputError, match=r"states must be \(layers, 2, H\), got tensor of shape \(1, 5, 4\)"
        ):
            method(torch.zeros(1, 5, 4))
    with pytest.raises(nl.InputError, match="final_states must be True or False, got 'no'"):
        nl.NStepLSTM(1, 1, 4).forward_packed(torch.zeros(5, 1), layout, final_states="no")
    for device in ("mps", "xpu"):  # a RuntimeError and an AssertionError from torch
        if _available(device):
            continue
        with pytest.raises(nl.InputError, match=f"device '{device}' is not available here"):
            nl.PackedLayout([3, 2], device)


def _available(device: str) -> bool:
    try:
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError):
        return False
    return True


@pytest.mark.parametrize("overhead", [float("nan"), float("inf"), "32", None])
def test_merged_segments_take_a_finite_overhead(overhead):
    # NaN (and infinity) silently gave one segment for the whole batch: every cost compared
    # false; a string or None ended in a TypeError.
    with pytest.raises(nl.InputError, match="overhead must be a finite number, got"):
        nl.PackedLayout(LENGTHS).merged_segments(overhead)


def test_step_rows_are_packed_sequences_batch_sizes():
    xs = [torch.zeros(n, 1) for n in LENGTHS]
    want = torch.nn.utils.rnn.pack_sequence(xs, enforce_sorted=False).batch_sizes
    layout = nl.PackedLayout(LENGTHS)
    assert torch.equal(layout.batch_sizes, want) and layout.batch_sizes.dtype == torch.int64
    assert layout.step_rows.tolist() == want.tolist()


def test_a_layout_of_very_long_sequences_is_built_from_its_lengths_alone():
    # It built a Python list of one entry per step of the longest: MemoryError for
    # 10**12 steps, 11 s and 1.5 GB for 10**8, before any data was seen.
    tracemalloc.start()
    try:
        layout = nl.PackedLayout([10**12, 5])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100_000
    assert (layout.n_rows, layout.max_length) == (10**12 + 5, 10**12)
    assert layout.segments == [Segment(0, 5, 2), Segment(5, 10**12, 1)]
    with pytest.raises(nl.InputError, match=r"packed data must be a tensor of shape \(10+5, 1\)"):
        nl.NStepLSTM(1, 1, 4).forward_packed(torch.zeros(5, 1), layout)
