"""The one documented error type for a user's mistake or bad input.

Everything the command line turns into a one-line message (exit 2) is a ResetlensError; anything
else escaping is a bug in resetlens, not in the input.
"""

from __future__ import annotations


class ResetlensError(Exception):
    """Bad usage or unusable input: the message is meant for the user, one line, no traceback."""

    def __init__(self, message: str, *, path: str | None = None, offset: int | None = None) -> None:
        self.path = path
        self.offset = offset
        where = ""
        if path is not None:
            where = f"{path}"
            if offset is not None:
                where += f" at byte {offset}"
            where += ": "
        super().__init__(where + message)
        self.reason = message


class CaptureError(ResetlensError):
    """A capture file cannot be read at all (wrong magic, truncated header, ...)."""


class ManifestError(ResetlensError):
    """resetlens.toml is malformed or names files that do not exist."""
