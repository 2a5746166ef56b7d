"""Area of interest (docs/protocol.md, "Area of interest"): one shared pose frame per (cell, guide).

Per tick, for every cell occupied by a connected client, the `near` avatars nearest to the cell's
centre; per (cell, guide) group one frame: those records, the guide's when it is not among them,
then far records of this tick's id bucket as the byte budget allows.

Per-avatar and per-cell work is numpy over whole arrays: int64 keys (squared distance, then id)
for blocks of occupied cells x the avatars in their x band, `np.partition`, `np.unique` for
cells and groups. Python loops run only over blocks and groups, joining bytes that are already
encoded: the stored records of near avatars, far records encoded once per tick.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from server.tours.frames import (
    FAR_RECORD_SIZE,
    FLAG_HANDS,
    FRAME,
    FRAME_HEADER_SIZE,
    HANDS_SIZE,
    MAX_COORD_MM,
    RECORD_SIZE,
    VERSION,
    PoseTable,
    _far_records,  # the codec's vectorised far encoder: frames.py owns the wire format
)

IntArray = npt.NDArray[np.int64]

_HEADER = struct.Struct("<BBHHH")  # docs/protocol.md: kind, version, tick, near count, far count
_SLOT = RECORD_SIZE + HANDS_SIZE
# Cell keys pack two signed cell indices into one int64; |index| <= 1,000,000 mm / 1 mm < 2**30.
_CELL_OFFSET = 1 << 30
_CELL_BITS = 31
# Distance keys pack d² (mm², < 2**43 with centres clamped to the coordinate limits) above a
# column index, so one integer sort orders by distance then id: up to 2**20 avatars fit.
_MAX_AVATARS = 1 << 20
# Work in blocks of cells or groups: small arrays stay in cache and below malloc's mmap threshold
# (a fresh 600 x 1,000 matrix each tick costs more in page faults than in arithmetic).
_ROWS = 24  # cells per block of distance keys (_nearest)
_GROUPS = 128  # groups per block of frame sections (_assemble)
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


@dataclass(frozen=True, slots=True)
class AoiOptions:
    """Area-of-interest settings (docs/protocol.md defaults).

    Attributes:
        cell_size: metres; the hall is cut into square cells of this side (at least 1 mm).
        near: avatars sent at full rate per cell, nearest to its centre.
        far_every: each avatar is a far candidate once every this many ticks (id % far_every).
        budget: bytes per frame the far records may fill up to.
    """

    cell_size: float = 2.0
    near: int = 32
    far_every: int = 10
    budget: int = 2048

    def __post_init__(self) -> None:
        if not (math.isfinite(self.cell_size) and self.cell_size >= 0.001):
            raise ValueError(f"cell_size {self.cell_size} must be at least 0.001 m")
        if not 0 <= self.near < 0xFFFF:
            raise ValueError(f"near {self.near} must be in 0..65534 (a u16 count, plus the guide)")
        if self.far_every < 1:
            raise ValueError(f"far_every {self.far_every} must be at least 1")
        if self.budget < FRAME_HEADER_SIZE:
            raise ValueError(f"budget {self.budget} is smaller than a frame header")


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """The table at the start of the tick, sorted by id (a column = a position in that order)."""

    ids: IntArray  # (n,)
    rows: npt.NDArray[np.void]  # (n,) records
    raw: npt.NDArray[np.uint8]  # (n, 44) the same bytes
    sizes: IntArray  # (n,) record sizes, 24 or 44
    xz: IntArray  # (n, 2) mm


def _snapshot(table: PoseTable) -> _Snapshot:
    live = table._rows()  # frames.py exposes its buffer to this module only
    rows = live[np.argsort(live["id"], kind="stable")]  # a copy
    raw = rows.view(np.uint8).reshape(len(rows), _SLOT)
    sizes = np.where(rows["flags"] & FLAG_HANDS, _SLOT, RECORD_SIZE).astype(np.int64)
    xz = rows["pos"][:, ::2].astype(np.int64)
    return _Snapshot(rows["id"].astype(np.int64), rows, raw, sizes, xz)


def _locate(sorted_ids: IntArray, wanted: IntArray) -> IntArray:
    """The column of each wanted id, -1 when it is not in the table."""
    pos = np.minimum(np.searchsorted(sorted_ids, wanted), len(sorted_ids) - 1)
    return np.where(sorted_ids[pos] == wanted, pos, -1)


def _cells(xz: IntArray, cell_size: float) -> tuple[IntArray, IntArray]:
    """The occupied cells' centres (U, 2) in mm, and each position's cell index into them."""
    cell_mm = cell_size * 1000.0
    index = np.floor(xz / cell_mm).astype(np.int64) + _CELL_OFFSET
    keys, inverse = np.unique((index[:, 0] << _CELL_BITS) | index[:, 1], return_inverse=True)
    cells = np.stack([keys >> _CELL_BITS, keys & ((1 << _CELL_BITS) - 1)], axis=1) - _CELL_OFFSET
    centres = np.rint((cells + 0.5) * cell_mm).astype(np.int64)
    # Clamped, so that every squared distance stays below 2**43 (see _MAX_AVATARS).
    return np.clip(centres, -MAX_COORD_MM, MAX_COORD_MM), inverse.reshape(-1)


def _nearest(xz: IntArray, centres: IntArray, k: int) -> IntArray:
    """(U, min(k, n)) columns of the avatars nearest to each centre, by distance then id.

    Centres come sorted by x (np.unique order of the cell keys), so a block of them spans a
    narrow band of x: only avatars within `radius` of that band in x are scored. The result is
    exact: a block is redone with a doubled radius until every row's k-th distance is within it
    (an avatar outside the band is farther than the radius from every centre of the block).
    """
    n, u = len(xz), len(centres)
    k = min(k, n)
    out = np.empty((u, k), dtype=np.int64)
    if k == 0:
        return out
    shift = max(1, (n - 1).bit_length())
    order = np.argsort(xz[:, 0], kind="stable")
    xs, zs = xz[order, 0], xz[order, 1]
    radius = _radius_guess(xs, zs, k)
    for start in range(0, u, _ROWS):
        block = centres[start : start + _ROWS]
        while True:
            lo = int(np.searchsorted(xs, block[0, 0] - radius, side="left"))
            hi = int(np.searchsorted(xs, block[-1, 0] + radius, side="right"))
            if hi - lo >= k:
                keys = _keys(block, xs[lo:hi], zs[lo:hi], order[lo:hi], shift)
                if k < hi - lo:
                    keys.partition(k - 1, axis=1)
                worst = int(keys[:, :k].max()) >> shift
                if hi - lo == n or worst <= radius * radius:
                    break
            radius *= 2.0
        out[start : start + _ROWS] = keys[:, :k]
    out.sort(axis=1)
    out &= (1 << shift) - 1
    return out


def _radius_guess(xs: IntArray, zs: IntArray, k: int) -> float:
    """A radius (mm) holding about twice k avatars at the mean density of their bounding box."""
    area = max(float(xs[-1] - xs[0]) * float(zs.max() - zs.min()), 1e6)
    return math.sqrt(2.0 * k * area / (math.pi * len(xs)))


def _keys(block: IntArray, x: IntArray, z: IntArray, columns: IntArray, shift: int) -> IntArray:
    """(rows, m) sort keys: squared distance (mm²) from each centre, above the column."""
    keys = block[:, 0:1] - x
    keys *= keys
    dz = block[:, 1:2] - z
    dz *= dz
    keys += dz
    keys <<= shift
    keys |= columns
    return keys


def _sections(raw: npt.NDArray[np.uint8], sizes: IntArray, cols: IntArray) -> list[bytes]:
    """Per row of `cols` (U, k): the stored records of those columns, joined."""
    if cols.shape[1] == 0:
        return [b""] * len(cols)
    row_sizes = sizes[cols]
    low, high = int(row_sizes.min()), int(row_sizes.max())
    if low == high:  # all desktop or all VR: gather whole records as opaque items
        items = np.ascontiguousarray(raw[:, :low]).view(f"V{low}").reshape(-1)
        blob = items[cols].tobytes()
    else:  # mixed: gather 4-byte words (24 and 44 are both multiples of 4), drop unused ones
        words = raw.view("<u4")
        blob = words[cols][np.arange(_SLOT // 4) < row_sizes[..., None] // 4].tobytes()
    ends = np.cumsum(row_sizes.sum(axis=1)).tolist()
    return [blob[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]


@dataclass(frozen=True, slots=True)
class _Groups:
    cell: IntArray  # (G,) index into the occupied cells
    guide: IntArray  # (G,) the guide's column, -1 for none
    recipients: list[list[int]]


def _groups(cell_of: IntArray, guide_of: IntArray, client_ids: IntArray, n: int) -> _Groups:
    """Clients grouped by (cell, guide), in that order; recipients in client order."""
    keys, inverse, counts = np.unique(
        cell_of * (n + 1) + (guide_of + 1), return_inverse=True, return_counts=True
    )
    ordered = client_ids[np.argsort(inverse.reshape(-1), kind="stable")].tolist()
    ends = np.cumsum(counts).tolist()
    recipients = [ordered[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]
    return _Groups(keys // (n + 1), keys % (n + 1) - 1, recipients)


@dataclass(frozen=True, slots=True)
class _Far:
    """This tick's far candidates (id % far_every == tick % far_every), encoded once."""

    records: npt.NDArray[np.void]  # (F,) 10-byte far records, in id order
    where: IntArray  # (n,) column -> index into records, -1 for a non-candidate
    in_near: npt.NDArray[np.bool_]  # (U, F) whether the cell sends the candidate as near
    start: int  # where this cycle's window of candidates begins


