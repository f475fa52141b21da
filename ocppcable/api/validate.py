# -*- test-case-name: tests.test_api_models -*-
"""Checking a command against the OCPP version of the station it is for, before it is sent.

The official schemas are the session's own (:mod:`ocppcable.ocpp.validation`); for an offline
station, whose version is not known yet, a command passes when some served version takes it
(the session checks it again against the station's own version when it is delivered).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ocppcable.ocpp.catalog import Catalog
from ocppcable.ocpp.validation import Validator, Violation


def command_errors(
    action: str,
    payload: Any,
    protocol: str | None,
    catalogs: Mapping[str, Catalog],
    validators: Mapping[str, Validator],
) -> list[str]:
    """Why ``action`` with ``payload`` cannot go to a station speaking ``protocol`` (None:
    unknown), or an empty list."""
    versions = [protocol] if protocol is not None else list(catalogs)
    errors = []
    for version in versions:
        catalog = catalogs.get(version)
        if catalog is None or action not in catalog.command_actions:
            errors.append(f"{action} is not a command of {version}")
            continue
        validator = validators.get(version)
        if validator is None:
            return []
        try:
            validator.check_command(action, payload)
        except Violation as e:
            errors.append(f"{version}: {e.description}")
            continue
        return []
    return errors
