"""Tests of the geometry steps, with meshes built in code by the helpers below."""

from __future__ import annotations

import numpy as np
import trimesh

from pipeline.model import Asset, Material, Primitive, Texture


def primitive_from_trimesh(mesh: trimesh.Trimesh, *, normals: bool = True) -> Primitive:
    """A primitive with the mesh's vertices, faces and (optionally) its vertex normals."""
    return Primitive(
        positions=np.ascontiguousarray(mesh.vertices, dtype=np.float32),
        indices=np.ascontiguousarray(mesh.faces.ravel(), dtype=np.uint32),
        normals=_vertex_normals(mesh) if normals else None,
    )


def _vertex_normals(mesh: trimesh.Trimesh) -> np.ndarray:
    """Area-weighted vertex normals without trimesh's scipy-based path."""
    sums = np.zeros_like(mesh.vertices)
    face = np.cross(
        mesh.vertices[mesh.faces[:, 1]] - mesh.vertices[mesh.faces[:, 0]],
        mesh.vertices[mesh.faces[:, 2]] - mesh.vertices[mesh.faces[:, 0]],
    )
    for corner in range(3):
        np.add.at(sums, mesh.faces[:, corner], face)
    normals: np.ndarray = (sums / np.linalg.norm(sums, axis=1, keepdims=True)).astype(np.float32)
    return normals


def asset_of(*primitives: Primitive, **fields: object) -> Asset:
    return Asset(primitives=list(primitives), **fields)  # type: ignore[arg-type]


def uv_sphere(rows: int, cols: int, radius: float = 1.0, material: int | None = None) -> Primitive:
    """A textured UV sphere, Y-up, with a seam: the last column repeats the first at u = 1.

    Every vertex has a position, an outward unit normal and a UV in [0, 1]; pole rows hold one
    vertex per column (same position, different u), the usual exporter layout. Triangles:
    ``2 * rows * cols - 2 * cols``.
    """
    theta = np.linspace(0.0, np.pi, rows + 1)  # from the north pole down
    phi = np.linspace(0.0, 2 * np.pi, cols + 1)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    normals = np.stack([np.sin(t) * np.cos(p), np.cos(t), -np.sin(t) * np.sin(p)], axis=-1)
    uvs = np.stack([p / (2 * np.pi), t / np.pi], axis=-1)
    grid = np.arange((rows + 1) * (cols + 1)).reshape(rows + 1, cols + 1)
    a, b = grid[:-1, :-1], grid[:-1, 1:]
    c, d = grid[1:, :-1], grid[1:, 1:]
    upper = np.stack([a, c, b], axis=-1)[1:]  # row 0's upper triangles touch the pole twice
    lower = np.stack([b, c, d], axis=-1)[:-1]  # the last row's lower ones likewise
    triangles = np.concatenate([upper.reshape(-1, 3), lower.reshape(-1, 3)])
    return Primitive(
        positions=(normals * radius).reshape(-1, 3).astype(np.float32),
        indices=triangles.ravel().astype(np.uint32),
        normals=normals.reshape(-1, 3).astype(np.float32),
        uvs=uvs.reshape(-1, 2).astype(np.float32),
        material=material,
    )


def textured_sphere(rows: int, cols: int) -> Asset:
    texture = Texture(data=b"\x89PNG not decoded here", mime_type="image/png", width=4, height=4)
    return Asset(
        primitives=[uv_sphere(rows, cols, material=0)],
        materials=[Material(name="skin", base_color_texture=0)],
        textures=[texture],
    )


def soup(prim: Primitive) -> Primitive:
    """The same triangles with every corner its own vertex (an STL-like triangle soup)."""
    corners = prim.indices

    def take(array: np.ndarray | None) -> np.ndarray | None:
        return None if array is None else np.ascontiguousarray(array[corners])

    return Primitive(
        positions=np.ascontiguousarray(prim.positions[corners]),
        indices=np.arange(corners.size, dtype=np.uint32),
        normals=take(prim.normals),
        uvs=take(prim.uvs),
        colors=take(prim.colors),
        material=prim.material,
    )
