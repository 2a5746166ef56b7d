"""``python -m server`` as operators run it: real subprocesses on a temporary SQLite database."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine, func, select

from server.auth import verify_password
from server.db.models import Booth, Expo, Organisation, Role, User

REPO = Path(__file__).resolve().parents[2]
DEMO_SLUG = "sco-special-products-2026"
STRONG_SECRET = "a-production-secret-that-is-long-enough-0123456789"
COMMANDS = ("serve", "migrate", "seed-demo", "create-user")
# A line the CLI's logging writes: "2026-01-01 10:00:00,000 INFO server: ...".
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING) \S+: ")


@dataclass(frozen=True)
class Workdir:
    """A directory to run the CLI in, and the environment that points it at its own files."""

    path: Path
    env: dict[str, str]

    @property
    def database(self) -> Path:
        return self.path / "pavilion.db"


def make_workdir(path: Path, **extra: str) -> Workdir:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.upper().startswith("PAVILION_") and name.upper() != "PORT"
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PAVILION_DATABASE__URL"] = f"sqlite:///{path / 'pavilion.db'}"
    env["PAVILION_BLOBS__LOCAL_DIR"] = str(path / "blobs")
    env.update(extra)
    return Workdir(path, env)


def cli(
    workdir: Workdir, *args: str, stdin: str | None = None, **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        cwd=workdir.path,
        env={**workdir.env, **extra},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@contextmanager
def sqlite(path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{path}")
    try:
        yield engine
    finally:
        engine.dispose()


def count(path: Path, model: type[Expo | Booth | User]) -> int:
    with sqlite(path) as engine, engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(model)) or 0


def assert_usage_error(
    result: subprocess.CompletedProcess[str], fragment: str, *, secrets: Sequence[str] = ()
) -> None:
    """Exit 2, no traceback, and exactly one ``error:`` line (besides log records) on stderr."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert fragment in errors[0], result.stderr
    others = [line for line in result.stderr.splitlines() if not line.startswith("error:")]
    assert all(LOG_LINE.match(line) for line in others), result.stderr
    for secret in secrets:
        assert secret not in result.stderr, "the CLI must not echo a rejected secret"


@dataclass(frozen=True)
class Seeded:
    workdir: Workdir
    migrate: subprocess.CompletedProcess[str]
    seed: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    """A directory whose database was migrated and seeded once by the CLI (seeding takes ~7 s)."""
    workdir = make_workdir(tmp_path_factory.mktemp("cli-seeded"))
    migrate = cli(workdir, "migrate")
    seed = cli(workdir, "seed-demo")
    return Seeded(workdir, migrate, seed)


@pytest.fixture
def workdir(tmp_path: Path) -> Workdir:
    return make_workdir(tmp_path)


@pytest.fixture
def seeded_copy(seeded: Seeded, tmp_path: Path) -> Workdir:
    """A private copy of the seeded database (the CLI's processes have exited: no WAL is left)."""
    assert seeded.seed.returncode == 0, seeded.seed.stderr
    target = make_workdir(tmp_path / "copy")
    target.path.mkdir()
    shutil.copyfile(seeded.workdir.database, target.database)
    shutil.copytree(seeded.workdir.path / "blobs", target.path / "blobs")
    return target


# -- usage --------------------------------------------------------------------------------------


def test_help_exits_0_and_lists_every_command(workdir: Workdir) -> None:
    result = cli(workdir, "--help")
    assert result.returncode == 0, result.stderr
    for command in COMMANDS:
        assert re.search(rf"^\s+{command}\b", result.stdout, re.MULTILINE), result.stdout
    assert not workdir.database.exists(), "--help must not touch the database"


def test_an_unknown_command_exits_2_with_usage(workdir: Workdir) -> None:
    result = cli(workdir, "frobnicate")
    assert result.returncode == 2
    assert "invalid choice: 'frobnicate'" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_command_exits_2(workdir: Workdir) -> None:
    result = cli(workdir)
    assert result.returncode == 2
    assert "usage:" in result.stderr
    assert "Traceback" not in result.stderr


# -- migrate and seed-demo ----------------------------------------------------------------------


def test_migrate_then_seed_demo_exit_0_and_seed_demo_twice_creates_one_expo(
    seeded: Seeded,
) -> None:
    assert seeded.migrate.returncode == 0, seeded.migrate.stderr
    assert seeded.seed.returncode == 0, seeded.seed.stderr
    database = seeded.workdir.database
    booths, users = count(database, Booth), count(database, User)
    assert count(database, Expo) == 1
    assert booths >= 12
    again = cli(seeded.workdir, "seed-demo")
    assert again.returncode == 0, again.stderr
    assert count(database, Expo) == 1
    assert (count(database, Booth), count(database, User)) == (booths, users)
    with sqlite(database) as engine, engine.connect() as connection:
        assert connection.scalar(select(Expo.slug)) == DEMO_SLUG


def test_migrate_twice_is_a_no_op(seeded_copy: Workdir) -> None:
    result = cli(seeded_copy, "migrate")
    assert result.returncode == 0, result.stderr
    assert "Running upgrade" not in result.stderr
    assert count(seeded_copy.database, Expo) == 1


# -- create-user --------------------------------------------------------------------------------


def test_create_user_reads_the_password_from_stdin_and_it_verifies(seeded_copy: Workdir) -> None:
    password = "a long enough password"
    result = cli(
        seeded_copy,
        "create-user",
        "Ops@Example.COM",
        "--name",
        "Ops",
        "--role",
        "admin",
        "--password-stdin",
        stdin=password + "\n",
    )
    assert result.returncode == 0, result.stderr
    assert password not in result.stdout + result.stderr
    with sqlite(seeded_copy.database) as engine, engine.connect() as connection:
        row = connection.execute(
            select(User.password_hash, User.role, User.display_name, User.organisation_id).where(
                User.email == "ops@example.com"
            )
        ).one()
    assert row.role == Role.admin
    assert row.display_name == "Ops"
    assert row.organisation_id is None
    assert verify_password(row.password_hash, password)
    assert not verify_password(row.password_hash, password + "\n")
    assert not verify_password(row.password_hash, "a long enough passwor")


