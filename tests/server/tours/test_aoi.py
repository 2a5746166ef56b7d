"""Area of interest: who each client sees, and the shared frames (docs/protocol.md)."""

from __future__ import annotations

import math
import random
import struct

import numpy as np
import pytest

from server.tours.aoi import AoiOptions, plan_frames
from server.tours.frames import (
    FAR_RECORD_SIZE,
    FLAG_SPEAKING,
    FLAG_VR,
    FRAME_HEADER_SIZE,
    Frame,
    HandPose,
    PoseTable,
    decode_frame,
    encode_pose,
)

IDENTITY = (0.0, 0.0, 0.0, 1.0)
HANDS = (HandPose((0.2, -0.3, -0.3), IDENTITY), HandPose((-0.2, -0.3, -0.3), IDENTITY))
Planned = list[tuple[bytes, list[int]]]


def hall(n: int, seed: int, side: float = 60.0, first_id: int = 1) -> PoseTable:
    """n avatars at random spots of a side x side hall, random yaws."""
    rng = random.Random(seed)
    table = PoseTable()
    for avatar_id in range(first_id, first_id + n):
        x, z = rng.uniform(-side / 2, side / 2), rng.uniform(-side / 2, side / 2)
        table.add(avatar_id, (x, 1.6, z), rng.uniform(-math.pi, math.pi), 0.0)
    return table


def by_client(planned: Planned) -> dict[int, Frame]:
    frames: dict[int, Frame] = {}
    for data, recipients in planned:
        for client in recipients:
            assert client not in frames, "a client got two frames"
            frames[client] = decode_frame(data)
    return frames


def near_ids(frame: Frame) -> list[int]:
    return [pose.id for pose in frame.near]


def far_ids(frame: Frame) -> list[int]:
    return [pose.id for pose in frame.far]


def reference_near(table: PoseTable, client: int, k: int, cell_size: float) -> list[int]:
    """docs/protocol.md by brute force: the k avatars nearest the centre of the client's cell."""
    cell_mm = cell_size * 1000
    x, _, z = (round(v * 1000) for v in table.position(client))
    cx = round((math.floor(x / cell_mm) + 0.5) * cell_mm)
    cz = round((math.floor(z / cell_mm) + 0.5) * cell_mm)
    scored = []
    for avatar_id in table.ids().tolist():
        ax, _, az = (round(v * 1000) for v in table.position(avatar_id))
        scored.append(((ax - cx) ** 2 + (az - cz) ** 2, avatar_id))
    return [avatar_id for _, avatar_id in sorted(scored)[:k]]


# -- near records -------------------------------------------------------------------------------


def clustered_hall(seed: int) -> PoseTable:
    table = hall(150, seed)
    rng = random.Random(seed)
    for avatar_id in range(1000, 1200):  # a dense tour around one booth
        table.add(avatar_id, (rng.gauss(5, 2), 1.6, rng.gauss(-5, 2)), 0.0, 0.0)
    return table


@pytest.mark.parametrize(
    ("table", "cell_size"),
    [
        (hall(400, seed=1), 2.0),
        (hall(1000, seed=2), 2.0),
        (hall(300, seed=3, side=1990.0), 2.0),  # sparse: most neighbours are hundreds of m away
        (hall(100, seed=4, side=8.0), 2.0),  # crowded: everyone within a few cells
        (clustered_hall(5), 2.0),
        (hall(500, seed=6), 0.7),
        (hall(200, seed=7), 25.0),
    ],
    ids=[
        "400 spread",
        "1000 spread",
        "sparse",
        "crowded",
        "a tour crowd",
        "small cells",
        "big cells",
    ],
)
def test_each_client_gets_exactly_the_32_avatars_nearest_its_cell_centre(
    table: PoseTable, cell_size: float
) -> None:
    clients = [(avatar_id, None) for avatar_id in table.ids().tolist()[::3]]
    options = AoiOptions(cell_size=cell_size)

    frames = by_client(plan_frames(table, 1, clients, options))

    assert set(frames) == {client for client, _ in clients}
    for client, frame in frames.items():
        assert near_ids(frame) == reference_near(table, client, 32, cell_size)


def test_ties_in_distance_go_to_the_lowest_ids() -> None:
    table = PoseTable()
    for avatar_id in random.Random(8).sample(range(1, 500), 60):
        table.add(avatar_id, (3.0, 1.6, 3.0), 0.0, 0.0)  # all on one spot (a spawn point)
    client = int(table.ids().max())

    [(data, _)] = plan_frames(table, 1, [(client, None)])

    assert near_ids(decode_frame(data)) == sorted(table.ids().tolist())[:32]


