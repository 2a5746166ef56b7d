"""thumbnail.webp: a real software rendering of the asset, with numpy and Pillow only.

A z-buffered triangle rasterizer, vectorised over batches of triangles of similar screen size:

1. Camera: perspective (30° field of view) from a 3/4 view (35° around from +Z towards +X,
   25° above), zoomed and centred so the projected model fills 90 % of the frame.
2. Rasterization: for every triangle, the pixel centres inside its screen bounding box are
   tested with edge functions. Depth is 1/z interpolated linearly in screen space (exact under
   perspective). Depth and triangle id are packed into one int64 and ``np.minimum.at`` keeps the
   nearest fragment per pixel, ties going to the lower triangle id (deterministic).
   ``alphaMode: MASK`` triangles drop fragments whose texture alpha is below the cutoff
   (glTF 2.0 §3.9.4).
3. Deferred shading, once per covered pixel: perspective-correct barycentrics, the interpolated
   normal (or the face normal when the primitive has none), flipped towards the camera (so
   double-sided and badly wound meshes still look lit), Lambert from a key and a fill light plus
   ambient, times baseColorFactor x COLOR_0 x baseColorTexture (bilinear, REPEAT wrap, sRGB
   decoded to linear as glTF 2.0 §3.9.2 requires), plus emissiveFactor. BLEND materials are
   mixed with the background by their alpha.
4. Rendered at 2x and box-filtered down (anti-aliasing), encoded as WebP q85 method 4.

Everything is deterministic: no threads, no random numbers, fixed encoder parameters.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from io import BytesIO

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from pipeline.guards.image import open_image
from pipeline.limits import DEFAULT_LIMITS
from pipeline.model import Asset, Material
from pipeline.steps.textures import TEXTURE_FORMATS

logger = logging.getLogger(__name__)

F64 = NDArray[np.float64]
F32 = NDArray[np.float32]  # per-pixel shading data: half the memory traffic of float64
I64 = NDArray[np.int64]

BACKGROUND = (236, 236, 236)
SUPERSAMPLE = 2
FOV_DEG = 30.0
AZIMUTH_DEG = 35.0
ELEVATION_DEG = 25.0
FILL = 0.9
AMBIENT = 0.22
KEY_LIGHT = 0.68
FILL_LIGHT = 0.18
MAX_TEXTURE_SIDE = 512
# Fragments evaluated per batch: bounds the temporaries to a few tens of MB.
BATCH_FRAGMENTS = 1 << 20
# Box sides that triangles are batched by: every size to 8, then steps of ~25 % (few wasted
# candidate pixels per triangle, few batches).
_BOX_SIDES = np.unique(
    np.concatenate([np.arange(1, 9), np.round(8 * 1.25 ** np.arange(1, 40)).astype(np.int64)])
)
_EMPTY = np.iinfo(np.int64).max
_DEPTH_LEVELS = (1 << 30) - 1


@dataclass(slots=True)
class _Scene:
    """Every primitive concatenated; per-triangle material index and flat/smooth flag."""

    positions: F64
    normals: F32
    uvs: F32
    colors: F32
    triangles: I64
    material: I64
    smooth: NDArray[np.bool_]
    face_normals: F32
    has_colors: bool


@dataclass(slots=True)
class _View:
    """Screen-space vertices (pixels, y down), 1/z per vertex and the camera basis."""

    xy: F64
    inv_z: F64
    forward: F64
    right: F64
    up: F64


def render_thumbnail(asset: Asset, *, size: int = 512) -> bytes:
    """Render the asset from a 3/4 view on a light neutral background.

    Args:
        asset: The asset to show (textures are decoded through the safe opener).
        size: Width and height of the square thumbnail in pixels.

    Returns:
        WebP bytes, identical for identical input.

    Raises:
        ValueError: ``size`` is outside 16..4096.
        ImageError: A base colour texture cannot be decoded (``pipeline.guards.image`` codes).
    """
    if not 16 <= size <= 4096:
        raise ValueError(f"thumbnail size {size} is outside 16..4096")
    full = size * SUPERSAMPLE
    rgb = np.empty((full * full, 3), dtype=np.uint8)
    rgb[:] = BACKGROUND
    scene = _gather(asset)
    if scene.triangles.shape[0]:
        view = _project(scene.positions, scene.triangles, full)
        textures = _TextureCache(asset)
        masked = _mask_sampler(asset, scene, view, textures)
        ids = _rasterize(view, scene.triangles, full, masked)
        _shade(rgb, ids, scene, view, asset, textures)
    else:
        logger.warning("thumbnail of an asset without triangles: background only")
    image = Image.fromarray(rgb.reshape(full, full, 3), "RGB")
    image = image.resize((size, size), Image.Resampling.BOX)
    out = BytesIO()
    image.save(out, "WEBP", quality=85, method=4)
    return out.getvalue()


def _gather(asset: Asset) -> _Scene:
    positions, normals, uvs, colors, triangles, material, smooth = [], [], [], [], [], [], []
    offset = 0
    for prim in asset.primitives:
        count = prim.vertex_count
        positions.append(prim.positions.astype(np.float64))
        normals.append(_or(prim.normals, (count, 3), 0.0))
        uvs.append(_or(prim.uvs, (count, 2), 0.0))
        colors.append(_or(prim.colors, (count, 4), 1.0))
        tris = prim.indices.astype(np.int64).reshape(-1, 3) + offset
        triangles.append(tris)
        mat = -1 if prim.material is None else prim.material
        material.append(np.full(tris.shape[0], mat, dtype=np.int64))
        smooth.append(np.full(tris.shape[0], prim.normals is not None, dtype=np.bool_))
        offset += count
    if not triangles:
        positions, triangles = [np.zeros((0, 3))], [np.zeros((0, 3), dtype=np.int64)]
    all_positions = np.concatenate(positions)
    all_triangles = np.concatenate(triangles)
    # Loaders reject NaN; still, never let one reach an integer cast.
    finite = np.asarray(np.isfinite(all_positions).all(axis=1), dtype=np.bool_)
    keep = np.asarray(finite[all_triangles].all(axis=1), dtype=np.bool_)
    all_positions = np.where(finite[:, None], all_positions, 0.0)
    all_triangles = all_triangles[keep]
    corners = all_positions[all_triangles]
    face = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    face /= np.maximum(np.linalg.norm(face, axis=1, keepdims=True), 1e-30)
    return _Scene(
        positions=all_positions,
        normals=np.concatenate(normals) if normals else np.zeros((0, 3), np.float32),
        uvs=np.concatenate(uvs) if uvs else np.zeros((0, 2), np.float32),
        colors=np.concatenate(colors) if colors else np.zeros((0, 4), np.float32),
        triangles=all_triangles,
        material=np.concatenate(material)[keep] if material else np.zeros(0, dtype=np.int64),
        smooth=np.concatenate(smooth)[keep] if smooth else np.zeros(0, dtype=np.bool_),
        face_normals=face.astype(np.float32),
        has_colors=any(p.colors is not None for p in asset.primitives),
    )


def _or(values: F32 | None, shape: tuple[int, int], fill: float) -> F32:
    if values is None:
        return np.full(shape, fill, dtype=np.float32)
    return values.astype(np.float32)


def _project(positions: F64, triangles: I64, full: int) -> _View:
    """Camera and screen coordinates framing the vertices that triangles use."""
    used = np.unique(triangles)
    low, high = positions[used].min(axis=0), positions[used].max(axis=0)
    center = (low + high) / 2
    radius = max(float(np.linalg.norm(high - low)) / 2, 1e-6)
    az, el = math.radians(AZIMUTH_DEG), math.radians(ELEVATION_DEG)
    direction = np.array([math.sin(az) * math.cos(el), math.sin(el), math.cos(az) * math.cos(el)])
    eye = center + direction * radius / math.sin(math.radians(FOV_DEG) / 2)
    forward = -direction
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    rel = positions - eye
    depth = np.maximum(rel @ forward, 1e-9)  # the eye is outside the bounding sphere
    sx, sy = (rel @ right) / depth, (rel @ up) / depth
    ux, uy = sx[used], sy[used]
    span = max(float(np.ptp(ux)), float(np.ptp(uy)), 1e-12)
    scale = FILL * full / span
    cx, cy = (ux.max() + ux.min()) / 2, (uy.max() + uy.min()) / 2
    xy = np.stack([(sx - cx) * scale + full / 2, full / 2 - (sy - cy) * scale], axis=1)
    return _View(xy, 1.0 / depth, forward, right, up)


@dataclass(slots=True)
class _Fragments:
    """Candidate pixels of a batch of triangles, flattened to 1-D arrays."""

    tri: I64
    pixel: I64
    bary: F64  # (n, 3) screen-space barycentrics


def _rasterize(view: _View, triangles: I64, full: int, masked: _MaskSampler | None) -> I64:
    """Per pixel, the id of the nearest triangle covering its centre, or -1."""
    corners = view.xy[triangles]  # (M, 3, 2)
    low = np.clip(np.ceil(corners.min(axis=1) - 0.5), 0, full - 1).astype(np.int64)
    high = np.clip(np.floor(corners.max(axis=1) - 0.5), 0, full - 1).astype(np.int64)
    area = _edge(corners[:, 0], corners[:, 1], corners[:, 2])
    extent = high - low + 1
    on_screen = (extent > 0).all(axis=1) & (np.abs(area) > 1e-12)
    on_screen &= (corners.max(axis=1) >= 0).all(axis=1) & (corners.min(axis=1) <= full).all(axis=1)
    buckets = np.searchsorted(_BOX_SIDES, extent)  # the smallest box side >= the extent
    zbuffer = np.full(full * full, _EMPTY, dtype=np.int64)
    inv_z = view.inv_z[triangles]
    z_low, z_high = float(inv_z.min()), float(inv_z.max())
    z_scale = _DEPTH_LEVELS / max(z_high - z_low, 1e-30)
    for code in np.unique(buckets[on_screen, 0] * 64 + buckets[on_screen, 1]).tolist():
        bx, by = divmod(int(code), 64)
        width, height = int(_BOX_SIDES[bx]), int(_BOX_SIDES[by])
        chosen = np.flatnonzero(on_screen & (buckets[:, 0] == bx) & (buckets[:, 1] == by))
        step = max(1, BATCH_FRAGMENTS // (width * height))
        for start in range(0, chosen.size, step):
            batch = chosen[start : start + step]
            frags = _candidates(corners, area, low, high, batch, (width, height), full)
            if masked is not None:
                frags = masked.keep(frags)
            depth = (frags.bary * inv_z[frags.tri]).sum(axis=1)
            quantized = np.clip((z_high - depth) * z_scale, 0, _DEPTH_LEVELS).astype(np.int64)
            np.minimum.at(zbuffer, frags.pixel, (quantized << 32) | frags.tri)
    ids = np.where(zbuffer == _EMPTY, -1, zbuffer & 0xFFFFFFFF)
    return ids.astype(np.int64)


def _edge(a: F64, b: F64, c: F64) -> F64:
    result: F64 = (b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (
        c[..., 0] - a[..., 0]
    )
    return result


def _candidates(
    corners: F64,
    area: F64,
    low: I64,
    high: I64,
    batch: I64,
    box: tuple[int, int],
    full: int,
) -> _Fragments:
    """The pixels of each triangle's box (of size ``box``) whose centres lie inside it.

    Barycentrics are affine in the pixel centre, so each is ``A*x + B*y + C`` with per-triangle
    coefficients evaluated on the (triangles x box pixels) grid.
    """
    oy, ox = np.divmod(np.arange(box[0] * box[1], dtype=np.int64), box[0])
    px = low[batch, 0, None] + ox[None, :]
    py = low[batch, 1, None] + oy[None, :]
    cx = np.asarray(px + 0.5, dtype=np.float64)
    cy = np.asarray(py + 0.5, dtype=np.float64)
    a, b, c = corners[batch, 0], corners[batch, 1], corners[batch, 2]
    inv_area = (1.0 / area[batch])[:, None]
    w0 = _affine(b, c, inv_area, cx, cy)
    w1 = _affine(c, a, inv_area, cx, cy)
    w2 = 1.0 - w0 - w1
    inside = (px <= high[batch, 0, None]) & (py <= high[batch, 1, None])
    inside &= (w0 >= -1e-9) & (w1 >= -1e-9) & (w2 >= -1e-9)
    tri = np.broadcast_to(batch[:, None], px.shape)[inside]
    bary = np.stack([w0[inside], w1[inside], w2[inside]], axis=1)
    return _Fragments(tri, (py * full + px)[inside], bary)


def _affine(p: F64, q: F64, inv_area: F64, cx: F64, cy: F64) -> F64:
    """The edge function of (p, q) at pixel centres, divided by the triangle's area."""
    dx, dy = (q[:, 0] - p[:, 0])[:, None], (q[:, 1] - p[:, 1])[:, None]
    constant = dy * p[:, 0, None] - dx * p[:, 1, None]
    result: F64 = (dx * cy - dy * cx + constant) * inv_area
    return result


