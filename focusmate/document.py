"""A pycrdt document bound to its update log in the store.

Local edits happen inside :meth:`CrdtDocument.edit`; when the block ends, the delta is committed to
the store in one transaction before anyone is told. Updates from elsewhere (a sync link, or another
process on the same profile) are persisted first and applied second, so a crash can never leave
in memory — and on the wire — an edit that the disk does not have.

Whether an update changed anything, and what a local edit changed, is read from the document's own
transaction events rather than from state vectors: a state vector does not show deletions, and
``get_update(state)`` carries the document's whole delete set, not just this edit's deletions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, cast

from pycrdt import (
    Doc,
    Map,
    Subscription,
    TransactionEvent,
    get_state,
    get_update,
    merge_updates,
)

from focusmate.errors import StoreError, ValidationError
from focusmate.lib0 import Reader, write_var_uint
from focusmate.store import COMPACT_AFTER_UPDATES, DocLog, Store

# Yjs' encoding of an update with no structs and an empty delete set.
EMPTY_UPDATE = b"\x00\x00"
LOCAL_ORIGIN = "local"
STORE_ORIGIN = "store"  # changes read from the store: other processes' commits, rebuilds
MAX_UPDATE_BYTES = 4 * 1024 * 1024

ChangeListener = Callable[[bytes, str], None]


class CrdtDocument:
    """One CRDT document (a room, a profile or a stats log) kept in step with the store."""

    def __init__(self, store: Store, doc_id: str, *, kind: str, now: float) -> None:
        self.store = store
        self.doc_id = doc_id
        self.kind = kind
        store.ensure_document(doc_id, kind=kind, now=now)
        self._seen_seq = 0
        self._listeners: list[ChangeListener] = []
        self._editing = False
        self._committed: list[bytes] = []  # updates of the document's transactions, as they end
        # What updates hold beyond the state vector while a gap before them is open
        self._waiting: list[bytes] = []
        self._rebuild = False
        self._merged = True  # the document is one merged apply of its whole log (see apply_remote)
        self._subscription: Subscription | None = None
        self.doc: Doc[Any] = self._new_doc()
        self.refresh()

    # -- reading other writers ------------------------------------------------------------------

    def refresh(self) -> bool:
        """Apply what other processes committed since we last looked; True when anything came.

        The log is merged into one update before it is applied: Yrs can drop a map entry when a
        client's updates are applied one by one out of order, but merges them correctly. While
        a gap is open (an update arrived before one it depends on), the document is rebuilt from
        the whole log instead, for the same reason. A complete snapshot (one that holds nothing
        pending, :meth:`Store.compact`) depends on nothing later in the log, so it is applied
        first on its own: merging a large snapshot costs more than applying it.
        """
        rebuild = self._rebuild or self._gapped
        log = self.store.read_log(self.doc_id, after_seq=0 if rebuild else self._seen_seq)
        self._seen_seq = log.last_seq
        try:
            return self._take_in(log, rebuild=rebuild)
        except BaseException:  # what was read is not (all) in the document: read it all again
            self._rebuild = True
            raise

    def _take_in(self, log: DocLog, *, rebuild: bool) -> bool:
        if rebuild:
            if self._subscription is not None:  # else the old document is never freed
                self.doc.unobserve(self._subscription)
            self.doc = self._new_doc()
            self._waiting.clear()
            self._rebuild = False
            self._merged = True
        elif log.updates or log.snapshot is not None:
            self._merged = False  # applied on top: no longer one merged apply
        parts = ([log.snapshot] if log.snapshot is not None else []) + log.updates
        changed = False
        if log.snapshot is not None and log.snapshot_complete:
            changed = self._apply(log.snapshot, complete=True)
            if changed:
                self._notify(log.snapshot, STORE_ORIGIN)
            parts = log.updates
        if not parts:
            return changed
        update = parts[0] if len(parts) == 1 else merge_updates(*parts)
        if self._apply(update):
            self._notify(update, STORE_ORIGIN)
            changed = True
        return changed

    # -- local edits ----------------------------------------------------------------------------

    @contextmanager
    def edit(self, *, now: float) -> Iterator[Doc[Any]]:
        """Edit the document; the resulting update is committed when the block ends.

        If the block raises, or committing fails (disk full, read-only profile), the in-memory
        document is reloaded from the store, so it never holds an edit that is not on disk.
        """
        if self._editing:
            raise RuntimeError("nested CrdtDocument.edit")
        self._editing = True
        try:
            self._committed.clear()
            try:
                with self.doc.transaction(origin=LOCAL_ORIGIN):
                    yield self.doc
                update = self._take_committed()
                if update is None:
                    return
                self._appended(
                    self.store.append_update(self.doc_id, update, origin=LOCAL_ORIGIN, now=now)
                )
            except BaseException:
                self._reload()
                raise
        finally:
            self._editing = False
        self._merged = False
        self._notify(update, LOCAL_ORIGIN)
        self._maybe_compact(now=now)

    # -- remote updates -------------------------------------------------------------------------

    def apply_remote(self, update: bytes, *, origin: str, now: float) -> bool:
        """Apply then persist an update received from a peer; True when it changed anything.

        A malformed update raises :class:`ValidationError` and touches neither disk nor memory:
        it is decoded into a scratch document first, where a hostile update can do no harm. Some
        updates decode alone yet make Yrs panic against what this document holds (one naming a
        known client with no structs, ``01 00 <client> 00 00``, does): so the update is applied
        to memory before it is persisted, and a failure there reloads the document from the
        store and raises ValidationError. Listeners hear of it only once it is on disk.

        While a gap is open the document is rebuilt from its whole log for every update that
        may move its state vector (see :meth:`refresh`), which costs as much as the whole room.
        An update that cannot (:meth:`_only_waits`) is persisted and left for the next rebuild.
        """
        validate_update(update)
        if self._gapped and self._merged and self._only_waits(update):
            self._try_on_scratch(update, with_document=False)
            self.store.append_update(self.doc_id, update, origin=origin, now=now)
            self._waiting.append(get_update(update, self.doc.get_state()))
            self._maybe_compact(now=now)
            return False
        if self._gapped:
            self._try_on_scratch(update)
            seq = self.store.append_update(self.doc_id, update, origin=origin, now=now)
            try:
                changed = self.refresh()  # rebuilds from the whole log, this update included
            except BaseException as err:
                if isinstance(err, KeyboardInterrupt | SystemExit):
                    raise
                self._rebuild = True  # the next refresh starts again from the log
                raise ValidationError(f"document update could not be applied: {err}") from err
        else:
            changed = self._apply_contained(update)
            try:
                seq = self.store.append_update(self.doc_id, update, origin=origin, now=now)
            except BaseException:
                self._reload()  # memory must not hold what the disk does not
                raise
            self._appended(seq)
            self._merged = False
            if changed:
                self._notify(update, origin)
        self._maybe_compact(now=now)
        return changed

    def _only_waits(self, update: bytes) -> bool:
        """Whether ``update`` can change nothing a rebuild of the gapped document would show
        but what is waiting: it deletes nothing, and none of its structs starts where the
        state vector ends, so none can integrate, nor free a waiting one (that needs a struct
        at the end of some client's range first).

        Yrs' merged apply does show structs past a gap, so the update's own content shows from
        the next rebuild (the state vector moving, or :meth:`refresh`), not at once. Applying
        it on its own instead is no option: Yrs loses map entries and whole updates integrating
        into a document that holds pending structs (``test_pycrdt_still_loses_entries_...``).
        """
        try:
            state = self.doc.get_state()
            beyond = get_update(update, state)
            if not beyond.endswith(b"\x00"):  # a delete set's last var-uint is a length >= 1
                return False
            if not _has_structs(beyond):
                return True
            known = _decode_sv(state)
            # Fill every client's range up to the state vector with a GC struct: what the
            # merge then holds contiguously from clock 0 is what could integrate, and more.
            reach = get_state(merge_updates(_gc_prefix(known), beyond))
        except BaseException as err:
            if isinstance(err, KeyboardInterrupt | SystemExit):
                raise
            return False  # the rebuild path contains whatever this is
        return all(clock <= known.get(client, 0) for client, clock in _decode_sv(reach).items())

    def _try_on_scratch(self, update: bytes, *, with_document: bool = True) -> None:
        """While a gap is open an update is not applied on its own but rebuilt from the log
        (see :meth:`refresh`): try it on a scratch copy of that first, before it is persisted.
        An update that only waits (:meth:`_only_waits`) is merged with what waits, not with
        the document: its structs lie past the state vector, so they meet only those."""
        base = [self.doc.get_update()] if with_document else []
        try:
            _scratch_apply(merge_updates(*base, *self._waiting, update))
        except BaseException as err:
            if isinstance(err, KeyboardInterrupt | SystemExit):
                raise
            raise ValidationError(f"document update could not be applied: {err}") from err

    def _apply_contained(self, update: bytes) -> bool:
        """:meth:`_apply` for an untrusted update: an error or a Rust panic half-way through
        reloads the document from the store (dropping whatever part of it Yrs integrated)."""
        try:
            return self._apply(update)
        except BaseException as err:
            if isinstance(err, KeyboardInterrupt | SystemExit):
                raise
            self._reload()
            raise ValidationError(f"document update could not be applied: {err}") from err

    def map(self, name: str) -> Map[Any]:
        """A top-level shared map of the document (created empty on first use)."""
        return cast(Map[Any], self.doc.get(name, type=Map))

    def state_vector(self) -> bytes:
        return self.doc.get_state()

    def encode_update(self, since_state: bytes | None = None) -> bytes:
        return self.doc.get_update(since_state) if since_state else self.doc.get_update()

    # -- observers ------------------------------------------------------------------------------

    def on_change(self, listener: ChangeListener) -> Callable[[], None]:
        """Call ``listener(update, origin)`` after each change; returns an unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _notify(self, update: bytes, origin: str) -> None:
        for listener in list(self._listeners):
            listener(update, origin)

    # -- internals ------------------------------------------------------------------------------

    def _new_doc(self) -> Doc[Any]:
        """A fresh document observed by this one. pycrdt hands Rust a callback that refers back
        to the document, a cycle Python's GC cannot see: a replaced document must be unobserved
        or it stays in memory whole (measured: 1.2 MiB leaked per rebuild of a 100 KB one)."""
        doc: Doc[Any] = Doc()
        self._subscription = doc.observe(self._on_transaction)
        return doc

    def _on_transaction(self, event: TransactionEvent) -> None:
        # Runs while the transaction commits: only record, never read the document here.
        self._committed.append(event.update)

    def _take_committed(self) -> bytes | None:
        """The update of the transactions ended since the last call; None if they were empty."""
        updates = [u for u in self._committed if u != EMPTY_UPDATE]
        self._committed.clear()
        if not updates:
            return None
        return updates[0] if len(updates) == 1 else merge_updates(*updates)

    def _apply(self, update: bytes, *, complete: bool = False) -> bool:
        """Apply an update to memory; True when it changed anything (deletions included).

        Afterwards, ``_gapped`` says whether some update is still waiting for one it depends
        on: part of it lies beyond what the document's state vector covers. A ``complete``
        update (a snapshot encoded from a document) waits for nothing, so is not checked.
        """
        self._committed.clear()
        self.doc.apply_update(update)
        if self._waiting or not complete:
            state = self.doc.get_state()
            fresh = () if complete else (update,)
            beyond = (get_update(u, state) for u in (*self._waiting, *fresh))
            self._waiting = [u for u in beyond if _has_structs(u)]
        return self._take_committed() is not None

    def _appended(self, seq: int) -> None:
        """Our update ``seq`` is in memory; so is the whole log up to it, unless another process
        wrote in between (the next :meth:`refresh` reads that) or something is still pending."""
        with suppress(StoreError):  # the update is committed; only the bookkeeping is skipped
            if not self._gapped and not self.store.updates_between(
                self.doc_id, self._seen_seq, seq
            ):
                self._seen_seq = seq

    @property
    def _gapped(self) -> bool:
        return bool(self._waiting)

    def _reload(self) -> None:
        self._committed.clear()
        self._rebuild = True
        self.refresh()

    def _maybe_compact(self, *, now: float) -> None:
        """Compact a long log. The update that triggered this is already committed, so a failed
        compaction (a full disk, say) is not the caller's error: a later write retries it."""
        try:
            if self.store.pending_update_count(self.doc_id) >= COMPACT_AFTER_UPDATES:
                live = None if self._gapped else (self.doc.get_update(), self._seen_seq)
                self.store.compact(self.doc_id, now=now, live=live)
        except StoreError:
            pass


def _has_structs(update: bytes) -> bool:
    """Whether a v1 update inserts anything: its first var-uint counts the clients with structs."""
    return not update.startswith(b"\x00")


def validate_update(update: bytes) -> None:
    """Decode an untrusted update into a scratch document; ValidationError if it is malformed.

    Decoding alone is not enough: an update with a client section holding no structs (5 bytes:
    ``01 00 <client> 00 00``) decodes, yet makes Yrs panic when applied to any document that
    already holds that client's edits. Merging drops such a section, so an update whose merged
    form names fewer clients is refused (no update a Yjs or Yrs encoder writes has one).
    """
    if len(update) > MAX_UPDATE_BYTES:
        raise ValidationError(f"update of {len(update)} bytes exceeds {MAX_UPDATE_BYTES}")
    try:
        _scratch_apply(update)
        empty_sections = _client_count(update) != _client_count(merge_updates(update, EMPTY_UPDATE))
    except BaseException as err:  # pycrdt raises ValueError, or a PanicException from Rust
        if isinstance(err, KeyboardInterrupt | SystemExit):
            raise
        raise ValidationError(f"malformed document update: {err}") from err
    if empty_sections:
        raise ValidationError("malformed document update: a client section holds no changes")


def _client_count(update: bytes) -> int:
    """The leading var-uint of a v1 update: how many clients' structs it carries."""
    return Reader(update[:8]).var_uint()


def _decode_sv(state: bytes) -> dict[int, int]:
    """A v1 state vector (as pycrdt encodes it): client -> clock."""
    reader = Reader(state)
    clocks: dict[int, int] = {}
    for _ in range(reader.var_uint()):
        client = reader.var_uint()
        clocks[client] = reader.var_uint()
    return clocks


def _gc_prefix(clocks: dict[int, int]) -> bytes:
    """A v1 update holding, for each client, one GC struct over clocks ``0 .. clock``."""
    sections = [
        write_var_uint(1)
        + write_var_uint(client)
        + write_var_uint(0)
        + b"\x00"
        + write_var_uint(clock)
        for client, clock in clocks.items()
        if clock > 0
    ]
    return write_var_uint(len(sections)) + b"".join(sections) + b"\x00"


def _scratch_apply(update: bytes) -> None:
    """Integrate ``update`` into a throwaway document.

    A relay validates every update it receives, and most of ``Doc().apply_update``'s cost is the
    Python wrapper's construction (locks, observers): the Rust document directly costs ~5 µs
    instead of ~21 µs. pycrdt is pinned below 0.15; should that private API move, the public one
    takes over.
    """
    if _RawDoc is None:
        Doc().apply_update(update)
        return
    raw = _RawDoc(None, None, None)
    txn = raw.create_transaction()
    try:
        raw.apply_update(txn, update)
    finally:
        txn.commit()
        txn.drop()


def _raw_doc_type() -> Any:
    try:
        from pycrdt._pycrdt import Doc as raw_doc  # noqa: PLC0415 - optional fast path

        probe = raw_doc(None, None, None)
        txn = probe.create_transaction()
        probe.apply_update(txn, EMPTY_UPDATE)
        txn.commit()
        txn.drop()
    except Exception:  # a pycrdt whose internals differ: use the public API
        return None
    return raw_doc


_RawDoc = _raw_doc_type()