def test_the_guide_is_always_sent_and_never_twice() -> None:
    table = hall(300, seed=9)
    table.add(5000, (29.0, 1.7, 29.0), 0.0, 0.0)  # the guide, in a far corner
    table.add(6000, (-29.5, 1.6, -29.5), 0.0, 0.0)  # a member, in the opposite corner
    table.add(6001, (28.9, 1.6, 29.1), 0.0, 0.0)  # a member next to the guide

    frames = by_client(plan_frames(table, 1, [(6000, 5000), (6001, 5000), (5000, None)]))

    assert near_ids(frames[6000]) == [*reference_near(table, 6000, 32, 2.0), 5000]
    assert near_ids(frames[6001]) == reference_near(table, 6001, 32, 2.0)
    assert 5000 in near_ids(frames[6001])
    for frame in frames.values():
        assert 5000 not in far_ids(frame)


def test_a_guide_that_is_gone_is_left_out() -> None:
    table = hall(50, seed=10)

    [(data, recipients)] = plan_frames(table, 1, [(1, 777)])

    assert recipients == [1]
    assert near_ids(decode_frame(data)) == reference_near(table, 1, 32, 2.0)


def test_merged_avatars_are_seen_like_local_ones() -> None:
    local, remote = hall(20, seed=11), hall(20, seed=12, first_id=100)
    local.merge(remote.export(remote.ids().tolist()), 1.0)

    frames = by_client(plan_frames(local, 1, [(1, None)]))

    assert near_ids(frames[1]) == reference_near(local, 1, 32, 2.0)
    assert any(avatar_id >= 100 for avatar_id in near_ids(frames[1]))


def test_near_records_are_the_stored_bytes_hands_included() -> None:
    table = hall(80, seed=13)
    for avatar_id in range(1, 81, 2):  # half the hall in VR
        x, y, z = table.position(avatar_id)
        table.update(avatar_id, encode_pose((x, y, z), IDENTITY, FLAG_VR, HANDS), 1.0)

    for data, _ in plan_frames(table, 3, [(i, None) for i in range(1, 81, 5)]):
        frame = decode_frame(data)
        records = b"".join(table.record(i) for i in near_ids(frame))
        assert data[FRAME_HEADER_SIZE : FRAME_HEADER_SIZE + len(records)] == records
        assert any(pose.hands is not None for pose in frame.near)
        assert any(pose.hands is None for pose in frame.near)


# -- far records --------------------------------------------------------------------------------


def test_far_records_cycle_so_every_avatar_is_seen_within_far_every_ticks() -> None:
    table = hall(600, seed=14)
    clients = [(i, None) for i in (1, 50, 333)]
    everyone = set(table.ids().tolist())

    for first in (0, 1234, 65535):
        seen: dict[int, set[int]] = {client: set() for client, _ in clients}
        for tick in range(first, first + 10):
            for client, frame in by_client(plan_frames(table, tick, clients)).items():
                assert all(i % 10 == tick % 10 for i in far_ids(frame))
                assert far_ids(frame) == sorted(far_ids(frame))
                assert not set(far_ids(frame)) & set(near_ids(frame))
                seen[client] |= set(near_ids(frame)) | set(far_ids(frame))
        assert all(ids == everyone for ids in seen.values())


def test_far_records_carry_decimetres_yaw_and_flags() -> None:
    table = hall(40, seed=15, side=10.0)
    table.add(1010, (-123.456, 1.6, 456.789), 1.0, 0.0)  # far from everyone, id % 10 == 0
    table.update(1010, encode_pose((-123.456, 1.6, 456.789), IDENTITY, FLAG_SPEAKING), 1.0)
    table.teleport(1010, (-123.456, 1.6, 456.789), 1.0, 2.0)

    frames = by_client(plan_frames(table, 20, [(1, None)]))

    [pose] = [p for p in frames[1].far if p.id == 1010]
    assert pose.position == pytest.approx((-123.5, 456.8))
    assert pose.yaw == pytest.approx(1.0, abs=math.pi / 256)
    assert pose.flags == table.record(1010)[4]


def test_desktop_frames_stay_within_the_budget() -> None:
    table = hall(1500, seed=16)
    clients = [(i, 7 if i % 5 == 0 else None) for i in range(1, 1501)]

    for budget in (2048, 1000, 800):
        options = AoiOptions(budget=budget)
        for tick in range(10):
            for data, _ in plan_frames(table, tick, clients, options):
                assert len(data) <= budget
                frame = decode_frame(data)
                assert len(data) == FRAME_HEADER_SIZE + 24 * len(frame.near) + 10 * len(frame.far)


