# -*- test-case-name: tests.test_naming -*-
"""Action Cable action names for OCPP actions (Rails' ``String#underscore``)."""

from __future__ import annotations

import functools
import re

_ACRONYM = re.compile(r"([A-Z]+)([A-Z][a-z])")
_WORD = re.compile(r"([a-z\d])([A-Z])")


@functools.lru_cache(maxsize=512)
def snake_case(action: str) -> str:
    """``BootNotification`` → ``boot_notification``, ``Get15118EVCertificate`` →
    ``get15118_ev_certificate``."""
    return _WORD.sub(r"\1_\2", _ACRONYM.sub(r"\1_\2", action)).replace("-", "_").lower()
