# -*- test-case-name: tests.test_plugins -*-
"""The public plugin API of ocppcable: everything a plugin imports.

The gateway is assembled from plugins found with :func:`twisted.plugin.getPlugins` in the
:mod:`ocppcable.plugins` package, which any installed distribution can add a *dropin* module to
(a ``ocppcable/plugins/<name>.py`` file, as ``twisted/plugins/`` works for twistd). The built-in
transports and adapters are plugins too (``ocppcable/plugins/ocppcable_builtins.py``).

Four kinds, each chosen by an option of ``twistd ocppcable``:

- :class:`IRPCTransportPlugin`: where RPCs go, by the scheme of ``--rpc-host``;
- :class:`IBroadcastAdapterPlugin`: where publications come from, by name in
  ``--broadcast-adapter``;
- :class:`IClusterTransportPlugin`: what the nodes of a cluster tell each other (station
  takeover, relayed HTTP broadcasts), by name in ``--pubsub``;
- :class:`IStationHookPlugin`: code that sees every station, by name in ``--hooks`` (run in
  that order).

Every plugin has a ``name``, may add options to ``twistd ocppcable --help`` (``optParameters``
and ``optFlags`` as in :class:`twisted.python.usage.Options`, each also read from
``OCPPCABLE_<NAME>``/``ANYCABLE_<NAME>``), and builds its object from the parsed options and a
:class:`Wiring`. :class:`RPCTransport`, :class:`BroadcastAdapter`, :class:`ClusterTransport`
and :class:`StationHooks` make such a plugin from a factory; the factory may be named by a
dotted string, imported only when the plugin is used (a dropin is imported by every twistd run:
keep its imports light). See ``docs/plugins.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from twisted.plugin import IPlugin
from twisted.python.reflect import namedAny
from zope.interface import Attribute, implementer

from ocppcable.answers import Error, Result
from ocppcable.broadcast.interface import Dispatch, IBroadcaster
from ocppcable.cluster.interface import ICluster
from ocppcable.hooks import IStation, IStationHook, StationHook
from ocppcable.rpc.interface import IRPCClient, RPCUnavailable

__all__ = [
    "comma_list",
    "BroadcastAdapter",
    "ClusterTransport",
    "Dispatch",
    "Error",
    "IBroadcastAdapterPlugin",
    "IBroadcaster",
    "ICluster",
    "IClusterTransportPlugin",
    "IGatewayPlugin",
    "IRPCClient",
    "IRPCTransportPlugin",
    "IStation",
    "IStationHook",
    "IStationHookPlugin",
    "RPCTransport",
    "RPCUnavailable",
    "Result",
    "StationHook",
    "StationHooks",
    "Wiring",
]


# --- the plugins -----------------------------------------------------------------------------------


@dataclass
class Wiring:
    """What a plugin's factory may use besides the options. An object a factory returns that
    provides ``IService`` is added to the gateway's services by the gateway: cluster transport
    first, then the RPC transport, the broadcast adapters and the hooks in the options' order.
    """

    #: the reactor (an ``IReactorTime`` and more): timers go on it, never on the global one
    reactor: Any
    #: hands a publication (raw JSON) to this node's stations; returns how many it reached
    dispatch: Dispatch
    #: the process's metrics (:class:`ocppcable.metrics.IMetrics`)
    metrics: Any
    #: the station registry (:class:`ocppcable.hub.Hub`)
    hub: Any
    #: the cluster transport chosen by ``--pubsub``, or None on a single node
    cluster: ICluster | None = None
    #: resources to mount on the main port's site, by path (e.g. a keyed HTTP broadcaster)
    main_site: dict[str, Any] = field(default_factory=dict)
    #: resources to serve, without authentication, beside a broadcaster that has no key, on its
    #: own port (the call API in demo mode): such an adapter mounts them and names the place in
    #: :attr:`unkeyed_at`
    unkeyed: dict[str, Any] = field(default_factory=dict)
    unkeyed_at: str | None = None
    #: objects plugins share, under keys of their choosing (the built-in Redis plugins share
    #: one watcher of their connections)
    shared: dict[str, Any] = field(default_factory=dict)


class IGatewayPlugin(IPlugin):
    """What every ocppcable plugin has."""

    name = Attribute("The name operators choose it by (for an RPC transport: for logs).")
    optParameters = Attribute(
        "Options it adds to twistd ocppcable: [long, short, default, doc(, coerce)] lists."
    )
    optFlags = Attribute("Flags it adds: [long, short, doc] lists.")

    def build(config: Mapping[str, Any], wiring: Wiring) -> Any:
        """The plugin's object, from the parsed options (all of them, the plugin's included)."""


class IRPCTransportPlugin(IGatewayPlugin):
    """An RPC transport, chosen by the scheme of ``--rpc-host``: the part before ``://``, the
    part before the first ``:`` unless what follows is a port number, or the whole value when
    it has no ``:`` (``demo``); a gRPC ``host:port`` has the scheme ``grpc``. ``build``
    returns an :class:`IRPCClient`."""

    schemes = Attribute("The schemes it serves, e.g. ('http', 'https').")

    def check(target: str) -> None:
        """Raise ValueError with a short reason when ``target`` is not usable."""


class IBroadcastAdapterPlugin(IGatewayPlugin):
    """A broadcast adapter: ``build`` returns an :class:`IBroadcaster` service that calls
    ``wiring.dispatch`` for every publication."""


class IClusterTransportPlugin(IGatewayPlugin):
    """A cluster transport: ``build`` returns an :class:`ICluster`."""


class IStationHookPlugin(IGatewayPlugin):
    """A station hook: ``build`` returns an :class:`IStationHook`."""


Factory = Callable[[Mapping[str, Any], Wiring], Any]


@dataclass
class _Plugin:
    name: str
    #: ``factory(config, wiring)``, or the dotted name of one (imported on first use)
    factory: Factory | str
    optParameters: Sequence[Sequence[Any]] = ()
    optFlags: Sequence[Sequence[Any]] = ()

    def build(self, config: Mapping[str, Any], wiring: Wiring) -> Any:
        factory = namedAny(self.factory) if isinstance(self.factory, str) else self.factory
        return factory(config, wiring)


@implementer(IRPCTransportPlugin)
@dataclass
class RPCTransport(_Plugin):
    schemes: Sequence[str] = ()
    #: ``check(target)`` raising ValueError, or its dotted name; None: any target
    checker: Callable[[str], None] | str | None = None

    def check(self, target: str) -> None:
        if self.checker is not None:
            checker = namedAny(self.checker) if isinstance(self.checker, str) else self.checker
            checker(target)


@implementer(IBroadcastAdapterPlugin)
@dataclass
class BroadcastAdapter(_Plugin):
    pass


@implementer(IClusterTransportPlugin)
@dataclass
class ClusterTransport(_Plugin):
    pass


@implementer(IStationHookPlugin)
@dataclass
class StationHooks(_Plugin):
    pass


def comma_list(value: str | Sequence[str]) -> list[str]:
    """An option coercion for comma-separated lists (``--hooks a,b``), for a plugin's options
    as for the gateway's own."""
    if not isinstance(value, str):
        return list(value)
    return [item.strip() for item in value.split(",") if item.strip()]


comma_list.coerceDoc = "Comma-separated."  # type: ignore[attr-defined]
