# -*- test-case-name: tests.test_plugins -*-
"""Finding the installed plugins (:mod:`ocppcable.plugin`) and choosing among them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.logger import Logger
from twisted.plugin import getPlugins

from ocppcable.plugin import (
    IBroadcastAdapterPlugin,
    IClusterTransportPlugin,
    IGatewayPlugin,
    IRPCTransportPlugin,
    IStationHookPlugin,
)

log = Logger()

#: the kinds, by the option that chooses among them
KINDS = {
    "rpc-host": IRPCTransportPlugin,
    "broadcast-adapter": IBroadcastAdapterPlugin,
    "pubsub": IClusterTransportPlugin,
    "hooks": IStationHookPlugin,
}


def rpc_scheme(target: str) -> str:
    """The scheme of an ``--rpc-host`` value: ``http`` for ``http://host/path``, ``demo`` for
    ``demo``, ``python`` for ``python:app.channels``, ``grpc`` for ``host:port``."""
    if "://" in target:
        return target.split("://", 1)[0].lower()
    if ":" not in target:
        return target.lower()
    head, rest = target.split(":", 1)
    if target.startswith("[") or rest.isdigit():
        return "grpc"
    return head.lower()


@dataclass(frozen=True)
class Registry:
    """The plugins of each kind, in discovery order."""

    rpc: tuple[Any, ...] = ()
    broadcast: tuple[Any, ...] = ()
    cluster: tuple[Any, ...] = ()
    hooks: tuple[Any, ...] = ()

    @classmethod
    def of(cls, plugins: Iterable[Any]) -> Registry:
        """A registry of ``plugins``; the first of a name (or RPC scheme) wins, later ones are
        logged and ignored."""
        kinds: dict[Any, list[Any]] = {kind: [] for kind in KINDS.values()}
        for plugin in plugins:
            for kind, found in kinds.items():
                if not kind.providedBy(plugin):
                    continue
                keys = _keys(kind, plugin)
                if any(keys & _keys(kind, other) for other in found):
                    log.warn(
                        "ignoring the plugin {plugin!r}: another one is named {name}",
                        plugin=plugin,
                        name=", ".join(sorted(keys)),
                    )
                    continue
                found.append(plugin)
        return cls(
            rpc=tuple(kinds[IRPCTransportPlugin]),
            broadcast=tuple(kinds[IBroadcastAdapterPlugin]),
            cluster=tuple(kinds[IClusterTransportPlugin]),
            hooks=tuple(kinds[IStationHookPlugin]),
        )

    def all(self) -> tuple[Any, ...]:
        return self.rpc + self.broadcast + self.cluster + self.hooks

    def names(self, option: str) -> list[str]:
        """The names an option accepts (for ``--rpc-host``: the schemes)."""
        if option == "rpc-host":
            return [scheme for plugin in self.rpc for scheme in plugin.schemes]
        return [plugin.name for plugin in self._of(option)]

    def transport(self, target: str) -> Any:
        """The RPC transport plugin for ``target``; ValueError naming the known schemes."""
        scheme = rpc_scheme(target)
        for plugin in self.rpc:
            if scheme in plugin.schemes:
                return plugin
        raise ValueError(
            f"no RPC transport for the scheme {scheme!r} of {target!r}; installed: "
            + ", ".join(self.names("rpc-host"))
        )

    def chosen(self, option: str, names: Sequence[str]) -> list[Any]:
        """The plugins named in ``--<option>``, in that order; ValueError for an unknown one."""
        by_name = {plugin.name: plugin for plugin in self._of(option)}
        unknown = [name for name in names if name not in by_name]
        if unknown:
            raise ValueError(
                f"unknown: {', '.join(unknown)}; installed: {', '.join(by_name) or 'none'}"
            )
        return [by_name[name] for name in names]

    def _of(self, option: str) -> tuple[Any, ...]:
        return {
            "broadcast-adapter": self.broadcast,
            "pubsub": self.cluster,
            "hooks": self.hooks,
        }[option]


def _keys(kind: Any, plugin: Any) -> set[str]:
    return set(plugin.schemes) if kind is IRPCTransportPlugin else {plugin.name}


_installed: Registry | None = None


def installed() -> Registry:
    """The plugins installed in :mod:`ocppcable.plugins` (found once per process)."""
    global _installed
    if _installed is None:
        import ocppcable.plugins

        _installed = Registry.of(getPlugins(IGatewayPlugin, ocppcable.plugins))
    return _installed
