"""The binary pose codec (docs/protocol.md, "Pose frames (binary)") and the table of latest poses.

A client sends `0x01` pose messages: one 24-byte avatar record (44 with two hand records). The
server keeps the latest record of every avatar as the client sent it, with the `id` field
overwritten, in one fixed-stride numpy buffer, so that:

- `PoseTable.update` (15,000 calls a second at 1,000 clients) is one `struct` unpack, a handful of
  integer comparisons and one memoryview copy; it never builds per-field Python objects;
- the area of interest (aoi.py) reads ids, positions and rotations of every avatar as numpy
  views of that buffer, and builds frames by joining stored record bytes, never re-encoding them.

Errors: `FrameError` (a `ValueError`) for a malformed `0x02` frame or merge batch. `update` never
raises on bad input: it returns False and changes nothing (the caller counts the drop).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

POSE = 0x01
FRAME = 0x02
VERSION = 1
RECORD_SIZE = 24
HANDS_SIZE = 20
FAR_RECORD_SIZE = 10
FRAME_HEADER_SIZE = 8
FLAG_HANDS = 1
FLAG_TELEPORTED = 2
FLAG_VR = 4
FLAG_SPEAKING = 8
MAX_COORD_MM = 1_000_000  # |x|, |z| limit
MIN_Y_MM = -10_000
MAX_Y_MM = 100_000

Vec3 = tuple[float, float, float]
Quat = tuple[float, float, float, float]  # x, y, z, w: `qi` 0..3 indexes them in this order

_FULL_SIZE = RECORD_SIZE + HANDS_SIZE  # the stride of a PoseTable slot
_RESERVED_FLAGS = 0xF0
# docs/protocol.md: the smallest three components are scaled by 32767·√2 (16-bit) or 511·√2
# (the 10-bit fields of a hand), so ±1/√2, their largest possible magnitude, maps to ±32767 / ±511.
_S16 = 32767 * math.sqrt(2.0)
_S10 = 511 * math.sqrt(2.0)
# The three stored squares sum to at most 1 (else the fourth component is imaginary). Rounding each
# of the three to the nearest integer can add at most √3·S + 3/4 to the scaled sum: that is the slack.
_Q16_LIMIT = int(_S16 * _S16 + math.sqrt(3.0) * _S16 + 1.0)

_HEADER = struct.Struct("<BBHHH")  # kind, version, tick, near, far
_RECORD = struct.Struct("<IBBhhhiii")  # id, flags, qi, q[3], x, y, z
_CLIENT_POSE = struct.Struct("<B4xBBhhhiii")  # kind, (id skipped), flags, qi, q[3], x, y, z
_HANDS = struct.Struct("<hhhIhhhI")  # left dx, dy, dz, quat; right the same
_FAR = struct.Struct("<IhhBB")  # id, x dm, z dm, yaw, flags

# A numpy view of the slot buffer: aoi.py reads fields of every avatar at once through it.
_RECORD_DTYPE = np.dtype(
    {
        # No gaps: numpy copies structured items field by field and would skip a gap's bytes.
        "names": ["id", "flags", "qi", "q", "pos", "hands"],
        "formats": ["<u4", "u1", "u1", ("<i2", (3,)), ("<i4", (3,)), f"V{HANDS_SIZE}"],
        "offsets": [0, 4, 5, 6, 12, RECORD_SIZE],
        "itemsize": _FULL_SIZE,
    }
)
_FAR_DTYPE = np.dtype([("id", "<u4"), ("x", "<i2"), ("z", "<i2"), ("yaw", "u1"), ("flags", "u1")])


class FrameError(ValueError):
    """A malformed `0x02` frame or merge batch."""


@dataclass(frozen=True, slots=True)
class HandPose:
    """A tracked hand: `offset` in metres from the head, `rotation` a unit quaternion (x, y, z, w)."""

    offset: Vec3
    rotation: Quat


@dataclass(frozen=True, slots=True)
class AvatarPose:
    """A near (full) avatar record, decoded: position in metres, rotation (x, y, z, w)."""

    id: int
    flags: int
    position: Vec3
    rotation: Quat
    hands: tuple[HandPose, HandPose] | None


@dataclass(frozen=True, slots=True)
class FarPose:
    """A far record, decoded: position (x, z) in metres (decimetre steps), yaw in radians [0, 2π)."""

    id: int
    position: tuple[float, float]
    yaw: float
    flags: int


@dataclass(frozen=True, slots=True)
class Frame:
    """A decoded `0x02` frame."""

    tick: int
    near: list[AvatarPose]
    far: list[FarPose]


# -- quaternions -------------------------------------------------------------------------------


def _smallest_three(rotation: Quat) -> tuple[int, list[float]]:
    """The index of the largest component and the other three, of the normalised, sign-fixed quat."""
    norm = math.sqrt(sum(c * c for c in rotation))
    if not math.isfinite(norm) or norm < 1e-9:
        raise ValueError(f"rotation {rotation!r} is not a usable quaternion")
    q = [c / norm for c in rotation]
    # Ties go to the lowest index, so the same rotation always gives the same bytes.
    qi = max(range(4), key=lambda i: (abs(q[i]), -i))
    sign = -1.0 if q[qi] < 0 else 1.0  # q and -q are the same rotation: make the largest positive
    return qi, [sign * q[i] for i in range(4) if i != qi]


def _quantise(value: float, scale: float, limit: int) -> int:
    return max(-limit, min(limit, round(value * scale)))


def _encode_quat16(rotation: Quat) -> tuple[int, int, int, int]:
    qi, rest = _smallest_three(rotation)
    a, b, c = (_quantise(v, _S16, 32767) for v in rest)
    return qi, a, b, c


def _expand(qi: int, rest: tuple[float, float, float]) -> Quat:
    largest = math.sqrt(max(0.0, 1.0 - sum(v * v for v in rest)))
    out = list(rest)
    out.insert(qi, largest)
    return out[0], out[1], out[2], out[3]


def _decode_quat16(qi: int, a: int, b: int, c: int) -> Quat:
    return _expand(qi, (a / _S16, b / _S16, c / _S16))


def _encode_quat10(rotation: Quat) -> int:
    """Bits 30-31 the index; then the three others in component order, in bits 20-29, 10-19, 0-9,
    each a 10-bit two's complement integer."""
    qi, rest = _smallest_three(rotation)
    word = qi << 30
    for shift, value in zip((20, 10, 0), rest, strict=True):
        word |= (_quantise(value, _S10, 511) & 0x3FF) << shift
    return word


