"""The HTTP API against its own OpenAPI schema (schemathesis): generated requests to every
operation of a real server never get a 5xx, and every answer matches the documented schema."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

schemathesis = pytest.importorskip("schemathesis")


from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
)

from conftest import LiveServers  # noqa: E402
from engine.server import Settings, create_app  # noqa: E402

#: generated cases per operation; `make fuzz` runs more
EXAMPLES = int(os.environ.get("CONTRACT_EXAMPLES", "15"))


@pytest.fixture(scope="module")
def api_url(tmp_path_factory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("contract-home")
    servers = LiveServers()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLEARANCE_HOME", str(home))
        mp.setenv("CLEARANCE_PROVIDER", "none")  # no model to load: the contract, not verdicts
        url = servers.start(create_app(settings=Settings(auth=False)))
    yield url
    servers.close()


def _operations() -> list:
    from engine.server import create_app as make

    schema = schemathesis.openapi.from_dict(make().openapi())
    return sorted((r.ok() for r in schema.get_all_operations()), key=lambda op: op.label)


@pytest.mark.parametrize("operation", _operations(), ids=lambda op: op.label)
def test_every_operation_keeps_its_contract(api_url, operation):
    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case) -> None:
        case.call_and_validate(
            base_url=api_url,
            checks=[not_a_server_error, content_type_conformance, response_schema_conformance],
            timeout=60,
        )

    check()
