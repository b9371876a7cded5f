"""Decode the next training batch while the network works on this one (images read from files).

The image tasks draw batches as dataset rows and turn rows into images with a decoder
(:func:`simlearn.data.image_files.device_images`: ``(rows, device) -> float (B, C, H, W)``).
In memory that is an index into the device copy; from files it is decoding, in the
``FileImages`` pool of threads. :class:`ReadAhead` starts decoding batch k + 1 in one background
thread as batch k is handed to the engine, so decoding overlaps the forward and backward pass.
What a batch holds does not change: the same rows give the same pixels (decoding is
deterministic), so a run reads the same numbers with or without it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

__all__ = ["ReadAhead"]

T = TypeVar("T")
_END = object()


class ReadAhead:
    """A decoder ``(rows, device) -> images`` whose :meth:`iterate` decodes one batch ahead.

    ``depth``: decoded or decoding batches kept (the one being consumed and the next); older ones
    are dropped (cancelled if not started), so memory holds at most ``depth`` batches however
    many batches are drawn without being consumed (the engine counts an epoch's batches first).
    """

    def __init__(self, decode: Callable[[np.ndarray, Any], Any], depth: int = 2) -> None:
        self.decode = decode
        self.depth = depth
        self.device: Any = "cpu"  # where read-ahead decodes: the device last asked for
        self._pool: ThreadPoolExecutor | None = None
        self._pending: OrderedDict[bytes, Future] = OrderedDict()

    @staticmethod
    def _key(rows: np.ndarray) -> bytes:
        return np.ascontiguousarray(rows, dtype=np.int64).tobytes()

    def ahead(self, rows: np.ndarray) -> None:
        """Start decoding ``rows`` in the background (a no-op when already started)."""
        key = self._key(rows)
        if key in self._pending:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="read-ahead")
        self._pending[key] = self._pool.submit(self.decode, np.array(rows), self.device)
        while len(self._pending) > self.depth:
            _, stale = self._pending.popitem(last=False)
            stale.cancel()

    def __call__(self, rows: np.ndarray, device: Any) -> Any:
        """The images of ``rows`` on ``device``: read ahead when they were, decoded now if not."""
        self.device = device
        future = self._pending.pop(self._key(rows), None)
        if future is None or future.cancelled():
            return self.decode(rows, device)
        return future.result().to(device)

    def iterate(self, batches: Iterable[T], rows_of: Callable[[T], np.ndarray]) -> Iterator[T]:
        """``batches`` unchanged; as batch k is yielded, batch k + 1's rows (``rows_of``) are
        being decoded."""
        it = iter(batches)
        current = next(it, _END)
        if current is _END:
            return
        self.ahead(rows_of(current))  # type: ignore[arg-type]
        for following in it:
            self.ahead(rows_of(following))
            yield current  # type: ignore[misc]
            current = following
        yield current  # type: ignore[misc]

    def close(self) -> None:
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
