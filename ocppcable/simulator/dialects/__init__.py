"""What a simulated station says, per OCPP version.

:class:`ocppcable.simulator.model.StationModel` runs the same behaviour whatever the version
(boot, heartbeats, connector statuses, charging sessions, remote commands); the
:class:`Dialect` it is given turns it into the version's messages and the version's commands
into the operations of a :class:`~ocppcable.simulator.dialects.base.Station`.
"""

from __future__ import annotations

from ocppcable.simulator.dialects.base import Dialect
from ocppcable.simulator.dialects.v16 import V16
from ocppcable.simulator.dialects.v201 import V201

#: by the version given to ``ocppcable-station --ocpp``
DIALECTS: dict[str, Dialect] = {dialect.version: dialect for dialect in (V16(), V201())}

__all__ = ["DIALECTS", "Dialect"]