def _far_candidates(snap: _Snapshot, tick: int, options: AoiOptions, near: IntArray) -> _Far:
    fc = np.flatnonzero(snap.ids % options.far_every == tick % options.far_every)
    where = np.full(len(snap.ids), -1, dtype=np.int64)
    where[fc] = np.arange(len(fc))
    hits = where[near]
    in_near = np.zeros((len(near), len(fc)), dtype=bool)
    in_near[np.nonzero(hits >= 0)[0], hits[hits >= 0]] = True
    records = _far_records(snap.rows[fc]).view(f"V{FAR_RECORD_SIZE}").reshape(-1)
    # When not all candidates fit, the window sent moves on by a golden-ratio step every cycle,
    # so no avatar is left out for good; the records sent are still in id order.
    start = int(len(fc) * ((tick // options.far_every * _GOLDEN) % 1.0))
    return _Far(records, where, in_near, start)


def _far_sections(
    far: _Far, cells: IntArray, guides: IntArray, caps: IntArray
) -> tuple[list[bytes], list[int]]:
    """Per group (cell, guide column): the far records that fit in its cap, and how many."""
    if len(far.records) == 0:
        return [b""] * len(cells), [0] * len(cells)
    allowed = ~far.in_near[cells]
    guide_at = far.where[np.maximum(guides, 0)]
    far_guide = (guides >= 0) & (guide_at >= 0)
    allowed[far_guide, guide_at[far_guide]] = False  # the guide is always a near record
    chosen = allowed
    if (allowed.sum(axis=1) > caps).any():  # some frames cannot take all: send a window
        rolled = np.roll(allowed, -far.start, axis=1)
        chosen = np.roll(rolled & (np.cumsum(rolled, axis=1) <= caps[:, None]), far.start, axis=1)
    blob = np.broadcast_to(far.records, chosen.shape)[chosen].tobytes()
    counts = chosen.sum(axis=1)
    ends = np.cumsum(counts).tolist()
    bounds = zip([0, *ends[:-1]], ends, strict=True)
    return [blob[a * FAR_RECORD_SIZE : b * FAR_RECORD_SIZE] for a, b in bounds], counts.tolist()


def plan_frames(
    table: PoseTable,
    tick: int,
    clients: Sequence[tuple[int, int | None]],
    options: AoiOptions = AoiOptions(),
) -> list[tuple[bytes, list[int]]]:
    """Plan this tick's pose frames: one per distinct (cell, guide) of the connected clients.

    Near records: the `options.near` avatars of the whole table nearest to the centre of the
    client's cell (x/z plane, by distance then id), then the guide's when not among them. Far
    records: every other avatar with id % far_every == tick % far_every, in id order, as many as
    keep the frame within `options.budget`. Near records are never cut: a frame exceeds the
    budget only when they alone do (with the defaults at most 8 + 33 x 44 = 1,460 bytes, so
    never; a larger `near` with VR hands could).

    Args:
        table: every avatar of the hall, local and merged.
        tick: the tick number; the frame carries tick & 0xFFFF.
        clients: (avatar id of a connected client, its tour guide's avatar id or None). Clients
            whose avatar is not in the table get no frame; an absent guide is left out.
        options: cell size, near count, far rate and budget.

    Returns:
        (frame bytes, recipient avatar ids) per group, ordered by cell then guide.

    Raises:
        ValueError: the table holds more than 2**20 avatars.
    """
    if not clients or not len(table):
        return []
    if len(table) > _MAX_AVATARS:
        raise ValueError(f"{len(table)} avatars: the area of interest handles up to {_MAX_AVATARS}")
    snap = _snapshot(table)
    client_ids = np.array([c for c, _ in clients], dtype=np.int64)
    guide_ids = np.array([-1 if g is None else g for _, g in clients], dtype=np.int64)
    client_cols = _locate(snap.ids, client_ids)
    present = client_cols >= 0
    if not present.any():
        return []
    centres, cell_of = _cells(snap.xz[client_cols[present]], options.cell_size)
    near = _nearest(snap.xz, centres, options.near)
    groups = _groups(
        cell_of, _locate(snap.ids, guide_ids)[present], client_ids[present], len(snap.ids)
    )
    return _assemble(snap, tick, options, near, groups)


def _assemble(
    snap: _Snapshot, tick: int, options: AoiOptions, near: IntArray, groups: _Groups
) -> list[tuple[bytes, list[int]]]:
    """Encode the frame of every group, in blocks of groups."""
    near_bytes = snap.sizes[near].sum(axis=1)
    has_guide = groups.guide >= 0
    guide = np.maximum(groups.guide, 0)
    extra = has_guide & ~(near[groups.cell] == groups.guide[:, None]).any(axis=1)
    room = options.budget - FRAME_HEADER_SIZE - near_bytes[groups.cell]
    room -= np.where(extra, snap.sizes[guide], 0)
    caps = np.clip(room // FAR_RECORD_SIZE, 0, 0xFFFF)
    far = _far_candidates(snap, tick, options, near)
    tick16, k = tick & 0xFFFF, near.shape[1]
    frames: list[tuple[bytes, list[int]]] = []
    for lo in range(0, len(groups.cell), _GROUPS):
        block = slice(lo, lo + _GROUPS)
        cells = groups.cell[block]
        near_parts = _sections(snap.raw, snap.sizes, near[cells])
        far_parts, far_counts = _far_sections(far, cells, groups.guide[block], caps[block])
        for i, (col, add) in enumerate(
            zip(guide[block].tolist(), extra[block].tolist(), strict=True)
        ):
            header = _HEADER.pack(FRAME, VERSION, tick16, k + add, far_counts[i])
            guide_record = snap.raw[col, : snap.sizes[col]].tobytes() if add else b""
            frame = b"".join((header, near_parts[i], guide_record, far_parts[i]))
            frames.append((frame, groups.recipients[lo + i]))
    return frames
