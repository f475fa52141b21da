"""NATS for the gateway: the ``nats`` broadcast adapter and the ``nats`` cluster transport.

The client is our own, on Twisted (:mod:`ocppcable.nats.wire` parses and writes the NATS text
protocol, :mod:`ocppcable.nats.client` connects, subscribes and reconnects); see
``docs/operations.md`` for why it is not ``nats-py``.
"""
