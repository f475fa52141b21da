"""Log observers for ``--log-format`` and ``--log-level``.

twistd picks its log observer after the service is made: an application component
``ILogObserver`` wins over its default file observer, so :class:`~ocppcable.service.Gateway`
always installs the one built here, filtered by ``--log-level`` (twistd's own ``--logger`` still
overrides it). Text goes where twistd itself would write it (``--logfile``, ``--syslog``,
stdout with ``-n``); JSON goes to stdout.
"""

from __future__ import annotations

import json
import sys
from typing import IO, Any

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LegacyLogObserverWrapper,
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


def twistd_text_observer(twistd_options: Any) -> ILogObserver:
    """The text observer twistd would install for its own ``twistd_options`` (the parent of
    ours; None outside twistd: stdout)."""
    if twistd_options is None:
        return textFileLogObserver(sys.stdout)
    from twisted.scripts.twistd import _SomeApplicationRunner

    # twistd's own choice of file, syslog or stdout (and its SIGUSR1 rotation), reused
    sink = _SomeApplicationRunner.loggerFactory(twistd_options)._getLogObserver()
    return sink if ILogObserver.providedBy(sink) else LegacyLogObserverWrapper(sink)


def filtered(sink: ILogObserver, level: str) -> ILogObserver:
    """``sink`` seeing only events from ``level`` up."""
    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.levelWithName(level))
    return FilteringLogObserver(sink, [predicate])
