"""The binary pose codec and the pose table (docs/protocol.md, "Pose frames (binary)")."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.tours.frames import (
    FAR_RECORD_SIZE,
    FLAG_HANDS,
    FLAG_SPEAKING,
    FLAG_TELEPORTED,
    FLAG_VR,
    FRAME,
    HANDS_SIZE,
    MAX_COORD_MM,
    POSE,
    RECORD_SIZE,
    VERSION,
    AvatarPose,
    FrameError,
    HandPose,
    PoseTable,
    decode_frame,
    encode_pose,
)

S16 = 32767 * math.sqrt(2)
IDENTITY = (0.0, 0.0, 0.0, 1.0)
LEFT = HandPose((0.25, -0.3, -0.35), (0.1, -0.2, 0.3, 0.9))
RIGHT = HandPose((-0.25, -0.31, -0.36), (-0.6, 0.1, 0.7, 0.2))


def quat_error(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """The largest component difference, q and -q being the same rotation."""
    norm = math.sqrt(sum(c * c for c in b))
    b = tuple(c / norm for c in b)
    return min(
        max(abs(x - y) for x, y in zip(a, b, strict=True)),
        max(abs(x + y) for x, y in zip(a, b, strict=True)),
    )


def frame_of(*records: bytes, far: bytes = b"", far_count: int = 0, tick: int = 7) -> bytes:
    header = struct.pack("<BBHHH", FRAME, VERSION, tick, len(records), far_count)
    return header + b"".join(records) + far


def raw_pose(
    kind: int = POSE,
    flags: int = 0,
    qi: int = 3,
    q: tuple[int, int, int] = (0, 0, 0),
    xyz: tuple[int, int, int] = (1000, 1600, -2000),
    hands: bytes | None = None,
    sender_id: int = 0,
) -> bytes:
    """A 0x01 message built field by field, bypassing encode_pose's checks."""
    body = struct.pack("<BIBBhhhiii", kind, sender_id, flags, qi, *q, *xyz)
    return body + (hands if hands is not None else b"")


def decoded(table: PoseTable, avatar_id: int) -> AvatarPose:
    return decode_frame(frame_of(table.record(avatar_id))).near[0]


def table_with(*ids: int) -> PoseTable:
    table = PoseTable()
    for avatar_id in ids:
        table.add(avatar_id, (avatar_id * 1.5, 1.6, -avatar_id * 0.5), 0.1 * avatar_id, 0.0)
    return table


# -- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("position", "rotation"),
    [
        ((0.0, 0.0, 0.0), IDENTITY),
        ((12.3456, 1.7, -40.0004), (0.0, math.sin(0.6), 0.0, math.cos(0.6))),
        ((-1000.0, -10.0, 1000.0), (0.3, -0.5, 0.1, 0.8)),
        ((999.9994, 100.0, -999.9996), (-0.9, 0.1, 0.2, -0.3)),
    ],
)
def test_a_desktop_pose_comes_back_from_update_record_and_frame_within_quantisation(
    position: tuple[float, float, float], rotation: tuple[float, float, float, float]
) -> None:
    table = table_with(42)
    assert table.update(42, encode_pose(position, rotation, FLAG_SPEAKING), 1.0)

    pose = decoded(table, 42)

    assert len(table.record(42)) == RECORD_SIZE
    assert pose.id == 42
    assert pose.flags == FLAG_SPEAKING
    assert pose.hands is None
    assert all(abs(a - b) <= 0.0005 for a, b in zip(pose.position, position, strict=True))
    assert quat_error(pose.rotation, rotation) < 0.001
    assert table.position(42) == pytest.approx(position, abs=0.0005)


