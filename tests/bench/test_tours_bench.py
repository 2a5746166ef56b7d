"""bench/tours.py: its raw websocket framing, its latency estimate, and a run at 20 clients."""

from __future__ import annotations

import math
import re
import subprocess
import sys

import numpy as np
import pytest

from bench._tour_latency import latency_samples
from bench._tour_load import (
    SLOTS,
    accept_for,
    client_frame,
    mask_bytes,
    next_frame,
    pose_message,
    send_slot,
)
from bench.pipeline import ROOT
from bench.tours import verdict
from server.tours.frames import encode_pose


def _server_frame(opcode: int, payload: bytes) -> bytes:
    size = len(payload)
    if size < 126:
        return bytes((0x80 | opcode, size)) + payload
    if size < 1 << 16:
        return bytes((0x80 | opcode, 126)) + size.to_bytes(2, "big") + payload
    return bytes((0x80 | opcode, 127)) + size.to_bytes(8, "big") + payload


@pytest.mark.parametrize("size", [25, 300, 70_000])
def test_a_client_frame_is_masked_and_unmasks_to_its_payload(size: int) -> None:
    payload, key = bytes(i % 251 for i in range(size)), b"\x12\x34\x56\x78"
    frame = client_frame(2, payload, key)
    header = {25: 2, 300: 4, 70_000: 10}[size]

    assert frame[0] == 0x82  # FIN + binary
    assert frame[1] & 0x80  # masked
    assert frame[header : header + 4] == key
    assert frame[header + 4 :] != payload
    assert mask_bytes(frame[header + 4 :], key) == payload


def test_server_frames_of_7_16_and_64_bit_lengths_are_read_in_place_and_wait_for_their_bytes() -> (
    None
):
    frames = [
        _server_frame(2, b"a" * 5),
        _server_frame(1, b"b" * 300),
        _server_frame(2, b"c" * 70_000),
    ]
    stream = b"".join(frames)
    found, pos = [], 0
    while (frame := next_frame(stream, pos)) is not None:
        opcode, start, pos = frame
        found.append((opcode, stream[start:pos]))

    assert found == [(2, b"a" * 5), (1, b"b" * 300), (2, b"c" * 70_000)]
    assert pos == len(stream)
    assert next_frame(stream[:-1], len(frames[0]) + len(frames[1])) is None
    assert next_frame(stream[:3], 0) is None  # a 16-bit length not all there yet


