"""``python -m server``: serve, migrate, seed-demo, publish-hall, create-user, janitor.

Exit codes: 0 success, 2 bad input (usage, invalid values), 1 anything else.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from collections.abc import Sequence

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import OperationalError, ProgrammingError

from server.errors import ExpoError
from server.settings import DEV_SECRET, Settings

logger = logging.getLogger("server")

DEMO_PASSWORD = "pavilion-demo"  # noqa: S105 - the demo's documented password, refused in production


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m server",
        description="Pavilion: the cloud expo server. Settings come from PAVILION_* environment "
        "variables (see README); the defaults run the embedded mode: SQLite in var/, blobs in "
        "var/blobs/, on http://127.0.0.1:8000.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="serve the API and web client")
    serve.add_argument("--host", help="interface to bind (default PAVILION_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default PAVILION_PORT or 8000)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    commands.add_parser("migrate", help="bring the database schema up to date")
    commands.add_parser(
        "worker", help="process upload jobs from Redis (needs PAVILION_REDIS_URL); stop: SIGTERM"
    )
    seed = commands.add_parser(
        "seed-demo", help="create the demo expo if it does not exist, and publish its hall"
    )
    seed.add_argument(
        "--password",
        help=f"password of the demo users (default {DEMO_PASSWORD!r}; required in production)",
    )
    publish = commands.add_parser(
        "publish-hall", help="build the hall's changed booths and publish its manifest"
    )
    publish.add_argument("hall_id", help="the hall's id (GET /api/expos/{id}/halls)")
    janitor = commands.add_parser(
        "janitor",
        help="remove expired upload sessions, orphaned uploads and stale multipart uploads",
    )
    janitor.add_argument(
        "--grace-hours",
        type=float,
        help="how old a leftover must be to be removed "
        "(default PAVILION_LIMITS__UPLOAD_GRACE_HOURS or 24)",
    )
    user = commands.add_parser("create-user", help="create a user (reads the password from stdin)")
    user.add_argument("email")
    user.add_argument("--name", required=True, help="display name")
    user.add_argument("--role", required=True, choices=["admin", "exhibitor", "guide", "visitor"])
    user.add_argument("--organisation", help="organisation id (exhibitors)")
    user.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    return parser


def _describe(exc: ValidationError, *, env: bool = False) -> str:
    """One line naming each invalid field, without the rejected values (they may be secrets).

    With ``env`` the fields are named as the environment variables that set them.
    """
    parts = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        message = error["msg"].removeprefix("Value error, ")
        location = [str(part) for part in error["loc"]]
        if not location:
            parts.append(message)
            continue
        if env and not location[0].upper().startswith("PAVILION_"):
            name = "PAVILION_" + "__".join(location).upper()
        else:
            name = "__".join(location) if env else ".".join(location)
        parts.append(f"{name}: {message}")
    return "; ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        message = f"error: invalid settings: {_describe(exc, env=True)}"
        print(message, file=sys.stderr)
        return 2
    level = settings.log_level.upper()
    if not isinstance(logging.getLevelNamesMapping().get(level), int):
        message = f"error: invalid settings: PAVILION_LOG_LEVEL: unknown level {level!r}"
        print(message, file=sys.stderr)
        return 2
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if (
        settings.environment == "development"
        and settings.auth.secret_key.get_secret_value() == DEV_SECRET
    ):
        logger.warning(
            "using the development secret key: set PAVILION_AUTH__SECRET_KEY in production"
        )
    command = args.command.replace("-", "_")
    try:
        result: int = globals()[f"_cmd_{command}"](settings, args)
    except OperationalError as exc:
        # Process boundary: a database that is down or not migrated is an environment fault.
        logger.debug("database error", exc_info=exc)
        hint = "; run `python -m server migrate` first" if "no such table" in str(exc) else ""
        print(
            f"error: database: {str(exc.orig).strip().splitlines()[0]}{hint}",
            file=sys.stderr,
        )
        return 1
    except ProgrammingError as exc:
        logger.debug("database error", exc_info=exc)
        print(
            "error: database: the schema is missing; run `python -m server migrate` first",
            file=sys.stderr,
        )
        return 1
    return result


def _cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    host = args.host or settings.host
    port = args.port or settings.port
    os.environ.setdefault("PAVILION_PORT", str(port))
    uvicorn.run(
        "server.asgi:build",
        factory=True,
        host=host,
        port=port,
        workers=args.workers,
        log_level=settings.log_level.lower(),
        proxy_headers=True,
        ws_max_size=64 * 1024,
        ws_per_message_deflate=False,
        server_header=False,
    )
    return 0


def _cmd_worker(settings: Settings, _args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from server.background import run_worker
    from server.db.session import build_engine, session_factory
    from server.pubsub import build_pubsub
    from server.storage import build_blob_store

    if not settings.redis_url:
        print(
            "error: a worker needs PAVILION_REDIS_URL (without Redis, jobs run in the API)",
            file=sys.stderr,
        )
        return 2
    engine = build_engine(settings.database)
    pubsub = build_pubsub(settings)

    async def work() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        blobs = build_blob_store(settings.blobs)
        await run_worker(settings, session_factory(engine), blobs, pubsub, stop)

    try:
        asyncio.run(work())
    finally:
        pubsub.close()
        engine.dispose()
    return 0


def _cmd_migrate(settings: Settings, _args: argparse.Namespace) -> int:
    from server.db.migrate import upgrade
    from server.db.session import build_engine

    engine = build_engine(settings.database)
    upgrade(engine)
    engine.dispose()
    logger.info("database is up to date")
    return 0


def _cmd_seed_demo(settings: Settings, args: argparse.Namespace) -> int:
    from server.db.session import build_engine, session_factory, transaction
    from server.demo import publish_demo, seed_demo
    from server.storage import build_blob_store

    password = args.password or os.environ.get("PAVILION_DEMO_PASSWORD")
    if password is None:
        if settings.environment == "production":
            print("error: --password is required in production", file=sys.stderr)
            return 2
        password = DEMO_PASSWORD
    engine = build_engine(settings.database)
    blobs = build_blob_store(settings.blobs)
    with transaction(session_factory(engine)) as session:
        expo = seed_demo(session, blobs, password)
        logger.info("demo expo: %s (%s)", expo.name, expo.id)
    # A second transaction: a publish that fails leaves the seeded expo, and a rerun resumes.
    try:
        with transaction(session_factory(engine)) as session:
            for result in publish_demo(session, blobs):
                logger.info("demo hall %s: manifest version %d", result.hall_id, result.version)
    except ExpoError as exc:
        print(f"error: publishing the demo hall: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    return 0


def _cmd_publish_hall(settings: Settings, args: argparse.Namespace) -> int:
    import json
    import uuid
    from dataclasses import asdict

    from server.db.session import build_engine, session_factory, transaction
    from server.scenes import publish_hall
    from server.storage import build_blob_store

    try:
        hall_id = uuid.UUID(args.hall_id)
    except ValueError:
        print(f"error: invalid hall id {args.hall_id!r}", file=sys.stderr)
        return 2
    engine = build_engine(settings.database)
    try:
        with transaction(session_factory(engine)) as session:
            result = publish_hall(session, build_blob_store(settings.blobs), hall_id)
    except ExpoError as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return 2 if exc.code == "hall_not_found" else 1
    finally:
        engine.dispose()
    print(json.dumps(asdict(result), default=str, indent=2))
    return 0


def _cmd_janitor(settings: Settings, args: argparse.Namespace) -> int:
    import json
    from datetime import timedelta

    from server.db.session import build_engine, session_factory
    from server.janitor import sweep_uploads
    from server.storage import build_blob_store
    from server.uploads import Staging, staging_directory

    hours = settings.limits.upload_grace_hours if args.grace_hours is None else args.grace_hours
    if hours < 0:
        print("error: --grace-hours must not be negative", file=sys.stderr)
        return 2
    engine = build_engine(settings.database)
    try:
        result = sweep_uploads(
            session_factory(engine),
            build_blob_store(settings.blobs),
            Staging(staging_directory(settings)),
            grace=timedelta(hours=hours),
        )
    except ExpoError as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(json.dumps(result.as_dict()))
    return 0


def _cmd_create_user(settings: Settings, args: argparse.Namespace) -> int:
    import uuid

    from server.api.schemas import UserCreate
    from server.auth import hash_password
    from server.db.models import Organisation, Role, User
    from server.db.session import build_engine, session_factory, transaction

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("password: ")
    try:
        organisation = uuid.UUID(args.organisation) if args.organisation else None
        body = UserCreate(
            email=args.email,
            display_name=args.name,
            password=password,
            role=Role(args.role),
            organisation_id=organisation,
        )
    except ValidationError as exc:  # a subclass of ValueError: catch it first
        print(f"error: {_describe(exc)}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"error: invalid --organisation: {exc}", file=sys.stderr)
        return 2
    engine = build_engine(settings.database)
    with transaction(session_factory(engine)) as session:
        if session.scalar(select(User.id).where(User.email == body.email)) is not None:
            print(f"error: a user with the email {body.email} exists", file=sys.stderr)
            return 2
        if body.role is Role.exhibitor and (
            organisation is None or session.get(Organisation, organisation) is None
        ):
            print("error: an exhibitor needs an existing --organisation", file=sys.stderr)
            return 2
        session.add(
            User(
                email=body.email,
                display_name=body.display_name,
                password_hash=hash_password(body.password),
                role=body.role,
                organisation_id=organisation,
            )
        )
    engine.dispose()
    logger.info("created %s user %s", body.role.value, body.email)
    return 0
