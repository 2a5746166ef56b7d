"""Handlers for worker subprocesses (``python -m server.jobs.worker --handler ...``).

They talk to the test through files in ``$PAVILION_TEST_JOBS_DIR``: each call writes
``<job>.<pid>.started``, blocks while a file named ``block`` exists, then writes
``<job>.<pid>.done``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

DIR_VARIABLE = "PAVILION_TEST_JOBS_DIR"


def record_and_block(job_id: str) -> None:
    directory = Path(os.environ[DIR_VARIABLE])
    pid = os.getpid()
    (directory / f"{job_id}.{pid}.started").touch()
    while (directory / "block").exists():
        time.sleep(0.05)
    (directory / f"{job_id}.{pid}.done").touch()