class _TextureCache:
    """Decoded base colour textures as float RGBA arrays (colour linearised), capped in size."""

    def __init__(self, asset: Asset) -> None:
        self._asset = asset
        self._decoded: dict[int, F32] = {}

    def get(self, index: int) -> F32:
        if index not in self._decoded:
            texture = self._asset.textures[index]
            image = open_image(texture.data, DEFAULT_LIMITS, TEXTURE_FORMATS).convert("RGBA")
            image.thumbnail((MAX_TEXTURE_SIDE, MAX_TEXTURE_SIDE), Image.Resampling.BILINEAR)
            raw = np.asarray(image)
            texels = np.empty(raw.shape, dtype=np.float32)
            texels[..., :3] = _SRGB_TO_LINEAR_LUT[raw[..., :3]]
            texels[..., 3] = raw[..., 3] / np.float32(255.0)
            self._decoded[index] = texels
        return self._decoded[index]


def _sample(texels: F32, uv: F32) -> F32:
    """Bilinear sampling with REPEAT wrapping (the glTF default sampler), UV origin top-left."""
    height, width = texels.shape[:2]
    x = (uv[:, 0] - np.floor(uv[:, 0])) * width - 0.5
    y = (uv[:, 1] - np.floor(uv[:, 1])) * height - 0.5
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    xi0, yi0 = x0.astype(np.int64) % width, y0.astype(np.int64) % height
    xi1, yi1 = (xi0 + 1) % width, (yi0 + 1) % height
    top = texels[yi0, xi0] * (1 - fx) + texels[yi0, xi1] * fx
    bottom = texels[yi1, xi0] * (1 - fx) + texels[yi1, xi1] * fx
    result: F32 = top * (1 - fy) + bottom * fy
    return result


