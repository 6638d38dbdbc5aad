"""The packed layout of a batch of variable-length sequences.

A batch of B sequences with lengths ``L_i`` is held as one 2-D tensor ``data`` of
shape ``(N, F)``, ``N = sum(L_i)``, in time-major order over the sequences sorted
by decreasing length: first step 0 of every sequence, then step 1 of every
sequence still running, and so on. This is PyTorch's ``PackedSequence.data``
order, so ``batch_sizes`` here is ``PackedSequence.batch_sizes``.

Sorted by length, the sequences running at step ``t`` are always a prefix of the
batch, so every maximal run of steps with the same batch size (a *segment*) is
a dense ``(steps, rows, F)`` block. The CPU LSTM merges neighbouring segments
where one more kernel call would cost more than the padding it saves
(:meth:`PackedLayout.merged_segments`) and runs one fused call per merged
segment (:meth:`PackedLayout.cover` gives the index tensors).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from .errors import InputError, is_finite_number, is_int, one_line, plain


def describe(t: object) -> str:
    """A value as an error message names it: a tensor by shape, dtype and device."""
    if isinstance(t, torch.Tensor):
        if t.is_nested:  # it has no shape to ask for
            return f"nested tensor, {t.dtype}, on {t.device}"
        return f"tensor of shape {tuple(t.shape)}, {t.dtype}, on {t.device}"
    return type(t).__name__


@dataclass(frozen=True)
class Segment:
    """Steps ``[t0, t1)`` in which the first ``rows`` sorted sequences run, all of them."""

    t0: int
    t1: int
    rows: int


@dataclass(frozen=True)
class Cover:
    """A padded cover of a batch by a few segments (:meth:`PackedLayout.merged_segments`),
    ready to run: the segments' ``(steps, rows)`` grids, time-major, one after the other,
    hold ``G = sum(sizes)`` cells.

    Attributes:
        segments: ``(t0, t1, rows)`` of each segment.
        sizes: cells of each segment's grid, ``(t1 - t0) * rows``.
        gather: ``(G,)`` packed row of each cell, or ``N`` for padding (a zero row
            appended to the data).
        scatter: ``(N,)`` cell of each packed row.
    """

    segments: list[tuple[int, int, int]]
    sizes: list[int]
    gather: torch.Tensor
    scatter: torch.Tensor


@dataclass(frozen=True)
class CoverEnds:
    """Where each sequence's final state is when a batch runs as a :class:`Cover`.

    The *state table* stacks the start state of the first segment (B rows) and the
    end state of every segment (``rows`` each), in order. A sequence whose length is
    a segment's end ``t1`` finds its final state there; the R sequences ending inside
    a segment ran on over padding, so theirs is rebuilt from their real steps
    (:func:`nsteplstm.functional._cell_states`) and appended to the table.

    Those R are listed by decreasing number of real steps in their segment (their
    *run*; sorted position on a tie), so that at each step the ones still running are
    a prefix, as in a packed batch: ``counts[s]`` of them take step ``s``.

    Attributes:
        final: ``(B,)`` table row of each sorted sequence's final state.
        start: ``(R,)`` table row of each sequence ending inside: its segment's start state.
        last: ``(R,)`` packed row of its last step.
        inputs: ``(n,)`` packed rows of their real steps in their segments, step-major:
            step ``s`` of the first ``counts[s]`` of them.
        previous: ``(n - R,)`` packed row of the step before each of those past step 0.
        counts: how many take each step, ``counts[0] == R``, non-increasing; ``n`` in all.
    """

    final: torch.Tensor
    start: torch.Tensor
    last: torch.Tensor
    inputs: torch.Tensor
    previous: torch.Tensor
    counts: list[int]


class PackedLayout:
    """Index bookkeeping for one batch of lengths; built once, used for every layer.

    Args:
        lengths: the length of each sequence, in the batch's own order; all >= 1.
        device: where the index tensors live (the device of the data).
    """

    def __init__(self, lengths: Sequence[int], device: torch.device | str = "cpu") -> None:
        if isinstance(lengths, (torch.Tensor, np.ndarray)):
            if lengths.ndim != 1:
                raise InputError(
                    "lengths must be a non-empty list of integers >= 1, got a "
                    f"{lengths.ndim}-D {type(lengths).__name__} of shape {tuple(lengths.shape)}"
                )
            lengths = lengths.tolist()  # its elements: 0-d arrays, not integers
        unordered = isinstance(lengths, (set, frozenset, dict))
        if isinstance(lengths, (str, bytes)) or not hasattr(lengths, "__len__") or unordered:
            got = repr(lengths)[:60]
            raise InputError(f"lengths must be a non-empty list of integers >= 1, got {got}")
        bad = [n for n in lengths if not is_int(n)]
        if len(lengths) == 0 or bad or min(lengths) < 1:
            shown = repr(bad[0] if bad else min(lengths)) if len(lengths) else "an empty list"
            raise InputError(f"lengths must be a non-empty list of integers >= 1, got {shown}")
        self.lengths = [int(n) for n in lengths]
        self.batch = len(self.lengths)
        order = sorted(range(self.batch), key=lambda i: -self.lengths[i])  # stable
        self._order = order
        self.sorted_lengths = [self.lengths[i] for i in order]
        self.max_length = self.sorted_lengths[0]
        self.n_rows = sum(self.lengths)
        self.is_dense = self.sorted_lengths[-1] == self.max_length
        self._identity = order == list(range(self.batch))
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError) as e:
            raise InputError(f"device must be a torch.device or its name, got {device!r}") from e
        if self.device.type == "cuda":
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if not count:
                raise InputError(f"device {device!r}: no CUDA device on this machine")
            if (self.device.index or 0) >= count:
                raise InputError(
                    f"device {device!r}: this machine has {count} CUDA device(s), "
                    f"cuda:0 to cuda:{count - 1}"
                )
            if self.device.index is None:  # where its index tensors go: the current one
                self.device = torch.device("cuda", torch.cuda.current_device())
        if self.device.type not in ("cpu", "cuda", "meta"):
            try:  # mps, xpu, ...: torch says whether this machine has one
                torch.empty(0, device=self.device)
            except (RuntimeError, AssertionError) as e:
                reason = one_line(e)[:120]
                raise InputError(f"device {device!r} is not available here ({reason})") from None

        # One segment per distinct length: nothing here grows with the steps T, which
        # only data of N >= T rows can use (PackedLayout([10**10]) took 80 GB at once).
        t, running = 0, self.batch
        self.segments: list[Segment] = []
        for length, count in sorted(Counter(self.sorted_lengths).items()):
            self.segments.append(Segment(t, length, running))
            t, running = length, running - count

        if self._identity:
            self.sorted_indices = self.unsorted_indices = None
        else:
            self.sorted_indices = torch.tensor(order, dtype=torch.int64, device=self.device)
            self.unsorted_indices = torch.empty_like(self.sorted_indices)
            self.unsorted_indices[self.sorted_indices] = torch.arange(
                self.batch, device=self.device
            )
        self._covers: dict[float, Cover] = {}
        self._cover_ends: dict[float, CoverEnds] = {}
        self._seq_to_packed: torch.Tensor | None = None
        self._packed_to_seq: torch.Tensor | None = None
        self._reversed: torch.Tensor | None = None

    @cached_property
    def step_rows(self) -> np.ndarray:
        """(T,) int64, on the host: how many sequences run at each step."""
        steps = [seg.t1 - seg.t0 for seg in self.segments]
        return np.repeat(np.array([seg.rows for seg in self.segments], dtype=np.int64), steps)

    @cached_property
    def batch_sizes(self) -> torch.Tensor:
        """:attr:`step_rows` as PackedSequence wants it: a CPU int64 tensor (shared memory)."""
        return torch.from_numpy(self.step_rows)

    def merged_segments(self, overhead: float) -> list[tuple[int, int, int]]:
        """Steps ``[t0, t1)`` and ``rows`` of a padded cover of the batch with few segments.

        Each segment runs the first ``rows`` sorted sequences (those alive at ``t0``)
        for all its steps, some of them past their end (padding). Chosen by dynamic
        programming to minimise ``sum(overhead + rows * steps)``: ``overhead`` (a finite
        number) is the cost of one kernel call in row-steps; on a tie a segment starts
        as early as it can. Exact for outputs, not for final states. O(K^2) for K
        distinct lengths: about 55 us for 21, 7 s for 10,000 (2-core Xeon).
        """
        if not is_finite_number(overhead):
            raise InputError(f"overhead must be a finite number, got {plain(overhead)}")
        bounds = [0] + [seg.t1 for seg in self.segments]  # every distinct length
        alive = [seg.rows for seg in self.segments]  # sequences alive at bounds[i]
        best = [0.0] + [float("inf")] * len(self.segments)
        choice = [0] * len(bounds)
        for j in range(1, len(bounds)):
            for i in range(j):
                cost = best[i] + overhead + alive[i] * (bounds[j] - bounds[i])
                if cost < best[j]:
                    best[j], choice[j] = cost, i
        cover, j = [], len(bounds) - 1
        while j > 0:
            i = choice[j]
            cover.append((bounds[i], bounds[j], alive[i]))
            j = i
        return cover[::-1]

    def cover(self, overhead: float) -> Cover:
        """:meth:`merged_segments` with the index tensors to run them on packed data
        (see :class:`Cover`); built once per layout and overhead."""
        if overhead not in self._covers:
            segments = self.merged_segments(overhead)
            gather = np.concatenate([self._segment_rows(*segment) for segment in segments])
            real = np.flatnonzero(gather < self.n_rows)  # (N,) the cells that hold a row
            scatter = np.empty(self.n_rows, dtype=np.int64)
            scatter[gather[real]] = real
            self._covers[overhead] = Cover(
                segments,
                [(t1 - t0) * rows for t0, t1, rows in segments],
                torch.from_numpy(gather).to(self.device),
                torch.from_numpy(scatter).to(self.device),
            )
        return self._covers[overhead]

    def _segment_rows(self, t0: int, t1: int, rows: int) -> np.ndarray:
        """``((t1 - t0) * rows,)`` the packed row of each cell of a segment's ``(steps,
        rows)`` grid, time-major, or ``N`` past its sequence's end: built per segment, as
        a table over all ``T * B`` steps and sequences took 16 GB for 10,000 sequences
        of which one had 100,000 steps (and the rest a few)."""
        t = np.arange(t0, t1)[:, None]  # (steps, 1)
        j = np.arange(rows)[None, :]  # (1, rows) sorted positions
        packed = self.first_rows[t] + j
        return np.where(j < self.step_rows[t], packed, self.n_rows).ravel()

    def cover_ends(self, overhead: float) -> CoverEnds:
        """Where each sequence's final state is when the batch runs as :meth:`cover`
        (see :class:`CoverEnds`); built once per layout and overhead."""
        if overhead not in self._cover_ends:
            self._cover_ends[overhead] = self._build_cover_ends(self.cover(overhead).segments)
        return self._cover_ends[overhead]

    def _build_cover_ends(self, segments: list[tuple[int, int, int]]) -> CoverEnds:
        batch = self.batch
        t0s, t1s, rows = (np.array(column) for column in zip(*segments, strict=True))
        # offset[k]: the table row of segment k's end state, row 0; offset[-1]: table size
        offset = np.concatenate([[batch], batch + np.cumsum(rows)])
        lengths = np.array(self.sorted_lengths)  # (B,)
        seg = np.searchsorted(t1s, lengths)  # (B,) segment of each sequence's last step
        j = np.arange(batch)  # sorted position = row within every segment it runs in
        ending = np.flatnonzero(lengths != t1s[seg])  # sequences ending before their t1
        run = lengths[ending] - t0s[seg[ending]]  # real steps of each in its segment, >= 1
        order = np.argsort(-run, kind="stable")
        inside, run = ending[order], run[order]  # (R,) by decreasing run
        final = offset[seg] + j  # (B,) row of the segment's end state in the table
        final[inside] = offset[-1] + np.arange(len(inside))  # after the table: rebuilt rows
        k = seg[inside]  # (R,)
        start = np.where(k == 0, inside, offset[k - 1] + inside)  # (R,) segment start state
        # counts[s]: how many have a step s (run > s); each cell (s, r) of r < counts[s]
        counts = len(run) - np.cumsum(np.bincount(run))[: run.max() if len(run) else 0]
        s = np.repeat(np.arange(len(counts)), counts)  # (n,) step of each cell, step-major
        r = np.arange(len(s)) - np.repeat(np.cumsum(counts) - counts, counts)  # (n,) its row
        t = t0s[k[r]] + s  # (n,) time step of each real step
        packed = self.first_rows[t] + inside[r]  # (n,) its packed row
        past = s > 0  # the first R cells are step 0 of each; the rest follow a step

        def as_tensor(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64)).to(self.device)

        return CoverEnds(
            final=as_tensor(final),
            start=as_tensor(start),
            last=self.last_rows[as_tensor(inside)],
            inputs=as_tensor(packed),
            previous=as_tensor(self.first_rows[t[past] - 1] + inside[r[past]]),
            counts=counts.tolist(),
        )

    @classmethod
    def dense(cls, length: int, batch: int, device: torch.device | str = "cpu") -> PackedLayout:
        """The layout of ``batch`` sequences all of ``length`` steps."""
        return cls([length] * batch, device)

    @cached_property
    def first_rows(self) -> np.ndarray:
        """(T,) the packed row of step t of the first (longest) sequence."""
        return np.cumsum(self.step_rows) - self.step_rows

    @cached_property
    def last_rows(self) -> torch.Tensor:
        """(B,) the packed row of each sorted sequence's last step."""
        ends = np.array(self.sorted_lengths) - 1
        return torch.from_numpy(self.first_rows[ends] + np.arange(self.batch)).to(self.device)

    def _rows(self, lengths: np.ndarray, rank: np.ndarray, reverse: bool = False) -> np.ndarray:
        """(N,) packed rows of the sequences of ``lengths`` whose sorted positions are
        ``rank``, sequence after sequence, each in time order (reversed: last step first)."""
        first = self.first_rows  # (T,)
        seq = np.repeat(rank, lengths)  # (N,) sorted position of each entry's sequence
        step = np.arange(self.n_rows) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        if reverse:
            step = np.repeat(lengths, lengths) - 1 - step
        return first[step] + seq

    @property
    def seq_to_packed(self) -> torch.Tensor:
        """(N,) packed row of every step, sequence by sequence in the batch's own order."""
        if self._seq_to_packed is None:
            rank = np.empty(self.batch, dtype=np.int64)  # sorted position of each sequence
            rank[np.array(self._order)] = np.arange(self.batch)
            rows = self._rows(np.array(self.lengths, dtype=np.int64), rank)
            self._seq_to_packed = torch.from_numpy(rows).to(self.device)
        return self._seq_to_packed

    @property
    def packed_to_seq(self) -> torch.Tensor:
        """(N,) the inverse of ``seq_to_packed``: the row of ``cat(xs)`` at each packed row."""
        if self._packed_to_seq is None:
            index = self.seq_to_packed
            inverse = torch.empty_like(index)
            inverse[index] = torch.arange(self.n_rows, device=self.device)
            self._packed_to_seq = inverse
        return self._packed_to_seq

    @property
    def reversed_rows(self) -> torch.Tensor:
        """(N,) for each packed row, the packed row of the same sequence's mirrored step.

        ``data[reversed_rows]`` is the packed data of every sequence reversed in time.
        """
        if self._reversed is None:
            lengths = np.array(self.sorted_lengths, dtype=np.int64)
            rank = np.arange(self.batch)
            index = np.empty(self.n_rows, dtype=np.int64)
            index[self._rows(lengths, rank)] = self._rows(lengths, rank, reverse=True)
            self._reversed = torch.from_numpy(index).to(self.device)
        return self._reversed

    def pack(self, xs: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
        """List of B tensors ``(L_i, F)``, or one tensor ``(B, T, F)`` of a dense
        layout, -> packed ``(N, F)``."""
        if isinstance(xs, torch.Tensor):
            if not self.is_dense or xs.dim() != 3 or xs.shape[:2] != (self.batch, self.max_length):
                raise InputError(
                    f"pack: a tensor needs a dense layout and shape ({self.batch}, "
                    f"{self.max_length}, F), got {tuple(xs.shape)} for lengths {self.lengths}"
                )
            return xs.transpose(0, 1).reshape(self.n_rows, -1)  # (T, B, F) -> (N, F)
        if not isinstance(xs, (list, tuple)):
            raise InputError(f"pack: xs must be a list or tuple of tensors, got {describe(xs)}")
        got = [x.shape[0] if isinstance(x, torch.Tensor) else None for x in xs]
        if got != self.lengths:
            raise InputError(f"pack: sequences of lengths {got}, the layout is for {self.lengths}")
        widths = {tuple(x.shape[1:]) for x in xs}
        if len(widths) > 1 or xs[0].dim() != 2:
            raise InputError(
                f"pack: sequences must all be (L_i, F) with one F, got {sorted(widths)}"
            )
        if self.is_dense:
            return torch.stack(tuple(xs), dim=1).flatten(0, 1)  # (T, B, F) -> (N, F)
        return torch.cat(tuple(xs)).index_select(0, self.packed_to_seq)

    def unpack(self, data: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Packed ``(N, H)`` -> tuple of B tensors ``(L_i, H)`` in the batch's own order."""
        self._check_rows(data)
        if self.is_dense:
            return data.view(self.max_length, self.batch, -1).unbind(1)
        return data.index_select(0, self.seq_to_packed).split(self.lengths)

    def unpack_dense(self, data: torch.Tensor) -> torch.Tensor:
        """Packed ``(N, H)`` of a dense layout -> ``(B, T, H)``, a view."""
        self._check_rows(data)
        if not self.is_dense:
            raise InputError(f"unpack_dense: lengths {self.lengths} are not all equal")
        return data.view(self.max_length, self.batch, -1).transpose(0, 1)

    def _check_rows(self, data: torch.Tensor) -> None:
        if not isinstance(data, torch.Tensor) or data.dim() != 2 or data.shape[0] != self.n_rows:
            raise InputError(
                f"unpack: packed data must be ({self.n_rows}, H), got {describe(data)}"
            )

    def sort_states(self, state: torch.Tensor) -> torch.Tensor:
        """(layers, B, H) in the batch's order -> in sorted order."""
        self._check_states(state)
        return state if self._identity else state.index_select(1, self.sorted_indices)

    def unsort_states(self, state: torch.Tensor) -> torch.Tensor:
        """(layers, B, H) in sorted order -> in the batch's order."""
        self._check_states(state)
        return state if self._identity else state.index_select(1, self.unsorted_indices)

    def _check_states(self, state: torch.Tensor) -> None:
        if not isinstance(state, torch.Tensor) or state.dim() != 3 or state.shape[1] != self.batch:
            raise InputError(f"states must be (layers, {self.batch}, H), got {describe(state)}")
