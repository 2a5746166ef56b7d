"""Hostile and malformed inputs built in code, one per row of research-security.md B-E.

Each :class:`Case` pairs the bytes with the stable error code the pipeline must answer with.
Nothing large is committed: bombs are generated here (the biggest is a 17 MiB JSON chunk).

Run as ``python -m tests.pipeline.hostile`` to reject every case in this process under an audit
hook and print one JSON line per case (code, seconds, peak RSS growth, forbidden events); the
test suite does that in a subprocess so that its hook and its memory are its own.
"""

from __future__ import annotations

import functools
import io
import json
import struct
import sys
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from pipeline.errors import PipelineError
from pipeline.limits import DEFAULT_LIMITS, Limits


@dataclass(frozen=True)
class Case:
    """One hostile input: research row, name, bytes factory, expected code, optional limits."""

    row: str
    name: str
    build: Callable[[], bytes]
    code: str
    limits: Limits = DEFAULT_LIMITS


def reject(data: bytes, limits: Limits = DEFAULT_LIMITS) -> str:
    """Run detection and loading (or the photo guard); return the error code, or "accepted"."""
    from pipeline.detect import detect
    from pipeline.guards.image import open_image
    from pipeline.loaders import load

    try:
        fmt = detect(data, limits)
        if fmt.is_photo:
            open_image(data, limits, formats=(fmt.name.upper(),))
        else:
            load(data, fmt, limits=limits)
    except PipelineError as exc:
        return exc.code
    return "accepted"


# --- builders ---------------------------------------------------------------------------------


def glb(document: dict[str, Any], binary: bytes = b"") -> bytes:
    """A GLB container around ``document`` and an optional BIN chunk (glTF 2.0 §4.4)."""
    text = json.dumps(document).encode()
    text += b" " * (-len(text) % 4)
    chunks = struct.pack("<II", len(text), 0x4E4F534A) + text
    if binary:
        binary += b"\x00" * (-len(binary) % 4)
        chunks += struct.pack("<II", len(binary), 0x004E4942) + binary
    return b"glTF" + struct.pack("<II", 2, 12 + len(chunks)) + chunks


def triangle(**changes: Any) -> tuple[dict[str, Any], bytes]:
    """A valid one-triangle glTF (3 float positions, 3 uint16 indices) and its buffer."""
    positions = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype="<f4").tobytes()
    indices = np.array([0, 1, 2], dtype="<u2").tobytes() + b"\x00\x00"
    binary = positions + indices
    document: dict[str, Any] = {
        "asset": {"version": "2.0"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "indices": 1}]}],
        "buffers": [{"byteLength": len(binary)}],
        "bufferViews": [
            {"buffer": 0, "byteOffset": 0, "byteLength": 36},
            {"buffer": 0, "byteOffset": 36, "byteLength": 6},
        ],
        "accessors": [
            {"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3",
             "min": [0, 0, 0], "max": [1, 1, 0]},
            {"bufferView": 1, "componentType": 5123, "count": 3, "type": "SCALAR"},
        ],
    }  # fmt: skip
    document.update(changes)
    return document, binary


def triangle_glb(**changes: Any) -> bytes:
    document, binary = triangle(**changes)
    return glb(document, binary)


def zip_of(members: dict[str, bytes], **info: Any) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, body in members.items():
            entry = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            for key, value in info.get(name, {}).items():
                setattr(entry, key, value)
            archive.writestr(entry, body, compress_type=entry.compress_type or zipfile.ZIP_DEFLATED)
    return out.getvalue()


OBJ_TRIANGLE = b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n"


def overlap_bomb() -> bytes:
    """Two central-directory entries sharing one local header and one deflate stream."""
    body = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = body.compress(b"v 0 0 0\n" * 100_000) + body.flush()
    crc, size = zlib.crc32(b"v 0 0 0\n" * 100_000), 800_000
    name = b"a.obj"
    local = struct.pack(
        "<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(data), size, len(name), 0
    )
    directory = b""
    for member in (b"a.obj", b"b.obj"):
        directory += struct.pack(
            "<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, len(data), size,
            len(member), 0, 0, 0, 0, 0, 0,
        ) + member  # fmt: skip
    start = len(local) + len(name) + len(data)
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 2, 2, len(directory), start, 0)
    return local + name + data + directory + end