def _perspective(view: _View, corner_ids: I64, bary: F64) -> F32:
    """Screen-space barycentrics -> perspective-correct ones."""
    weighted = bary * view.inv_z[corner_ids]
    result: F32 = (weighted / weighted.sum(axis=1, keepdims=True)).astype(np.float32)
    return result


def _interpolate(values: F32, corner_ids: I64, bary: F32) -> F32:
    result: F32 = values[corner_ids[:, 0]] * bary[:, 0, None]
    result += values[corner_ids[:, 1]] * bary[:, 1, None]
    result += values[corner_ids[:, 2]] * bary[:, 2, None]
    return result


class _MaskSampler:
    """Drops fragments of ``alphaMode: MASK`` triangles whose alpha is below the cutoff."""

    def __init__(
        self,
        scene: _Scene,
        view: _View,
        alpha: list[tuple[int, Material]],
        textures: _TextureCache,
    ) -> None:
        self._scene, self._view, self._alpha, self._textures = scene, view, alpha, textures

    def keep(self, frags: _Fragments) -> _Fragments:
        keep = np.ones(frags.tri.size, dtype=np.bool_)
        material = self._scene.material[frags.tri]
        for index, mat in self._alpha:
            chosen = np.flatnonzero(material == index)
            if chosen.size == 0:
                continue
            corner_ids = self._scene.triangles[frags.tri[chosen]]
            bary = _perspective(self._view, corner_ids, frags.bary[chosen])
            alpha = _alpha(self._scene, corner_ids, bary, mat, self._textures)
            keep[chosen] = alpha >= mat.alpha_cutoff
        return _Fragments(frags.tri[keep], frags.pixel[keep], frags.bary[keep])


