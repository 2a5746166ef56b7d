"""The latency arithmetic of bench/tours.py (pure): server-added latency from sends and frames.

A sample is one pose an observer client saw for the first time: when it was written (the
generator's clock), when the frame carrying it was read, and that frame's tick number.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def unwrap_ticks(ticks: npt.ArrayLike, arrivals: npt.ArrayLike, hz: float) -> npt.NDArray[np.int64]:
    """Frame ticks (u16, wrapping) made monotonic with the help of their arrival times."""
    t16 = np.asarray(ticks, dtype=np.int64)
    when = np.asarray(arrivals, dtype=np.float64)
    if len(t16) == 0:
        return t16
    expected = t16[0] + (when - when[0]) * hz
    wraps: npt.NDArray[np.int64] = np.rint((expected - t16) / 65536).astype(np.int64)
    return t16 + 65536 * wraps


def tick_starts(
    numbers: npt.ArrayLike, cutoffs: npt.ArrayLike, hz: float
) -> npt.NDArray[np.float64]:
    """The scheduled start of each tick, from the latest send each tick carried.

    Ticks follow a grid ``phase + k / hz``. The latest send first seen in frame ``k`` is within a
    send phase of tick ``k``'s start, and jitters by a few ms (timers have ms resolution). The
    server re-phases its grid after an overrun (server/tours/shell.py ``_ticks``: ``deadline =
    now + period``), always later and by more than a period, and a tick may start late. So: the
    ticks are cut into runs wherever ``cutoff - k / hz`` jumps by more than half a period, each
    run takes the median of its phases, and a tick's phase is the smallest of its run's and the
    later runs' (a late tick is measured from the grid it missed).

    Args:
        numbers: tick numbers, increasing (unwrapped).
        cutoffs: per tick, the latest send seen in its frames.
        hz: the tick rate.

    Returns:
        Per tick, its scheduled start (increasing).
    """
    ticks = np.asarray(numbers, dtype=np.int64)
    phase = np.asarray(cutoffs, dtype=np.float64) - ticks / hz
    if len(phase) == 0:
        return phase
    run = np.concatenate(([0], np.cumsum(np.abs(np.diff(phase)) > 0.5 / hz)))
    medians = np.array([np.median(phase[run == r]) for r in range(int(run[-1]) + 1)])
    return np.minimum.accumulate(medians[run][::-1])[::-1] + ticks / hz


def latency_samples(
    sends: npt.ArrayLike, arrivals: npt.ArrayLike, ticks: npt.ArrayLike, hz: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """End-to-end and server-added latency (seconds) of each observed pose.

    Server-added latency is the arrival minus the scheduled start of the first server tick after
    the send (research-realtime.md §7), the starts estimated by :func:`tick_starts` from the
    sends rather than from frame arrivals: the first frame of a tick leaves one area-of-interest
    computation after the tick started, and every send in that gap would be charged a period.
    The first tick after a send is never later than the frame that carried it.

    Args:
        sends: when each pose was written to the socket (generator clock, seconds).
        arrivals: when the frame carrying it was read.
        ticks: that frame's tick number (u16 as sent).
        hz: the server's tick rate.

    Returns:
        (end-to-end, server-added), one value per sample.
    """
    sent = np.asarray(sends, dtype=np.float64)
    came = np.asarray(arrivals, dtype=np.float64)
    if len(sent) == 0:
        return np.empty(0), np.empty(0)
    numbers, frame = np.unique(unwrap_ticks(ticks, came, hz), return_inverse=True)
    cutoffs = np.full(len(numbers), -np.inf)
    np.maximum.at(cutoffs, frame, sent)
    starts = tick_starts(numbers, cutoffs, hz)
    first = np.minimum(np.searchsorted(starts, sent, side="left"), frame)
    return came - sent, came - starts[first]
