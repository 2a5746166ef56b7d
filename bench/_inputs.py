"""Generate the pipeline benchmark's inputs: a textured PBR product and a ~1M-triangle scan.

    python -m bench._inputs [CACHE]   (default var/bench/; files are only written once)

Nothing third-party is committed: both inputs are procedural and deterministic (fixed seeds).

* ``product``: a vase (surface of revolution), 15,104 triangles, UVs with a wrap seam, analytic
  normals, and 2048x2048 JPEG (q90) baseColor, normal and metallicRoughness textures, as a
  designer's export would carry them.
* ``scan``: a welded cube-sphere of 1,002,252 triangles displaced by smooth bumps plus per-vertex
  Gaussian noise (what makes scans hard to compress), with normals and no texture.

Both are plain GLBs (float32 attributes, uint32 indices, one primitive) written here rather than
by ``pipeline.write``, so the inputs do not depend on the code being measured.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from bench.pipeline import pack_glb

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "var" / "bench"
VERSION = 1  # bump when a generator changes, so cached inputs are rebuilt

FLOAT, UNSIGNED_INT = 5126, 5125  # glTF 2.0 §3.6.2.2 componentType
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963  # glTF 2.0 §3.6.3 bufferView.target

F32 = NDArray[np.float32]
U32 = NDArray[np.uint32]
I64 = NDArray[np.int64]


def _glb(
    positions: F32, normals: F32, indices: U32, uvs: F32 | None, images: Sequence[bytes]
) -> bytes:
    """A plain (float32, uncompressed) one-primitive GLB; images are JPEG baseColor, normal, MR."""
    doc: dict[str, Any] = {
        "asset": {"version": "2.0", "generator": "pavilion-bench"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "bufferViews": [],
        "accessors": [],
    }
    chunks: list[bytes] = []

    def view(data: bytes, target: int | None = None) -> int:
        entry: dict[str, Any] = {"buffer": 0, "byteOffset": sum(map(len, chunks))}
        entry["byteLength"] = len(data)
        if target is not None:
            entry["target"] = target
        chunks.append(data + b"\0" * (-len(data) % 4))
        doc["bufferViews"].append(entry)
        return len(doc["bufferViews"]) - 1

    def accessor(array: NDArray[Any], kind: str, component: int, target: int, **extra: Any) -> int:
        doc["accessors"].append(
            {"bufferView": view(array.tobytes(), target), "componentType": component}
            | {"count": len(array), "type": kind, **extra}
        )
        return len(doc["accessors"]) - 1

    bounds = {"min": positions.min(0).tolist(), "max": positions.max(0).tolist()}
    attributes = {
        "POSITION": accessor(positions, "VEC3", FLOAT, ARRAY_BUFFER, **bounds),
        "NORMAL": accessor(normals, "VEC3", FLOAT, ARRAY_BUFFER),
    }
    material: dict[str, Any] = {"pbrMetallicRoughness": {"metallicFactor": 0.0}}
    if uvs is not None:
        attributes["TEXCOORD_0"] = accessor(uvs, "VEC2", FLOAT, ARRAY_BUFFER)
        doc["images"] = [{"bufferView": view(d), "mimeType": "image/jpeg"} for d in images]
        doc["samplers"] = [{"magFilter": 9729, "minFilter": 9987}]
        doc["textures"] = [{"source": i, "sampler": 0} for i in range(len(images))]
        pbr = {"baseColorTexture": {"index": 0}, "metallicFactor": 1.0}
        material = {
            "pbrMetallicRoughness": pbr | {"metallicRoughnessTexture": {"index": 2}},
            "normalTexture": {"index": 1},
        }
    indexed = accessor(indices, "SCALAR", UNSIGNED_INT, ELEMENT_ARRAY_BUFFER)
    doc["materials"] = [material]
    doc["meshes"] = [
        {"primitives": [{"attributes": attributes, "indices": indexed, "material": 0}]}
    ]
    binary = b"".join(chunks)
    doc["buffers"] = [{"byteLength": len(binary)}]
    return pack_glb(doc, binary)


# --- generated inputs ---


def _noise(size: int, rng: np.random.Generator, octaves: int = 6) -> NDArray[np.float32]:
    """Fractal value noise in [0, 1]: random grids upsampled bicubically and summed."""
    total = np.zeros((size, size), dtype=np.float32)
    for octave in range(octaves):
        cells = 4 * 2**octave
        grid = Image.fromarray(rng.random((cells, cells), dtype=np.float32), mode="F")
        layer = np.asarray(grid.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32)
        total += layer * 0.55**octave
    total -= total.min()
    return total / max(float(total.max()), 1e-6)


def _jpeg(pixels: NDArray[Any]) -> bytes:
    out = BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(out, "JPEG", quality=90)
    return out.getvalue()


def _textures(size: int = 2048, seed: int = 7) -> list[bytes]:
    """baseColor (glazed ceramic with speckles), a normal map from a bump field, and ORM-style MR."""
    rng = np.random.default_rng(seed)
    low, fine = _noise(size, rng), _noise(size, rng, octaves=8)
    y = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None]
    bands = 0.5 + 0.5 * np.sin(2 * np.pi * (y * 9 + low * 0.8))
    tint = np.array([178, 92, 60], dtype=np.float32) * (0.7 + 0.3 * bands)[..., None]
    speckle = (rng.random((size, size)) > 0.995).astype(np.float32)[..., None] * 60
    base = tint * (0.85 + 0.3 * fine[..., None]) - speckle
    height = 0.6 * fine + 0.4 * bands
    dy, dx = np.gradient(height * 40.0)
    normal = np.stack([-dx, -dy, np.ones_like(dx)], axis=-1)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    # glTF 2.0 §3.9.3: roughness in G, metalness in B; R is unused (occlusion in an ORM pack).
    mr = np.stack([np.full_like(low, 1.0), 0.25 + 0.5 * fine, (bands > 0.9) * 1.0], axis=-1)
    return [_jpeg(base), _jpeg((normal * 0.5 + 0.5) * 255), _jpeg(mr * 255)]


def _oriented(positions: F32, faces: NDArray[np.int64], outward: F32) -> U32:
    """Flip the triangles whose winding disagrees with ``outward`` (glTF: CCW is front, §3.7.2.1)."""
    a, b, c = (positions[faces[:, k]] for k in range(3))
    flip = np.einsum("ij,ij->i", np.cross(b - a, c - a), outward[faces].mean(axis=1)) < 0
    faces[flip] = faces[flip][:, ::-1]
    return faces.reshape(-1).astype(np.uint32)


def _grid_faces(rows: int, cols: int) -> NDArray[np.int64]:
    """Two triangles per cell of a rows x cols vertex grid."""
    r, c = np.meshgrid(np.arange(rows - 1), np.arange(cols - 1), indexing="ij")
    v = (r * cols + c).reshape(-1)
    return np.concatenate(
        [np.stack([v, v + cols, v + 1], 1), np.stack([v + 1, v + cols, v + cols + 1], 1)]
    )


def product_glb(around: int = 128, rings: int = 60) -> bytes:
    """A vase (surface of revolution, 0.35 m tall) of 2*around*(rings-1) ~ 15k triangles.

    UVs wrap once around (a seam column of duplicated vertices) and once up; normals are the
    analytic ones of the profile, so the seam is smooth.
    """
    t = np.linspace(0.0, 1.0, rings)
    radius = 0.06 + 0.05 * np.sin(np.pi * t * 1.6) ** 2 + 0.02 * t
    height = 0.35 * t
    dr, dh = np.gradient(radius, t), np.gradient(height, t)
    theta = np.linspace(0.0, 2 * np.pi, around + 1)
    cos, sin = np.cos(theta)[None, :], np.sin(theta)[None, :]
    r, h = radius[:, None], height[:, None]
    positions = np.stack(np.broadcast_arrays(r * cos, h, r * sin), -1).reshape(-1, 3)
    normals = np.stack(np.broadcast_arrays(dh[:, None] * cos, -dr[:, None], dh[:, None] * sin), -1)
    normals = (normals / np.linalg.norm(normals, axis=-1, keepdims=True)).reshape(-1, 3)
    uv = np.stack(np.broadcast_arrays(theta[None, :] / (2 * np.pi), 1.0 - t[:, None]), -1)
    pos32, nrm32 = positions.astype(np.float32), normals.astype(np.float32)
    indices = _oriented(pos32, _grid_faces(rings, around + 1), nrm32)
    return _glb(pos32, nrm32, indices, uv.reshape(-1, 2).astype(np.float32), _textures())


def scan_glb(n: int = 289, seed: int = 11) -> bytes:
    """A welded cube-sphere of 12*n*n triangles (n=289: 1,002,252), displaced like a noisy scan.

    Smooth bumps (a sum of random plane waves) plus 0.3 % Gaussian per-vertex noise, 0.3 m
    radius stretched to a 0.84 m tall bust-like ovoid; area-weighted vertex normals.
    """
    rng = np.random.default_rng(seed)
    k = np.arange(n + 1)
    u, v = (g.reshape(-1) for g in np.meshgrid(k, k, indexing="ij"))
    lattice: list[NDArray[np.int64]] = []
    faces: list[NDArray[np.int64]] = []
    for axis in range(3):
        for side in (0, n):
            point = np.zeros((u.size, 3), dtype=np.int64)
            point[:, axis], point[:, (axis + 1) % 3], point[:, (axis + 2) % 3] = side, u, v
            faces.append(_grid_faces(n + 1, n + 1) + sum(len(p) for p in lattice))
            lattice.append(point)
    # Cube-face grids share their edge lattice points exactly: weld on the integer lattice.
    unique, inverse = np.unique(np.concatenate(lattice), axis=0, return_inverse=True)
    direction = unique - n / 2.0
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    waves = rng.normal(size=(24, 3)) * rng.uniform(2.0, 14.0, size=(24, 1))
    bumps = np.sin(direction @ waves.T + rng.uniform(0, 2 * np.pi, 24)) @ (1.0 / np.arange(1, 25))
    radius = 0.3 * (1 + 0.04 * bumps + 0.003 * rng.normal(size=len(direction)))
    positions = (direction * radius[:, None] * np.array([1.0, 1.4, 1.0])).astype(np.float32)
    indices = _oriented(positions, inverse.reshape(-1)[np.concatenate(faces)], direction)
    tri = indices.reshape(-1, 3)
    a, b, c = (positions[tri[:, j]].astype(np.float64) for j in range(3))
    normals = np.zeros_like(positions, dtype=np.float64)
    cross = np.cross(b - a, c - a)
    for j in range(3):
        np.add.at(normals, tri[:, j], cross)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    return _glb(positions, normals.astype(np.float32), indices, None, [])


GENERATORS: dict[str, Callable[[], bytes]] = {"product": product_glb, "scan": scan_glb}


def ensure_inputs(cache: Path = CACHE) -> dict[str, Path]:
    """Generate (once) and return the benchmark inputs by name.

    Args:
        cache: the directory that holds them (created if missing).

    Returns:
        ``{"product": path, "scan": path}``.
    """
    cache.mkdir(parents=True, exist_ok=True)
    inputs = {}
    for name, make in GENERATORS.items():
        path = cache / f"{name}-v{VERSION}.glb"
        if not path.exists():
            print(f"generating {path}", file=sys.stderr)
            partial = path.with_suffix(".part")
            partial.write_bytes(make())
            partial.replace(path)
        inputs[name] = path
    return inputs


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    for name, path in ensure_inputs(Path(args[0]) if args else CACHE).items():
        print(f"{name}\t{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
