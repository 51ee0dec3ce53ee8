"""The outbox's durable copy: queued notices in `<data_dir>/outbox.db`, so a restart or a
crash does not lose them. Written in one transaction per batch by the Outbox's writer task.

Each feature (the notify stage, incident notifications) keeps its rows under its own `box` name.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from correlator.notify.notice import Notice
from correlator.store.sqlite import SqliteFile, transaction

MIGRATIONS: list[str] = [
    # 1: notices waiting for their final outcome
    """
    CREATE TABLE notices (
        id TEXT PRIMARY KEY,
        box TEXT NOT NULL,
        target TEXT NOT NULL,
        body BLOB NOT NULL,
        headers TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        next_at REAL NOT NULL,
        created REAL NOT NULL
    );
    CREATE INDEX notices_box ON notices(box);
    """,
]


class OutboxStore:
    def __init__(self, path: Path, box: str) -> None:
        self.path = path
        self.box = box
        # synchronous=FULL: a notice must survive a power loss, and notices are few.
        self._file = SqliteFile(path, MIGRATIONS, ("synchronous=FULL",), "outbox store")

    async def open(self) -> list[Notice]:
        """Open the file and return this box's notices left by the previous run, oldest first."""
        await self._file.open()
        try:
            rows = await self._file.db.execute_fetchall(
                "SELECT id, target, body, headers, attempts, next_at, created FROM notices"
                " WHERE box = ? ORDER BY rowid",
                (self.box,),
            )
            return [
                Notice(id_, target, bytes(body), created, orjson.loads(headers), attempts, next_at)
                for id_, target, body, headers, attempts, next_at, created in rows
            ]
        except BaseException as e:
            await self._file.close()  # its thread would keep the process alive after the error
            e.add_note(f"while reading {self.path}")
            raise

    async def write(self, added: list[Notice], retried: list[Notice], done: list[str]) -> None:
        """One transaction: insert `added`, save the attempt count of `retried`, delete `done`."""
        db = self._file.db
        async with transaction(db):
            if added:
                await db.executemany(
                    "INSERT OR REPLACE INTO notices(id, box, target, body, headers, attempts, next_at,"
                    " created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (n.id, self.box, n.target, n.body, orjson.dumps(n.headers).decode(),
                         n.attempts, n.next_at, n.created)
                        for n in added
                    ],
                )  # fmt: skip
            if retried:
                await db.executemany(
                    "UPDATE notices SET attempts = ?, next_at = ? WHERE id = ?",
                    [(n.attempts, n.next_at, n.id) for n in retried],
                )
            if done:
                await db.executemany("DELETE FROM notices WHERE id = ?", [(i,) for i in done])

    async def close(self) -> None:
        await self._file.close()
