"""The room's board: posts, comments and likes, each signed by its author.

Every record carries its author's user id, signing public key and a signature over its content,
and is stored as one value (so an edit replaces the signed whole, never half of it). The user id
is a hash of the key, so a record proves its own authorship without trusting the member list; a
record whose signature does not verify is still shown, flagged ``verified=False``.

Edit and delete touch only the local user's own records; deletion leaves a signed tombstone so
a forged deletion is as detectable as a forged post.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from pycrdt import Map

from focusmate.errors import NotFoundError, PermissionDeniedError, ValidationError
from focusmate.identity import Identity, sign_record, verify_record
from focusmate.room import Room
from focusmate.verdicts import Verdicts

POST_MAX = 4000
COMMENT_MAX = 1000

IdFactory = Callable[[], str]


def new_item_id() -> str:
    return secrets.token_hex(8)


def validate_body(text: str, *, limit: int, what: str) -> str:
    text = text.strip()
    if not text:
        raise ValidationError(f"A {what} cannot be empty.")
    if len(text) > limit:
        raise ValidationError(f"A {what} can be at most {limit} characters (got {len(text)}).")
    return text


@dataclass(frozen=True)
class Comment:
    comment_id: str
    post_id: str
    author: str
    author_name: str
    body: str
    created_at: float
    edited_at: float | None
    verified: bool


@dataclass(frozen=True)
class Post:
    post_id: str
    author: str
    author_name: str
    body: str
    created_at: float
    edited_at: float | None
    verified: bool
    likes: int
    liked_by_me: bool
    comments: tuple[Comment, ...]


# The fields each record kind signs, besides its kind and the room id.
_SIGNED = {
    "post": ("post_id", "author", "body", "created_at", "edited_at", "deleted"),
    "comment": ("comment_id", "post_id", "author", "body", "created_at", "edited_at", "deleted"),
    "like": ("post_id", "author", "at"),
}


class Board:
    """Posts, comments and likes of one room, as the local user sees and edits them."""

    def __init__(
        self,
        room: Room,
        identity: Identity,
        *,
        new_id: IdFactory = new_item_id,
        verdicts: Verdicts | None = None,
    ) -> None:
        self.room = room
        self.identity = identity
        self._new_id = new_id
        self._verdicts = verdicts  # shared between reads and kept in the profile (workspace)

    def _map(self, name: str) -> Map[Any]:
        return self.room.document.map(name)

    # -- writing --------------------------------------------------------------------------------

    def post(self, body: str, *, now: float) -> str:
        self.room.require_active_member()
        text = validate_body(body, limit=POST_MAX, what="post")
        return self._create("post", now=now, body=text)

    def edit_post(self, post_id: str, body: str, *, now: float) -> None:
        text = validate_body(body, limit=POST_MAX, what="post")
        self._replace_own("post", post_id, now=now, body=text, edited_at=now)

    def delete_post(self, post_id: str, *, now: float) -> None:
        self._replace_own("post", post_id, now=now, body="", edited_at=now, deleted=True)

    def comment(self, post_id: str, body: str, *, now: float) -> str:
        self.room.require_active_member()
        self._existing("posts", post_id, what="post")
        text = validate_body(body, limit=COMMENT_MAX, what="comment")
        return self._create("comment", now=now, post_id=post_id, body=text)

    def edit_comment(self, comment_id: str, body: str, *, now: float) -> None:
        text = validate_body(body, limit=COMMENT_MAX, what="comment")
        self._replace_own("comment", comment_id, now=now, body=text, edited_at=now)

    def delete_comment(self, comment_id: str, *, now: float) -> None:
        self._replace_own("comment", comment_id, now=now, body="", edited_at=now, deleted=True)

    def _create(self, kind: str, *, now: float, **fields: Any) -> str:
        """Sign and store a new post or comment by the local user; returns its id."""
        item_id = self._new_id()
        record = self._signed(
            kind,
            **{
                f"{kind}_id": item_id,
                "author": self.identity.user_id,
                "created_at": now,
                "edited_at": None,
                "deleted": False,
                **fields,
            },
        )
        with self.room.document.edit(now=now):
            self._map(f"{kind}s")[item_id] = record
        return item_id

    def _replace_own(self, kind: str, item_id: str, *, now: float, **changes: Any) -> None:
        """Re-sign one of the local user's own records with ``changes`` (an edit or a delete)."""
        old = self._own(f"{kind}s", item_id, what=kind)
        record = self._signed(kind, **{**_fields(kind, old), **changes})
        with self.room.document.edit(now=now):
            self._map(f"{kind}s")[item_id] = record

    def like(self, post_id: str, *, now: float) -> None:
        self.room.require_active_member()
        self._existing("posts", post_id, what="post")
        key = f"{post_id}:{self.identity.user_id}"
        existing = self._map("likes").get(key)
        if isinstance(existing, Mapping) and self._is_my_like(existing, post_id):
            return
        record = self._signed("like", post_id=post_id, author=self.identity.user_id, at=now)
        with self.room.document.edit(now=now):
            self._map("likes")[key] = record

    def unlike(self, post_id: str, *, now: float) -> None:
        key = f"{post_id}:{self.identity.user_id}"
        if key not in self._map("likes"):
            return
        with self.room.document.edit(now=now):
            del self._map("likes")[key]

    def _is_my_like(self, raw: Mapping[str, Any], post_id: str) -> bool:
        return (
            raw.get("post_id") == post_id
            and raw.get("author") == self.identity.user_id
            and self._verified("like", raw)
        )

    def _signed(self, kind: str, **fields: Any) -> dict[str, Any]:
        signed = {"room_id": self.room.room_id, **fields}
        pk = self.identity.public.to_dict()["sign_public"]
        return {**fields, "pk": pk, "sig": sign_record(self.identity, kind=kind, fields=signed)}

    def _existing(self, map_name: str, item_id: str, *, what: str) -> Mapping[str, Any]:
        raw = self._map(map_name).get(item_id)
        if not isinstance(raw, Mapping) or raw.get("deleted"):
            raise NotFoundError(f"There is no {what} {item_id} in this room.")
        return raw

    def _own(self, map_name: str, item_id: str, *, what: str) -> Mapping[str, Any]:
        self.room.require_active_member()
        raw = self._existing(map_name, item_id, what=what)
        if raw.get("author") != self.identity.user_id or not self._verified(what, raw):
            raise PermissionDeniedError(f"You can only change your own {what}s.")
        return raw

    # -- reading --------------------------------------------------------------------------------

    def _verified(self, kind: str, raw: Mapping[str, Any]) -> bool:
        fields = _fields(kind, raw)

        def check() -> bool:
            return verify_record(
                user_id=str(raw.get("author", "")),
                sign_public_b64=str(raw.get("pk", "")),
                kind=kind,
                fields={"room_id": self.room.room_id, **fields},
                signature_b64=str(raw.get("sig", "")),
            )

        if self._verdicts is None:
            return check()
        values = (kind, self.room.room_id, raw.get("pk"), raw.get("sig"), *fields.values())
        return self._verdicts.check(values, check)

    def _records(self, name: str) -> dict[str, Any]:
        """One board map as plain Python. Read through the map's JSON, one call into the CRDT
        library for the whole map: ``to_py`` makes one call per key, twice as slow for 10k."""
        shared = self._map(name)
        try:
            records = json.loads(str(shared))
        except Exception:  # whatever a peer stored, the slower path reads it
            records = None
        return records if isinstance(records, dict) else (shared.to_py() or {})

    def posts(self) -> list[Post]:
        """Live posts, newest first, with their comments (oldest first) and like counts."""
        names = {uid: m.name for uid, m in self.room.members().items()}
        likes: dict[str, set[str]] = {}
        for raw in self._records("likes").values():
            if (
                isinstance(raw, Mapping)
                and isinstance(raw.get("post_id"), str)
                and self._verified("like", raw)
            ):
                likes.setdefault(raw["post_id"], set()).add(str(raw["author"]))
        comments: dict[str, list[Comment]] = {}
        for key, raw in self._records("comments").items():
            comment = self._read_comment(key, raw, names)
            if comment is not None:
                comments.setdefault(comment.post_id, []).append(comment)
        posts = []
        for key, raw in self._records("posts").items():
            if not _well_formed(raw, kind="post", key=key):
                continue
            verified = self._verified("post", raw)
            if raw.get("deleted") and verified:
                continue  # a genuine tombstone; a forged one is shown, flagged, like any forgery
            post_id = str(raw["post_id"])
            liked = likes.get(post_id, set())
            posts.append(
                Post(
                    post_id=post_id,
                    author=str(raw["author"]),
                    author_name=names.get(str(raw["author"]), "unknown"),
                    body=str(raw["body"])[:POST_MAX],
                    created_at=float(raw["created_at"]),
                    edited_at=_opt_float(raw.get("edited_at")),
                    verified=verified,
                    likes=len(liked),
                    liked_by_me=self.identity.user_id in liked,
                    comments=tuple(
                        sorted(
                            comments.get(post_id, []), key=lambda c: (c.created_at, c.comment_id)
                        )
                    ),
                )
            )
        posts.sort(key=lambda p: (-p.created_at, p.post_id))
        if self._verdicts is not None:
            self._verdicts.save()
        return posts

    def _read_comment(self, key: str, raw: object, names: Mapping[str, str]) -> Comment | None:
        if not _well_formed(raw, kind="comment", key=key):
            return None
        verified = self._verified("comment", raw)
        if raw.get("deleted") and verified:
            return None
        return Comment(
            comment_id=str(raw["comment_id"]),
            post_id=str(raw["post_id"]),
            author=str(raw["author"]),
            author_name=names.get(str(raw["author"]), "unknown"),
            body=str(raw["body"])[:COMMENT_MAX],
            created_at=float(raw["created_at"]),
            edited_at=_opt_float(raw.get("edited_at")),
            verified=verified,
        )


def _fields(kind: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    return {key: raw.get(key) for key in _SIGNED[kind]}


def _well_formed(raw: object, *, kind: str, key: str) -> TypeGuard[Mapping[str, Any]]:
    """Enough structure to display; authenticity is judged separately by the signature.

    A record must sit under its own id: a copy of a signed record under another key would
    otherwise show twice, and edits and deletions (which address the key) would miss the copy.
    """
    if not isinstance(raw, Mapping):
        return False
    id_field = "post_id" if kind == "post" else "comment_id"
    return (
        raw.get(id_field) == key
        and _is_finite_number(raw.get("created_at"))
        and all(isinstance(raw.get(name), str) for name in ("author", "body"))
        and (kind != "comment" or isinstance(raw.get("post_id"), str))
    )


def _is_finite_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _opt_float(value: object) -> float | None:
    return float(value) if _is_finite_number(value) else None
