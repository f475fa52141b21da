# -*- test-case-name: tests.test_websocket, tests.test_e2e_identity -*-
"""What a station's WebSocket upgrade must be, and the ``env`` built from it: the station id in
the path, the subprotocol, a plain Host, the headers forwarded to the backend and the URL it
sees (docs/contract.md, "Endpoints" and "Identifiers and env"). Plain functions, no I/O: the
transport (:mod:`ocppcable.websocket`) asks them and refuses the upgrade when they say no.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Container, Iterable, Mapping, Sequence
from urllib.parse import unquote, urlsplit

STATION_ID = re.compile(r"[A-Za-z0-9._:-]{1,48}\Z")

#: a Host header we put in env.url: a DNS name or IPv4 address, or a bracketed IPv6 literal,
#: and an optional port; nothing that could add a path, query or user part to the URL
PLAIN_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?\Z"
)

#: env.headers entry stating the station id the gateway serves (the identifier's ``id``)
STATION_ID_HEADER = "x-ocpp-station-id"

#: characters of a station's X-Request-Id kept for the connection's log line
MAX_REQUEST_ID = 64

#: env.headers entry carrying the subject CN of a station's client certificate (mTLS)
CLIENT_CERT_HEADER = "x-client-cert-cn"


def bounded_request_id(value: str | None) -> str:
    """A station's X-Request-Id for logs only: printable ASCII, at most :data:`MAX_REQUEST_ID`
    characters ("" when absent)."""
    if not value:
        return ""
    return "".join(c for c in value[:MAX_REQUEST_ID] if " " <= c <= "~")


def new_sid() -> str:
    """A 21-character URL-safe session id (nanoid-sized, as AnyCable's)."""
    return secrets.token_urlsafe(16)[:21]


def station_id_in(prefix: str, path: str) -> str | None:
    """The station id in a request path under ``prefix``, or None when the path is not a
    station's."""
    if not path.startswith(prefix):
        return None
    station_id = unquote(path[len(prefix) :])
    if station_id in (".", "..") or not STATION_ID.match(station_id):
        return None  # dot segments would make env.url name another path once normalized
    return station_id


def first_served(served: Container[str], offered: Iterable[str]) -> str | None:
    """The first subprotocol the station offered that is ``served``."""
    for subprotocol in offered:
        if subprotocol in served:
            return subprotocol
    return None


def station_env(
    *,
    secure: bool,
    host: str,
    prefix: str,
    station_id: str,
    request_uri: str,
    headers: Mapping[str, str],
    forward_headers: Sequence[str],
    peer: str,
    subprotocol: str,
    common_name: str | None,
) -> tuple[str, dict[str, str]]:
    """The session's ``env.url`` and ``env.headers`` for an accepted upgrade."""
    forwarded = {name: headers[name] for name in forward_headers if headers.get(name)}
    forwarded["REMOTE_ADDR"] = peer
    forwarded["sec-websocket-protocol"] = subprotocol
    forwarded[STATION_ID_HEADER] = station_id
    if common_name is not None:
        forwarded[CLIENT_CERT_HEADER] = common_name
    query = urlsplit(request_uri).query
    scheme = "https" if secure else "http"
    # the path we routed, with the id as we use it: never the request's own spelling
    url = f"{scheme}://{host}{prefix}{station_id}" + (f"?{query}" if query else "")
    return url, forwarded
