"""The WebSocket transport's workarounds for Autobahn's per-connection costs."""

from __future__ import annotations

import pprint

import pytest_twisted
import txaio
from autobahn.websocket import protocol as autobahn_protocol
from twisted.logger import formatEvent, globalLogPublisher

from ocppcable.websocket import PrettyWhenLogged
from tests.support import aio, raw_socket


def test_pretty_when_logged_formats_like_pformat():
    value = [("openHandshakeTimeout", 5, "Factory"), ("utf8validateIncoming", True, "Factory")]
    pretty = PrettyWhenLogged(value)
    assert str(pretty) == repr(pretty) == pprint.pformat(value)
    assert f"{pretty}" == pprint.pformat(value)
    assert formatEvent({"log_format": "\n{attrs}", "attrs": pretty}) == "\n" + pprint.pformat(value)


@pytest_twisted.ensureDeferred
async def test_autobahn_options_line_is_logged_unchanged_at_debug_level(start_gateway, backend):
    gateway = await start_gateway(f"--rpc-host=127.0.0.1:{backend.port}")
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    txaio.set_global_log_level("debug")
    try:
        ws = await aio(raw_socket(gateway.url("CP-1")))
        await aio(ws.close())
    finally:
        txaio.set_global_log_level("info")
        globalLogPublisher.removeObserver(events.append)

    # the debug line Autobahn writes on every connection carries its options, put off until
    # formatted and then the text pformat gives
    [options] = [e for e in events if e.get("log_format") == "\n{attrs}"]
    assert isinstance(options["attrs"], PrettyWhenLogged)
    assert formatEvent(options) == "\n" + pprint.pformat(options["attrs"].value)
    assert "'openHandshakeTimeout'" in formatEvent(options)
    # and Autobahn's own pformat is back for everything else
    assert autobahn_protocol.pformat is pprint.pformat
