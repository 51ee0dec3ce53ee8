"""Kept for one release: the outbox moved to correlator/notify/outbox.py."""

from correlator.notify.outbox import Endpoint as Endpoint
from correlator.notify.outbox import Meters as Meters
from correlator.notify.outbox import Outbox as Outbox
from correlator.notify.outbox import retry_delay as retry_delay
