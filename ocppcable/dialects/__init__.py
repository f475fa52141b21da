"""What a simulated station says, per OCPP version.

:class:`ocppcable.simulator.StationModel` runs the same behaviour whatever the version (boot,
heartbeats, connector statuses, charging sessions, remote commands); a :class:`Dialect` turns it
into the version's messages and the version's commands into the model's operations.
"""

from __future__ import annotations

from ocppcable.dialects.base import Dialect
from ocppcable.dialects.v16 import V16
from ocppcable.dialects.v201 import V201

#: by the version given to ``ocppcable-station --ocpp``
DIALECTS: dict[str, Dialect] = {dialect.version: dialect for dialect in (V16(), V201())}

__all__ = ["DIALECTS", "Dialect"]
