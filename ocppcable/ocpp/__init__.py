"""OCPP-J knowledge with no I/O: framing, action naming and per-version message catalogs."""
