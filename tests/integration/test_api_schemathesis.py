"""Schemathesis over /openapi.json: no 5xx and no answer that breaks the published schema.

The running server (the demo district, SQLite and PostgreSQL) is fuzzed
operation by operation from its own OpenAPI document, with valid and
invalid inputs, as an auditor (sees everything) and as a station supervisor
(sees little: most ids are someone else's). Bounded: a fixed number of
examples per operation, derandomised so a run is repeatable.
"""

from __future__ import annotations

from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.factories_read_api import ReadApiEnv, read_api_env

__all__ = ["read_api_env"]

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 10
"""Examples per operation and mode: enough to hit every parameter's edges, bounded in time."""

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

SKIPPED = {"/v1/events", "/v1/events:batch"}
"""Ingestion has its own tests; fuzzing it would fill the store with refusals."""


def fuzz(env: ReadApiEnv, role: str, mode: GenerationMode) -> list[str]:
    """Run every read operation; return the failures as text."""
    schema = schemathesis.openapi.from_url(f"{env.url}/openapi.json")
    headers = {"Authorization": f"Bearer {env.tokens[role]}"}
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            failures.append(f"invalid operation in the document: {result.err()}")
            continue
        operation = result.ok()
        if operation.path in SKIPPED or operation.method.upper() != "GET":
            continue
        operations += 1

        @hypothesis.settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        )
        @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
        def run(case: Any) -> None:
            response = case.call(headers=headers)
            case.validate_response(response, checks=CHECKS)

        try:
            run()
        except hypothesis.errors.Unsatisfiable:
            # No invalid input exists for an operation without parameters.
            assert mode == GenerationMode.NEGATIVE
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then fail
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert operations >= 20, "every read endpoint is published"
    return failures


class TestOpenApi:
    def test_publishes_an_openapi_31_document_with_every_read_endpoint(
        self, read_api_env: ReadApiEnv
    ) -> None:
        document = read_api_env.get(None, "/openapi.json").json()
        assert document["openapi"].startswith("3.1")
        paths = set(document["paths"])
        assert {
            "/v1/findings",
            "/v1/findings/{finding_id}",
            "/v1/units/{unit_id}/closed-loop",
            "/v1/units/{unit_id}/scorecard",
            "/v1/rankings",
            "/v1/units/{unit_id}/published",
            "/v1/scoring-models",
            "/v1/volunteers",
            "/v1/teams/{team_id}",
            "/v1/units/{unit_id}/officials",
            "/v1/needs",
            "/v1/meetings",
            "/v1/rejections",
            "/metrics",
        } <= paths

    @pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
    @pytest.mark.parametrize("role", ["auditor", "station"])
    def test_fuzzing_finds_no_server_error_and_no_schema_violation(
        self, read_api_env: ReadApiEnv, role: str, mode: GenerationMode
    ) -> None:
        failures = fuzz(read_api_env, role, mode)
        assert not failures, "\n\n".join(failures)