def test_a_vr_pose_carries_both_hands_within_quantisation() -> None:
    table = table_with(7)
    message = encode_pose((1.0, 1.5, 2.0), IDENTITY, FLAG_VR, (LEFT, RIGHT))

    assert len(message) == 1 + RECORD_SIZE + HANDS_SIZE
    assert table.update(7, message, 1.0)
    pose = decoded(table, 7)

    assert len(table.record(7)) == RECORD_SIZE + HANDS_SIZE
    assert pose.flags == FLAG_VR | FLAG_HANDS
    assert pose.hands is not None
    for got, sent in zip(pose.hands, (LEFT, RIGHT), strict=True):
        assert got.offset == pytest.approx(sent.offset, abs=0.0005)
        assert quat_error(got.rotation, sent.rotation) < 0.01


unit_floats = st.floats(-1.0, 1.0, allow_nan=False)
quaternions = st.tuples(unit_floats, unit_floats, unit_floats, unit_floats).filter(
    lambda q: sum(c * c for c in q) > 0.01
)


@settings(max_examples=300, deadline=None)
@given(
    x=st.floats(-1000.0, 1000.0),
    y=st.floats(-10.0, 100.0),
    z=st.floats(-1000.0, 1000.0),
    head=quaternions,
    left=quaternions,
    right=quaternions,
    offset=st.floats(-32.0, 32.0),
)
def test_any_valid_pose_round_trips_within_quantisation(
    x: float,
    y: float,
    z: float,
    head: tuple[float, float, float, float],
    left: tuple[float, float, float, float],
    right: tuple[float, float, float, float],
    offset: float,
) -> None:
    table = table_with(1)
    hands = (HandPose((offset, 0.0, -offset), left), HandPose((0.0, offset, 0.1), right))

    assert table.update(1, encode_pose((x, y, z), head, 0, hands), 2.0)
    pose = decoded(table, 1)

    assert pose.position == pytest.approx((x, y, z), abs=0.0005)
    assert quat_error(pose.rotation, head) < 0.001
    assert pose.hands is not None
    assert quat_error(pose.hands[0].rotation, left) < 0.01
    assert quat_error(pose.hands[1].rotation, right) < 0.01
    assert pose.hands[0].offset == pytest.approx((offset, 0.0, -offset), abs=0.0005)


@pytest.mark.parametrize(
    ("rotation", "largest"),
    [
        ((0.0, 0.0, 0.0, -1.0), 3),  # the largest is negative: the whole quaternion flips
        ((-1.0, 0.0, 0.0, 0.0), 0),
        ((0.0, 1.0, 0.0, 0.0), 1),
        ((0.0, 0.0, -1.0, 0.0), 2),
        ((0.5, 0.5, 0.5, 0.5), 0),  # a four-way tie goes to the lowest index
        ((-0.5, 0.5, -0.5, 0.5), 0),
        ((0.0, -0.5, 0.5, 0.5), 1),
        ((1 / math.sqrt(2), -1 / math.sqrt(2), 0.0, 0.0), 0),  # the others at ±1/√2 fill int16
        ((0.1, -0.7, 0.7, 0.1), 1),
        ((0.0, 0.0, 0.0, 2.0), 3),  # not normalised: encode_pose normalises
    ],
)
def test_the_largest_quaternion_component_is_sent_positive_by_index(
    rotation: tuple[float, float, float, float], largest: int
) -> None:
    message = encode_pose((0.0, 1.6, 0.0), rotation)
    table = table_with(3)
    assert table.update(3, message, 1.0)

    pose = decoded(table, 3)

    assert message[6] == largest
    assert pose.rotation[largest] > 0
    assert quat_error(pose.rotation, rotation) < 0.001
    assert all(abs(v) <= 32767 for v in struct.unpack_from("<hhh", message, 7))


@pytest.mark.parametrize("rotation", [(0.0, 0.0, 0.0, 0.0), (math.nan, 0.0, 0.0, 1.0)])
def test_encode_pose_refuses_a_rotation_that_is_not_a_quaternion(
    rotation: tuple[float, float, float, float],
) -> None:
    with pytest.raises(ValueError, match="quaternion"):
        encode_pose((0.0, 1.6, 0.0), rotation)


