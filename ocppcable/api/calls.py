# -*- test-case-name: tests.test_call_api -*-
"""Carrying out API calls: a command for a connected station is handed to its session and the
request waits for the answer; one for an offline station is queued (``ttl`` > 0) and delivered,
in order and one at a time, when the station's next session starts.

Where a station is, how a command reaches it and where queued commands wait are the
:mod:`ocppcable.api.interfaces` plug points; this module only decides what happens when.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, DeferredList, ensureDeferred
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from ocppcable.api.interfaces import (
    ICommandQueue,
    IPresence,
    IRouter,
    QueuedCommand,
    Unavailable,
)
from ocppcable.api.models import Answer, CallRequest, Limits, Outcome
from ocppcable.api.streams import StreamMemory
from ocppcable.api.validate import command_errors
from ocppcable.cable import MalformedMessage, decode_broadcast
from ocppcable.commands import CommandEnded, Ending, ICallTracker, RemoteCommand, ttl_of
from ocppcable.metrics import IMetrics, NoMetrics
from ocppcable.ocpp import framing
from ocppcable.ocpp.catalog import Catalog
from ocppcable.ocpp.validation import Validator

log = Logger()

#: what the ``#ack``/``#error`` data of an API command says it came from
SOURCE = "api"

#: seconds between two looks for expired queued commands
SWEEP_INTERVAL = 1.0


@dataclass(frozen=True)
class _Track:
    """What a command handed to a session is for."""

    station_id: str
    #: it came out of the queue (else it came straight from a request)
    queued: bool
    #: clock time until which it may wait in the queue (0: it may not)
    expires_at: float = 0.0
    key: str | None = None


def answer_for(station_id: str, ended: CommandEnded) -> Answer:
    """The API answer for a command that ended in a session."""
    command = ended.command
    base = (station_id, command.unique_id, command.action)
    if ended.ending is Ending.RESULT:
        return Answer(*base, Outcome.RESULT, payload=ended.payload)
    if ended.ending is Ending.INVALID:
        return Answer(*base, Outcome.INVALID, errors=[ended.description])
    if ended.ending is Ending.UNSENT and ended.code is None:  # kept: it waits in the queue
        return Answer(*base, Outcome.QUEUED)
    return Answer(
        *base,
        Outcome.ERROR,
        code=ended.code,
        description=ended.description,
        details=ended.payload if isinstance(ended.payload, dict) else {},
    )


@implementer(ICallTracker)
class CallService(MultiService):
    """The call API's engine; a child of the gateway (it sweeps the queue while running). Its
    own children are what its presence, routing and queue need running (Redis connections).

    Tokens name the node (``<n>@<node>``): a command another node handed to a session here
    ends there (:meth:`IRouter.return_ended`)."""

    name = "call-api"
    #: where the API is served, for the start-up log line
    description = ""

    def __init__(
        self,
        reactor: Any,
        presence: IPresence,
        router: IRouter,
        queue: ICommandQueue,
        catalogs: Mapping[str, Catalog],
        validators: Mapping[str, Validator],
        limits: Limits,
        metrics: IMetrics | None = None,
        node: str = "local",
    ) -> None:
        super().__init__()
        self.reactor = reactor
        self.node = node
        self.presence = presence
        self.router = router
        self.queue = queue
        self.catalogs = catalogs
        self.validators = validators
        self.limits = limits
        self.metrics = metrics or NoMetrics()
        #: token → what the command handed to a session is for
        self._tracks: dict[str, _Track] = {}
        #: token → the request waiting for that command's answer
        self._waiting: dict[str, Deferred[Answer]] = {}
        self._tokens = itertools.count(1)
        #: the streams of stations gone offline, for broadcasts with a ttl
        self.streams = StreamMemory(limits.max_queued, limits.max_batch)
        self._sweeper = LoopingCall(self._sweep_once)
        self._sweeper.clock = reactor

    @property
    def waiting(self) -> int:
        """Requests waiting for a station's answer."""
        return len(self._waiting)

    def startService(self) -> None:
        super().startService()
        if self.description:
            log.info("call API: {description}", description=self.description)
        self._sweeper.start(SWEEP_INTERVAL, now=False).addErrback(
            lambda f: log.failure("the queue sweep stopped", f)
        )

    def stopService(self) -> Any:
        if self._sweeper.running:
            self._sweeper.stop()
        return super().stopService()

    # --- requests ---------------------------------------------------------------------------

    async def call(self, station_id: str, request: CallRequest) -> Answer:
        """Carry out ``request`` for one station; the answer is counted by outcome."""
        answer = await self._call(station_id, request)
        self.metrics.api_call(str(answer.outcome))
        return answer

    async def batch(self, stations: list[str], request: CallRequest) -> dict[str, Answer]:
        """The same call for several stations at once, each answered on its own."""
        calls = [ensureDeferred(self.call(station, request)) for station in stations]
        results = await DeferredList(calls, consumeErrors=True)
        answers = {}
        for station, (ok, value) in zip(stations, results, strict=True):
            if not ok:
                raise value.value  # a bug: the resource logs it and answers 500
            answers[station] = value
        return answers

    async def _call(self, station_id: str, request: CallRequest) -> Answer:
        unique_id = str(uuid.uuid4())

        def answer(outcome: Outcome, **fields: Any) -> Answer:
            return Answer(station_id, unique_id, request.action, outcome, **fields)

        info = await self.presence.lookup(station_id)
        protocol = None if info is None else info.protocol
        errors = command_errors(
            request.action, request.payload, protocol, self.catalogs, self.validators
        )
        if errors:
            return answer(Outcome.INVALID, errors=errors)
        if info is None and request.ttl <= 0:
            return answer(Outcome.OFFLINE)
        if request.wait > 0 and info is not None and self.waiting >= self.limits.max_waiting:
            return answer(
                Outcome.REFUSED,
                errors=[f"{self.limits.max_waiting} requests already wait for stations"],
            )
        if request.key is not None and request.ttl > 0:
            earlier = await self.queue.claim(station_id, request.key, unique_id, request.ttl)
            if earlier is not None:
                outcome = Outcome.QUEUED if earlier.queued else Outcome.SENT
                return Answer(station_id, earlier.unique_id, request.action, outcome)
        command = RemoteCommand(
            unique_id, request.action, request.payload, source=SOURCE, ttl=request.ttl
        )
        if info is None:
            return await self._enqueue(station_id, command, request)
        expires_at = self.reactor.seconds() + request.ttl if request.ttl > 0 else 0.0
        token = self._token(_Track(station_id, False, expires_at, request.key))
        waiter: Deferred[Answer] = Deferred()
        self._waiting[token] = waiter  # before delivery: the session may answer at once
        delivered = await self.router.deliver(station_id, replace(command, token=token))
        if not delivered:  # gone in between
            del self._tracks[token]
            self._waiting.pop(token, None)
            if request.ttl <= 0:
                return answer(Outcome.OFFLINE)
            return await self._enqueue(station_id, command, request)
        if waiter.called or request.wait > 0:
            return await self._wait(token, waiter, request.wait, answer(Outcome.TIMEOUT))
        del self._waiting[token]
        return answer(Outcome.SENT)

    async def _enqueue(
        self, station_id: str, command: RemoteCommand, request: CallRequest
    ) -> Answer:
        expires_at = self.reactor.seconds() + request.ttl
        entry = QueuedCommand(station_id, command, expires_at, request.key)
        base = (station_id, command.unique_id, command.action)
        if not await self.queue.put(entry):
            if request.key is not None:
                await self.queue.unclaim(station_id, request.key)
            full = f"the queue for {station_id} is full ({self.limits.max_queue} commands, "
            full += f"{self.limits.max_queued} for all stations)"
            return Answer(*base, Outcome.REFUSED, errors=[full])
        return Answer(*base, Outcome.QUEUED)

    def _wait(
        self, token: str, waiter: Deferred[Answer], seconds: float, timeout: Answer
    ) -> Deferred[Answer]:
        """The answer, or ``timeout`` after ``seconds`` (the command stays with its session:
        its late answer still reaches the backend)."""
        if waiter.called:
            return waiter
        timer: IDelayedCall = self.reactor.callLater(seconds, self._time_out, token, timeout)
        return waiter.addBoth(lambda result: (timer.active() and timer.cancel(), result)[1])

    def _time_out(self, token: str, timeout: Answer) -> None:
        waiter = self._waiting.pop(token, None)
        if waiter is not None:
            waiter.callback(timeout)

    def _token(self, track: _Track) -> str:
        token = f"{next(self._tokens)}@{self.node}"
        self._tracks[token] = track
        return token

    # --- what sessions tell ------------------------------------------------------------------

    def ended(self, station_id: str, ended: CommandEnded) -> None:
        command = ended.command
        track = self._tracks.pop(command.token, None) if command.token else None
        if track is None and command.token and command.token.rpartition("@")[2] != self.node:
            self._run(self.router.return_ended(station_id, ended))  # routed here by another node
            return
        if track is None:  # a broadcast or transmission with a ttl
            if ended.ending is Ending.UNSENT and command.ttl > 0:
                ttl = min(command.ttl, self.limits.max_ttl)
                self._requeue(station_id, command, self.reactor.seconds() + ttl, None)
            return
        if track.queued:
            self._queued_ended(station_id, command, ended)
            return
        waiter = self._waiting.pop(command.token or "", None)
        if track.key is not None and ended.ending in (Ending.INVALID, Ending.DROPPED):
            self._run(self.queue.unclaim(station_id, track.key))  # never sent: may come again
        if ended.ending is Ending.UNSENT and ended.code is None:
            self._requeue(station_id, replace(command, token=None), track.expires_at, track.key)
        if waiter is not None:
            waiter.callback(answer_for(station_id, ended))

    def started(self, station_id: str) -> None:
        self.presence.started(station_id)
        self._run(self._drain(station_id))

    def gone(self, station_id: str, streams: list[str]) -> None:
        self.streams.remember(station_id, streams)

    # --- broadcasts with a ttl -----------------------------------------------------------------

    def undelivered(self, stream: str, data: Any) -> None:
        """A broadcast no connected station here listens to: one with a ttl is queued for the
        stations that last streamed from ``stream`` on this node."""
        if isinstance(data, str) and '"ttl"' not in data:
            return  # most broadcasts carry none: no need to decode them
        stations = self.streams.stations(stream)
        if not stations:
            return
        try:
            message = decode_broadcast(data)
        except MalformedMessage:
            return  # the hub logs malformed broadcasts it delivers; this one went nowhere
        action, ttl = message["command"], min(ttl_of(message), self.limits.max_ttl)
        if action in ("Ack", "Error", "Defer") or ttl <= 0:
            return
        unique_id = message.get("id")
        known = isinstance(unique_id, str) and 0 < len(unique_id) <= framing.MAX_UNIQUE_ID
        payload = message.get("payload")
        for station_id in stations:
            command = RemoteCommand(
                unique_id if known else str(uuid.uuid4()),
                action,
                {} if payload is None else payload,
                ttl=ttl,
            )
            # its id is the key: the same broadcast relayed twice is queued once
            self._run(self._queue_broadcast(station_id, command, unique_id if known else None))

    async def _queue_broadcast(
        self, station_id: str, command: RemoteCommand, key: str | None
    ) -> None:
        if key is not None and await self.queue.claim(
            station_id, key, command.unique_id, command.ttl
        ):
            return
        expires_at = self.reactor.seconds() + command.ttl
        if not await self.queue.put(QueuedCommand(station_id, command, expires_at, key)):
            log.warn(
                "station {station_id}: queue full, broadcast {action} {unique_id} dropped",
                station_id=station_id,
                action=command.action,
                unique_id=command.unique_id,
            )

    # --- the queue ---------------------------------------------------------------------------

    def _requeue(
        self, station_id: str, command: RemoteCommand, expires_at: float, key: str | None
    ) -> None:
        """A command whose session ended before it was sent waits for the next one."""

        async def put() -> None:
            entry = QueuedCommand(station_id, replace(command, token=None), expires_at, key)
            if not await self.queue.put(entry):
                log.warn(
                    "station {station_id}: queue full, {action} {unique_id} dropped",
                    station_id=station_id,
                    action=command.action,
                    unique_id=command.unique_id,
                )

        self._run(put())

    def _queued_ended(self, station_id: str, command: RemoteCommand, ended: CommandEnded) -> None:
        async def next_one() -> None:
            if ended.ending is Ending.UNSENT:
                await self.queue.release(station_id, command.unique_id)
                return  # the station is gone: its next session takes it
            await self.queue.done(station_id, command.unique_id)
            await self._drain(station_id)

        self._run(next_one())

    async def _drain(self, station_id: str) -> None:
        """Report what expired, then deliver the station's next queued command."""
        for entry in await self.queue.expired(station_id):
            await self.router.report_expired(station_id, entry.command)
        entry = await self.queue.take(station_id)
        if entry is None:
            return
        token = self._token(_Track(station_id, True, entry.expires_at, entry.key))
        if not await self.router.deliver(station_id, replace(entry.command, token=token)):
            del self._tracks[token]
            await self.queue.release(station_id, entry.command.unique_id)

    def _sweep_once(self) -> Deferred[None]:
        # Redis away: its connection logs the outage; the next sweep tries again
        return ensureDeferred(self._sweep()).addErrback(lambda f: f.trap(Unavailable) and None)

    async def _sweep(self) -> None:
        expired = await self.queue.sweep()
        for entry in expired:
            log.info(
                "station {station_id}: queued {action} {unique_id} expired",
                station_id=entry.station_id,
                action=entry.command.action,
                unique_id=entry.command.unique_id,
            )
        for station_id in {entry.station_id for entry in expired}:
            if await self.presence.lookup(station_id) is not None:
                await self._drain(station_id)  # connected: report the expiry now

    @staticmethod
    def _run(work: Any) -> None:
        ensureDeferred(work).addErrback(_background_failed)


def _background_failed(failure: Any) -> None:
    if failure.check(Unavailable):
        log.warn(
            "call API: {reason}; the queue carries on at its next sweep or session start",
            reason=failure.getErrorMessage(),
        )
    else:
        log.failure("call API queue error", failure)