def _decode_quat10(word: int) -> Quat:
    fields = [(word >> shift) & 0x3FF for shift in (20, 10, 0)]
    a, b, c = ((f - 0x400 if f & 0x200 else f) / _S10 for f in fields)
    return _expand(word >> 30, (a, b, c))


def _yaw_quat(yaw: float) -> Quat:
    return 0.0, math.sin(yaw / 2.0), 0.0, math.cos(yaw / 2.0)


# -- encoding ----------------------------------------------------------------------------------


def _mm(value: float, low: int, high: int, what: str) -> int:
    if not math.isfinite(value):
        raise ValueError(f"{what} {value!r} is not a finite number")
    mm = round(value * 1000.0)
    if not low <= mm <= high:
        raise ValueError(f"{what} {value!r} m is outside {low / 1000}..{high / 1000} m")
    return mm


def _pack_record(avatar_id: int, flags: int, position: Vec3, rotation: Quat) -> bytes:
    """A 24-byte avatar record (no hands); raises ValueError on an out-of-range value."""
    if not 0 <= avatar_id <= 0xFFFF_FFFF:
        raise ValueError(f"avatar id {avatar_id} does not fit in u32")
    x = _mm(position[0], -MAX_COORD_MM, MAX_COORD_MM, "x")
    y = _mm(position[1], MIN_Y_MM, MAX_Y_MM, "y")
    z = _mm(position[2], -MAX_COORD_MM, MAX_COORD_MM, "z")
    qi, a, b, c = _encode_quat16(rotation)
    return _RECORD.pack(avatar_id, flags, qi, a, b, c, x, y, z)


