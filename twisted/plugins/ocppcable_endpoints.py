# Endpoint types added by ocppcable (see ocppcable.tls and ocppcable.reuseport). Imported by every
# twistd run and by endpoint-string parsing: keep it light, the real work is imported on use.
from twisted.internet.interfaces import IStreamServerEndpointStringParser
from twisted.plugin import IPlugin
from zope.interface import implementer


@implementer(IPlugin, IStreamServerEndpointStringParser)
class _MutualTLSParser:
    prefix = "mtls"

    def parseStreamServer(self, reactor, *args, **kwargs):
        from ocppcable.tls import mtls_endpoint

        return mtls_endpoint(reactor, *args, **kwargs)


@implementer(IPlugin, IStreamServerEndpointStringParser)
class _ReusePortParser:
    prefix = "reuseport"

    def parseStreamServer(self, reactor, *args, **kwargs):
        from ocppcable.reuseport import reuseport_endpoint

        return reuseport_endpoint(reactor, *args, **kwargs)


mtls = _MutualTLSParser()
reuseport = _ReusePortParser()
