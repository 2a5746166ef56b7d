"""LocalBlobStore only: containment on disk, atomic writes, and the blob route."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from server.api import blobs
from server.api.errors import install_error_handlers
from server.errors import InvalidBlobKey, StorageUnavailable
from server.settings import BlobSettings
from server.storage import IMMUTABLE, LocalBlobStore, build_blob_store

SECRET = b"secret outside the blob root"
DATA = b"0123456789abcdef"


def plant_object(directory: Path, data: bytes) -> None:
    """Write a valid-looking stored object by hand, as LocalBlobStore lays it out."""
    directory.mkdir(parents=True)
    digest = hashlib.md5(data, usedforsecurity=False).hexdigest()
    (directory / f"~{digest}.data").write_bytes(data)
    (directory / "~meta.json").write_text(
        f'{{"size": {len(data)}, "etag": "\\"{digest}\\"", "content_type": "text/plain",'
        ' "cache_control": null}'
    )


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory beside the blob root holding an object-shaped secret."""
    plant_object(tmp_path / "outside" / "secret", SECRET)
    return tmp_path / "outside"


def test_a_symlink_planted_under_the_root_cannot_lead_a_read_outside(
    local_store: LocalBlobStore, outside: Path
) -> None:
    (local_store.root / "evil").symlink_to(outside, target_is_directory=True)

    with pytest.raises(InvalidBlobKey):
        local_store.get("evil/secret")
    with pytest.raises(InvalidBlobKey):
        local_store.head("evil/secret")
    assert [info.key for info in local_store.list()] == []
    assert list(local_store.list("evil/")) == []


def test_a_symlink_planted_under_the_root_cannot_lead_a_write_or_delete_outside(
    local_store: LocalBlobStore, outside: Path
) -> None:
    (local_store.root / "evil").symlink_to(outside, target_is_directory=True)

    with pytest.raises(InvalidBlobKey):
        local_store.put("evil/new", DATA, content_type="text/plain")
    with pytest.raises(InvalidBlobKey):
        local_store.delete("evil/secret")

    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert (outside / "secret" / "~meta.json").exists()


def test_a_symlinked_metadata_or_data_file_is_refused(
    local_store: LocalBlobStore, outside: Path
) -> None:
    local_store.put("k", DATA, content_type="text/plain")
    meta = local_store.root / "k" / "~meta.json"
    meta.unlink()
    meta.symlink_to(outside / "secret" / "~meta.json")

    with pytest.raises(InvalidBlobKey):
        local_store.get("k")


def test_a_tampered_sidecar_cannot_name_a_file_outside_the_object(
    local_store: LocalBlobStore, outside: Path
) -> None:
    local_store.put("k", DATA, content_type="text/plain")
    meta = local_store.root / "k" / "~meta.json"
    meta.write_text(meta.read_text().replace('"etag": "', '"etag": "/../../../outside/secret/'))

    with pytest.raises(StorageUnavailable):
        local_store.get("k")


def test_a_symlink_inside_the_root_to_inside_the_root_is_followed(
    local_store: LocalBlobStore,
) -> None:
    local_store.put("real/k", DATA, content_type="text/plain")
    (local_store.root / "alias").symlink_to(local_store.root / "real", target_is_directory=True)

    assert local_store.get("alias/k") == DATA


