"""Threads in the pipeline: order, errors, the pixel budget, and outputs that ignore scheduling."""

from __future__ import annotations

import os
import threading
import time

import pytest

from pipeline.parallel import Budget, available_cpus, map_threads
from pipeline.steps.textures import TexturesOptions, textures
from tests.pipeline.test_textures import asset_with, encoded, noisy_image


def test_results_come_back_in_input_order_whatever_finishes_first() -> None:
    def slow_for_small(n: int) -> int:
        time.sleep(0.01 * (5 - n))
        return n * n

    assert map_threads(slow_for_small, range(5), workers=5) == [0, 1, 4, 9, 16]


def test_one_worker_runs_everything_on_the_calling_thread() -> None:
    names = map_threads(lambda _: threading.current_thread().name, range(3), workers=1)
    assert names == [threading.current_thread().name] * 3


def test_several_workers_really_run_at_once() -> None:
    barrier = threading.Barrier(3, timeout=5)  # breaks (raises) unless three calls overlap
    assert map_threads(lambda n: barrier.wait() >= 0 and n, range(3), workers=3) == [0, 1, 2]


def test_the_first_error_in_input_order_is_raised_after_the_others_finish() -> None:
    finished: list[int] = []

    def work(n: int) -> int:
        if n in (1, 2):
            raise ValueError(f"item {n}")
        time.sleep(0.05)
        finished.append(n)
        return n

    with pytest.raises(ValueError, match="item 1"):
        map_threads(work, range(4), workers=4)
    assert sorted(finished) == [0, 3]


def test_available_cpus_is_what_this_process_may_use() -> None:
    assert available_cpus() == len(os.sched_getaffinity(0))


def test_a_budget_never_holds_more_than_its_capacity() -> None:
    budget, lock = Budget(10), threading.Lock()
    held, peak = [0], [0]

    def work(amount: int) -> None:
        with budget.hold(amount):
            with lock:
                held[0] += amount
                peak[0] = max(peak[0], held[0])
            time.sleep(0.02)
            with lock:
                held[0] -= amount

    map_threads(work, [4, 4, 4, 4, 3, 3], workers=6)
    assert peak[0] <= 10
    assert peak[0] >= 7  # two or more ran together: the budget is not a plain lock


def test_an_amount_over_the_capacity_runs_alone_instead_of_waiting_forever() -> None:
    budget, entered = Budget(5), threading.Event()

    def small() -> None:
        with budget.hold(1):
            entered.set()

    with budget.hold(50):
        other = threading.Thread(target=small)
        other.start()
        assert not entered.wait(0.1)  # the big holder has the whole budget
    other.join(5)
    assert entered.is_set()
    with pytest.raises(ValueError, match="positive"):
        Budget(0)


def test_textures_encode_the_same_bytes_on_one_thread_and_on_many() -> None:
    sources = [encoded(noisy_image(640, 480, seed=seed), "JPEG", quality=90) for seed in range(5)]
    asset = asset_with(*sources, normal=2)
    serial = textures(asset, TexturesOptions(max_size=512, workers=1))
    parallel = textures(asset, TexturesOptions(max_size=512, workers=5, pixels_in_flight=700_000))
    assert [t.data for t in parallel.textures] == [t.data for t in serial.textures]
    assert [t.mime_type for t in parallel.textures] == ["image/webp"] * 5
