"""The pipeline's in-memory model: what every loader produces and every step transforms.

A product is a flat list of triangle primitives in one coordinate frame (node transforms already
applied, like gltfpack's flatten), the materials they use and the encoded texture images. Arrays
are numpy; images stay encoded bytes until a step needs pixels, so untouched textures keep their
original bytes (never a JPEG -> JPEG round trip).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]
U32 = NDArray[np.uint32]

AlphaMode = Literal["OPAQUE", "MASK", "BLEND"]


class Format(StrEnum):
    """Input formats, detected from magic bytes (pipeline.detect)."""

    glb = "glb"
    gltf_zip = "gltf-zip"
    obj_zip = "obj-zip"
    obj = "obj"
    stl = "stl"
    ply = "ply"
    jpeg = "jpeg"
    png = "png"
    webp = "webp"
    avif = "avif"
    heic = "heic"

    @property
    def is_photo(self) -> bool:
        return self in {Format.jpeg, Format.png, Format.webp, Format.avif, Format.heic}


@dataclass(slots=True)
class Texture:
    """An encoded image: PNG, JPEG or WebP bytes, with its decoded size."""

    data: bytes
    mime_type: str
    width: int
    height: int
    name: str = ""


@dataclass(slots=True)
class Material:
    """A glTF 2.0 metallic-roughness material; texture fields index ``Asset.textures``."""

    name: str = ""
    base_color_factor: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    base_color_texture: int | None = None
    metallic_factor: float = 0.0
    roughness_factor: float = 1.0
    metallic_roughness_texture: int | None = None
    normal_texture: int | None = None
    occlusion_texture: int | None = None
    emissive_factor: tuple[float, float, float] = (0.0, 0.0, 0.0)
    emissive_texture: int | None = None
    alpha_mode: AlphaMode = "OPAQUE"
    alpha_cutoff: float = 0.5
    double_sided: bool = False

    def texture_slots(self) -> dict[str, int]:
        """The texture indices this material uses, by slot name."""
        slots = {
            "baseColor": self.base_color_texture,
            "metallicRoughness": self.metallic_roughness_texture,
            "normal": self.normal_texture,
            "occlusion": self.occlusion_texture,
            "emissive": self.emissive_texture,
        }
        return {name: index for name, index in slots.items() if index is not None}


@dataclass(slots=True)
class Primitive:
    """Indexed triangles. ``positions`` (N, 3) float32; ``indices`` (3M,) uint32 into them.

    Optional per-vertex attributes have N rows: ``normals`` (N, 3) unit length, ``uvs`` (N, 2)
    with glTF's convention (origin top-left), ``colors`` (N, 4) linear RGBA in 0..1.
    """

    positions: F32
    indices: U32
    normals: F32 | None = None
    uvs: F32 | None = None
    colors: F32 | None = None
    material: int | None = None

    @property
    def triangle_count(self) -> int:
        return int(self.indices.size // 3)

    @property
    def vertex_count(self) -> int:
        return int(self.positions.shape[0])


@dataclass(slots=True)
class Asset:
    """A loaded product: primitives in one frame, the materials and textures they reference."""

    primitives: list[Primitive]
    materials: list[Material] = field(default_factory=list)
    textures: list[Texture] = field(default_factory=list)
    source_format: Format | None = None
    # "mm", "cm", "m", "in" when the input says (OBJ/STL names like ``part.unitsmm.stl``).
    unit_hint: str | None = None
    # True when the source is Z-up by convention (STL/PLY/OBJ from CAD) and no override was given.
    z_up_hint: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def triangle_count(self) -> int:
        return sum(p.triangle_count for p in self.primitives)

    def bounds(self) -> tuple[F32, F32]:
        """(min, max) corners over every primitive's positions."""
        lows = [p.positions.min(axis=0) for p in self.primitives if p.vertex_count]
        highs = [p.positions.max(axis=0) for p in self.primitives if p.vertex_count]
        if not lows:
            zero = np.zeros(3, dtype=np.float32)
            return zero, zero
        return (
            np.min(np.stack(lows), axis=0).astype(np.float32),
            np.max(np.stack(highs), axis=0).astype(np.float32),
        )
