"""Signature verdicts remembered across board reads and across restarts.

Checking a record's Ed25519 signature costs ~0.2 ms here, so a room with 10k posts and 1k comments
took over 3 s to show the first time, and every re-read still paid for turning each record into
canonical JSON. A verdict depends only on the record's author, key, signature and signed fields,
and on the context it is checked in (its kind and room): those values, as a tuple, are the key
in memory (about a microsecond to hash), and a digest of their ``repr`` (which no two different
tuples of plain values share) the key in the profile. Change one field of a record and its key
changes, so a tampered record is checked again.

The digests are keyed with a secret derived from the local user's private key and kept in the
profile (``signature_verdicts``), so the next start does not check the same signatures again.
Someone who can write the profile database but not read the key file cannot plant a verdict
that makes a forged post show as verified. The table is a cache: a read-only profile keeps
verdicts in memory only, and when it grows past its bound the oldest rows go.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Hashable

from focusmate.errors import StoreError
from focusmate.store import Store

MAX_VERDICTS = 200_000
_PERSON = b"fm/verdicts/v1"


def verdict_key(sign_private: bytes) -> bytes:
    """The secret that keys the digests, derived from the local user's signing key."""
    return hashlib.blake2b(sign_private, digest_size=32, person=_PERSON).digest()


class Verdicts:
    """Signature verdicts: in memory, and in the profile when ``store`` is given."""

    def __init__(self, key: bytes, store: Store | None = None, *, maxsize: int = MAX_VERDICTS):
        self._key = key
        self._store = store
        self.maxsize = maxsize
        self._memory: dict[tuple[object, ...], bool] = {}
        self._stored: dict[bytes, bool] | None = None  # the profile's, read on first need
        self._new: dict[bytes, bool] = {}  # learnt since the last save

    def __len__(self) -> int:
        return len(self._memory)

    def check(self, values: tuple[Hashable, ...], verify: Callable[[], bool]) -> bool:
        """The verdict on a record whose verdict depends on ``values`` (its kind, context,
        author, key, signature and signed fields, all plain values); ``verify`` runs only when
        the same values have not been judged before, here or in an earlier run."""
        try:
            verdict = self._memory.get(values)
        except TypeError:  # a value a hostile peer made unhashable: judge it every time
            return verify()
        if verdict is not None:
            return verdict
        digest = self._digest(values)
        verdict = self._from_profile().get(digest)
        if verdict is None:
            verdict = verify()
            self._new[digest] = verdict
        if len(self._memory) >= self.maxsize:
            self._memory.clear()  # a cache: a full one starts over rather than growing
        self._memory[values] = verdict
        return verdict

    def save(self) -> None:
        """Write the verdicts learnt since the last save into the profile, in one transaction.
        A profile that cannot be written (read-only, full disk) just keeps them in memory."""
        if self._store is None or not self._new:
            return
        rows = [(digest, int(ok)) for digest, ok in self._new.items()]
        try:
            with self._store.transaction() as conn:
                conn.executemany(
                    "INSERT OR REPLACE INTO signature_verdicts(digest, ok) VALUES (?, ?)", rows
                )
                conn.execute(
                    "DELETE FROM signature_verdicts WHERE rowid <= "
                    "(SELECT max(rowid) FROM signature_verdicts) - ?",
                    (self.maxsize,),
                )
        except StoreError:
            return
        self._new.clear()

    def _from_profile(self) -> dict[bytes, bool]:
        if self._stored is None:
            rows: list[tuple[bytes, int]] = []
            if self._store is not None:
                with contextlib.suppress(StoreError):
                    rows = self._store.query("SELECT digest, ok FROM signature_verdicts")
            self._stored = {bytes(digest): bool(ok) for digest, ok in rows}
        return self._stored

    def _digest(self, values: tuple[Hashable, ...]) -> bytes:
        """A digest of the values no one without the key can compute."""
        text = repr(values).encode("utf-8", "surrogatepass")
        return hashlib.blake2b(text, key=self._key, digest_size=16).digest()
