"""Scene graphs for :func:`pipeline.write.write_scene_glb`: several meshes placed by nodes.

The scenes package builds booths and halls with these types (glTF 2.0 §3.5). This module holds
the types, their checks and the node half of the writer; :func:`pipeline.write.write_scene_glb`
writes every mesh of a :class:`SceneDocument` as an :class:`~pipeline.model.Asset` with the same
options, stream layout and determinism as :func:`pipeline.write.write_glb`, identical images
(with their texture) and identical materials of different meshes once, then calls
:func:`write_nodes`. ``pipeline.write`` imports this module; this one imports it for typing only.

Nodes. Output node ``i`` is ``scene.nodes[i]``: its name, translation/rotation/scale, children
and ``extras``. With plain geometry it carries its mesh itself. With quantization every mesh has
its own position grid, which a node transform must dequantize (``KHR_mesh_quantization``); so
that this never replaces the caller's TRS, the mesh goes on an extra *carrier* child whose
translation and uniform scale are the grid's. Carriers follow the caller's nodes, in node order.

Instancing (``EXT_mesh_gpu_instancing``) sits on the node that carries the mesh. The extension
applies the instance transform first: ``world = NodeWorld * Instance * vertex``. On a carrier
``C = T(o) S(s)``, each instance ``I = T(t) R S`` is therefore written as ``C^-1 I C =
T((t + R S o - o) / s) R S``: rotation and scale are kept, the translation moves into grid
units, and the world positions are the caller's. A viewer without the extension still draws the
mesh once, at the right size, at the node, so the extension is used but not required. The
instance attributes are FLOAT accessors on bufferViews without a target; with meshopt they stay
uncompressed in the GLB buffer (a few bytes per prop), so the decoder needs nothing new.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pygltflib as gl  # type: ignore[import-untyped]
from numpy.typing import NDArray

from pipeline.errors import MeshError, OutputError
from pipeline.model import F32, Asset
from pipeline.quantize import Grid

if TYPE_CHECKING:
    from pipeline.write import GltfBuilder

EXT_MESH_GPU_INSTANCING: Final = "EXT_mesh_gpu_instancing"

F64 = NDArray[np.float64]
_IDENTITY: Final = (0.0, 0.0, 0.0, 1.0)
# translations, rotations, scales, colours of a node's instances, checked.
InstanceArrays = tuple[F64, F64 | None, F64 | None, F64 | None]


@dataclass(frozen=True, slots=True)
class Instances:
    """Copies of a node's mesh (``EXT_mesh_gpu_instancing``), in the node's frame.

    Attributes:
        translations: (N, 3) instance positions.
        rotations: (N, 4) quaternions xyzw (normalized when written); identity when omitted.
        scales: (N, 3) per-axis scales; 1 when omitted.
        colors: (N, 3) linear RGB in 0..1 per instance, written as the custom attribute
            ``_COLOR_0`` (the extension allows ``_``-prefixed attributes; three.js' GLTFLoader
            turns it into ``InstancedMesh.instanceColor``, multiplied with the material colour).
    """

    translations: F32
    rotations: F32 | None = None
    scales: F32 | None = None
    colors: F32 | None = None


@dataclass(slots=True)
class SceneNode:
    """A glTF node (§3.5.2): optional mesh, local TRS, children, optional instances.

    Attributes:
        name: written as ``node.name`` (omitted when empty).
        mesh: index into :attr:`SceneDocument.meshes`.
        translation: local translation.
        rotation: local rotation, a quaternion xyzw (normalized when written).
        scale: local scale.
        children: indices into :attr:`SceneDocument.nodes`; a node has at most one parent.
        instances: draw the mesh once per instance instead (needs ``mesh``).
        extras: JSON-safe application data, written as ``node.extras``.
    """

    name: str = ""
    mesh: int | None = None
    translation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rotation: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
    scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    children: list[int] = field(default_factory=list)
    instances: Instances | None = None
    extras: dict[str, Any] | None = None


@dataclass(slots=True)
class SceneDocument:
    """Meshes, the nodes that place them and scene 0's root nodes.

    Attributes:
        meshes: each asset becomes one glTF mesh (index kept), with its materials and textures.
        nodes: the node graph; a forest reachable from ``roots``.
        roots: scene 0's root nodes.
    """

    meshes: list[Asset]
    nodes: list[SceneNode]
    roots: list[int]


@dataclass(frozen=True, slots=True)
class CheckedNode:
    """A node as :func:`check_scene` passes it on: int indices, finite transforms, normalized
    quaternions, extras as a JSON copy."""

    name: str
    mesh: int | None
    translation: tuple[float, ...]
    rotation: tuple[float, ...]
    scale: tuple[float, ...]
    children: tuple[int, ...]
    instances: InstanceArrays | None
    extras: dict[str, Any] | None


# --- checks ----------------------------------------------------------------------------------


def check_scene(scene: SceneDocument) -> tuple[list[CheckedNode], list[int]]:
    """Check the graph (§3.5.2: nodes form disjoint strict trees) and every node's data.

    Args:
        scene: the scene to write (not modified).

    Returns:
        ``(nodes, roots)``: one checked node per ``scene.nodes`` entry, and the root indices.

    Raises:
        MeshError: the scene has no meshes.
        OutputError: an index out of range, a node with two parents, a cycle, a node the roots
            do not reach, a non-finite or malformed transform, instance arrays of different
            lengths, instances without a mesh, extras that are not a JSON object.
    """
    if not scene.meshes:
        raise MeshError("the scene has no meshes", code="mesh_empty")
    count = len(scene.nodes)
    nodes = [_checked_node(i, n, len(scene.meshes), count) for i, n in enumerate(scene.nodes)]
    parents: dict[int, int] = {}
    for i, node in enumerate(nodes):
        for child in node.children:
            if child in parents:
                raise OutputError(f"node {child} has two parents ({parents[child]} and {i})")
            parents[child] = i
    roots = [_index(r, count, "scene root") for r in scene.roots]
    if not roots:
        raise OutputError("the scene has no root nodes")
    if len(set(roots)) != len(roots):
        raise OutputError("a node is listed twice among the scene roots")
    for root in roots:
        if root in parents:
            # §3.5.1: every node listed in scene.nodes must be a root node.
            raise OutputError(f"scene root {root} is a child of node {parents[root]}")
    _check_reachable(nodes, roots, parents)
    return nodes, roots


def _check_reachable(
    nodes: Sequence[CheckedNode], roots: list[int], parents: dict[int, int]
) -> None:
    """Every node in the scene: a node outside it is either in a cycle or a forgotten link."""
    reached: set[int] = set()
    stack = list(roots)
    while stack:
        index = stack.pop()
        reached.add(index)
        stack.extend(nodes[index].children)
    for index in range(len(nodes)):
        if index in reached:
            continue
        seen, up = {index}, parents.get(index)
        while up is not None and up not in seen:
            seen.add(up)
            up = parents.get(up)
        if up is not None:
            raise OutputError(f"the node graph has a cycle through node {up}")
        raise OutputError(f"node {index} is not reachable from the scene roots")


def _checked_node(i: int, node: SceneNode, mesh_count: int, node_count: int) -> CheckedNode:
    what = f"node {i}"
    children = tuple(_index(c, node_count, f"{what} child") for c in node.children)
    mesh = None if node.mesh is None else _index(node.mesh, mesh_count, f"{what} mesh")
    if node.instances is not None and mesh is None:
        # EXT_mesh_gpu_instancing: "Instancing only applies to mesh nodes".
        raise OutputError(f"{what} has instances but no mesh")
    rotation = _unit_quaternions(_vectors([node.rotation], 4, f"{what} rotation"), what)[0]
    return CheckedNode(
        name=_name(node.name, what),
        mesh=mesh,
        translation=tuple(_vectors([node.translation], 3, f"{what} translation")[0].tolist()),
        rotation=tuple(rotation.tolist()),
        scale=tuple(_vectors([node.scale], 3, f"{what} scale")[0].tolist()),
        children=children,
        instances=None if node.instances is None else _instances(node.instances, what),
        extras=_extras(node.extras, what),
    )


def _index(value: Any, limit: int, what: str) -> int:
    if isinstance(value, bool):
        raise OutputError(f"{what} must be an integer index, not {value!r}")
    try:
        index = operator.index(value)
    except TypeError as exc:
        raise OutputError(f"{what} must be an integer index, not {value!r}") from exc
    if not 0 <= index < limit:
        raise OutputError(f"{what} {index} does not exist ({limit} available)")
    return index


def _name(name: object, what: str) -> str:
    if not isinstance(name, str):
        raise OutputError(f"{what} name must be a string")
    return name


def _vectors(values: Any, width: int, what: str) -> F64:
    """``values`` as a finite (N, width) float64 array."""
    try:
        array = np.array(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise OutputError(f"{what} is not an array of numbers: {exc}") from exc
    if array.ndim != 2 or array.shape[1] != width:
        raise OutputError(f"{what} must have shape (N, {width}), not {array.shape}")
    if not np.isfinite(array).all():
        raise OutputError(f"{what} contains NaN or infinity")
    return array


def _unit_quaternions(q: F64, what: str) -> F64:
    """Quaternions scaled to unit length (§3.5.3: rotation is a unit quaternion)."""
    length = np.linalg.norm(q, axis=1, keepdims=True)
    if not (length > 1e-12).all():
        raise OutputError(f"{what} has a rotation quaternion of zero length")
    out: F64 = q / length
    return out


def _instances(instances: Instances, what: str) -> InstanceArrays:
    translations = _vectors(instances.translations, 3, f"{what} instance translations")
    count = len(translations)
    if count == 0:
        raise OutputError(f"{what} has an empty instance list")
    rotations = scales = colors = None
    if instances.colors is not None:
        colors = _vectors(instances.colors, 3, f"{what} instance colours")
        if not ((colors >= 0.0) & (colors <= 1.0)).all():
            raise OutputError(f"{what} has instance colours outside 0..1")
    if instances.rotations is not None:
        rotations = _vectors(instances.rotations, 4, f"{what} instance rotations")
        rotations = _unit_quaternions(rotations, what)
    if instances.scales is not None:
        scales = _vectors(instances.scales, 3, f"{what} instance scales")
    for name, array in (("rotations", rotations), ("scales", scales), ("colours", colors)):
        # EXT_mesh_gpu_instancing: all attribute accessors of a node have the same count.
        if array is not None and len(array) != count:
            raise OutputError(f"{what} has {count} instance translations but {len(array)} {name}")
    return translations, rotations, scales, colors


def _extras(extras: object, what: str) -> dict[str, Any] | None:
    """A JSON copy of ``extras`` (detached from the caller's objects)."""
    if extras is None:
        return None
    if not isinstance(extras, dict):
        raise OutputError(f"{what} extras must be a dict")
    try:
        copied: dict[str, Any] = json.loads(json.dumps(extras, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise OutputError(f"{what} extras are not JSON: {exc}") from exc
    return copied


# --- nodes and instances ---------------------------------------------------------------------


def write_nodes(
    doc: GltfBuilder, nodes: Sequence[CheckedNode], grids: Sequence[Grid | None]
) -> None:
    """Append the nodes: the caller's as nodes 0..n-1, then one carrier per quantized mesh use.

    Args:
        doc: the document, its meshes already written (mesh i is ``scene.meshes[i]``).
        nodes: from :func:`check_scene`.
        grids: the position grid of each mesh (``None`` for plain positions).

    Raises:
        OutputError: an instance transform does not fit in a float32.
    """
    carriers: list[Any] = []
    for node in nodes:
        gl_node = _gl_node(node)
        doc.gltf.nodes.append(gl_node)
        if node.mesh is None:
            continue
        grid = grids[node.mesh]
        carrier = gl_node
        if grid is not None:
            # KHR_mesh_quantization: this node's transform dequantizes the positions.
            carrier = gl.Node(translation=list(grid.offset), scale=[grid.scale] * 3)
            gl_node.children.append(len(nodes) + len(carriers))
            carriers.append(carrier)
        carrier.mesh = node.mesh
        if node.instances is not None:
            attributes = _write_instances(doc, node.instances, grid)
            carrier.extensions = {EXT_MESH_GPU_INSTANCING: {"attributes": attributes}}
            # Not required: without it a viewer draws the mesh once (see the module docstring).
            doc.use(EXT_MESH_GPU_INSTANCING)
    doc.gltf.nodes.extend(carriers)


def _gl_node(node: CheckedNode) -> Any:
    """Name, children and the TRS that differ from the defaults (§3.5.3)."""
    return gl.Node(
        name=node.name or None,
        children=list(node.children),
        translation=list(node.translation) if any(node.translation) else None,
        rotation=list(node.rotation) if node.rotation != _IDENTITY else None,
        scale=list(node.scale) if node.scale != (1.0, 1.0, 1.0) else None,
    )


def _write_instances(
    doc: GltfBuilder, instances: InstanceArrays, grid: Grid | None
) -> dict[str, int]:
    """TRANSLATION, ROTATION, SCALE accessors (EXT_mesh_gpu_instancing: FLOAT VEC3/VEC4/VEC3),
    and ``_COLOR_0`` when the instances have colours."""
    translations, rotations, scales, colors = instances
    if grid is not None:
        translations = _in_grid_units(translations, rotations, scales, grid)
    attributes = {"TRANSLATION": doc.add_data_accessor(_float32(translations, "translation"))}
    if rotations is not None:
        attributes["ROTATION"] = doc.add_data_accessor(_float32(rotations, "rotation"))
    if scales is not None:
        attributes["SCALE"] = doc.add_data_accessor(_float32(scales, "scale"))
    if colors is not None:
        attributes["_COLOR_0"] = doc.add_data_accessor(colors.astype(np.float32))
    return attributes


def _float32(values: F64, what: str) -> F32:
    if not np.abs(values).max() <= np.finfo(np.float32).max:
        raise OutputError(f"an instance {what} does not fit in a float32")
    return values.astype(np.float32)


def _in_grid_units(t: F64, rotations: F64 | None, scales: F64 | None, grid: Grid) -> F64:
    """The translation of ``C^-1 T(t) R S C`` with ``C = T(o) S(s)``: ``(t + R S o - o) / s``."""
    offset = np.array(grid.offset, dtype=np.float64)
    moved = np.broadcast_to(offset, t.shape) if scales is None else scales * offset
    if rotations is not None:
        moved = _rotate(rotations, moved)
    out: F64 = (t + moved - offset) / grid.scale
    return out


def _rotate(q: F64, v: F64) -> F64:
    """Rotate each row of ``v`` by the unit quaternion (xyzw) in the same row."""
    u, w = q[:, :3], q[:, 3:]
    uv = np.cross(u, v)
    out: F64 = v + 2.0 * (w * uv + np.cross(u, uv))
    return out