def test_a_root_that_is_itself_a_symlink_works(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    store = LocalBlobStore(tmp_path / "link", "/blobs")

    store.put("a/b", DATA, content_type="text/plain")

    assert store.get("a/b") == DATA
    assert (tmp_path / "real" / "a" / "b" / "~meta.json").is_file()


def test_writes_leave_one_metadata_and_one_data_file_and_no_temporaries(
    local_store: LocalBlobStore,
) -> None:
    for version in (b"one", b"two", b"three"):
        local_store.put("k", version, content_type="text/plain")

    digest = hashlib.md5(b"three", usedforsecurity=False).hexdigest()
    assert sorted(p.name for p in (local_store.root / "k").iterdir()) == [
        f"~{digest}.data",
        "~meta.json",
    ]


def test_delete_prunes_the_directories_it_emptied_but_not_others(
    local_store: LocalBlobStore,
) -> None:
    local_store.put("a/b/c", DATA, content_type="text/plain")
    local_store.put("a/x", DATA, content_type="text/plain")

    local_store.delete("a/b/c")

    assert not (local_store.root / "a" / "b").exists()
    assert (local_store.root / "a" / "x").is_dir()


def test_readers_racing_overwrites_see_whole_versions_only(local_store: LocalBlobStore) -> None:
    versions = {bytes([n]) * 64 * 1024 for n in range(4)}
    local_store.put("hot", next(iter(versions)), content_type="application/octet-stream")
    stop = threading.Event()
    seen: list[bytes] = []

    def write() -> None:
        while not stop.is_set():
            for data in versions:
                local_store.put("hot", data, content_type="application/octet-stream")

    writers = [threading.Thread(target=write) for _ in range(2)]
    for writer in writers:
        writer.start()
    try:
        for _ in range(300):
            seen.append(local_store.get("hot"))
    finally:
        stop.set()
        for writer in writers:
            writer.join()

    assert set(seen) <= versions


def test_the_url_is_the_prefix_and_the_key(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path, "/files/")

    assert store.url("scenes/a.glb") == "/files/scenes/a.glb"


def test_build_blob_store_makes_a_local_store_by_default(tmp_path: Path) -> None:
    store = build_blob_store(BlobSettings(local_dir=tmp_path / "b", local_url_prefix="/x"))

    assert isinstance(store, LocalBlobStore)
    assert store.url("k") == "/x/k"
    store.ping()


# -- the blob route ------------------------------------------------------------------------


@pytest.fixture
def client(local_store: LocalBlobStore) -> Iterator[TestClient]:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(blobs.router, prefix="/blobs")
    app.state.blobs = local_store
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def stored(local_store: LocalBlobStore) -> str:
    """The ETag of ``scenes/a.glb`` holding DATA."""
    return local_store.put(
        "scenes/a.glb", DATA, content_type="model/gltf-binary", cache_control=IMMUTABLE
    ).etag


def test_the_route_serves_the_bytes_with_type_etag_cache_and_nosniff(
    client: TestClient, stored: str
) -> None:
    response = client.get("/blobs/scenes/a.glb")

    assert response.status_code == 200
    assert response.content == DATA
    assert response.headers["content-type"] == "model/gltf-binary"
    assert response.headers["etag"] == stored
    assert response.headers["cache-control"] == IMMUTABLE
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["accept-ranges"] == "bytes"
    assert "sandbox" in response.headers["content-security-policy"]


def test_a_blob_without_cache_control_is_revalidated(
    client: TestClient, local_store: LocalBlobStore
) -> None:
    local_store.put("plain.json", b"{}", content_type="application/json")

    assert client.get("/blobs/plain.json").headers["cache-control"] == "no-cache"


def test_head_gives_the_headers_and_length_without_a_body(client: TestClient, stored: str) -> None:
    response = client.head("/blobs/scenes/a.glb")

    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == str(len(DATA))
    assert response.headers["etag"] == stored


@pytest.mark.parametrize("header", ["{etag}", "W/{etag}", '"other", {etag}', "*"])
def test_a_matching_if_none_match_gets_304(client: TestClient, stored: str, header: str) -> None:
    response = client.get(
        "/blobs/scenes/a.glb", headers={"If-None-Match": header.format(etag=stored)}
    )

    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == stored
    assert response.headers["cache-control"] == IMMUTABLE


def test_a_stale_if_none_match_gets_the_body(client: TestClient, stored: str) -> None:
    response = client.get("/blobs/scenes/a.glb", headers={"If-None-Match": '"stale"'})

    assert response.status_code == 200
    assert response.content == DATA


@pytest.mark.parametrize(
    ("header", "body", "content_range"),
    [
        ("bytes=2-4", b"234", "bytes 2-4/16"),
        ("bytes=10-", b"abcdef", "bytes 10-15/16"),
        ("bytes=-3", b"def", "bytes 13-15/16"),
        ("bytes=-100", DATA, "bytes 0-15/16"),
        ("bytes=12-100", b"cdef", "bytes 12-15/16"),
        ("bytes=0-0", b"0", "bytes 0-0/16"),
    ],
)
def test_a_single_range_gets_206_with_content_range(
    client: TestClient, stored: str, header: str, body: bytes, content_range: str
) -> None:
    response = client.get("/blobs/scenes/a.glb", headers={"Range": header})

    assert response.status_code == 206
    assert response.content == body
    assert response.headers["content-range"] == content_range
    assert response.headers["content-length"] == str(len(body))
    assert response.headers["content-type"] == "model/gltf-binary"
    assert response.headers["etag"] == stored


@pytest.mark.parametrize("header", ["bytes=16-", "bytes=100-200", "bytes=-0"])
def test_an_unsatisfiable_range_gets_416(client: TestClient, stored: str, header: str) -> None:
    response = client.get("/blobs/scenes/a.glb", headers={"Range": header})

    assert response.status_code == 416
    assert response.headers["content-range"] == "bytes */16"


@pytest.mark.parametrize(
    "header",
    ["bytes=0-1,4-5", "bytes=5-2", "items=0-1", "bytes=-", "nonsense", "bytes=" + "9" * 5000 + "-"],
)
def test_a_multi_range_or_malformed_range_gets_the_whole_object(
    client: TestClient, stored: str, header: str
) -> None:
    response = client.get("/blobs/scenes/a.glb", headers={"Range": header})

    assert response.status_code == 200
    assert response.content == DATA


def test_a_range_with_a_stale_if_range_gets_the_whole_object(
    client: TestClient, stored: str
) -> None:
    fresh = client.get("/blobs/scenes/a.glb", headers={"Range": "bytes=0-1", "If-Range": stored})
    stale = client.get("/blobs/scenes/a.glb", headers={"Range": "bytes=0-1", "If-Range": '"x"'})

    assert (fresh.status_code, fresh.content) == (206, b"01")
    assert (stale.status_code, stale.content) == (200, DATA)


def test_a_missing_blob_is_a_404_error(client: TestClient, stored: str) -> None:
    response = client.get("/blobs/scenes/missing.glb")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "blob_not_found"


@pytest.mark.parametrize(
    "path",
    [
        "/blobs/..%2f..%2fetc/passwd",
        "/blobs/..%2F..%2Foutside/secret",
        "/blobs/%2e%2e/%2e%2e/etc/passwd",
        "/blobs/scenes/..%2f..%2f..%2foutside/secret",
        "/blobs/%2fetc/passwd",
        "/blobs//etc/passwd",
        "/blobs/a%5c..%5c..%5cetc",
        "/blobs/a%00b",
        "/blobs/evil/secret",
        "/blobs/",
        "/blobs/scenes/a.glb/~meta.json",
        "/blobs/scenes/a.glb/%7emeta.json",
    ],
)
def test_traversal_attempts_get_a_4xx_error_and_never_the_file(
    client: TestClient, stored: str, outside: Path, local_store: LocalBlobStore, path: str
) -> None:
    (local_store.root / "evil").symlink_to(outside, target_is_directory=True)

    response = client.get(path)

    assert response.status_code in {400, 404}
    assert set(response.json()["error"]) >= {"code", "message"}
    assert SECRET not in response.content
    assert b"root:" not in response.content
