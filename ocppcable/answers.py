"""What a station hook may answer to a station's CALL in the backend's place.

Plain records, so that the sans-I/O session can take them (see
:meth:`ocppcable.plugin.IStationHook.call_received`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Result:
    """Answer the CALL with a CALLRESULT carrying ``payload`` (checked against the action's
    response schema like a backend's reply)."""

    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Error:
    """Answer the CALL with a CALLERROR: ``code`` is an OCPP error code of the station's
    version (another is sent as GenericError)."""

    code: str
    description: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)


#: what the session asks before the backend: ``(unique_id, action, payload)`` → an answer, or
#: None to let the backend answer
LocalAnswer = Callable[[str, str, Mapping[str, Any]], Result | Error | None]
