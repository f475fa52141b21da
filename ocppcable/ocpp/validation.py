# -*- test-case-name: tests.test_validation, tests.test_session_features, tests.test_catalog_v2 -*-
"""Payload validation against the official OCPP JSON schemas (shipped by the PyPI ``ocpp``
package), each compiled with fastjsonschema on its first use."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from importlib import resources
from typing import Any

import fastjsonschema

from ocppcable.ocpp.catalog import Catalog
from ocppcable.ocpp.framing import ErrorKind

#: which CallError a failed schema rule maps to. OCPP-J: TypeConstraint = a field of the wrong
#: data type (CiString lengths are part of the type), Occurrence = a missing or repeated field,
#: PropertyConstraint = a value outside what the field allows, Format(ion) = anything else.
_RULE_KINDS = {
    "type": ErrorKind.TYPE,
    "maxLength": ErrorKind.TYPE,
    "minLength": ErrorKind.TYPE,
    "required": ErrorKind.OCCURRENCE,
    "minItems": ErrorKind.OCCURRENCE,
    "maxItems": ErrorKind.OCCURRENCE,
    "enum": ErrorKind.PROPERTY,
    "const": ErrorKind.PROPERTY,
    "format": ErrorKind.PROPERTY,
    "pattern": ErrorKind.PROPERTY,
    "minimum": ErrorKind.PROPERTY,
    "maximum": ErrorKind.PROPERTY,
    "exclusiveMinimum": ErrorKind.PROPERTY,
    "exclusiveMaximum": ErrorKind.PROPERTY,
    "multipleOf": ErrorKind.PROPERTY,
}

Check = Callable[[Any], Any]


class Violation(Exception):
    """A payload that its schema rejects."""

    def __init__(self, kind: ErrorKind, description: str) -> None:
        super().__init__(description)
        self.kind = kind
        self.description = description


def _load(package: str, name: str) -> Check:
    text = (resources.files(package) / "schemas" / f"{name}.json").read_text("utf-8")
    schema = json.loads(text)
    schema.pop("$id", None)  # fastjsonschema would try to resolve remote ids
    # use_default=False: validation must never change a payload (it would fill in defaults)
    return fastjsonschema.compile(schema, use_default=False)


class _Schemas:
    """The schemas of some actions, each compiled on first use and kept.

    Compiling all three catalogs' 272 schemas up front took 2 to 14 seconds (under load) before
    twistd could bind or even report a port in use; a station pays instead a few tens of
    milliseconds, once per action and process, on the first message that needs a schema."""

    def __init__(self, package: str, actions: Iterable[str], suffix: str = "") -> None:
        self._package = package
        self._names = {action: action + suffix for action in actions}
        self._compiled: dict[str, Check] = {}

    def get(self, action: str) -> Check | None:
        check = self._compiled.get(action)
        if check is None and action in self._names:
            check = self._compiled[action] = _load(self._package, self._names[action])
        return check

    def __getitem__(self, action: str) -> Check:
        check = self.get(action)
        if check is None:
            raise KeyError(action)
        return check


_cache: dict[str, Validator] = {}


def validator_for(catalog: Catalog) -> Validator:
    """The validator of a catalog, one per process (so each schema is compiled once)."""
    validator = _cache.get(catalog.subprotocol)
    if validator is None:
        validator = _cache[catalog.subprotocol] = Validator(catalog)
    return validator


class Validator:
    """Every request and response schema a catalog's actions need, compiled when first used."""

    def __init__(self, catalog: Catalog) -> None:
        package = catalog.schema_package
        station, commands = list(catalog.station_actions), sorted(catalog.command_actions)
        suffix = catalog.request_schema_suffix
        self._requests = _Schemas(package, station, suffix)
        self._responses = _Schemas(package, station, "Response")
        self._commands = _Schemas(package, commands, suffix)
        self._sends = _Schemas(package, catalog.send_actions)

    @staticmethod
    def _check(check: Check, payload: Any) -> None:
        try:
            check(payload)
        except fastjsonschema.JsonSchemaValueException as e:
            kind = _RULE_KINDS.get(e.rule or "", ErrorKind.FORMAT)
            raise Violation(kind, e.message) from None

    def check_request(self, action: str, payload: Any) -> None:
        """A station's CALL payload; raises :class:`Violation`."""
        self._check(self._requests[action], payload)

    def check_response(self, action: str, payload: Any) -> None:
        """The backend's reply to a station CALL; raises :class:`Violation`."""
        self._check(self._responses[action], payload)

    def check_send(self, action: str, payload: Any) -> None:
        """A station's SEND payload (2.1); raises :class:`Violation`."""
        self._check(self._sends[action], payload)

    def check_command(self, action: str, payload: Any) -> None:
        """A remote command for the station; raises :class:`Violation` (also when unknown)."""
        check = self._commands.get(action)
        if check is None:
            raise Violation(ErrorKind.NOT_IMPLEMENTED, f"{action} is not a command of this version")
        self._check(check, payload)
