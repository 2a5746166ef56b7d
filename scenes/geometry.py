"""Procedural meshes for booths and halls: boxes, panels and cylinders as pipeline primitives.

Everything a booth is made of is built here from code (no third-party model files). Shapes come
out as :class:`pipeline.model.Primitive` with flat normals and UVs, in metres, Y up, ready for
the pipeline's writer. A :class:`MeshBuilder` collects shapes by material so a booth part list
becomes one primitive per material (few draw calls).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pipeline.model import F32, Primitive

Vec3 = tuple[float, float, float]
Array = NDArray[Any]

# The six faces of a unit box: (normal, u axis, v axis). u x v points along the normal, so the
# two triangles below wind counter-clockwise seen from outside (glTF 2.0 §3.7.2.1: front faces
# are counter-clockwise).
_FACES: tuple[tuple[Vec3, Vec3, Vec3], ...] = (
    ((1, 0, 0), (0, 0, -1), (0, 1, 0)),
    ((-1, 0, 0), (0, 0, 1), (0, 1, 0)),
    ((0, 1, 0), (1, 0, 0), (0, 0, -1)),
    ((0, -1, 0), (1, 0, 0), (0, 0, 1)),
    ((0, 0, 1), (1, 0, 0), (0, 1, 0)),
    ((0, 0, -1), (-1, 0, 0), (0, 1, 0)),
)


@dataclass(slots=True)
class _Part:
    positions: list[F32] = field(default_factory=list)
    normals: list[F32] = field(default_factory=list)
    uvs: list[F32] = field(default_factory=list)
    indices: list[np.ndarray] = field(default_factory=list)
    count: int = 0

    def add(self, positions: Array, normals: Array, uvs: Array, indices: Array) -> None:
        self.positions.append(positions.astype(np.float32))
        self.normals.append(normals.astype(np.float32))
        self.uvs.append(uvs.astype(np.float32))
        self.indices.append(indices.astype(np.uint32) + self.count)
        self.count += len(positions)


class MeshBuilder:
    """Shapes grouped by material index; :meth:`primitives` gives one primitive per material."""

    def __init__(self) -> None:
        self._parts: dict[int, _Part] = {}

    def _part(self, material: int) -> _Part:
        return self._parts.setdefault(material, _Part())

    def box(
        self,
        material: int,
        center: Vec3,
        size: Vec3,
        *,
        uv_scale: float | None = None,
        faces: tuple[int, ...] = (0, 1, 2, 3, 4, 5),
    ) -> None:
        """An axis-aligned box.

        Args:
            material: the material index.
            center: centre in metres.
            size: full extent along x, y, z (each > 0).
            uv_scale: metres per UV unit (tiled textures); ``None`` maps each face to 0..1.
            faces: which faces to emit (+x, -x, +y, -y, +z, -z), e.g. no bottom on the floor.
        """
        for face in faces:
            normal, u_axis, v_axis = (np.array(a, dtype=np.float64) for a in _FACES[face])
            half = np.array(size, dtype=np.float64) / 2
            origin = np.array(center, dtype=np.float64) + normal * half
            hu = float(np.abs(u_axis) @ half)
            hv = float(np.abs(v_axis) @ half)
            self._quad(material, origin, u_axis * hu, v_axis * hv, normal, uv_scale)

    def panel(
        self,
        material: int,
        center: Vec3,
        width: float,
        height: float,
        *,
        facing: str = "+z",
        uv_rect: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0),
    ) -> None:
        """A single-sided vertical rectangle (signs, logos, product cards).

        ``facing`` is the direction its front looks: ``+z``, ``-z``, ``+x`` or ``-x``. The image
        reads left to right seen from the front (glTF UV origin is top-left, §3.8.4.1);
        ``uv_rect`` (u0, v0, u1, v1) picks a cell of an atlas.
        """
        normals = {"+z": (0, 0, 1), "-z": (0, 0, -1), "+x": (1, 0, 0), "-x": (-1, 0, 0)}
        normal = np.array(normals[facing], dtype=np.float64)
        up = np.array((0.0, 1.0, 0.0))
        right = np.cross(up, normal)
        origin = np.array(center, dtype=np.float64)
        self._quad(material, origin, right * width / 2, up * height / 2, normal, None, uv_rect)

    def floor_quad(self, material: int, center: Vec3, size_x: float, size_z: float) -> None:
        """An upward-facing rectangle (floor markings), UVs 0..1 with v along -z."""
        origin = np.array(center, dtype=np.float64)
        u = np.array((size_x / 2, 0.0, 0.0))
        v = np.array((0.0, 0.0, -size_z / 2))
        self._quad(material, origin, u, v, np.array((0.0, 1.0, 0.0)), None)

    def cylinder(
        self, material: int, base: Vec3, radius: float, height: float, segments: int = 16
    ) -> None:
        """An upright capped cylinder standing on ``base`` (pedestals, posts, lamp poles)."""
        angles = np.linspace(0.0, 2 * math.pi, segments + 1)
        ring = np.stack([np.sin(angles), np.zeros_like(angles), np.cos(angles)], axis=1)
        b = np.array(base, dtype=np.float64)
        bottom = b + ring * radius
        top = bottom + np.array((0.0, height, 0.0))
        positions = np.concatenate([bottom, top])
        normals = np.concatenate([ring, ring])
        u = np.concatenate([angles, angles]) / (2 * math.pi)
        uvs = np.stack([u, np.repeat([1.0, 0.0], segments + 1)], axis=1)
        k = np.arange(segments)
        n = segments + 1
        side = np.stack([k, k + 1, n + k + 1, k, n + k + 1, n + k], axis=1).reshape(-1)
        self._part(material).add(positions, normals, uvs, side)
        # Cap: a fan around the centre.
        centre = b + np.array((0.0, height, 0.0))
        cap = np.concatenate([centre[None], top[:-1]])
        cap_uvs = np.concatenate([[[0.5, 0.5]], 0.5 + 0.5 * ring[:-1, [0, 2]]])
        cap_normals = np.tile((0.0, 1.0, 0.0), (segments + 1, 1))
        fan = np.stack([np.zeros(segments), k + 1, (k + 1) % segments + 1], axis=1).reshape(-1)
        self._part(material).add(cap, cap_normals, cap_uvs, fan.astype(np.int64))

    def _quad(
        self,
        material: int,
        origin: np.ndarray,
        u: np.ndarray,
        v: np.ndarray,
        normal: np.ndarray,
        uv_scale: float | None,
        uv_rect: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0),
    ) -> None:
        corners = np.stack([origin - u - v, origin + u - v, origin + u + v, origin - u + v])
        if uv_scale is None:
            u0, v0, u1, v1 = uv_rect
            uvs = np.array([[u0, v1], [u1, v1], [u1, v0], [u0, v0]], dtype=np.float64)
        else:
            su = 2 * float(np.linalg.norm(u)) / uv_scale
            sv = 2 * float(np.linalg.norm(v)) / uv_scale
            uvs = np.array([[0, sv], [su, sv], [su, 0], [0, 0]], dtype=np.float64)
        normals = np.tile(normal, (4, 1))
        self._part(material).add(corners, normals, uvs, np.array([0, 1, 2, 0, 2, 3]))

    def primitives(self) -> list[Primitive]:
        """One primitive per material, in material order."""
        result = []
        for material in sorted(self._parts):
            part = self._parts[material]
            result.append(
                Primitive(
                    positions=np.concatenate(part.positions),
                    indices=np.concatenate(part.indices).astype(np.uint32),
                    normals=np.concatenate(part.normals),
                    uvs=np.concatenate(part.uvs),
                    material=material,
                )
            )
        return result