def test_create_user_makes_an_exhibitor_of_an_existing_organisation(
    seeded_copy: Workdir,
) -> None:
    with sqlite(seeded_copy.database) as engine, engine.connect() as connection:
        organisation = connection.scalar(select(Organisation.id).order_by(Organisation.name))
    assert isinstance(organisation, uuid.UUID)
    result = cli(
        seeded_copy,
        "create-user",
        "seller@example.com",
        "--name",
        "Seller",
        "--role",
        "exhibitor",
        "--organisation",
        str(organisation),
        "--password-stdin",
        stdin="a long enough password\n",
    )
    assert result.returncode == 0, result.stderr
    with sqlite(seeded_copy.database) as engine, engine.connect() as connection:
        row = connection.execute(
            select(User.role, User.organisation_id).where(User.email == "seller@example.com")
        ).one()
    assert (row.role, row.organisation_id) == (Role.exhibitor, organisation)


@pytest.mark.parametrize(
    ("args", "password", "fragment"),
    [
        pytest.param(["not-an-email", "--role", "admin"], "a long password", "email", id="email"),
        pytest.param(["x@example.com", "--role", "admin"], "short12", "password", id="short"),
        pytest.param(
            ["admin@pavilion.demo", "--role", "admin"], "a long password", "exists", id="duplicate"
        ),
        pytest.param(
            ["ADMIN@pavilion.demo", "--role", "guide"], "a long password", "exists", id="case"
        ),
        pytest.param(
            ["x@example.com", "--role", "exhibitor"], "a long password", "organisation", id="no-org"
        ),
        pytest.param(
            ["x@example.com", "--role", "exhibitor", "--organisation", str(uuid.uuid4())],
            "a long password",
            "organisation",
            id="unknown-org",
        ),
        pytest.param(
            ["x@example.com", "--role", "exhibitor", "--organisation", "nope"],
            "a long password",
            "organisation",
            id="bad-org-id",
        ),
    ],
)
def test_create_user_refuses_bad_input_with_one_error_line(
    seeded_copy: Workdir, args: list[str], password: str, fragment: str
) -> None:
    users = count(seeded_copy.database, User)
    result = cli(
        seeded_copy,
        "create-user",
        *args,
        "--name",
        "Someone",
        "--password-stdin",
        stdin=password + "\n",
    )
    assert_usage_error(result, fragment, secrets=[password])
    assert count(seeded_copy.database, User) == users


# -- production ---------------------------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
def test_production_with_the_default_secret_refuses_every_command(
    workdir: Workdir, command: str
) -> None:
    args = [command]
    if command == "create-user":
        args += ["x@example.com", "--name", "X", "--role", "admin", "--password-stdin"]
    result = cli(workdir, *args, stdin="a long password\n", PAVILION_ENVIRONMENT="production")
    assert_usage_error(result, "PAVILION_AUTH__SECRET_KEY must be set outside development")
    assert not workdir.database.exists()


def test_production_with_a_short_secret_names_the_problem_but_not_the_secret(
    workdir: Workdir,
) -> None:
    secret = "hunter2-is-too-short"
    result = cli(
        workdir, "migrate", PAVILION_ENVIRONMENT="production", PAVILION_AUTH__SECRET_KEY=secret
    )
    assert_usage_error(result, "at least 32 characters", secrets=[secret])


def test_an_invalid_setting_exits_2_naming_the_variable(workdir: Workdir) -> None:
    result = cli(workdir, "migrate", PAVILION_PORT="99999")
    assert_usage_error(result, "PAVILION_PORT")
    result = cli(workdir, "migrate", PAVILION_LOG_LEVEL="chatty")
    assert_usage_error(result, "PAVILION_LOG_LEVEL")
    assert not workdir.database.exists()


def test_seed_demo_in_production_needs_a_password(workdir: Workdir) -> None:
    result = cli(
        workdir,
        "seed-demo",
        PAVILION_ENVIRONMENT="production",
        PAVILION_AUTH__SECRET_KEY=STRONG_SECRET,
    )
    assert_usage_error(result, "--password is required in production")
    assert not workdir.database.exists()


# -- serve --------------------------------------------------------------------------------------


def _free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_serve_answers_health_lists_the_demo_expo_and_stops_on_sigterm(
    seeded_copy: Workdir,
) -> None:
    port = _free_port()
    log = (seeded_copy.path / "serve.log").open("w+")
    server = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--port", str(port)],
        cwd=seeded_copy.path,
        env=seeded_copy.env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        health: httpx.Response | None = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                health = httpx.get(f"{base}/health", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert server.poll() is None, "the server exited early"
        assert health is not None, "no answer on /health within 20 s"
        assert health.status_code == 200
        assert health.json() == {"status": "ok"}
        expos = httpx.get(f"{base}/api/expos", timeout=5)
        assert expos.status_code == 200
        assert [e["slug"] for e in expos.json()["items"]] == [DEMO_SLUG]
        started = time.monotonic()
        server.terminate()
        # uvicorn shuts down gracefully, then re-raises the signal so the exit status shows it.
        assert server.wait(timeout=10) == -signal.SIGTERM
        assert time.monotonic() - started < 10
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        log.seek(0)
        output = log.read()
        log.close()
    assert "Traceback" not in output, output
    assert "Application shutdown complete" in output, output
