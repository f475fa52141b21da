# -*- test-case-name: tests.test_api_openapi -*-
"""The call API's OpenAPI 3.1 document, served at ``GET /_ocpp/openapi.json``."""

from __future__ import annotations

from typing import Any

from ocppcable import __version__
from ocppcable.api.models import DEFAULT_WAIT, MAX_KEY, STATUS, Limits, Outcome

_LIMITS = Limits()


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_STATION_ID = {
    "name": "station_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,48}$"},
}

_UNAUTHORIZED = _json(_ref("Errors"), "The Authorization: Bearer key is missing or wrong.")
_UNAVAILABLE = _json(_ref("Errors"), "In a cluster: Redis could not be reached within 5 s.")

_CALL_FIELDS: dict[str, Any] = {
    "action": {"type": "string", "description": "The OCPP action, e.g. Reset."},
    "payload": {"type": "object", "description": "The action's request payload.", "default": {}},
    "wait": {
        "type": "number",
        "minimum": 0,
        "maximum": _LIMITS.max_wait,
        "default": DEFAULT_WAIT,
        "description": "Seconds to wait for the station's answer (0: do not wait).",
    },
    "ttl": {
        "type": "number",
        "minimum": 0,
        "maximum": _LIMITS.max_ttl,
        "default": 0,
        "description": "Seconds the command may wait for an offline station (0: not at all).",
    },
    "key": {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_KEY,
        "description": "Idempotency key: the same key for the same station within its ttl is "
        "delivered once.",
    },
}

_OUTCOMES = ", ".join(f"{o.value} ({STATUS[o]})" for o in Outcome)

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "ocppcable call API",
        "version": __version__,
        "description": "Send OCPP commands to stations and get their answers; see who is "
        "connected. Outcomes (HTTP status): " + _OUTCOMES + ".",
    },
    "security": [{"bearer": []}],
    "paths": {
        "/_ocpp/stations/{station_id}/calls": {
            "post": {
                "operationId": "call",
                "summary": "Send one command to a station",
                "parameters": [_STATION_ID],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("CallRequest")}},
                },
                "responses": {
                    "200": _json(_ref("Answer"), "The station answered (result or error)."),
                    "202": _json(_ref("Answer"), "Sent without waiting, or queued."),
                    "401": _UNAUTHORIZED,
                    "404": _json(_ref("Answer"), "The station is offline and ttl is 0."),
                    "413": {"description": "The body is too large."},
                    "422": _json(_ref("Answer"), "Invalid: the body, action or payload."),
                    "429": _json(_ref("Answer"), "Refused: a queue or wait bound is reached."),
                    "503": _UNAVAILABLE,
                    "504": _json(_ref("Answer"), "No answer within wait; the call stays pending."),
                },
            }
        },
        "/_ocpp/calls": {
            "post": {
                "operationId": "batch",
                "summary": "Send the same command to several stations",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("BatchRequest")}},
                },
                "responses": {
                    "200": _json(_ref("BatchAnswer"), "One answer per station."),
                    "401": _UNAUTHORIZED,
                    "413": {"description": "The body is too large."},
                    "422": _json(_ref("Errors"), "An invalid body."),
                    "503": _UNAVAILABLE,
                },
            }
        },
        "/_ocpp/stations": {
            "get": {
                "operationId": "stations",
                "summary": "The connected stations, by id, a page at a time",
                "parameters": [
                    {
                        "name": "after",
                        "in": "query",
                        "description": "The cursor: the next field of the previous page.",
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": _LIMITS.max_page,
                            "default": 100,
                        },
                    },
                ],
                "responses": {
                    "200": _json(_ref("StationPage"), "A page of connected stations."),
                    "401": _UNAUTHORIZED,
                    "422": _json(_ref("Errors"), "A bad cursor or limit."),
                    "503": _UNAVAILABLE,
                },
            }
        },
        "/_ocpp/stations/{station_id}": {
            "get": {
                "operationId": "station",
                "summary": "One connected station",
                "parameters": [_STATION_ID],
                "responses": {
                    "200": _json(_ref("Station"), "The station is connected."),
                    "401": _UNAUTHORIZED,
                    "404": _json(_ref("Errors"), "The station is not connected."),
                    "503": _UNAVAILABLE,
                },
            }
        },
        "/_ocpp/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "The OpenAPI document.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "401": _UNAUTHORIZED,
                },
            }
        },
    },
    "components": {
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "--api-key, or hex HMAC-SHA256(--secret, 'ocpp-api-cable').",
            }
        },
        "schemas": {
            "CallRequest": {
                "type": "object",
                "required": ["action"],
                "properties": _CALL_FIELDS,
                "additionalProperties": False,
            },
            "BatchRequest": {
                "type": "object",
                "required": ["stations", "action"],
                "properties": {
                    "stations": {
                        "type": "array",
                        "items": _STATION_ID["schema"],
                        "minItems": 1,
                        "maxItems": _LIMITS.max_batch,
                        "uniqueItems": True,
                    },
                    **_CALL_FIELDS,
                },
                "additionalProperties": False,
            },
            "Answer": {
                "type": "object",
                "required": ["station", "id", "action", "outcome"],
                "properties": {
                    "station": {"type": "string"},
                    "id": {"type": "string", "description": "The OCPP unique id of the CALL."},
                    "action": {"type": "string"},
                    "outcome": {"type": "string", "enum": [o.value for o in Outcome]},
                    "payload": {"type": "object", "description": "outcome result"},
                    "code": {"type": "string", "description": "outcome error"},
                    "description": {"type": "string", "description": "outcome error"},
                    "details": {"type": "object", "description": "outcome error"},
                    "errors": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "outcome invalid or refused",
                    },
                },
            },
            "BatchAnswer": {
                "type": "object",
                "required": ["results"],
                "properties": {
                    "results": {"type": "object", "additionalProperties": _ref("Answer")}
                },
            },
            "Station": {
                "type": "object",
                "required": ["id", "protocol", "node", "connected_since"],
                "properties": {
                    "id": {"type": "string"},
                    "protocol": {"type": "string", "examples": ["ocpp1.6", "ocpp2.0.1"]},
                    "node": {"type": "string"},
                    "connected_since": {"type": "string", "format": "date-time"},
                    "last_frame_at": {"type": ["string", "null"], "format": "date-time"},
                    "serial_number": {"type": ["string", "null"]},
                },
            },
            "StationPage": {
                "type": "object",
                "required": ["stations", "next"],
                "properties": {
                    "stations": {"type": "array", "items": _ref("Station")},
                    "next": {
                        "type": ["string", "null"],
                        "description": "Pass as after= for the next page; null on the last.",
                    },
                },
            },
            "Errors": {
                "type": "object",
                "required": ["errors"],
                "properties": {"errors": {"type": "array", "items": {"type": "string"}}},
            },
        },
    },
}