def _pack_hands(hands: tuple[HandPose, HandPose]) -> bytes:
    fields: list[int] = []
    for hand in hands:
        fields.extend(_mm(v, -32767, 32767, "hand offset") for v in hand.offset)
        fields.append(_encode_quat10(hand.rotation))
    return _HANDS.pack(*fields)


def encode_pose(
    position: Vec3,
    rotation: Quat,
    flags: int = 0,
    hands: tuple[HandPose, HandPose] | None = None,
) -> bytes:
    """Encode a client `0x01` pose message.

    Args:
        position: the head position in metres, hall coordinates.
        rotation: the head rotation (x, y, z, w); normalised here.
        flags: FLAG_* bits; FLAG_HANDS is set here when `hands` is given.
        hands: the left and right hand, or None.

    Returns:
        25 bytes, or 45 with hands.

    Raises:
        ValueError: reserved flag bits, FLAG_HANDS without hands, a position outside the limits
            (|x|, |z| <= 1,000 m, y in -10..100 m), a hand offset beyond ±32.767 m, or a zero or
            non-finite quaternion.
    """
    if not 0 <= flags <= 0xFF or flags & _RESERVED_FLAGS:
        raise ValueError(f"flags {flags:#x} use reserved bits")
    if flags & FLAG_HANDS and hands is None:
        raise ValueError("FLAG_HANDS set without hands")
    if hands is not None:
        flags |= FLAG_HANDS
    body = _pack_record(0, flags, position, rotation)
    tail = b"" if hands is None else _pack_hands(hands)
    return b"".join((bytes((POSE,)), body, tail))


def _far_records(rows: npt.NDArray[np.void]) -> npt.NDArray[np.uint8]:
    """Far records (n, 10) of _RECORD_DTYPE rows: id, x and z in decimetres, yaw in 256ths, flags."""
    n = len(rows)
    q = rows["q"].astype(np.float64) / _S16
    qi = rows["qi"].astype(np.int64) & 3
    full = np.empty((n, 4), dtype=np.float64)
    # Put the three stored components around the slot of the largest one, as _expand does.
    others = np.array([[j for j in range(4) if j != i] for i in range(4)])[qi]
    full[np.arange(n)[:, None], others] = q
    full[np.arange(n), qi] = np.sqrt(np.maximum(0.0, 1.0 - (q * q).sum(axis=1)))
    x, y, z, w = full.T
    # Heading about +y of a y-up rotation (three.js Euler order YXZ, docs/manifest.md Coordinates).
    yaw = np.arctan2(2.0 * (w * y + x * z), 1.0 - 2.0 * (x * x + y * y))
    out = np.empty(n, dtype=_FAR_DTYPE)
    out["id"] = rows["id"]
    # Round half up to the decimetre, in integers (|coordinate| <= 10,000 dm fits in i16).
    out["x"] = (rows["pos"][:, 0].astype(np.int64) + 50) // 100
    out["z"] = (rows["pos"][:, 2].astype(np.int64) + 50) // 100
    out["yaw"] = np.rint(yaw * (128.0 / math.pi)).astype(np.int64) & 0xFF
    out["flags"] = rows["flags"]
    return out.view(np.uint8).reshape(n, FAR_RECORD_SIZE)


# -- decoding ----------------------------------------------------------------------------------


def _decode_hands(data: bytes, offset: int) -> tuple[HandPose, HandPose]:
    ldx, ldy, ldz, lq, rdx, rdy, rdz, rq = _HANDS.unpack_from(data, offset)
    left = HandPose((ldx / 1000, ldy / 1000, ldz / 1000), _decode_quat10(lq))
    right = HandPose((rdx / 1000, rdy / 1000, rdz / 1000), _decode_quat10(rq))
    return left, right