@pytest.mark.parametrize(
    ("position", "flags", "hands"),
    [
        ((1000.001, 1.6, 0.0), 0, None),
        ((0.0, 1.6, -1000.001), 0, None),
        ((0.0, 100.001, 0.0), 0, None),
        ((0.0, -10.001, 0.0), 0, None),
        ((math.inf, 1.6, 0.0), 0, None),
        ((0.0, 1.6, 0.0), 0x10, None),
        ((0.0, 1.6, 0.0), FLAG_HANDS, None),
        ((0.0, 1.6, 0.0), 0, (HandPose((33.0, 0.0, 0.0), IDENTITY), RIGHT)),
    ],
)
def test_encode_pose_refuses_what_the_server_would_drop(
    position: tuple[float, float, float], flags: int, hands: tuple[HandPose, HandPose] | None
) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (each case has its own message)
        encode_pose(position, IDENTITY, flags, hands)


def test_encode_pose_sets_the_hands_flag_when_given_hands() -> None:
    assert encode_pose((0.0, 1.6, 0.0), IDENTITY, 0, (LEFT, RIGHT))[5] == FLAG_HANDS


# -- PoseTable.update ---------------------------------------------------------------------------


def test_update_stores_the_avatar_id_over_what_the_client_sent() -> None:
    table = table_with(5)

    assert table.update(5, raw_pose(sender_id=999), 1.0)

    assert struct.unpack_from("<I", table.record(5))[0] == 5


HAND_BYTES = bytes(HANDS_SIZE)

REJECTED = {
    "another kind": raw_pose(kind=FRAME),
    "empty": b"",
    "only the kind byte": bytes([POSE]),
    "one byte short": raw_pose()[:-1],
    "one byte long": raw_pose() + b"\0",
    "hands one byte short": raw_pose(flags=FLAG_HANDS, hands=HAND_BYTES[:-1]),
    "hands one byte long": raw_pose(flags=FLAG_HANDS, hands=HAND_BYTES + b"\0"),
    "hands flag without hands": raw_pose(flags=FLAG_HANDS),
    "hands without the flag": raw_pose(hands=HAND_BYTES),
    "reserved flag bit 4": raw_pose(flags=0x10),
    "reserved flag bit 5": raw_pose(flags=0x20),
    "reserved flag bit 6": raw_pose(flags=0x40),
    "reserved flag bit 7": raw_pose(flags=0x80 | FLAG_VR),
    "qi 4": raw_pose(qi=4),
    "qi 255": raw_pose(qi=255),
    "x too far east": raw_pose(xyz=(MAX_COORD_MM + 1, 1600, 0)),
    "x too far west": raw_pose(xyz=(-MAX_COORD_MM - 1, 1600, 0)),
    "z too far south": raw_pose(xyz=(0, 1600, MAX_COORD_MM + 1)),
    "z too far north": raw_pose(xyz=(0, 1600, -MAX_COORD_MM - 1)),
    "y too high": raw_pose(xyz=(0, 100_001, 0)),
    "y too low": raw_pose(xyz=(0, -10_001, 0)),
    "x at int32 min": raw_pose(xyz=(-(2**31), 1600, 0)),
    "quaternion longer than 1": raw_pose(q=(32767, 32767, 2000)),
    "quaternion at int16 extremes": raw_pose(q=(-32768, -32768, -32768)),
}


@pytest.mark.parametrize("message", REJECTED.values(), ids=REJECTED.keys())
def test_update_refuses_an_invalid_pose_and_keeps_the_last_one(message: bytes) -> None:
    table = table_with(1, 2)
    assert table.update(1, encode_pose((3.0, 1.7, 4.0), IDENTITY, FLAG_VR), 1.0)
    before = table.record(1)

    assert table.update(1, message, 2.0) is False

    assert table.record(1) == before
    assert table.stale(2.6, 1.5) == [1, 2]  # the refused pose (at 2.0) did not count as news


