"""compose.yaml, Dockerfile and .dockerignore: shape checks, no database needed.

compose.yaml is validated against the official Compose Specification JSON Schema,
vendored in tests/data/compose-spec.json (origin and licence: tests/data/README.md).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
SCHEMA_FILE = Path(__file__).resolve().parent / "data" / "compose-spec.json"

APP_SERVICES = ("migrate", "api", "worker")


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    # The vendored schema declares Draft 7 ("https://json-schema.org/draft-07/schema",
    # a spelling jsonschema's lookup table does not know), so name the draft explicitly
    # rather than letting validator_for() fall back to the latest one with a warning.
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


@pytest.fixture
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return data


def _flatten(errors: Iterator[jsonschema.ValidationError]) -> Iterator[jsonschema.ValidationError]:
    """Every error including those nested under oneOf/anyOf branches."""
    for error in errors:
        yield error
        yield from _flatten(iter(error.context or ()))


def _error_sites(
    validator: jsonschema.protocols.Validator, instance: dict[str, Any]
) -> set[tuple[tuple[str | int, ...], str]]:
    """(instance path, failing keyword) for every error, nested ones included."""
    return {
        (tuple(error.absolute_path), str(error.validator))
        for error in _flatten(validator.iter_errors(instance))
    }


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, comments dropped and continuations joined."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    result = []
    for line in joined.splitlines():
        if line.strip():
            instruction, _, args = line.strip().partition(" ")
            result.append((instruction.upper(), args.strip()))
    return result


# --- the schema itself -------------------------------------------------------


def test_vendored_schema_is_the_compose_specification(schema: dict[str, Any]) -> None:
    assert schema["title"] == "Compose Specification"
    assert "draft-07" in schema["$schema"]
    assert schema["additionalProperties"] is False
    service = schema["definitions"]["service"]
    assert service["additionalProperties"] is False
    long_form = service["properties"]["depends_on"]["oneOf"][1]["patternProperties"]
    (dependency,) = long_form.values()
    assert dependency["properties"]["condition"]["enum"] == [
        "service_started",
        "service_healthy",
        "service_completed_successfully",
    ]
    # Modern spec: `version` is optional (obsolete), never required.
    assert "version" not in schema.get("required", [])


# --- compose.yaml ------------------------------------------------------------


def test_compose_file_validates_against_the_spec(
    validator: jsonschema.protocols.Validator, compose: dict[str, Any]
) -> None:
    errors = [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in validator.iter_errors(compose)
    ]
    assert errors == []


def test_compose_has_no_version_key_and_the_five_services(compose: dict[str, Any]) -> None:
    assert "version" not in compose
    assert set(compose["services"]) == {"postgres", "redis", "migrate", "api", "worker"}
    assert set(compose["volumes"]) == {"postgres-data", "redis-data"}


def test_postgres_service(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]
    assert postgres["image"] == "postgres:16"
    assert postgres["environment"] == {
        "POSTGRES_USER": "threadline",
        "POSTGRES_PASSWORD": "threadline",
        "POSTGRES_DB": "threadline",
    }
    assert postgres["volumes"] == ["postgres-data:/var/lib/postgresql/data"]
    assert postgres["healthcheck"]["test"] == [
        "CMD",
        "pg_isready",
        "-U",
        "threadline",
        "-d",
        "threadline",
    ]


def test_redis_service(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert redis["image"] == "redis:7"
    assert redis["command"] == ["redis-server", "--appendonly", "yes"]
    assert redis["volumes"] == ["redis-data:/data"]
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_migrate_is_a_one_shot_after_postgres(compose: dict[str, Any]) -> None:
    migrate = compose["services"]["migrate"]
    assert migrate["build"] == "."
    assert migrate["command"] == ["threadline", "migrate", "upgrade"]
    # Must be the string "no": a bare YAML `no` is boolean false and fails the spec.
    assert migrate["restart"] == "no"
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}


def _assert_waits_for_backends_and_migrate(service: dict[str, Any]) -> None:
    assert service["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }


def test_api_service(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    assert api["build"] == "."
    assert api["command"][:2] == ["threadline", "serve"]
    assert api["command"] == [
        "threadline",
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
        "--workers",
        "2",
    ]
    assert api["ports"] == ["8000:8000"]
    _assert_waits_for_backends_and_migrate(api)
    probe = api["healthcheck"]["test"]
    assert probe[:3] == ["CMD", "python", "-c"]
    assert "urllib.request.urlopen('http://localhost:8000/readyz')" in probe[3]
    assert "curl" not in " ".join(probe)


def test_worker_service(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert worker["build"] == "."
    assert worker["command"][:2] == ["threadline", "worker"]
    assert worker["command"] == ["threadline", "worker", "--processes", "2"]
    _assert_waits_for_backends_and_migrate(worker)
    assert "ports" not in worker


def test_app_services_share_one_environment(compose: dict[str, Any]) -> None:
    shared = compose["x-threadline-env"]
    assert shared == {
        "DATABASE_URL": "postgresql+asyncpg://threadline:threadline@postgres:5432/threadline",
        "REDIS_URL": "redis://redis:6379/0",
        "THREADLINE_SECRET_KEY": "${THREADLINE_SECRET_KEY:-change-me-in-production}",
        "THREADLINE_LOG_LEVEL": "info",
    }
    for name in APP_SERVICES:
        assert compose["services"][name]["environment"] == shared, name
    # The default secret must satisfy Settings.secret_key (min_length=16).
    default_secret = re.fullmatch(
        r"\$\{THREADLINE_SECRET_KEY:-(.+)\}", shared["THREADLINE_SECRET_KEY"]
    )
    assert default_secret is not None
    assert len(default_secret.group(1)) >= 16


# --- the validator really rejects broken files --------------------------------


def test_schema_rejects_an_unknown_depends_on_condition(
    validator: jsonschema.protocols.Validator, compose: dict[str, Any]
) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["api"]["depends_on"]["migrate"]["condition"] = "service_finished"
    assert not validator.is_valid(broken)
    sites = _error_sites(validator, broken)
    assert (("services", "api", "depends_on", "migrate", "condition"), "enum") in sites


def test_schema_rejects_an_unknown_service_key(
    validator: jsonschema.protocols.Validator, compose: dict[str, Any]
) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["worker"]["healthchek"] = {"test": ["CMD", "true"]}
    errors = list(validator.iter_errors(broken))
    assert len(errors) == 1
    assert tuple(errors[0].absolute_path) == ("services", "worker")
    assert errors[0].validator == "additionalProperties"
    assert "'healthchek'" in errors[0].message


def test_schema_rejects_an_unquoted_restart_no(
    validator: jsonschema.protocols.Validator,
) -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    assert text.count('restart: "no"') == 1
    broken = yaml.safe_load(text.replace('restart: "no"', "restart: no"))
    assert broken["services"]["migrate"]["restart"] is False
    sites = _error_sites(validator, broken)
    assert (("services", "migrate", "restart"), "type") in sites


def test_schema_rejects_an_unknown_top_level_key(
    validator: jsonschema.protocols.Validator, compose: dict[str, Any]
) -> None:
    broken = copy.deepcopy(compose)
    broken["threadline-env"] = broken.pop("x-threadline-env")  # extension without x-
    errors = list(validator.iter_errors(broken))
    assert [(tuple(e.absolute_path), e.validator) for e in errors] == [((), "additionalProperties")]


# --- Dockerfile / .dockerignore -------------------------------------------------


def test_dockerfile_base_image_user_port_and_cmd() -> None:
    instructions = _dockerfile_instructions()
    froms = [args for instruction, args in instructions if instruction == "FROM"]
    assert froms == ["python:3.11-slim"]
    users = [args for instruction, args in instructions if instruction == "USER"]
    assert users, "the image must switch to an unprivileged USER"
    final_user = users[-1].split(":")[0]
    assert final_user not in {"root", "0"}
    assert ("EXPOSE", "8000") in instructions
    assert instructions[-1] == ("CMD", '["threadline", "serve", "--host", "0.0.0.0"]')
    runs = " ".join(args for instruction, args in instructions if instruction == "RUN")
    assert "pip install --no-cache-dir ." in runs
    # The USER switch comes after every install step.
    last_run = max(i for i, (instruction, _) in enumerate(instructions) if instruction == "RUN")
    first_user = min(i for i, (instruction, _) in enumerate(instructions) if instruction == "USER")
    assert first_user > last_run


def test_dockerfile_copies_what_the_package_needs() -> None:
    copied = " ".join(
        args for instruction, args in _dockerfile_instructions() if instruction == "COPY"
    )
    for path in (
        "pyproject.toml",
        "README.md",
        "app/",
        "workers/",
        "migrations/",
        "alembic.ini",
        "schema.graphql",
    ):
        assert path in copied, path


def test_dockerignore_excludes_local_state() -> None:
    patterns = {
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", ".threadline", ".git", "**/__pycache__", ".pytest_cache", "bench"} <= patterns
    # Nothing the Dockerfile copies may be ignored.
    assert not patterns & {"app", "workers", "migrations", "pyproject.toml", "README.md"}
