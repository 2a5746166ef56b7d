"""The pipeline's error tree. Every rejection is a :class:`PipelineError` with a stable ``code``.

The server maps them to HTTP once (413 for size caps, 415 for unsupported formats, 422 for the
rest); the CLI prints ``error: <code>: <message>`` and exits 2.

    PipelineError                    422 invalid_input
    +-- UnsupportedFormat            415 unsupported_format
    +-- TooLarge                     413 too_large           (file, member, pixel or count caps)
    +-- ArchiveError                 422 archive_*           (bombs, overlap, traversal, nesting, links)
    +-- ImageError                   422 image_*             (undecodable, pixel flood, bad format)
    +-- GltfError                    422 gltf_*              (external URI, bounds, cycles, extensions)
    +-- MeshError                    422 mesh_*              (lying headers, NaN, empty, bad indices)
    +-- OutputError                  422 output_invalid      (our own output failed validation: a bug)
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base of every error the pipeline raises on purpose."""

    code: str = "invalid_input"
    status: int = 422

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class UnsupportedFormat(PipelineError):
    code = "unsupported_format"
    status = 415


class TooLarge(PipelineError):
    code = "too_large"
    status = 413


class ArchiveError(PipelineError):
    code = "archive_invalid"


class ImageError(PipelineError):
    code = "image_invalid"


class GltfError(PipelineError):
    code = "gltf_invalid"


class MeshError(PipelineError):
    code = "mesh_invalid"


class OutputError(PipelineError):
    code = "output_invalid"