def _mask_sampler(
    asset: Asset, scene: _Scene, view: _View, textures: _TextureCache
) -> _MaskSampler | None:
    used = set(np.unique(scene.material).tolist())
    masked = [(i, m) for i, m in enumerate(asset.materials) if m.alpha_mode == "MASK" and i in used]
    if not masked:
        return None
    return _MaskSampler(scene, view, masked, textures)


def _alpha(
    scene: _Scene, corner_ids: I64, bary: F32, mat: Material, textures: _TextureCache
) -> F32:
    alpha = np.full(corner_ids.shape[0], mat.base_color_factor[3], dtype=np.float32)
    if scene.has_colors:
        alpha *= _interpolate(scene.colors[:, 3:], corner_ids, bary)[:, 0]
    if mat.base_color_texture is not None:
        uv = _interpolate(scene.uvs, corner_ids, bary)
        alpha *= _sample(textures.get(mat.base_color_texture), uv)[:, 3]
    return alpha


def _shade(
    rgb: NDArray[np.uint8],
    ids: I64,
    scene: _Scene,
    view: _View,
    asset: Asset,
    textures: _TextureCache,
) -> None:
    """Write the shaded colour of every covered pixel into ``rgb`` (sRGB, uint8)."""
    pixels = np.flatnonzero(ids >= 0)
    tri = ids[pixels]
    corner_ids = scene.triangles[tri]
    full = math.isqrt(rgb.shape[0])
    bary = _perspective(view, corner_ids, _barycentrics(view, corner_ids, pixels, full))
    light = _lighting(_normals(scene, view, tri, corner_ids, bary), view)
    colour = np.ones((tri.size, 4), dtype=np.float32)
    if scene.has_colors:
        colour *= _interpolate(scene.colors, corner_ids, bary)
    emissive = np.zeros((tri.size, 3), dtype=np.float32)
    blend = np.zeros(tri.size, dtype=np.bool_)
    material = scene.material[tri]
    for index in np.unique(material).tolist():
        if index < 0 or index >= len(asset.materials):
            continue
        chosen = np.flatnonzero(material == index)
        mat = asset.materials[index]
        colour[chosen] *= mat.base_color_factor
        emissive[chosen] = mat.emissive_factor
        blend[chosen] = mat.alpha_mode == "BLEND"
        if mat.base_color_texture is not None:
            uv = _interpolate(scene.uvs, corner_ids[chosen], bary[chosen])
            colour[chosen] *= _sample(textures.get(mat.base_color_texture), uv)
    linear = colour[:, :3] * light[:, None] + emissive
    srgb = _SRGB_LUT[np.rint(np.clip(linear, 0.0, 1.0) * _LUT_MAX).astype(np.int64)]
    alpha = np.where(blend, np.clip(colour[:, 3], 0.0, 1.0), 1.0)[:, None]
    mixed = srgb * alpha + np.asarray(BACKGROUND, dtype=np.float64) * (1.0 - alpha)
    rgb[pixels] = np.rint(mixed).astype(np.uint8)


