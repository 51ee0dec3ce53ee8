"""Kept for one release: incident notifications moved to correlator/notify/incidents.py."""

from correlator.notify.incidents import Notifier as Notifier
from correlator.notify.incidents import render as render

__all__ = ["Notifier", "render"]
