"""Versioned schema migrations of the profile database.

Each entry upgrades the schema by exactly one version and runs inside the same transaction that
bumps ``PRAGMA user_version``, so a crash mid-migration leaves the previous version intact. Never
edit a released migration: append a new one.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: CRDT documents as update logs plus snapshots; local-only tables beside them.
    """
    CREATE TABLE documents (
        doc_id      TEXT PRIMARY KEY,
        kind        TEXT NOT NULL,
        created_at  REAL NOT NULL
    );
    CREATE TABLE doc_updates (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        doc_id      TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
        data        BLOB NOT NULL,
        origin      TEXT NOT NULL,
        created_at  REAL NOT NULL
    );
    CREATE INDEX doc_updates_by_doc ON doc_updates(doc_id, seq);
    CREATE TABLE doc_snapshots (
        doc_id        TEXT PRIMARY KEY REFERENCES documents(doc_id) ON DELETE CASCADE,
        data          BLOB NOT NULL,
        upto_seq      INTEGER NOT NULL,
        compacted_at  REAL NOT NULL
    );
    CREATE TABLE settings (
        key    TEXT PRIMARY KEY,
        value  TEXT NOT NULL
    );
    CREATE TABLE rooms (
        room_id    TEXT PRIMARY KEY,
        secret     BLOB NOT NULL,
        joined_at  REAL NOT NULL,
        left_at    REAL
    );
    CREATE TABLE focus_watch (
        room_id     TEXT PRIMARY KEY,
        state       TEXT NOT NULL,
        checked_at  REAL NOT NULL
    );
    """,
    # 2: direct messages on this device: both directions, plaintext (the profile is the user's
    # own), the sealed envelope while it waits to go out, and its delivery state.
    """
    CREATE TABLE dms (
        id           TEXT PRIMARY KEY,
        peer         TEXT NOT NULL,
        outgoing     INTEGER NOT NULL,
        text         TEXT NOT NULL,
        sent_at      REAL NOT NULL,
        state        TEXT NOT NULL,
        envelope     TEXT,
        read_receipt INTEGER NOT NULL DEFAULT 0,
        updated_at   REAL NOT NULL
    );
    CREATE INDEX dms_by_peer ON dms(peer, sent_at);
    CREATE INDEX dms_by_state ON dms(outgoing, state);
    """,
    # 3: signature verdicts on board records, by keyed digest (focusmate.verdicts): a cache, so
    # a restart does not check thousands of signatures again. A snapshot known to hold nothing
    # pending (encoded from a document) is applied as it is when a document loads.
    """
    CREATE TABLE signature_verdicts (
        digest  BLOB PRIMARY KEY,
        ok      INTEGER NOT NULL
    );
    ALTER TABLE doc_snapshots ADD COLUMN complete INTEGER NOT NULL DEFAULT 0;
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)