def test_update_refuses_an_unknown_avatar() -> None:
    table = table_with(1)

    assert table.update(2, encode_pose((0.0, 1.6, 0.0), IDENTITY), 1.0) is False
    assert 2 not in table
    assert len(table) == 1


ACCEPTED_EDGES = {
    "x and z at the limits": raw_pose(xyz=(MAX_COORD_MM, 1600, -MAX_COORD_MM)),
    "y at the ceiling": raw_pose(xyz=(0, 100_000, 0)),
    "y at the floor": raw_pose(xyz=(0, -10_000, 0)),
    "three components at 1/√2, 1/√2, 0": raw_pose(qi=0, q=(32767, -32767, 0)),
    "all flags": raw_pose(flags=0x0F, hands=HAND_BYTES),
}


@pytest.mark.parametrize("message", ACCEPTED_EDGES.values(), ids=ACCEPTED_EDGES.keys())
def test_update_accepts_values_at_the_edges(message: bytes) -> None:
    table = table_with(1)

    assert table.update(1, message, 1.0)
    assert table.record(1)[4:] == message[5:]


@st.composite
def near_valid_poses(draw: st.DrawFn) -> bytes:
    """0x01 messages built field by field, most fields valid, so that many are accepted."""

    def either(valid: st.SearchStrategy[int], anything: st.SearchStrategy[int]) -> int:
        return draw(st.one_of(valid, valid, valid, anything))

    coord = st.integers(-MAX_COORD_MM, MAX_COORD_MM)
    int32 = st.integers(-(2**31), 2**31 - 1)
    int16 = st.integers(-(2**15), 2**15 - 1)
    flags = either(st.integers(0, 15), st.integers(0, 255))
    with_hands = draw(st.one_of(st.just(bool(flags & FLAG_HANDS)), st.booleans()))
    return raw_pose(
        kind=either(st.just(POSE), st.integers(0, 255)),
        flags=flags,
        qi=either(st.integers(0, 3), st.integers(0, 255)),
        q=(draw(int16), draw(int16), either(st.integers(-9000, 9000), int16)),
        xyz=(
            either(coord, int32),
            either(st.integers(-10_000, 100_000), int32),
            either(coord, int32),
        ),
        hands=draw(st.binary(min_size=HANDS_SIZE, max_size=HANDS_SIZE)) if with_hands else None,
        sender_id=draw(st.integers(0, 2**32 - 1)),
    )


messages = st.one_of(
    st.binary(max_size=64),
    st.binary(min_size=24, max_size=24).map(lambda b: bytes([POSE]) + b),
    st.binary(min_size=44, max_size=44).map(lambda b: bytes([POSE]) + b),
    near_valid_poses(),
)


@settings(max_examples=500, deadline=None)
@given(message=messages, target=st.sampled_from([1, 2, 3, 99]))
def test_arbitrary_bytes_never_raise_nor_touch_other_avatars(message: bytes, target: int) -> None:
    table = table_with(1, 2, 3)
    before = {i: table.record(i) for i in (1, 2, 3)}

    stored = table.update(target, message, 1.0)

    for avatar_id in (1, 2, 3):
        if avatar_id != target or not stored:
            assert table.record(avatar_id) == before[avatar_id]
    if stored:
        record = table.record(target)
        assert record[:4] == struct.pack("<I", target)
        assert record[4:] == message[5:]
        decoded(table, target)  # whatever update stores, a frame can carry


# -- the table ----------------------------------------------------------------------------------


def test_add_places_a_teleported_avatar_facing_its_yaw() -> None:
    table = PoseTable()
    table.add(9, (2.0, 1.6, -3.0), math.pi / 2, 0.0)

    pose = decoded(table, 9)

    assert pose.flags == FLAG_TELEPORTED
    assert pose.position == pytest.approx((2.0, 1.6, -3.0))
    half = math.pi / 4
    assert quat_error(pose.rotation, (0.0, math.sin(half), 0.0, math.cos(half))) < 0.001


