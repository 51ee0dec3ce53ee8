"""correlator: an asyncio monitoring and event-correlation daemon for a network operations centre."""

from correlator import lazydc

lazydc.install()  # before any of the package's dataclasses is made

from correlator.event import Event, Severity  # noqa: E402

__version__ = "0.1.0"
__all__ = ["Event", "Severity", "__version__"]
