"""The gateway's benchmark: ``python -m bench --quick`` (under a minute) or ``python -m bench``
(the full run, under 15 minutes). See ``bench/RESULTS.md``."""
