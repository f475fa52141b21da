"""A small AnyCable application with an ``OCPPChannel``, written in Python.

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
from urllib.parse import unquote, urlsplit

from twisted.logger import Logger

from ocppcable.protos.rpc_pb2 import (
    SUCCESS,
    CommandMessage,
    CommandResponse,
    ConnectionRequest,
    ConnectionResponse,
    DisconnectRequest,
    DisconnectResponse,
    EnvResponse,
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


class OCPPApplication:
    """Connection + OCPPChannel, as AnyCable RPC handlers over protobuf messages.

    Thread-safe: a gRPC server calls it from its worker threads.
    """

    def __init__(self, id_tags: Iterable[str] | None = None, heartbeat_interval: int = 60) -> None:
        #: idTags that authorize; None accepts any
        self.id_tags = None if id_tags is None else frozenset(id_tags)
        self.heartbeat_interval = heartbeat_interval
        #: the latest calls, for tests and for looking around (bounded: the demo may run long)
        self.calls: deque[RecordedCall] = deque(maxlen=MAX_RECORDED)
        self._transaction_ids = itertools.count(1)
        self._lock = threading.Lock()

    def _record(self, call: RecordedCall) -> None:
        with self._lock:
            self.calls.append(call)

    # --- Connection ------------------------------------------------------------------------------

    def connect(self, request: ConnectionRequest, meta: Mapping[str, str]) -> ConnectionResponse:
        self._record(RecordedCall("connect", request, dict(meta)))
        station_id = unquote(urlsplit(request.env.url).path.rsplit("/", 1)[-1])
        log.info("demo backend: Connect from {station_id}", station_id=station_id)
        return ConnectionResponse(
            status=SUCCESS,
            identifiers=_encode({"station_id": station_id}),
            transmissions=[_encode({"type": "welcome", "sid": meta.get("sid", "")})],
        )

    def disconnect(self, request: DisconnectRequest, meta: Mapping[str, str]) -> DisconnectResponse:
        self._record(RecordedCall("disconnect", request, dict(meta)))
        log.info("demo backend: Disconnect {identifiers}", identifiers=request.identifiers)
        return DisconnectResponse(status=SUCCESS)

    # --- OCPPChannel -----------------------------------------------------------------------------

    def command(self, request: CommandMessage, meta: Mapping[str, str]) -> CommandResponse:
        if request.command == "subscribe":
            self._record(RecordedCall("subscribe", request, dict(meta)))
            return self.subscribed(request)
        if request.command == "unsubscribe":
            self._record(RecordedCall("unsubscribe", request, dict(meta)))
            return CommandResponse(status=SUCCESS, stop_streams=True)
        data = json.loads(request.data)
        self._record(RecordedCall("message", request, dict(meta), data))
        log.info("demo backend: {action}", action=data.get("action"))
        log.debug("demo backend payload: {payload}", payload=_encode(data.get("payload")))
        handler = getattr(self, "on_" + str(data.get("action")), None)
        params = json.loads(request.identifier)
        reply = handler(data, params.get("protocol", "ocpp1.6")) if handler is not None else None
        if reply is None:
            return CommandResponse(status=SUCCESS)
        return CommandResponse(
            status=SUCCESS,
            transmissions=[
                _encode(
                    {
                        "identifier": request.identifier,
                        "message": {"command": "Ack", "id": data["id"], "payload": reply},
                    }
                )
            ],
        )

    def subscribed(self, request: CommandMessage) -> CommandResponse:
        params = json.loads(request.identifier)
        streams = [f"ocpp:ev/{params['id']}"]
        if params.get("sn") and params["sn"] != params["id"]:
            streams.append(f"ocpp:ev/{params['sn']}")
        confirm = _encode({"identifier": request.identifier, "type": "confirm_subscription"})
        return CommandResponse(
            status=SUCCESS,
            streams=streams,
            transmissions=[confirm],
            env=EnvResponse(istate={"station_id": params["id"]}),
        )

    def _id_tag_info(self, id_tag: Any) -> dict[str, str]:
        accepted = self.id_tags is None or id_tag in self.id_tags
        return {"status": "Accepted" if accepted else "Invalid"}

    # Handlers get the perform data and the station's OCPP version ("protocol" in the channel
    # identifier; absent for 1.6) and return an Ack payload, or None for the default reply.

    def on_boot_notification(self, data: dict[str, Any], protocol: str) -> dict[str, Any]:
        return {"status": "Accepted", "currentTime": _now(), "interval": self.heartbeat_interval}

    def on_authorize(self, data: dict[str, Any], protocol: str) -> dict[str, Any]:
        payload = data["payload"]
        if protocol == "ocpp1.6":
            return {"idTagInfo": self._id_tag_info(payload.get("idTag"))}
        return {"idTokenInfo": self._id_tag_info(payload.get("idToken", {}).get("idToken"))}

    def on_start_transaction(self, data: dict[str, Any], protocol: str) -> dict[str, Any]:
        return {
            "transactionId": next(self._transaction_ids),
            "idTagInfo": self._id_tag_info(data["payload"].get("idTag")),
        }

    def on_transaction_event(self, data: dict[str, Any], protocol: str) -> dict[str, Any] | None:
        """2.x: a transaction started with an idToken gets that token's status."""
        id_token = data["payload"].get("idToken")
        if data["payload"].get("eventType") != "Started" or not id_token:
            return None
        return {"idTokenInfo": self._id_tag_info(id_token.get("idToken"))}
