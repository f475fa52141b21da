# -*- test-case-name: tests.test_demo -*-
"""The demo backend: an ``OCPPChannel`` written on :mod:`ocppcable.channel`, its first user.

It answers like the Rails channel in the README: accepts boots, authorizes idTags from an
allow-list, issues transaction ids and records every call. The gateway runs it in-process with
``--rpc-host=demo`` (the quickstart: no Rails, no Redis); the end-to-end tests serve it over gRPC
(:mod:`ocppcable.rpc.grpc_server`) or HTTP to act as a real backend.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from twisted.logger import Logger

from ocppcable.channel import Channel, ChannelApplication, Connection
from ocppcable.protos.rpc_pb2 import (
    CommandMessage,
    CommandResponse,
    ConnectionRequest,
    ConnectionResponse,
    DisconnectRequest,
    DisconnectResponse,
)

log = Logger()

_encode = json.JSONEncoder(separators=(",", ":")).encode

MAX_RECORDED = 10_000


@dataclass(frozen=True)
class RecordedCall:
    method: str  # "connect", "subscribe", "message", "unsubscribe", "disconnect"
    request: Any
    meta: Mapping[str, str]
    data: dict[str, Any] = field(default_factory=dict)  # decoded perform data

    @property
    def action(self) -> str | None:
        return self.data.get("action")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class DemoConnection(Connection):
    def connect(self) -> None:
        log.info("demo backend: Connect from {station_id}", station_id=self.station_id)
        super().connect()

    def disconnect(self) -> None:
        log.info("demo backend: Disconnect {identifiers}", identifiers=_encode(self.identifiers))


class OCPPChannel(Channel):
    """Streams ``ocpp:ev/<id>`` (and ``ocpp:ev/<serial>``); actions answer from the
    application's allow-list and transaction counter."""

    connection_class = DemoConnection
    application: OCPPApplication

    def subscribed(self) -> None:
        self.stream_for(f"ev/{self.station_id}")
        serial = self.params.get("sn")
        if serial and serial != self.station_id:
            self.stream_for(f"ev/{serial}")
        self.state["station_id"] = self.station_id

    def _id_tag_info(self, id_tag: Any) -> dict[str, str]:
        id_tags = self.application.id_tags
        accepted = id_tags is None or id_tag in id_tags
        return {"status": "Accepted" if accepted else "Invalid"}

    def boot_notification(self, data: dict[str, Any]) -> dict[str, Any]:
        interval = self.application.heartbeat_interval
        return {"status": "Accepted", "currentTime": _now(), "interval": interval}

    def authorize(self, data: dict[str, Any]) -> dict[str, Any]:
        payload = data["payload"]
        if self.protocol == "ocpp1.6":
            return {"idTagInfo": self._id_tag_info(payload.get("idTag"))}
        return {"idTokenInfo": self._id_tag_info(payload.get("idToken", {}).get("idToken"))}

    def start_transaction(self, data: dict[str, Any]) -> dict[str, Any]:
        return {
            "transactionId": self.application.next_transaction_id(),
            "idTagInfo": self._id_tag_info(data["payload"].get("idTag")),
        }

    def transaction_event(self, data: dict[str, Any]) -> dict[str, Any] | None:
        """2.x: a transaction started with an idToken gets that token's status."""
        id_token = data["payload"].get("idToken")
        if data["payload"].get("eventType") != "Started" or not id_token:
            return None
        return {"idTokenInfo": self._id_tag_info(id_token.get("idToken"))}


class OCPPApplication(ChannelApplication):
    """The demo's :class:`OCPPChannel` as AnyCable RPC handlers over protobuf messages, with
    every call recorded.

    Thread-safe: a gRPC server calls it from its worker threads."""

    def __init__(self, id_tags: Iterable[str] | None = None, heartbeat_interval: int = 60) -> None:
        super().__init__(OCPPChannel)
        #: idTags that authorize; None accepts any
        self.id_tags = None if id_tags is None else frozenset(id_tags)
        self.heartbeat_interval = heartbeat_interval
        #: the latest calls, for tests and for looking around (bounded: the demo may run long)
        self.calls: deque[RecordedCall] = deque(maxlen=MAX_RECORDED)
        self._transaction_ids = itertools.count(1)
        self._lock = threading.Lock()

    def next_transaction_id(self) -> int:
        with self._lock:
            return next(self._transaction_ids)

    def _record(self, call: RecordedCall) -> None:
        with self._lock:
            self.calls.append(call)

    def connect(self, request: ConnectionRequest, meta: Mapping[str, str]) -> ConnectionResponse:
        self._record(RecordedCall("connect", request, dict(meta)))
        return super().connect(request, meta)

    def disconnect(self, request: DisconnectRequest, meta: Mapping[str, str]) -> DisconnectResponse:
        self._record(RecordedCall("disconnect", request, dict(meta)))
        return super().disconnect(request, meta)

    def command(self, request: CommandMessage, meta: Mapping[str, str]) -> CommandResponse:
        if request.command != "message":
            self._record(RecordedCall(request.command, request, dict(meta)))
            return super().command(request, meta)
        data = json.loads(request.data)
        self._record(RecordedCall("message", request, dict(meta), data))
        log.info("demo backend: {action}", action=data.get("action"))
        log.debug("demo backend payload: {payload}", payload=_encode(data.get("payload")))
        return super().command(request, meta)
