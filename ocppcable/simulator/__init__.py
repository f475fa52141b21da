"""Simulated OCPP 1.6J/2.0.1 charging stations: a tool to try a gateway and a load generator.

``ocppcable-station ws://localhost:8080/ocpp --stations 1000 --sessions 2`` connects 1000
stations (``SIM-0001`` …) to ``ws://localhost:8080/ocpp/<station id>``, as OCPP 1.6J stations
(``--ocpp 2.0.1``: as 2.0.1 ones). Each boots, heartbeats,
reports its connectors, runs its charging sessions and answers the remote commands a central
system sends. At the end the run prints a summary (calls, CALLERRORs, timeouts, answered
commands, CALL→reply latency) and exits 0 only when nothing went wrong.

The modules, from the bottom up:

- :mod:`~ocppcable.simulator.config`: :class:`Config`, what a run does;
- :mod:`~ocppcable.simulator.stats`: :class:`Stats`, the numbers of a run, and its
  :class:`Summary`;
- :mod:`~ocppcable.simulator.dialects`: what a station says in each OCPP version;
- :mod:`~ocppcable.simulator.effects`: what the station model asks its driver to do;
- :mod:`~ocppcable.simulator.calls`, :mod:`~ocppcable.simulator.commands`,
  :mod:`~ocppcable.simulator.settings`, :mod:`~ocppcable.simulator.meter`: a station's own
  CALLs, its answers to remote commands, its settings and its energy meter;
- :mod:`~ocppcable.simulator.model`: :class:`StationModel`, one station's behaviour without
  I/O (events in, effects out), speaking the :class:`Dialect` it is given;
- :mod:`~ocppcable.simulator.fleet`: :class:`Simulator` and the driver that carry the
  effects out with Twisted and Autobahn;
- :mod:`~ocppcable.simulator.cli`: the ``ocppcable-station`` command line.
"""
