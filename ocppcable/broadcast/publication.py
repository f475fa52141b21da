"""AnyCable publications: ``{"stream","data","meta"}``, batches of them, and remote commands."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ocppcable.ocpp.framing import loads as _decode


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
        if not isinstance(payload, dict) or not isinstance(payload.get("identifier"), str):
            raise MalformedPublication("disconnect command needs payload.identifier")
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
