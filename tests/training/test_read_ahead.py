"""ReadAhead: the next batch is decoded while this one is used; what a batch holds is unchanged."""

import threading

import numpy as np
import torch

from simlearn.training.read_ahead import ReadAhead


class Decoder:
    """rows -> a tensor of the rows; records which rows were decoded, and in which thread."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[int, ...], str]] = []
        self.lock = threading.Lock()

    def __call__(self, rows, device):
        with self.lock:
            self.calls.append((tuple(int(r) for r in rows), threading.current_thread().name))
        return torch.as_tensor(np.asarray(rows, dtype=np.int64)).to(device)


def _batches(n: int) -> list[np.ndarray]:
    return [np.arange(3 * i, 3 * i + 3) for i in range(n)]


def test_each_batch_is_decoded_once_one_batch_ahead():
    decoder = Decoder()
    ahead = ReadAhead(decoder)
    batches = _batches(5)
    for i, rows in enumerate(ahead.iterate(batches, lambda b: b)):
        np.testing.assert_array_equal(rows, batches[i])
        # when batch i is handed out, batch i + 1 has been submitted too
        expected = {tuple(b.tolist()) for b in batches[: i + 2]}
        with decoder.lock:
            assert {c for c, _ in decoder.calls} <= expected
        assert torch.equal(ahead(rows, "cpu"), torch.as_tensor(rows))
    assert sorted(c for c, _ in decoder.calls) == [tuple(b.tolist()) for b in batches]
    assert all(name.startswith("read-ahead") for _, name in decoder.calls)
    ahead.close()


def test_batches_drawn_without_use_keep_memory_bounded():
    """The engine counts an epoch's batches before training: at most ``depth`` stay pending."""
    decoder = Decoder()
    ahead = ReadAhead(decoder, depth=2)
    assert len(list(ahead.iterate(_batches(50), lambda b: b))) == 50
    assert len(ahead._pending) == 2
    # a batch that was not read ahead (or was dropped) is decoded on the spot
    rows = np.array([7, 1, 4])
    assert torch.equal(ahead(rows, "cpu"), torch.as_tensor(rows))
    with decoder.lock:
        assert ((7, 1, 4), threading.current_thread().name) in decoder.calls
    assert list(ahead.iterate([], lambda b: b)) == []
    ahead.close()
