"""The BlobStore contract: every test here runs against LocalBlobStore and S3BlobStore."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from server.errors import BlobNotFound, InvalidBlobKey
from server.storage import IMMUTABLE, SHORT_CACHE, BlobInfo, BlobStore

GLB = "model/gltf-binary"
DATA = b"0123456789abcdef"


def quoted_md5(data: bytes) -> str:
    return '"' + hashlib.md5(data, usedforsecurity=False).hexdigest() + '"'


def test_an_object_reads_back_with_the_metadata_it_was_put_with(store: BlobStore) -> None:
    info = store.put("scenes/hall-1/scene.glb", DATA, content_type=GLB, cache_control=IMMUTABLE)

    expected = BlobInfo("scenes/hall-1/scene.glb", len(DATA), quoted_md5(DATA), GLB, IMMUTABLE)
    assert info == expected
    assert store.head("scenes/hall-1/scene.glb") == expected
    assert store.get("scenes/hall-1/scene.glb") == DATA


def test_the_etag_is_the_quoted_md5_of_the_content(store: BlobStore) -> None:
    data = b"glTF" + bytes(range(256)) * 4

    store.put("a.bin", data, content_type="application/octet-stream")

    assert store.head("a.bin").etag == quoted_md5(data)


def test_cache_control_is_kept_when_given_and_absent_otherwise(store: BlobStore) -> None:
    store.put("short.json", b"{}", content_type="application/json", cache_control=SHORT_CACHE)
    store.put("plain.json", b"{}", content_type="application/json")

    assert store.head("short.json").cache_control == SHORT_CACHE
    assert store.head("plain.json").cache_control is None


@pytest.mark.parametrize(
    "content_type",
    ["model/gltf-binary", "image/ktx2", "application/json; charset=utf-8", "text/plain"],
)
def test_content_types_are_kept_exactly(store: BlobStore, content_type: str) -> None:
    store.put("typed", DATA, content_type=content_type)

    assert store.head("typed").content_type == content_type


def test_an_overwrite_replaces_the_bytes_and_the_metadata(store: BlobStore) -> None:
    store.put("k", b"first version", content_type="text/plain", cache_control=IMMUTABLE)

    info = store.put("k", b"second", content_type=GLB)

    assert store.get("k") == b"second"
    assert store.head("k") == info == BlobInfo("k", 6, quoted_md5(b"second"), GLB, None)


def test_an_empty_object_can_be_stored_and_read(store: BlobStore) -> None:
    store.put("empty", b"", content_type="application/octet-stream")

    assert store.head("empty").size == 0
    assert store.get("empty") == b""
    assert store.get("empty", start=0) == b""


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0, 0, b"0"),
        (2, 4, b"234"),
        (10, None, b"abcdef"),
        (None, 3, b"0123"),
        (12, 100, b"cdef"),  # an end past the object is clamped
        (15, 15, b"f"),
        (16, None, b""),  # a start at the end reads nothing
        (40, 50, b""),
    ],
)
def test_ranges_read_inclusive_spans(
    store: BlobStore, start: int | None, end: int | None, expected: bytes
) -> None:
    store.put("r", DATA, content_type="text/plain")

    assert store.get("r", start=start, end=end) == expected


@pytest.mark.parametrize(("start", "end"), [(-1, None), (5, 4)])
def test_a_negative_or_inverted_range_is_a_value_error(
    store: BlobStore, start: int, end: int | None
) -> None:
    store.put("r", DATA, content_type="text/plain")

    with pytest.raises(ValueError, match="range"):
        store.get("r", start=start, end=end)


def test_an_object_larger_than_a_storage_chunk_reads_back_whole_and_in_ranges(
    store: BlobStore,
) -> None:
    # SeaweedFS splits files into 4 MiB chunks by default: read across the boundary.
    data = hashlib.sha256(b"seed").digest() * (5 * 1024 * 1024 // 32)
    boundary = 4 * 1024 * 1024

    store.put("big.bin", data, content_type="application/octet-stream")

    assert store.head("big.bin").size == len(data)
    assert store.get("big.bin") == data
    assert (
        store.get("big.bin", start=boundary - 10, end=boundary + 9)
        == data[boundary - 10 : boundary + 10]
    )


@pytest.mark.parametrize("operation", ["get", "head"])
def test_a_missing_key_raises_blob_not_found(store: BlobStore, operation: str) -> None:
    read: Callable[[str], object] = getattr(store, operation)
    store.put("present", DATA, content_type="text/plain")

    with pytest.raises(BlobNotFound):
        read("absent")
    with pytest.raises(BlobNotFound):
        read("present/below")


def test_delete_removes_the_object_and_a_missing_key_is_no_error(store: BlobStore) -> None:
    store.put("doomed", DATA, content_type="text/plain")

    store.delete("doomed")
    store.delete("doomed")
    store.delete("never/existed")

    with pytest.raises(BlobNotFound):
        store.head("doomed")
    assert list(store.list()) == []


def test_a_key_and_keys_below_it_can_coexist(store: BlobStore) -> None:
    store.put("a", b"top", content_type="text/plain")
    store.put("a/b", b"below", content_type="text/plain")

    store.delete("a")

    assert store.get("a/b") == b"below"
    with pytest.raises(BlobNotFound):
        store.get("a")


def test_list_yields_the_objects_under_a_prefix_in_key_order(store: BlobStore) -> None:
    for key in ["b", "a/2", "ab/4", "a/b/3", "a/1", "a/b/c/5"]:
        store.put(key, key.encode(), content_type="text/plain", cache_control=IMMUTABLE)

    def keys(prefix: str = "") -> list[str]:
        return [info.key for info in store.list(prefix)]

    assert keys() == ["a/1", "a/2", "a/b/3", "a/b/c/5", "ab/4", "b"]
    assert keys("a/") == ["a/1", "a/2", "a/b/3", "a/b/c/5"]
    assert keys("a") == ["a/1", "a/2", "a/b/3", "a/b/c/5", "ab/4"]
    assert keys("a/b/") == ["a/b/3", "a/b/c/5"]
    assert keys("a/b/c") == ["a/b/c/5"]
    assert keys("zzz") == []
    assert keys("zzz/") == []


def test_a_listing_gives_key_size_and_etag_but_not_the_content_type(store: BlobStore) -> None:
    store.put("x/one", b"1", content_type=GLB, cache_control=IMMUTABLE)

    (info,) = store.list("x/")

    # ListObjectsV2 returns no content type; both adapters list alike, head() has the rest.
    assert info == BlobInfo("x/one", 1, quoted_md5(b"1"), "", None)


UNSAFE_KEYS = [
    "../x",
    "/abs",
    "a/../../b",
    "a/./b",
    "a\\b",
    "a\x00b",
    "",
    "a//b",
    "a/",
    ".hidden",
    "~meta.json",
    "a/~lock",
    "a b",
    "x" * 600,
]


@pytest.mark.parametrize("key", UNSAFE_KEYS)
def test_unsafe_keys_are_refused_by_every_operation(store: BlobStore, key: str) -> None:
    with pytest.raises(InvalidBlobKey):
        store.put(key, DATA, content_type="text/plain")
    with pytest.raises(InvalidBlobKey):
        store.get(key)
    with pytest.raises(InvalidBlobKey):
        store.head(key)
    with pytest.raises(InvalidBlobKey):
        store.delete(key)
    with pytest.raises(InvalidBlobKey):
        store.url(key)
    assert list(store.list()) == []


@pytest.mark.parametrize("prefix", ["../", "/abs", "a/../..", "a\\"])
def test_unsafe_prefixes_are_refused_by_list(store: BlobStore, prefix: str) -> None:
    with pytest.raises(InvalidBlobKey):
        list(store.list(prefix))


def test_the_url_of_an_object_names_its_key(store: BlobStore) -> None:
    store.put("scenes/s.glb", DATA, content_type=GLB)

    assert "/scenes/s.glb" in store.url("scenes/s.glb")


def test_a_reachable_store_answers_ping(store: BlobStore) -> None:
    store.ping()
