"""The ``nsteplstm`` program (also ``python -m nsteplstm``): the command line of
:mod:`nsteplstm.cli`, which it imports first, so that a Ctrl-C during that import
(NumPy's, some 0.1 s) also ends in one line and exit code 130."""

from __future__ import annotations

import signal
import sys


def main() -> int:
    """Import and run :func:`nsteplstm.cli.main` on ``sys.argv``; its exit code."""
    try:
        from .cli import main as command_line
    except KeyboardInterrupt:
        print("nsteplstm: interrupted", file=sys.stderr)
        return 130
    code = command_line()
    # Done and reported: a signal while the interpreter exits (torch's teardown takes
    # about a second) would end a finished command as interrupted, with no message.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    return code


if __name__ == "__main__":
    sys.exit(main())
