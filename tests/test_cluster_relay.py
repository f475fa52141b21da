"""The cluster relay: an HTTP broadcast handed to every node through Redis (end-to-end tests of
the relay, with real nodes and Redis, are in test_http_broadcast.py)."""

from __future__ import annotations

import json

import pytest
from twisted.internet.defer import fail, succeed
from twisted.logger import formatEvent

from ocppcable.cluster.relay import ClusterRelay
from ocppcable.metrics import NoMetrics
from ocppcable.publication import MalformedPublication

TRIGGER = {
    "stream": "ocpp:ev/CP-1",
    "data": json.dumps(
        {"command": "TriggerMessage", "payload": {"requestedMessage": "Heartbeat"}, "id": "trig-1"}
    ),
}
RESET = {
    "stream": "ocpp:ev/CP-1",
    "data": json.dumps({"command": "Reset", "payload": {"type": "Soft"}}),
}


class _Publisher:
    connected = True

    def __init__(self, error=None):
        self.error = error
        self.published = []

    def publish(self, channel, message):
        self.published.append((channel, message))
        return fail(self.error) if self.error else succeed(1)


def test_a_relay_that_failed_after_sending_is_not_delivered_here_too(fail_on_logged_errors):
    local = []
    publisher = _Publisher(ConnectionError("lost"))
    relay = ClusterRelay(publisher, lambda *a: local.append(a), NoMetrics(), "__ch__", "__int__")
    body = json.dumps([TRIGGER, {"bad": 1}, RESET])
    assert relay.dispatch(body, "http") == 0
    [logged] = fail_on_logged_errors
    assert "could not relay a broadcast from http" in formatEvent(logged)
    fail_on_logged_errors.clear()
    # Redis may have taken it: delivering it here as well could run a command twice
    assert local == []
    [(channel, message)] = publisher.published
    assert channel == "__ch__" and json.loads(message) == [TRIGGER, RESET]  # the bad item left out


def test_the_relay_fans_out_on_stream_channels_without_the_legacy_channel():
    publisher = _Publisher()
    relay = ClusterRelay(publisher, lambda *a: 0, NoMetrics(), None, "__int__")
    disconnect = {"command": "disconnect", "payload": {"identifier": "x", "reconnect": True}}
    relay.dispatch(json.dumps([TRIGGER, disconnect]), "http")
    assert [channel for channel, _ in publisher.published] == ["ocpp:ev/CP-1", "__int__"]
    with pytest.raises(MalformedPublication):
        relay.dispatch(b"not json", "http")


def test_a_relay_no_adapter_reads_for_subscribes_itself():
    class Cluster(_Publisher):
        description = "a test cluster"

        def subscribe(self, channel, receiver):
            self.receivers = {channel: receiver}

    def local(body, source):
        if body == "not json":
            raise MalformedPublication("not JSON")
        delivered.append((body, source))
        return 1

    delivered = []
    cluster = Cluster()
    relay = ClusterRelay(cluster, local, NoMetrics(), "__relayed__", "__int__")
    relay.listen()
    relay.dispatch(json.dumps([TRIGGER]), "http")
    [(channel, message)] = cluster.published
    assert channel == "__relayed__"
    cluster.receivers[channel](message)  # as every node receives it, this one included
    assert delivered == [(message, "cluster")]
    cluster.receivers[channel]("not json")  # logged as a warning, nothing raised
    assert (
        relay.description == "relayed to every node through a test cluster (channel '__relayed__')"
    )
