"""Processes run as operators run them: ``twistd`` with its output read off the reactor, and
README commands run by bash."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred

from tests.support.common import PROCESS_TIMEOUT, TWISTD


def twistd(*args: str, **kwargs: Any) -> subprocess.Popen[str]:
    """``twistd -n ocppcable *args`` as operators run it, its output on ``stdout``."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [*TWISTD, "-n", "--pidfile=", "ocppcable", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        **kwargs,
    )


async def read_line(
    process: subprocess.Popen[str], reactor: Any, timeout: float = PROCESS_TIMEOUT
) -> str:
    """One line of ``process``'s output ("" at its end), read in a thread so that the reactor
    runs meanwhile (a readline on the reactor would freeze it, and the test's own deadline,
    while the process says nothing); raises ``TimeoutError`` past ``timeout``."""
    from twisted.internet.threads import deferToThread

    assert process.stdout is not None
    reading: Deferred[str] = deferToThread(process.stdout.readline)
    reading.addTimeout(timeout, reactor)
    return await reading


async def wait_output(
    process: subprocess.Popen[str],
    reactor: Any,
    text: str = "ocppcable serving OCPP",
    timeout: float = PROCESS_TIMEOUT,
) -> list[str]:
    """The lines ``process`` writes up to the first that holds ``text`` (by default, up to a
    started gateway's banner); fails if it ends first or says nothing of it within ``timeout``."""
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    while not lines or text not in lines[-1]:
        line = await read_line(process, reactor, max(0.0, deadline - time.monotonic()))
        assert line, f"the process ended before {text!r}: {''.join(lines)[-2000:]}"
        lines.append(line)
    return lines


async def wait_exit(
    process: subprocess.Popen[str], reactor: Any, timeout: float = PROCESS_TIMEOUT
) -> int:
    """``process``'s exit code, waited for in a thread (the reactor runs meanwhile)."""
    from twisted.internet.threads import deferToThread

    return await deferToThread(process.wait, timeout)


class Process:
    """A README command run by bash in its own process group, its output collected line by
    line (stdout and stderr together)."""

    def __init__(self, command: str, cwd: Path, env: dict[str, str]) -> None:
        self.command = command
        self.popen = subprocess.Popen(
            ["bash", "-c", command],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._new: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.popen.stdout:
            self.lines.append(line)
            self._new.put(line)
        self._new.put(None)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str | re.Pattern[str], timeout: float) -> re.Match[str]:
        """Wait until a line matches ``pattern``; fails (with the output) on exit or timeout."""
        pattern = re.compile(pattern) if isinstance(pattern, str) else pattern
        for line in self.lines:
            if found := pattern.search(line):
                return found
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._new.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                pytest.fail(f"exited ({self.popen.wait()}) before {pattern.pattern!r}:\n{self}")
            if found := pattern.search(line):
                return found
        pytest.fail(f"no {pattern.pattern!r} within {timeout:.0f} s:\n{self}")

    def finish(self, timeout: float) -> int:
        code = self.popen.wait(timeout)
        self._reader.join(timeout)
        return code

    def kill(self) -> None:
        """Kill whatever is left of the process group (cleanup after a failure)."""
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.popen.wait(10)

    def __str__(self) -> str:
        return f"$ {self.command}\n" + "".join(self.lines[-60:])
