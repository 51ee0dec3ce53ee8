"""Kept for one release: the outbox's store moved to correlator/notify/store.py."""

from correlator.notify.store import FILE as FILE
from correlator.notify.store import Notice as Notice
from correlator.notify.store import OutboxStore as OutboxStore
