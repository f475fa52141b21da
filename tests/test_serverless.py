"""The station flows over HTTP RPC against a backend we did not write: AnyCable's own
``@anycable/serverless-js`` behind Node's ``http`` server (``tests/js/backend.mjs``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol

from ocppcable import keys
from tests.support import CHARGING_ACTIONS, TIMEOUT, aio, charging_session, open_station, wait_for

JS = Path(__file__).parent / "js"
SECRET = "s3cret"
RPC_KEY = keys.derive(SECRET, keys.RPC_PHRASE)


@pytest.fixture(scope="session")
def serverless_js(tmp_path_factory) -> Path:
    """A directory with tests/js and its npm dependencies installed (npm caches the package)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("Node.js and npm are not installed: the serverless-js backend needs them")
    directory = tmp_path_factory.mktemp("serverless-js")
    for name in ("package.json", "backend.mjs"):
        shutil.copy(JS / name, directory / name)
    result = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode:
        pytest.fail(f"npm install of tests/js failed:\n{result.stderr}")
    return directory


class NodeBackend(ProcessProtocol):
    """``node backend.mjs``: its port, and every RPC request it logged."""

    def __init__(self) -> None:
        self.ready: Deferred[int] = Deferred()
        self.ended: Deferred[None] = Deferred()
        self.requests: list[dict[str, Any]] = []
        self.errors = b""
        self._buffer = b""

    def outReceived(self, data: bytes) -> None:
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            event = json.loads(line)
            if event.get("ready"):
                self.ready.callback(event["port"])
            else:
                self.requests.append(event)

    def errReceived(self, data: bytes) -> None:
        self.errors += data

    def processEnded(self, reason: Any) -> None:
        if not self.ready.called:
            self.ready.errback(RuntimeError(f"node backend did not start: {self.errors!r}"))
        self.ended.callback(None)

    def of(self, method: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == method]


@pytest.fixture
def node_backend(reactor, serverless_js):
    backend = NodeBackend()
    process = reactor.spawnProcess(
        backend,
        shutil.which("node"),
        ["node", "backend.mjs", RPC_KEY],
        env=dict(os.environ),
        path=str(serverless_js),
    )
    port = pytest_twisted.blockon(backend.ready.addTimeout(TIMEOUT, reactor))
    backend.url = f"http://127.0.0.1:{port}/_anycable"
    yield backend
    process.closeStdin()  # the script exits when its stdin ends
    pytest_twisted.blockon(backend.ended.addTimeout(TIMEOUT, reactor))


@pytest_twisted.ensureDeferred
async def test_charging_session_over_serverless_js(start_gateway, node_backend, reactor):
    gateway = await start_gateway(
        f"--rpc-host={node_backend.url}", f"--secret={SECRET}", "--broadcast-adapter=http"
    )
    conn = await aio(open_station(gateway.url("CP-1"), "CP-1"))
    await aio(charging_session(conn.station))
    await aio(conn.close())
    await wait_for(lambda: node_backend.of("disconnect"), reactor)

    commands = [r["body"] for r in node_backend.of("command")]
    assert commands[0]["command"] == "subscribe"
    actions = [json.loads(c["data"])["action"] for c in commands if c["command"] == "message"]
    assert actions == CHARGING_ACTIONS
    sids = {r["headers"]["x-anycable-meta-sid"] for r in node_backend.requests}
    assert len(sids) == 1 and all(sids)
    for seen in node_backend.requests:
        assert seen["headers"]["authorization"] == f"Bearer {RPC_KEY}"
        assert seen["headers"]["content-type"] == "application/json"
    disconnect = node_backend.of("disconnect")[0]["body"]
    assert json.loads(disconnect["identifiers"]) == {"station_id": "CP-1"}
    assert disconnect["subscriptions"] == [commands[0]["identifier"]]
