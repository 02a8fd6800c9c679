"""Where a room's board records are, in display order, kept up to date from the document itself.

Showing the newest posts of a 10k-post room should touch those posts only. Reading every record
to sort them costs ~0.1 s per read (serialising and parsing the maps), and a board is read
again on every change. The index reads the maps once, then follows each transaction's changed
keys (the document's map events, which carry the new values): which posts exist and when they
were written, and which comments and likes name which post. It judges nothing: records are
still checked (form, signature) by :class:`focusmate.board.Board` when a page is built.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping
from functools import partial
from types import MappingProxyType
from typing import Any

from pycrdt import Doc, Map, MapEvent, Subscription

from focusmate.room import RoomDocument

CHILD_MAPS = ("comments", "likes")
_versions = itertools.count(1)  # shared by every index: a number is never reused


class BoardIndex:
    """Post keys newest first, and the comment and like keys under each post."""

    def __init__(self, document: RoomDocument) -> None:
        self._document = document
        self._doc: Doc[Any] | None = None
        self._created: dict[str, float] = {}  # post key -> sort time (-inf: no usable time)
        self._gone: set[str] = set()  # post keys whose record says it was deleted
        self._order: list[str] | None = None  # post keys newest first; None after a change
        self._parent: dict[str, dict[str, str]] = {name: {} for name in CHILD_MAPS}
        self._children: dict[str, dict[str, set[str]]] = {name: {} for name in CHILD_MAPS}
        self._subscriptions: list[Subscription] = []
        self._versions: dict[str, int] = {}  # post key -> moves when the post or its children do
        self._read: dict[str, dict[str, Any]] = {}  # maps as read to build the index, unchanged

    def newest_posts(self) -> list[str]:
        """Every key of the posts map, newest first (ties by key, unusable times last)."""
        self._follow()
        if self._order is None:
            self._order = [key for _, key in sorted((-t, key) for key, t in self._created.items())]
        return self._order

    def children(self, name: str, post_id: str) -> list[str]:
        """The keys of ``name`` (comments or likes) whose record names ``post_id``."""
        self._follow()
        return sorted(self._children[name].get(post_id, ()))

    def comment_posts(self) -> Mapping[str, str]:
        """Every comment key with the post its record names (a read-only view)."""
        self._follow()
        return MappingProxyType(self._parent["comments"])

    def live_count(self) -> int:
        """About how many posts the board shows: those with a usable time whose record does not
        say it was deleted (a forged deletion, still shown flagged, is not counted)."""
        self._follow()
        return sum(1 for t in self._created.values() if t != -math.inf) - len(self._gone)

    def records(self, name: str) -> dict[str, Any]:
        """A whole board map as plain Python. Right after the index was built, the copy it was
        built from (handed out once: whoever asks next reads again)."""
        self._follow()
        read = self._read.pop(name, None)
        return read if read is not None else map_records(self._document.map(name))

    def version(self, post_id: str) -> int:
        """A number that changes whenever the post's record, or a comment or like naming it,
        does (and when the document is reloaded): a built post is good while it stays put."""
        self._follow()
        version = self._versions.get(post_id)
        if version is None:
            version = self._versions[post_id] = next(_versions)
        return version

    def _follow(self) -> None:
        """Read the maps once per pycrdt document (a rebuilt document starts over)."""
        doc = self._document.doc
        if doc is self._doc:
            return
        self._doc = doc
        self._created.clear()
        self._gone.clear()
        self._versions.clear()
        self._order = None
        posts = self._document.map("posts")
        self._read = {"posts": map_records(posts)}
        for key, raw in self._read["posts"].items():
            self._note_post(key, raw)
        self._subscriptions = [posts.observe(self._posts_changed)]
        for name in CHILD_MAPS:
            self._parent[name].clear()
            self._children[name].clear()
            shared = self._document.map(name)
            self._read[name] = map_records(shared)
            for key, raw in self._read[name].items():
                self._adopt(name, key, raw)
            self._subscriptions.append(shared.observe(partial(self._child_changed, name)))

    def _posts_changed(self, event: MapEvent) -> None:
        self._read.clear()
        for key, change in _changed_keys(event).items():
            if change.get("action") == "delete":
                self._created.pop(key, None)
                self._gone.discard(key)
            else:
                self._note_post(key, change.get("newValue"))
            self._versions.pop(key, None)
        self._order = None

    def _child_changed(self, name: str, event: MapEvent) -> None:
        self._read.clear()
        for key, change in _changed_keys(event).items():
            parent = self._parent[name].pop(key, None)
            if parent is not None:
                self._versions.pop(parent, None)
                siblings = self._children[name][parent]
                siblings.discard(key)
                if not siblings:
                    del self._children[name][parent]
            if change.get("action") != "delete":
                self._adopt(name, key, change.get("newValue"))

    def _note_post(self, key: str, raw: object) -> None:
        self._created[key] = when = _sort_time(raw)
        if when != -math.inf and isinstance(raw, Mapping) and raw.get("deleted"):
            self._gone.add(key)
        else:
            self._gone.discard(key)

    def _adopt(self, name: str, key: str, raw: object) -> None:
        parent = raw.get("post_id") if isinstance(raw, Mapping) else None
        if isinstance(parent, str):
            self._versions.pop(parent, None)
            self._parent[name][key] = parent
            self._children[name].setdefault(parent, set()).add(key)


def map_records(shared: Map[Any]) -> dict[str, Any]:
    """A whole map as plain Python, through its JSON: one call into the CRDT library for the
    map, where ``to_py`` makes one per key (twice as slow for 10k records)."""
    try:
        records = json.loads(str(shared))
    except Exception:  # whatever a peer stored, the slower path reads it
        records = None
    return records if isinstance(records, dict) else (shared.to_py() or {})


def _changed_keys(event: MapEvent) -> dict[str, dict[str, Any]]:
    """Each changed key's ``action`` and ``newValue`` (pycrdt sets the slot; its stubs omit it)."""
    keys: dict[str, dict[str, Any]] = getattr(event, "keys")  # noqa: B009
    return keys


def _sort_time(raw: object) -> float:
    """A post's time for sorting; one without a usable time sorts as the oldest."""
    try:
        created = raw["created_at"]  # type: ignore[index]
    except (TypeError, KeyError, IndexError):
        return -math.inf
    usable = type(created) in (int, float)  # not bool, and nothing a peer dressed up as a number
    return float(created) if usable and math.isfinite(created) else -math.inf
