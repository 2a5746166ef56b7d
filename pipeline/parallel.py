"""Run independent, GIL-releasing work on every core this process may use.

Pillow releases the GIL while it decodes, resizes and encodes, and ctypes releases it around
meshoptimizer calls, so threads are enough to use both cores of a worker: no processes to start,
nothing to pickle, and the worker's memory and CPU limits cover the threads too. Results come
back in input order and each item is computed independently, so outputs do not depend on
scheduling (the pipeline's outputs stay byte-identical run to run).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def map_threads(fn: Callable[[T], R], items: Iterable[T], workers: int | None = None) -> list[R]:
    """``[fn(item) for item in items]``, spread over up to ``workers`` threads.

    Args:
        fn: a function that holds no shared mutable state (it may run on any thread).
        items: the inputs.
        workers: the most threads to use; default :func:`available_cpus`. One, or a single
            item, runs everything on the calling thread.

    Returns:
        The results in the order of ``items``. The first exception ``fn`` raises (in input
        order) is re-raised here once every started call has finished.
    """
    batch = list(items)
    count = min(len(batch), workers if workers is not None else available_cpus())
    if count <= 1:
        return [fn(item) for item in batch]
    with ThreadPoolExecutor(max_workers=count, thread_name_prefix="pipeline") as pool:
        futures = [pool.submit(fn, item) for item in batch]
        return [future.result() for future in futures]


class Budget:
    """A counting semaphore over a quantity (pixels, bytes) rather than a number of holders.

    ``hold(amount)`` blocks until ``amount`` fits under the capacity next to what the other
    holders have; an amount larger than the capacity waits until it can run alone. This bounds
    the memory of parallel work by its size, not by its count: four 2K textures may decode at
    once, two 8K ones may not.
    """

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self._used = 0
        self._changed = threading.Condition()

    @contextmanager
    def hold(self, amount: int) -> Iterator[None]:
        """Hold ``min(amount, capacity)`` for the duration of the ``with`` block."""
        amount = max(0, min(amount, self.capacity))
        with self._changed:
            self._changed.wait_for(lambda: self._used + amount <= self.capacity)
            self._used += amount
        try:
            yield
        finally:
            with self._changed:
                self._used -= amount
                self._changed.notify_all()
