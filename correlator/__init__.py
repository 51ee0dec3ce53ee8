"""correlator: an asyncio monitoring and event-correlation daemon for a network operations centre."""

from correlator.event import Event, Severity

__version__ = "0.1.0"
__all__ = ["Event", "Severity", "__version__"]