def _barycentrics(view: _View, corner_ids: I64, pixels: I64, full: int) -> F64:
    """Screen-space barycentrics of pixel centres in their triangles."""
    centre = np.stack([pixels % full + 0.5, pixels // full + 0.5], axis=1).astype(np.float64)
    a, b, c = view.xy[corner_ids[:, 0]], view.xy[corner_ids[:, 1]], view.xy[corner_ids[:, 2]]
    inv_area = 1.0 / _edge(a, b, c)
    w0 = _edge(b, c, centre) * inv_area
    w1 = _edge(c, a, centre) * inv_area
    return np.stack([w0, w1, 1.0 - w0 - w1], axis=1)


def _normals(scene: _Scene, view: _View, tri: I64, corner_ids: I64, bary: F32) -> F32:
    """Unit shading normals facing the camera: interpolated, or the face normal when absent."""
    normal = scene.face_normals[tri]
    smooth = scene.smooth[tri]
    if smooth.any():
        normal[smooth] = _interpolate(scene.normals, corner_ids[smooth], bary[smooth])
    length = np.sqrt(np.einsum("ij,ij->i", normal, normal))[:, None]
    towards_camera = (-view.forward).astype(np.float32)
    normal = np.where(length > 1e-20, normal / np.maximum(length, 1e-20), towards_camera)
    facing = (
        normal @ view.forward.astype(np.float32) > 0
    )  # pointing away from the camera: light the other side
    normal[facing] *= -1.0
    return normal


def _lighting(normal: F32, view: _View) -> F32:
    """Ambient plus Lambert from a key light (upper left, in front) and a weaker fill."""
    key = -0.45 * view.right + 0.75 * view.up - 0.5 * view.forward
    fill = 0.6 * view.right - 0.2 * view.up - 0.8 * view.forward
    key_dir = (key / np.linalg.norm(key)).astype(np.float32)
    fill_dir = (fill / np.linalg.norm(fill)).astype(np.float32)
    result: F32 = (
        np.float32(AMBIENT)
        + np.float32(KEY_LIGHT) * np.maximum(normal @ key_dir, np.float32(0.0))
        + np.float32(FILL_LIGHT) * np.maximum(normal @ fill_dir, np.float32(0.0))
    )
    return result


def _srgb_to_linear(c: F32) -> F32:
    result: F32 = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return result


def _linear_to_srgb(c: F64) -> F64:
    result: F64 = np.where(c <= 0.0031308, c * 12.92, 1.055 * np.power(c, 1 / 2.4) - 0.055)
    return result


_SRGB_TO_LINEAR_LUT: F32 = _srgb_to_linear(np.arange(256, dtype=np.float32) / np.float32(255.0))
_LUT_MAX = 4095
_SRGB_LUT: F64 = _linear_to_srgb(np.linspace(0.0, 1.0, _LUT_MAX + 1)) * 255.0