def _decode_record(data: bytes, offset: int) -> tuple[AvatarPose, int]:
    """The avatar record at `offset` and the offset after it; FrameError when it does not fit."""
    if offset + RECORD_SIZE > len(data):
        raise FrameError(f"truncated avatar record at byte {offset}")
    avatar_id, flags, qi, a, b, c, x, y, z = _RECORD.unpack_from(data, offset)
    if flags & _RESERVED_FLAGS or qi > 3:
        raise FrameError(f"avatar record at byte {offset}: reserved flags or qi {qi} > 3")
    end = offset + RECORD_SIZE
    hands = None
    if flags & FLAG_HANDS:
        if end + HANDS_SIZE > len(data):
            raise FrameError(f"truncated hand records at byte {end}")
        hands = _decode_hands(data, end)
        end += HANDS_SIZE
    position = (x / 1000, y / 1000, z / 1000)
    return AvatarPose(avatar_id, flags, position, _decode_quat16(qi, a, b, c), hands), end


def decode_frame(data: bytes) -> Frame:
    """Decode a server `0x02` frame.

    Args:
        data: the whole binary websocket message.

    Returns:
        The frame: tick (u16), near avatars in frame order, far avatars in frame order.

    Raises:
        FrameError: another kind or version, a record with reserved flag bits or qi > 3, fewer
            bytes than the counts announce, or bytes left over after them.
    """
    if len(data) < FRAME_HEADER_SIZE:
        raise FrameError(f"a frame needs {FRAME_HEADER_SIZE} header bytes, got {len(data)}")
    kind, version, tick, near_count, far_count = _HEADER.unpack_from(data)
    if kind != FRAME or version != VERSION:
        raise FrameError(f"not a version {VERSION} pose frame (kind {kind:#x}, version {version})")
    offset = FRAME_HEADER_SIZE
    near: list[AvatarPose] = []
    for _ in range(near_count):
        pose, offset = _decode_record(data, offset)
        near.append(pose)
    if len(data) - offset != far_count * FAR_RECORD_SIZE:
        raise FrameError(
            f"{far_count} far records need {far_count * FAR_RECORD_SIZE} bytes, "
            f"{len(data) - offset} left"
        )
    far = []
    for avatar_id, x, z, yaw, flags in _FAR.iter_unpack(data[offset:]):
        far.append(FarPose(avatar_id, (x / 10, z / 10), yaw * (2 * math.pi / 256), flags))
    return Frame(tick, near, far)


# -- the pose table ----------------------------------------------------------------------------


def _valid(flags: int, qi: int, a: int, b: int, c: int, x: int, y: int, z: int) -> bool:
    """Whether the fields of an avatar record are acceptable (PoseTable.update inlines this)."""
    return not (
        flags & _RESERVED_FLAGS
        or qi > 3
        or not -MAX_COORD_MM <= x <= MAX_COORD_MM
        or not -MAX_COORD_MM <= z <= MAX_COORD_MM
        or not MIN_Y_MM <= y <= MAX_Y_MM
        or a * a + b * b + c * c > _Q16_LIMIT
    )


