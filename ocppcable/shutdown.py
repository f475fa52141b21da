"""Signal handling for ``twistd ocppcable``: SIGTERM/SIGINT stop gracefully and exit 0.

twistd's own handlers make the process die of the signal once the reactor stops (exit status
-15). Operators expect a drained, clean exit instead (docs/operations.md): the first signal stops the
reactor (every service's stopService runs and is waited for), a second one exits at once.
"""

from __future__ import annotations

import os
import signal
from types import FrameType
from typing import Any

from twisted.application.service import Service
from twisted.logger import Logger

log = Logger()

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class SignalShutdown(Service):
    name = "signals"

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self._stopping = False

    def startService(self) -> None:
        super().startService()
        # the reactor installs its own handlers while starting up: replace them afterwards
        self.reactor.addSystemEventTrigger("after", "startup", self._install)

    def _install(self) -> None:
        for signum in SIGNALS:
            signal.signal(signum, self._received)

    def _received(self, signum: int, frame: FrameType | None) -> None:
        if self._stopping:
            os._exit(128 + signum)  # second signal: no more waiting
        self._stopping = True
        log.info("received {signal}: shutting down", signal=signal.Signals(signum).name)
        self.reactor.callFromThread(self.reactor.stop)
