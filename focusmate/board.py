"""The room's board: posts, comments and likes, each signed by its author.

Every record carries its author's user id, signing public key and a signature over its content,
and is stored as one value (so an edit replaces the signed whole, never half of it). The user id
is a hash of the key, so a record proves its own authorship without trusting the member list; a
record whose signature does not verify is still shown, flagged ``verified=False``.

Edit and delete touch only the local user's own records; deletion leaves a signed tombstone so
a forged deletion is as detectable as a forged post.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from pycrdt import Map

from focusmate.board_index import BoardIndex
from focusmate.errors import NotFoundError, PermissionDeniedError, ValidationError
from focusmate.identity import Identity, sign_record, verify_record
from focusmate.room import Room
from focusmate.verdicts import Verdicts

POST_MAX = 4000
COMMENT_MAX = 1000

MAPS = ("posts", "comments", "likes")
BULK_READ_AFTER = 200  # posts to build beyond which one bulk read of the maps beats lookups

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
        self._index = BoardIndex(room.document)
        self._built: dict[str, tuple[int, Post | None]] = {}  # key -> (index version, post)
        self._built_names: dict[str, str] = {}

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
        # Integral floats as ints, as canonical JSON signs them: a record read from the map's
        # JSON (3) and the same record read by key (3.0) share one verdict.
        signed = (int(v) if type(v) is float and v.is_integer() else v for v in fields.values())
        values = (kind, self.room.room_id, raw.get("pk"), raw.get("sig"), *signed)
        return self._verdicts.check(values, check)

    def posts(self, *, limit: int | None = None) -> list[Post]:
        """Live posts, newest first, with their comments (oldest first) and like counts.

        With ``limit``, only the newest ``limit`` posts: only their records, comments and likes
        are read and checked (:class:`BoardIndex` knows where they are), so the first
        screenful of a 10k-post room costs what a 50-post room does. A post whose record,
        comments and likes did not change since this board last built it is not built again.
        """
        names = self._names()
        order = self._index.newest_posts()
        bulk = limit is None and len(order) - len(self._built) > BULK_READ_AFTER
        readers = [self._reader(name, bulk=bulk) for name in MAPS]
        posts: list[Post] = []
        for key in order:
            if limit is not None and len(posts) >= limit:
                break
            post = self._cached(key, names, readers)
            if post is not None:
                posts.append(post)
        if self._verdicts is not None:
            self._verdicts.save()
        return posts

    def read_post(self, post_id: str) -> Post | None:
        """One post as :meth:`posts` shows it; None if it shows no such post."""
        post = self._cached(
            post_id, self._names(), [self._reader(name, bulk=False) for name in MAPS]
        )
        if self._verdicts is not None:
            self._verdicts.save()
        return post

    def post_ids(self) -> list[str]:
        """The keys of every post record, newest first, without reading the records."""
        return self._index.newest_posts()

    def comment_posts(self) -> Mapping[str, str]:
        """Every comment key with the post it names, without reading the records."""
        return self._index.comment_posts()

    def _names(self) -> dict[str, str]:
        """Members' names by user id; when one changed, every post built is built again."""
        names = {uid: m.name for uid, m in self.room.members().items()}
        if names != self._built_names:
            self._built, self._built_names = {}, names
        return names

    def _cached(
        self, key: str, names: Mapping[str, str], readers: list[Callable[[str], Any]]
    ) -> Post | None:
        version = self._index.version(key)
        built = self._built.get(key)
        if built is None or built[0] != version:
            built = self._built[key] = (version, self._build(key, names, *readers))
        return built[1]

    def count(self) -> int:
        """About how many posts :meth:`posts` returns, without reading them (for "N more")."""
        return self._index.live_count()

    def _build(
        self,
        key: str,
        names: Mapping[str, str],
        get_post: Callable[[str], Any],
        get_comment: Callable[[str], Any],
        get_like: Callable[[str], Any],
    ) -> Post | None:
        """One post as shown, or None for a malformed record or a genuine tombstone."""
        raw = get_post(key)
        if not _well_formed(raw, kind="post", key=key):
            return None
        verified = self._verified("post", raw)
        if raw.get("deleted") and verified:
            return None  # a genuine tombstone; a forged one is shown, flagged, like any forgery
        liked = set()
        for like_key in self._index.children("likes", key):
            like = get_like(like_key)
            if isinstance(like, Mapping) and self._verified("like", like):
                liked.add(str(like.get("author")))
        comments = [
            comment
            for comment_key in self._index.children("comments", key)
            if (comment := self._read_comment(comment_key, get_comment(comment_key), names))
        ]
        return Post(
            post_id=key,
            author=str(raw["author"]),
            author_name=names.get(str(raw["author"]), "unknown"),
            body=str(raw["body"])[:POST_MAX],
            created_at=float(raw["created_at"]),
            edited_at=_opt_float(raw.get("edited_at")),
            verified=verified,
            likes=len(liked),
            liked_by_me=self.identity.user_id in liked,
            comments=tuple(sorted(comments, key=lambda c: (c.created_at, c.comment_id))),
        )

    def _reader(self, name: str, *, bulk: bool) -> Callable[[str], Any]:
        """Look records of one map up by key: from one bulk read of the map (when many posts
        are to be built, where that beats 11k lookups), or one at a time."""
        if bulk:
            return self._index.records(name).get
        return self._map(name).get

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