class PoseTable:
    """Latest pose per avatar: raw records for frames, positions in a numpy array for the AOI.

    Every avatar owns one 44-byte slot of a numpy buffer holding its record as stored (24 bytes,
    44 with hands; flags bit 0 tells which). Slots are dense: removing an avatar moves the last
    one into the hole. The `id` field of a slot is written when the avatar is added, so `update`
    copies bytes 4.. of the client's record and never has to overwrite the id.
    """

    def __init__(self, capacity: int = 256) -> None:
        """Args:
        capacity: slots allocated up front; the table doubles them when full.
        """
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._buf = np.zeros((capacity, _FULL_SIZE), dtype=np.uint8)
        self._mv = self._buf.data.cast("B")
        self._slots: dict[int, int] = {}
        self._ids: list[int] = []  # by slot
        self._times: list[float] = []  # by slot: when the record was last stored

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, avatar_id: object) -> bool:
        return avatar_id in self._slots

    def add(self, avatar_id: int, position: Vec3, yaw: float, now: float) -> None:
        """Add an avatar standing at `position` (metres), turned `yaw` radians about +y.

        The record is flagged TELEPORTED (clients place it without smoothing).

        Raises:
            ValueError: the id is already in the table, does not fit in u32, or the position is
                outside the limits.
        """
        if avatar_id in self._slots:
            raise ValueError(f"avatar {avatar_id} is already in the table")
        record = _pack_record(avatar_id, FLAG_TELEPORTED, position, _yaw_quat(yaw))
        self._store(self._append(avatar_id), record, now)

    def remove(self, avatar_id: int) -> None:
        """Remove an avatar in O(1): the last slot moves into its place.

        Raises:
            KeyError: the avatar is not in the table.
        """
        slot = self._slots.pop(avatar_id)
        last = len(self._ids) - 1
        if slot != last:
            moved = self._ids[last]
            self._buf[slot] = self._buf[last]
            self._ids[slot] = moved
            self._times[slot] = self._times[last]
            self._slots[moved] = slot
        self._ids.pop()
        self._times.pop()
        self._buf[last] = 0

    def update(self, avatar_id: int, message: bytes, now: float) -> bool:
        """Store a client `0x01` pose message as the avatar's latest record (the hot path).

        Args:
            avatar_id: the sender's avatar; it replaces the id the client sent.
            message: the binary websocket message.
            now: the receive time, for `stale`.

        Returns:
            True when stored; False, with nothing changed, for an unknown avatar or a message that
            is not a valid pose: another kind, a length other than 25 or 45 or one that disagrees
            with flags bit 0, reserved flag bits set, qi > 3, a coordinate out of range, or stored
            quaternion components whose squares sum to more than 1.
        """
        slot = self._slots.get(avatar_id)
        size = len(message)
        if slot is None or (size != 25 and size != 45):
            return False
        kind, flags, qi, a, b, c, x, y, z = _CLIENT_POSE.unpack_from(message)
        # _valid() inlined: a call would cost a fifth of this method.
        if (
            kind != POSE
            or flags & _RESERVED_FLAGS
            or (flags & FLAG_HANDS) != (size == 45)
            or qi > 3
            or not -MAX_COORD_MM <= x <= MAX_COORD_MM
            or not -MAX_COORD_MM <= z <= MAX_COORD_MM
            or not MIN_Y_MM <= y <= MAX_Y_MM
            or a * a + b * b + c * c > _Q16_LIMIT
        ):
            return False
        start = slot * _FULL_SIZE + 4
        self._mv[start : start + size - 5] = message[5:]
        self._times[slot] = now
        return True

    def teleport(self, avatar_id: int, position: Vec3, yaw: float, now: float) -> None:
        """Move an avatar server-side (summon, go to booth): standing at `position`, facing `yaw`.

        The new record keeps the VR and speaking flags, drops the hands (the client sends them
        again with its next pose) and is flagged TELEPORTED.

        Raises:
            KeyError: the avatar is not in the table.
            ValueError: the position is outside the limits.
        """
        slot = self._slots[avatar_id]
        flags = int(self._buf[slot, 4]) & (FLAG_VR | FLAG_SPEAKING) | FLAG_TELEPORTED
        self._store(slot, _pack_record(avatar_id, flags, position, _yaw_quat(yaw)), now)

    def position(self, avatar_id: int) -> Vec3:
        """The avatar's head position in metres. Raises KeyError for an unknown avatar."""
        x, y, z = struct.unpack_from("<iii", self._mv, self._slots[avatar_id] * _FULL_SIZE + 12)
        return x / 1000, y / 1000, z / 1000

    def record(self, avatar_id: int) -> bytes:
        """The avatar's record as stored: 24 bytes, or 44 with hands. KeyError when unknown."""
        start = self._slots[avatar_id] * _FULL_SIZE
        size = _FULL_SIZE if self._mv[start + 4] & FLAG_HANDS else RECORD_SIZE
        return bytes(self._mv[start : start + size])

    def ids(self) -> npt.NDArray[np.int64]:
        """The avatar ids (a copy), in the same order as `positions_m`."""
        return self._rows()["id"].astype(np.int64)

    def positions_m(self) -> npt.NDArray[np.float64]:
        """The head positions (N, 3) in metres (a copy), in the same order as `ids`."""
        return self._rows()["pos"] * 0.001

    def export(self, avatar_ids: Iterable[int]) -> bytes:
        """The concatenated records of these avatars, for another process's `merge`.

        Raises:
            KeyError: one of them is not in the table.
        """
        return b"".join([self.record(avatar_id) for avatar_id in avatar_ids])

    def merge(self, batch: bytes, now: float) -> list[int]:
        """Add or update every record of an `export` batch, keeping its ids (scale-out).

        All or nothing: the batch is checked whole before anything is stored. A merged id that is
        also a local avatar overwrites it: processes must hand out disjoint avatar ids.

        Args:
            batch: concatenated 24- or 44-byte avatar records.
            now: the receive time, for `stale`.

        Returns:
            The ids merged, in batch order (a repeated id twice; its last record wins).

        Raises:
            FrameError: a truncated record, or a record `update` would refuse.
        """
        spans = _parse_batch(batch)
        for avatar_id, start, end in spans:
            slot = self._slots.get(avatar_id)
            if slot is None:
                slot = self._append(avatar_id)
            self._store(slot, batch[start:end], now)
        return [avatar_id for avatar_id, _, _ in spans]

    def stale(self, now: float, max_age: float, among: Iterable[int] | None = None) -> list[int]:
        """The ids whose record was last stored more than `max_age` seconds before `now`.

        Args:
            now: the current time.
            max_age: seconds.
            among: only these ids (unknown ones are ignored); None for every avatar.

        Returns:
            The stale ids, in table order (or the order of `among`).
        """
        limit = now - max_age
        if among is None:
            return [i for i, t in zip(self._ids, self._times, strict=True) if t < limit]
        slots, times = self._slots, self._times
        return [i for i in among if (s := slots.get(i)) is not None and times[s] < limit]

    def _rows(self) -> npt.NDArray[np.void]:
        """A _RECORD_DTYPE view (N,) of the occupied slots, for aoi.py; valid until the next change."""
        return self._buf[: len(self._ids)].view(_RECORD_DTYPE)[:, 0]

    def _append(self, avatar_id: int) -> int:
        slot = len(self._ids)
        if slot == len(self._buf):
            bigger = np.zeros((2 * slot, _FULL_SIZE), dtype=np.uint8)
            bigger[:slot] = self._buf
            self._mv.release()
            self._buf, self._mv = bigger, bigger.data.cast("B")
        self._slots[avatar_id] = slot
        self._ids.append(avatar_id)
        self._times.append(0.0)
        return slot

    def _store(self, slot: int, record: bytes, now: float) -> None:
        start = slot * _FULL_SIZE
        self._mv[start : start + len(record)] = record
        self._times[slot] = now


def _parse_batch(batch: bytes) -> list[tuple[int, int, int]]:
    """(id, start, end) of every record of a merge batch; FrameError when any is malformed."""
    spans: list[tuple[int, int, int]] = []
    start = 0
    while start < len(batch):
        if start + RECORD_SIZE > len(batch):
            raise FrameError(f"truncated avatar record at byte {start} of the batch")
        avatar_id, flags, qi, a, b, c, x, y, z = _RECORD.unpack_from(batch, start)
        end = start + (_FULL_SIZE if flags & FLAG_HANDS else RECORD_SIZE)
        if end > len(batch):
            raise FrameError(f"truncated hand records at byte {start + RECORD_SIZE} of the batch")
        if not _valid(flags, qi, a, b, c, x, y, z):
            raise FrameError(f"invalid avatar record for id {avatar_id} at byte {start}")
        spans.append((avatar_id, start, end))
        start = end
    return spans
