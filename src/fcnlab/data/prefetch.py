"""Batches gathered in a background thread from decoded arrays, pinned for CUDA (training and validation)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import torch

from fcnlab.data.resident import device_batches, is_resident


class Prefetcher:
    """Gathers the next batch from the decoded arrays in a background thread (pinned for CUDA).

    Used by training (:func:`fcnlab.training.loop.train_one_epoch`) and validation
    (:meth:`~fcnlab.tasks.Task.evaluate`): with ``pin`` the batches come in page-locked memory, so
    ``.to(device, non_blocking=True)`` is a true asynchronous copy (a copy from pageable memory waits for the
    device), and gathering batch ``i + 1`` overlaps the device's work on batch ``i``. Data resident on the
    device (:mod:`fcnlab.data.resident`) is indexed there in the consuming thread instead.
    """

    def __init__(self, data: Any, batches: list[torch.Tensor], pin: bool):
        self.data, self.batches, self.pin = data, batches, pin
        self.result: Any = None
        self.thread: threading.Thread | None = None

    def _load(self, i: int) -> None:
        try:
            x, y = self.data.batch(self.batches[i])
            if self.pin:
                x, y = x.pin_memory(), y.pin_memory()
            self.result = (x, y)
        except BaseException as e:  # re-raised in the consuming thread, never a stale batch
            self.result = e

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.batches)
        if n == 0:
            return
        if is_resident(self.data):  # gathered on the device: no thread, no pinning, one index upload
            for index in device_batches(self.batches, self.data.device):
                yield self.data.batch(index)
            return
        self._load(0)
        for i in range(n):
            item = self.result
            if isinstance(item, BaseException):
                raise item
            if i + 1 < n:
                self.thread = threading.Thread(target=self._load, args=(i + 1,), daemon=True)
                self.thread.start()
            yield item
            if self.thread is not None:
                self.thread.join()
                self.thread = None
