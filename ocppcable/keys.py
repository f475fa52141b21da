# -*- test-case-name: tests.test_keys -*-
"""Bearer keys shared with the backend, explicit or derived from ``--secret`` as AnyCable does."""

from __future__ import annotations

import hashlib
import hmac

#: the HMAC messages AnyCable uses to derive each key from the application secret
RPC_PHRASE = "rpc-cable"
BROADCAST_PHRASE = "broadcast-cable"
#: the call API's (an ocppcable addition, derived the same way)
API_PHRASE = "ocpp-api-cable"

#: an explicit key with this value disables authentication
DISABLED = "none"


def derive(secret: str, phrase: str) -> str:
    """``hex(HMAC-SHA256(key=secret, msg=phrase))``."""
    return hmac.new(secret.encode("utf-8"), phrase.encode("utf-8"), hashlib.sha256).hexdigest()


def resolve(explicit: str | None, secret: str | None, phrase: str) -> str | None:
    """The key to use: ``explicit`` if given, else one derived from ``secret``; None for none."""
    if explicit:
        return None if explicit == DISABLED else explicit
    if secret:
        return derive(secret, phrase)
    return None