def test_far_records_fill_the_budget_and_the_window_moves_so_none_is_left_out() -> None:
    table = hall(500, seed=17)
    budget = FRAME_HEADER_SIZE + 32 * 24 + 12 * FAR_RECORD_SIZE  # room for 12 of ~45 candidates
    options = AoiOptions(budget=budget)
    seen: set[int] = set()

    for tick in range(400):
        [(data, _)] = plan_frames(table, tick, [(1, None)], options)
        frame = decode_frame(data)
        assert len(data) == budget
        assert far_ids(frame) == sorted(far_ids(frame))
        seen |= set(far_ids(frame))

    never_near = set(table.ids().tolist()) - set(reference_near(table, 1, 32, 2.0))
    assert seen == never_near


def test_near_records_are_never_cut_even_over_the_budget() -> None:
    table = hall(60, seed=18)
    for avatar_id in range(1, 61):
        table.update(avatar_id, encode_pose(table.position(avatar_id), IDENTITY, 0, HANDS), 1.0)
    options = AoiOptions(near=40, budget=1000)

    [(data, _)] = plan_frames(table, 0, [(1, None)], options)
    frame = decode_frame(data)

    assert len(frame.near) == 40
    assert frame.far == []
    assert len(data) == FRAME_HEADER_SIZE + 40 * 44 > options.budget


# -- frames and groups --------------------------------------------------------------------------


def test_clients_of_one_cell_and_guide_share_one_frame() -> None:
    table = hall(100, seed=19)
    for avatar_id, x in ((500, 10.1), (501, 10.5), (502, 11.9), (503, 12.1)):
        table.add(avatar_id, (x, 1.6, 10.5), 0.0, 0.0)  # 500-502 in one cell, 503 next door
    clients = [(500, None), (501, None), (502, 1), (503, None), (1, None)]

    planned = plan_frames(table, 1, clients)

    groups = sorted(sorted(recipients) for _, recipients in planned)
    assert groups == sorted([[500, 501], [502], [503], [1]])
    frames = by_client(planned)
    assert near_ids(frames[502])[:32] == near_ids(frames[500])
    assert near_ids(frames[503]) != near_ids(frames[500])


def test_the_same_input_plans_the_same_bytes() -> None:
    table = hall(300, seed=20)
    clients = [(i, 3 if i % 4 == 0 else None) for i in range(1, 301)]

    first, second = plan_frames(table, 9, clients), plan_frames(table, 9, clients)

    assert first == second


def test_the_frame_header_carries_the_tick_modulo_65536() -> None:
    table = hall(3, seed=21)

    [(data, _)] = plan_frames(table, 65536 * 3 + 17, [(1, None)])

    assert decode_frame(data).tick == 17
    assert struct.unpack_from("<BB", data) == (2, 1)


def test_an_empty_table_or_no_clients_plan_nothing() -> None:
    assert plan_frames(PoseTable(), 1, [(1, None)]) == []
    assert plan_frames(hall(5, seed=22), 1, []) == []


def test_a_client_without_an_avatar_gets_no_frame() -> None:
    table = hall(5, seed=23)

    planned = plan_frames(table, 1, [(99, None), (2, None)])

    assert [recipients for _, recipients in planned] == [[2]]
    assert plan_frames(table, 1, [(99, 1)]) == []


def test_a_single_avatar_sees_only_itself() -> None:
    table = PoseTable()
    table.add(4, (1.0, 1.6, 1.0), 0.5, 0.0)

    for tick in range(10):
        [(data, recipients)] = plan_frames(table, tick, [(4, 4)])
        frame = decode_frame(data)
        assert recipients == [4]
        assert near_ids(frame) == [4]
        assert frame.far == []


def test_positions_are_read_in_millimetres_from_the_records() -> None:
    table = PoseTable()
    table.add(1, (1.999, 1.6, 0.5), 0.0, 0.0)  # cell 0
    table.add(2, (2.0, 1.6, 0.5), 0.0, 0.0)  # cell 1, on its edge
    options = AoiOptions(near=1)

    frames = by_client(plan_frames(table, 1, [(1, None), (2, None)], options))

    assert near_ids(frames[1]) == [1]  # 0.999 m from the centre (1, 1) vs 1.0 m for avatar 2
    assert near_ids(frames[2]) == [2]
    assert np.array_equal(table.ids(), [1, 2])


@pytest.mark.parametrize(
    "settings",
    [
        {"cell_size": 0.0},
        {"cell_size": math.nan},
        {"near": -1},
        {"near": 65535},
        {"far_every": 0},
        {"budget": 7},
    ],
)
def test_aoi_options_refuse_impossible_settings(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (each case has its own message)
        AoiOptions(**settings)  # type: ignore[arg-type]