@pytest.mark.parametrize(
    ("avatar_id", "position"),
    [
        (1, (0.0, 1.6, 0.0)),
        (2, (1001.0, 1.6, 0.0)),
        (-1, (0.0, 1.6, 0.0)),
        (2**32, (0.0, 0.0, 0.0)),
    ],
)
def test_add_refuses_a_taken_or_invalid_id_and_an_impossible_position(
    avatar_id: int, position: tuple[float, float, float]
) -> None:
    table = table_with(1)

    with pytest.raises(ValueError):  # noqa: PT011 (each case has its own message)
        table.add(avatar_id, position, 0.0, 0.0)
    assert len(table) == 1


def test_removing_an_avatar_moves_the_last_one_into_its_slot_intact() -> None:
    table = PoseTable(capacity=2)  # grows twice on the way
    for i in range(1, 7):
        table.add(i, (float(i), 1.6, -float(i)), 0.0, 0.0)
        table.update(i, encode_pose((float(i), 1.0 + i / 10, float(i)), IDENTITY, FLAG_VR), 1.0)
    table.update(6, encode_pose((6.0, 1.6, 6.0), IDENTITY, 0, (LEFT, RIGHT)), 1.0)
    records = {i: table.record(i) for i in range(1, 7)}

    table.remove(2)  # 6, with hands, moves into slot 1
    table.remove(5)  # the last slot: nothing moves

    assert len(table) == 4
    assert 2 not in table
    assert 5 not in table
    assert {i: table.record(i) for i in (1, 3, 4, 6)} == {i: records[i] for i in (1, 3, 4, 6)}
    ids = table.ids().tolist()
    assert sorted(ids) == [1, 3, 4, 6]
    for avatar_id, xyz in zip(ids, table.positions_m(), strict=True):
        assert tuple(xyz) == pytest.approx(table.position(avatar_id))
    with pytest.raises(KeyError):
        table.remove(2)
    table.add(2, (0.0, 1.6, 0.0), 0.0, 2.0)  # the id is free again
    assert decoded(table, 2).flags == FLAG_TELEPORTED


def test_positions_and_ids_come_as_aligned_numpy_arrays() -> None:
    table = table_with(4, 8, 15)

    ids, xyz = table.ids(), table.positions_m()

    assert ids.dtype == np.int64
    assert xyz.shape == (3, 3)
    assert xyz.dtype == np.float64
    assert {int(i): tuple(p) for i, p in zip(ids, xyz, strict=True)} == {
        i: pytest.approx(table.position(i)) for i in (4, 8, 15)
    }


def test_teleport_moves_the_avatar_keeps_vr_and_voice_and_drops_the_hands() -> None:
    table = table_with(3)
    flags = FLAG_VR | FLAG_SPEAKING
    assert table.update(3, encode_pose((1.0, 1.6, 1.0), IDENTITY, flags, (LEFT, RIGHT)), 1.0)

    table.teleport(3, (-20.0, 1.7, 15.0), math.pi, 2.0)
    pose = decoded(table, 3)

    assert pose.flags == FLAG_VR | FLAG_SPEAKING | FLAG_TELEPORTED
    assert pose.hands is None
    assert table.position(3) == pytest.approx((-20.0, 1.7, 15.0))
    assert quat_error(pose.rotation, (0.0, 1.0, 0.0, 0.0)) < 0.001
    with pytest.raises(KeyError):
        table.teleport(4, (0.0, 1.6, 0.0), 0.0, 2.0)


def test_records_of_unknown_avatars_are_a_key_error() -> None:
    table = table_with(1)

    with pytest.raises(KeyError):
        table.record(2)
    with pytest.raises(KeyError):
        table.position(2)
    with pytest.raises(KeyError):
        table.export([1, 2])


