"""glTF accessors: prove their bounds (:func:`check_accessors`), then decode them.

:func:`check_accessors` runs inside :func:`pipeline.guards.gltf.prevalidate`: component and
element types, counts and the total declared bytes (bufferless accessors included, research D3),
§3.6.2.4 alignment, reads past the bufferView, sparse indices and values, and finite
``min``/``max``. :func:`read_accessor` then decodes with numpy inside those proven bounds.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pipeline.errors import GltfError
from pipeline.guards.gltf_document import GltfDocument, JsonObject, json_index, json_int

# glTF 2.0 §3.6.2.2 componentType -> numpy dtype (little-endian), and components per type.
COMPONENT_DTYPES: dict[int, str] = {
    5120: "i1", 5121: "u1", 5122: "<i2", 5123: "<u2", 5125: "<u4", 5126: "<f4",
}  # fmt: skip
TYPE_SIZES = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
INDEX_TYPES = frozenset({5121, 5123, 5125})


def check_accessors(document: GltfDocument) -> None:
    """Check every accessor's type, count, bounds, alignment and sparse data (glTF 2.0 §3.6.2).

    Args:
        document: A document whose buffers and bufferViews are already checked.

    Raises:
        GltfError: ``gltf_json_invalid``, ``gltf_accessor_too_large``,
            ``gltf_accessor_out_of_bounds``, ``gltf_accessor_misaligned``,
            ``gltf_invalid_reference`` or ``gltf_invalid_float``.
    """
    total = 0
    for i, accessor in enumerate(document.array("accessors")):
        element = _element_size(accessor)
        count = json_int(accessor, "count", minimum=1)
        if count > document.limits.max_accessor_count:
            raise GltfError(f"accessor {i} count {count}", code="gltf_accessor_too_large")
        # D3: bufferless accessors are zero-filled by loaders, so they count too.
        total += count * element
        if total > document.limits.max_accessor_bytes:
            raise GltfError(f"accessors declare {total} bytes", code="gltf_accessor_too_large")
        if "bufferView" in accessor:
            _check_accessor_view(document, accessor, i, count, element)
        elif "byteOffset" in accessor:
            raise GltfError(
                f"accessor {i} has byteOffset but no bufferView", code="gltf_json_invalid"
            )
        if "sparse" in accessor:
            _check_sparse(document, accessor, i, count, element)
        _check_bounds_finite(accessor, i)


def _check_bounds_finite(accessor: JsonObject, i: int) -> None:
    """min/max must be finite numbers: json.loads turns ``1e999`` into inf (ACCESSOR_INVALID_FLOAT)."""
    for key in ("min", "max"):
        values = accessor.get(key, [])
        if not isinstance(values, list) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for v in values
        ):
            raise GltfError(f"accessor {i} {key} is not finite numbers", code="gltf_invalid_float")


def _element_size(accessor: JsonObject) -> int:
    ctype = accessor.get("componentType")
    kind = accessor.get("type")
    if ctype not in COMPONENT_DTYPES or kind not in TYPE_SIZES or isinstance(ctype, bool):
        raise GltfError(f"accessor type {kind!r}/{ctype!r}", code="gltf_json_invalid")
    return int(np.dtype(COMPONENT_DTYPES[ctype]).itemsize) * TYPE_SIZES[kind]


def _check_accessor_view(
    document: GltfDocument, accessor: JsonObject, i: int, count: int, element: int
) -> None:
    view = document.array("bufferViews")[
        json_index(accessor, "bufferView", len(document.array("bufferViews")))
    ]
    component = element // TYPE_SIZES[accessor["type"]]
    offset = json_int(accessor, "byteOffset", 0)
    stride = json_int(view, "byteStride", 0) or element
    # §3.6.2.4: accessor offsets and strides are multiples of the component size.
    if (offset + json_int(view, "byteOffset", 0)) % component or stride % component:
        raise GltfError(f"accessor {i} is misaligned", code="gltf_accessor_misaligned")
    if stride < element:
        raise GltfError(
            f"accessor {i} elements overlap (stride {stride})", code="gltf_accessor_misaligned"
        )
    if offset + stride * (count - 1) + element > json_int(view, "byteLength"):
        raise GltfError(
            f"accessor {i} reads past its bufferView", code="gltf_accessor_out_of_bounds"
        )


def _check_sparse(
    document: GltfDocument, accessor: JsonObject, i: int, count: int, element: int
) -> None:
    sparse = accessor["sparse"]
    if (
        not isinstance(sparse, dict)
        or not isinstance(sparse.get("indices"), dict)
        or not isinstance(sparse.get("values"), dict)
    ):
        raise GltfError(f"accessor {i} sparse is malformed", code="gltf_json_invalid")
    sparse_count = json_int(sparse, "count", minimum=1)
    if sparse_count > count:
        raise GltfError(
            f"accessor {i} sparse count {sparse_count}", code="gltf_accessor_out_of_bounds"
        )
    indices, values = sparse["indices"], sparse["values"]
    if indices.get("componentType") not in INDEX_TYPES:
        raise GltfError(f"accessor {i} sparse index type", code="gltf_json_invalid")
    index_size = np.dtype(COMPONENT_DTYPES[indices["componentType"]]).itemsize
    for part, size in ((indices, index_size * sparse_count), (values, element * sparse_count)):
        views = document.array("bufferViews")
        view = views[json_index(part, "bufferView", len(views))]
        if json_int(part, "byteOffset", 0) + size > json_int(view, "byteLength"):
            raise GltfError(
                f"accessor {i} sparse data out of bounds", code="gltf_accessor_out_of_bounds"
            )
    if int(_sparse_indices(document, accessor).max()) >= count:
        raise GltfError(
            f"accessor {i} sparse index out of range", code="gltf_accessor_out_of_bounds"
        )


def read_accessor(document: GltfDocument, index: int) -> NDArray[Any]:
    """Decode accessor ``index`` to a (count, components) array; bounds were proven beforehand.

    Normalized integers are not rescaled here (see pipeline.loaders.gltf); sparse substitution
    (glTF 2.0 §3.6.2.3) is applied; a bufferless accessor is zeros of its declared size, which
    :func:`prevalidate` has already capped.

    Args:
        document: A prevalidated document.
        index: The accessor index.

    Returns:
        An array of the accessor's component dtype, shape (count, components).
    """
    accessor = document.array("accessors")[index]
    dtype = np.dtype(COMPONENT_DTYPES[accessor["componentType"]])
    width = TYPE_SIZES[accessor["type"]]
    count = int(accessor["count"])
    if "bufferView" not in accessor:
        values: NDArray[Any] = np.zeros((count, width), dtype=dtype)
    else:
        view = document.array("bufferViews")[accessor["bufferView"]]
        buffer = document.buffers[view["buffer"]]
        start = int(view.get("byteOffset", 0)) + int(accessor.get("byteOffset", 0))
        stride = int(view.get("byteStride", 0)) or dtype.itemsize * width
        rows = np.ndarray(
            (count, width),
            dtype=dtype,
            buffer=buffer,
            offset=start,
            strides=(stride, dtype.itemsize),
        )
        values = rows.copy()
    if "sparse" in accessor:
        values[_sparse_indices(document, accessor)] = _sparse_values(
            document, accessor, dtype, width
        )
    return values


def _sparse_indices(document: GltfDocument, accessor: JsonObject) -> NDArray[Any]:
    sparse = accessor["sparse"]
    part = sparse["indices"]
    return _view_slice(
        document, part, np.dtype(COMPONENT_DTYPES[part["componentType"]]), int(sparse["count"])
    )


def _sparse_values(
    document: GltfDocument, accessor: JsonObject, dtype: np.dtype[Any], width: int
) -> NDArray[Any]:
    sparse = accessor["sparse"]
    count = int(sparse["count"])
    return _view_slice(document, sparse["values"], dtype, count * width).reshape(count, width)


def _view_slice(
    document: GltfDocument, part: JsonObject, dtype: np.dtype[Any], count: int
) -> NDArray[Any]:
    view = document.array("bufferViews")[part["bufferView"]]
    start = int(view.get("byteOffset", 0)) + int(part.get("byteOffset", 0))
    buffer = document.buffers[view["buffer"]]
    return np.frombuffer(buffer, dtype=dtype, count=count, offset=start)
