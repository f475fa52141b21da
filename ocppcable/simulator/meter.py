"""A simulated station's energy meter: one register per connector."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ocppcable.simulator.dialects.base import Transaction

#: charging power of every connector, in W (meter readings grow at this rate)
POWER = 11_000


class Meter:
    """The energy registers (Wh) of a station's connectors; a connector's reading grows at
    :data:`POWER` while its transaction charges."""

    __slots__ = ("clock", "_registers")

    def __init__(self, connectors: int, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._registers = [0] * (connectors + 1)  # Wh per connector, [0] unused

    def register(self, connector: int) -> int:
        """The register of a connector as of its last transaction's end."""
        return self._registers[connector]

    def reading(self, transactions: Mapping[int, Transaction], connector: int) -> int:
        """The register of a connector (0: the whole station) with what its transaction in
        ``transactions`` (by connector) charged so far."""
        if connector == 0:
            return sum(self.reading(transactions, c) for c in range(1, len(self._registers)))
        tx = transactions.get(connector)
        if tx is None or tx.started_at is None:
            return self._registers[connector]
        charged = POWER * (self.clock() - tx.started_at) / 3600
        return self._registers[connector] + round(charged)

    def settle(self, transactions: Mapping[int, Transaction], connector: int) -> int:
        """The connector's transaction ends: what it charged goes into the register; the new
        register."""
        self._registers[connector] = self.reading(transactions, connector)
        return self._registers[connector]
