"""The broadcaster interface and the callback broadcasters feed."""

from __future__ import annotations

from collections.abc import Callable

from twisted.application.service import IService
from zope.interface import Attribute

#: hands a raw broadcast body to the hub; returns how many stations it reached; raises
#: MalformedPublication for a body that is not a publication
Dispatch = Callable[[bytes | str, str], int]


class IBroadcaster(IService):
    """A source of publications, run as a service; it calls ``dispatch(body, source)``."""

    description = Attribute("What this broadcaster listens to, for the startup log line.")
