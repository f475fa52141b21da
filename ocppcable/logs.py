"""Log observers for ``--log-format`` and ``--log-level``.

twistd picks its log observer after the service is made: an application component
``ILogObserver`` wins over its default file observer, so :class:`~ocppcable.service.Gateway`
installs the one built here when the options ask for anything but twistd's defaults (twistd's
own ``--logger`` still overrides it).
"""

from __future__ import annotations

import json
from typing import IO, Any

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    textFileLogObserver,
)
from zope.interface import implementer

#: event keys that are Twisted's bookkeeping, not fields worth shipping
_INTERNAL = frozenset({"message", "format", "time", "isError", "system", "why", "failure"})


@implementer(ILogObserver)
class JSONLines:
    """One flat JSON object per event: ``ts``, ``level``, ``ns``, ``msg``, then the event's own
    fields (``station_id``, ``action``, …) and ``exc`` for failures."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def __call__(self, event: dict[str, Any]) -> None:
        level = event.get("log_level")
        record: dict[str, Any] = {
            "ts": round(event.get("log_time", 0.0), 6),
            "level": level.name if level is not None else "info",
            "ns": event.get("log_namespace"),
            "msg": formatEvent(event),
        }
        for key, value in event.items():
            if not key.startswith("log_") and key not in _INTERNAL:
                record[key] = value
        failure = event.get("log_failure") or event.get("failure")
        if failure is not None:
            record["exc"] = failure.getTraceback()
        self.out.write(json.dumps(record, default=repr) + "\n")
        self.out.flush()


def observer(log_format: str, level: str, out: IO[str]) -> ILogObserver:
    """An observer writing ``log_format`` ("text" or "json") to ``out`` from ``level`` up."""
    sink = JSONLines(out) if log_format == "json" else textFileLogObserver(out)
    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.levelWithName(level))
    return FilteringLogObserver(sink, [predicate])