def test_the_handshake_accept_value_is_the_one_of_rfc_6455() -> None:
    assert accept_for("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # §1.3


@pytest.mark.parametrize("yaw", [-0.7, 0.0, 0.35])
def test_the_bench_pose_is_the_one_the_protocol_codec_encodes(yaw: float) -> None:
    yaw_q = round(math.sin(yaw / 2) * 32767 * math.sqrt(2.0))
    rotation = (0.0, math.sin(yaw / 2), 0.0, math.cos(yaw / 2))

    assert pose_message(-12_345, 2_007, 19_000, yaw_q) == encode_pose(
        (-12.345, 2.007, 19.0), rotation
    )


def test_the_send_phases_of_any_33_consecutive_clients_spread_over_the_period() -> None:
    for first in (0, 1, 500, 967):
        phases = {send_slot(i) for i in range(first, first + 33)}
        assert len(phases) >= SLOTS * 3 // 4
        assert min(phases) <= 2
        assert max(phases) >= SLOTS - 3


def _simulated(shift_at: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Poses sent at random, each in the first tick that starts after it (a tick grid that
    crosses the u16 wrap, re-phased 150 ms later at ``shift_at``), read 5-8 ms after that start.
    Returns sends, arrivals, u16 ticks and the true server-added latency."""
    rng = np.random.default_rng(7)
    period = 1 / 15
    numbers = np.arange(65_400, 65_700)
    starts = 0.0123 + numbers * period
    if shift_at is not None:
        starts[numbers >= shift_at] += 0.150
    sends = rng.uniform(starts[0], starts[-2], 30_000)
    carried = np.searchsorted(starts, sends + 0.0002)  # 0.2 ms to reach the server
    arrivals = starts[carried] + rng.uniform(0.005, 0.008, len(sends))
    truth = arrivals - starts[np.searchsorted(starts, sends)]
    return sends, arrivals, numbers[carried] & 0xFFFF, truth


@pytest.mark.parametrize("shift_at", [None, 65_550])
def test_server_added_latency_is_measured_from_the_tick_even_when_the_server_re_phases(
    shift_at: int | None,
) -> None:
    sends, arrivals, ticks, truth = _simulated(shift_at)

    e2e, added = latency_samples(sends, arrivals, ticks, 15.0)

    assert np.array_equal(e2e, arrivals - sends)
    assert np.median(np.abs(added - truth)) < 0.001
    assert np.percentile(added, 99) == pytest.approx(np.percentile(truth, 99), abs=0.001)
    assert 0.005 < np.median(added) < 0.008


def test_a_single_tick_phase_for_the_whole_window_would_be_wrong_after_a_re_phase() -> None:
    # What the estimate guards against: one phase (the first ticks') over a re-phased window.
    sends, arrivals, ticks, truth = _simulated(65_550)
    numbers = np.where(ticks < 1000, ticks + 65_536, ticks)
    phase = np.max(sends - numbers / 15.0)
    first = np.ceil((sends - phase) * 15.0)
    naive = arrivals - (phase + first / 15.0)

    assert np.percentile(np.abs(naive - truth), 90) > 0.01


def test_a_target_is_missed_by_how_far_beyond_its_limit_it_is() -> None:
    assert verdict(40.0, 50.0, higher=False) == "PASS"
    assert verdict(75.0, 50.0, higher=False) == "MISS by 50 %"
    assert verdict(0.8, 0.7, higher=True) == "PASS"
    assert verdict(0.35, 0.7, higher=True) == "MISS by 50 %"
    assert verdict(None, 0.7, higher=True) == "MISS (not measured)"


def _cells(output: str, metric: str) -> list[float]:
    """The numeric cells of the row of ``metric`` in the printed table: ours, the ceiling's and,
    for compared metrics, the ratio."""
    row = next(line for line in output.splitlines() if line.startswith(f"| {metric} |"))
    cells = [c.strip() for c in row.strip("|").split("|")[1:]]
    return [float(c.rstrip("x").replace(",", "")) for c in cells if re.match(r"^[\d.,]+x?$", c)]


@pytest.mark.slow
def test_the_bench_runs_20_clients_against_our_server_and_the_ceiling_and_prints_the_table() -> (
    None
):
    command = [sys.executable, "bench/tours.py", "--clients", "20", "--seconds", "2"]
    done = subprocess.run(
        [*command, "--warmup", "1", "--observers", "5"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout

    assert done.returncode == 0, done.stderr[-2000:]
    assert _cells(output, "clients connected") == [20, 20]
    for name in ("ours", "ceiling"):
        column = ["ours", "ceiling"].index(name)
        assert 0.9 <= _cells(output, "delivered / expected")[column] <= 1.1
        assert 0 < _cells(output, "server CPU, % of one core")[column] < 100
        # 20 near records of 24 bytes, a header of 8, a websocket header of 4; no far records
        assert _cells(output, "bytes per client per tick")[column] == pytest.approx(492, abs=60)
        p50, p99 = (_cells(output, f"server-added latency {p}, ms")[column] for p in ("p50", "p99"))
        assert 0 <= p50 <= p99 < 1000
        assert _cells(output, "latency samples")[column] > 100
    targets = output.split("## targets", 1)[1]
    for what in (
        "server CPU",
        "p99 server-added latency",
        "bytes per client per tick",
        "throughput",
    ):
        assert re.search(rf"\| {what}[^\n]*\| (PASS|MISS[^|]*) \|", targets), what
