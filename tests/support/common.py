"""What every helper shares: timeouts, the checkout's root, the installed ``twistd``, a free
port, and waiting on the reactor."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred

TIMEOUT = 10.0

#: how long a test waits for a ``twistd`` to start, fail or stop: generous, since a loaded
#: 2-core machine takes seconds where an idle one takes one; each wait ends at its event
PROCESS_TIMEOUT = 60.0

#: the checkout's root directory
ROOT = Path(__file__).resolve().parents[2]

#: the installed ``twistd`` script, next to this Python
TWISTD = [str(Path(sys.executable).with_name("twistd"))]


def aio(coro: Coroutine[Any, Any, Any], timeout: float = PROCESS_TIMEOUT) -> Deferred[Any]:
    """Await an asyncio coroutine from Twisted code (the asyncio reactor is installed).

    Bounded, so that a reply that never comes fails its own test with a ``TimeoutError``
    instead of hanging until pytest-timeout ends the whole run."""
    return Deferred.fromFuture(asyncio.ensure_future(asyncio.wait_for(coro, timeout)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_for(predicate: Callable[[], Any], reactor: Any, timeout: float = TIMEOUT) -> Any:
    """Poll ``predicate`` on the reactor until it returns something truthy."""
    from twisted.internet.task import deferLater

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {predicate}")
        await deferLater(reactor, 0.02, lambda: None)


class LocalServer:
    """A server binary a test runs on a free loopback port: started, waited for, stopped."""

    process: subprocess.Popen[bytes] | None = None

    def _run(self, argv: list[str], ready: Callable[[], bool]) -> None:
        """Start ``argv`` and wait until ``ready()`` (an ``OSError`` counts as not yet)."""
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            try:
                if ready():
                    return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"{Path(argv[0]).name} did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(TIMEOUT)
            self.process = None
