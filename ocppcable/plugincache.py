"""``python -P -m ocppcable.plugincache``: build the plugin caches (``dropin.cache``) of
twistd's ``twisted/plugins/`` and of ocppcable's ``ocppcable/plugins/``.

Run it as the user who installed the packages, after every install or upgrade (a third party's
plugin included): a service user who cannot write a stale cache logs a warning at every start.
``-P`` keeps the current directory off ``sys.path``: run from a checkout, the checkout's
packages would be imported, and their caches built, instead of the installed ones.
"""

from __future__ import annotations

from twisted.plugin import IPlugin, getPlugins


def main() -> None:
    import ocppcable.plugins

    list(getPlugins(IPlugin))
    list(getPlugins(IPlugin, ocppcable.plugins))


if __name__ == "__main__":
    main()
