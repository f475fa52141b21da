"""One Redis connection for the data the nodes share (the call API's presence and queue).

Commands on it are ordinary request/reply commands and Lua scripts; pub/sub has connections of
its own. Like every Redis connection of the gateway it is watched by the node's
:class:`~ocppcable.redis_connection.RedisLink`, reconnects with backoff, and a command fails
after :data:`COMMAND_TIMEOUT` seconds rather than wait for Redis forever.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import txredisapi
from twisted.internet.defer import Deferred, TimeoutError, fail
from twisted.python.failure import Failure

from ocppcable.api.interfaces import Unavailable
from ocppcable.redis_connection import LazyConnection

#: seconds a command may wait (txredisapi queues commands while Redis is away)
COMMAND_TIMEOUT = 5.0


class RedisStore(LazyConnection):
    """A lazy connection to Redis for commands and scripts."""

    name = "redis-store"

    def execute(self, *args: Any) -> Deferred[Any]:
        """One command, e.g. ``execute("GET", key)``; fails with
        :class:`~ocppcable.api.interfaces.Unavailable` when Redis cannot be reached."""
        if self._factory is None:
            return fail(Unavailable("Redis: the gateway is stopping"))
        d = self._factory.handler.execute_command(*args)
        return d.addTimeout(COMMAND_TIMEOUT, self.reactor).addErrback(_unavailable)

    def script(self, script: str, keys: Sequence[str], args: Sequence[Any]) -> Deferred[Any]:
        """A Lua script (sent once, then run by its hash); fails like :meth:`execute`."""
        if self._factory is None:
            return fail(Unavailable("Redis: the gateway is stopping"))
        d = self._factory.handler.eval(script, list(keys), [str(a) for a in args])
        return d.addTimeout(COMMAND_TIMEOUT, self.reactor).addErrback(_unavailable)


def _unavailable(failure: Failure) -> Failure:
    if failure.check(txredisapi.ConnectionError, TimeoutError):
        raise Unavailable(f"Redis: {failure.getErrorMessage() or 'no reply'}")
    return failure
