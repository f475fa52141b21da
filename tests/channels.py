"""Channels written on :mod:`ocppcable.channel` for the tests, loaded by the gateway as operators
load theirs: ``--rpc-host=python:tests.channels:ChargingChannel``."""

from __future__ import annotations

import itertools
from typing import Any

from twisted.internet.defer import succeed

from ocppcable.channel import Channel, Connection

#: what the channels saw, in order: (method, station id, data or None); tests clear it
SEEN: list[tuple[str, str, Any]] = []

_transaction_ids = itertools.count(1)


class TokenConnection(Connection):
    """Refuses a station whose URL carries ``?token=bad``; remembers the token in cstate."""

    def connect(self) -> None:
        if self.url.endswith("?token=bad"):
            self.reject()
            return
        super().connect()
        self.state["token"] = self.url.partition("?token=")[2] or "none"
        SEEN.append(("connect", self.station_id, None))

    def disconnect(self) -> None:
        SEEN.append(("disconnect", self.identifiers["station_id"], None))


class ChargingChannel(Channel):
    """A complete channel for 1.6 and 2.0.1 stations, as docs/plugins.md writes one."""

    connection_class = TokenConnection
    id_tags = frozenset({"TAG-OK"})

    def subscribed(self) -> None:
        if self.station_id.startswith("BANNED"):
            self.reject()
            return
        self.stream_for(f"ev/{self.station_id}")
        self.state["protocol"] = self.protocol  # kept with the subscription, until it ends
        SEEN.append(("subscribed", self.station_id, dict(self.params)))

    def unsubscribed(self) -> None:
        SEEN.append(("unsubscribed", self.station_id, dict(self.state)))

    def boot_notification(self, data: dict[str, Any]) -> None:
        SEEN.append(("boot_notification", self.station_id, data))
        self.transmit_ack(data, status="Accepted", currentTime="2026-01-01T00:00:00Z", interval=60)

    async def authorize(self, data: dict[str, Any]) -> None:
        """Asynchronous, as an action asking an external service would be."""
        payload = data["payload"]
        if self.protocol == "ocpp1.6":
            tag = payload["idTag"]
        else:
            tag = payload["idToken"]["idToken"]
        accepted = await succeed(tag in self.id_tags)
        status = {"status": "Accepted" if accepted else "Invalid"}
        if self.protocol == "ocpp1.6":
            self.transmit_ack(data, idTagInfo=status)
        else:
            self.transmit_ack(data, idTokenInfo=status)

    def start_transaction(self, data: dict[str, Any]) -> dict[str, Any]:
        transaction_id = next(_transaction_ids)
        self.state["transaction"] = str(transaction_id)
        accepted = data["payload"]["idTag"] in self.id_tags
        return {
            "transactionId": transaction_id,
            "idTagInfo": {"status": "Accepted" if accepted else "Invalid"},
        }

    def meter_values(self, data: dict[str, Any]) -> None:
        SEEN.append(("meter_values", self.station_id, data))  # the default {} answers

    def stop_transaction(self, data: dict[str, Any]) -> None:
        SEEN.append(("stop_transaction", self.station_id, dict(self.state)))
        del self.state["transaction"]
        self.transmit({"command": "Reset", "id": "reset-1", "payload": {"type": "Soft"}})

    def transaction_event(self, data: dict[str, Any]) -> None:
        SEEN.append(("transaction_event", self.station_id, data))
        if data["payload"]["eventType"] == "Ended":
            self.transmit({"command": "Reset", "id": "reset-2", "payload": {"type": "OnIdle"}})

    def data_transfer(self, data: dict[str, Any]) -> None:
        if data["payload"].get("messageId") == "fail":
            raise RuntimeError("the channel failed on purpose")
        self.transmit_error(data, "NotSupported", "no such vendor", {"hint": "none"})

    def ack(self, data: dict[str, Any]) -> None:
        SEEN.append(("ack", self.station_id, data))

    def error(self, data: dict[str, Any]) -> None:
        SEEN.append(("error", self.station_id, data))


class NotAChannel:
    """What ``--rpc-host=python:`` must refuse."""
