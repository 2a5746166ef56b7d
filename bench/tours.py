"""Benchmark the tour server: N clients at 15 Hz in one hall, against a bare websockets ceiling.

    python bench/tours.py [--clients 1000] [--seconds 20] [--warmup 3] [--only ours|ceiling]
                          [--observers 50] [--profile OUT.prof]

Ours is the real app (``python -m uvicorn --factory server.asgi:build``) on a fresh SQLite
database in a temporary directory: migrated, an admin created with ``python -m server
create-user``, an expo and a 60 x 40 m hall created over REST; every client gets a guest token
and a single-use ticket right before it connects (``bench/_tour_load.py``). The ceiling is
``bench/_tour_ceiling.py``: the same fan-out with ``websockets.broadcast`` and nothing else
(research-realtime.md §7). Each server is pinned to CPU 0 and the load generator to CPU 1 when
the machine has two; the generator is a hand-written raw websocket client on uvloop, one process,
whose own CPU and send lateness are printed so that a saturated generator shows.

Measured over the window that follows the warm-up (all clients joined):

* server CPU: ``psutil`` user + system time of the server process over the window, as % of one
  core (every thread of it);
* throughput: binary frames delivered per second across all clients, and delivered / expected
  (clients x 15 Hz x window);
* latency, from 50 observer clients: end-to-end (pose written -> frame read) and server-added
  (frame read -> the start of the first server tick after the send; see
  ``_tour_load.latency_samples`` for how tick starts are estimated), p50 and p99;
* bytes per client per second (everything read after the handshake, websocket headers included)
  and per tick (those bytes per frame received).

Targets (issue 6): 1,000 clients in one hall on one server process at <= 100 % of one core;
p99 server-added latency <= 50 ms; <= 2 KB (2,048 bytes, the protocol's frame budget) per client
per tick; throughput >= 0.7x the ceiling's. The exit status is 0 even when a target is missed (a
benchmark, not a test) and 1 when a server or the generator fails.

``--profile OUT.prof`` runs our server under cProfile (``bench/_tour_profile.py``: on the event
loop's thread, during the window only) and prints where its time goes; its CPU figure is then
inflated by the profiler.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pstats
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/tours.py`: import bench.* from the repository
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.pipeline import ROOT, ToolFailed

HZ = 15.0
MAX_CPU = 100.0  # % of one core, at 1,000 clients
MAX_P99_MS = 50.0  # server-added
MAX_TICK_BYTES = 2048.0  # per client per tick
MIN_THROUGHPUT_RATIO = 0.7  # ours / ceiling
TARGET_CLIENTS = 1000
ADMIN_EMAIL, ADMIN_PASSWORD = "bench-admin@bench.local", "bench-admin-password"
ORIGIN = "http://bench.local"
MAX_GENERATOR_CPU = 0.85  # beyond it the generator's own delay shows in the latency

# The rows whose ratio means something (not counts, nor the load around the servers).
COMPARED = frozenset(
    (
        "server CPU, % of one core",
        "frames delivered / s",
        "delivered / expected",
        "server-added latency p50, ms",
        "server-added latency p99, ms",
        "end-to-end latency p50, ms",
        "end-to-end latency p99, ms",
        "bytes per client per s",
        "bytes per client per tick",
    )
)


@dataclass
class Served:
    """A server under test: its process, the tour websocket URL and (ours) the REST API."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    api: str | None
    log: Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def pin(cpu: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` pinning the child to ``cpu``; None on a machine with fewer than 2 CPUs."""
    if (os.cpu_count() or 1) < 2:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def _spawn(command: list[str], env: dict[str, str], cpu: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=pin(cpu)
        )


def _tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-20:]) if log.exists() else ""


def _wait_http(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ToolFailed(f"the server exited with {process.returncode}:\n{_tail(log)}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise ToolFailed(f"the server did not answer {url} within {timeout:.0f} s:\n{_tail(log)}")


def app_env(tmp: Path, api_port: int, tour_port: int, clients: int) -> dict[str, str]:
    """The environment of our server: a fresh embedded setup under ``tmp``, nothing inherited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAVILION_")}
    env.update(
        PAVILION_HOST="127.0.0.1",
        PAVILION_PORT=str(api_port),
        PAVILION_LOG_LEVEL="WARNING",
        PAVILION_VAR_DIR=str(tmp),
        PAVILION_SEED_DEMO="false",
        PAVILION_DATABASE__URL=f"sqlite:///{tmp}/bench.db",
        PAVILION_BLOBS__LOCAL_DIR=str(tmp / "blobs"),
        PAVILION_JOBS__JANITOR_SECONDS="0",
        PAVILION_TOURS__PORT=str(tour_port),
        PAVILION_TOURS__ORIGINS=json.dumps([ORIGIN]),
        PAVILION_TOURS__HALL_CAPACITY=str(max(2000, clients + 100)),
    )
    return env


def _cli(args: list[str], env: dict[str, str], stdin: str = "") -> None:
    command = [sys.executable, "-m", "server", *args]
    done = subprocess.run(command, cwd=ROOT, env=env, input=stdin.encode(), capture_output=True)
    if done.returncode != 0:
        raise ToolFailed(f"{' '.join(command)} failed:\n{done.stderr.decode(errors='replace')}")


def _hall(api: str) -> str:
    """Log in as the bench admin, create an expo with one 60 x 40 m hall; the hall's id."""
    import httpx

    with httpx.Client(base_url=api, timeout=30.0) as http:
        login = http.post(
            "/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        login.raise_for_status()
        http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        expo = http.post("/api/expos", json={"slug": "bench", "name": "Bench expo"})
        expo.raise_for_status()
        body = {"name": "Bench hall", "width": 60.0, "depth": 40.0}
        hall = http.post(f"/api/expos/{expo.json()['id']}/halls", json=body)
        hall.raise_for_status()
        return str(hall.json()["id"])


@contextmanager
def ours(tmp: Path, clients: int, profile: Path | None) -> Iterator[Served]:
    """Our app, migrated and with a hall, on CPU 0 (under cProfile with ``profile``)."""
    api_port, tour_port = free_port(), free_port()
    env = app_env(tmp, api_port, tour_port, clients)
    _cli(["migrate"], env)
    admin = ["create-user", ADMIN_EMAIL, "--name", "Bench admin", "--role", "admin"]
    _cli([*admin, "--password-stdin"], env, ADMIN_PASSWORD + "\n")
    if profile is None:
        command = ["-m", "uvicorn", "--factory", "server.asgi:build", "--host", "127.0.0.1"]
        command += ["--port", str(api_port), "--log-level", "warning", "--no-access-log"]
    else:
        command = ["-m", "bench._tour_profile", str(profile), str(api_port)]
    log = tmp / "ours.log"
    process = _spawn([sys.executable, *command], env, 0, log)
    try:
        api = f"http://127.0.0.1:{api_port}"
        _wait_http(f"{api}/health", process, log, 60.0)
        url = f"ws://127.0.0.1:{tour_port}/ws/halls/{_hall(api)}"
        yield Served("ours", process, url, api, log)
    finally:
        _stop(process)


@contextmanager
def ceiling(tmp: Path) -> Iterator[Served]:
    """The bare websockets ceiling on CPU 0."""
    port, log = free_port(), tmp / "ceiling.log"
    command = [sys.executable, "-m", "bench._tour_ceiling", "--port", str(port), "--hz", str(HZ)]
    process = _spawn(command, dict(os.environ), 0, log)
    try:
        deadline = time.monotonic() + 30.0
        while "ready" not in log.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise ToolFailed(f"the ceiling server did not start:\n{_tail(log)}")
            time.sleep(0.1)
        url = f"ws://127.0.0.1:{port}/ws/halls/00000000-0000-0000-0000-000000000000"
        yield Served("ceiling", process, url, None, log)
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def tours_digest() -> str:
    """A short digest of server/tours/*.py: which code the numbers belong to."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "server" / "tours").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return f"sha256 {digest.hexdigest()[:12]}"


def uses_uvloop(pid: int) -> bool:
    """Whether the process has uvloop's extension mapped (the tour server requires uvloop)."""
    try:
        return "uvloop" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def load(served: Served, args: argparse.Namespace, profile: bool) -> dict[str, Any]:
    """Run the load generator on CPU 1 against ``served``; its result."""
    command = [sys.executable, "-m", "bench._tour_load", "--url", served.url]
    command += ["--clients", str(args.clients), "--seconds", str(args.seconds)]
    command += ["--warmup", str(args.warmup), "--observers", str(args.observers)]
    command += ["--server-pid", str(served.process.pid)]
    command += ["--api", served.api] if served.api else []
    command += ["--profile"] if profile else []
    print(f"{served.name}: {args.clients} clients ...", file=sys.stderr)
    limit = args.seconds + args.warmup + 120 + args.clients * 0.1
    done = subprocess.run(
        command, cwd=ROOT, stdout=subprocess.PIPE, preexec_fn=pin(1), timeout=limit
    )
    lines = done.stdout.decode().strip().splitlines()
    if done.returncode != 0 or not lines:
        raise ToolFailed(f"the load generator failed against {served.name}:\n{_tail(served.log)}")
    result: dict[str, Any] = json.loads(lines[-1])
    result["uvloop"] = uses_uvloop(served.process.pid)
    return result


# --- the tables ---


def metrics(result: dict[str, Any]) -> dict[str, float | None]:
    """The table's rows of one run, as numbers (None: not measured)."""
    clients, seconds, frames = result["clients"], result["seconds"], result["frames"]
    cpu = result["server_cpu"]
    return {
        "clients connected": clients,
        "server CPU, % of one core": None if cpu is None else cpu * 100,
        "frames delivered / s": frames / seconds,
        "delivered / expected": frames / result["expected_frames"],
        "server-added latency p50, ms": result["added_ms"][0],
        "server-added latency p99, ms": result["added_ms"][1],
        "end-to-end latency p50, ms": result["e2e_ms"][0],
        "end-to-end latency p99, ms": result["e2e_ms"][1],
        "bytes per client per s": result["bytes"] / clients / seconds,
        "bytes per client per tick": result["bytes"] / frames if frames else None,
        "latency samples": result["samples"],
        "generator CPU, % of one core": result["generator_cpu"] * 100,
        "other load on the server's CPU, %": _others(result, 0),
        "other load on the generator's CPU, %": _others(result, 1),
        "generator send lag p99, ms": result["send_lag_ms"][0],
        "connect time, s": result["connect_seconds"],
    }


def _others(result: dict[str, Any], cpu: int) -> float | None:
    """Busy time of a pinned CPU that is neither the server's nor the generator's, in %.

    Includes the kernel's work for the sockets (softirq); another process on that CPU shows as
    tens of %, and then the latencies measure the machine, not the server.
    """
    busy = result["cpu_busy"]
    if (os.cpu_count() or 1) < 2 or len(busy) <= cpu:
        return None
    ours = float(result["server_cpu"] if cpu == 0 else result["generator_cpu"])
    return max(0.0, float(busy[cpu]) - ours) * 100


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"


def print_table(results: dict[str, dict[str, Any]]) -> None:
    names = list(results)
    rows = {name: metrics(result) for name, result in results.items()}
    both = len(names) == 2
    print("\n| metric | " + " | ".join(names) + (" | ours / ceiling |" if both else " |"))
    print("|---|" + "---|" * (len(names) + both))
    for metric in rows[names[0]]:
        cells = [_fmt(rows[name][metric]) for name in names]
        if both:
            mine, theirs = rows["ours"][metric], rows["ceiling"][metric]
            mine = mine if metric in COMPARED else None
            cells.append(f"{mine / theirs:.2f}x" if mine is not None and theirs else "-")
        print(f"| {metric} | " + " | ".join(cells) + " |")
    for name, result in results.items():
        notes = []
        if result["closed"]:
            notes.append(f"connections closed by close code: {result['closed']}")
        if result["skipped_frames"]:
            notes.append(f"{result['skipped_frames']} observed frames with hand records skipped")
        if not result["uvloop"]:
            notes.append("the server does not run on uvloop")
        # Reading a tick's burst of frames delays the next sends by a few ms at 1,000 clients;
        # a generator that is busy for a whole period, or nearly all the time, measures itself.
        lag = result["send_lag_ms"][0] or 0.0
        saturated = result["generator_cpu"] > MAX_GENERATOR_CPU or lag > 1000.0 / HZ
        if saturated:
            notes.append(
                "WARNING: the load generator was saturated; its own delay is in the latency"
            )
        for note in notes:
            print(f"\n{name}: {note}")


Target = tuple[str, float | None, float, bool]  # (what, measured, limit, higher is better)


def targets(results: dict[str, dict[str, Any]], clients: int) -> list[Target]:
    """Issue 6's targets, for our run (the throughput one needs the ceiling's run too)."""
    row = metrics(results["ours"])
    out: list[Target] = [
        (f"server CPU at {clients:,} clients, % of one core", row["server CPU, % of one core"],
         MAX_CPU, False),
        ("p99 server-added latency, ms", row["server-added latency p99, ms"], MAX_P99_MS, False),
        ("bytes per client per tick", row["bytes per client per tick"], MAX_TICK_BYTES, False),
    ]  # fmt: skip
    if "ceiling" in results:
        mine = row["frames delivered / s"] or 0.0
        theirs = metrics(results["ceiling"])["frames delivered / s"] or 1.0
        out.append(("throughput / the ceiling's", mine / theirs, MIN_THROUGHPUT_RATIO, True))
    return out


def verdict(value: float | None, limit: float, higher: bool) -> str:
    """PASS, or MISS and by how much."""
    if value is None:
        return "MISS (not measured)"
    if (value >= limit) if higher else (value <= limit):
        return "PASS"
    return f"MISS by {abs(value / limit - 1) * 100:.0f} %"


def print_targets(rows: list[Target], clients: int, connected: int) -> None:
    print("\n## targets\n")
    print("| target | measured | limit | result |")
    print("|---|---|---|---|")
    for what, value, limit, higher in rows:
        bound = f">= {limit:g}" if higher else f"<= {limit:g}"
        print(f"| {what} | {_fmt(value)} | {bound} | {verdict(value, limit, higher)} |")
    if connected < clients:
        print(f"\nMISS: only {connected} of {clients} clients could join the hall")
    if clients != TARGET_CLIENTS:
        print(
            f"\n(the targets are stated for {TARGET_CLIENTS:,} clients; this run had {clients:,})"
        )


def print_profile(path: Path) -> None:
    """Where our server's event loop spent the window: own time, server/tours by total, GC."""
    pauses = Path(f"{path}.gc.json")
    deadline = time.monotonic() + 10.0
    while not pauses.exists() and time.monotonic() < deadline:  # written after the .prof
        time.sleep(0.2)
    if not pauses.exists():
        print(f"\nno profile was written to {path}")
        return
    print("\n## profile of our server's event loop during the window (cProfile)\n")
    stats = pstats.Stats(str(path), stream=sys.stdout)
    stats.strip_dirs().sort_stats("tottime").print_stats(30)
    pstats.Stats(str(path), stream=sys.stdout).sort_stats("cumulative").print_stats("tours", 25)
    record = json.loads(pauses.read_text())
    print("\n## garbage collections during the window (they stop the event loop)\n")
    print(f"{record['tracked_objects']:,} objects tracked by the collector at the end\n")
    print("| generation | collections | total ms | longest ms |")
    print("|---|---|---|---|")
    for generation in range(3):
        times = [ms for g, ms in record["pauses"] if g == generation]
        longest = max(times, default=0.0)
        print(f"| {generation} | {len(times)} | {sum(times):.1f} | {longest:.1f} |")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=TARGET_CLIENTS)
    parser.add_argument("--seconds", type=float, default=20.0, help="the measurement window")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds after the last join")
    parser.add_argument("--only", choices=["ours", "ceiling"], help="one server only")
    parser.add_argument("--observers", type=int, default=50, help="clients measuring latency")
    parser.add_argument("--profile", type=Path, help="cProfile our server into this file")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.seconds <= 0 or args.warmup < 0 or args.observers < 1:
        parser.error("--clients, --seconds and --observers must be positive")
    results: dict[str, dict[str, Any]] = {}
    load_average = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    try:
        with tempfile.TemporaryDirectory(prefix="bench-tours-") as folder:
            tmp = Path(folder)
            if args.only != "ceiling":
                with ours(tmp, args.clients, args.profile) as served:
                    results["ours"] = load(served, args, args.profile is not None)
            if args.only != "ours":
                with ceiling(tmp) as served:
                    results["ceiling"] = load(served, args, False)
    except (ToolFailed, subprocess.TimeoutExpired) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    cpus = os.cpu_count() or 1
    placement = "server on CPU 0, generator on CPU 1" if cpus >= 2 else "not pinned (1 CPU)"
    print(f"\n## tours: {args.clients:,} clients x {HZ:g} Hz, one hall\n")
    print(f"window {args.seconds:g} s after a {args.warmup:g} s warm-up; {cpus} CPUs, {placement}")
    print(f"load average at the start {load_average}; server/tours sources {tours_digest()}")
    print_table(results)
    if "ours" in results:
        connected = int(results["ours"]["clients"])
        print_targets(targets(results, args.clients), args.clients, connected)
    if args.profile is not None and "ours" in results:
        print_profile(args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
