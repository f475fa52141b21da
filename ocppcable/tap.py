"""What twistd loads for ``twistd ocppcable``: the options and the service maker."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from ocppcable.options import Options

if TYPE_CHECKING:
    from ocppcable.service import Gateway

__all__ = ["Options", "makeService"]


def makeService(config: Options) -> Gateway:
    """The gateway plus the signal handling a twistd-run process needs."""
    # imported here, not with the options: a configuration mistake or --help is reported
    # without first importing the whole gateway (WebSocket, gRPC, Redis clients)
    from twisted.internet import reactor

    from ocppcable import logs, service
    from ocppcable.shutdown import SignalShutdown

    gateway = service.makeService(config, reactor)
    shutdown: Any = SignalShutdown(reactor)
    shutdown.setServiceParent(gateway)
    # always, so that --log-level applies to the default text format too
    if config["log-format"] == "json":
        sink = logs.JSONLines(sys.stdout)
    else:
        sink = logs.twistd_text_observer(getattr(config, "parent", None))
    gateway.log_observer = logs.filtered(sink, config["log-level"])
    return gateway