def encrypted_zip() -> bytes:
    """The encryption flag (bit 0) set in both the local and the central header."""
    archive = bytearray(zip_of({"model.obj": OBJ_TRIANGLE}))
    struct.pack_into("<H", archive, 6, 0x1)
    struct.pack_into("<H", archive, archive.rfind(b"PK\x01\x02") + 8, 0x1)
    return bytes(archive)


def lying_zip() -> bytes:
    """A member whose central directory claims 10 bytes while it inflates to 100 KB."""
    archive = bytearray(zip_of({"model.obj": OBJ_TRIANGLE * 3000}))
    at = archive.rfind(b"PK\x01\x02")
    struct.pack_into("<I", archive, at + 24, 10)
    return bytes(archive)


def png_flood() -> bytes:
    """A ~90-byte PNG declaring 10000 x 10000 pixels (research C1)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload))
            + kind
            + payload
            + struct.pack(">I", zlib.crc32(kind + payload))
        )

    header = struct.pack(">IIBBBBB", 10_000, 10_000, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def encoded_image(fmt: str, size: int = 64) -> bytes:
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format=fmt)
    return out.getvalue()


def uri_case(uri: str, where: str = "buffer") -> bytes:
    document, binary = triangle()
    if where == "buffer":
        document["buffers"] = [{"byteLength": len(binary), "uri": uri}]
        return glb(document)
    document["images"] = [{"uri": uri}]
    return glb(document, binary)


def textured(image: bytes) -> tuple[dict[str, Any], bytes]:
    """The triangle with a base colour texture stored in its buffer."""
    document, binary = triangle()
    view = {"buffer": 0, "byteOffset": len(binary), "byteLength": len(image)}
    document["bufferViews"].append(view)
    document["buffers"] = [{"byteLength": len(binary) + len(image)}]
    document["images"] = [{"bufferView": 2, "mimeType": "image/png"}]
    document["textures"] = [{"source": 0}]
    document["materials"] = [{"pbrMetallicRoughness": {"baseColorTexture": {"index": 0}}}]
    document["meshes"][0]["primitives"][0]["material"] = 0
    return document, binary + image


def textured_glb(image: bytes) -> bytes:
    return glb(*textured(image))


def nan_glb() -> bytes:
    document, binary = triangle()
    positions = np.frombuffer(binary[:36], dtype="<f4").copy()
    positions[4] = np.nan
    return glb(document, positions.tobytes() + binary[36:])


def ply(header_counts: str, body: bytes, encoding: str = "binary_little_endian") -> bytes:
    return (
        f"ply\nformat {encoding} 1.0\n{header_counts}\nproperty float x\nproperty float y\n"
        "property float z\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n"
    ).encode() + body


def _accessor(**changes: Any) -> list[dict[str, Any]]:
    accessors: list[dict[str, Any]] = triangle()[0]["accessors"]
    accessors[0].update(changes)
    return accessors


def _cases_b() -> list[Case]:
    return [
        Case("B1", "zip bomb by ratio", lambda: zip_of({"model.obj": b"\x00" * (12 << 20)}), "archive_ratio"),
        Case("B1", "overlapping-entry zip bomb", overlap_bomb, "archive_overlap"),
        Case("B1", "nested zip", lambda: zip_of({"model.obj": OBJ_TRIANGLE, "inner.zip": zip_of({"a.obj": OBJ_TRIANGLE})}), "archive_nested"),
        Case("B1", "central directory lying about sizes", lying_zip, "archive_invalid"),
        Case("B1", "member over the size cap", lambda: zip_of({"model.obj": OBJ_TRIANGLE * 40_000}), "archive_too_large",
             Limits(max_zip_member_bytes=1 << 20)),
        Case("B2", "../ member", lambda: zip_of({"../evil.obj": OBJ_TRIANGLE}), "archive_unsafe_path"),
        Case("B2", "absolute member", lambda: zip_of({"/tmp/evil.obj": OBJ_TRIANGLE}), "archive_unsafe_path"),
        Case("B2", "drive-letter member", lambda: zip_of({"C:/evil.obj": OBJ_TRIANGLE}), "archive_unsafe_path"),
        Case("B2", "backslash member", lambda: zip_of({"..\\evil.obj": OBJ_TRIANGLE}), "archive_unsafe_path"),
        Case("B2", "symlink member", lambda: zip_of({"model.obj": OBJ_TRIANGLE, "link.png": b"/etc/passwd"},
             **{"link.png": {"external_attr": 0o120777 << 16}}), "archive_symlink"),
        Case("B2", "case-colliding duplicate names", lambda: zip_of({"model.obj": OBJ_TRIANGLE, "MODEL.obj": OBJ_TRIANGLE}), "archive_duplicate_name"),
        Case("B3", "too many entries", lambda: zip_of({"model.obj": OBJ_TRIANGLE} | {f"{i}.txt": b"" for i in range(1001)}), "archive_too_many_entries"),
        Case("B4", "encrypted member", encrypted_zip, "archive_encrypted"),
        Case("B4", "bzip2 member", lambda: zip_of({"model.obj": OBJ_TRIANGLE}, **{"model.obj": {"compress_type": zipfile.ZIP_BZIP2}}), "archive_unsupported_method"),
    ]  # fmt: skip


def _cases_c() -> list[Case]:
    jpeg = encoded_image("JPEG")
    return [
        Case("C1", "PNG pixel flood", png_flood, "image_too_many_pixels"),
        Case("C1", "PNG pixel flood as a GLB texture", lambda: textured_glb(png_flood()), "image_too_many_pixels"),
        Case("C3", "truncated JPEG", lambda: jpeg[: len(jpeg) // 2], "image_invalid"),
        Case("C2", "PDF named .png", lambda: b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n", "unsupported_format"),
        Case("C2", "PSD named .png", lambda: b"8BPS\x00\x01" + b"\x00" * 64, "unsupported_format"),
        Case("C5", "GIF named .png", lambda: encoded_image("GIF"), "unsupported_format"),
        Case("C6", "SVG named .png", lambda: b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "unsupported_format"),
    ]  # fmt: skip


def _uri_cases() -> list[Case]:
    forms = ["http://169.254.169.254/latest/meta-data", "https://example.com/a.bin", "file:///etc/passwd",
             "/etc/passwd", "../secret.bin", "%2e%2e/secret.bin", "\\\\host\\share\\a.bin", "gopher://x/"]  # fmt: skip
    cases = [
        Case("D1", f"buffer uri {uri}", functools.partial(uri_case, uri), "gltf_external_uri")
        for uri in forms
    ]
    cases += [
        Case(
            "D1", f"image uri {uri}", functools.partial(uri_case, uri, "image"), "gltf_external_uri"
        )
        for uri in forms[:4]
    ]
    return cases


def _cases_d() -> list[Case]:
    deep = b'{"asset":{"version":"2.0"},"extras":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    huge = triangle(extras={"pad": "x" * (17 << 20)})[0]
    big_uri = "data:application/octet-stream;base64," + "A" * (2 << 20)
    cycle = [{"children": [1], "mesh": 0}, {"children": [0]}]
    return [
        Case("D7", "truncated GLB", lambda: triangle_glb()[:-20], "gltf_glb_invalid"),
        Case("D7", "GLB chunk longer than the file", lambda: (lambda b: b[:12] + struct.pack("<I", 1 << 30) + b[16:])(triangle_glb()), "gltf_glb_invalid"),
        Case("D7", "GLB whose first chunk is BIN", lambda: (lambda b: b[:16] + struct.pack("<I", 0x004E4942) + b[20:])(triangle_glb()), "gltf_glb_invalid"),
        Case("D10", "JSON depth bomb", lambda: glb_raw(deep), "gltf_json_too_deep"),
        Case("D2", "huge JSON chunk", lambda: glb(huge), "gltf_json_too_large"),
        Case("D2", "data URI over the buffer cap", lambda: uri_case(big_uri), "gltf_uri_too_large", Limits(max_accessor_bytes=1 << 20)),
        *_uri_cases(),
        Case("D3", "bufferless accessor count bomb", lambda: glb({"asset": {"version": "2.0"}, "accessors": [{"componentType": 5126, "count": 200_000_000, "type": "VEC3"}], "meshes": [{"primitives": [{"attributes": {"POSITION": 0}}]}], "nodes": [{"mesh": 0}]}), "gltf_accessor_too_large"),
        Case("D3", "bufferless MAT4 accessors summing past the byte cap", lambda: glb({"asset": {"version": "2.0"}, "accessors": [{"componentType": 5125, "count": 9_000_000, "type": "MAT4"}]}), "gltf_accessor_too_large"),
        Case("D4", "accessor out of buffer bounds", lambda: triangle_glb(accessors=_accessor(count=30)), "gltf_accessor_out_of_bounds"),
        Case("D4", "misaligned accessor", lambda: triangle_glb(accessors=_accessor(byteOffset=2, count=2)), "gltf_accessor_misaligned"),
        Case("D4", "bufferView past its buffer", lambda: triangle_glb(bufferViews=[{"buffer": 0, "byteLength": 400}, {"buffer": 0, "byteOffset": 36, "byteLength": 6}]), "gltf_buffer_view_out_of_bounds"),
        Case("D4", "sparse indices out of range", lambda: sparse_glb(), "gltf_accessor_out_of_bounds"),
        Case("D5", "index out of range", lambda: index_glb(7), "gltf_index_out_of_range"),
        Case("D6", "NaN positions", nan_glb, "gltf_invalid_float"),
        Case("D6", "NaN token in JSON", lambda: glb_raw(json.dumps(triangle()[0]).replace('"max": [1, 1, 0]', '"max": [NaN, 1, 0]').encode(), triangle()[1]), "gltf_json_invalid"),
        Case("D6", "POSITION max overflowing to infinity", lambda: glb_raw(json.dumps(triangle()[0]).replace('"max": [1, 1, 0]', '"max": [1e999, 1, 0]').encode(), triangle()[1]), "gltf_invalid_float"),
        Case("D8", "node cycle", lambda: triangle_glb(nodes=cycle, scenes=[{"nodes": [0]}]), "gltf_node_cycle"),
        Case("D8", "self-parented node", lambda: triangle_glb(nodes=[{"children": [0], "mesh": 0}]), "gltf_node_cycle"),
        Case("D8", "dangling mesh reference", lambda: triangle_glb(nodes=[{"mesh": 5}]), "gltf_invalid_reference"),
        Case("D9", "required Draco", lambda: triangle_glb(extensionsUsed=["KHR_draco_mesh_compression"], extensionsRequired=["KHR_draco_mesh_compression"]), "gltf_unsupported_extension"),
        Case("D9", "unknown required extension", lambda: triangle_glb(extensionsRequired=["VENDOR_mystery"]), "gltf_unsupported_extension"),
    ]  # fmt: skip


def glb_raw(text: bytes, binary: bytes = b"") -> bytes:
    """A GLB around raw JSON text (for JSON that json.dumps would not write)."""
    text += b" " * (-len(text) % 4)
    chunks = struct.pack("<II", len(text), 0x4E4F534A) + text
    if binary:
        chunks += struct.pack("<II", len(binary), 0x004E4942) + binary
    return b"glTF" + struct.pack("<II", 2, 12 + len(chunks)) + chunks


def index_glb(bad: int) -> bytes:
    document, binary = triangle()
    indices = np.array([0, 1, bad], dtype="<u2").tobytes() + b"\x00\x00"
    return glb(document, binary[:36] + indices)


def sparse_glb() -> bytes:
    document, binary = triangle()
    extra = np.array([9], dtype="<u2").tobytes() + b"\x00\x00" + np.zeros(3, "<f4").tobytes()
    document["bufferViews"] += [
        {"buffer": 0, "byteOffset": 44, "byteLength": 2},
        {"buffer": 0, "byteOffset": 48, "byteLength": 12},
    ]
    document["buffers"] = [{"byteLength": 60}]
    document["accessors"][0]["sparse"] = {"count": 1, "indices": {"bufferView": 2, "componentType": 5123}, "values": {"bufferView": 3}}  # fmt: skip
    return glb(document, binary + extra)


def _cases_e() -> list[Case]:
    stl_lie = (
        b"solid-looking header".ljust(80, b" ") + struct.pack("<I", 0xFFFFFFFF) + b"\x00" * 1000
    )
    return [
        Case("E1", "STL with lying triangle count", lambda: stl_lie, "mesh_header_mismatch"),
        Case("E1", "STL over the triangle cap", lambda: b"\x00" * 80 + struct.pack("<I", 200) + b"\x00" * 10_000, "mesh_too_large", Limits(max_triangles=100)),
        Case("E2", "PLY with lying vertex count", lambda: ply("element vertex 1000000", b"\x00" * 100), "mesh_header_mismatch"),
        Case("E2", "PLY declaring 4e9 vertices", lambda: ply("element vertex 4000000000", b"\x00" * 100), "mesh_too_large"),
        Case("E2", "ASCII PLY with lying vertex count", lambda: ply("element vertex 500", b"0 0 0\n" * 3, "ascii"), "mesh_header_mismatch"),
        Case("E3", "OBJ face index 0", lambda: b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 0 1 2\n", "mesh_invalid_indices"),
        Case("E3", "OBJ face index past the vertices", lambda: b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n", "mesh_parse_failed"),
        Case("E4", "random bytes", lambda: np.random.default_rng(3).bytes(1001), "unsupported_format"),
        Case("E4", "empty file", lambda: b"", "empty_input"),
        Case("E4", "upload over the size cap", lambda: OBJ_TRIANGLE * 100, "too_large", Limits(max_input_bytes=1000)),
        Case("E4", "point cloud", lambda: b"v 0 0 0\nv 1 0 0\nv 0 1 0\n", "mesh_no_triangles"),
    ]  # fmt: skip


def cases() -> list[Case]:
    """Every hostile case, in research-table order."""
    return [*_cases_b(), *_cases_c(), *_cases_d(), *_cases_e()]


# --- subprocess runner ------------------------------------------------------------------------


def _main() -> None:  # pragma: no cover - exercised through a subprocess by test_guards.py
    import threading
    import time

    import psutil  # type: ignore[import-untyped]

    # Imported before the hook is installed: imports open files.
    import pipeline.detect
    import pipeline.guards.image
    import pipeline.loaders.gltf
    import pipeline.loaders.obj
    import pipeline.loaders.ply
    import pipeline.loaders.stl  # noqa: F401

    allowed = tuple(sorted({sys.prefix, sys.base_prefix, sys.exec_prefix, "/dev/urandom"}))
    events: list[str] = []

    main = threading.main_thread()

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if threading.current_thread() is not main:
            return  # the RSS sampler reads /proc
        if event == "socket.connect" or event.startswith("subprocess"):
            events.append(event)
        elif event == "open" and isinstance(args[0], str) and not args[0].startswith(allowed):
            events.append(f"open {args[0]}")

    built = [(case, case.build()) for case in cases()]
    process = psutil.Process()
    sys.addaudithook(hook)
    for case, data in built:
        baseline, peak, done = process.memory_info().rss, [0], threading.Event()

        def sample(
            baseline: int = baseline, peak: list[int] = peak, done: threading.Event = done
        ) -> None:
            while not done.wait(0.002):
                peak[0] = max(peak[0], process.memory_info().rss - baseline)

        sampler = threading.Thread(target=sample)
        sampler.start()
        events.clear()
        started = time.perf_counter()
        code = reject(data, case.limits)
        seconds = time.perf_counter() - started
        seen = list(events)
        done.set()
        sampler.join()
        peak[0] = max(peak[0], process.memory_info().rss - baseline)
        line = {
            "name": case.name,
            "code": code,
            "seconds": seconds,
            "rss": peak[0],
            "events": seen,
        }
        sys.stdout.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    _main()
