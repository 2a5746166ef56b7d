"""Alembic migrations from an empty database, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text
from sqlalchemy.engine import make_url

from server.db.migrate import _MIGRATION_LOCK, alembic_config, downgrade, upgrade
from server.db.models import Base
from server.db.session import build_engine
from server.settings import DatabaseSettings
from tests.databases import drop_postgres_database

MODEL_TABLES = set(Base.metadata.tables)


def _admin_conninfo(server_url: str) -> str:
    url = make_url(server_url).set(drivername="postgresql", database="postgres")
    return url.render_as_string(hide_password=False)


@pytest.fixture
def postgres_empty_url(postgres_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database on the test server, dropped afterwards."""
    name = f"pavilion_empty_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_admin_conninfo(postgres_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        drop_postgres_database(postgres_url, name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind (no tables, not even alembic_version)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    url: str = request.getfixturevalue("postgres_empty_url")
    return url


@pytest.fixture
def engine(empty_url: str) -> Iterator[Engine]:
    engine = build_engine(DatabaseSettings(url=empty_url))
    yield engine
    engine.dispose()


def _head(engine: Engine) -> str | None:
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    return ScriptDirectory.from_config(config).get_current_head()


def _current(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def _schema_diff(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "compare_server_default": True,
                "target_metadata": Base.metadata,
            },
        )
        return list(compare_metadata(context, Base.metadata))


def test_the_database_starts_empty(engine: Engine) -> None:
    assert _tables(engine) == set()
    assert _current(engine) is None


def test_upgrade_to_head_creates_every_model_table(engine: Engine) -> None:
    head = _head(engine)
    assert head is not None
    upgrade(engine)
    assert _tables(engine) == MODEL_TABLES | {"alembic_version"}
    assert _current(engine) == head


def test_upgrade_twice_is_a_no_op(engine: Engine) -> None:
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO expos (id, created_at, slug, name, description) VALUES (:id, :at, 'kept', 'Kept', '')"
            ),
            {"id": uuid.uuid4().hex, "at": "2026-01-01 00:00:00+00:00"},
        )
    upgrade(engine)
    assert _current(engine) == _head(engine)
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM expos")) == 1


def test_downgrade_to_base_drops_everything_and_upgrade_works_again(engine: Engine) -> None:
    upgrade(engine)
    downgrade(engine, "base")
    assert _tables(engine) <= {"alembic_version"}, "downgrade leaves no model table behind"
    assert _current(engine) is None
    upgrade(engine)
    assert _tables(engine) == MODEL_TABLES | {"alembic_version"}
    assert _current(engine) == _head(engine)
    assert _schema_diff(engine) == []


def test_the_migrated_schema_matches_the_models(engine: Engine) -> None:
    upgrade(engine)
    diff = _schema_diff(engine)
    assert diff == [], "autogenerate finds differences between migrations and models:\n" + (
        "\n".join(repr(d) for d in diff)
    )


@pytest.mark.postgres
def test_concurrent_upgrades_on_postgresql_take_turns_and_both_succeed(
    postgres_empty_url: str,
) -> None:
    engines = [build_engine(DatabaseSettings(url=postgres_empty_url)) for _ in range(2)]
    barrier = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def migrate(engine: Engine) -> None:
        try:
            barrier.wait(timeout=10)
            upgrade(engine)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=migrate, args=(e,)) for e in engines]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not any(t.is_alive() for t in threads), "an upgrade did not finish in 60 s"
        assert errors == []
        assert _tables(engines[0]) == MODEL_TABLES | {"alembic_version"}
        assert _current(engines[0]) == _head(engines[0])
        with engines[0].connect() as connection:
            assert connection.scalar(text("SELECT count(*) FROM alembic_version")) == 1
    finally:
        for engine in engines:
            engine.dispose()


@pytest.mark.postgres
def test_upgrade_on_postgresql_waits_for_the_advisory_lock(postgres_empty_url: str) -> None:
    conninfo = postgres_empty_url.replace("postgresql+psycopg://", "postgresql://")
    engine = build_engine(DatabaseSettings(url=postgres_empty_url))
    done = threading.Event()
    errors: list[BaseException] = []

    def migrate() -> None:
        try:
            upgrade(engine)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            done.set()

    try:
        with psycopg.connect(conninfo) as holder:  # another replica, mid-migration
            holder.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            thread = threading.Thread(target=migrate)
            thread.start()
            time.sleep(1.0)
            assert not done.is_set(), "upgrade ran while another process held the lock"
            assert _tables(engine) == set()
            holder.rollback()  # releases the transaction-scoped lock
        assert done.wait(timeout=60)
        thread.join(timeout=5)
        assert errors == []
        assert _current(engine) == _head(engine)
    finally:
        engine.dispose()
