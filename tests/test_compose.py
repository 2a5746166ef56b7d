"""docker-compose.yml and the Dockerfile, checked without Docker.

The Compose Specification's JSON schema is not copied here: it comes from the pinned dev
dependency ``check-jsonschema``, which vendors compose-spec/compose-spec's
``schema/compose-spec.json`` (Apache-2.0) as
``check_jsonschema/builtin_schemas/vendor/compose-spec.json``. Without it these tests fail; they
never skip.

Compose interpolates ``${VAR}`` before it validates, so the file is validated both as written and
after interpolation with a sample environment, using the subset of Compose's interpolation rules
implemented in tests/topology/compose.py. The topology test (tests/topology/) runs the services
of this file as local processes with their commands and environments read from it; the tests at
the end check that the two stay one topology.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import AliasChoices, BaseModel

from server.metrics import ObservabilitySettings
from server.settings import Settings
from server.tours.service import tours_address
from tests.topology.compose import (
    COMPOSE_FILE,
    MissingVariablesError,
    dependencies_of,
    environment_of,
    resolve,
)
from tests.topology.proxy import (
    COMPOSE_LISTEN,
    COMPOSE_UPSTREAMS,
    CONTAINER_PREFIX,
    NGINX_CONF,
    nginx_args,
)
from tests.topology.stack import ADDRESS_VARIABLES, ALL_INTERFACES, SERVICES, loopback_command

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
OPERATIONS_DOC = ROOT / "docs" / "operations.md"

SCHEMA_DISTRIBUTION = "check-jsonschema"
SCHEMA_MEMBER = "check_jsonschema/builtin_schemas/vendor/compose-spec.json"
INSTALL_HINT = (
    "the Compose Specification schema is missing: it comes from the pinned dev dependency "
    f"{SCHEMA_DISTRIBUTION} (`pip install -e '.[dev]'`), which ships {SCHEMA_MEMBER}"
)

# What an operator puts in .env; the values only have to be well formed.
SAMPLE_ENV = {
    "POSTGRES_PASSWORD": "0123456789abcdef0123456789abcdef",
    "PAVILION_AUTH__SECRET_KEY": "a-sample-auth-secret-of-forty-characters",
    "PAVILION_BLOBS__S3_ACCESS_KEY": "pavilion-sample",
    "PAVILION_BLOBS__S3_SECRET_KEY": "a-sample-s3-secret-key",
    "PUBLIC_ORIGIN": "https://expo.example.com",
}

SECRET_LIKE = re.compile(r"SECRET|PASSWORD|ACCESS_KEY|_KEY$")
REQUIRED_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*):\?[^}]+\}")
ONE_SHOT_CONDITION = "service_completed_successfully"
WAIT_CONDITIONS = {"service_healthy", ONE_SHOT_CONDITION}
# Read by the app's processes beside Settings (server/metrics.py) and by uvicorn.
OBSERVABILITY_VARIABLES = {
    f"PAVILION_{name.upper()}" for name in ObservabilitySettings.model_fields
}
UVICORN_VARIABLES = {"FORWARDED_ALLOW_IPS"}


def image_tag(reference: str) -> str | None:
    """The tag of ``[registry/]name[:tag][@digest]``, or None when there is none."""
    name = reference.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def setting_for(env_name: str) -> str | None:
    """The dotted Settings field that a PAVILION_ variable sets, or None when there is none."""
    config = Settings.model_config
    prefix = str(config.get("env_prefix", "")).lower()
    delimiter = str(config.get("env_nested_delimiter") or "__")
    lowered = env_name.lower()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices) and lowered in {
            str(choice).lower() for choice in alias.choices
        }:
            return name
    if not lowered.startswith(prefix):
        return None
    top, *nested = lowered[len(prefix) :].split(delimiter)
    top_field = Settings.model_fields.get(top)
    if top_field is None or top_field.validation_alias is not None:
        # A field with an alias is read under its alias only (matched above).
        return None
    if not nested:
        return top
    group = top_field.annotation
    if len(nested) != 1 or not (isinstance(group, type) and issubclass(group, BaseModel)):
        return None
    return f"{top}.{nested[0]}" if nested[0] in group.model_fields else None


def walk_strings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for value in node.values():
            yield from walk_strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk_strings(value)
    elif isinstance(node, str):
        yield node


@pytest.fixture(scope="module")
def compose_schema() -> dict[str, Any]:
    try:
        distribution = metadata.distribution(SCHEMA_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        pytest.fail(INSTALL_HINT)
    path = Path(str(distribution.locate_file(SCHEMA_MEMBER)))
    if not path.is_file():
        pytest.fail(f"{INSTALL_HINT}; {SCHEMA_DISTRIBUTION} {distribution.version} has no {path}")
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


@pytest.fixture(scope="module")
def validate(compose_schema: dict[str, Any]) -> Callable[[dict[str, Any]], list[str]]:
    validator_class = jsonschema.validators.validator_for(compose_schema)
    validator_class.check_schema(compose_schema)
    validator = validator_class(compose_schema)

    def errors(document: dict[str, Any]) -> list[str]:
        found = sorted(validator.iter_errors(document), key=lambda error: list(error.path))
        return [f"{'/'.join(map(str, error.path)) or '<root>'}: {error.message}" for error in found]

    return errors


@pytest.fixture(scope="module")
def raw_compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return document


@pytest.fixture(scope="module")
def compose(raw_compose: dict[str, Any]) -> dict[str, Any]:
    return resolve(raw_compose, SAMPLE_ENV)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def test_the_compose_schema_is_the_official_compose_specification(
    compose_schema: dict[str, Any],
) -> None:
    assert compose_schema["title"] == "Compose Specification"
    assert "services" in compose_schema["properties"]


def test_the_compose_file_as_written_is_valid_against_the_compose_specification(
    raw_compose: dict[str, Any], validate: Callable[[dict[str, Any]], list[str]]
) -> None:
    assert validate(raw_compose) == []


def test_the_compose_file_once_interpolated_is_valid_against_the_compose_specification(
    compose: dict[str, Any], validate: Callable[[dict[str, Any]], list[str]]
) -> None:
    assert validate(compose) == []


def test_the_schema_check_rejects_a_misspelt_condition_and_an_unknown_key(
    compose: dict[str, Any], validate: Callable[[dict[str, Any]], list[str]]
) -> None:
    broken = json.loads(json.dumps(compose))
    broken["services"]["api"]["depends_on"]["postgres"]["condition"] = "service_helthy"
    broken["services"]["redis"]["imgae"] = broken["services"]["redis"]["image"]
    errors = validate(broken)
    assert any("service_helthy" in error for error in errors), errors
    assert any("imgae" in error for error in errors), errors


def test_the_production_topology_has_the_expected_services(
    services: dict[str, dict[str, Any]],
) -> None:
    assert set(services) == {
        "proxy",
        "api",
        "worker",
        "postgres",
        "redis",
        "seaweedfs",
        "seaweedfs-init",
    }


def test_every_image_is_pinned_to_a_versioned_tag(
    raw_compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    for name, service in services.items():
        assert "image" in service, f"{name} names no image, so its tag cannot be pinned"
        written = raw_compose["services"][name]["image"]
        assert "$" not in written, f"{name}: the image must be written out, not interpolated"
        tag = image_tag(written)
        assert tag is not None, f"{name}: {written} has no tag"
        assert tag != "latest", f"{name}: {written} floats on latest"
        assert re.search(r"\d", tag), f"{name}: {written} has no version in its tag"


def test_the_app_services_and_the_proxy_run_images_built_from_the_dockerfile(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in ("api", "seaweedfs-init", "proxy"):
        build = services[name]["build"]
        assert (ROOT / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    assert services["api"]["image"] == services["seaweedfs-init"]["image"]
    assert services["api"]["image"] == services["worker"]["image"]
    assert services["proxy"]["build"]["target"] == "proxy"
    stages = [arg.split()[-1] for op, arg in dockerfile_instructions() if op == "FROM"]
    assert "proxy" in stages[:-1], "the API image must stay the Dockerfile's last stage"


def test_every_dependency_waits_for_health_or_completion(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        for dependency, options in dependencies_of(service).items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            assert isinstance(options, dict), f"{name} -> {dependency} has no condition"
            assert options.get("condition") in WAIT_CONDITIONS, f"{name} -> {dependency}"


def test_every_service_that_others_wait_for_has_a_healthcheck_or_runs_once(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        for dependency, options in dependencies_of(service).items():
            target = services[dependency]
            if (options or {}).get("condition") == ONE_SHOT_CONDITION:
                assert target.get("restart", "no") == "no", f"{dependency} must run once"
                continue
            healthcheck = target.get("healthcheck") or {}
            assert healthcheck.get("test"), f"{name} waits for {dependency}, which has none"
            assert not healthcheck.get("disable"), f"{dependency} disables its healthcheck"


def test_the_api_waits_for_every_backing_service_and_the_bucket(
    services: dict[str, dict[str, Any]],
) -> None:
    assert dependencies_of(services["api"]) == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
        "seaweedfs": {"condition": "service_healthy"},
        "seaweedfs-init": {"condition": ONE_SHOT_CONDITION},
    }


def test_every_long_running_service_has_a_healthcheck(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        if service.get("restart") != "no":
            assert (service.get("healthcheck") or {}).get("test"), name


def test_the_api_healthcheck_asks_health_with_python_not_curl(
    services: dict[str, dict[str, Any]],
) -> None:
    probe = services["api"]["healthcheck"]["test"]
    assert probe[:3] == ["CMD", "python", "-c"]
    assert "http://127.0.0.1:8000/health" in probe[3]
    compile(probe[3], "api healthcheck", "exec")


def test_secret_like_variables_are_required_interpolations_not_literals(
    raw_compose: dict[str, Any],
) -> None:
    checked = []
    for name, service in raw_compose["services"].items():
        for variable, value in environment_of(service).items():
            if not SECRET_LIKE.search(variable):
                continue
            checked.append(variable)
            assert value is not None, f"{name}.{variable} is passed through from the host"
            assert REQUIRED_INTERPOLATION.fullmatch(value), (
                f"{name}.{variable} must be ${{VAR:?message}}, not {value!r}"
            )
    assert "PAVILION_AUTH__SECRET_KEY" in checked
    assert "POSTGRES_PASSWORD" in checked


def test_no_url_carries_a_literal_password(raw_compose: dict[str, Any]) -> None:
    for text in walk_strings(raw_compose["services"]):
        for match in re.finditer(r"://[^/:@\s]+:(?P<password>[^@\s]+)@", text):
            assert REQUIRED_INTERPOLATION.fullmatch(match["password"]), text


def test_the_file_refuses_to_start_without_its_secrets(raw_compose: dict[str, Any]) -> None:
    with pytest.raises(MissingVariablesError) as missing:
        resolve(raw_compose, {})
    assert set(missing.value.missing) == set(SAMPLE_ENV)
    assert all(message.strip() for message in missing.value.missing.values())


def test_every_required_variable_is_documented_in_the_operations_guide(
    raw_compose: dict[str, Any],
) -> None:
    required = {
        match["name"]
        for text in walk_strings(raw_compose)
        for match in REQUIRED_INTERPOLATION.finditer(text)
    }
    guide = OPERATIONS_DOC.read_text(encoding="utf-8")
    assert sorted(name for name in required if f"`{name}`" not in guide) == []


def test_the_app_environments_name_only_settings_the_app_knows(
    services: dict[str, dict[str, Any]],
) -> None:
    for service in ("api", "worker", "seaweedfs-init"):
        names = set(environment_of(services[service])) - UVICORN_VARIABLES
        assert all(name.startswith("PAVILION_") for name in names), sorted(names)
        unknown = [
            name
            for name in names
            if setting_for(name) is None and name not in OBSERVABILITY_VARIABLES
        ]
        assert sorted(unknown) == [], service


def test_the_settings_lookup_refuses_unknown_names() -> None:
    assert setting_for("PAVILION_BLOBS__S3_BUCKET") == "blobs.s3_bucket"
    assert setting_for("PAVILION_PORT") == "port"
    assert setting_for("PAVILION_BLOBS__NO_SUCH_FIELD") is None
    assert setting_for("PAVILION_NO_SUCH_GROUP__URL") is None
    assert setting_for("PAVILION_HOST__URL") is None
    assert setting_for("DATABASE__URL") is None


def test_the_api_environment_builds_valid_production_settings(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.upper().startswith("PAVILION_"):
            monkeypatch.delenv(name)
    for name, value in environment_of(services["api"]).items():
        assert value is not None, name
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.environment == "production"
    assert settings.tours.public_url == "same-origin"
    assert ObservabilitySettings().log_format == "json"
    assert settings.database.url.startswith("postgresql+psycopg://pavilion:")
    assert settings.blobs.backend == "s3"
    assert settings.blobs.s3_endpoint_url == "http://seaweedfs:8333"
    assert (
        settings.blobs.s3_secret_key.get_secret_value()
        == SAMPLE_ENV["PAVILION_BLOBS__S3_SECRET_KEY"]
    )
    assert settings.cors_origins == [SAMPLE_ENV["PUBLIC_ORIGIN"]]
    assert settings.seed_demo is False


def test_the_bucket_step_uses_the_same_bucket_settings_as_the_api(
    services: dict[str, dict[str, Any]],
) -> None:
    api_env = environment_of(services["api"])
    init_env = environment_of(services["seaweedfs-init"])
    assert init_env == {name: api_env[name] for name in init_env}
    assert "PAVILION_AUTH__SECRET_KEY" not in init_env
    assert "PAVILION_DATABASE__URL" not in init_env


def test_the_bucket_step_script_compiles(services: dict[str, dict[str, Any]]) -> None:
    command = services["seaweedfs-init"]["command"]
    assert command[:2] == ["python", "-c"]
    compile(command[2], "seaweedfs-init", "exec")
    assert "put_bucket_cors" in command[2]


def test_seaweedfs_and_the_api_share_one_s3_identity(services: dict[str, dict[str, Any]]) -> None:
    seaweedfs = environment_of(services["seaweedfs"])
    api = environment_of(services["api"])
    assert seaweedfs["AWS_ACCESS_KEY_ID"] == api["PAVILION_BLOBS__S3_ACCESS_KEY"]
    assert seaweedfs["AWS_SECRET_ACCESS_KEY"] == api["PAVILION_BLOBS__S3_SECRET_KEY"]


def test_the_api_migrates_then_serves_on_all_interfaces(
    services: dict[str, dict[str, Any]],
) -> None:
    assert services["api"]["command"] == [
        "sh",
        "-c",
        "python -m server migrate && exec python -m server serve --host 0.0.0.0",
    ]


def test_only_the_proxy_publishes_a_port_and_it_is_the_one_nginx_listens_on(
    services: dict[str, dict[str, Any]],
) -> None:
    assert sorted(name for name, service in services.items() if service.get("ports")) == ["proxy"]
    [published] = services["proxy"]["ports"]
    assert COMPOSE_LISTEN.read_text().split("\n")[-2] == f"listen {published.rsplit(':', 1)[-1]};"


def test_the_api_runs_as_replicas_behind_the_proxy_with_tour_urls_on_its_origin(
    services: dict[str, dict[str, Any]],
) -> None:
    api = services["api"]
    assert api["deploy"]["replicas"] >= 2
    assert "container_name" not in api  # replicas need generated names
    env = environment_of(api)
    assert env["PAVILION_TOURS__HOST"] == ALL_INTERFACES
    assert env["PAVILION_TOURS__PUBLIC_URL"] == "same-origin"
    # uvicorn believes X-Forwarded-Proto only from these peers: the proxy is not on loopback.
    assert env["FORWARDED_ALLOW_IPS"] == "*"
    assert set(services["proxy"]["networks"]) <= set(api["networks"])
    assert dependencies_of(services["proxy"]) == {
        "api": {"condition": "service_healthy", "restart": True}
    }


def _upstream_servers(text: str) -> dict[str, list[str]]:
    blocks = re.findall(r"upstream\s+(\w+)\s*\{([^}]*)\}", text)
    return {name: re.findall(r"^\s*server\s+(\S+)", body, re.M) for name, body in blocks}


def test_the_proxy_sends_api_and_tour_traffic_to_the_ports_the_api_listens_on(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.upper().startswith("PAVILION_"):
            monkeypatch.delenv(name)
    for name, value in environment_of(services["api"]).items():
        monkeypatch.setenv(name, str(value))
    settings = Settings()
    # `serve --host 0.0.0.0` and no PAVILION_PORT: the API on settings.port, tours on + 1.
    tours_host, tours_port = tours_address(settings)
    upstreams = _upstream_servers(COMPOSE_UPSTREAMS.read_text())
    assert upstreams == {
        "pavilion_api": [f"api:{settings.port}"],
        "pavilion_tours": [f"api:{tours_port}"],
    }
    assert tours_host == ALL_INTERFACES
    assert sorted(str(port) for port in services["api"]["expose"]) == sorted(
        [str(settings.port), str(tours_port)]
    )
    shipped = NGINX_CONF.read_text()
    assert "proxy_pass http://pavilion_api;" in shipped
    assert "proxy_pass http://pavilion_tours;" in shipped


def _location(config: str, prefix: str) -> str:
    match = re.search(rf"location\s+{re.escape(prefix)}\s*\{{([^}}]*)\}}", config)
    assert match is not None, prefix
    return match.group(1)


def _seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60}
    number, unit = re.fullmatch(r"(\d+)(ms|s|m)?", value).groups()  # type: ignore[union-attr]
    return int(number) * units[unit or "s"]


def test_the_proxy_upgrades_tour_websockets_and_outlasts_the_ping(
    services: dict[str, dict[str, Any]],
) -> None:
    tours = _location(NGINX_CONF.read_text(), "/ws/")
    assert "proxy_set_header Upgrade $http_upgrade;" in tours
    assert "proxy_set_header Connection $connection_upgrade;" in tours
    assert "proxy_http_version 1.1;" in tours
    timeouts = dict(re.findall(r"(proxy_(?:read|send)_timeout)\s+(\w+);", tours))
    settings = Settings()
    quiet = settings.tours.ping_interval + settings.tours.ping_timeout
    assert _seconds(timeouts["proxy_read_timeout"]) > quiet
    assert _seconds(timeouts["proxy_send_timeout"]) > quiet


def test_the_proxy_routes_the_api_but_never_the_metrics() -> None:
    config = NGINX_CONF.read_text()
    routed = re.findall(r"location\s+(=\s+)?(\S+)\s*\{", config)
    assert sorted(path for _, path in routed) == ["/", "/api/", "/blobs/", "/health", "/ws/"]
    assert "proxy_pass" not in _location(config, "/")


def test_the_proxy_runs_the_configuration_the_topology_test_runs(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    files = {name: (ROOT / config["file"]).resolve() for name, config in compose["configs"].items()}
    mounted = {mount["target"]: files[mount["source"]] for mount in services["proxy"]["configs"]}
    assert mounted == {
        f"{CONTAINER_PREFIX}nginx.conf": NGINX_CONF,
        f"{CONTAINER_PREFIX}upstreams.conf": COMPOSE_UPSTREAMS,
        f"{CONTAINER_PREFIX}listen.conf": COMPOSE_LISTEN,
    }
    command = [*nginx_args(Path(CONTAINER_PREFIX.rstrip("/")))[1:], "-g", "daemon off;"]
    assert services["proxy"]["command"] == ["nginx", *command]
    dockerfile_commands = [json.loads(arg) for op, arg in dockerfile_instructions() if op == "CMD"]
    assert services["proxy"]["command"] in dockerfile_commands


def test_the_topology_test_runs_every_compose_service_and_replaces_only_addresses(
    services: dict[str, dict[str, Any]],
) -> None:
    assert set(SERVICES) == set(services)
    app_env = {
        name: value
        for service in ("api", "worker", "seaweedfs-init")
        for name, value in environment_of(services[service]).items()
    }
    assert set(app_env) >= ADDRESS_VARIABLES
    for name in ADDRESS_VARIABLES:
        value = str(app_env[name])
        host = re.sub(r"^\w[\w+]*://([^@/]*@)?", "", value).split("/")[0].split(":")[0]
        # a container's name, all interfaces, or the worker's fixed metrics port
        assert host in services or host == ALL_INTERFACES or value.isdigit(), (name, value)
    for name in ("api", "worker"):
        command = services[name]["command"]
        changed = [part for part in loopback_command(command) if part not in command]
        assert len(changed) == (1 if name == "api" else 0), command


def test_the_worker_serves_its_metrics_on_the_backend_network_only(
    services: dict[str, dict[str, Any]],
) -> None:
    worker = services["worker"]
    env = environment_of(worker)
    assert [str(port) for port in worker["expose"]] == [env["PAVILION_METRICS_PORT"]]
    assert "ports" not in worker
    assert worker["networks"] == ["backend"]


def test_redis_never_evicts_and_keeps_an_append_only_file(
    services: dict[str, dict[str, Any]],
) -> None:
    command = services["redis"]["command"]
    options = dict(zip(command[1::2], command[2::2], strict=True))
    assert command[0] == "redis-server"
    assert options["--maxmemory-policy"] == "noeviction"
    assert options["--appendonly"] == "yes"


def test_stateful_services_keep_their_data_in_named_volumes(compose: dict[str, Any]) -> None:
    mounts = {
        "postgres": "/var/lib/postgresql/data",
        "redis": "/data",
        "seaweedfs": "/data",
    }
    for name, target in mounts.items():
        volumes = compose["services"][name]["volumes"]
        sources = [volume.split(":", 1)[0] for volume in volumes if volume.endswith(f":{target}")]
        assert len(sources) == 1, name
        assert sources[0] in compose["volumes"], name


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def test_the_dockerfile_builds_on_a_pinned_python_3_11_slim_bookworm() -> None:
    instructions = dockerfile_instructions()
    base = next(arg for op, arg in instructions if op == "ARG" and arg.startswith("PYTHON_IMAGE="))
    reference = base.split("=", 1)[1]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", reference)
    assert all(arg.split()[0] == "${PYTHON_IMAGE}" for op, arg in instructions if op == "FROM")


def test_the_dockerfile_runs_the_server_as_a_non_root_user_with_a_healthcheck() -> None:
    instructions = dockerfile_instructions()
    users = [arg for op, arg in instructions if op == "USER"]
    assert users, "the image must not run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}
    healthchecks = [arg for op, arg in instructions if op == "HEALTHCHECK"]
    assert healthchecks
    assert "/health" in healthchecks[-1]
    commands = [arg for op, arg in instructions if op == "CMD"]
    serve = ["python", "-m", "server", "serve", "--host", "0.0.0.0"]  # noqa: S104 - in a container
    assert json.loads(commands[-1]) == serve
