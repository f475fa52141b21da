# The dropin: ocppcable finds it in ocppcable/plugins/. Imported whenever ocppcable looks for
# plugins, so it imports nothing but the plugin API; the hook's module loads when it is used.
from ocppcable.plugin import StationHooks

journal = StationHooks(
    "journal",
    "ocppcable_journal.build",
    optParameters=[
        ["journal-dir", None, "journal", "Directory of the frame journal (one file per UTC day)."],
    ],
)
