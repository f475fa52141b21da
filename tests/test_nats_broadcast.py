"""The nats broadcaster, without a server: what arrives on its subject goes to dispatch."""

from __future__ import annotations

from ocppcable.nats.broadcaster import NatsBroadcaster
from ocppcable.nats.client import NatsClient
from ocppcable.nats.servers import parse_servers
from ocppcable.publication import MalformedPublication


def _broadcaster(dispatch):
    client = NatsClient(None, parse_servers("nats://127.0.0.1:4222"))
    broadcaster = NatsBroadcaster(client, "__anycable__", dispatch)
    broadcaster.running = True
    return client, broadcaster


def test_messages_on_its_subject_are_dispatched_as_nats_broadcasts():
    got = []
    client, broadcaster = _broadcaster(lambda body, source: got.append((body, source)) or 1)
    assert client.subjects() == [("1", "__anycable__")]
    client.received("1", b'{"stream":"s","data":"{}"}')
    client.received("2", b"not ours")  # another subscription's sid
    assert got == [(b'{"stream":"s","data":"{}"}', "nats")]
    assert broadcaster.description == "nats '__anycable__' (NATS nats://127.0.0.1:4222)"
    assert not broadcaster.connected


def test_a_malformed_publication_is_dropped_with_a_warning(warnings):
    def dispatch(body, source):
        raise MalformedPublication("broadcast is not JSON")

    client, _ = _broadcaster(dispatch)
    client.received("1", b"nope")
    assert warnings == ["dropped a malformed nats publication: broadcast is not JSON"]


def test_nothing_is_dispatched_once_stopped():
    got = []
    client, broadcaster = _broadcaster(lambda body, source: got.append(body) or 1)
    broadcaster.running = False
    client.received("1", b"{}")
    assert got == []
