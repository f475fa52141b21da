"""The retry rule (issue 12 item 10): an RPC is tried again only when it surely did not reach
the backend's handlers; the transports say so with ``NotSent``."""

from __future__ import annotations

import threading
import time
from typing import Any

import grpc
import pytest
import pytest_twisted
from twisted.python.failure import Failure

from ocppcable.protos.rpc_pb2 import SUCCESS, CommandMessage, CommandResponse
from ocppcable.rpc import grpc_client, http_client
from ocppcable.rpc.grpc_client import GRPCClient
from ocppcable.rpc.grpc_server import serve
from ocppcable.rpc.http1 import BadResponse, ConnectionLost, RequestNotSent, TLSFailed
from ocppcable.rpc.interface import RPCUnavailable
from ocppcable.rpc.policy import NotSent
from tests.support import TIMEOUT, free_port


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


REFUSED = (
    "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: "
    "Failed to connect to remote host: Connection refused"
)


@pytest.mark.parametrize(
    ("code", "details", "backoff"),
    [
        (grpc.StatusCode.UNAVAILABLE, REFUSED, 0.1),
        (grpc.StatusCode.UNAVAILABLE, "errors resolving no-such-host.invalid:5000: …", 0.1),
        (grpc.StatusCode.UNAVAILABLE, "DNS resolution failed for no-such-host", 0.1),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "No free threads in thread pool", 0.01),
        # may have reached the backend: a dropped stream, a server going away mid-call, a deadline
        (grpc.StatusCode.UNAVAILABLE, "Stream removed (Socket closed)", None),
        (grpc.StatusCode.UNAVAILABLE, "Cancelling all calls", None),
        (grpc.StatusCode.UNAVAILABLE, "recvmsg:Connection reset by peer", None),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", None),
        (grpc.StatusCode.INTERNAL, "boom", None),
        (grpc.StatusCode.CANCELLED, "", None),
    ],
)
def test_grpc_errors(code: grpc.StatusCode, details: str, backoff: float | None) -> None:
    error = FakeRpcError(code, details)
    if backoff is None:
        assert grpc_client._not_sent(Failure(error)).value is error
    else:
        with pytest.raises(NotSent) as info:
            grpc_client._not_sent(Failure(error))
        assert (info.value.cause, info.value.backoff) == (error, backoff)


@pytest.mark.parametrize(
    ("error", "not_sent"),
    [
        (RequestNotSent("Connection refused"), True),
        (RequestNotSent("the backend closed the connection"), True),
        (ConnectionLost("after the request was written"), False),
        (TLSFailed("certificate verify failed"), False),
        (BadResponse("not HTTP/1.1"), False),
        (RPCUnavailable("status 500"), False),
    ],
    ids=repr,
)
def test_http_errors(error: Exception, not_sent: bool) -> None:
    if not_sent:
        with pytest.raises(NotSent):
            http_client._not_sent(Failure(error))
    else:
        assert http_client._not_sent(Failure(error)).value is error


class App:
    """Records every Command it handles; ``on_command`` runs in the handler."""

    def __init__(self) -> None:
        self.commands: list[Any] = []
        self.on_command = lambda: None

    def command(self, request: Any, meta: Any) -> Any:
        self.commands.append(request)
        self.on_command()
        return CommandResponse(status=SUCCESS)


@pytest_twisted.ensureDeferred
async def test_grpc_call_refused_until_the_backend_starts_is_retried(reactor):
    app, port = App(), free_port()
    client = GRPCClient(reactor, f"127.0.0.1:{port}", 4, timeout=TIMEOUT)
    client.startService()
    servers: list[Any] = []
    try:
        call = client.command("sid-1", CommandMessage(command="message"))
        # the first attempt is refused (nothing listens); then the backend comes up
        reactor.callLater(0.3, lambda: servers.append(serve(app, f"127.0.0.1:{port}")[0]))
        response = await call.addTimeout(TIMEOUT + 1, reactor)
    finally:
        await client.stopService()
        for server in servers:
            server.stop(None)
    assert response.status == SUCCESS and len(app.commands) == 1


@pytest_twisted.ensureDeferred
async def test_grpc_call_dropped_after_the_backend_got_it_is_not_retried(reactor):
    app = App()
    server, port = serve(app)
    stopped = threading.Event()

    def stop_mid_call() -> None:  # the backend goes away while handling the call
        threading.Thread(target=lambda: (server.stop(None).wait(), stopped.set())).start()
        stopped.wait(TIMEOUT)

    app.on_command = stop_mid_call
    client = GRPCClient(reactor, f"127.0.0.1:{port}", 4, timeout=TIMEOUT)
    client.startService()
    try:
        started = time.monotonic()
        with pytest.raises(RPCUnavailable) as info:
            await client.command("sid-1", CommandMessage(command="message")).addTimeout(
                TIMEOUT + 1, reactor
            )
        # the error of the one attempt, at once: not "failed to connect" after retrying
        assert "UNAVAILABLE" in str(info.value) and "connect" not in str(info.value)
        assert time.monotonic() - started < 1.5
    finally:
        await client.stopService()
        server.stop(None)
    assert len(app.commands) == 1
