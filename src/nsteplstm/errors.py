"""The one error type for mistakes a user can make (bad arguments, files, configs)."""


class InputError(ValueError):
    """A user-caused problem, described in one line: what was expected and what came.

    The CLI turns it into that line on stderr and exit code 2. It subclasses
    `ValueError`, so library callers can catch either.
    """