def test_an_exported_batch_merges_into_another_table_with_its_ids() -> None:
    here = table_with(1, 2, 3)
    here.update(2, encode_pose((5.0, 1.6, 5.0), IDENTITY, FLAG_VR, (LEFT, RIGHT)), 1.0)
    there = table_with(3, 50)  # 3 exists in both: the batch's record wins

    merged = there.merge(here.export([1, 2, 3]), 4.0)

    assert merged == [1, 2, 3]
    assert len(there) == 4
    assert all(there.record(i) == here.record(i) for i in (1, 2, 3))
    assert there.record(50) == table_with(50).record(50)
    assert there.stale(4.5, 1.0) == [50]
    assert there.merge(b"", 5.0) == []


def valid_records() -> bytes:
    return table_with(8, 9).export([8, 9])


BAD_BATCHES = {
    "a truncated record": valid_records()[:-1],
    "a truncated hands record": table_with(8).export([8])[:4] + bytes([FLAG_HANDS]) + bytes(19),
    "trailing garbage": valid_records() + b"\x01\x02",
    "reserved flags": valid_records()[:4] + bytes([0x40]) + valid_records()[5:],
    "qi 7": valid_records()[:5] + bytes([7]) + valid_records()[6:],
    "x out of range": valid_records()[:12]
    + struct.pack("<i", MAX_COORD_MM + 1)
    + valid_records()[16:],
}


@pytest.mark.parametrize("batch", BAD_BATCHES.values(), ids=BAD_BATCHES.keys())
def test_a_malformed_batch_merges_nothing(batch: bytes) -> None:
    table = table_with(8)
    before = table.record(8)

    with pytest.raises(FrameError):
        table.merge(batch, 1.0)

    assert len(table) == 1
    assert table.record(8) == before


def test_stale_lists_avatars_not_heard_from_within_max_age() -> None:
    table = table_with(1, 2, 3, 4)  # all added at 0.0
    table.update(2, encode_pose((0.0, 1.6, 0.0), IDENTITY), 8.0)
    table.merge(table.export([3]), 9.0)

    assert table.stale(10.0, 5.0) == [1, 4]
    assert table.stale(10.0, 1.5) == [1, 2, 4]
    assert table.stale(10.0, 20.0) == []
    assert table.stale(10.0, 5.0, among=[4, 3, 77]) == [4]


# -- decode_frame -------------------------------------------------------------------------------


def test_far_records_decode_to_decimetres_and_turns() -> None:
    far = struct.pack("<IhhBB", 77, -1234, 10000, 64, FLAG_SPEAKING)

    frame = decode_frame(frame_of(far=far, far_count=1, tick=65535))

    assert frame.tick == 65535
    assert frame.near == []
    [pose] = frame.far
    assert (pose.id, pose.position, pose.flags) == (77, (-123.4, 1000.0), FLAG_SPEAKING)
    assert pose.yaw == pytest.approx(math.pi / 2)
    assert len(far) == FAR_RECORD_SIZE


GOOD = table_with(1).record(1)
BAD_FRAMES = {
    "empty": b"",
    "a short header": frame_of()[:7],
    "another kind": bytes([POSE]) + frame_of()[1:],
    "another version": frame_of()[:1] + bytes([2]) + frame_of()[2:],
    "a missing record": frame_of(GOOD)[:-RECORD_SIZE],
    "a truncated record": frame_of(GOOD)[:-1],
    "missing hands": frame_of(GOOD[:4] + bytes([FLAG_HANDS]) + GOOD[5:]),
    "reserved flags": frame_of(GOOD[:4] + bytes([0x20]) + GOOD[5:]),
    "qi 4": frame_of(GOOD[:5] + bytes([4]) + GOOD[6:]),
    "a missing far record": frame_of(GOOD, far=bytes(10), far_count=2),
    "trailing bytes": frame_of(GOOD) + b"\0",
}


@pytest.mark.parametrize("data", BAD_FRAMES.values(), ids=BAD_FRAMES.keys())
def test_decode_frame_refuses_a_malformed_frame(data: bytes) -> None:
    with pytest.raises(FrameError):
        decode_frame(data)


def test_frame_error_is_a_value_error() -> None:
    assert issubclass(FrameError, ValueError)
