"""ocppcable's plugin package: dropins of any installed distribution (``ocppcable/plugins/*.py``,
without an ``__init__.py`` of their own) are found here, as ``twisted/plugins/`` works for
twistd. See :mod:`ocppcable.plugin` and ``docs/plugins.md``."""

from twisted.plugin import pluginPackagePaths

__path__.extend(pluginPackagePaths(__name__))
__all__: list[str] = []
