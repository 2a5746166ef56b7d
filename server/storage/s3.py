"""The scale BlobStore: any S3 API (AWS S3, SeaweedFS, MinIO, Ceph), through boto3.

Browsers upload straight to the bucket with a presigned POST whose policy pins the exact key, the
exact Content-Type and a ``content-length-range`` (a presigned PUT cannot limit the size, see
research-security.md F1), and read through short presigned GETs or a CDN (F3, F4). botocore
errors are translated here: a missing object becomes :class:`BlobNotFound`, everything else
(connection refused, timeouts, 5xx, SlowDown, refused credentials, a missing bucket) becomes
:class:`StorageUnavailable`, after botocore's ``standard`` retries (F8).
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from server.errors import BlobNotFound, StorageUnavailable
from server.settings import BlobSettings
from server.storage.base import BlobInfo, PresignedPost, check_key

logger = logging.getLogger(__name__)

MAX_PRESIGN_POST_SECONDS = 300
MAX_PRESIGN_GET_SECONDS = 900
CORS_METHODS = ("GET", "HEAD", "POST")
CORS_EXPOSE_HEADERS = ("ETag", "Content-Length", "Content-Range", "Accept-Ranges")
CORS_MAX_AGE_SECONDS = 600

_NOT_FOUND = frozenset({"NoSuchKey", "NotFound", "404"})
_NO_BUCKET = frozenset({"NoSuchBucket", "NotFound", "404"})
_NOT_IMPLEMENTED = frozenset({"NotImplemented", "501"})


class S3BlobStore:
    """Blobs in one S3 bucket.

    Args:
        settings: endpoint, region, bucket, credentials, presign lifetimes, public base URL.
        max_attempts: total attempts per call in botocore's ``standard`` retry mode.
        connect_timeout: seconds to open a connection.
        read_timeout: seconds to wait for any read on an open connection.
        session: the boto3 session to make the client from; a new one by default. Sharing one
            saves loading botocore's service models again (~0.1 s per client).
    """

    def __init__(
        self,
        settings: BlobSettings,
        *,
        max_attempts: int = 3,
        connect_timeout: float = 3.0,
        read_timeout: float = 20.0,
        session: boto3.session.Session | None = None,
    ) -> None:
        self._bucket = settings.s3_bucket
        self._public_base_url = (settings.public_base_url or "").rstrip("/") or None
        self._get_seconds = min(settings.presign_get_seconds, MAX_PRESIGN_GET_SECONDS)
        self._post_seconds = min(settings.presign_post_seconds, MAX_PRESIGN_POST_SECONDS)
        config = Config(
            region_name=settings.s3_region,
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"mode": "standard", "max_attempts": max_attempts},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            # boto3 >= 1.36 adds CRC trailers to every upload by default, which several S3
            # implementations reject; Content-MD5 (sent by put) is understood by all of them.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        # Not boto3's default session: that is shared, mutable global state.
        session = session or boto3.session.Session()
        self._client: Any = session.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            aws_access_key_id=settings.s3_access_key,
            aws_secret_access_key=settings.s3_secret_key.get_secret_value(),
            config=config,
        )

    @property
    def bucket(self) -> str:
        return self._bucket

    @property
    def client(self) -> Any:
        """The boto3 S3 client (for administration and tests)."""
        return self._client

    # -- BlobStore --------------------------------------------------------------------------

    def put(
        self, key: str, data: bytes, *, content_type: str, cache_control: str | None = None
    ) -> BlobInfo:
        """Store ``data`` at ``key`` with PutObject, replacing what was there.

        Raises:
            InvalidBlobKey: unsafe key.
            StorageUnavailable: S3 refused or could not be reached.
        """
        check_key(key)
        digest = hashlib.md5(data, usedforsecurity=False)
        extra = {"CacheControl": cache_control} if cache_control is not None else {}
        with self._translate("PutObject", key):
            response = self._client.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=data,
                ContentType=content_type,
                ContentMD5=base64.b64encode(digest.digest()).decode(),
                **extra,
            )
        etag = str(response.get("ETag") or f'"{digest.hexdigest()}"')
        return BlobInfo(key, len(data), etag, content_type, cache_control)

    def get(self, key: str, *, start: int | None = None, end: int | None = None) -> bytes:
        """Read the object, or the inclusive byte range ``start..end`` (clamped to its size).

        A range starting at or past the end reads as ``b""``.

        Raises:
            BlobNotFound: no object at ``key``.
            InvalidBlobKey: unsafe key.
            ValueError: negative ``start`` or ``end < start``.
            StorageUnavailable: S3 refused or could not be reached.
        """
        check_key(key)
        extra: dict[str, str] = {}
        if start is not None or end is not None:
            first = 0 if start is None else start
            if first < 0 or (end is not None and end < first):
                raise ValueError(f"invalid byte range {start}..{end}")
            extra["Range"] = f"bytes={first}-{'' if end is None else end}"
        with self._translate("GetObject", key):
            try:
                response = self._client.get_object(Bucket=self._bucket, Key=key, **extra)
            except ClientError as exc:
                # RFC 9110 §14.1.1: a range starting past the end is unsatisfiable (S3: 416).
                if extra and _error_code(exc) == "InvalidRange":
                    return b""
                raise
            body = response["Body"]
            try:
                return bytes(body.read())
            finally:
                body.close()

    def head(self, key: str) -> BlobInfo:
        """Metadata of the object at ``key`` (HeadObject). Raises BlobNotFound."""
        check_key(key)
        with self._translate("HeadObject", key):
            response = self._client.head_object(Bucket=self._bucket, Key=key)
        return BlobInfo(
            key=key,
            size=int(response["ContentLength"]),
            etag=str(response["ETag"]),
            content_type=str(response.get("ContentType") or "application/octet-stream"),
            cache_control=response.get("CacheControl"),
        )

    def delete(self, key: str) -> None:
        """Delete the object (DeleteObject); a missing key is not an error."""
        check_key(key)
        with self._translate("DeleteObject"):
            self._client.delete_object(Bucket=self._bucket, Key=key)

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        """Objects whose key starts with ``prefix``, in key order (ListObjectsV2).

        This is a listing: ``content_type`` is ``""`` and ``cache_control`` is None, since
        ListObjectsV2 does not return them; call :meth:`head` for those.
        """
        if prefix:
            check_key(prefix.rstrip("/"))
        paginator = self._client.get_paginator("list_objects_v2")
        with self._translate("ListObjectsV2"):
            for page in paginator.paginate(Bucket=self._bucket, Prefix=prefix):
                for item in page.get("Contents", ()):
                    yield BlobInfo(item["Key"], int(item["Size"]), str(item["ETag"]), "", None)

    def url(self, key: str, *, expires_in: int | None = None) -> str:
        """``{public_base_url}/{key}`` when a CDN is configured, else a presigned GET.

        Raises:
            ValueError: ``expires_in`` outside 1..900 seconds.
        """
        check_key(key)
        if self._public_base_url is not None:
            return f"{self._public_base_url}/{key}"
        seconds = self._get_seconds if expires_in is None else expires_in
        if not 1 <= seconds <= MAX_PRESIGN_GET_SECONDS:
            raise ValueError(f"presigned GET lifetime must be 1..{MAX_PRESIGN_GET_SECONDS} s")
        url: str = self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=seconds
        )
        return url

    def ping(self) -> None:
        """HeadBucket; raise StorageUnavailable when the bucket cannot be reached."""
        with self._translate("HeadBucket"):
            self._client.head_bucket(Bucket=self._bucket)

    # -- S3 only ----------------------------------------------------------------------------

    def ensure_bucket(self) -> bool:
        """Create the bucket when it is missing. Returns True when it was created."""
        try:
            self._client.head_bucket(Bucket=self._bucket)
        except ClientError as exc:
            if _error_code(exc) not in _NO_BUCKET:
                raise StorageUnavailable(f"S3 HeadBucket failed: {_error_code(exc)}") from exc
        except (BotoConnectionError, HTTPClientError) as exc:
            raise StorageUnavailable(f"S3 HeadBucket failed: {exc}") from exc
        else:
            return False
        region = self._client.meta.region_name
        # us-east-1 is the one region that refuses an explicit LocationConstraint.
        extra = (
            {"CreateBucketConfiguration": {"LocationConstraint": region}}
            if region and region != "us-east-1"
            else {}
        )
        with self._translate("CreateBucket"):
            try:
                self._client.create_bucket(Bucket=self._bucket, **extra)
            except ClientError as exc:
                if _error_code(exc) != "BucketAlreadyOwnedByYou":
                    raise
                return False  # created meanwhile by another process
        logger.info("created bucket %s", self._bucket)
        return True

    def set_cors(self, origins: Sequence[str]) -> bool:
        """Let browsers at ``origins`` GET, HEAD and POST (form uploads) to the bucket.

        An empty list removes the bucket's CORS rules. Returns False, with a warning, when the
        server does not implement bucket CORS (community MinIO answers NotImplemented and uses
        its global ``MINIO_API_CORS_ALLOW_ORIGIN`` instead, research-security.md F5).
        """
        rules = [
            {
                "AllowedOrigins": list(origins),
                "AllowedMethods": list(CORS_METHODS),
                "AllowedHeaders": ["*"],
                "ExposeHeaders": list(CORS_EXPOSE_HEADERS),
                "MaxAgeSeconds": CORS_MAX_AGE_SECONDS,
            }
        ]
        with self._translate("PutBucketCors"):
            try:
                if origins:
                    self._client.put_bucket_cors(
                        Bucket=self._bucket, CORSConfiguration={"CORSRules": rules}
                    )
                else:
                    self._client.delete_bucket_cors(Bucket=self._bucket)
            except ClientError as exc:
                if _error_code(exc) not in _NOT_IMPLEMENTED:
                    raise
                logger.warning(
                    "S3 server does not implement bucket CORS for %s; configure the allowed "
                    "origins on the server itself",
                    self._bucket,
                )
                return False
        logger.info("bucket %s CORS origins: %s", self._bucket, ", ".join(origins) or "none")
        return True

    def presigned_post(
        self,
        key: str,
        *,
        content_type: str,
        max_bytes: int,
        min_bytes: int = 1,
        expires_in: int | None = None,
    ) -> PresignedPost:
        """A form upload limited to exactly ``key``, ``content_type`` and min..max bytes.

        The server enforces the policy (SeaweedFS, MinIO and AWS do; moto does not, F6), so an
        oversize or mistyped upload is refused before any object exists.

        Raises:
            InvalidBlobKey: unsafe key.
            ValueError: bad size bounds or ``expires_in`` outside 1..300 seconds.
        """
        check_key(key)
        seconds = self._post_seconds if expires_in is None else expires_in
        if not 1 <= seconds <= MAX_PRESIGN_POST_SECONDS:
            raise ValueError(f"presigned POST lifetime must be 1..{MAX_PRESIGN_POST_SECONDS} s")
        if not 0 <= min_bytes <= max_bytes:
            raise ValueError(f"invalid size bounds {min_bytes}..{max_bytes}")
        # boto3 adds {"bucket"} and an exact {"key"} condition itself (no ${filename}).
        post = self._client.generate_presigned_post(
            Bucket=self._bucket,
            Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[
                {"Content-Type": content_type},
                ["content-length-range", min_bytes, max_bytes],
            ],
            ExpiresIn=seconds,
        )
        return PresignedPost(url=post["url"], fields=dict(post["fields"]), expires_in=seconds)

    def last_modified(self, key: str) -> datetime:
        """When the object at ``key`` was written (HeadObject). Raises BlobNotFound."""
        check_key(key)
        with self._translate("HeadObject", key):
            response = self._client.head_object(Bucket=self._bucket, Key=key)
        modified: datetime = response["LastModified"]
        return modified

    def abort_multipart_uploads(self, *, initiated_before: datetime, prefix: str = "") -> int:
        """Abort the incomplete multipart uploads started before ``initiated_before``.

        Their parts take space but no listing shows them (research-security.md F9). An upload
        aborted meanwhile by someone else is not an error. Returns how many were aborted.
        """
        aborted = 0
        paginator = self._client.get_paginator("list_multipart_uploads")
        with self._translate("ListMultipartUploads"):
            for page in paginator.paginate(Bucket=self._bucket, Prefix=prefix):
                for item in page.get("Uploads", ()):
                    if item["Initiated"] >= initiated_before:
                        continue
                    try:
                        self._client.abort_multipart_upload(
                            Bucket=self._bucket, Key=item["Key"], UploadId=item["UploadId"]
                        )
                    except ClientError as exc:
                        if _error_code(exc) != "NoSuchUpload":
                            raise
                        continue
                    aborted += 1
        return aborted

    # -- errors -----------------------------------------------------------------------------

    @contextmanager
    def _translate(self, action: str, key: str | None = None) -> Iterator[None]:
        try:
            yield
        except ClientError as exc:
            code = _error_code(exc)
            if key is not None and code in _NOT_FOUND:
                raise BlobNotFound(f"no blob at {key!r}") from exc
            logger.warning("S3 %s on %s/%s failed: %s", action, self._bucket, key or "", code)
            raise StorageUnavailable(f"S3 {action} failed: {code}") from exc
        except (BotoConnectionError, HTTPClientError) as exc:
            logger.warning("S3 %s on %s/%s failed: %s", action, self._bucket, key or "", exc)
            raise StorageUnavailable(f"S3 {action} failed: {exc}") from exc


def _error_code(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    code = str(error.get("Code") or "")
    if code:
        return code
    return str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
