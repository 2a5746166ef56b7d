"""Reading docker-compose.yml as Compose does: interpolation, environments, dependencies.

Compose interpolates ``${VAR}`` before anything else; :func:`resolve` implements the subset of its
rules the file uses (``$$``, ``$NAME``, ``${NAME}``, ``${NAME:-x}``, ``${NAME-x}``, ``${NAME:?x}``,
``${NAME?x}``, ``${NAME:+x}``, ``${NAME+x}``). tests/test_compose.py checks the file with it, and
the topology test (tests/topology/stack.py) reads the commands and environments it runs from it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from tests.paths import REPO

COMPOSE_FILE = REPO / "docker-compose.yml"

# Compose's forms: $$, $NAME, ${NAME}, ${NAME:-x}, ${NAME-x}, ${NAME:?x}, ${NAME?x}, ${NAME:+x}...
INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<invalid>))"
)


class MissingVariablesError(Exception):
    def __init__(self, missing: dict[str, str]) -> None:
        super().__init__(", ".join(f"{name}: {message}" for name, message in missing.items()))
        self.missing = missing


def interpolate(node: Any, env: Mapping[str, str], missing: dict[str, str]) -> Any:
    """Substitute variables the way Compose does, recording required ones that are unset."""
    if isinstance(node, dict):
        return {key: interpolate(value, env, missing) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(value, env, missing) for value in node]
    if not isinstance(node, str):
        return node

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        if match["invalid"] is not None:
            raise ValueError(f"invalid interpolation in {node!r}")
        name = match["braced"] or match["named"]
        op, arg = match["op"], match["arg"] or ""
        value = env.get(name)
        empty = not value
        if op in (":-", "-"):
            return arg if (empty if op == ":-" else value is None) else str(value)
        if op in (":?", "?"):
            if empty if op == ":?" else value is None:
                missing[name] = arg
                return ""
            return str(value)
        if op in (":+", "+"):
            return "" if (empty if op == ":+" else value is None) else arg
        return value or ""

    return INTERPOLATION.sub(substitute, node)


def resolve(document: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    missing: dict[str, str] = {}
    resolved: dict[str, Any] = interpolate(document, env, missing)
    if missing:
        raise MissingVariablesError(missing)
    return resolved


def environment_of(service: Mapping[str, Any]) -> dict[str, str | None]:
    env = service.get("environment") or {}
    if isinstance(env, dict):
        return {key: None if value is None else str(value) for key, value in env.items()}
    pairs = (item.split("=", 1) for item in env)
    return {pair[0]: pair[1] if len(pair) == 2 else None for pair in pairs}


def dependencies_of(service: Mapping[str, Any]) -> dict[str, Any]:
    depends_on = service.get("depends_on") or {}
    if isinstance(depends_on, list):
        return {name: None for name in depends_on}
    return dict(depends_on)


def load_compose(env: Mapping[str, str]) -> dict[str, Any]:
    """docker-compose.yml, interpolated with ``env`` (what an operator's ``.env`` holds).

    Raises:
        MissingVariablesError: a required variable is not in ``env``.
    """
    document: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return resolve(document, env)
