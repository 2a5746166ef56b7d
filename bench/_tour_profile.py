"""The app under uvicorn with cProfile on the event loop's thread, for ``bench/tours.py --profile``.

    python -m bench._tour_profile OUT.prof PORT

Runs what ``python -m uvicorn --factory server.asgi:build`` runs. SIGUSR1 starts the profiler
(the load generator sends it when the measurement window opens), SIGUSR2 stops it and writes the
pstats file, and ``OUT.prof.gc.json``: the garbage collections of the window (generation,
milliseconds), which cProfile does not see and which stop the event loop. Python runs signal
handlers on the main thread, which is the event loop's thread: only that thread is profiled (the
tour server's work; ``to_thread`` helpers are not).
"""

from __future__ import annotations

import cProfile
import gc
import json
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any


class Window:
    """cProfile and the garbage collector's pauses, between SIGUSR1 and SIGUSR2."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.profiler = cProfile.Profile()
        self.on = False
        self.started: float | None = None  # the running collection's start, when in the window
        self.pauses: list[tuple[int, float]] = []

    def collected(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.started = time.perf_counter() if self.on else None
        elif self.started is not None:
            elapsed = (time.perf_counter() - self.started) * 1000
            self.pauses.append((int(info["generation"]), round(elapsed, 3)))
            self.started = None

    def start(self, _signum: int, _frame: FrameType | None) -> None:
        self.pauses.clear()
        self.on = True
        self.profiler.enable()

    def stop(self, _signum: int, _frame: FrameType | None) -> None:
        self.profiler.disable()
        self.on = False
        self.profiler.dump_stats(self.out)
        tracked = len(gc.get_objects())
        record = {"pauses": self.pauses, "tracked_objects": tracked}
        Path(f"{self.out}.gc.json").write_text(json.dumps(record))


def main(argv: Sequence[str] | None = None) -> int:
    out, port = (sys.argv[1:] if argv is None else list(argv))[:2]
    import uvicorn

    window = Window(Path(out))
    gc.callbacks.append(window.collected)
    signal.signal(signal.SIGUSR1, window.start)
    signal.signal(signal.SIGUSR2, window.stop)
    uvicorn.run(
        "server.asgi:build",
        factory=True,
        host="127.0.0.1",
        port=int(port),
        log_level="warning",
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
