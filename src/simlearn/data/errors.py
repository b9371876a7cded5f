"""The errors a user's data or downloads can raise: each one message, naming the file, what is
wrong and what to do.

The download stage prints any `DataError` as its one message, without a traceback; every other
exception is a bug and keeps its traceback. The subclasses also derive from the built-in error
that their callers caught before (``ValueError``, ``FileNotFoundError``), so existing handlers
keep working.
"""

from __future__ import annotations

__all__ = ["CorruptFileError", "DataError", "LayoutError"]


class DataError(Exception):
    """A problem with the data a user supplied or a source served; the message is for the user."""


class CorruptFileError(DataError, ValueError):
    """A file cannot be read as what it should be (truncated, not an image, a bad header)."""


class LayoutError(DataError, ValueError):
    """Files are not where the expected layout puts them; the message says which folder was
    expected and what was found instead."""
