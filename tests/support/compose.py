"""docker-compose.yml read the way Compose reads it: anchors, merge keys (<<), variables
from a .env file ($$, ${VAR}, ${VAR:-default}, ${VAR:?error})."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.support import REPO_ROOT

COMPOSE = REPO_ROOT / "docker-compose.yml"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
AIRFLOW_IMAGE = "mediamon:local"
VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_]\w*)")


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as Compose reads a .env file (quotes removed, comments skipped)."""
    values: dict[str, str] = {}
    for line in path.read_text("utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    """Compose's variable substitution: $$, ${VAR}, ${VAR:-default}, ${VAR:?error}."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        operator, argument = match.group(2), match.group(3) or ""
        value = variables.get(name)
        empty = value is None or (operator is not None and operator.startswith(":") and not value)
        if operator in ("-", ":-") and empty:
            return argument
        if operator in ("?", ":?") and empty:
            raise KeyError(f"{name}: {argument}")
        return value or ""

    return VARIABLE.sub(replace, text)


def resolved(node: Any, variables: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, variables)
    if isinstance(node, list):
        return [resolved(item, variables) for item in node]
    if isinstance(node, dict):
        return {key: resolved(value, variables) for key, value in node.items()}
    return node


def compose(variables: Mapping[str, str] | None = None) -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text("utf-8"))  # merge keys (<<) included
    return resolved(document, variables if variables is not None else read_env_file(ENV_EXAMPLE))


def airflow_services(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in document["services"].items() if s.get("image") == AIRFLOW_IMAGE}
