"""Fresh, migrated databases for tests: SQLite files and PostgreSQL databases.

Migrations run once per session into a template; each test gets a copy (a file copy for SQLite,
``CREATE DATABASE ... TEMPLATE`` for PostgreSQL), so every test starts from a clean schema fast.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from server.db.migrate import upgrade
from server.db.session import build_engine
from server.settings import DatabaseSettings


def migrated_sqlite_template(directory: Path) -> Path:
    path = directory / "template.db"
    engine = build_engine(DatabaseSettings(url=f"sqlite:///{path}"))
    upgrade(engine)
    engine.dispose()
    return path


def sqlite_copy(template: Path, directory: Path) -> str:
    target = directory / f"{uuid.uuid4().hex}.db"
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


def _admin_conninfo(server_url: str) -> str:
    url = make_url(server_url).set(drivername="postgresql", database="postgres")
    return url.render_as_string(hide_password=False)


def _with_database(server_url: str, name: str) -> str:
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def create_postgres_template(server_url: str) -> str:
    """Create and migrate a uniquely named template database; returns its name."""
    name = f"pavilion_tmpl_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_admin_conninfo(server_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    engine = build_engine(DatabaseSettings(url=_with_database(server_url, name)))
    upgrade(engine)
    engine.dispose()
    return name


@contextmanager
def postgres_copy(server_url: str, template: str) -> Iterator[str]:
    """A database copied from ``template`` for one test, dropped afterwards."""
    name = f"pavilion_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_admin_conninfo(server_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield _with_database(server_url, name)
    finally:
        drop_postgres_database(server_url, name)


def drop_postgres_database(server_url: str, name: str) -> None:
    with psycopg.connect(_admin_conninfo(server_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
