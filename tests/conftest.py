"""Shared test fixtures."""

import errno
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread, and a busy machine's OpenMP contention
    cannot slow them down; the previous setting comes back afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """``full_disk(n)``: from now on ``os.fsync`` of a file's data fails with ENOSPC after
    ``n`` more successful ones, as on a disk that fills up (``monkeypatch.undo()`` ends it)."""

    def fill(writes: int) -> None:
        real, count = os.fsync, [0]

        def fsync(fd: int) -> None:
            if not os.path.isdir(f"/proc/self/fd/{fd}"):  # directories: no data to write
                count[0] += 1
                if count[0] > writes:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            real(fd)

        monkeypatch.setattr(os, "fsync", fsync)

    return fill


@pytest.fixture
def not_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Path]]:
    """``not_a_file(name)``: ``tmp_path / name`` made a Unix socket, a path that exists
    but is no regular file (unlike a FIFO or ``/dev/zero``, reading it fails at once,
    so a missing check fails a test instead of hanging it)."""
    sockets: list[socket.socket] = []

    def make(name: str) -> Path:
        monkeypatch.chdir(tmp_path)  # bind a short relative name: paths are limited to 108
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(name)
        sockets.append(sock)
        return tmp_path / name

    yield make
    for sock in sockets:
        sock.close()


@pytest.fixture
def legends_drawn(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The legend texts of every overlay figure (``plots.overlay_figure``) drawn in
    the test, one list a figure."""
    from nsteplstm import plots

    drawn: list[list[str]] = []
    real = plots.overlay_figure

    def overlay_figure(*args: object, **kwargs: object) -> object:
        fig = real(*args, **kwargs)
        legends = [ax.get_legend() for ax in fig.axes] + list(fig.legends)
        drawn.append([t.get_text() for lg in legends if lg is not None for t in lg.get_texts()])
        return fig

    monkeypatch.setattr(plots, "overlay_figure", overlay_figure)
    return drawn
