"""The OpenAPI document: well formed, every route in it, every reference resolvable."""

from __future__ import annotations

import json
from typing import Any

from ocppcable.api.models import STATUS, Outcome
from ocppcable.api.openapi import OPENAPI
from ocppcable.api.resource import API_PATH, ROUTES

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if "$ref" in node else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


def test_it_is_an_openapi_31_document():
    assert OPENAPI["openapi"] == "3.1.0"
    assert OPENAPI["info"]["title"] and OPENAPI["info"]["version"]
    json.dumps(OPENAPI, allow_nan=False)  # plain JSON
    for path, item in OPENAPI["paths"].items():
        assert path.startswith(API_PATH + "/")
        for method, operation in item.items():
            assert method in METHODS
            assert operation["operationId"] and operation["responses"]
            for status, response in operation["responses"].items():
                assert status.isdigit() and response["description"]
            for parameter in operation.get("parameters", []):
                assert parameter["in"] in ("path", "query")
                if parameter["in"] == "path":
                    assert parameter["required"] and f"{{{parameter['name']}}}" in path


def test_every_route_is_documented_and_nothing_else():
    served = {
        (
            API_PATH + "/" + "/".join("{station_id}" if s == "*" else s for s in template),
            method.decode().lower(),
        )
        for template, method, _ in ROUTES
    }
    documented = {(path, m) for path, item in OPENAPI["paths"].items() for m in item}
    assert served == documented


def test_every_reference_resolves():
    schemas = OPENAPI["components"]["schemas"]
    for ref in refs(OPENAPI):
        assert ref.startswith("#/components/schemas/")
        assert ref.rsplit("/", 1)[1] in schemas


def test_every_outcome_and_its_status_is_documented():
    answer = OPENAPI["components"]["schemas"]["Answer"]
    assert answer["properties"]["outcome"]["enum"] == [o.value for o in Outcome]
    responses = OPENAPI["paths"]["/_ocpp/stations/{station_id}/calls"]["post"]["responses"]
    assert {str(STATUS[o]) for o in Outcome} <= set(responses)
