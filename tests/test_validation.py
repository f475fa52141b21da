"""Schema validation compiles each schema on its first use, once per process."""

from __future__ import annotations

import pytest


@pytest.fixture
def compiles(monkeypatch):
    """Counts fastjsonschema compilations, by the schema's title."""
    import fastjsonschema

    titles: list[str] = []
    compile_ = fastjsonschema.compile

    def counting(schema, **kwargs):
        titles.append(schema.get("title", "?"))
        return compile_(schema, **kwargs)

    monkeypatch.setattr(fastjsonschema, "compile", counting)
    return titles


def test_a_validator_compiles_nothing_until_a_payload_needs_a_schema(compiles):
    """Compiling all 272 schemas up front kept twistd from binding (or reporting a port in use)
    for seconds; a station now pays for one schema, once, on its first message that needs it."""
    from ocppcable.ocpp import v16
    from ocppcable.ocpp.validation import Validator, Violation

    validator = Validator(v16.CATALOG)
    assert compiles == []
    validator.check_request("Heartbeat", {})
    validator.check_request("Heartbeat", {})
    with pytest.raises(Violation):
        validator.check_response("Heartbeat", {})
    assert len(compiles) == 2


@pytest.mark.parametrize("version", ["ocpp1.6", "ocpp2.0.1", "ocpp2.1"])
def test_every_schema_a_catalog_names_compiles(version):
    """What the eager compilation proved at start-up: no action lacks its schemas."""
    from ocppcable.ocpp import v16, v21, v201
    from ocppcable.ocpp.validation import Validator, Violation

    catalog = {c.subprotocol: c for c in (v16.CATALOG, v201.CATALOG, v21.CATALOG)}[version]
    validator = Validator(catalog)
    checks = [
        *((validator.check_request, a) for a in catalog.station_actions),
        *((validator.check_response, a) for a in catalog.station_actions),
        *((validator.check_command, a) for a in catalog.command_actions),
        *((validator.check_send, a) for a in catalog.send_actions),
    ]
    for check, action in checks:
        try:
            check(action, {})
        except Violation:
            pass  # an empty payload breaks most schemas; what matters is that one was found
