"""The prevalidated glTF document and typed readers for its JSON fields.

Shared by :mod:`pipeline.guards.gltf` (container, JSON, URIs, graph checks) and
:mod:`pipeline.guards.accessors` (accessor checks and bounded reads). Every reader raises a
:class:`~pipeline.errors.GltfError` with a stable code instead of letting a ``KeyError`` or
``TypeError`` escape from hostile JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import GltfError
from pipeline.limits import DEFAULT_LIMITS, Limits

JsonObject = dict[str, Any]


@dataclass(slots=True)
class GltfDocument:
    """A prevalidated glTF: its JSON and every buffer's bytes, resolved inside the upload."""

    json: JsonObject
    buffers: list[bytes]
    members: dict[str, bytes] = field(default_factory=dict)
    base_member: str = ""
    limits: Limits = DEFAULT_LIMITS

    def array(self, key: str) -> list[JsonObject]:
        """The top-level array ``key`` (already type-checked by :func:`prevalidate`)."""
        value: list[JsonObject] = self.json.get(key, [])
        return value


def json_int(obj: JsonObject, key: str, default: int | None = None, minimum: int = 0) -> int:
    """``obj[key]`` (or ``default``) as an integer >= ``minimum``; booleans are not integers.

    Raises:
        GltfError: ``gltf_json_invalid``.
    """
    value = obj.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise GltfError(
            f"{key} must be an integer >= {minimum}, not {value!r}", code="gltf_json_invalid"
        )
    return value


def json_str(obj: JsonObject, key: str) -> str:
    """``obj[key]`` as a string.

    Raises:
        GltfError: ``gltf_json_invalid``.
    """
    value = obj.get(key)
    if not isinstance(value, str):
        raise GltfError(f"{key} must be a string", code="gltf_json_invalid")
    return value


def json_index(container: JsonObject | list[Any], key: str | int, size: int) -> int:
    """A reference into an array of ``size`` items (``container[key]``, an index).

    Raises:
        GltfError: ``gltf_invalid_reference`` when it is not an integer in ``[0, size)``.
    """
    value = container[int(key)] if isinstance(container, list) else container.get(str(key))
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < size:
        raise GltfError(
            f"reference {key!r} = {value!r} is out of range", code="gltf_invalid_reference"
        )
    return value
