"""Event sources. Each sub-package is one collector implementing `correlator.collector.Collector`.

The daemon imports `collectors.<name>` for every `collectors.<name>` section of its configuration.
"""
