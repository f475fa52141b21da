# -*- test-case-name: tests.test_publication -*-
"""AnyCable publications: ``{"stream","data","meta"}``, batches of them, and remote commands.

Every broadcast adapter and the cluster relay read broadcast bodies here, and the pub/sub
message that carries an item to the nodes is written here too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from twisted.logger import Logger

from ocppcable.metrics import IMetrics
from ocppcable.ocpp.framing import loads as _decode

log = Logger()

_encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


class MalformedPublication(ValueError):
    """A broadcast body that is not an AnyCable publication."""


@dataclass(frozen=True, slots=True)
class Publication:
    stream: str
    data: Any
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RemoteDisconnect:
    """``{"command":"disconnect","payload":{"identifier":…,"reconnect":…}}``."""

    identifiers: str
    reconnect: bool


Item = Publication | RemoteDisconnect


def _item(obj: Any) -> Item:
    if not isinstance(obj, dict):
        raise MalformedPublication("publication is not a JSON object")
    stream = obj.get("stream")
    if isinstance(stream, str) and stream:
        if "data" not in obj:
            raise MalformedPublication("publication has no data")
        meta = obj.get("meta")
        return Publication(stream, obj["data"], meta if isinstance(meta, dict) else {})
    if obj.get("command") == "disconnect":
        payload = obj.get("payload")
        # not "": a station whose Connect has not succeeded yet has no identifiers, and an empty
        # identifier would disconnect every such station
        if not isinstance(payload, dict) or not isinstance(payload.get("identifier"), str):
            raise MalformedPublication("disconnect command needs payload.identifier")
        if not payload["identifier"]:
            raise MalformedPublication("disconnect command has an empty payload.identifier")
        return RemoteDisconnect(payload["identifier"], bool(payload.get("reconnect", True)))
    raise MalformedPublication("publication has neither a stream nor a known command")


def parse(body: bytes | str, skipped: list[MalformedPublication] | None = None) -> list[Item]:
    """Every item in a broadcast body (an object or an array of objects).

    A bad item of a batch fails the whole body, unless ``skipped`` is given: then its error is
    appended there and the good items are returned (a batch with no good item still fails).
    """
    try:
        decoded = _decode(body.decode("utf-8") if isinstance(body, bytes) else body)
    except (ValueError, UnicodeDecodeError):
        raise MalformedPublication("broadcast is not JSON") from None
    if isinstance(decoded, list):
        if not decoded:
            raise MalformedPublication("empty batch")
        if skipped is None:
            return [_item(obj) for obj in decoded]
        items: list[Item] = []
        for obj in decoded:
            try:
                items.append(_item(obj))
            except MalformedPublication as e:
                skipped.append(e)
        if not items:
            raise MalformedPublication("no valid publication in the batch")
        return items
    return [_item(decoded)]


def accept(body: bytes | str, source: str, metrics: IMetrics) -> list[Item]:
    """The items of a broadcast body from ``source``. A body that is not a publication at all is
    counted as dropped and raises :class:`MalformedPublication`; bad items of a batch are logged
    and left out."""
    skipped: list[MalformedPublication] = []
    try:
        items = parse(body, skipped)
    except MalformedPublication:
        metrics.broadcast(source, "dropped", 0)
        raise
    if skipped:  # one line per batch, not per item: a batch may hold thousands
        log.warn(
            "dropped a malformed publication of a batch from {source}: {reason} "
            "({dropped} dropped from this batch)",
            source=source,
            reason=str(skipped[0]),
            dropped=len(skipped),
        )
    return items


def pubsub_message(item: Item, internal: str) -> tuple[str, str]:
    """The pub/sub channel and message that bring ``item`` to the nodes holding its stream;
    remote commands go on the ``internal`` channel."""
    if isinstance(item, RemoteDisconnect):
        payload = {"identifier": item.identifiers, "reconnect": item.reconnect}
        return internal, _encode({"command": "disconnect", "payload": payload})
    fields: dict[str, Any] = {"stream": item.stream, "data": item.data}
    if item.meta:
        fields["meta"] = item.meta
    return item.stream, _encode(fields)
