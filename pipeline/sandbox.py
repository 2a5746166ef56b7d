"""Run the pipeline on one upload in a child process with memory, CPU-time and wall-clock limits.

A hostile or merely enormous file must cost one failed job, never the worker: the conversion
runs in a fresh interpreter (``python -m pipeline.sandbox``, not a fork of a process with
threads and sockets) that first lowers its own limits, then converts. The parent reads progress
lines, enforces the wall clock and turns every way the child can end into a result or a
:class:`SandboxError` with a stable code:

    exit 0                       the outputs, read back from the job's directory
    a pipeline refusal           PipelineError's code and message (bad input: not retried)
    MemoryError / RLIMIT_DATA    limit_memory
    SIGXCPU / RLIMIT_CPU         limit_cpu
    wall clock passed            limit_wall (the child's process group is killed)
    any other death              crashed (a signal or an unexpected exit status)

The child asks the kernel to SIGKILL it when its parent dies (``PR_SET_PDEATHSIG``): a worker
killed mid-job does not leave a conversion running on its own.

Limits: ``RLIMIT_DATA`` rather than ``RLIMIT_AS``, because the Node.js validator the child starts
reserves gigabytes of address space it never touches (V8's pointer cage); ``RLIMIT_DATA`` counts
what is really writable (heap and private mappings). Children of the child (the validator)
inherit the limits. Protocol on the child's stdout: one JSON object per line, ``{"progress":
[step, fraction]}`` as it goes and finally ``{"ok": true}`` or ``{"error": [code, message]}``.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError

logger = logging.getLogger(__name__)

Progress = Callable[[str, float], None]


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    """What one conversion may use.

    Attributes:
        memory_bytes: ``RLIMIT_DATA`` of the child (default 3 GiB; the benchmarks peak at ~350 MB).
        cpu_seconds: ``RLIMIT_CPU`` (default 300 s of CPU, all threads together).
        wall_seconds: killed after this long (default 600 s).
    """

    memory_bytes: int = 3 * 1024**3
    cpu_seconds: int = 300
    wall_seconds: float = 600.0


class SandboxError(Exception):
    """The conversion ended without outputs; ``code`` says how, ``retryable`` whether trying
    again could help (a crash might be transient; a refusal or a limit will happen again)."""

    def __init__(self, code: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable


@dataclass(slots=True)
class SandboxResult:
    files: dict[str, bytes]
    report: dict[str, Any]


def convert_in_sandbox(
    data: bytes,
    *,
    options: dict[str, Any] | None = None,
    limits: SandboxLimits = SandboxLimits(),
    progress: Progress | None = None,
) -> SandboxResult:
    """Convert ``data`` in a limited child process.

    Args:
        data: the uploaded bytes.
        options: ``ConvertOptions`` fields as JSON values (``unit``, ``up``, ``name``,
            ``validate``).
        limits: memory, CPU and wall-clock limits.
        progress: called with (step, fraction) as the child reports them.

    Returns:
        Every output file by relative path, and the report.

    Raises:
        SandboxError: see the module docstring for the codes.
    """
    with tempfile.TemporaryDirectory(prefix="pavilion-job-") as work:
        root = Path(work)
        (root / "input").write_bytes(data)
        (root / "options.json").write_text(json.dumps(options or {}))
        outcome = _run_child(root, limits, progress)
        if "error" in outcome:
            code, message = outcome["error"]
            raise SandboxError(str(code), str(message), retryable=bool(outcome.get("retryable")))
        out = root / "out"
        files = {
            str(path.relative_to(out)): path.read_bytes()
            for path in sorted(out.rglob("*"))
            if path.is_file()
        }
        report = json.loads(files["report.json"])
        return SandboxResult(files, report)


def _run_child(root: Path, limits: SandboxLimits, progress: Progress | None) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "pipeline.sandbox", str(root), json.dumps(_limits(limits)),
        str(os.getpid()),
    ]  # fmt: skip
    started = time.monotonic()
    child = subprocess.Popen(  # noqa: S603 - our own interpreter and module, no shell
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: the validator dies with it
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    final: dict[str, Any] = {}
    stderr: list[bytes] = []
    readers = [
        threading.Thread(target=_read_lines, args=(child, progress, final), daemon=True),
        threading.Thread(target=lambda: stderr.append(child.stderr.read()), daemon=True),  # type: ignore[union-attr]
    ]
    for reader in readers:
        reader.start()
    try:
        status = child.wait(timeout=limits.wall_seconds)
    except subprocess.TimeoutExpired:
        _kill_group(child)
        raise SandboxError(
            "limit_wall", f"the conversion took longer than {limits.wall_seconds:.0f} s"
        ) from None
    finally:
        for reader in readers:
            reader.join(timeout=5)
    elapsed = time.monotonic() - started
    _kill_group(child)  # anything the child left behind (a validator it started)
    return _outcome(status, final, b"".join(stderr), elapsed)


def _read_lines(
    child: subprocess.Popen[bytes], progress: Progress | None, final: dict[str, Any]
) -> None:
    assert child.stdout is not None
    for line in child.stdout:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if not isinstance(message, dict):
            continue
        if "progress" in message and progress is not None:
            step, fraction = message["progress"]
            progress(str(step), float(fraction))
        elif "ok" in message or "error" in message or "retryable" in message:
            final.update(message)


def _outcome(status: int, final: dict[str, Any], stderr: bytes, elapsed: float) -> dict[str, Any]:
    if status == 0 and final.get("ok"):
        return final
    if final.get("error"):
        return final
    if status == -signal.SIGXCPU or status == 128 + signal.SIGXCPU:
        raise SandboxError("limit_cpu", "the conversion used up its CPU time")
    tail = stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
    if status < 0:
        name = signal.Signals(-status).name
        # SIGKILL without our wall clock: the kernel's OOM killer or an operator.
        raise SandboxError(
            "crashed", f"the conversion was killed by {name} after {elapsed:.1f} s", retryable=True
        )
    raise SandboxError(
        "crashed", f"the conversion exited with {status}: {tail[0][:200]}", retryable=True
    )


def _kill_group(child: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
    child.wait()


def _limits(limits: SandboxLimits) -> dict[str, int]:
    return {"memory_bytes": limits.memory_bytes, "cpu_seconds": limits.cpu_seconds}


# --- the child -----------------------------------------------------------------------------


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent(parent: int) -> None:
    """SIGKILL this process when its parent dies (a worker killed mid-job leaves no orphan)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def _apply_limits(memory_bytes: int, cpu_seconds: int) -> None:
    resource.setrlimit(resource.RLIMIT_DATA, (memory_bytes, memory_bytes))
    # Soft limit: SIGXCPU (the process dies with it); hard limit a little later: SIGKILL.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def child_main(argv: list[str]) -> int:
    """``python -m pipeline.sandbox WORKDIR LIMITS_JSON PARENT_PID``: convert WORKDIR/input into
    WORKDIR/out."""
    root, limits = Path(argv[0]), json.loads(argv[1])
    if len(argv) > 2:
        _die_with_parent(int(argv[2]))
    _apply_limits(int(limits["memory_bytes"]), int(limits["cpu_seconds"]))
    # Imported after the limits, so that nothing heavy runs unlimited.
    from pipeline.run import ConvertOptions, convert
    from pipeline.validate import ValidatorUnavailable

    try:
        options = ConvertOptions(**json.loads((root / "options.json").read_text()))
        data = (root / "input").read_bytes()
        result = convert(data, options, progress=lambda step, f: _emit({"progress": [step, f]}))
    except PipelineError as exc:
        _emit({"error": [exc.code, exc.message]})
        return 0
    except MemoryError:
        _emit({"error": ["limit_memory", "the conversion needed more memory than it may use"]})
        return 0
    except ValidatorUnavailable as exc:  # the machine's fault, not the file's: worth a retry
        _emit({"error": ["validator_unavailable", str(exc)], "retryable": True})
        return 0
    out = root / "out"
    for path, content in result.files.items():
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    _emit({"ok": True})
    return 0


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
