"""Caps applied before any parser sees a byte (research-security.md §5, rows B-E)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    max_input_bytes: int = 200 * 1024 * 1024
    # Archives (research B): entries, total and per-entry ratio, no nesting.
    max_zip_entries: int = 1000
    max_zip_total_bytes: int = 500 * 1024 * 1024
    max_zip_member_bytes: int = 256 * 1024 * 1024
    max_zip_ratio: float = 100.0
    # Images (research C): Pillow's pixel cap as an error, not a warning.
    max_image_pixels: int = 40_000_000
    # glTF (research D).
    max_json_bytes: int = 16 * 1024 * 1024
    max_json_depth: int = 64
    max_accessor_count: int = 10_000_000
    max_accessor_bytes: int = 256 * 1024 * 1024
    max_nodes: int = 10_000
    # Meshes (research E): declared counts are checked against the body before allocating.
    max_vertices: int = 10_000_000
    max_triangles: int = 10_000_000


DEFAULT_LIMITS = Limits()
